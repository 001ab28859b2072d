"""What the cursor is in: the analysis step every constraint layer starts from."""

from accs_lsp.analysis.context import CursorContext, cursor_context

__all__ = ["CursorContext", "cursor_context"]
