/**
 * Which process the extension starts as the language server, and what to tell
 * the user when it cannot be started.  No `vscode` import.
 */
import * as fs from 'fs';
import * as path from 'path';
import { ClientSettings, PathContext, expandPath } from './settings';

export interface ServerLaunch {
    command: string;
    args: string[];
    /** Which setting the command came from (for error messages). */
    source: 'accs.pythonPath' | 'accs.serverCommand';
}

export class ServerCommandError extends Error {}

/**
 * `accs.pythonPath` wins when set (`<python> -m accs_lsp serve`); otherwise
 * `accs.serverCommand` (default `["accs-lsp", "serve"]`).
 */
export function resolveServerLaunch(
    settings: Pick<ClientSettings, 'serverCommand' | 'pythonPath'>,
    ctx: PathContext = {},
): ServerLaunch {
    const python = settings.pythonPath.trim();
    if (python !== '') {
        return {
            command: expandPath(python, ctx),
            args: ['-m', 'accs_lsp', 'serve'],
            source: 'accs.pythonPath',
        };
    }
    const parts = settings.serverCommand.map((part) => part.trim()).filter((part) => part !== '');
    if (parts.length === 0) {
        throw new ServerCommandError(
            'accs.serverCommand is empty: set it to the command that starts the server, e.g. ["accs-lsp", "serve"], or set accs.pythonPath.',
        );
    }
    return {
        command: expandPath(parts[0], ctx),
        args: parts.slice(1).map((arg) => expandPath(arg, ctx)),
        source: 'accs.serverCommand',
    };
}

export function formatLaunch(launch: Pick<ServerLaunch, 'command' | 'args'>): string {
    return [launch.command, ...launch.args].map((p) => (/\s/.test(p) ? JSON.stringify(p) : p)).join(' ');
}

export interface LookupEnv {
    env?: NodeJS.ProcessEnv;
    platform?: NodeJS.Platform;
    cwd?: string;
    isExecutable?: (file: string) => boolean;
}

function defaultIsExecutable(file: string): boolean {
    try {
        const st = fs.statSync(file);
        if (!st.isFile()) {
            return false;
        }
        if (process.platform === 'win32') {
            return true;
        }
        fs.accessSync(file, fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

/**
 * Where `command` would be found when spawned: the file itself for a path,
 * the first match on PATH for a bare name; undefined when nothing matches.
 */
export function findExecutable(command: string, lookup: LookupEnv = {}): string | undefined {
    const env = lookup.env ?? process.env;
    const platform = lookup.platform ?? process.platform;
    const isExecutable = lookup.isExecutable ?? defaultIsExecutable;
    const pathApi = platform === 'win32' ? path.win32 : path.posix;
    const extensions =
        platform === 'win32'
            ? ['', ...(env.PATHEXT ?? '.COM;.EXE;.BAT;.CMD').split(';').filter((e) => e !== '')]
            : [''];
    const hasDir = command.includes('/') || (platform === 'win32' && command.includes('\\'));
    if (hasDir) {
        const full = pathApi.isAbsolute(command) ? command : pathApi.resolve(lookup.cwd ?? process.cwd(), command);
        return extensions.map((ext) => full + ext).find(isExecutable);
    }
    const pathVar = env.PATH ?? env.Path ?? '';
    for (const dir of pathVar.split(pathApi.delimiter)) {
        if (dir === '') {
            continue;
        }
        for (const ext of extensions) {
            const candidate = pathApi.join(dir, command + ext);
            if (isExecutable(candidate)) {
                return candidate;
            }
        }
    }
    return undefined;
}

const INSTALL_HINT =
    'Install the server with `pip install accs-lsp` (in the environment VS Code starts from), ' +
    'or set "accs.serverCommand" to its full command line, or "accs.pythonPath" to a Python that has accs-lsp installed.';

/** Message when the executable does not exist; undefined when it does. */
export function checkLaunch(launch: ServerLaunch, lookup: LookupEnv = {}): string | undefined {
    if (findExecutable(launch.command, lookup) !== undefined) {
        return undefined;
    }
    const where = launch.command.includes('/') || launch.command.includes('\\') ? 'does not exist or is not executable' : 'was not found on PATH';
    return `ACCS: cannot start the language server: "${launch.command}" (from ${launch.source}) ${where}. ${INSTALL_HINT}`;
}

/** Message when the process started but the client could not initialize it. */
export function describeStartFailure(launch: ServerLaunch, error: unknown): string {
    const detail = error instanceof Error ? error.message : String(error);
    const hint =
        launch.source === 'accs.pythonPath'
            ? `Check that accs-lsp is installed for ${launch.command} (\`${launch.command} -m pip install accs-lsp\`).`
            : INSTALL_HINT;
    return `ACCS: the language server \`${formatLaunch(launch)}\` failed to start: ${detail}. ${hint} The "ACCS" output channel shows the server's stderr.`;
}
