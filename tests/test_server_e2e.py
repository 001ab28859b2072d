"""End to end: a real LSP client (pytest-lsp) against the real server and the real model."""

from __future__ import annotations

import asyncio
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

URI = "file:///tmp/accs_e2e/example.py"
SOURCE = '''def add(a: int, b: int) -> int:
    return a + b


def greet(name: str) -> str:
    message = "Hello, " + name
    
'''


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "accs_lsp", "serve"]))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def start(client: LanguageClient, **options: object) -> types.InitializeResult:
    capabilities = types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True))
    result = await client.initialize_session(
        types.InitializeParams(capabilities=capabilities, initialization_options={"maxTokens": 16, "timeoutMs": 60000, **options})
    )
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=URI, language_id="python", version=1, text=SOURCE)
        )
    )
    return result


def inline_params(line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )


async def test_initialize_advertises_both_completion_kinds(client: LanguageClient):
    result = await start(client)
    assert result.capabilities.inline_completion_provider is not None
    assert result.capabilities.completion_provider is not None
    assert result.capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental


async def test_incremental_edits_then_inline_completion_and_completion(client: LanguageClient):
    await start(client)
    # Type "    return " on the blank line of greet(), in two incremental edits.
    for version, (character, text) in enumerate([(4, "return"), (10, " ")], start=2):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(6, character), types.Position(6, character)), text=text
                    )
                ],
            )
        )
    inline = await client.text_document_inline_completion_async(inline_params(6, 11))
    assert inline is not None and inline.items, "no inline completion"
    item = inline.items[0]
    assert item.insert_text.strip()
    assert item.command is not None and item.command.command == "accs.feedback"

    regular = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(line=6, character=11)
        )
    )
    assert regular is not None and regular.items
    assert regular.items[0].text_edit.new_text.strip()

    # Accepting an item runs its command; the server records it against the completion it served.
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
    )


async def test_model_load_reports_progress_and_status(client: LanguageClient):
    await start(client)
    await client.wait_for_notification("accs/status")
    await client.text_document_inline_completion_async(inline_params(6, 4))
    assert any(message.message.startswith("model ready") for message in client.log_messages)
    reports = [report for reports in client.progress_reports.values() for report in reports]
    assert any(isinstance(report, types.WorkDoneProgressBegin) for report in reports)
    assert any(isinstance(report, types.WorkDoneProgressEnd) for report in reports)


async def model_ready(client: LanguageClient) -> None:
    for _ in range(600):
        if any(message.message.startswith("model ready") for message in client.log_messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the model did not load within 30 s")


async def test_position_outside_document_is_an_error_and_server_keeps_serving(client: LanguageClient):
    await start(client)
    with pytest.raises(JsonRpcException, match="outside the document"):
        await client.text_document_inline_completion_async(inline_params(500, 0))
    inline = await client.text_document_inline_completion_async(inline_params(6, 4))
    assert inline is not None and inline.items


async def test_unknown_document_is_an_error(client: LanguageClient):
    await start(client)
    params = inline_params(0, 0)
    params.text_document = types.TextDocumentIdentifier(uri="file:///not/open.py")
    with pytest.raises(JsonRpcException, match="not open"):
        await client.text_document_inline_completion_async(params)


async def test_cancel_request_stops_a_long_generation(client: LanguageClient):
    # A repetitive block invites a long answer; maxTokens allows 900 of them.
    lines = ["def setup():"] + [f"    value_{i} = {i}" for i in range(1, 11)] + ["    "]
    await start(client, maxTokens=900)
    long_uri = "file:///tmp/accs_e2e/long.py"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=long_uri, language_id="python", version=1, text="\n".join(lines))
        )
    )
    params = inline_params(11, 4)
    params.text_document = types.TextDocumentIdentifier(uri=long_uri)
    await model_ready(client)  # so that the cancellation reaches a running generation
    request = asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="long-1")
    )
    await asyncio.sleep(0.3)
    client.protocol.notify("$/cancelRequest", types.CancelParams(id="long-1"))
    with pytest.raises((JsonRpcException, asyncio.CancelledError)):
        await request
    # The generation itself stopped (its log line says so) long before its 900 tokens.
    for _ in range(200):
        logs = [m.message for m in client.log_messages if m.message.startswith("inline completion")]
        if logs:
            break
        await asyncio.sleep(0.05)
    assert logs and "stop=cancelled" in logs[0], logs
    assert int(logs[0].split(": ")[1].split()[0]) < 900
    # And the server still answers.
    inline = await client.text_document_inline_completion_async(inline_params(6, 4))
    assert inline is not None


async def test_stale_result_is_dropped_when_document_changes(client: LanguageClient):
    await start(client, maxTokens=64)
    request = asyncio.ensure_future(client.text_document_inline_completion_async(inline_params(6, 4)))
    await asyncio.sleep(0.05)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(6, 4), types.Position(6, 4)), text="x"
                )
            ],
        )
    )
    result = await request
    assert result is not None and len(result.items) == 0


async def test_syntax_constrained_inline_completion(client: LanguageClient):
    await start(client, constraints="syntax", maxTokens=24)
    inline = await client.text_document_inline_completion_async(inline_params(6, 4))
    assert inline is not None and inline.items
    text = inline.items[0].insert_text
    lines = SOURCE.split("\n")
    lines[6] = "    " + text
    compile("\n".join(lines), "example.py", "exec")  # raises SyntaxError if the completion broke the file


async def test_type_constrained_completion_lists_typed_alternatives(client: LanguageClient):
    await start(client, constraints="types", maxTokens=16)
    params = types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI), position=types.Position(line=1, character=11)
    )
    # `return a + b` is already there: complete at the start of a fresh `return ` line instead.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(1, 11), end=types.Position(1, 16)), text=""
                )
            ],
        )
    )
    result = await client.text_document_completion_async(params)
    assert result is not None and result.items
    typed = [item for item in result.items if item.detail and "inhabits int" in item.detail]
    assert typed, [item.label for item in result.items]
    for item in typed:
        compile(SOURCE.replace("return a + b", "return " + item.text_edit.new_text), "example.py", "exec")


def test_an_unexpected_failure_answers_one_line_without_a_traceback() -> None:
    from accs_lsp.server.server import RequestFailed, answering_errors

    @answering_errors
    def did_something(ls, params):
        raise KeyError("gone")

    @answering_errors
    async def did_something_async(ls, params):
        raise ValueError("first line\nsecond line")

    with pytest.raises(RequestFailed) as failure:
        did_something(None, None)
    error = failure.value.to_response_error()
    assert error.code == -32803 and error.data is None
    assert error.message == "accs-lsp: internal error in did_something: KeyError: 'gone' (see the server log)"
    with pytest.raises(RequestFailed) as failure:
        asyncio.run(did_something_async(None, None))
    assert "\n" not in failure.value.message and "first line" in failure.value.message
