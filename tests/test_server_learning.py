"""The server learns its workspace folders in the background, relearns a saved file and
passes the user's feedback on to the store (a real client, server, store and model)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from accs_lsp.bench.e2e import plain
from accs_lsp.learn.store import ProjectStore, store_path

CACHE = Path(tempfile.mkdtemp(prefix="accs-server-learning-"))
PROJECT = CACHE / "shop"
PRICING = "def discounted_total(prices: list[float], discount_rate: float) -> float:\n    return sum(prices) * (1 - discount_rate)\n"
STORES = CACHE / "cache" / "accs-lsp" / "projects"  # where the server's ACCS_CACHE_DIR puts them
CART = "from pricing import discounted_total\n\n\ndef checkout(prices: list[float], rate: float) -> float:\n    return "


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "accs_lsp", "serve"],
        server_env={**os.environ, "ACCS_CACHE_DIR": str(CACHE / "cache")},
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def store() -> ProjectStore:
    """The server's store of the project, read from this process."""
    opened = ProjectStore.open(PROJECT, create=False, cache_dir=STORES)
    assert opened is not None, f"no store at {store_path(PROJECT, STORES)}"
    return opened


async def until(condition, what: str, timeout_s: float = 120.0) -> None:
    for _ in range(int(timeout_s * 10)):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_learns_the_workspace_relearns_a_saved_file_and_takes_feedback(client: LanguageClient) -> None:
    PROJECT.mkdir(parents=True, exist_ok=True)
    (PROJECT / "pricing.py").write_text(PRICING)
    (PROJECT / "cart.py").write_text(CART)
    capabilities = types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True))
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            workspace_folders=[types.WorkspaceFolder(uri=PROJECT.as_uri(), name="shop")],
            initialization_options={"constraints": "full", "maxTokens": 16, "timeoutMs": 60000},
        )
    )

    async def learned() -> bool:
        stats = plain(await client.protocol.send_request_async("accs/stats", {}))
        return str(PROJECT.resolve()) in stats["learnedProjects"]

    await until(learned, "the workspace folder to be learned")
    titles = [report.title for reports in client.progress_reports.values() for report in reports if hasattr(report, "title")]
    assert "Learning shop" in titles
    assert "discounted_total" in store().identifier_weights()

    (PROJECT / "pricing.py").write_text(PRICING + "\n\ndef shipping_fee(weight_kg: float) -> float:\n    return weight_kg * 2.5\n")
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=(PROJECT / "pricing.py").as_uri())))

    async def relearned() -> bool:
        return "shipping_fee" in store().identifier_weights()

    await until(relearned, "the saved file to be relearned", timeout_s=30)

    cart = (PROJECT / "cart.py").as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=cart, language_id="python", version=1, text=CART)))
    lines = CART.split("\n")
    inline = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=cart),
            position=types.Position(line=len(lines) - 1, character=len(lines[-1])),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert inline is not None and inline.items
    item = inline.items[0]
    names = set(identifier_names(item.insert_text))
    assert names, f"the completion {item.insert_text!r} names nothing"
    before = store().identifier_weights()
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="accs.feedback", arguments=[{**item.command.arguments[0], "accepted": True}])
    )

    async def reinforced() -> bool:
        after = store().identifier_weights()
        return all(after.get(name, 0) > before.get(name, 0) for name in names)

    await until(reinforced, "the accepted completion's names to gain weight", timeout_s=10)


def identifier_names(text: str) -> list[str]:
    import keyword
    import re

    return [name for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if not keyword.iskeyword(name)]
