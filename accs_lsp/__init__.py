"""accs-lsp: a Python language server with constrained local-model completions."""

__version__ = "0.1.0"
