/**
 * Mapping between VS Code's `accs.*` configuration and the settings object the
 * server understands.  Pure functions: no `vscode` import, so they are tested
 * without VS Code.
 *
 * On the wire the server receives the same camelCase names as in VS Code
 * (without the `accs.` prefix):
 *   - `initializationOptions`: the flat object `{modelPath, constraints, ...}`
 *   - `workspace/didChangeConfiguration`: `{"settings": {"accs": {...}}}`
 *   - `workspace/configuration` for section "accs": the flat object.
 */
import * as os from 'os';
import * as path from 'path';

export const SECTION = 'accs';

export const CONSTRAINTS = ['none', 'syntax', 'types', 'full'] as const;
export const MODES = ['auto', 'line', 'block'] as const;
export const TYPE_PROVIDERS = ['jedi', 'pyright'] as const;

export type Constraints = (typeof CONSTRAINTS)[number];
export type Mode = (typeof MODES)[number];
export type TypeProvider = (typeof TYPE_PROVIDERS)[number];

/** Settings sent to the server. */
export interface ServerSettings {
    modelPath: string;
    constraints: Constraints;
    maxTokens: number;
    mode: Mode;
    typeProvider: TypeProvider;
    timeoutMs: number;
    enabled: boolean;
    /** At constraints full: run the candidates against the function's examples in a sandbox. */
    runExamples: boolean;
    /** Learn the workspace folders in the background (and a file when saved). */
    learnWorkspace: boolean;
    /** Compute the next suggestion in the background as if the one shown were accepted. */
    prefetch: boolean;
    /** MiB the server's caches may hold. */
    memoryLimitMb: number;
}

/** Settings used only by the extension itself. */
export interface ClientSettings {
    serverCommand: string[];
    pythonPath: string;
    debounceMs: number;
}

export const SERVER_DEFAULTS: Readonly<ServerSettings> = Object.freeze({
    modelPath: '',
    constraints: 'syntax',
    maxTokens: 64,
    mode: 'auto',
    typeProvider: 'jedi',
    timeoutMs: 3000,
    enabled: true,
    runExamples: true,
    learnWorkspace: true,
    prefetch: true,
    memoryLimitMb: 1024,
});

/** Bounds of `memoryLimitMb` (the server refuses values outside them). */
export const MEMORY_LIMIT_MB_MIN = 64;
export const MEMORY_LIMIT_MB_MAX = 65536;

export const CLIENT_DEFAULTS: Readonly<ClientSettings> = Object.freeze({
    serverCommand: ['accs-lsp', 'serve'],
    pythonPath: '',
    debounceMs: 75,
});

/**
 * The server rejects a settings change (all of it) when contextTokens + maxTokens
 * reaches contextWindow (defaults 1024 and 2048), so maxTokens is clamped below that.
 */
export const MAX_TOKENS_LIMIT = 1023;

export const SERVER_SETTING_KEYS = Object.keys(SERVER_DEFAULTS) as (keyof ServerSettings)[];

/** Settings whose change needs a new server process. */
export const LAUNCH_SETTING_KEYS = ['serverCommand', 'pythonPath'] as const;

/** The part of `vscode.WorkspaceConfiguration` used here. */
export interface ConfigurationLike {
    get<T>(key: string): T | undefined;
}

/** Values substituted in paths: `~` and `${workspaceFolder}`. */
export interface PathContext {
    workspaceFolder?: string;
    homeDir?: string;
}

export function expandPath(value: string, ctx: PathContext = {}): string {
    let result = value.trim();
    if (result === '') {
        return result;
    }
    const home = ctx.homeDir ?? os.homedir();
    if (result === '~') {
        result = home;
    } else if (result.startsWith('~/') || result.startsWith('~\\')) {
        result = path.join(home, result.slice(2));
    }
    if (ctx.workspaceFolder !== undefined) {
        result = result.split('${workspaceFolder}').join(ctx.workspaceFolder);
    }
    result = result.split('${userHome}').join(home);
    return result;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
    return typeof value === 'string' && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

function integer(value: unknown, fallback: number, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
        return fallback;
    }
    return Math.min(max, Math.max(min, Math.round(value)));
}

function bool(value: unknown, fallback: boolean): boolean {
    return typeof value === 'boolean' ? value : fallback;
}

function str(value: unknown, fallback: string): string {
    return typeof value === 'string' ? value : fallback;
}

/** Reads and validates the server settings; invalid values fall back to the defaults. */
export function readServerSettings(config: ConfigurationLike, ctx: PathContext = {}): ServerSettings {
    const d = SERVER_DEFAULTS;
    return {
        modelPath: expandPath(str(config.get('modelPath'), d.modelPath), ctx),
        constraints: oneOf(config.get('constraints'), CONSTRAINTS, d.constraints),
        maxTokens: integer(config.get('maxTokens'), d.maxTokens, 1, MAX_TOKENS_LIMIT),
        mode: oneOf(config.get('mode'), MODES, d.mode),
        typeProvider: oneOf(config.get('typeProvider'), TYPE_PROVIDERS, d.typeProvider),
        timeoutMs: integer(config.get('timeoutMs'), d.timeoutMs, 100, 600_000),
        enabled: bool(config.get('enabled'), d.enabled),
        runExamples: bool(config.get('runExamples'), d.runExamples),
        learnWorkspace: bool(config.get('learnWorkspace'), d.learnWorkspace),
        prefetch: bool(config.get('prefetch'), d.prefetch),
        memoryLimitMb: integer(config.get('memoryLimitMb'), d.memoryLimitMb, MEMORY_LIMIT_MB_MIN, MEMORY_LIMIT_MB_MAX),
    };
}

export function readClientSettings(config: ConfigurationLike): ClientSettings {
    const d = CLIENT_DEFAULTS;
    const raw = config.get<unknown>('serverCommand');
    const serverCommand =
        Array.isArray(raw) && raw.every((part) => typeof part === 'string')
            ? (raw as string[])
            : typeof raw === 'string' && raw.trim() !== ''
              ? raw.trim().split(/\s+/)
              : [...d.serverCommand];
    return {
        serverCommand,
        pythonPath: str(config.get('pythonPath'), d.pythonPath).trim(),
        debounceMs: integer(config.get('debounceMs'), d.debounceMs, 0, 2000),
    };
}

/** Params of `workspace/didChangeConfiguration`. */
export function didChangeConfigurationParams(settings: ServerSettings): { settings: { accs: ServerSettings } } {
    return { settings: { [SECTION]: { ...settings } } as { accs: ServerSettings } };
}

/** Answer to one `workspace/configuration` item for the server's own sections, or undefined. */
export function configurationItem(section: string | undefined, settings: ServerSettings): unknown {
    if (section === SECTION) {
        return { ...settings };
    }
    if (section !== undefined && section.startsWith(SECTION + '.')) {
        const key = section.slice(SECTION.length + 1);
        if ((SERVER_SETTING_KEYS as string[]).includes(key)) {
            return settings[key as keyof ServerSettings];
        }
    }
    return undefined;
}

/** The part of `vscode.ConfigurationChangeEvent` used here. */
export interface ChangeEventLike {
    affectsConfiguration(section: string): boolean;
}

export type ConfigChange = 'none' | 'server' | 'launch';

/** What a configuration change means for the running server. */
export function classifyChange(event: ChangeEventLike): ConfigChange {
    if (!event.affectsConfiguration(SECTION)) {
        return 'none';
    }
    if (LAUNCH_SETTING_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
        return 'launch';
    }
    return 'server';
}

/** The part of `vscode.WorkspaceConfiguration` needed to flip `accs.enabled`. */
export interface UpdatableConfiguration extends ConfigurationLike {
    inspect<T>(key: string):
        | { workspaceFolderValue?: T; workspaceValue?: T; globalValue?: T; defaultValue?: T }
        | undefined;
    update(key: string, value: unknown, target?: number | boolean): Thenable<void>;
}

/** `vscode.ConfigurationTarget` values (Global = 1, Workspace = 2, WorkspaceFolder = 3). */
export const ConfigurationTarget = { Global: 1, Workspace: 2, WorkspaceFolder: 3 } as const;

/**
 * Flips `accs.enabled` at the most specific level where it is set (so that a
 * workspace value is not shadowing a change written to the user settings).
 * Returns the new value.
 */
export async function toggleEnabled(config: UpdatableConfiguration): Promise<boolean> {
    const current = bool(config.get('enabled'), true);
    const next = !current;
    const info = config.inspect<boolean>('enabled');
    let target: number = ConfigurationTarget.Global;
    if (info?.workspaceFolderValue !== undefined) {
        target = ConfigurationTarget.WorkspaceFolder;
    } else if (info?.workspaceValue !== undefined) {
        target = ConfigurationTarget.Workspace;
    }
    await config.update('enabled', next, target);
    return next;
}
