"""Which learned store answers for a file: its project's, found once per directory.

A file belongs to the nearest ancestor directory that `accs-lsp learn` (or the server,
for its workspace folders) has learned. Stores are opened on first use and kept; the
names read from a store are kept until it changes (a learning run, feedback).
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from pygls.uris import to_fs_path

from accs_lsp.learn.store import ProjectStore, nearest_learned_root

if TYPE_CHECKING:
    from accs_lsp.constraints.project import ProjectNames

log = logging.getLogger(__name__)

IDENTIFIERS_READ = 2000
ATTRIBUTE_RECEIVERS = 256


def uri_path(uri: str) -> Path | None:
    """The local path of a `file:` URI (None for any other scheme)."""
    if not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    return Path(path) if path else None


PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(uri: str) -> Path | None:
    """The project a file belongs to when no learned store says: the nearest ancestor with a
    project file (pyproject.toml, setup.py, setup.cfg, .git), else the file's folder; an
    installed package (under site-packages) is its own project."""
    path = uri_path(uri)
    if path is None or not path.parent.is_dir():
        return None
    if "site-packages" in path.parts[:-1]:
        below = path.parts.index("site-packages") + 1
        return Path(*path.parts[: below + 1]) if below < len(path.parts) - 1 else path.parent
    for directory in path.parents:
        if any((directory / marker).exists() for marker in PROJECT_MARKERS):
            return directory
    return path.parent


class ProjectStores:
    """The learned stores of the projects the files asked about belong to.

    `discover`: look for a learned ancestor of a file not under a known root (the CLI and
    the server do; the evaluation names its one store and looks for no other)."""

    def __init__(self, discover: bool = True) -> None:
        self.discover = discover
        self._stores: dict[Path, ProjectStore] = {}
        self._roots_of: dict[Path, Path | None] = {}  # directory -> learned root (None: none)
        self._names: dict[Path, ProjectNames] = {}
        self._lock = threading.Lock()

    def add(self, store: ProjectStore) -> None:
        """Answer for the files under `store.root` from `store`."""
        with self._lock:
            self._stores[store.root] = store
            self._roots_of.clear()
            self._names.pop(store.root, None)

    def open_root(self, root: Path) -> ProjectStore | None:
        """The store of `root`, created when there is none (None: it cannot be written)."""
        root = root.resolve()  # as the stores know their roots
        with self._lock:
            store = self._stores.get(root)
        if store is None:
            store = ProjectStore.open(root)
            if store is not None:
                self.add(store)
        return store

    def roots(self) -> list[Path]:
        """The roots of the stores open now."""
        with self._lock:
            return sorted(self._stores)

    def for_uri(self, uri: str) -> ProjectStore | None:
        path = uri_path(uri)
        if path is None:
            return None
        with self._lock:
            root = self._root_for(path.parent)
            if root is None:
                return None
            if root not in self._stores:
                store = ProjectStore.open(root, create=False)
                if store is None:
                    self._roots_of[path.parent] = None
                    return None
                self._stores[root] = store
            return self._stores[root]

    def names(self, store: ProjectStore, tokenize: Callable[[str], list[int]]) -> "ProjectNames":
        """The store's names with their token tables, read once until `changed(store)`."""
        from accs_lsp.constraints.project import ProjectNames  # numpy: not before the model loads

        with self._lock:
            names = self._names.get(store.root)
            if names is None:
                attributes = functools.lru_cache(maxsize=ATTRIBUTE_RECEIVERS)(store.attribute_weights)
                names = ProjectNames(store.identifier_weights(IDENTIFIERS_READ), attributes, tokenize)
                self._names[store.root] = names
            return names

    def changed(self, store: ProjectStore) -> None:
        """The store learned or took feedback: read its names anew next time."""
        with self._lock:
            self._names.pop(store.root, None)

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
            self._names.clear()

    def _root_for(self, directory: Path) -> Path | None:
        known = [root for root in self._stores if directory == root or root in directory.parents]
        if known:
            return max(known, key=lambda root: len(root.parts))
        if not self.discover:
            return None
        if directory not in self._roots_of:
            self._roots_of[directory] = nearest_learned_root(directory)
        return self._roots_of[directory]

