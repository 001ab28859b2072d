import * as assert from 'assert';
import { StatusBar, parseStatus, present } from '../../status';
import { stub } from '../vscodeStub';

describe('status bar', () => {
    beforeEach(() => stub.reset());

    it('parses accs/status payloads', () => {
        assert.deepStrictEqual(parseStatus({ state: 'ready', message: 'SmolLM2 loaded' }), { state: 'ready', message: 'SmolLM2 loaded' });
        assert.deepStrictEqual(parseStatus({ state: 'loading' }), { state: 'loading', message: '' });
        assert.strictEqual(parseStatus({ state: 'exploded' }), undefined);
        assert.strictEqual(parseStatus(null), undefined);
        assert.strictEqual(parseStatus('ready'), undefined);
    });

    it('presents each state', () => {
        assert.match(present('loading', '', true).text, /sync~spin.*loading/);
        assert.strictEqual(present('ready', 'ok', true).text, '$(check) ACCS');
        assert.strictEqual(present('ready', 'ok', false).text, '$(circle-slash) ACCS');
        assert.strictEqual(present('error', 'boom', true).background, 'statusBarItem.errorBackground');
        assert.match(present('error', 'boom', true).tooltip, /^boom/);
        assert.strictEqual(present('ready', '', true).background, undefined);
    });

    it('shows a visible item bound to the toggle command', () => {
        const bar = new StatusBar(true, 'accs.toggleCompletions');
        assert.strictEqual(stub.statusBarItems.length, 1);
        const item = stub.statusBarItems[0];
        assert.strictEqual(item.visible, true);
        assert.strictEqual(item.command, 'accs.toggleCompletions');
        assert.strictEqual(bar.current.state, 'starting');
        bar.dispose();
        assert.strictEqual(item.disposed, true);
    });

    it('follows accs/status notifications: loading -> ready -> error', () => {
        const bar = new StatusBar(true, 'accs.toggleCompletions');
        const item = stub.statusBarItems[0];

        bar.handleNotification({ state: 'loading', message: 'Loading SmolLM2-135M' });
        assert.match(item.text, /loading/);
        assert.match(String(item.tooltip), /Loading SmolLM2-135M/);
        assert.strictEqual(item.backgroundColor, undefined);

        bar.handleNotification({ state: 'ready', message: 'model ready (0.8 s)' });
        assert.strictEqual(item.text, '$(check) ACCS');
        assert.match(String(item.tooltip), /model ready/);

        bar.handleNotification({ state: 'error', message: 'cannot open /x.gguf' });
        assert.strictEqual(item.text, '$(error) ACCS');
        assert.strictEqual((item.backgroundColor as { id: string } | undefined)?.id, 'statusBarItem.errorBackground');
        assert.match(String(item.tooltip), /cannot open \/x\.gguf/);

        bar.handleNotification({ state: 'ready', message: '' });
        assert.strictEqual(item.backgroundColor, undefined);
    });

    it('ignores malformed notifications', () => {
        const bar = new StatusBar(true, 'accs.toggleCompletions');
        bar.handleNotification({ state: 'ready', message: 'x' });
        bar.handleNotification({ nope: true });
        bar.handleNotification(undefined);
        assert.deepStrictEqual(bar.current, { state: 'ready', message: 'x', enabled: true });
    });

    it('reflects accs.enabled', () => {
        const bar = new StatusBar(true, 'accs.toggleCompletions');
        const item = stub.statusBarItems[0];
        bar.handleNotification({ state: 'ready', message: '' });
        bar.setEnabled(false);
        assert.strictEqual(item.text, '$(circle-slash) ACCS');
        assert.match(String(item.tooltip), /disabled/);
        bar.setEnabled(true);
        assert.strictEqual(item.text, '$(check) ACCS');
    });
});
