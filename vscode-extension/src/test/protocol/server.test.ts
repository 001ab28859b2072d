/**
 * Protocol tests against the real Python server: what the VS Code extension
 * sends and relies on, over the same transport (stdio, JSON-RPC).
 */
import * as assert from 'assert';
import {
    CancellationTokenSource,
    CompletionItem,
    CompletionList,
    CompletionRequest,
    DidChangeConfigurationNotification,
    DidChangeTextDocumentNotification,
    DidCloseTextDocumentNotification,
    DidOpenTextDocumentNotification,
    ExecuteCommandRequest,
    ExitNotification,
    InitializeRequest,
    InitializeResult,
    InitializedNotification,
    InlineCompletionItem,
    InlineCompletionList,
    InlineCompletionRequest,
    InlineCompletionTriggerKind,
    ResponseError,
    ShutdownRequest,
    TextDocumentSyncKind,
    TextDocumentSyncOptions,
} from 'vscode-languageserver-protocol/node';
import { ServerUnderTest, serverCommand } from './serverProcess';
import { SAMPLE_SOURCE } from './sampleSource';
import { SERVER_DEFAULTS, didChangeConfigurationParams } from '../../settings';

const URI = 'file:///tmp/accs-protocol-test/example.py';

const TEXT = SAMPLE_SOURCE;

function inlineItems(result: InlineCompletionList | InlineCompletionItem[] | null): InlineCompletionItem[] {
    if (result === null || result === undefined) {
        return [];
    }
    return Array.isArray(result) ? result : result.items;
}

function completionItems(result: CompletionList | CompletionItem[] | null): CompletionItem[] {
    if (result === null || result === undefined) {
        return [];
    }
    return Array.isArray(result) ? result : result.items;
}

/**
 * The client's copy of the document: edits are applied here and sent as
 * incremental didChange notifications, so positions in later tests stay right.
 */
class ClientDocument {
    lines: string[];
    version = 1;
    constructor(
        private readonly server: () => ServerUnderTest,
        text: string,
    ) {
        this.lines = text.split('\n');
    }
    get text(): string {
        return this.lines.join('\n');
    }
    /** Line index of the first line starting with `prefix` (after indentation). */
    find(prefix: string): number {
        const i = this.lines.findIndex((l) => l.trimStart().startsWith(prefix));
        assert.ok(i >= 0, `no line starts with ${prefix}`);
        return i;
    }
    async insert(line: number, character: number, text: string): Promise<void> {
        const current = this.lines[line];
        const merged = current.slice(0, character) + text + current.slice(character);
        this.lines.splice(line, 1, ...merged.split('\n'));
        this.version += 1;
        await this.server().connection.sendNotification(DidChangeTextDocumentNotification.type, {
            textDocument: { uri: URI, version: this.version },
            contentChanges: [{ range: { start: { line, character }, end: { line, character } }, text }],
        });
    }
    /** Appends a line at the end (before the final empty line) and returns the position after it. */
    async appendLine(text: string): Promise<{ line: number; character: number }> {
        const last = this.lines.length - 1;
        await this.insert(last, this.lines[last].length, '\n' + text);
        const line = this.lines.length - 1;
        return { line, character: this.lines[line].length };
    }
}

function text(item: InlineCompletionItem): string {
    return typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
}

describe('protocol: VS Code client <-> accs-lsp server', function () {
    let server: ServerUnderTest;
    let init: InitializeResult;
    let initMs = 0;
    const doc = new ClientDocument(() => server, TEXT);
    /** Position in the body of add(), after its docstring. */
    const body = () => ({ line: doc.find('"""Return the sum') + 1, character: 4 });

    before(function () {
        server = new ServerUnderTest();
        // eslint-disable-next-line no-console
        console.log(`      server: ${serverCommand().join(' ')}`);
    });

    after(async function () {
        await server?.kill();
    });

    afterEach(function () {
        if (this.currentTest?.state === 'failed') {
            // eslint-disable-next-line no-console
            console.log(server.describe());
        }
    });

    it('answers initialize with inline completion, completion, incremental sync and accs.feedback', async function () {
        const started = Date.now();
        init = await server.connection.sendRequest(InitializeRequest.type, {
            processId: process.pid,
            clientInfo: { name: 'accs-protocol-test', version: '0.1.0' },
            rootUri: null,
            workspaceFolders: null,
            capabilities: {
                general: { positionEncodings: ['utf-16'] },
                window: { workDoneProgress: true },
                workspace: {
                    configuration: true,
                    didChangeConfiguration: { dynamicRegistration: false },
                    executeCommand: { dynamicRegistration: false },
                },
                textDocument: {
                    synchronization: { dynamicRegistration: false, didSave: true },
                    completion: { completionItem: { snippetSupport: false }, contextSupport: true },
                    inlineCompletion: { dynamicRegistration: false },
                },
            },
            // timeoutMs: generous, so that a busy CI machine does not turn into empty completions.
            initializationOptions: { maxTokens: 8, timeoutMs: 60000 },
        });
        initMs = Date.now() - started;
        // eslint-disable-next-line no-console
        console.log(`      initialize answered in ${initMs} ms`);
        const caps = init.capabilities;
        assert.ok(caps.inlineCompletionProvider, 'inlineCompletionProvider advertised');
        assert.ok(caps.completionProvider, 'completionProvider advertised');
        assert.ok(caps.executeCommandProvider?.commands.includes('accs.feedback'), 'accs.feedback in executeCommandProvider');
        const sync = caps.textDocumentSync;
        const change = typeof sync === 'number' ? sync : (sync as TextDocumentSyncOptions | undefined)?.change;
        assert.strictEqual(change, TextDocumentSyncKind.Incremental, 'incremental document sync');
        const encoding = caps.positionEncoding ?? 'utf-16';
        assert.strictEqual(encoding, 'utf-16');
        // The model loads in the background: initialize must not wait for it.
        assert.ok(initMs < 5000, `initialize took ${initMs} ms`);
        await server.connection.sendNotification(InitializedNotification.type, {});
    });

    it('accepts didOpen and an incremental didChange', async function () {
        await server.connection.sendNotification(DidOpenTextDocumentNotification.type, {
            textDocument: { uri: URI, languageId: 'python', version: doc.version, text: doc.text },
        });
        // Type a docstring into add(): an incremental edit in the middle of the document.
        const line = doc.find('def add') + 1;
        await doc.insert(line, 4, '"""Return the sum of a and b."""\n    ');
        assert.deepStrictEqual(doc.lines.slice(line, line + 2), ['    """Return the sum of a and b."""', '    ']);
    });

    let feedbackArguments: unknown[] | undefined;

    it('returns inline completions with insertText and an accs.feedback command', async function () {
        const started = Date.now();
        const result = await server.connection.sendRequest(InlineCompletionRequest.type, {
            textDocument: { uri: URI },
            position: body(),
            context: { triggerKind: InlineCompletionTriggerKind.Automatic },
        });
        // eslint-disable-next-line no-console
        console.log(`      first inlineCompletion (includes model load) ${Date.now() - started} ms`);
        const items = inlineItems(result);
        assert.ok(items.length > 0, `no inline completion items: ${JSON.stringify(result)}`);
        for (const item of items) {
            assert.ok(text(item).trim().length > 0, `empty insertText: ${JSON.stringify(item)}`);
            if (item.range !== undefined) {
                assert.deepStrictEqual(item.range.start, body(), `range: ${JSON.stringify(item.range)}`);
            }
            assert.ok(item.command, `item without command: ${JSON.stringify(item)}`);
            assert.strictEqual(item.command.command, 'accs.feedback');
            const arg = item.command.arguments?.[0] as { completionId?: unknown; accepted?: unknown } | undefined;
            assert.ok(arg && typeof arg.completionId === 'string' && arg.completionId.length > 0, JSON.stringify(item.command));
            assert.strictEqual(arg.accepted, true);
        }
        feedbackArguments = items[0].command?.arguments;
    });

    it('reports the model state with accs/status and work-done progress', async function () {
        await server.waitForNotification('accs/status', (p) => (p as { state: string }).state !== 'loading', 90000);
        const statuses = server.notificationsOf('accs/status') as { state: string; message: string }[];
        for (const s of statuses) {
            assert.ok(['loading', 'ready', 'error'].includes(s.state), `unknown state ${JSON.stringify(s)}`);
            assert.strictEqual(typeof s.message, 'string', `message not a string: ${JSON.stringify(s)}`);
        }
        assert.deepStrictEqual(
            statuses.filter((s) => s.state === 'error'),
            [],
            'error status',
        );
        assert.strictEqual(statuses[0].state, 'loading', JSON.stringify(statuses));
        assert.strictEqual(statuses[statuses.length - 1].state, 'ready', JSON.stringify(statuses));

        const created = server.recorded.requests.filter((r) => r.method === 'window/workDoneProgress/create');
        assert.ok(created.length > 0, 'no window/workDoneProgress/create although the client supports it');
        const token = (created[0].params as { token: string | number }).token;
        const progress = (server.notificationsOf('$/progress') as { token: unknown; value: { kind: string } }[]).filter(
            (p) => p.token === token,
        );
        const kinds = progress.map((p) => p.value.kind);
        assert.strictEqual(kinds[0], 'begin', JSON.stringify(progress));
        assert.strictEqual(kinds[kinds.length - 1], 'end', JSON.stringify(progress));
    });

    it('takes the accept feedback through workspace/executeCommand', async function () {
        if (feedbackArguments === undefined) {
            const result = await server.connection.sendRequest(InlineCompletionRequest.type, {
                textDocument: { uri: URI },
                position: body(),
                context: { triggerKind: InlineCompletionTriggerKind.Invoked },
            });
            feedbackArguments = inlineItems(result)[0]?.command?.arguments;
        }
        assert.ok(feedbackArguments, 'no inline item with a command');
        await server.connection.sendRequest(ExecuteCommandRequest.type, {
            command: 'accs.feedback',
            arguments: feedbackArguments,
        });
    });

    it('returns regular completions', async function () {
        const position = await doc.appendLine('area = circle_');
        const started = Date.now();
        const result = await server.connection.sendRequest(CompletionRequest.type, {
            textDocument: { uri: URI },
            position,
            context: { triggerKind: 1 },
        });
        // eslint-disable-next-line no-console
        console.log(`      completion ${Date.now() - started} ms`);
        const items = completionItems(result);
        assert.ok(items.length > 0, `no completion items: ${JSON.stringify(result)}`);
        for (const item of items) {
            assert.ok(typeof item.label === 'string' && item.label.length > 0, JSON.stringify(item));
            assert.ok((item.textEdit && 'newText' in item.textEdit ? item.textEdit.newText : item.insertText ?? item.label).length > 0);
        }
    });

    it('uses UTF-16 positions (a non-BMP character before the cursor)', async function () {
        // The emoji is 2 UTF-16 code units (1 code point): the server must count units.
        const line = 'label = "😀 " + str(circle_';
        assert.strictEqual(line.length, 27, 'JS string length counts UTF-16 units');
        const position = await doc.appendLine(line);
        const result = await server.connection.sendRequest(CompletionRequest.type, {
            textDocument: { uri: URI },
            position,
            context: { triggerKind: 1 },
        });
        const items = completionItems(result);
        assert.ok(items.length > 0, `no completion items: ${JSON.stringify(result)}`);
        for (const item of items) {
            const edit = item.textEdit;
            if (edit !== undefined && 'range' in edit) {
                // The edit replaces the identifier being typed ("circle_"): 7 units back.
                assert.deepStrictEqual(edit.range.end, position, JSON.stringify(edit));
                assert.deepStrictEqual(edit.range.start, { line: position.line, character: 20 }, JSON.stringify(edit));
                assert.ok(edit.newText.startsWith('circle_'), JSON.stringify(edit));
            }
        }
    });

    it('survives a cancelled request', async function () {
        const source = new CancellationTokenSource();
        const pending = server.connection.sendRequest(
            InlineCompletionRequest.type,
            {
                textDocument: { uri: URI },
                position: body(),
                context: { triggerKind: InlineCompletionTriggerKind.Automatic },
            },
            source.token,
        );
        setTimeout(() => source.cancel(), 10);
        try {
            await pending;
        } catch (error) {
            assert.ok(error instanceof ResponseError, String(error));
            assert.strictEqual(error.code, -32800, `cancelled request answered ${error.code} ${error.message}`);
        }
        const again = await server.connection.sendRequest(InlineCompletionRequest.type, {
            textDocument: { uri: URI },
            position: body(),
            context: { triggerKind: InlineCompletionTriggerKind.Invoked },
        });
        assert.ok(inlineItems(again).length > 0, 'no completion after a cancellation');
    });

    it('applies workspace/didChangeConfiguration {settings: {accs: ...}}', async function () {
        const settings = { ...SERVER_DEFAULTS, maxTokens: 4, timeoutMs: 60000, mode: 'line' as const };
        server.settings = settings;
        await server.connection.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(settings));
        const result = await server.connection.sendRequest(InlineCompletionRequest.type, {
            textDocument: { uri: URI },
            position: body(),
            context: { triggerKind: InlineCompletionTriggerKind.Invoked },
        });
        const items = inlineItems(result);
        assert.ok(items.length > 0, 'no completion after didChangeConfiguration');
        for (const item of items) {
            assert.ok(!text(item).replace(/\n+$/, '').includes('\n'), `mode "line" returned several lines: ${JSON.stringify(text(item))}`);
        }
    });

    it('returns nothing when enabled is false', async function () {
        const settings = { ...SERVER_DEFAULTS, maxTokens: 4, timeoutMs: 60000, enabled: false };
        server.settings = settings;
        await server.connection.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(settings));
        const result = await server.connection.sendRequest(InlineCompletionRequest.type, {
            textDocument: { uri: URI },
            position: body(),
            context: { triggerKind: InlineCompletionTriggerKind.Invoked },
        });
        assert.deepStrictEqual(inlineItems(result), [], JSON.stringify(result));
        const on = { ...SERVER_DEFAULTS, maxTokens: 8, timeoutMs: 60000 };
        server.settings = on;
        await server.connection.sendNotification(DidChangeConfigurationNotification.type, didChangeConfigurationParams(on));
    });

    it('shuts down and exits with code 0', async function () {
        await server.connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri: URI } });
        const result = await server.connection.sendRequest(ShutdownRequest.type);
        assert.strictEqual(result ?? null, null);
        await server.connection.sendNotification(ExitNotification.type);
        const exit = await Promise.race([
            server.exited,
            new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10000)),
        ]);
        assert.notStrictEqual(exit, 'timeout', 'server still running 10 s after exit');
        assert.deepStrictEqual(exit, { code: 0, signal: null });
    });
});
