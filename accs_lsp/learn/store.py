"""The contextual layer's memory of one project: what its code says, kept in SQLite.

One file per project root under the user's cache (`cache_root()`), keyed by a hash of the
resolved root so two checkouts named alike never share one. The store is a cache: anything
wrong with it (unwritable directory, garbage, a schema from another version, a lock held by
another writer) costs a warning and the contextual layer's hints, never an exception to the
server. Writes commit per small batch of files, so a killed `learn` loses at most one batch
and leaves a consistent database (WAL: readers never wait for it either).

Per-file rows are the truth; `*_totals` tables, kept by triggers in the same transactions,
make the server's per-completion reads index lookups instead of aggregations.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from accs_lsp.learn.miner import MINER_VERSION, FileFacts, Miner
from accs_lsp.learn.snippets import fts_query, identifiers, search_tokens
from accs_lsp.paths import cache_home

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[int, int, str], None]

SCHEMA_VERSION = 1
MAX_FILE_BYTES = 1_000_000
SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", "build", "dist"})
BATCH_FILES = 32
BATCH_SECONDS = 0.5
WARNING_INTERVAL_S = 60.0
COMPANIONS = ("-wal", "-shm")

# Feedback: an accepted completion adds ACCEPTED to each identifier it contains, a dismissed
# one adds DISMISSED (negative). The sum decays with a half-life of FEEDBACK_HALF_LIFE_S, so
# last month's choices fade instead of outvoting what the code says now; it is capped so
# feedback can lift a name above the project's habits but not bury them for good.
ACCEPTED = 3.0
DISMISSED = -1.0
FEEDBACK_CAP = 100.0
FEEDBACK_HALF_LIFE_S = 14 * 24 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, miner INTEGER NOT NULL,
    double_quotes INTEGER NOT NULL, single_quotes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS identifiers(
    file_id INTEGER NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(file_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identifier_totals(
    name TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identifier_totals_by_count ON identifier_totals(count DESC);
CREATE TABLE IF NOT EXISTS attributes(
    file_id INTEGER NOT NULL, receiver TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(file_id, receiver, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attribute_totals(
    receiver TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(receiver, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls(
    file_id INTEGER NOT NULL, callee TEXT NOT NULL, args_count INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(file_id, callee, args_count)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS call_totals(
    callee TEXT NOT NULL, args_count INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(callee, args_count)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases(
    file_id INTEGER NOT NULL, module TEXT NOT NULL, alias TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(file_id, module, alias)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indents(
    file_id INTEGER NOT NULL, step TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY(file_id, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snippets(
    id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, start_line INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS snippets_by_file ON snippets(file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS snippet_index USING fts5(
    tokens, tokenize = "unicode61 tokenchars '_'", detail = column);
CREATE TABLE IF NOT EXISTS feedback(
    name TEXT PRIMARY KEY, weight REAL NOT NULL, updated REAL NOT NULL) WITHOUT ROWID;
"""

TOTALS_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS {table}_added AFTER INSERT ON {table} BEGIN
    INSERT INTO {table_totals}({keys}, count) VALUES ({new_keys}, new.count)
    ON CONFLICT({keys}) DO UPDATE SET count = count + excluded.count;
END;
CREATE TRIGGER IF NOT EXISTS {table}_removed AFTER DELETE ON {table} BEGIN
    UPDATE {table_totals} SET count = count - old.count WHERE {match};
    DELETE FROM {table_totals} WHERE {match} AND count <= 0;
END;
"""
TOTALS = {"identifiers": ("name",), "attributes": ("receiver", "name"), "calls": ("callee", "args_count")}
PER_FILE_TABLES = ("identifiers", "attributes", "calls", "aliases", "indents", "snippets")


def totals_triggers() -> str:
    return "".join(
        TOTALS_TRIGGER.format(
            table=table,
            table_totals=table.rstrip("s") + "_totals",
            keys=", ".join(keys),
            new_keys=", ".join(f"new.{key}" for key in keys),
            match=" AND ".join(f"{key} = old.{key}" for key in keys),
        )
        for table, keys in TOTALS.items()
    )


@dataclass(frozen=True)
class LearnReport:
    """files_seen: eligible .py files in scope; files_read: those opened because new or
    changed; files_removed: files forgotten because gone (or grown past MAX_FILE_BYTES)."""

    files_seen: int
    files_read: int
    files_removed: int
    seconds: float


@dataclass(frozen=True)
class Snippet:
    """path: relative to the root, '/'-separated; start_line: 1-based; score: -bm25, so
    higher is more similar."""

    path: str
    start_line: int
    text: str
    score: float


@dataclass(frozen=True)
class Style:
    quote: str
    indent: str


DEFAULT_STYLE = Style(quote='"', indent="    ")


class Unavailable(Exception):
    """The store cannot be used at all (directory not writable, lock at creation...)."""


class Corrupt(Exception):
    """The file is not this version's store; it is moved aside and rebuilt."""


def cache_root() -> Path:
    """The projects' stores: accs-lsp's cache folder, then projects."""
    return cache_home() / "projects"


def store_path(root: Path, cache_dir: Path | None = None) -> Path:
    """Where root's store is: in `cache_dir`, by default `cache_root()`."""
    resolved = Path(root).expanduser().resolve()
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", resolved.name)[:40] or "root"
    return (cache_dir or cache_root()) / f"{digest}-{name}.sqlite"


def nearest_learned_root(path: Path) -> Path | None:
    """The innermost directory at or above path that has a store: a file opened deep in a
    learned project finds that project's store without knowing where its root is."""
    current = Path(path).expanduser().resolve()
    if not current.is_dir():
        current = current.parent
    for candidate in (current, *current.parents):
        if store_path(candidate).is_file():
            return candidate
    return None


def forget(root: Path) -> bool:
    """Delete root's store; True when there was one."""
    path = store_path(root)
    existed = path.exists()
    try:
        remove_store_files(path)
    except OSError as error:
        log.warning("could not delete the project store %s: %s", path, error)
        return False
    return existed


def remove_store_files(path: Path) -> None:
    for file in (path, *(companion(path, suffix) for suffix in COMPANIONS)):
        file.unlink(missing_ok=True)


def companion(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def is_corrupt(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_locked(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def private_file(path: Path) -> None:
    """Create path 0600 before SQLite opens it (SQLite gives its -wal/-shm files the mode of
    the database): the store holds the project's identifiers and code. No umask change,
    which would race with every other thread of the server."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(descriptor)


def chmod_companions(path: Path) -> None:
    for suffix in COMPANIONS:
        try:
            os.chmod(companion(path, suffix), 0o600)
        except FileNotFoundError:
            pass


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """An open, checked store at path, rebuilt once when it is corrupt. Raises Unavailable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise PermissionError(f"{path.parent} is not writable")
        try:
            return prepare(path, busy_timeout_s)
        except Corrupt as error:
            aside = move_aside(path)
            log.warning("project store %s was unusable (%s): moved to %s, starting afresh", path, error, aside)
            return prepare(path, busy_timeout_s)
    except (OSError, sqlite3.Error, Corrupt) as error:
        raise Unavailable(str(error)) from error


def prepare(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Open path, create the schema when the file is new, check it otherwise. Raises Corrupt
    for garbage, damage or another schema version."""
    private_file(path)
    db = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        ensure_schema(db)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise Corrupt(check)
        chmod_companions(path)
        return db
    except sqlite3.DatabaseError as error:
        db.close()
        if is_corrupt(error):
            raise Corrupt(str(error)) from error
        raise
    except BaseException:
        db.close()
        raise


def connections(path: Path, busy_timeout_s: float) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """(writer, reader) on the store at path. Raises Unavailable."""
    writer = connect(path, busy_timeout_s)
    try:
        reader = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only = 1")
    except sqlite3.Error as error:
        writer.close()
        raise Unavailable(str(error)) from error
    return writer, reader


def ensure_schema(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if version != 0 or tables:
        raise Corrupt(f"schema version {version}, this accs-lsp writes {SCHEMA_VERSION}")
    db.executescript(f"BEGIN IMMEDIATE; {SCHEMA} {totals_triggers()} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def move_aside(path: Path) -> Path:
    """Keep one unusable store for inspection (`<name>.corrupt`, its -wal/-shm alongside,
    so it still opens), replacing any older one: a cache never grows without bound."""
    aside = path.with_name(path.name + ".corrupt")
    for suffix in ("", *COMPANIONS):
        source, target = Path(str(path) + suffix), Path(str(aside) + suffix)
        if source.exists():
            os.replace(source, target)
        else:
            target.unlink(missing_ok=True)
    return aside


def skipped_dir(name: str) -> bool:
    return name in SKIPPED_DIRS or name.startswith(".")


class ProjectStore:
    """One project's store. Thread-safe: a writing and a reading connection, each behind
    its own lock. WAL lets the reader see the last commit while a background `learn` writes
    the next batch, so a completion request never waits for learning (only, briefly, for
    another request's read); mining happens outside both locks."""

    BUSY_TIMEOUT_S = 2.0
    clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, root: Path, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection) -> None:
        """Use `open`."""
        self.root: Path = root
        self.path: Path = path
        self._writer: sqlite3.Connection | None = writer
        self._reader: sqlite3.Connection | None = reader
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._corrupt = False
        self._warned: dict[str, float] = {}

    @classmethod
    def open(cls, root: Path, *, create: bool = True, cache_dir: Path | None = None) -> "ProjectStore | None":
        """The store of root; None with one warning when it cannot be had, None silently when
        there is none and create is False. `cache_dir`: somewhere else than the user's cache
        (the evaluation's temporary store)."""
        root = Path(root).expanduser().resolve()
        path = store_path(root, cache_dir)
        if not create and not path.is_file():
            return None
        try:
            return cls(root, path, *connections(path, cls.BUSY_TIMEOUT_S))
        except Unavailable as error:
            log.warning("no project store for %s (%s): completions go on without what it learns", root, error)
            return None

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, what: str, default: T, operation: Callable[[sqlite3.Connection], T], write: bool = False) -> T:
        with self._write_lock if write else self._read_lock:
            db = self._writer if write else self._reader
            if db is None:
                return default
            try:
                return operation(db)
            except sqlite3.Error as error:
                self._failed(what, error)
                return default

    def _write(self, what: str, operation: Callable[[sqlite3.Connection], None]) -> bool:
        """operation in one write transaction; False when it did not happen. BEGIN IMMEDIATE
        takes the write lock first, so a competing writer costs a wait (BUSY_TIMEOUT_S) at
        the start rather than a deadlock half-way."""

        def transaction(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                operation(db)
                db.execute("COMMIT")
            except BaseException:
                self._rollback(db)
                raise
            return True

        return self._run(what, False, transaction, write=True)

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _failed(self, what: str, error: sqlite3.Error) -> None:
        """A warning per kind of failure per minute: a store locked for an hour by another
        writer must not write a warning per keystroke."""
        if is_corrupt(error):
            self._corrupt = True
            reason = "the store is damaged and is rebuilt at the next learn"
        elif is_locked(error):
            reason = f"another writer kept it locked for {self.BUSY_TIMEOUT_S:g} s"
        else:
            reason = str(error)
        key = f"{what}: {reason}"
        now = time.monotonic()
        if now - self._warned.get(key, -WARNING_INTERVAL_S) >= WARNING_INTERVAL_S:
            self._warned[key] = now
            log.warning("project store %s: skipped %s: %s (%s)", self.path.name, what, reason, error)

    # -- learning ---------------------------------------------------------------------------

    def learn(self, paths: Iterable[Path] | None = None, progress: Progress | None = None) -> LearnReport:
        """Mine new and changed .py files under root (or under `paths` only: a saved file),
        forget deleted ones. Unchanged (size, mtime_ns) files are not opened."""
        started = time.perf_counter()
        if self._corrupt:
            self.reset()
        if not self.root.is_dir():
            log.warning("project root %s is not a directory: nothing learned, nothing forgotten", self.root)
            return LearnReport(0, 0, 0, time.perf_counter() - started)
        known = self._run("reading the file list", None, self._known_files)
        if known is None:
            return LearnReport(0, 0, 0, time.perf_counter() - started)
        found, scopes = self._scan(paths)
        gone = [path for path in known if path not in found and in_scope(path, scopes)]
        removed = len(gone) if gone and self._write("forgetting deleted files", lambda db: self._delete_files(db, gone)) else 0
        stale = [(path, seen) for path, seen in found.items() if known.get(path) != (*seen, MINER_VERSION)]
        read = self._mine(stale, progress)
        chmod_companions(self.path)
        return LearnReport(len(found), read, removed, time.perf_counter() - started)

    def _known_files(self, db: sqlite3.Connection) -> dict[str, tuple[int, int, int]]:
        rows = db.execute("SELECT path, size, mtime_ns, miner FROM files")
        return {path: (size, mtime_ns, miner) for path, size, mtime_ns, miner in rows}

    def _scan(self, paths: Iterable[Path] | None) -> tuple[dict[str, tuple[int, int]], list[str]]:
        """(eligible files in scope: relative path -> (size, mtime_ns), the scopes: relative
        paths, '' for the whole root, a trailing '/' for a directory)."""
        if paths is None:
            return dict(self._walk(self.root)), [""]
        found: dict[str, tuple[int, int]] = {}
        scopes: list[str] = []
        for given in paths:
            absolute = (self.root / given).resolve() if not Path(given).is_absolute() else Path(given).resolve()
            try:
                relative = absolute.relative_to(self.root).as_posix()
            except ValueError:
                continue
            if absolute.is_dir():
                scopes.append("" if relative == "." else relative + "/")
                found.update(self._walk(absolute))
            else:
                scopes.append(relative)
                seen = self._eligible(absolute, relative)
                if seen is not None:
                    found[relative] = seen
        return found, scopes

    def _walk(self, top: Path) -> Iterator[tuple[str, tuple[int, int]]]:
        for directory, dirs, files in os.walk(top):
            dirs[:] = sorted(name for name in dirs if not skipped_dir(name))
            for name in sorted(files):
                if name.endswith(".py"):
                    path = Path(directory, name)
                    relative = path.relative_to(self.root).as_posix()
                    seen = self._eligible(path, relative)
                    if seen is not None:
                        yield relative, seen

    def _eligible(self, path: Path, relative: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of a .py file learn should know, else None (gone, too big, in a
        skipped directory)."""
        parts = relative.split("/")
        if not parts[-1].endswith(".py") or any(skipped_dir(part) for part in parts[:-1]):
            return None
        try:
            status = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_FILE_BYTES:
            return None
        return status.st_size, status.st_mtime_ns

    def _mine(self, stale: list[tuple[str, tuple[int, int]]], progress: Progress | None) -> int:
        """Read and mine stale files, committing every BATCH_FILES files or BATCH_SECONDS;
        stops at the first batch the database refuses (locked), keeping what was written."""
        miner = Miner()
        batch: list[tuple[str, tuple[int, int], FileFacts]] = []
        batch_started = time.monotonic()
        read = 0
        for done, (relative, seen) in enumerate(stale, start=1):
            source = self._read(relative)
            if source is not None:
                read += 1
                batch.append((relative, seen, miner.mine(source)))
            if progress is not None:
                progress(done, len(stale), relative)
            if len(batch) >= BATCH_FILES or (batch and time.monotonic() - batch_started >= BATCH_SECONDS):
                if not self._store_batch(batch):
                    if progress is not None:
                        progress(len(stale), len(stale), "(stopped: the store is locked)")
                    return read
                batch, batch_started = [], time.monotonic()
        if not stale and progress is not None:
            progress(0, 0, "")
        if batch:
            self._store_batch(batch)
        return read

    def _read(self, relative: str) -> bytes | None:
        try:
            return (self.root / relative).read_bytes()
        except OSError as error:
            log.debug("not learning %s: %s", relative, error)
            return None

    def _store_batch(self, batch: list[tuple[str, tuple[int, int], FileFacts]]) -> bool:
        def write(db: sqlite3.Connection) -> None:
            for relative, (size, mtime_ns), facts in batch:
                self._replace_file(db, relative, size, mtime_ns, facts)

        return self._write("learning", write)

    def _replace_file(self, db: sqlite3.Connection, relative: str, size: int, mtime_ns: int, facts: FileFacts) -> None:
        self._delete_files(db, [relative])
        file_id = db.execute(
            "INSERT INTO files(path, size, mtime_ns, miner, double_quotes, single_quotes) VALUES (?, ?, ?, ?, ?, ?)",
            (relative, size, mtime_ns, MINER_VERSION, facts.double_quotes, facts.single_quotes),
        ).lastrowid
        db.executemany("INSERT INTO identifiers VALUES (?, ?, ?)", ((file_id, n, c) for n, c in facts.identifiers.items()))
        db.executemany("INSERT INTO attributes VALUES (?, ?, ?, ?)", ((file_id, r, n, c) for (r, n), c in facts.attributes.items()))
        db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?)", ((file_id, f, a, c) for (f, a), c in facts.calls.items()))
        db.executemany("INSERT INTO aliases VALUES (?, ?, ?, ?)", ((file_id, m, a, c) for (m, a), c in facts.aliases.items()))
        db.executemany("INSERT INTO indents VALUES (?, ?, ?)", ((file_id, s, c) for s, c in facts.indents.items()))
        for start_line, text in facts.snippets:
            snippet_id = db.execute(
                "INSERT INTO snippets(file_id, start_line, text) VALUES (?, ?, ?)", (file_id, start_line, text)
            ).lastrowid
            db.execute("INSERT INTO snippet_index(rowid, tokens) VALUES (?, ?)", (snippet_id, " ".join(search_tokens(text))))

    @staticmethod
    def _delete_files(db: sqlite3.Connection, relatives: list[str]) -> None:
        for relative in relatives:
            row = db.execute("SELECT id FROM files WHERE path = ?", (relative,)).fetchone()
            if row is None:
                continue
            db.execute("DELETE FROM snippet_index WHERE rowid IN (SELECT id FROM snippets WHERE file_id = ?)", row)
            for table in PER_FILE_TABLES:
                db.execute(f"DELETE FROM {table} WHERE file_id = ?", row)
            db.execute("DELETE FROM files WHERE id = ?", row)

    # -- reading ----------------------------------------------------------------------------

    def identifier_weights(self, limit: int = 2000) -> dict[str, float]:
        """Occurrences across the project plus decayed feedback, heaviest first; names whose
        weight feedback brought to zero or below are left out."""

        def read(db: sqlite3.Connection) -> dict[str, float]:
            feedback = self._feedback(db)
            rows = db.execute(
                "SELECT name, count FROM identifier_totals ORDER BY count DESC, name LIMIT ?", (limit + len(feedback),)
            )
            counts = {name: float(count) for name, count in rows}
            counts.update(db.execute("SELECT t.name, t.count FROM feedback f JOIN identifier_totals t ON t.name = f.name"))
            for name, weight in feedback.items():
                counts[name] = counts.get(name, 0.0) + weight
            ranked = sorted((item for item in counts.items() if item[1] > 0), key=lambda item: (-item[1], item[0]))
            return dict(ranked[:limit])

        return self._run("reading identifier weights", {}, read)

    def attribute_weights(self, receiver: str, limit: int = 200) -> dict[str, float]:
        """Attributes written after `receiver` (its source text, `self`, or a class name the
        miner could tell: `self` inside `class Foo`, a parameter annotated `x: Foo`)."""

        def read(db: sqlite3.Connection) -> dict[str, float]:
            rows = db.execute(
                "SELECT name, count FROM attribute_totals WHERE receiver = ? ORDER BY count DESC, name LIMIT ?",
                ("".join(receiver.split()), limit),
            )
            return {name: float(count) for name, count in rows}

        return self._run("reading attribute weights", {}, read)

    def call_patterns(self, callee: str) -> dict[int, int]:
        """Number of arguments -> how many calls of `callee` (dotted source text) had that many."""

        def read(db: sqlite3.Connection) -> dict[int, int]:
            rows = db.execute(
                "SELECT args_count, count FROM call_totals WHERE callee = ? ORDER BY count DESC, args_count", (callee,)
            )
            return dict(rows)

        return self._run("reading call patterns", {}, read)

    def import_aliases(self) -> dict[str, str]:
        """Module -> the name the project binds it to most, where that is not the module's
        own last name (`numpy` -> `np`, `matplotlib.pyplot` -> `plt`)."""

        def read(db: sqlite3.Connection) -> dict[str, str]:
            rows = db.execute("SELECT module, alias, sum(count) FROM aliases GROUP BY module, alias")
            best: dict[str, tuple[int, str]] = {}
            for module, alias, count in rows:
                if module not in best or (count, -len(alias)) > (best[module][0], -len(best[module][1])):
                    best[module] = (count, alias)
            return {module: alias for module, (_, alias) in sorted(best.items()) if alias != module.rsplit(".", 1)[-1]}

        return self._run("reading import aliases", {}, read)

    def style(self) -> Style:
        """The project's quote (single only when strictly more common) and indent step;
        DEFAULT_STYLE's where it has no evidence."""

        def read(db: sqlite3.Connection) -> Style:
            double, single = db.execute("SELECT coalesce(sum(double_quotes), 0), coalesce(sum(single_quotes), 0) FROM files").fetchone()
            step = db.execute("SELECT step FROM indents GROUP BY step ORDER BY sum(count) DESC, step LIMIT 1").fetchone()
            return Style(quote="'" if single > double else '"', indent=step[0] if step else DEFAULT_STYLE.indent)

        return self._run("reading the style", DEFAULT_STYLE, read)

    def similar_snippets(self, query: str, limit: int = 3, exclude_path: str | None = None) -> list[Snippet]:
        """Function-sized pieces of the project sharing the most (BM25-weighted) identifier
        parts with the last lines of `query`, the file being completed left out."""
        match = fts_query(query)
        if match is None or limit <= 0:
            return []
        excluded = self._relative(exclude_path)

        def read(db: sqlite3.Connection) -> list[Snippet]:
            skip = 0
            if excluded is not None:
                skip = db.execute(
                    "SELECT count(*) FROM snippets s JOIN files f ON f.id = s.file_id WHERE f.path = ?", (excluded,)
                ).fetchone()[0]
            rows = db.execute(
                """SELECT f.path, s.start_line, s.text, hit.rank
                   FROM (SELECT rowid, rank FROM snippet_index WHERE snippet_index MATCH ? ORDER BY rank LIMIT ?) hit
                   JOIN snippets s ON s.id = hit.rowid JOIN files f ON f.id = s.file_id
                   WHERE f.path IS NOT ? ORDER BY hit.rank LIMIT ?""",
                (match, limit + skip, excluded, limit),
            )
            return [Snippet(path, start_line, text, -rank) for path, start_line, text, rank in rows]

        return self._run("searching snippets", [], read)

    def _relative(self, path: str | Path | None) -> str | None:
        if path is None:
            return None
        given = Path(path)
        if not given.is_absolute():
            return given.as_posix()
        try:
            return given.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    # -- feedback ---------------------------------------------------------------------------

    def record_feedback(self, text: str, accepted: bool) -> None:
        """Each identifier of text gains ACCEPTED (or DISMISSED) on top of its decayed weight."""
        names = sorted(set(identifiers(text)))
        if not names:
            return
        delta = ACCEPTED if accepted else DISMISSED
        now = self.clock()

        def write(db: sqlite3.Connection) -> None:
            for name in names:
                row = db.execute("SELECT weight, updated FROM feedback WHERE name = ?", (name,)).fetchone()
                weight = decayed(row[0], now - row[1]) if row else 0.0
                weight = max(-FEEDBACK_CAP, min(FEEDBACK_CAP, weight + delta))
                db.execute("INSERT OR REPLACE INTO feedback(name, weight, updated) VALUES (?, ?, ?)", (name, weight, now))
            db.execute("DELETE FROM feedback WHERE updated < ?", (now - 10 * FEEDBACK_HALF_LIFE_S,))

        self._write("recording feedback", write)

    def _feedback(self, db: sqlite3.Connection) -> dict[str, float]:
        now = self.clock()
        rows = db.execute("SELECT name, weight, updated FROM feedback")
        return {name: decayed(weight, now - updated) for name, weight, updated in rows}

    # -- lifetime ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: a new, empty store in place of this one's file."""
        with self._write_lock, self._read_lock:
            self._close_connections()
            self._corrupt = False
            try:
                remove_store_files(self.path)
                self._writer, self._reader = connections(self.path, self.BUSY_TIMEOUT_S)
            except (OSError, Unavailable) as error:
                self._close_connections()
                log.warning("project store %s could not be recreated (%s): learning is off", self.path, error)

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._close_connections()

    def _close_connections(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
        self._reader = self._writer = None

    def __enter__(self) -> "ProjectStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decayed(weight: float, age_s: float) -> float:
    return weight * 0.5 ** (max(age_s, 0.0) / FEEDBACK_HALF_LIFE_S)


def in_scope(relative: str, scopes: list[str]) -> bool:
    return any(scope == "" or relative == scope or (scope.endswith("/") and relative.startswith(scope)) for scope in scopes)


__all__ = [
    "ProjectStore",
    "LearnReport",
    "Snippet",
    "Style",
    "cache_root",
    "store_path",
    "nearest_learned_root",
    "forget",
]
