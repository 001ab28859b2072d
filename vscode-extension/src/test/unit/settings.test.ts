import * as assert from 'assert';
import {
    CLIENT_DEFAULTS,
    SERVER_DEFAULTS,
    classifyChange,
    configurationItem,
    didChangeConfigurationParams,
    expandPath,
    readClientSettings,
    readServerSettings,
    toggleEnabled,
} from '../../settings';
import { stub } from '../vscodeStub';
import * as vscode from 'vscode';

function config(values: Record<string, unknown>) {
    return { get: <T>(key: string) => values[key] as T | undefined };
}

/** The defaults declared in package.json's contributes.configuration. */
function manifestDefaults(): Record<string, unknown> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const manifest = require('../../../package.json');
    const props = manifest.contributes.configuration.properties as Record<string, { default: unknown }>;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(props)) {
        out[key] = value.default;
    }
    return out;
}

describe('settings', () => {
    it('package.json declares every server and client setting with the same default', () => {
        const declared = manifestDefaults();
        for (const [key, value] of Object.entries({ ...SERVER_DEFAULTS, ...CLIENT_DEFAULTS })) {
            assert.ok(`accs.${key}` in declared, `accs.${key} missing from package.json`);
            assert.deepStrictEqual(declared[`accs.${key}`], value, `default of accs.${key}`);
        }
        const expected = [
            'modelPath',
            'constraints',
            'maxTokens',
            'mode',
            'typeProvider',
            'timeoutMs',
            'enabled',
            'runExamples',
            'learnWorkspace',
            'prefetch',
            'memoryLimitMb',
        ];
        assert.deepStrictEqual(Object.keys(SERVER_DEFAULTS).sort(), expected.sort());
    });

    it('package.json enums match the accepted values', () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const props = require('../../../package.json').contributes.configuration.properties;
        assert.deepStrictEqual(props['accs.constraints'].enum, ['none', 'syntax', 'types', 'full']);
        assert.deepStrictEqual(props['accs.mode'].enum, ['auto', 'line', 'block']);
        assert.deepStrictEqual(props['accs.typeProvider'].enum, ['jedi', 'pyright']);
        assert.strictEqual(props['accs.maxTokens'].default, 64);
        assert.strictEqual(props['accs.timeoutMs'].default, 3000);
        assert.strictEqual(props['accs.constraints'].default, 'syntax');
        assert.strictEqual(props['accs.constraints'].markdownEnumDescriptions.length, 4);
        assert.match(props['accs.constraints'].markdownEnumDescriptions[3], /examples run on the candidates/);
    });

    it('package.json declares the new server settings with their types and bounds', () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const props = require('../../../package.json').contributes.configuration.properties;
        for (const key of ['runExamples', 'learnWorkspace', 'prefetch']) {
            assert.strictEqual(props[`accs.${key}`].type, 'boolean', key);
            assert.strictEqual(props[`accs.${key}`].default, true, key);
        }
        const memory = props['accs.memoryLimitMb'];
        assert.deepStrictEqual([memory.type, memory.default, memory.minimum, memory.maximum], ['integer', 1024, 64, 65536]);
    });

    it('reads defaults from an empty configuration', () => {
        assert.deepStrictEqual(readServerSettings(config({})), { ...SERVER_DEFAULTS });
        assert.deepStrictEqual(readClientSettings(config({})), { ...CLIENT_DEFAULTS });
    });

    it('maps every setting with the same camelCase name', () => {
        const s = readServerSettings(
            config({
                modelPath: '/models/x.gguf',
                constraints: 'types',
                maxTokens: 8,
                mode: 'line',
                typeProvider: 'pyright',
                timeoutMs: 1500,
                enabled: false,
                runExamples: false,
                learnWorkspace: false,
                prefetch: false,
                memoryLimitMb: 256,
            }),
        );
        assert.deepStrictEqual(s, {
            modelPath: '/models/x.gguf',
            constraints: 'types',
            maxTokens: 8,
            mode: 'line',
            typeProvider: 'pyright',
            timeoutMs: 1500,
            enabled: false,
            runExamples: false,
            learnWorkspace: false,
            prefetch: false,
            memoryLimitMb: 256,
        });
    });

    it('validates runExamples, learnWorkspace, prefetch and memoryLimitMb', () => {
        const d = readServerSettings(config({ runExamples: 'no', learnWorkspace: 0, prefetch: null, memoryLimitMb: '512' }));
        assert.strictEqual(d.runExamples, true);
        assert.strictEqual(d.learnWorkspace, true);
        assert.strictEqual(d.prefetch, true);
        assert.strictEqual(d.memoryLimitMb, 1024);
        assert.strictEqual(readServerSettings(config({ memoryLimitMb: 1 })).memoryLimitMb, 64);
        assert.strictEqual(readServerSettings(config({ memoryLimitMb: 1e9 })).memoryLimitMb, 65536);
        assert.strictEqual(readServerSettings(config({ memoryLimitMb: 99.6 })).memoryLimitMb, 100);
        assert.strictEqual(readServerSettings(config({ memoryLimitMb: NaN })).memoryLimitMb, 1024);
        assert.strictEqual(readServerSettings(config({ memoryLimitMb: Infinity })).memoryLimitMb, 1024);
        const one = readServerSettings(config({ learnWorkspace: false }));
        assert.deepStrictEqual([one.runExamples, one.learnWorkspace, one.prefetch], [true, false, true]);
    });

    it('forwards the new settings under their camelCase names', () => {
        const s = readServerSettings(config({ runExamples: false, learnWorkspace: false, prefetch: false, memoryLimitMb: 128 }));
        const wire = JSON.parse(JSON.stringify(didChangeConfigurationParams(s))).settings.accs;
        assert.strictEqual(wire.runExamples, false);
        assert.strictEqual(wire.learnWorkspace, false);
        assert.strictEqual(wire.prefetch, false);
        assert.strictEqual(wire.memoryLimitMb, 128);
        assert.strictEqual(configurationItem('accs.runExamples', s), false);
        assert.strictEqual(configurationItem('accs.learnWorkspace', s), false);
        assert.strictEqual(configurationItem('accs.prefetch', s), false);
        assert.strictEqual(configurationItem('accs.memoryLimitMb', s), 128);
        assert.deepStrictEqual(configurationItem('accs', s), s);
    });

    it('replaces invalid values by defaults and clamps numbers', () => {
        const s = readServerSettings(
            config({ constraints: 'strict', maxTokens: 0, mode: 42, typeProvider: null, timeoutMs: 12.7e6, enabled: 'yes' }),
        );
        assert.strictEqual(s.constraints, 'syntax');
        assert.strictEqual(s.maxTokens, 1);
        assert.strictEqual(s.mode, 'auto');
        assert.strictEqual(s.typeProvider, 'jedi');
        assert.strictEqual(s.timeoutMs, 600000);
        assert.strictEqual(s.enabled, true);
        assert.strictEqual(readServerSettings(config({ maxTokens: 7.6 })).maxTokens, 8);
    });

    it('expands ~ and ${workspaceFolder} in modelPath', () => {
        const ctx = { homeDir: '/home/u', workspaceFolder: '/ws' };
        assert.strictEqual(readServerSettings(config({ modelPath: '~/m.gguf' }), ctx).modelPath, '/home/u/m.gguf');
        assert.strictEqual(
            readServerSettings(config({ modelPath: '${workspaceFolder}/models/m.gguf' }), ctx).modelPath,
            '/ws/models/m.gguf',
        );
        assert.strictEqual(expandPath('  ', ctx), '');
        assert.strictEqual(expandPath('~', ctx), '/home/u');
    });

    it('accepts serverCommand as an array or a string', () => {
        assert.deepStrictEqual(readClientSettings(config({ serverCommand: ['a', 'b c'] })).serverCommand, ['a', 'b c']);
        assert.deepStrictEqual(readClientSettings(config({ serverCommand: ' accs-lsp  serve ' })).serverCommand, [
            'accs-lsp',
            'serve',
        ]);
        assert.deepStrictEqual(readClientSettings(config({ serverCommand: [1, 2] })).serverCommand, ['accs-lsp', 'serve']);
        assert.strictEqual(readClientSettings(config({ pythonPath: ' /usr/bin/python3 ' })).pythonPath, '/usr/bin/python3');
    });

    it('builds didChangeConfiguration params as {settings: {accs: {...}}}', () => {
        const s = { ...SERVER_DEFAULTS, maxTokens: 12 };
        const params = didChangeConfigurationParams(s);
        assert.deepStrictEqual(JSON.parse(JSON.stringify(params)), { settings: { accs: { ...SERVER_DEFAULTS, maxTokens: 12 } } });
        assert.notStrictEqual(params.settings.accs, s, 'a copy, not the same object');
    });

    it('answers workspace/configuration items for accs and accs.<key>', () => {
        const s = { ...SERVER_DEFAULTS, mode: 'block' as const };
        assert.deepStrictEqual(configurationItem('accs', s), s);
        assert.strictEqual(configurationItem('accs.mode', s), 'block');
        assert.strictEqual(configurationItem('accs.serverCommand', s), undefined);
        assert.strictEqual(configurationItem('python', s), undefined);
        assert.strictEqual(configurationItem(undefined, s), undefined);
    });

    it('classifies configuration changes', () => {
        const event = (...sections: string[]) => ({
            affectsConfiguration: (s: string) => sections.some((x) => x === s || x.startsWith(s + '.')),
        });
        assert.strictEqual(classifyChange(event('editor.fontSize')), 'none');
        assert.strictEqual(classifyChange(event('accs.maxTokens')), 'server');
        assert.strictEqual(classifyChange(event('accs.enabled')), 'server');
        assert.strictEqual(classifyChange(event('accs.runExamples')), 'server');
        assert.strictEqual(classifyChange(event('accs.memoryLimitMb')), 'server');
        assert.strictEqual(classifyChange(event('accs.pythonPath')), 'launch');
        assert.strictEqual(classifyChange(event('accs.serverCommand', 'accs.mode')), 'launch');
    });

    describe('toggleEnabled', () => {
        beforeEach(() => stub.reset(manifestDefaults()));

        it('flips the user setting when no workspace value exists', async () => {
            const cfg = vscode.workspace.getConfiguration('accs');
            assert.strictEqual(await toggleEnabled(cfg as never), false);
            assert.strictEqual(vscode.workspace.getConfiguration('accs').get('enabled'), false);
            assert.strictEqual(cfg.inspect('enabled')?.globalValue, false);
            assert.strictEqual(await toggleEnabled(cfg as never), true);
            assert.strictEqual(cfg.get('enabled'), true);
        });

        it('writes to the workspace when the workspace sets it', async () => {
            stub.configuration.set('accs.enabled', false, vscode.ConfigurationTarget.Workspace);
            const cfg = vscode.workspace.getConfiguration('accs');
            assert.strictEqual(await toggleEnabled(cfg as never), true);
            assert.strictEqual(cfg.inspect('enabled')?.workspaceValue, true);
            assert.strictEqual(cfg.inspect('enabled')?.globalValue, undefined);
        });
    });
});
