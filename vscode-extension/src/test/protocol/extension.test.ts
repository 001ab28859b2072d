/**
 * The packaged extension (dist/extension.js, the esbuild bundle that goes into
 * the .vsix) activated in an in-memory VS Code host (../vscodeStub) against the
 * real Python server: vscode-languageclient, the middleware, the status bar, the
 * commands and the feedback command run for real; only VS Code's UI is simulated.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { CancellationTokenSource, Position, Range, StubTextDocument, Uri, stub, vscodeApi } from '../vscodeStub';
import { EXTENSION_ROOT, serverCommand } from './serverProcess';
import { SAMPLE_SOURCE } from './sampleSource';

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */
const BUNDLE = path.join(EXTENSION_ROOT, 'dist', 'extension.js');

function manifestDefaults(): Record<string, unknown> {
    const props = require(path.join(EXTENSION_ROOT, 'package.json')).contributes.configuration.properties;
    return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, (v as { default: unknown }).default]));
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = probe();
        if (value !== undefined && value !== false) {
            return value;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\noutput:\n${stub.outputLines.slice(-40).join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, 50));
    }
}

const TEXT = SAMPLE_SOURCE;

function statusText(): string {
    return stub.statusBarItems[0]?.text ?? '';
}

function inlineProvider(): any {
    assert.strictEqual(stub.providers.inline.length, 1, 'one inline completion provider registered');
    return stub.providers.inline[0].provider;
}

async function inline(doc: StubTextDocument, position: Position): Promise<any[]> {
    const token = new CancellationTokenSource().token;
    const result = await inlineProvider().provideInlineCompletionItems(doc, position, { triggerKind: 0, selectedCompletionInfo: undefined }, token);
    if (result === null || result === undefined) {
        return [];
    }
    return Array.isArray(result) ? result : result.items;
}

/** Number of tokens of the last completion, from the server's log (stderr and window/logMessage go to the output channel). */
function lastLoggedTokens(kind: string): number | undefined {
    const pattern = new RegExp(`${kind} completion: (\\d+) tokens`);
    for (let i = stub.outputLines.length - 1; i >= 0; i--) {
        const m = pattern.exec(stub.outputLines[i]);
        if (m) {
            return Number(m[1]);
        }
    }
    return undefined;
}

describe('extension bundle in a simulated VS Code, with the real server', function () {
    let extension: any;
    let doc: StubTextDocument;
    const context = { subscriptions: [] as { dispose(): unknown }[] };

    before(async function () {
        assert.ok(fs.existsSync(BUNDLE), `${BUNDLE} is missing: run \`npm run compile\` first`);
        stub.reset(manifestDefaults());
        stub.configuration.set('accs.serverCommand', serverCommand());
        stub.configuration.set('accs.maxTokens', 8);
        stub.configuration.set('accs.timeoutMs', 60000);
        stub.configuration.set('accs.debounceMs', 0);
        extension = require(BUNDLE);
    });

    after(async function () {
        // ACCS_TEST_OUTPUT=FILE keeps the whole output channel (server stderr included) for debugging.
        if (process.env.ACCS_TEST_OUTPUT) {
            fs.writeFileSync(process.env.ACCS_TEST_OUTPUT, stub.outputLines.join('\n'));
        }
        await extension?.deactivate();
        for (const d of context.subscriptions) {
            d.dispose();
        }
    });

    afterEach(function () {
        if (this.currentTest?.state === 'failed') {
            // eslint-disable-next-line no-console
            console.log(`output channel (tail):\n${stub.outputLines.slice(-60).join('\n')}`);
        }
    });

    it('activates: starts the server, registers providers and commands', async function () {
        const api = await extension.activate(context);
        assert.ok(api.languageClient, 'language client created');
        assert.deepStrictEqual(stub.errorMessages, []);
        for (const command of ['accs.restartServer', 'accs.toggleCompletions', 'accs.showOutput', 'accs.feedback']) {
            assert.ok(stub.commands.has(command), `command ${command} registered`);
        }
        assert.strictEqual(stub.providers.inline.length, 1, 'inline completion provider');
        assert.strictEqual(stub.providers.completion.length, 1, 'completion provider');
        assert.deepStrictEqual(stub.providers.completion[0].triggerCharacters, ['.']);
        const selector = JSON.stringify(stub.providers.inline[0].selector);
        assert.match(selector, /"language":"python"/);
    });

    it('shows the model state from accs/status in the status bar, and the load progress', async function () {
        await waitFor('status bar "ready"', () => statusText() === '$(check) ACCS', 90000);
        assert.match(String(stub.statusBarItems[0].tooltip), /model ready/);
        const load = stub.progress.find((p) => /Loading/.test(p.title ?? ''));
        assert.ok(load, `work-done progress shown: ${JSON.stringify(stub.progress)}`);
        await waitFor('progress end', () => load.done, 5000);
    });

    it('sends didOpen/didChange and returns inline completions with the feedback command', async function () {
        doc = stub.openDocument(Uri.file('/tmp/accs-extension-test/example.py'), 'python', TEXT);
        doc.edit(new Range(9, 4, 9, 4), '"""Return the sum of a and b."""\n    ');
        const items = await inline(doc, new Position(10, 4));
        assert.ok(items.length > 0, 'no inline items');
        const item = items[0];
        assert.strictEqual(typeof item.insertText, 'string');
        assert.ok(item.insertText.trim().length > 0, JSON.stringify(item));
        assert.strictEqual(item.command?.command, 'accs.feedback');

        // VS Code runs the item's command when the user accepts it.
        const before = stub.outputLines.length;
        await vscodeApi.commands.executeCommand(item.command.command, ...item.command.arguments);
        const id = item.command.arguments[0].completionId;
        await waitFor(
            'the server to log the feedback',
            () => stub.outputLines.slice(before).some((l) => l.includes('feedback') && l.includes(id)),
            10000,
        );
    });

    it('reports a suggestion left pending when its document closes as dismissed', async function () {
        const other = stub.openDocument(Uri.file('/tmp/accs-extension-test/other.py'), 'python', TEXT);
        const items = await inline(other, new Position(9, 4));
        assert.ok(items.length > 0, 'no inline items');
        const id = items[0].command?.arguments?.[0]?.completionId;
        assert.strictEqual(typeof id, 'string', JSON.stringify(items[0]));
        const before = stub.outputLines.length;
        stub.closeDocument(other);
        await waitFor(
            'the server to log the dismissal',
            () => stub.outputLines.slice(before).some((l) => l.includes(`feedback: ${id} dismissed`)),
            10000,
        );
    });

    it('returns regular completions', async function () {
        doc.edit(new Range(11, 0, 11, 0), 'area = circle_');
        const token = new CancellationTokenSource().token;
        const result = await stub.providers.completion[0].provider.provideCompletionItems(doc, new Position(11, 14), token, {
            triggerKind: 0,
            triggerCharacter: undefined,
        });
        const items = Array.isArray(result) ? result : result?.items;
        assert.ok(items && items.length > 0, 'no completion items');
        const item = items[0];
        assert.ok(String(item.label).length > 0);
        // The item replaces the identifier being typed ("circle_", 7 characters).
        const edit = item.textEdit ?? { range: item.range, newText: item.insertText };
        assert.ok(String(edit.newText).startsWith('circle_'), JSON.stringify(edit));
        assert.deepStrictEqual([edit.range.start.line, edit.range.start.character], [11, 7]);
        assert.strictEqual(item.command?.command, 'accs.feedback', 'regular items carry the feedback command too');
    });

    it('sends setting changes with workspace/didChangeConfiguration', async function () {
        stub.configuration.set('accs.maxTokens', 2);
        await new Promise((r) => setTimeout(r, 200));
        const items = await inline(doc, new Position(10, 4));
        assert.ok(items.length > 0);
        await waitFor('a logged inline completion', () => lastLoggedTokens('inline') !== undefined, 5000);
        assert.ok(lastLoggedTokens('inline')! <= 2, `maxTokens 2 not applied: ${lastLoggedTokens('inline')} tokens`);
        stub.configuration.set('accs.maxTokens', 8);
    });

    it('toggles completions off and on', async function () {
        await vscodeApi.commands.executeCommand('accs.toggleCompletions');
        assert.strictEqual(stub.configuration.effective('accs.enabled'), false);
        assert.strictEqual(statusText(), '$(circle-slash) ACCS');
        const started = Date.now();
        assert.deepStrictEqual(await inline(doc, new Position(10, 4)), []);
        assert.ok(Date.now() - started < 500, 'disabled: answered without asking the server');

        await vscodeApi.commands.executeCommand('accs.toggleCompletions');
        assert.strictEqual(stub.configuration.effective('accs.enabled'), true);
        assert.strictEqual(statusText(), '$(check) ACCS');
        assert.ok((await inline(doc, new Position(10, 4))).length > 0);
    });

    it('restarts the server', async function () {
        await vscodeApi.commands.executeCommand('accs.restartServer');
        assert.ok(stub.commands.has('accs.feedback'), 'server command registered again');
        await waitFor('status bar "ready" after restart', () => statusText() === '$(check) ACCS', 90000);
        // The new client re-sends didOpen for open documents.
        assert.ok((await inline(doc, new Position(10, 4))).length > 0);
    });

    it('stops the server on deactivate', async function () {
        await extension.deactivate();
        assert.ok(!stub.commands.has('accs.feedback'), 'server command unregistered');
        assert.strictEqual(stub.providers.inline.length, 0, 'inline provider disposed');
        extension = undefined;
    });
});
