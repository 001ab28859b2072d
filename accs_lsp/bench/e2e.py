"""`accs-lsp bench e2e`: typing sessions replayed by a real LSP client over stdio.

For each constraint level a server (`python -m accs_lsp serve`) is started as an editor starts
it, the files of `fixtures/` and a larger one (a big standard-library module, copied into a
temporary directory) are opened, and at holes cut at the end of statement lines (the rest of
the line removed) an editor's typing is replayed:

1. fresh: an inline completion at the hole (a cache miss: the model runs);
2. typed-ahead: the first characters of the suggestion are typed one by one, each keystroke a
   `didChange` followed by an inline request (served from the suggestion cache);
3. prefetched: after a pause (the user reads the suggestion; the server prefetches the next
   one meanwhile) the rest of the suggestion is inserted, as accepting it does, and the
   editor asks at the new cursor (served from the prefetch).

Latencies are round trips as the client sees them: for a fresh completion from the request,
for typed-ahead and prefetched ones from the keystroke's `didChange`. Which answers came from
the model, the cache or the prefetch is read from `accs/stats` between requests (not timed).
The last session then fills the suggestion cache to its entry bound and reports the server's
resident memory against `memoryLimitMb`.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

LEVELS = ("none", "syntax", "types", "full")
FULL_LEVEL_MAX_RATIO = 2.0
DEFAULT_LEVEL = "syntax"
BIG_MODULE = "argparse.py"
PREFETCH_WAIT_S = 30.0
REQUEST_TIMEOUT_S = 120.0
TYPED_AHEAD_TARGET_MS = 60.0
FRESH_LINE_TARGET_MS = 400.0


@dataclass(frozen=True)
class Hole:
    path: Path
    line: int  # 0-based
    column: int
    text: str  # the document with the rest of the line removed


@dataclass
class LevelFigures:
    level: str
    fresh_ms: list[float] = field(default_factory=list)
    typed_ms: list[float] = field(default_factory=list)
    prefetched_ms: list[float] = field(default_factory=list)
    # Accepted suggestions whose next request was not served by the prefetch (not ready, or missed).
    prefetch_misses: int = 0
    typed_misses: int = 0
    empty: int = 0
    server: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class MemoryFigures:
    resident_mb: float = 0.0
    peak_mb: float = 0.0
    limit_mb: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    grammars: dict[str, Any] = field(default_factory=dict)
    fill_requests: int = 0


def plain(value: Any) -> Any:
    """pygls hands results of custom requests back as nested namedtuples."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def big_module(directory: Path) -> Path | None:
    """A large standard-library module, copied so the server opens a file of the run's own."""
    source = Path(sysconfig.get_paths()["stdlib"]) / BIG_MODULE
    if not source.is_file():
        return None
    target = directory / BIG_MODULE
    shutil.copyfile(source, target)
    return target


def holes_in(path: Path, count: int) -> list[Hole]:
    """`count` holes spread over the file: one-line assignments, returns and calls, cut after
    `= `, `return ` or the call's `(`, the rest of the line removed."""
    text = path.read_text()
    lines = text.split("\n")
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a fixture may end with a header whose body is the hole
        try:
            tree = ast.parse(text.rstrip() + "\n    pass\n")
        except SyntaxError:
            return []
    candidates: list[tuple[int, int]] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign, ast.Return, ast.Expr)) or node.end_lineno != node.lineno:
            continue
        line = lines[node.lineno - 1]
        if len(line.strip()) < 12:
            continue
        column = cut_column(node, line)
        if column is not None and line[column:].strip():
            candidates.append((node.lineno - 1, column))
    candidates.sort()
    if not candidates:
        return []
    step = max(1, len(candidates) // count)
    chosen = candidates[step // 2 :: step][:count]
    holes = []
    for line_number, column in chosen:
        holed = lines[:]
        holed[line_number] = holed[line_number][:column]
        holes.append(Hole(path, line_number, column, "\n".join(holed)))
    return holes


def cut_column(node: ast.stmt, line: str) -> int | None:
    if isinstance(node, ast.Return) and node.value is not None:
        return line.index("return") + len("return ")
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        return node.value.col_offset
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        opening = line.find("(", node.value.func.end_col_offset or 0)
        return opening + 1 if opening >= 0 else None
    return None


def position_after(line: int, column: int, inserted: str) -> types.Position:
    parts = inserted.split("\n")
    if len(parts) == 1:
        return types.Position(line, column + utf16_length(inserted))
    return types.Position(line + len(parts) - 1, utf16_length(parts[-1]))


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Session:
    """One server process, driven as an editor drives it."""

    def __init__(self, level: str, max_tokens: int, model: str | None, workspace: Path, cache: Path) -> None:
        """`workspace`: the folder the server learns (at `full`), into a store under `cache`
        (not the user's)."""
        self.level = level
        self.workspace = workspace
        self.cache = cache
        self.max_tokens = max_tokens
        self.model = model
        self.client = LanguageClient("accs-bench-e2e", "1")
        self.versions: dict[str, int] = {}
        self.logs: list[str] = []

        @self.client.feature("accs/status")
        def on_status(_client: LanguageClient, params: object) -> None:
            pass

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(_client: LanguageClient, params: types.LogMessageParams) -> None:
            self.logs.append(params.message)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_message(_client: LanguageClient, params: types.ShowMessageParams) -> None:
            self.logs.append(params.message)

    async def start(self) -> None:
        arguments = ["-m", "accs_lsp", "serve", "--log-level", "WARNING"] + (["--model", self.model] if self.model else [])
        await self.client.start_io(sys.executable, *arguments, env={**os.environ, "ACCS_CACHE_DIR": str(self.cache)})
        options = {"constraints": self.level, "maxTokens": self.max_tokens, "timeoutMs": 60000}
        folders = [types.WorkspaceFolder(uri=self.workspace.resolve().as_uri(), name=self.workspace.name)]
        await self.client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options=options, workspace_folders=folders)
        )
        self.client.initialized(types.InitializedParams())

    async def learned(self, timeout_s: float = 120.0) -> None:
        """Wait until the server has learned its workspace folder (before timing `full`)."""
        deadline = time.monotonic() + timeout_s
        while not (await self.stats())["learnedProjects"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not learn {self.workspace} in {timeout_s:.0f} s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    async def stats(self) -> dict[str, Any]:
        return plain(await self.client.protocol.send_request_async("accs/stats", None))

    def configure(self, **settings: Any) -> None:
        self.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"accs": settings}))

    def open(self, uri: str, text: str) -> None:
        self.versions[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text)))

    def replace_all(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                [types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def insert(self, uri: str, position: types.Position, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                [types.TextDocumentContentChangePartial(range=types.Range(position, position), text=text)],
            )
        )

    async def inline(self, uri: str, position: types.Position) -> str:
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
        result = await asyncio.wait_for(self.client.text_document_inline_completion_async(params), REQUEST_TIMEOUT_S)
        items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
        text = items[0].insert_text if items else ""
        return text if isinstance(text, str) else text.value

    async def ready(self, uri: str, position: types.Position) -> None:
        """The first request waits for the model (and, with types, loads Jedi's stubs): not timed."""
        await self.inline(uri, position)


async def replay_hole(session: Session, hole: Hole, typed: int, figures: LevelFigures) -> None:
    uri = hole.path.resolve().as_uri()
    session.replace_all(uri, hole.text)
    cursor = types.Position(hole.line, utf16_length(hole.text.split("\n")[hole.line][: hole.column]))
    before = await session.stats()
    began = time.perf_counter()
    suggestion = await session.inline(uri, cursor)
    elapsed = (time.perf_counter() - began) * 1000
    after = await session.stats()
    if after["generations"] > before["generations"]:
        figures.fresh_ms.append(elapsed)
    if not suggestion:
        figures.empty += 1
        return
    line, column = cursor.line, cursor.character
    typed_text = ""
    for character in suggestion[: min(typed, len(suggestion) - 1)]:
        position = position_after(line, column, typed_text)
        hits = (await session.stats())["cacheHits"]
        began = time.perf_counter()
        session.insert(uri, position, character)
        typed_text += character
        rest = await session.inline(uri, position_after(line, column, typed_text))
        elapsed = (time.perf_counter() - began) * 1000
        if (await session.stats())["cacheHits"] > hits and rest == suggestion[len(typed_text) :]:
            figures.typed_ms.append(elapsed)
        else:
            figures.typed_misses += 1
    # The user reads the suggestion while the server prefetches, then accepts the rest of it.
    deadline = time.monotonic() + PREFETCH_WAIT_S
    while time.monotonic() < deadline:
        prefetch = (await session.stats())["prefetch"]
        ended = prefetch["completed"] + prefetch["cancelled"] + prefetch["skipped"]
        if ended > after["prefetch"]["completed"] + after["prefetch"]["cancelled"] + after["prefetch"]["skipped"]:
            break
        await asyncio.sleep(0.02)
    hits = (await session.stats())["prefetchHits"]
    began = time.perf_counter()
    session.insert(uri, position_after(line, column, typed_text), suggestion[len(typed_text) :])
    await session.inline(uri, position_after(line, column, suggestion))
    elapsed = (time.perf_counter() - began) * 1000
    if (await session.stats())["prefetchHits"] > hits:
        figures.prefetched_ms.append(elapsed)
    else:
        figures.prefetch_misses += 1


async def fill_suggestion_cache(session: Session, paths: list[Path], limit: int) -> int:
    """Fresh completions of a few tokens at one word end after another of the small files,
    until the suggestion cache holds its bound of entries (or `limit` requests were made)."""
    session.configure(maxTokens=4, prefetch=False)
    positions: list[tuple[str, types.Position]] = []
    for path in paths:
        uri, text = path.resolve().as_uri(), path.read_text()
        session.replace_all(uri, text)
        for number, line in enumerate(text.split("\n")):
            positions += [(uri, types.Position(number, utf16_length(line[: match.end()]))) for match in re.finditer(r"\w+", line)]
    requests = 0
    for uri, position in positions[:limit]:
        await session.inline(uri, position)
        requests += 1
        if requests % 16 == 0:
            cache = (await session.stats())["memory"]["suggestionCache"]
            if cache["entries"] >= cache["maxEntries"]:
                break
    return requests


async def run_level(
    level: str, files: list[Path], holes: int, typed: int, max_tokens: int, model: str | None, fill: bool, cache: Path
) -> tuple[LevelFigures, MemoryFigures | None]:
    session = Session(level, max_tokens, model, files[0].parent, cache)
    figures = LevelFigures(level)
    started = time.perf_counter()
    await session.start()
    try:
        if level == "full":
            await session.learned()
        for path in files:
            session.open(path.resolve().as_uri(), path.read_text())
        first = files[0]
        await session.ready(first.resolve().as_uri(), types.Position(0, 0))
        for path in files:
            for hole in holes_in(path, holes):
                await replay_hole(session, hole, typed, figures)
        figures.server = await session.stats()
        figures.seconds = time.perf_counter() - started
        memory = None
        if fill:
            memory = MemoryFigures()
            limit = figures.server["memory"]["suggestionCache"]["maxEntries"] * 2
            small = sorted(files, key=lambda path: path.stat().st_size)[:-1] or files
            memory.fill_requests = await fill_suggestion_cache(session, small, limit)
            final = (await session.stats())["memory"]
            memory.resident_mb, memory.peak_mb, memory.limit_mb = final["residentMb"], final["peakResidentMb"], final["limitMb"]
            memory.cache, memory.grammars = final["suggestionCache"], final["grammarCaches"]
    finally:
        await session.stop()
    return figures, memory


async def measure(fixtures: Path, levels: list[str], holes: int, typed: int, max_tokens: int, model: str | None, fill: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="accs-bench-e2e-") as directory:
        files = sorted(fixtures.glob("*.py"))
        big = big_module(Path(directory))
        if big is not None:
            files.append(big)
        results = []
        memory = None
        for index, level in enumerate(levels):
            last = index == len(levels) - 1
            figures, level_memory = await run_level(level, files, holes, typed, max_tokens, model, fill and last, Path(directory) / "cache")
            results.append(figures)
            memory = level_memory or memory
        return report(results, memory, files, holes, typed, max_tokens)


def p50_p95(values: list[float]) -> str:
    if not values:
        return "       -"
    return f"{statistics.median(values):6.0f} / {percentile(values, 0.95):<6.0f}"


def ratio(part: list[float], whole: list[float]) -> str:
    if not part or not whole:
        return "    -"
    return f"{statistics.median(part) / statistics.median(whole):5.3f}"


def report(results: list[LevelFigures], memory: MemoryFigures | None, files: list[Path], holes: int, typed: int, max_tokens: int) -> str:
    names = ", ".join(f"{path.name} ({len(path.read_text().splitlines())} lines)" for path in files)
    out = [
        f"typing sessions over {names}: {holes} holes per file, {typed} characters typed into each "
        f"suggestion, then the rest accepted; maxTokens {max_tokens}",
        "round trips in ms, p50 / p95 (typed-ahead and prefetched: from the keystroke's didChange)",
        "",
        f"{'level':8} {'fresh':>15} {'typed-ahead':>15} {'prefetched':>15} {'typed/fresh':>12} {'prefetch/fresh':>15} {'counts f/t/p':>14} {'misses t/p':>11}",
    ]
    for figures in results:
        counts = f"{len(figures.fresh_ms)}/{len(figures.typed_ms)}/{len(figures.prefetched_ms)}"
        misses = f"{figures.typed_misses}/{figures.prefetch_misses}"
        out.append(
            f"{figures.level:8} {p50_p95(figures.fresh_ms):>15} {p50_p95(figures.typed_ms):>15} {p50_p95(figures.prefetched_ms):>15} "
            f"{ratio(figures.typed_ms, figures.fresh_ms):>12} {ratio(figures.prefetched_ms, figures.fresh_ms):>15} {counts:>14} {misses:>11}"
        )
    out += ["", "server figures (accs/stats at the end of each session):"]
    for figures in results:
        server = figures.server
        if not server:
            continue
        mask, type_ms = server["maskMs"], server["typeMs"]
        out.append(
            f"  {figures.level:7} {server['generations']} generations + {server['prefetch']['started']} prefetches, "
            f"{server['tokensPerSecond']} tok/s, mask p50/p95/p99 {mask['p50']}/{mask['p95']}/{mask['p99']} ms, "
            f"type p50/p99 {type_ms['p50']}/{type_ms['p99']} ms, cache hit rate {server['cacheHitRate']}, "
            f"prefetch hit rate {server['prefetch']['hitRate']}, relaxed completions {server['relaxation']['relaxedCompletions']}, "
            f"fresh p50 in the server {server['latencyMs']['fresh']['p50']} ms, session {figures.seconds:.0f} s"
        )
    out.append("")
    for figures in results:
        if figures.level != DEFAULT_LEVEL or not figures.fresh_ms or not figures.typed_ms:
            continue
        fresh, typed_p50 = statistics.median(figures.fresh_ms), statistics.median(figures.typed_ms)
        met = typed_p50 <= fresh / 5 or typed_p50 < TYPED_AHEAD_TARGET_MS
        out.append(
            f"target typed-ahead p50 <= fresh p50 / 5 or < {TYPED_AHEAD_TARGET_MS:.0f} ms ({DEFAULT_LEVEL}): "
            f"{typed_p50:.1f} ms vs {fresh:.0f} ms: {'met' if met else 'NOT met'}"
        )
        out.append(
            f"target fresh line completion p50 < {FRESH_LINE_TARGET_MS:.0f} ms ({DEFAULT_LEVEL}): "
            f"{fresh:.0f} ms: {'met' if fresh < FRESH_LINE_TARGET_MS else 'NOT met'}"
        )
    out += full_level_target(results)
    if memory is not None:
        cache, grammars = memory.cache, memory.grammars
        grammar_text = ", ".join(
            f"{name} {sizes['entries']}/{sizes['kept']}" for name, sizes in grammars.items() if isinstance(sizes, dict)
        ) or "not built"
        under = memory.resident_mb < memory.limit_mb and memory.peak_mb < memory.limit_mb
        out.append(
            f"resident memory after the {results[-1].level} session, suggestion cache filled "
            f"({cache['entries']}/{cache['maxEntries']} entries, {cache['bytes'] / 2**20:.2f} MiB, after {memory.fill_requests} more requests), "
            f"compiled grammars {grammar_text}: {memory.resident_mb:.0f} MiB now, {memory.peak_mb:.0f} MiB peak; "
            f"memoryLimitMb {memory.limit_mb}: {'under' if under else 'OVER'} the cap"
        )
    return "\n".join(out)


def full_level_target(results: list[LevelFigures]) -> list[str]:
    """The `full` level's fresh p50 against the default level's, when both ran."""
    fresh = {figures.level: statistics.median(figures.fresh_ms) for figures in results if figures.fresh_ms}
    if "full" not in fresh or DEFAULT_LEVEL not in fresh:
        return []
    ratio = fresh["full"] / fresh[DEFAULT_LEVEL]
    return [
        f"target full fresh p50 <= {FULL_LEVEL_MAX_RATIO:g} x {DEFAULT_LEVEL}: {fresh['full']:.0f} ms vs "
        f"{fresh[DEFAULT_LEVEL]:.0f} ms ({ratio:.2f} x): {'met' if ratio <= FULL_LEVEL_MAX_RATIO else 'NOT met'}"
    ]


def run(fixtures: Path, levels: list[str], holes: int, typed: int, max_tokens: int, model: str | None, fill: bool) -> str:
    return asyncio.run(measure(fixtures, levels, holes, typed, max_tokens, model, fill))
