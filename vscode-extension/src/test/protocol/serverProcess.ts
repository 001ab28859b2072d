/**
 * Spawns the real Python language server and connects to it with
 * vscode-languageserver-protocol over stdio, answering the requests a client
 * must answer (work-done progress creation, configuration, registration).
 *
 * Server command: $ACCS_SERVER_COMMAND (a JSON array or a whitespace-separated
 * command line); default `../.venv/bin/python -m accs_lsp serve` relative to
 * vscode-extension/, falling back to `accs-lsp serve` on PATH.
 */
import * as cp from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import {
    ConfigurationRequest,
    ProtocolConnection,
    RegistrationRequest,
    StreamMessageReader,
    StreamMessageWriter,
    UnregistrationRequest,
    WorkDoneProgress,
    WorkDoneProgressCreateRequest,
    createProtocolConnection,
} from 'vscode-languageserver-protocol/node';
import { findExecutable } from '../../serverCommand';

export const EXTENSION_ROOT = path.resolve(__dirname, '..', '..', '..');

export function serverCommand(): string[] {
    const fromEnv = process.env.ACCS_SERVER_COMMAND?.trim();
    if (fromEnv) {
        if (fromEnv.startsWith('[')) {
            return JSON.parse(fromEnv) as string[];
        }
        return fromEnv.split(/\s+/);
    }
    const venvPython = path.resolve(
        EXTENSION_ROOT,
        '..',
        '.venv',
        process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python',
    );
    if (fs.existsSync(venvPython)) {
        return [venvPython, '-m', 'accs_lsp', 'serve'];
    }
    if (findExecutable('accs-lsp') !== undefined) {
        return ['accs-lsp', 'serve'];
    }
    throw new Error(
        `No ACCS server to test: set ACCS_SERVER_COMMAND, create ${venvPython} with accs-lsp installed, or put accs-lsp on PATH.`,
    );
}

export interface Recorded {
    notifications: { method: string; params: unknown }[];
    requests: { method: string; params: unknown }[];
}

export class ServerUnderTest {
    readonly proc: cp.ChildProcessWithoutNullStreams;
    readonly connection: ProtocolConnection;
    readonly recorded: Recorded = { notifications: [], requests: [] };
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    stderr = '';
    /** Answer to workspace/configuration for section "accs". */
    settings: Record<string, unknown> = {};

    constructor(command: string[] = serverCommand()) {
        this.proc = cp.spawn(command[0], command.slice(1), {
            cwd: EXTENSION_ROOT,
            env: { ...process.env, PYTHONUNBUFFERED: '1' },
            stdio: 'pipe',
        });
        this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
        this.proc.stderr.setEncoding('utf8');
        this.proc.stderr.on('data', (chunk: string) => {
            this.stderr += chunk;
            if (process.env.ACCS_TEST_VERBOSE) {
                process.stderr.write(chunk);
            }
        });
        this.proc.on('error', (error) => {
            this.stderr += `\n[spawn error] ${error.message}`;
        });
        this.connection = createProtocolConnection(
            new StreamMessageReader(this.proc.stdout),
            new StreamMessageWriter(this.proc.stdin),
        );
        this.connection.onRequest(WorkDoneProgressCreateRequest.type, (params) => {
            this.recorded.requests.push({ method: WorkDoneProgressCreateRequest.method, params });
            // vscode-jsonrpc routes $/progress to per-token handlers, not to the catch-all handler.
            this.connection.onProgress(WorkDoneProgress.type, params.token, (value) => {
                this.recorded.notifications.push({ method: '$/progress', params: { token: params.token, value } });
            });
        });
        this.connection.onRequest(ConfigurationRequest.type, (params) => {
            this.recorded.requests.push({ method: ConfigurationRequest.method, params });
            return params.items.map((item) => (item.section === 'accs' ? this.settings : null));
        });
        this.connection.onRequest(RegistrationRequest.type, (params) => {
            this.recorded.requests.push({ method: RegistrationRequest.method, params });
        });
        this.connection.onRequest(UnregistrationRequest.type, (params) => {
            this.recorded.requests.push({ method: UnregistrationRequest.method, params });
        });
        // createProtocolConnection returns vscode-jsonrpc's MessageConnection, which also takes
        // catch-all handlers (used for methods without a specific handler).
        const raw = this.connection as unknown as {
            onRequest(handler: (method: string, params: unknown) => unknown): void;
            onNotification(handler: (method: string, params: unknown) => void): void;
        };
        raw.onRequest((method, params) => {
            this.recorded.requests.push({ method, params });
            return null;
        });
        raw.onNotification((method, params) => {
            this.recorded.notifications.push({ method, params });
        });
        this.connection.listen();
    }

    notificationsOf(method: string): unknown[] {
        return this.recorded.notifications.filter((n) => n.method === method).map((n) => n.params);
    }

    /** Waits until a notification matching `predicate` has arrived. */
    async waitForNotification(
        method: string,
        predicate: (params: unknown) => boolean,
        timeoutMs: number,
    ): Promise<unknown> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const found = this.notificationsOf(method).find(predicate);
            if (found !== undefined) {
                return found;
            }
            if (Date.now() > deadline) {
                throw new Error(`no ${method} notification matched within ${timeoutMs} ms\n${this.describe()}`);
            }
            await new Promise((r) => setTimeout(r, 50));
        }
    }

    describe(): string {
        const tail = this.stderr.length > 4000 ? '…' + this.stderr.slice(-4000) : this.stderr;
        return `server stderr:\n${tail}`;
    }

    async kill(): Promise<void> {
        if (this.proc.exitCode === null && this.proc.signalCode === null) {
            this.proc.kill('SIGKILL');
            await this.exited;
        }
        this.connection.dispose();
    }
}
