"""The language server: LSP features over the completion engine."""

from accs_lsp.server.server import AccsLanguageServer, create_server

__all__ = ["AccsLanguageServer", "create_server"]
