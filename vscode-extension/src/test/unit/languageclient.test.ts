/**
 * Checks, against the vscode-languageclient code that ships in the bundle, the
 * two facts the feedback loop depends on:
 *  1. an inline item's `command` survives the protocol -> VS Code conversion;
 *  2. a command listed in the server's executeCommandProvider becomes a VS Code
 *     command that sends workspace/executeCommand with the same arguments.
 */
import * as assert from 'assert';
import { stub } from '../vscodeStub';

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports */
const { ExecuteCommandFeature } = require('vscode-languageclient/$test/common/executeCommand');
const { createConverter } = require('vscode-languageclient/$test/common/protocolConverter');
const { InlineCompletionItemFeature } = require('vscode-languageclient/$test/common/inlineCompletion');

const feedbackArgs = [{ completionId: 'c-42', accepted: true }];

describe('vscode-languageclient behaviour relied upon', () => {
    beforeEach(() => stub.reset());

    it('keeps the accs.feedback command of an inline completion item', async () => {
        const p2c = createConverter(undefined, false, false, false);
        const result = await p2c.asInlineCompletionResult({
            items: [
                {
                    insertText: 'return a + b',
                    range: { start: { line: 1, character: 4 }, end: { line: 1, character: 4 } },
                    command: { title: 'accept', command: 'accs.feedback', arguments: feedbackArgs },
                },
            ],
        });
        const item = result.items[0];
        assert.strictEqual(item.insertText, 'return a + b');
        assert.strictEqual(item.command.command, 'accs.feedback');
        assert.deepStrictEqual(item.command.arguments, feedbackArgs);
    });

    it('forwards server commands to workspace/executeCommand', async () => {
        const sent: { method: string; params: any }[] = [];
        const client = {
            middleware: {},
            sendRequest: (type: any, params: any) => {
                sent.push({ method: type.method, params });
                return Promise.resolve(null);
            },
            handleFailedRequest: () => undefined,
        };
        const feature = new ExecuteCommandFeature(client);
        feature.initialize({ executeCommandProvider: { commands: ['accs.feedback'] } });
        assert.ok(stub.commands.has('accs.feedback'), 'VS Code command registered');

        // What VS Code does when the user accepts the inline item.
        await stub.commands.get('accs.feedback')!(...feedbackArgs);
        assert.deepStrictEqual(sent, [
            { method: 'workspace/executeCommand', params: { command: 'accs.feedback', arguments: feedbackArgs } },
        ]);
        feature.clear();
        assert.ok(!stub.commands.has('accs.feedback'), 'unregistered on stop');
    });

    it('announces inline completion support without proposed features', () => {
        const feature = new InlineCompletionItemFeature({ middleware: {} });
        const caps: any = {};
        feature.fillClientCapabilities(caps);
        assert.deepStrictEqual(caps.textDocument.inlineCompletion, { dynamicRegistration: true });
    });
});
