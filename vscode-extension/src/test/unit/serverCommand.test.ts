import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
    ServerCommandError,
    checkLaunch,
    describeStartFailure,
    findExecutable,
    formatLaunch,
    resolveServerLaunch,
} from '../../serverCommand';

describe('server command', () => {
    it('defaults to accs-lsp serve', () => {
        const launch = resolveServerLaunch({ serverCommand: ['accs-lsp', 'serve'], pythonPath: '' });
        assert.deepStrictEqual(launch, { command: 'accs-lsp', args: ['serve'], source: 'accs.serverCommand' });
        assert.strictEqual(formatLaunch(launch), 'accs-lsp serve');
    });

    it('uses <python> -m accs_lsp serve when pythonPath is set', () => {
        const launch = resolveServerLaunch({ serverCommand: ['accs-lsp', 'serve'], pythonPath: '/venv/bin/python' });
        assert.deepStrictEqual(launch, {
            command: '/venv/bin/python',
            args: ['-m', 'accs_lsp', 'serve'],
            source: 'accs.pythonPath',
        });
    });

    it('expands ~ and ${workspaceFolder} and keeps extra arguments', () => {
        const ctx = { homeDir: '/home/u', workspaceFolder: '/ws' };
        assert.deepStrictEqual(
            resolveServerLaunch({ serverCommand: ['~/bin/accs-lsp', 'serve', '--model', '${workspaceFolder}/m.gguf'], pythonPath: '' }, ctx),
            { command: '/home/u/bin/accs-lsp', args: ['serve', '--model', '/ws/m.gguf'], source: 'accs.serverCommand' },
        );
        assert.strictEqual(resolveServerLaunch({ serverCommand: [], pythonPath: '${workspaceFolder}/.venv/bin/python' }, ctx).command, '/ws/.venv/bin/python');
        assert.strictEqual(formatLaunch({ command: '/a b/python', args: ['-m', 'x'] }), '"/a b/python" -m x');
    });

    it('rejects an empty serverCommand with a clear message', () => {
        assert.throws(
            () => resolveServerLaunch({ serverCommand: ['', ' '], pythonPath: '' }),
            (e: unknown) => e instanceof ServerCommandError && /accs\.serverCommand is empty/.test(e.message),
        );
    });

    describe('executable lookup', () => {
        let dir: string;
        before(() => {
            dir = fs.mkdtempSync(path.join(os.tmpdir(), 'accs-cmd-'));
            fs.writeFileSync(path.join(dir, 'accs-lsp'), '#!/bin/sh\n', { mode: 0o755 });
            fs.writeFileSync(path.join(dir, 'not-exec'), 'x', { mode: 0o644 });
        });
        after(() => fs.rmSync(dir, { recursive: true, force: true }));

        it('searches PATH for bare names', () => {
            const env = { PATH: ['/nonexistent', dir].join(path.delimiter) };
            assert.strictEqual(findExecutable('accs-lsp', { env }), path.join(dir, 'accs-lsp'));
            assert.strictEqual(findExecutable('missing-tool', { env }), undefined);
            if (process.platform !== 'win32') {
                assert.strictEqual(findExecutable('not-exec', { env }), undefined);
            }
        });

        it('checks paths directly, relative to cwd', () => {
            assert.strictEqual(findExecutable(path.join(dir, 'accs-lsp'), { env: { PATH: '' } }), path.join(dir, 'accs-lsp'));
            assert.strictEqual(findExecutable('./accs-lsp', { env: { PATH: '' }, cwd: dir }), path.join(dir, 'accs-lsp'));
            assert.strictEqual(findExecutable(path.join(dir, 'nope'), { env: { PATH: dir } }), undefined);
        });

        it('uses PATHEXT on Windows', () => {
            const seen: string[] = [];
            const found = findExecutable('accs-lsp', {
                env: { PATH: 'C:\\tools', PATHEXT: '.EXE;.CMD' },
                platform: 'win32',
                isExecutable: (f) => {
                    seen.push(f);
                    return f.endsWith('.CMD');
                },
            });
            assert.strictEqual(found, 'C:\\tools\\accs-lsp.CMD');
            assert.deepStrictEqual(seen, ['C:\\tools\\accs-lsp', 'C:\\tools\\accs-lsp.EXE', 'C:\\tools\\accs-lsp.CMD']);
        });

        it('explains a missing server command', () => {
            const env = { PATH: dir };
            assert.strictEqual(checkLaunch({ command: 'accs-lsp', args: ['serve'], source: 'accs.serverCommand' }, { env }), undefined);
            const msg = checkLaunch({ command: 'nope-lsp', args: ['serve'], source: 'accs.serverCommand' }, { env });
            assert.match(msg ?? '', /"nope-lsp" \(from accs\.serverCommand\) was not found on PATH/);
            assert.match(msg ?? '', /pip install accs-lsp/);
            assert.match(msg ?? '', /accs\.pythonPath/);
            const py = checkLaunch({ command: '/no/python', args: ['-m', 'accs_lsp', 'serve'], source: 'accs.pythonPath' }, { env });
            assert.match(py ?? '', /"\/no\/python" \(from accs\.pythonPath\) does not exist or is not executable/);
        });

        it('explains a failed start', () => {
            const msg = describeStartFailure(
                { command: '/venv/bin/python', args: ['-m', 'accs_lsp', 'serve'], source: 'accs.pythonPath' },
                new Error('Connection closed'),
            );
            assert.match(msg, /`\/venv\/bin\/python -m accs_lsp serve` failed to start: Connection closed/);
            assert.match(msg, /\/venv\/bin\/python -m pip install accs-lsp/);
        });
    });
});
