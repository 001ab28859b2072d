/**
 * Language client middleware:
 *  - `accs.enabled` off: no inline completions and no completion items (the
 *    request is not even sent to the server);
 *  - inline completions are debounced (`accs.debounceMs`): a keystroke during
 *    the delay cancels the token and nothing is sent;
 *  - `workspace/configuration` for section "accs" answers the validated server
 *    settings, the same object as `initializationOptions`.
 *
 * Only type imports from vscode / vscode-languageclient, so this module runs
 * without VS Code.
 */
import type * as vscode from 'vscode';
import type { Middleware } from 'vscode-languageclient/node';
import { ServerSettings, configurationItem } from './settings';

export interface MiddlewareOptions {
    isEnabled: () => boolean;
    debounceMs: () => number;
    serverSettings: () => ServerSettings;
}

/** Resolves true after `ms`, or false as soon as the token is cancelled. */
export function delay(ms: number, token: vscode.CancellationToken): Promise<boolean> {
    if (token.isCancellationRequested) {
        return Promise.resolve(false);
    }
    if (ms <= 0) {
        return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
        let listener: vscode.Disposable | undefined;
        const timer = setTimeout(() => {
            listener?.dispose();
            resolve(!token.isCancellationRequested);
        }, ms);
        listener = token.onCancellationRequested(() => {
            clearTimeout(timer);
            listener?.dispose();
            resolve(false);
        });
    });
}

export function createMiddleware(options: MiddlewareOptions): Middleware {
    return {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
            if (!options.isEnabled()) {
                return null;
            }
            if (!(await delay(options.debounceMs(), token))) {
                return null;
            }
            if (!options.isEnabled()) {
                return null;
            }
            return next(document, position, context, token);
        },
        provideCompletionItem: (document, position, context, token, next) => {
            if (!options.isEnabled()) {
                return null;
            }
            return next(document, position, context, token);
        },
        workspace: {
            configuration: async (params, token, next) => {
                const answers = await next(params, token);
                if (!Array.isArray(answers)) {
                    return answers;
                }
                const settings = options.serverSettings();
                return answers.map((answer, i) => {
                    const own = configurationItem(params.items[i]?.section, settings);
                    return own !== undefined ? own : answer;
                });
            },
        },
    };
}
