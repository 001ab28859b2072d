import * as assert from 'assert';
import type * as vscode from 'vscode';
import { createMiddleware, delay } from '../../middleware';
import { SERVER_DEFAULTS, ServerSettings } from '../../settings';
import { CancellationTokenSource } from '../vscodeStub';

/* eslint-disable @typescript-eslint/no-explicit-any */
const doc = {} as vscode.TextDocument;
const pos = { line: 0, character: 0 } as vscode.Position;
const inlineCtx = {} as vscode.InlineCompletionContext;
const completionCtx = {} as vscode.CompletionContext;

function setup(enabled: boolean, debounceMs = 0, settings: ServerSettings = { ...SERVER_DEFAULTS }) {
    const state = { enabled, calls: 0 };
    const mw = createMiddleware({
        isEnabled: () => state.enabled,
        debounceMs: () => debounceMs,
        serverSettings: () => settings,
    });
    const next: any = () => {
        state.calls++;
        return [{ insertText: 'x' }];
    };
    return { state, mw, next };
}

describe('toggle middleware', () => {
    it('returns no inline completions when disabled, without calling the server', async () => {
        const { state, mw, next } = setup(false);
        const token = new CancellationTokenSource().token as vscode.CancellationToken;
        const result = await mw.provideInlineCompletionItems!(doc, pos, inlineCtx, token, next);
        assert.strictEqual(result, null);
        assert.strictEqual(state.calls, 0);
    });

    it('forwards inline completions when enabled', async () => {
        const { state, mw, next } = setup(true);
        const token = new CancellationTokenSource().token as vscode.CancellationToken;
        const result = await mw.provideInlineCompletionItems!(doc, pos, inlineCtx, token, next);
        assert.deepStrictEqual(result, [{ insertText: 'x' }]);
        assert.strictEqual(state.calls, 1);
    });

    it('follows the toggle at request time', async () => {
        const { state, mw, next } = setup(true);
        const token = new CancellationTokenSource().token as vscode.CancellationToken;
        state.enabled = false;
        assert.strictEqual(await mw.provideInlineCompletionItems!(doc, pos, inlineCtx, token, next), null);
        state.enabled = true;
        assert.notStrictEqual(await mw.provideInlineCompletionItems!(doc, pos, inlineCtx, token, next), null);
        assert.strictEqual(state.calls, 1);
    });

    it('also blocks regular completions when disabled', async () => {
        const off = setup(false);
        const token = new CancellationTokenSource().token as vscode.CancellationToken;
        assert.strictEqual(await off.mw.provideCompletionItem!(doc, pos, completionCtx, token, off.next), null);
        assert.strictEqual(off.state.calls, 0);
        const on = setup(true);
        assert.deepStrictEqual(await on.mw.provideCompletionItem!(doc, pos, completionCtx, token, on.next), [{ insertText: 'x' }]);
    });

    it('drops a debounced request cancelled by the next keystroke', async () => {
        const { state, mw, next } = setup(true, 200);
        const source = new CancellationTokenSource();
        const started = Date.now();
        const pending = mw.provideInlineCompletionItems!(doc, pos, inlineCtx, source.token as vscode.CancellationToken, next);
        setTimeout(() => source.cancel(), 20);
        assert.strictEqual(await pending, null);
        assert.strictEqual(state.calls, 0);
        assert.ok(Date.now() - started < 150, 'resolved on cancellation, not after the delay');
    });

    it('sends a debounced request after the delay', async () => {
        const { state, mw, next } = setup(true, 30);
        const token = new CancellationTokenSource().token as vscode.CancellationToken;
        const started = Date.now();
        await mw.provideInlineCompletionItems!(doc, pos, inlineCtx, token, next);
        assert.strictEqual(state.calls, 1);
        assert.ok(Date.now() - started >= 25);
    });

    it('delay() resolves false for an already cancelled token', async () => {
        const source = new CancellationTokenSource();
        source.cancel();
        assert.strictEqual(await delay(1000, source.token as vscode.CancellationToken), false);
        assert.strictEqual(await delay(0, new CancellationTokenSource().token as vscode.CancellationToken), true);
    });

    it('answers workspace/configuration for accs with the server settings', async () => {
        const settings = { ...SERVER_DEFAULTS, maxTokens: 5 };
        const { mw } = setup(true, 0, settings);
        const params = { items: [{ section: 'accs' }, { section: 'python' }, { section: 'accs.maxTokens' }] };
        const next: any = () => [{ raw: true, serverCommand: ['x'] }, { pythonPath: 'p' }, 64];
        const result = await mw.workspace!.configuration!(params, new CancellationTokenSource().token as any, next);
        assert.deepStrictEqual(result, [settings, { pythonPath: 'p' }, 5]);
    });
});

describe('dismissal feedback', () => {
    const docA = { uri: { toString: () => 'file:///ws/a.py' } } as unknown as vscode.TextDocument;
    const docB = { uri: { toString: () => 'file:///ws/b.py' } } as unknown as vscode.TextDocument;

    function item(id: string, text = 'x'): any {
        return {
            insertText: text,
            command: { title: 'accept', command: 'accs.feedback', arguments: [{ completionId: id, accepted: true }] },
        };
    }

    /** A middleware whose server answers `responses` in turn (an array of items, a list, or null). */
    function tracked(report: (id: string) => unknown = () => undefined) {
        const reported: string[] = [];
        const responses: any[] = [];
        const mw = createMiddleware({
            isEnabled: () => true,
            debounceMs: () => 0,
            serverSettings: () => ({ ...SERVER_DEFAULTS }),
            reportDismissed: (id) => {
                reported.push(id);
                return report(id) as void;
            },
        });
        const next: any = () => responses.shift() ?? null;
        const request = (document: vscode.TextDocument, response: any, token?: vscode.CancellationToken) => {
            responses.push(response);
            return mw.provideInlineCompletionItems!(
                document,
                pos,
                inlineCtx,
                token ?? (new CancellationTokenSource().token as vscode.CancellationToken),
                next,
            );
        };
        const commands: { command: string; args: any[] }[] = [];
        const execNext: any = (command: string, args: any[]) => {
            commands.push({ command, args });
            return 'done';
        };
        const accept = (id: string) =>
            mw.executeCommand!('accs.feedback', [{ completionId: id, accepted: true }], execNext);
        return { mw, reported, request, accept, commands, execNext };
    }

    it('reports the previous id dismissed once when a different id arrives', async () => {
        const t = tracked();
        await t.request(docA, [item('c1')]);
        assert.deepStrictEqual(t.reported, []);
        await t.request(docA, [item('c2')]);
        assert.deepStrictEqual(t.reported, ['c1']);
        await t.request(docA, { items: [item('c3')] });
        assert.deepStrictEqual(t.reported, ['c1', 'c2']);
        // The server's cache may serve c1 again: it was reported already, c3 is the new dismissal.
        await t.request(docA, [item('c1')]);
        await t.request(docA, null);
        assert.deepStrictEqual(t.reported, ['c1', 'c2', 'c3']);
    });

    it('reports the shown suggestion when a response has no items', async () => {
        const t = tracked();
        await t.request(docA, [item('c1')]);
        await t.request(docA, []);
        assert.deepStrictEqual(t.reported, ['c1']);
        await t.request(docA, { items: [] });
        await t.request(docA, null);
        assert.deepStrictEqual(t.reported, ['c1'], 'nothing shown, nothing more to report');
    });

    it('reports nothing while the user types into the same suggestion', async () => {
        const t = tracked();
        await t.request(docA, [item('c1', 'return x + 1')]);
        await t.request(docA, [item('c1', 'eturn x + 1')]);
        await t.request(docA, [item('c1', 'turn x + 1')]);
        assert.deepStrictEqual(t.reported, []);
    });

    it('never reports an accepted id, and passes the command through unchanged', async () => {
        const t = tracked();
        await t.request(docA, [item('c1')]);
        const args = [{ completionId: 'c1', accepted: true }];
        assert.strictEqual(await t.mw.executeCommand!('accs.feedback', args, t.execNext), 'done');
        assert.strictEqual(t.commands.length, 1);
        assert.strictEqual(t.commands[0].command, 'accs.feedback');
        assert.strictEqual(t.commands[0].args, args, 'the same arguments');
        await t.request(docA, [item('c2')]);
        await t.request(docA, [item('c1')]);
        await t.accept('c1');
        await t.request(docA, null);
        assert.deepStrictEqual(t.reported, ['c2']);
    });

    it('passes other commands through untouched', async () => {
        const t = tracked();
        await t.request(docA, [item('c1')]);
        assert.strictEqual(await t.mw.executeCommand!('other.command', [{ completionId: 'c1' }], t.execNext), 'done');
        await t.request(docA, [item('c2')]);
        assert.deepStrictEqual(t.reported, ['c1']);
    });

    it('tracks each document on its own', async () => {
        const t = tracked();
        await t.request(docA, [item('a1')]);
        await t.request(docB, [item('b1')]);
        await t.request(docA, [item('a1')]);
        assert.deepStrictEqual(t.reported, []);
        await t.request(docB, [item('b2')]);
        assert.deepStrictEqual(t.reported, ['b1']);
    });

    it('ignores the response of a cancelled request', async () => {
        const t = tracked();
        await t.request(docA, [item('c1')]);
        const source = new CancellationTokenSource();
        const next: any = () => {
            source.cancel();
            return null;
        };
        await t.mw.provideInlineCompletionItems!(docA, pos, inlineCtx, source.token as vscode.CancellationToken, next);
        assert.deepStrictEqual(t.reported, []);
        await t.request(docA, [item('c1')]);
        assert.deepStrictEqual(t.reported, []);
    });

    it('reports a pending suggestion when its document closes', async () => {
        const t = tracked();
        let closed = 0;
        await t.request(docA, [item('c1')]);
        await t.request(docB, [item('b1')]);
        await t.accept('b1');
        await t.mw.didClose!(docA, async () => void closed++);
        await t.mw.didClose!(docB, async () => void closed++);
        await t.mw.didClose!(docA, async () => void closed++);
        assert.strictEqual(closed, 3);
        assert.deepStrictEqual(t.reported, ['c1']);
    });

    it('keeps completions working when the callback throws or rejects', async () => {
        const threw = tracked(() => {
            throw new Error('boom');
        });
        await threw.request(docA, [item('c1')]);
        assert.deepStrictEqual(await threw.request(docA, [item('c2')]), [item('c2')]);
        assert.deepStrictEqual(threw.reported, ['c1']);

        const rejected = tracked(() => Promise.reject(new Error('server gone')));
        await rejected.request(docA, [item('c1')]);
        assert.deepStrictEqual(await rejected.request(docA, [item('c2')]), [item('c2')]);
        assert.deepStrictEqual(await rejected.request(docA, [item('c3')]), [item('c3')]);
        assert.deepStrictEqual(rejected.reported, ['c1', 'c2']);
        // Let a rejection left unhandled surface before the test ends.
        await new Promise((resolve) => setImmediate(resolve));
    });

    it('works without a callback and for items without the feedback command', async () => {
        const { mw, next } = setup(true);
        const token = new CancellationTokenSource().token as vscode.CancellationToken;
        assert.deepStrictEqual(await mw.provideInlineCompletionItems!(docA, pos, inlineCtx, token, next), [{ insertText: 'x' }]);
        assert.strictEqual(await mw.didClose!(docA, async () => undefined), undefined);
        const t = tracked();
        await t.request(docA, [{ insertText: 'y' }]);
        await t.request(docA, [item('c1')]);
        await t.request(docA, [{ insertText: 'y', command: { command: 'accs.feedback', arguments: [] } }]);
        assert.deepStrictEqual(t.reported, ['c1']);
    });
});
