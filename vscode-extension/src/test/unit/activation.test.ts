/**
 * Activation of the packaged bundle (dist/extension.js) when the server cannot
 * be started: a clear error, an error state in the status bar, and commands
 * that still work. No server process is involved.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { stub, vscodeApi } from '../vscodeStub';

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BUNDLE = path.join(ROOT, 'dist', 'extension.js');

function manifestDefaults(): Record<string, unknown> {
    const props = require(path.join(ROOT, 'package.json')).contributes.configuration.properties;
    return Object.fromEntries(Object.entries(props).map(([k, v]) => [k, (v as { default: unknown }).default]));
}

describe('activation without a server', function () {
    let extension: any;
    const context = { subscriptions: [] as { dispose(): unknown }[] };

    before(function () {
        assert.ok(fs.existsSync(BUNDLE), `${BUNDLE} is missing: run \`npm run compile\` first`);
        extension = require(BUNDLE);
    });

    beforeEach(() => stub.reset(manifestDefaults()));

    afterEach(async () => {
        await extension.deactivate();
    });

    it('exports activate and deactivate', () => {
        assert.strictEqual(typeof extension.activate, 'function');
        assert.strictEqual(typeof extension.deactivate, 'function');
    });

    it('reports a serverCommand that is not on PATH', async () => {
        stub.configuration.set('accs.serverCommand', ['accs-lsp-does-not-exist', 'serve']);
        const api = await extension.activate(context);
        assert.strictEqual(api.languageClient, undefined, 'no client started');
        assert.strictEqual(stub.errorMessages.length, 1, JSON.stringify(stub.errorMessages));
        assert.match(stub.errorMessages[0], /"accs-lsp-does-not-exist" \(from accs\.serverCommand\) was not found on PATH/);
        assert.match(stub.errorMessages[0], /pip install accs-lsp/);
        const item = stub.statusBarItems[0];
        assert.strictEqual(item.text, '$(error) ACCS');
        assert.match(String(item.tooltip), /was not found on PATH/);
        // The commands are there even without a server.
        assert.ok(stub.commands.has('accs.restartServer'));
        assert.ok(stub.commands.has('accs.toggleCompletions'));
    });

    it('reports a pythonPath that does not exist', async () => {
        stub.configuration.set('accs.pythonPath', '/nonexistent/bin/python3');
        await extension.activate(context);
        assert.strictEqual(stub.errorMessages.length, 1);
        assert.match(stub.errorMessages[0], /"\/nonexistent\/bin\/python3" \(from accs\.pythonPath\) does not exist or is not executable/);
    });

    it('reports an empty serverCommand', async () => {
        stub.configuration.set('accs.serverCommand', []);
        await extension.activate(context);
        assert.match(stub.errorMessages[0] ?? '', /accs\.serverCommand is empty/);
    });

    it('toggles accs.enabled and the status bar without a server', async () => {
        stub.configuration.set('accs.serverCommand', ['accs-lsp-does-not-exist']);
        await extension.activate(context);
        await vscodeApi.commands.executeCommand('accs.toggleCompletions');
        assert.strictEqual(stub.configuration.effective('accs.enabled'), false);
        assert.deepStrictEqual(stub.statusBarMessages, ['ACCS completions disabled']);
    });
});
