"""`accs-lsp bench server`: the server as an editor sees it.

Starts `python -m accs_lsp serve` as a subprocess, drives it with pygls's LSP client
over stdio and measures: the time to answer `initialize`, the time until the model is
ready, the time from process start to the first inline completion, the latency of the
completions after it (each after a new line at the end of the file, so that none is a
cache hit), the decoding throughput the server reports, and the server's
resident memory with the model loaded.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

# Python and pygls/lsprotocol imports take about 0.8 s here; the second session waits this
# long before `initialize` so that its round trip measures the server, not the imports.
IMPORT_SETTLE_S = 3.0
COMPLETION_LOG = re.compile(r"completion: (\d+) tokens, .*?([\d.]+) tok/s")


@dataclass
class ServerFigures:
    initialize_ms: float = 0.0
    initialize_round_trip_ms: float = 0.0
    model_ready_ms: float = 0.0
    first_completion_ms: float = 0.0
    completion_ms: list[float] = field(default_factory=list)
    tokens_per_second: list[float] = field(default_factory=list)
    rss_mib: float = 0.0


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cursor_at_end(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1].encode("utf-16-le")) // 2)


async def measure(source: Path, rounds: int, model: str | None) -> ServerFigures:
    cold = await one_session(source, rounds, model, settle_s=0.0)
    warm = await one_session(source, 0, model, settle_s=IMPORT_SETTLE_S)
    cold.initialize_round_trip_ms = warm.initialize_round_trip_ms
    return cold


async def one_session(source: Path, rounds: int, model: str | None, settle_s: float) -> ServerFigures:
    """One server process; with `settle_s` > 0, `initialize` is sent once its imports are done."""
    figures = ServerFigures()
    client = LanguageClient("accs-bench", "1")
    ready = asyncio.get_running_loop().create_future()

    @client.feature("accs/status")
    def on_status(_client: LanguageClient, params: object) -> None:
        state = getattr(params, "state", None)
        if state in ("ready", "error") and not ready.done():
            figures.model_ready_ms = (time.perf_counter() - started) * 1000
            ready.set_result(state)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(_client: LanguageClient, params: types.LogMessageParams) -> None:
        found = COMPLETION_LOG.search(params.message)
        if found:
            figures.tokens_per_second.append(float(found.group(2)))

    started = time.perf_counter()
    arguments = ["-m", "accs_lsp", "serve", "--log-level", "WARNING"] + (["--model", model] if model else [])
    await client.start_io(sys.executable, *arguments)
    await asyncio.sleep(settle_s)
    asked = time.perf_counter()
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options={"timeoutMs": 60000, "prefetch": False})
    )
    figures.initialize_ms = (time.perf_counter() - started) * 1000
    figures.initialize_round_trip_ms = (time.perf_counter() - asked) * 1000
    client.initialized(types.InitializedParams())
    text = source.read_text()
    uri = source.resolve().as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    )
    request = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=cursor_at_end(text),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )
    await client.text_document_inline_completion_async(request)
    figures.first_completion_ms = (time.perf_counter() - started) * 1000
    state = await asyncio.wait_for(ready, timeout=60)
    if state != "ready":
        raise RuntimeError("the server could not load the model")
    for round_number in range(rounds):
        # A new line at the end each round: a fresh completion (the suggestion cache would
        # otherwise answer the same request), with the KV cache reused up to the new line.
        edited = f"{text}# round {round_number}\n"
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=round_number + 2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=edited)],
            )
        )
        request = types.InlineCompletionParams(
            text_document=request.text_document, position=cursor_at_end(edited), context=request.context
        )
        began = time.perf_counter()
        await client.text_document_inline_completion_async(request)
        figures.completion_ms.append((time.perf_counter() - began) * 1000)
    figures.rss_mib = resident_mib(client._server.pid)  # noqa: SLF001 - pygls exposes no pid accessor
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return figures


def report(figures: ServerFigures) -> str:
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    rows = [
        ("initialize answered (from start)", f"{figures.initialize_ms:8.0f} ms", "target < 500 ms"),
        ("initialize round trip, server up", f"{figures.initialize_round_trip_ms:8.0f} ms", "a second process, imports done"),
        ("model ready (from start)", f"{figures.model_ready_ms:8.0f} ms", ""),
        ("first completion (from start)", f"{figures.first_completion_ms:8.0f} ms", ""),
        ("completion latency, median", f"{median(figures.completion_ms):8.0f} ms", f"{len(figures.completion_ms)} requests"),
        ("decoding throughput, median", f"{median(figures.tokens_per_second):8.1f} tok/s", "as the server logs it"),
        ("server resident memory", f"{figures.rss_mib:8.0f} MiB", "target < 1024 MiB"),
    ]
    return "\n".join(f"{name:32} {value:>14}   {note}" for name, value, note in rows)


def run(source: Path, rounds: int, model: str | None) -> str:
    return report(asyncio.run(measure(source, rounds, model)))
