"""One completion, from a document and a cursor to the text to insert."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accs_lsp.completion.options import Completion, CompletionOptions, InvalidRequest

if TYPE_CHECKING:
    from accs_lsp.completion.engine import CompletionEngine

__all__ = ["Completion", "CompletionEngine", "CompletionOptions", "InvalidRequest"]


def __getattr__(name: str) -> Any:
    # The engine pulls in numpy and llama.cpp; import it only when it is used, so that
    # the server can answer `initialize` before those load.
    if name == "CompletionEngine":
        from accs_lsp.completion.engine import CompletionEngine

        return CompletionEngine
    raise AttributeError(name)
