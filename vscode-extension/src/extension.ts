/**
 * ACCS VS Code extension: starts `accs-lsp serve` (or `<python> -m accs_lsp serve`)
 * over stdio and connects it with vscode-languageclient.  The client provides
 * inline completions (textDocument/inlineCompletion, a stable feature of
 * vscode-languageclient 10) and regular completions for Python.
 *
 * Feedback: every inline item carries the server command `accs.feedback`; the
 * client registers each command listed in the server's executeCommandProvider
 * as a VS Code command that forwards to workspace/executeCommand, so VS Code
 * running the item's command on accept reaches the server.  A suggestion
 * replaced by another one (or by none) without being accepted is reported with
 * the same command and `accepted: false` (see `DismissalTracker`).
 */
import * as vscode from 'vscode';
import {
    DidChangeConfigurationNotification,
    LanguageClient,
    LanguageClientOptions,
    ServerOptions,
    State,
} from 'vscode-languageclient/node';
import { FEEDBACK_COMMAND, createMiddleware } from './middleware';
import { ServerLaunch, checkLaunch, describeStartFailure, formatLaunch, resolveServerLaunch } from './serverCommand';
import {
    PathContext,
    SECTION,
    ServerSettings,
    classifyChange,
    didChangeConfigurationParams,
    readClientSettings,
    readServerSettings,
    toggleEnabled,
} from './settings';
import { STATUS_NOTIFICATION, StatusBar } from './status';

export const COMMAND_RESTART = 'accs.restartServer';
export const COMMAND_TOGGLE = 'accs.toggleCompletions';
export const COMMAND_SHOW_OUTPUT = 'accs.showOutput';

export const DOCUMENT_SELECTOR = [
    { scheme: 'file', language: 'python' },
    { scheme: 'untitled', language: 'python' },
];

function pathContext(): PathContext {
    const folder = vscode.workspace.workspaceFolders?.[0];
    return { workspaceFolder: folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined };
}

function configuration(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
}

export function serverSettings(): ServerSettings {
    return readServerSettings(configuration(), pathContext());
}

export class AccsExtension implements vscode.Disposable {
    private client: LanguageClient | undefined;
    private readonly output: vscode.LogOutputChannel;
    readonly status: StatusBar;
    private readonly disposables: vscode.Disposable[] = [];
    /** Serializes start/stop/restart. */
    private queue: Promise<unknown> = Promise.resolve();

    constructor() {
        this.output = vscode.window.createOutputChannel('ACCS', { log: true });
        this.status = new StatusBar(serverSettings().enabled, COMMAND_TOGGLE);
        this.disposables.push(
            this.output,
            this.status,
            vscode.commands.registerCommand(COMMAND_RESTART, () => this.restart()),
            vscode.commands.registerCommand(COMMAND_TOGGLE, () => this.toggle()),
            vscode.commands.registerCommand(COMMAND_SHOW_OUTPUT, () => this.output.show(true)),
            vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
        );
    }

    get languageClient(): LanguageClient | undefined {
        return this.client;
    }

    start(): Promise<void> {
        return this.enqueue(() => this.doStart());
    }

    restart(): Promise<void> {
        return this.enqueue(async () => {
            await this.doStop();
            await this.doStart();
        });
    }

    stop(): Promise<void> {
        return this.enqueue(() => this.doStop());
    }

    async toggle(): Promise<void> {
        const enabled = await toggleEnabled(configuration());
        // onDidChangeConfiguration also fires; update right away for feedback.
        this.status.setEnabled(enabled);
        void vscode.window.setStatusBarMessage(`ACCS completions ${enabled ? 'enabled' : 'disabled'}`, 2000);
    }

    private enqueue(step: () => Promise<void>): Promise<void> {
        const next = this.queue.then(step, step);
        this.queue = next.catch(() => undefined);
        return next;
    }

    private async doStart(): Promise<void> {
        const ctx = pathContext();
        let launch: ServerLaunch;
        try {
            launch = resolveServerLaunch(readClientSettings(configuration()), ctx);
        } catch (error) {
            return this.fail(error instanceof Error ? error.message : String(error));
        }
        const missing = checkLaunch(launch);
        if (missing !== undefined) {
            return this.fail(missing);
        }
        this.output.appendLine(`Starting ${formatLaunch(launch)}`);
        this.status.set('starting');

        // No `transport` on purpose: with TransportKind.stdio vscode-languageclient appends
        // `--stdio` to the arguments, which `accs-lsp serve` rejects. Without it the client
        // still talks to the process over stdin/stdout.
        const serverOptions: ServerOptions = {
            command: launch.command,
            args: launch.args,
            options: { cwd: ctx.workspaceFolder, env: { ...process.env } },
        };
        // Assigned below; the middleware only calls reportDismissed once the client runs.
        let client: LanguageClient | undefined;
        const clientOptions: LanguageClientOptions = {
            documentSelector: DOCUMENT_SELECTOR,
            outputChannel: this.output,
            initializationOptions: () => serverSettings(),
            middleware: createMiddleware({
                isEnabled: () => serverSettings().enabled,
                debounceMs: () => readClientSettings(configuration()).debounceMs,
                serverSettings,
                reportDismissed: (completionId) => this.reportDismissed(client, completionId),
            }),
            initializationFailedHandler: (error) => {
                this.status.set('error', error instanceof Error ? error.message : String(error));
                return false;
            },
        };
        client = new LanguageClient('accs', 'ACCS', serverOptions, clientOptions);
        client.onNotification(STATUS_NOTIFICATION, (params: unknown) => this.status.handleNotification(params));
        client.onDidChangeState((event) => {
            if (event.newState === State.Stopped && this.client === client && this.status.current.state !== 'error') {
                this.status.set('stopped');
            } else if (event.newState === State.Starting) {
                this.status.set('starting');
            }
        });
        this.client = client;
        try {
            await client.start();
        } catch (error) {
            this.client = undefined;
            await client.dispose().catch(() => undefined);
            return this.fail(describeStartFailure(launch, error));
        }
        if (this.status.current.state === 'starting') {
            // The server sends accs/status once it starts loading the model.
            this.status.set('loading');
        }
    }

    /** Sends `accs.feedback` with `accepted: false`; failures are logged, never thrown. */
    private reportDismissed(client: LanguageClient | undefined, completionId: string): void {
        if (client === undefined || !client.isRunning()) {
            return;
        }
        const log = (error: unknown) =>
            this.output.appendLine(
                `Reporting dismissed completion ${completionId} failed: ${error instanceof Error ? error.message : String(error)}`,
            );
        try {
            client
                .sendRequest('workspace/executeCommand', {
                    command: FEEDBACK_COMMAND,
                    arguments: [{ completionId, accepted: false }],
                })
                .then(undefined, log);
        } catch (error) {
            log(error);
        }
    }

    private async doStop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        if (client === undefined) {
            return;
        }
        try {
            await client.stop(5000);
        } catch (error) {
            this.output.appendLine(`Stopping the server failed: ${error instanceof Error ? error.message : String(error)}`);
        }
        await client.dispose().catch(() => undefined);
        this.status.set('stopped');
    }

    private fail(message: string): void {
        this.output.appendLine(message);
        this.status.set('error', message);
        void vscode.window
            .showErrorMessage(message, 'Open Settings', 'Show Output')
            .then((choice) => {
                if (choice === 'Open Settings') {
                    void vscode.commands.executeCommand('workbench.action.openSettings', `@ext:accs-lsp.accs-lsp ${SECTION}.`);
                } else if (choice === 'Show Output') {
                    this.output.show(true);
                }
            });
    }

    private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
        const change = classifyChange(event);
        if (change === 'none') {
            return;
        }
        const settings = serverSettings();
        this.status.setEnabled(settings.enabled);
        if (change === 'launch') {
            void this.restart();
            return;
        }
        const client = this.client;
        if (client !== undefined && client.isRunning()) {
            client
                .sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(settings))
                .catch((error) => this.output.appendLine(`didChangeConfiguration failed: ${String(error)}`));
        }
    }

    async dispose(): Promise<void> {
        await this.stop();
        for (const d of this.disposables.splice(0)) {
            d.dispose();
        }
    }
}

let extension: AccsExtension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<AccsExtension> {
    extension = new AccsExtension();
    context.subscriptions.push({ dispose: () => void extension?.dispose() });
    await extension.start();
    return extension;
}

export async function deactivate(): Promise<void> {
    const ext = extension;
    extension = undefined;
    await ext?.dispose();
}
