"""One completion, from a document and a cursor to the text to insert."""

from accs_lsp.completion.engine import (
    Completion,
    CompletionEngine,
    CompletionOptions,
    ConstraintLevelUnavailable,
)

__all__ = ["Completion", "CompletionEngine", "CompletionOptions", "ConstraintLevelUnavailable"]
