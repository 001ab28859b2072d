"""Open buffers: text and a tree-sitter tree kept in step with every edit."""

from accs_lsp.documents.document import Document, DocumentStore, Snapshot, TextChange
from accs_lsp.documents.positions import LineIndex, PositionError

__all__ = ["Document", "DocumentStore", "LineIndex", "PositionError", "Snapshot", "TextChange"]
