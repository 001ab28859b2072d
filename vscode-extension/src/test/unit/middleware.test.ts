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
