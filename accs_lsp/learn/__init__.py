"""The contextual layer's project store: what a project's own code says about its habits
(identifiers, attributes per receiver, import aliases, quote and indent style, similar
functions), mined with tree-sitter and kept in SQLite under the user's cache."""

from accs_lsp.learn.progress import stderr_progress_bar
from accs_lsp.learn.store import (
    LearnReport,
    ProjectStore,
    Snippet,
    Style,
    cache_root,
    forget,
    nearest_learned_root,
    store_path,
)

__all__ = [
    "ProjectStore",
    "LearnReport",
    "Snippet",
    "Style",
    "cache_root",
    "store_path",
    "nearest_learned_root",
    "forget",
    "stderr_progress_bar",
]
