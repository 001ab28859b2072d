/**
 * Status bar item driven by the server's `accs/status` notification
 * (`{"state": "loading" | "ready" | "error", "message": str}`), by the state of
 * the language client, and by `accs.enabled`.
 */
import * as vscode from 'vscode';

export const STATUS_NOTIFICATION = 'accs/status';

export type ServerState = 'starting' | 'loading' | 'ready' | 'error' | 'stopped';

export interface StatusParams {
    state: string;
    message?: string;
}

export interface Presentation {
    text: string;
    tooltip: string;
    /** Theme color id for the item's background, if any. */
    background?: string;
}

const SERVER_STATES: readonly ServerState[] = ['starting', 'loading', 'ready', 'error', 'stopped'];

/** Validates an `accs/status` payload; unknown states map to undefined. */
export function parseStatus(params: unknown): { state: ServerState; message: string } | undefined {
    if (typeof params !== 'object' || params === null) {
        return undefined;
    }
    const { state, message } = params as { state?: unknown; message?: unknown };
    if (typeof state !== 'string' || !(SERVER_STATES as readonly string[]).includes(state)) {
        return undefined;
    }
    return { state: state as ServerState, message: typeof message === 'string' ? message : '' };
}

export function present(state: ServerState, message: string, enabled: boolean): Presentation {
    const detail = message !== '' ? message : undefined;
    const toggleHint = enabled ? 'Click to disable completions.' : 'Click to enable completions.';
    switch (state) {
        case 'starting':
            return { text: '$(sync~spin) ACCS', tooltip: join(detail ?? 'Starting the ACCS language server…', toggleHint) };
        case 'loading':
            return { text: '$(sync~spin) ACCS: loading', tooltip: join(detail ?? 'Loading the model…', toggleHint) };
        case 'error':
            return {
                text: '$(error) ACCS',
                tooltip: join(detail ?? 'The ACCS language server reported an error.', 'See the "ACCS" output channel.'),
                background: 'statusBarItem.errorBackground',
            };
        case 'stopped':
            return {
                text: '$(debug-stop) ACCS',
                tooltip: join(detail ?? 'The ACCS language server is not running.', 'Run "ACCS: Restart Language Server".'),
                background: 'statusBarItem.warningBackground',
            };
        case 'ready':
        default:
            if (!enabled) {
                return { text: '$(circle-slash) ACCS', tooltip: join('Completions are disabled.', toggleHint) };
            }
            return { text: '$(check) ACCS', tooltip: join(detail ?? 'Completions are ready.', toggleHint) };
    }
}

function join(...parts: string[]): string {
    return parts.join('\n');
}

/** Owns the status bar item. */
export class StatusBar implements vscode.Disposable {
    private readonly item: vscode.StatusBarItem;
    private state: ServerState = 'starting';
    private message = '';
    private enabled: boolean;

    constructor(enabled: boolean, toggleCommand: string) {
        this.enabled = enabled;
        this.item = vscode.window.createStatusBarItem('accs.status', vscode.StatusBarAlignment.Right, 100);
        this.item.name = 'ACCS';
        this.item.command = toggleCommand;
        this.render();
        this.item.show();
    }

    get current(): { state: ServerState; message: string; enabled: boolean } {
        return { state: this.state, message: this.message, enabled: this.enabled };
    }

    /** Handler of the `accs/status` notification; ignores malformed payloads. */
    handleNotification(params: unknown): void {
        const parsed = parseStatus(params);
        if (parsed === undefined) {
            return;
        }
        this.set(parsed.state, parsed.message);
    }

    set(state: ServerState, message = ''): void {
        this.state = state;
        this.message = message;
        this.render();
    }

    setEnabled(enabled: boolean): void {
        this.enabled = enabled;
        this.render();
    }

    private render(): void {
        const p = present(this.state, this.message, this.enabled);
        this.item.text = p.text;
        this.item.tooltip = p.tooltip;
        this.item.backgroundColor = p.background !== undefined ? new vscode.ThemeColor(p.background) : undefined;
    }

    dispose(): void {
        this.item.dispose();
    }
}
