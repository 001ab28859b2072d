/**
 * A small in-memory stand-in for the `vscode` module, installed with mocha's
 * `--require` so that `require('vscode')` works in plain Node.  It implements
 * what the extension's own modules use; tests read and reset its state through
 * the exported `stub` object.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import Module = require('module');

type Listener<T> = (e: T) => any;

export class Disposable {
    constructor(private readonly fn: () => void = () => undefined) {}
    static from(...items: { dispose(): any }[]): Disposable {
        return new Disposable(() => items.forEach((i) => i.dispose()));
    }
    dispose(): void {
        this.fn();
    }
}

export class EventEmitter<T> {
    private listeners: Listener<T>[] = [];
    event = (listener: Listener<T>, thisArgs?: unknown, disposables?: Disposable[]): Disposable => {
        const bound: Listener<T> = thisArgs === undefined ? listener : listener.bind(thisArgs);
        this.listeners.push(bound);
        const disposable = new Disposable(() => {
            this.listeners = this.listeners.filter((l) => l !== bound);
        });
        disposables?.push(disposable);
        return disposable;
    };
    fire(e: T): void {
        for (const l of [...this.listeners]) {
            l(e);
        }
    }
    dispose(): void {
        this.listeners = [];
    }
}

export class CancellationTokenSource {
    private emitter = new EventEmitter<void>();
    private cancelled = false;
    token = {
        isCancellationRequested: false,
        onCancellationRequested: this.emitter.event,
    };
    cancel(): void {
        if (!this.cancelled) {
            this.cancelled = true;
            this.token.isCancellationRequested = true;
            this.emitter.fire();
        }
    }
    dispose(): void {
        this.emitter.dispose();
    }
}

export class CancellationError extends Error {
    constructor() {
        super('Canceled');
        this.name = 'Canceled';
    }
}

export class Position {
    constructor(
        public readonly line: number,
        public readonly character: number,
    ) {}
}

export class Range {
    readonly start: Position;
    readonly end: Position;
    constructor(a: any, b: any, c?: number, d?: number) {
        if (typeof a === 'number') {
            this.start = new Position(a, b);
            this.end = new Position(c as number, d as number);
        } else {
            this.start = a;
            this.end = b;
        }
    }
}

export class SnippetString {
    constructor(public value: string = '') {}
}

export class InlineCompletionItem {
    filterText?: string;
    constructor(
        public insertText: string | SnippetString,
        public range?: Range,
        public command?: { title: string; command: string; arguments?: any[] },
    ) {}
}

export class CompletionItem {
    [key: string]: any;
    constructor(
        public label: string | { label: string },
        public kind?: number,
    ) {}
}

export class CompletionList {
    constructor(
        public items: CompletionItem[] = [],
        public isIncomplete = false,
    ) {}
}

export class TextEdit {
    constructor(
        public range: Range,
        public newText: string,
    ) {}
    static replace(range: Range, newText: string): TextEdit {
        return new TextEdit(range, newText);
    }
    static insert(position: Position, newText: string): TextEdit {
        return new TextEdit(new Range(position, position), newText);
    }
}

export class MarkdownString {
    isTrusted?: boolean;
    supportHtml?: boolean;
    supportThemeIcons?: boolean;
    constructor(public value: string = '') {}
    appendText(text: string): this {
        this.value += text;
        return this;
    }
    appendMarkdown(text: string): this {
        this.value += text;
        return this;
    }
    appendCodeblock(code: string, language = ''): this {
        this.value += `\n\`\`\`${language}\n${code}\n\`\`\`\n`;
        return this;
    }
}

export class InlineCompletionList {
    constructor(public items: InlineCompletionItem[]) {}
}

export class Uri {
    private constructor(
        public readonly scheme: string,
        public readonly authority: string,
        public readonly path: string,
        public readonly query: string,
        public readonly fragment: string,
    ) {}
    static parse(value: string): Uri {
        const u = new URL(value);
        return new Uri(
            u.protocol.replace(/:$/, ''),
            u.host,
            decodeURIComponent(u.pathname),
            u.search.replace(/^\?/, ''),
            u.hash.replace(/^#/, ''),
        );
    }
    static file(fsPath: string): Uri {
        return new Uri('file', '', fsPath.replace(/\\/g, '/'), '', '');
    }
    get fsPath(): string {
        return this.path;
    }
    with(change: { scheme?: string; authority?: string; path?: string; query?: string; fragment?: string }): Uri {
        return new Uri(
            change.scheme ?? this.scheme,
            change.authority ?? this.authority,
            change.path ?? this.path,
            change.query ?? this.query,
            change.fragment ?? this.fragment,
        );
    }
    toString(): string {
        const q = this.query ? `?${this.query}` : '';
        const f = this.fragment ? `#${this.fragment}` : '';
        return `${this.scheme}://${this.authority}${encodeURI(this.path)}${q}${f}`;
    }
    toJSON(): unknown {
        return { scheme: this.scheme, authority: this.authority, path: this.path, query: this.query, fragment: this.fragment };
    }
}

/** An in-memory TextDocument; `edit` changes it and fires onDidChangeTextDocument. */
export class StubTextDocument {
    version = 1;
    isDirty = false;
    isClosed = false;
    isUntitled = false;
    eol = 1;
    constructor(
        public readonly uri: Uri,
        public readonly languageId: string,
        private text: string,
    ) {}
    get fileName(): string {
        return this.uri.fsPath;
    }
    get lineCount(): number {
        return this.lines().length;
    }
    private lines(): string[] {
        return this.text.split('\n');
    }
    getText(range?: Range): string {
        if (range === undefined) {
            return this.text;
        }
        return this.text.slice(this.offsetAt(range.start), this.offsetAt(range.end));
    }
    lineAt(lineOrPos: number | Position) {
        const line = typeof lineOrPos === 'number' ? lineOrPos : lineOrPos.line;
        const text = this.lines()[line];
        return {
            lineNumber: line,
            text,
            range: new Range(line, 0, line, text.length),
            rangeIncludingLineBreak: new Range(line, 0, line + 1, 0),
            firstNonWhitespaceCharacterIndex: text.length - text.trimStart().length,
            isEmptyOrWhitespace: text.trim() === '',
        };
    }
    offsetAt(position: Position): number {
        const lines = this.lines();
        let offset = 0;
        for (let i = 0; i < position.line && i < lines.length; i++) {
            offset += lines[i].length + 1;
        }
        return offset + Math.min(position.character, (lines[position.line] ?? '').length);
    }
    positionAt(offset: number): Position {
        const before = this.text.slice(0, offset).split('\n');
        return new Position(before.length - 1, before[before.length - 1].length);
    }
    validatePosition(position: Position): Position {
        return position;
    }
    validateRange(range: Range): Range {
        return range;
    }
    getWordRangeAtPosition(): Range | undefined {
        return undefined;
    }
    save(): Promise<boolean> {
        return Promise.resolve(true);
    }
    /** Replaces `range` by `text` (positions in UTF-16 units, as in VS Code). */
    edit(range: Range, text: string): void {
        const start = this.offsetAt(range.start);
        const end = this.offsetAt(range.end);
        this.text = this.text.slice(0, start) + text + this.text.slice(end);
        this.version += 1;
        stub.events.didChangeTextDocument.fire({
            document: this,
            contentChanges: [{ range, rangeOffset: start, rangeLength: end - start, text }],
            reason: undefined,
        });
    }
}

export class ThemeColor {
    constructor(public readonly id: string) {}
}

export enum StatusBarAlignment {
    Left = 1,
    Right = 2,
}

export enum ConfigurationTarget {
    Global = 1,
    Workspace = 2,
    WorkspaceFolder = 3,
}

export class StubStatusBarItem {
    text = '';
    tooltip: string | undefined;
    command: string | undefined;
    name: string | undefined;
    backgroundColor: ThemeColor | undefined;
    visible = false;
    disposed = false;
    constructor(
        public readonly id: string,
        public readonly alignment: StatusBarAlignment,
        public readonly priority: number,
    ) {}
    show(): void {
        this.visible = true;
    }
    hide(): void {
        this.visible = false;
    }
    dispose(): void {
        this.disposed = true;
    }
}

interface Layers {
    defaultValue?: any;
    globalValue?: any;
    workspaceValue?: any;
    workspaceFolderValue?: any;
}

/** Configuration store with VS Code's layering (folder > workspace > global > default). */
export class StubConfiguration {
    private layers = new Map<string, Layers>();
    private changeEmitter = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();
    onDidChange = this.changeEmitter.event;

    reset(defaults: Record<string, any> = {}): void {
        this.layers.clear();
        for (const [key, value] of Object.entries(defaults)) {
            this.layers.set(key, { defaultValue: value });
        }
    }

    effective(key: string): any {
        const l = this.layers.get(key);
        if (l === undefined) {
            return undefined;
        }
        for (const v of [l.workspaceFolderValue, l.workspaceValue, l.globalValue, l.defaultValue]) {
            if (v !== undefined) {
                return v;
            }
        }
        return undefined;
    }

    set(key: string, value: any, target: ConfigurationTarget = ConfigurationTarget.Global): void {
        const l = this.layers.get(key) ?? {};
        if (target === ConfigurationTarget.WorkspaceFolder) {
            l.workspaceFolderValue = value;
        } else if (target === ConfigurationTarget.Workspace) {
            l.workspaceValue = value;
        } else {
            l.globalValue = value;
        }
        this.layers.set(key, l);
        this.changeEmitter.fire({
            affectsConfiguration: (section: string) => section === key || key.startsWith(section + '.'),
        });
    }

    section(prefix: string | undefined): any {
        const full = (key: string) => (prefix ? `${prefix}.${key}` : key);
        const store = this;
        const view: any = {
            get(key: string, defaultValue?: any) {
                const v = store.effective(full(key));
                return v === undefined ? defaultValue : v;
            },
            has(key: string) {
                return store.effective(full(key)) !== undefined;
            },
            inspect(key: string) {
                const l = store.layers.get(full(key));
                return l === undefined ? undefined : { key: full(key), ...l };
            },
            update(key: string, value: any, target?: ConfigurationTarget | boolean) {
                const t =
                    target === true || target === undefined
                        ? ConfigurationTarget.Global
                        : target === false
                          ? ConfigurationTarget.Workspace
                          : target;
                store.set(full(key), value, t);
                return Promise.resolve();
            },
        };
        return view;
    }
}

export const stub = {
    configuration: new StubConfiguration(),
    statusBarItems: [] as StubStatusBarItem[],
    commands: new Map<string, (...args: any[]) => any>(),
    executedCommands: [] as { command: string; args: any[] }[],
    errorMessages: [] as string[],
    statusBarMessages: [] as string[],
    outputLines: [] as string[],
    /** Providers registered through `languages.register*`. */
    providers: {
        inline: [] as { selector: any; provider: any }[],
        completion: [] as { selector: any; provider: any; triggerCharacters: string[] }[],
    },
    documents: [] as StubTextDocument[],
    progress: [] as { title?: string; reports: any[]; done: boolean }[],
    events: {
        didOpenTextDocument: new EventEmitter<any>(),
        didCloseTextDocument: new EventEmitter<any>(),
        didChangeTextDocument: new EventEmitter<any>(),
        didSaveTextDocument: new EventEmitter<any>(),
        willSaveTextDocument: new EventEmitter<any>(),
    },
    openDocument(uri: Uri, languageId: string, text: string): StubTextDocument {
        const doc = new StubTextDocument(uri, languageId, text);
        this.documents.push(doc);
        this.events.didOpenTextDocument.fire(doc);
        return doc;
    },
    closeDocument(doc: StubTextDocument): void {
        this.documents.splice(this.documents.indexOf(doc), 1);
        doc.isClosed = true;
        this.events.didCloseTextDocument.fire(doc);
    },
    reset(defaults: Record<string, any> = {}): void {
        this.providers.inline.length = 0;
        this.providers.completion.length = 0;
        this.documents.length = 0;
        this.progress.length = 0;
        this.configuration.reset(defaults);
        this.statusBarItems.length = 0;
        this.commands.clear();
        this.executedCommands.length = 0;
        this.errorMessages.length = 0;
        this.statusBarMessages.length = 0;
        this.outputLines.length = 0;
    },
};

/**
 * A namespace object whose unknown members are no-ops: `onX` events and
 * `registerX` / `createX` functions return disposables, anything else returns undefined.
 */
function namespace<T extends object>(name: string, members: T): T {
    return new Proxy(members, {
        get(target: any, prop) {
            if (prop in target || typeof prop === 'symbol') {
                return target[prop];
            }
            if (/^on[A-Z]/.test(prop)) {
                return () => new Disposable();
            }
            if (/^(register|create)[A-Z]/.test(prop)) {
                return () =>
                    new Proxy(new Disposable(), {
                        get(d: any, p) {
                            return p in d ? d[p] : /^on[A-Z]/.test(String(p)) ? () => new Disposable() : undefined;
                        },
                    });
            }
            return () => undefined;
        },
    }) as T;
}

export const vscodeApi = {
    Disposable,
    EventEmitter,
    CancellationTokenSource,
    CancellationError,
    Position,
    Range,
    SnippetString,
    InlineCompletionItem,
    InlineCompletionList,
    CompletionItem,
    CompletionList,
    TextEdit,
    MarkdownString,
    CompletionItemKind: Object.fromEntries(
        ['Text', 'Method', 'Function', 'Constructor', 'Field', 'Variable', 'Class', 'Interface', 'Module', 'Property', 'Unit', 'Value', 'Enum', 'Keyword', 'Snippet'].map((k, i) => [k, i]),
    ),
    ThemeColor,
    StatusBarAlignment,
    ConfigurationTarget,
    Uri,
    version: '1.95.0',
    InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
    CompletionTriggerKind: { Invoke: 0, TriggerCharacter: 1, TriggerForIncompleteCompletions: 2 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
    env: { appName: 'vscode-stub', language: 'en', machineId: 'stub', sessionId: 'stub', openExternal: () => Promise.resolve(false) },
    languages: namespace('languages', {
        match(selector: any, document: StubTextDocument): number {
            const filters = Array.isArray(selector) ? selector : [selector];
            return filters.some((f: any) =>
                typeof f === 'string'
                    ? f === document.languageId
                    : (f.language === undefined || f.language === document.languageId) &&
                      (f.scheme === undefined || f.scheme === document.uri.scheme),
            )
                ? 10
                : 0;
        },
        registerInlineCompletionItemProvider(selector: any, provider: any) {
            const entry = { selector, provider };
            stub.providers.inline.push(entry);
            return new Disposable(() => stub.providers.inline.splice(stub.providers.inline.indexOf(entry), 1));
        },
        registerCompletionItemProvider(selector: any, provider: any, ...triggerCharacters: string[]) {
            const entry = { selector, provider, triggerCharacters };
            stub.providers.completion.push(entry);
            return new Disposable(() => stub.providers.completion.splice(stub.providers.completion.indexOf(entry), 1));
        },
        createDiagnosticCollection(name: string) {
            const map = new Map<string, any>();
            return {
                name,
                set: (uri: any, d: any) => map.set(String(uri), d),
                delete: (uri: any) => map.delete(String(uri)),
                clear: () => map.clear(),
                forEach: () => undefined,
                get: (uri: any) => map.get(String(uri)),
                has: (uri: any) => map.has(String(uri)),
                dispose: () => map.clear(),
            };
        },
    }),
    window: namespace('window', {
        activeTextEditor: undefined,
        visibleTextEditors: [],
        tabGroups: { all: [], onDidChangeTabs: () => new Disposable(), onDidChangeTabGroups: () => new Disposable() },
        withProgress(options: any, task: (progress: any, token: any) => Thenable<any>) {
            const record = { title: options?.title, reports: [] as any[], done: false };
            stub.progress.push(record);
            const result = task({ report: (value: any) => record.reports.push(value) }, new CancellationTokenSource().token);
            return Promise.resolve(result).finally(() => {
                record.done = true;
            });
        },
        createStatusBarItem(idOrAlignment: any, alignmentOrPriority?: any, priority?: any) {
            const item =
                typeof idOrAlignment === 'string'
                    ? new StubStatusBarItem(idOrAlignment, alignmentOrPriority, priority)
                    : new StubStatusBarItem('', idOrAlignment, alignmentOrPriority);
            stub.statusBarItems.push(item);
            return item;
        },
        createOutputChannel(name: string) {
            return {
                name,
                append: (s: string) => stub.outputLines.push(s),
                appendLine: (s: string) => stub.outputLines.push(s),
                trace: (s: string) => stub.outputLines.push(s),
                debug: (s: string) => stub.outputLines.push(s),
                info: (s: string) => stub.outputLines.push(s),
                warn: (s: string) => stub.outputLines.push(s),
                error: (s: any) => stub.outputLines.push(String(s)),
                logLevel: 2,
                onDidChangeLogLevel: () => new Disposable(),
                clear: () => undefined,
                show: () => undefined,
                hide: () => undefined,
                dispose: () => undefined,
                replace: () => undefined,
            };
        },
        showErrorMessage(message: string) {
            stub.errorMessages.push(message);
            return Promise.resolve(undefined);
        },
        showWarningMessage: () => Promise.resolve(undefined),
        showInformationMessage: () => Promise.resolve(undefined),
        setStatusBarMessage(message: string) {
            stub.statusBarMessages.push(message);
            return new Disposable();
        },
    }),
    workspace: namespace('workspace', {
        workspaceFolders: undefined as any,
        get textDocuments() {
            return [...stub.documents];
        },
        notebookDocuments: [],
        onDidOpenTextDocument: stub.events.didOpenTextDocument.event,
        onDidCloseTextDocument: stub.events.didCloseTextDocument.event,
        onDidChangeTextDocument: stub.events.didChangeTextDocument.event,
        onDidSaveTextDocument: stub.events.didSaveTextDocument.event,
        onWillSaveTextDocument: stub.events.willSaveTextDocument.event,
        getWorkspaceFolder: () => undefined,
        applyEdit: () => Promise.resolve(false),
        getConfiguration(section?: string) {
            return stub.configuration.section(section);
        },
        onDidChangeConfiguration(listener: Listener<any>) {
            return stub.configuration.onDidChange(listener);
        },
    }),
    commands: {
        registerCommand(command: string, callback: (...args: any[]) => any) {
            if (stub.commands.has(command)) {
                throw new Error(`command '${command}' already exists`);
            }
            stub.commands.set(command, callback);
            return new Disposable(() => stub.commands.delete(command));
        },
        executeCommand(command: string, ...args: any[]) {
            stub.executedCommands.push({ command, args });
            const cb = stub.commands.get(command);
            return Promise.resolve(cb ? cb(...args) : undefined);
        },
    },
};

/**
 * Any other member is an inert class, so that modules which subclass vscode
 * classes at load time (vscode-languageclient's converters) can be loaded.
 */
const autoClasses = new Map<string, unknown>();
const vscodeModule = new Proxy(vscodeApi as Record<string | symbol, unknown>, {
    get(target, prop) {
        if (prop === '__esModule') {
            // Makes TypeScript's __importStar hand out this proxy instead of a copy of its own keys.
            return true;
        }
        if (prop in target || typeof prop === 'symbol' || prop === 'then') {
            return target[prop];
        }
        let cls = autoClasses.get(prop);
        if (cls === undefined) {
            cls = {
                [prop]: class {
                    args: unknown[];
                    constructor(...args: unknown[]) {
                        this.args = args;
                    }
                },
            }[prop];
            autoClasses.set(prop, cls);
        }
        return cls;
    },
});

// Route require('vscode') to the stub.
const moduleAny = Module as any;
const originalLoad = moduleAny._load;
moduleAny._load = function (request: string, ...rest: any[]) {
    if (request === 'vscode') {
        return vscodeModule;
    }
    return originalLoad.call(this, request, ...rest);
};
