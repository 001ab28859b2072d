"""Where accs-lsp keeps what it makes for the user: one cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """$ACCS_CACHE_DIR, else $XDG_CACHE_HOME/accs-lsp, else ~/.cache/accs-lsp."""
    explicit = os.environ.get("ACCS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser() / "accs-lsp"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "accs-lsp"
