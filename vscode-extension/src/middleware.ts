/**
 * Language client middleware:
 *  - `accs.enabled` off: no inline completions and no completion items (the
 *    request is not even sent to the server);
 *  - inline completions are debounced (`accs.debounceMs`): a keystroke during
 *    the delay cancels the token and nothing is sent;
 *  - `workspace/configuration` for section "accs" answers the validated server
 *    settings, the same object as `initializationOptions`;
 *  - dismissed inline completions are reported (see `DismissalTracker`).
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
    /**
     * Called once for an inline completion that was shown and not accepted (the
     * extension sends `accs.feedback` with `accepted: false`). Errors, thrown or
     * rejected, are swallowed: they never reach a completion request.
     */
    reportDismissed?: (completionId: string) => void | PromiseLike<unknown>;
}

export const FEEDBACK_COMMAND = 'accs.feedback';

/** The `completionId` of an `accs.feedback` command's arguments, or undefined. */
export function feedbackCompletionId(args: readonly unknown[] | undefined): string | undefined {
    const first = args?.[0] as { completionId?: unknown } | null | undefined;
    return first !== null && typeof first === 'object' && typeof first.completionId === 'string' ? first.completionId : undefined;
}

/** The completionId of the first inline item carrying the `accs.feedback` command, or undefined. */
export function inlineCompletionId(
    result: vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined,
): string | undefined {
    const items = Array.isArray(result) ? result : result?.items;
    if (!Array.isArray(items)) {
        return undefined;
    }
    for (const item of items) {
        const command = item?.command as vscode.Command | undefined;
        if (command?.command === FEEDBACK_COMMAND) {
            const id = feedbackCompletionId(command.arguments);
            if (id !== undefined) {
                return id;
            }
        }
    }
    return undefined;
}

/** How many settled (accepted or reported) ids are remembered. */
const SETTLED_LIMIT = 1000;

/**
 * Tracks the inline suggestion shown per document. The server keeps the
 * completionId while the user types into a suggestion, so a response with
 * another id (or none) means the one shown before was dismissed, unless the
 * user accepted it (VS Code then runs its `accs.feedback` command with
 * `accepted: true`). Each id is reported at most once.
 */
export class DismissalTracker {
    private readonly shown = new Map<string, string>();
    /** Ids accepted or already reported, in insertion order (bounded). */
    private readonly settled = new Set<string>();

    constructor(private readonly report: (completionId: string) => void | PromiseLike<unknown>) {}

    /** A server response for `uri` carried `completionId` (undefined: no item). */
    responded(uri: string, completionId: string | undefined): void {
        const previous = this.shown.get(uri);
        if (previous === completionId) {
            return;
        }
        if (previous !== undefined) {
            this.dismiss(previous);
        }
        if (completionId === undefined) {
            this.shown.delete(uri);
        } else {
            this.shown.set(uri, completionId);
        }
    }

    /** `accs.feedback` ran for `completionId` (accepted, or reported by someone else). */
    settle(completionId: string): void {
        this.settled.delete(completionId);
        this.settled.add(completionId);
        while (this.settled.size > SETTLED_LIMIT) {
            const oldest = this.settled.values().next().value as string;
            this.settled.delete(oldest);
        }
    }

    /** The document closed: its pending suggestion, if any, is dismissed. */
    closed(uri: string): void {
        const previous = this.shown.get(uri);
        this.shown.delete(uri);
        if (previous !== undefined) {
            this.dismiss(previous);
        }
    }

    private dismiss(completionId: string): void {
        if (this.settled.has(completionId)) {
            return;
        }
        this.settle(completionId);
        try {
            const pending = this.report(completionId);
            if (pending !== undefined && pending !== null && typeof pending.then === 'function') {
                pending.then(undefined, () => undefined);
            }
        } catch {
            // Reporting is best effort; a failure must not break completions.
        }
    }
}

function uriKey(document: vscode.TextDocument): string {
    return document?.uri?.toString() ?? '';
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
    const report = options.reportDismissed;
    const tracker = report !== undefined ? new DismissalTracker(report) : undefined;
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
            const result = await next(document, position, context, token);
            // A cancelled request (the user typed on) says nothing about what is shown.
            if (tracker !== undefined && !token.isCancellationRequested) {
                tracker.responded(uriKey(document), inlineCompletionId(result));
            }
            return result;
        },
        provideCompletionItem: (document, position, context, token, next) => {
            if (!options.isEnabled()) {
                return null;
            }
            return next(document, position, context, token);
        },
        executeCommand: (command, args, next) => {
            if (tracker !== undefined && command === FEEDBACK_COMMAND) {
                const id = feedbackCompletionId(args);
                if (id !== undefined) {
                    tracker.settle(id);
                }
            }
            return next(command, args);
        },
        didClose: (document, next) => {
            tracker?.closed(uriKey(document));
            return next(document);
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
