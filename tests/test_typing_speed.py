"""Typing into a suggestion: the suggestion cache, latest-only requests and prefetch.

The unit tests check the cache's comparisons and bounds; the end-to-end tests drive the real
server and model with a real LSP client (pytest-lsp) and tell model calls from cache hits by
the `generations` counter of `accs/stats`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from accs_lsp.bench.e2e import plain
from accs_lsp.server.stats import percentile
from accs_lsp.server.suggestions import ENTRY_OVERHEAD_BYTES, Fingerprint, SuggestionCache
from accs_lsp.settings import Settings, SettingsError

# -- the cache, without a server --------------------------------------------------------------

DOCUMENT = "def f(base, name):\n    return \n\nprint(f('a', 'b'))\n"
CURSOR = DOCUMENT.index("return ") + len("return ")
SUGGESTION = "base + f'config_{name}.'"


def typed(text: str, at: int, characters: str) -> str:
    return text[:at] + characters + text[at:]


def cache_with_one(key: object = "k", text: str = SUGGESTION) -> SuggestionCache:
    cache = SuggestionCache()
    cache.put("u", Fingerprint.of(DOCUMENT, CURSOR), text, key, payload="served", origin="fresh")
    return cache


def test_typing_the_start_of_a_suggestion_gets_exactly_the_rest() -> None:
    cache = cache_with_one()
    for count in range(len(SUGGESTION)):
        hit = cache.lookup("u", typed(DOCUMENT, CURSOR, SUGGESTION[:count]), CURSOR + count, "k")
        assert hit is not None and hit.rest == SUGGESTION[count:] and hit.typed == SUGGESTION[:count]
        assert SUGGESTION[:count] + hit.rest == SUGGESTION and hit.suggestion.payload == "served"
    # All of it typed: nothing left to serve from this entry.
    assert cache.lookup("u", typed(DOCUMENT, CURSOR, SUGGESTION), CURSOR + len(SUGGESTION), "k") is None
    assert cache.counters.hits == len(SUGGESTION)


def test_a_diverging_character_an_edit_elsewhere_or_other_settings_miss() -> None:
    cache = cache_with_one()
    assert cache.lookup("u", typed(DOCUMENT, CURSOR, "bs"), CURSOR + 2, "k") is None  # diverges
    assert cache.lookup("u", typed(DOCUMENT, CURSOR, "ba"), CURSOR + 1, "k") is None  # cursor not after it
    assert cache.lookup("u", typed(typed(DOCUMENT, CURSOR, "b"), 0, "#\n"), CURSOR + 3, "k") is None  # before
    after = typed(DOCUMENT, CURSOR, "b")
    assert cache.lookup("u", after.replace("print", "prunt"), CURSOR + 1, "k") is None  # after
    assert cache.lookup("u", after, CURSOR + 1, "other settings") is None
    assert cache.lookup("other", after, CURSOR + 1, "k") is None
    # Undoing the diverging edit finds the suggestion again.
    assert cache.lookup("u", after, CURSOR + 1, "k").rest == SUGGESTION[1:]


def test_an_empty_suggestion_is_served_again_only_at_its_cursor() -> None:
    cache = cache_with_one(text="")
    hit = cache.lookup("u", DOCUMENT, CURSOR, "k")
    assert hit is not None and hit.rest == ""
    assert cache.lookup("u", typed(DOCUMENT, CURSOR, "x"), CURSOR + 1, "k") is None


def test_the_newest_matching_suggestion_wins_and_prefetch_hits_are_counted() -> None:
    cache = cache_with_one()
    accepted = typed(DOCUMENT, CURSOR, SUGGESTION)
    cache.put("u", Fingerprint.of(accepted, CURSOR + len(SUGGESTION)), " or base", "k", payload="next", origin="prefetch")
    hit = cache.lookup("u", accepted, CURSOR + len(SUGGESTION), "k")
    assert hit is not None and hit.rest == " or base" and hit.origin == "prefetch" and hit.first
    again = cache.lookup("u", typed(accepted, CURSOR + len(SUGGESTION), " "), CURSOR + len(SUGGESTION) + 1, "k")
    assert again is not None and again.rest == "or base" and not again.first
    assert cache.counters.prefetch_hits == 1 and cache.counters.hits == 2
    # The same document and cursor again replaces the entry instead of adding one.
    cache.put("u", Fingerprint.of(DOCUMENT, CURSOR), "base", "k", payload="again")
    assert len(cache) == 2 and cache.lookup("u", DOCUMENT, CURSOR, "k").rest == "base"


def test_the_cache_is_bounded_by_entries_and_bytes_least_recently_used_first() -> None:
    cache = SuggestionCache(max_entries=3, max_bytes=10**9)
    for number in range(5):
        cache.put("u", Fingerprint.of(DOCUMENT, number), f"s{number}", "k", payload=number)
    assert len(cache) == 3 and cache.counters.evicted == 2
    assert cache.lookup("u", DOCUMENT, 0, "k") is None and cache.lookup("u", DOCUMENT, 2, "k") is not None
    cache.put("u", Fingerprint.of(DOCUMENT, 5), "s5", "k", payload=5)  # evicts 3: 2 was used last
    assert cache.lookup("u", DOCUMENT, 2, "k") is not None and cache.lookup("u", DOCUMENT, 3, "k") is None

    by_size = SuggestionCache(max_entries=100, max_bytes=3 * (ENTRY_OVERHEAD_BYTES + 1000))
    for number in range(6):
        by_size.put("u", Fingerprint.of(DOCUMENT, number), "x" * 900, "k", payload=number)
    assert len(by_size) == 3 and by_size.bytes <= by_size.max_bytes
    by_size.resize(ENTRY_OVERHEAD_BYTES + 1000)
    assert len(by_size) == 1
    by_size.drop("u")
    assert len(by_size) == 0 and by_size.bytes == 0


def test_memory_limit_and_prefetch_settings() -> None:
    settings, unknown = Settings().updated({"memoryLimitMb": 256, "prefetch": False})
    assert (settings.memory_limit_mb, settings.prefetch, unknown) == (256, False, [])
    assert Settings().memory_limit_mb == 1024 and Settings().prefetch is True
    with pytest.raises(SettingsError, match="memoryLimitMb must be between 64 and 65536"):
        Settings().updated({"memoryLimitMb": 32})
    with pytest.raises(SettingsError, match="prefetch must be true or false"):
        Settings().updated({"prefetch": "yes"})


def test_percentiles() -> None:
    assert percentile([], 0.5) is None
    assert percentile(range(1, 101), 0.5) == 50 and percentile(range(1, 101), 0.99) == 99
    assert percentile([3.0], 0.95) == 3.0


# -- through a real client -------------------------------------------------------------------

URI = "file:///tmp/accs_typing/example.py"
SOURCE = '''def add(a: int, b: int) -> int:
    return a + b


def greet(name: str) -> str:
    message = "Hello, " + name
    
'''
LONG_URI = "file:///tmp/accs_typing/long.py"
LONG_SOURCE = "\n".join(["def setup():"] + [f"    value_{i} = {i}" for i in range(1, 11)] + ["    "])
WAIT_S = 180.0


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "accs_lsp", "serve"]))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def start(client: LanguageClient, **options: object) -> None:
    capabilities = types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        text_document=types.TextDocumentClientCapabilities(
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(documentation_format=[types.MarkupKind.Markdown])
            )
        ),
    )
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities, initialization_options={"maxTokens": 16, "timeoutMs": 60000, **options}
        )
    )
    open_document(client, URI, SOURCE)


def open_document(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    )


async def model_ready(client: LanguageClient) -> None:
    for _ in range(int(WAIT_S / 0.05)):
        if any(message.message.startswith("model ready") for message in client.log_messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the model did not load")


def inline_params(line: int, character: int, uri: str = URI) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )


async def inline(client: LanguageClient, position: tuple[int, int], uri: str = URI) -> types.InlineCompletionList:
    result = await client.text_document_inline_completion_async(inline_params(*position, uri=uri))
    assert result is not None
    return result


def text_of(result: types.InlineCompletionList) -> str:
    return result.items[0].insert_text if result.items else ""


async def stats(client: LanguageClient) -> dict[str, Any]:
    return plain(await client.protocol.send_request_async("accs/stats", None))


def after(position: tuple[int, int], text: str) -> tuple[int, int]:
    """The cursor after typing `text` at `position` (ASCII)."""
    line, character = position
    parts = text.split("\n")
    return (line + len(parts) - 1, (character if len(parts) == 1 else 0) + len(parts[-1]))


class Editor:
    """Incremental edits with increasing versions, as an editor sends them."""

    def __init__(self, client: LanguageClient, uri: str = URI) -> None:
        self.client, self.uri, self.version = client, uri, 1

    def insert(self, position: tuple[int, int], text: str) -> tuple[int, int]:
        self.replace(position, position, text)
        return after(position, text)

    def replace(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(types.Position(*start), types.Position(*end)), text=text)
                ],
            )
        )


async def wait_for(client: LanguageClient, condition: Any, what: str) -> dict[str, Any]:
    for _ in range(int(WAIT_S / 0.02)):
        figures = await stats(client)
        if condition(figures):
            return figures
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {figures}")


async def test_typing_into_a_suggestion_serves_the_rest_without_a_model_call(client: LanguageClient):
    await start(client, prefetch=False)
    cursor = (6, 4)
    first = await inline(client, cursor)
    suggestion = text_of(first)
    assert len(suggestion) >= 3, f"the model suggested too little to type into: {suggestion!r}"
    completion_id = first.items[0].command.arguments[0]["completionId"]
    before = await stats(client)
    editor = Editor(client)
    for index in range(3):
        cursor = editor.insert(cursor, suggestion[index])
        served = await inline(client, cursor)
        assert text_of(served) == suggestion[index + 1 :]
        assert served.items[0].command.arguments[0]["completionId"] == completion_id
    # The regular completion request at the same place is served from the same suggestion.
    regular = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(*cursor))
    )
    assert regular.items and regular.items[0].text_edit.new_text.endswith(suggestion[3:])
    figures = await stats(client)
    assert figures["generations"] == before["generations"] == 1
    assert figures["cacheHits"] == before["cacheHits"] + 4
    assert figures["latencyMs"]["cache"]["count"] == 4 and figures["latencyMs"]["fresh"]["count"] == 1

    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="accs.feedback", arguments=[{"completionId": completion_id, "accepted": True}])
    )
    figures = await stats(client)
    assert figures["acceptance"] == {"shown": 1, "accepted": 1, "dismissed": 0, "rate": 1.0}
    assert figures["tokensPerSecond"] and figures["tokensPerSecond"] > 0
    assert figures["maskMs"]["p50"] is not None and figures["maskMs"]["p99"] >= figures["maskMs"]["p50"]
    memory = figures["memory"]
    assert memory["residentMb"] > 0 and memory["peakResidentMb"] >= memory["residentMb"] * 0.5
    assert memory["limitMb"] == 1024 and 0 < memory["suggestionCache"]["bytes"] <= memory["suggestionCache"]["maxBytes"]
    syntax_grammars = memory["grammarCaches"]["syntax"]  # None where the engine's cache cannot be read
    assert syntax_grammars is None or syntax_grammars["entries"] >= 1


async def test_a_diverging_edit_an_edit_elsewhere_or_a_settings_change_gets_a_new_suggestion(client: LanguageClient):
    await start(client, prefetch=False)
    suggestion = text_of(await inline(client, (6, 4)))
    editor = Editor(client)
    generations = (await stats(client))["generations"]

    diverging = "z" if not suggestion.startswith("z") else "q"
    editor.insert((6, 4), diverging)
    await inline(client, (6, 5))
    assert (await stats(client))["generations"] == generations + 1
    editor.replace((6, 4), (6, 5), "")  # undone: the first suggestion again, from the cache
    assert text_of(await inline(client, (6, 4))) == suggestion
    assert (await stats(client))["generations"] == generations + 1

    editor.insert((0, 0), "# a comment above\n")  # an edit elsewhere changes the context
    await inline(client, (7, 4))
    assert (await stats(client))["generations"] == generations + 2
    await inline(client, (7, 4))  # asked again: cached
    assert (await stats(client))["generations"] == generations + 2

    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"accs": {"maxTokens": 15}}))
    await inline(client, (7, 4))
    assert (await stats(client))["generations"] == generations + 3


async def test_a_burst_of_twenty_requests_runs_one_generation(client: LanguageClient):
    await start(client, prefetch=False, maxTokens=96)
    open_document(client, LONG_URI, LONG_SOURCE)
    await model_ready(client)
    # A long generation on another document keeps the model thread busy while the burst comes.
    blocker = asyncio.ensure_future(
        client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=LONG_URI), position=types.Position(11, 4))
        )
    )
    await wait_for(client, lambda figures: figures["generations"] == 1, "the long generation to start")
    before = await stats(client)
    burst = [asyncio.ensure_future(inline(client, (6, 4))) for _ in range(20)]
    older = await asyncio.wait_for(asyncio.gather(*burst[:-1]), WAIT_S)
    assert not blocker.done(), "the older requests waited for the model instead of answering at once"
    assert all(not result.items for result in older)
    newest = await asyncio.wait_for(burst[-1], WAIT_S)
    await blocker
    assert newest.items
    figures = await stats(client)
    assert figures["generationsByKind"].get("inline", 0) - before["generationsByKind"].get("inline", 0) == 1
    assert figures["superseded"] - before["superseded"] == 19


async def test_an_accepted_suggestion_is_served_from_the_prefetch(client: LanguageClient):
    await start(client)
    await model_ready(client)
    await wait_for(client, lambda figures: figures["warmUps"]["runs"] >= 1, "the KV warm-up of the opened document")
    suggestion = text_of(await inline(client, (6, 4)))
    assert suggestion
    await wait_for(client, lambda figures: figures["prefetch"]["completed"] >= 1, "the prefetch")
    before = await stats(client)
    cursor = Editor(client).insert((6, 4), suggestion)  # accepted
    await inline(client, cursor)
    figures = await stats(client)
    assert figures["generations"] == before["generations"]
    assert figures["prefetchHits"] == before["prefetchHits"] + 1
    assert figures["latencyMs"]["prefetch"]["count"] == 1


async def test_a_real_request_cancels_the_prefetch(client: LanguageClient):
    await start(client, maxTokens=64, mode="block")
    open_document(client, LONG_URI, LONG_SOURCE)
    await model_ready(client)
    assert text_of(await inline(client, (11, 4), uri=LONG_URI))
    await wait_for(client, lambda figures: figures["prefetch"]["running"] or figures["prefetch"]["started"], "the prefetch")
    await inline(client, (6, 4))  # not in the cache: a real request
    figures = await wait_for(
        client, lambda figures: figures["prefetch"]["cancelled"] + figures["prefetch"]["completed"] >= 1, "the prefetch to end"
    )
    assert figures["prefetch"]["cancelled"] == 1 and figures["prefetch"]["completed"] == 0, figures["prefetch"]
    assert figures["generations"] == 2
