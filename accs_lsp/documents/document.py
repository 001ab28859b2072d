"""A buffer's text and syntax tree, updated incrementally from LSP content changes."""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Iterable

import tree_sitter
import tree_sitter_python

from accs_lsp.documents.positions import UTF16, LineIndex, PositionError, end_point


log = logging.getLogger(__name__)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_revisions = itertools.count(1)


def without_lone_surrogates(text: str, uri: str) -> str:
    """JSON can carry half a UTF-16 surrogate pair, which no UTF-8 text (nor tree-sitter) can
    hold. Each becomes U+FFFD, one UTF-16 unit like the half it replaces, so the positions
    the editor sends still land where it means them."""
    if text.isascii() or not LONE_SURROGATE.search(text):
        return text
    replaced, count = LONE_SURROGATE.subn("\ufffd", text)
    log.warning("%s: replaced %d lone surrogate(s) with U+FFFD", uri, count)
    return replaced


@cache
def python_language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_python.language())


def new_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(python_language())


@dataclass(frozen=True)
class TextChange:
    """One LSP content change: a replaced range, or the whole text when `range` is None."""

    text: str
    range: tuple[tuple[int, int], tuple[int, int]] | None = None


@dataclass
class Document:
    uri: str
    text: str
    version: int = 0
    encoding: str = UTF16
    parser: tree_sitter.Parser = field(default_factory=new_parser, repr=False)
    # Unique over the session and renewed by every edit, so a document closed and reopened
    # at the same version (or edited without a new version) is told from the one before.
    revision: int = field(default_factory=lambda: next(_revisions))

    def __post_init__(self) -> None:
        self.text = without_lone_surrogates(self.text, self.uri)
        self.lines = LineIndex(self.text, self.encoding)
        self.tree = self.parser.parse(self.text.encode("utf-8"))

    def apply(self, changes: Iterable[TextChange], version: int | None = None) -> None:
        """Apply changes in order; each edit moves the tree before one incremental reparse."""
        for change in changes:
            text = without_lone_surrogates(change.text, self.uri)
            if change.range is None:
                self._replace_all(text)
            else:
                self._edit(change.range, text)
        self.tree = self.parser.parse(self.text.encode("utf-8"), self.tree)
        self.revision = next(_revisions)
        if version is not None:
            self.version = version

    def _replace_all(self, text: str) -> None:
        self.text = text
        self.lines = LineIndex(text, self.encoding)
        self.tree = self.parser.parse(text.encode("utf-8"))

    def _edit(self, lsp_range: tuple[tuple[int, int], tuple[int, int]], new_text: str) -> None:
        (start_line, start_char), (end_line, end_char) = lsp_range
        start = self.lines.offset_at(start_line, start_char)
        end = self.lines.offset_at(end_line, end_char)
        if end < start:
            raise PositionError(f"change range ends before it starts: {lsp_range}")
        start_point = self.lines.point_at(start)
        old_end_point = self.lines.point_at(end)
        start_byte = self.lines.byte_offset(start)
        old_end_byte = start_byte + len(self.text[start:end].encode("utf-8"))
        new_end_point = end_point(start_point, new_text)
        self.tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=start_byte + len(new_text.encode("utf-8")),
            start_point=(start_point.row, start_point.column),
            old_end_point=(old_end_point.row, old_end_point.column),
            new_end_point=(new_end_point.row, new_end_point.column),
        )
        self.text = self.text[:start] + new_text + self.text[end:]
        self.lines = LineIndex(self.text, self.encoding)

    def offset_at(self, line: int, character: int, *, strict: bool = False) -> int:
        return self.lines.offset_at(line, character, strict=strict)

    def byte_offset(self, offset: int) -> int:
        return self.lines.byte_offset(offset)

    def snapshot(self) -> "Snapshot":
        """An immutable view for another thread: later edits don't touch it."""
        return Snapshot(self.uri, self.text, self.version, self.lines, self.tree.copy(), self.revision)


@dataclass(frozen=True)
class Snapshot:
    """One version of a document: text, line index and tree, safe to read from any thread."""

    uri: str
    text: str
    version: int
    lines: LineIndex
    tree: tree_sitter.Tree
    revision: int = 0

    def offset_at(self, line: int, character: int, *, strict: bool = False) -> int:
        return self.lines.offset_at(line, character, strict=strict)

    def byte_offset(self, offset: int) -> int:
        return self.lines.byte_offset(offset)


class DocumentStore:
    """The open documents of a session, by URI."""

    def __init__(self, encoding: str = UTF16) -> None:
        self._documents: dict[str, Document] = {}
        self.encoding = encoding

    def open(self, uri: str, text: str, version: int = 0) -> Document:
        document = Document(uri, text, version, self.encoding)
        self._documents[uri] = document
        return document

    def change(self, uri: str, changes: Iterable[TextChange], version: int | None) -> Document:
        document = self.get(uri)
        document.apply(changes, version)
        return document

    def close(self, uri: str) -> None:
        self._documents.pop(uri, None)

    def get(self, uri: str) -> Document:
        try:
            return self._documents[uri]
        except KeyError:
            raise KeyError(f"document is not open: {uri}") from None

    def is_current(self, snapshot: Snapshot) -> bool:
        """Whether the document the snapshot was taken from is still open, unchanged."""
        document = self._documents.get(snapshot.uri)
        return document is not None and document.revision == snapshot.revision

    def __contains__(self, uri: str) -> bool:
        return uri in self._documents
