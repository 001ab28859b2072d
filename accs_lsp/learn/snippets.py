"""Search tokens for the snippet index, shared by the miner (indexing) and the store (queries).

Both sides must split text the same way or BM25 finds nothing, and the query side is the
text before the cursor, which rarely parses: so tokens come from a regex over raw text, not
from a syntax tree. An identifier yields itself and its snake/camel parts, so `parse_url`
written at the cursor finds a snippet that calls `urlparse` through the shared part `url`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Iterator

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")
KEYWORDS = frozenset(keyword.kwlist)
MAX_SNIPPET_LINES = 40
QUERY_LINES = 30
MAX_QUERY_TOKENS = 96


def identifiers(text: str) -> Iterator[str]:
    """The identifiers in raw text, keywords left out."""
    for match in IDENTIFIER.finditer(text):
        name = match.group()
        if name not in KEYWORDS:
            yield name


def identifier_parts(name: str) -> list[str]:
    """`parseHTTPResponse_v2` -> parse, http, response, v2: lowercased, one letter dropped
    (too common to rank anything)."""
    parts: list[str] = []
    for piece in name.split("_"):
        parts.extend(part.lower() for part in CAMEL_PART.findall(piece))
    return [part for part in parts if len(part) > 1]


def search_tokens(text: str) -> list[str]:
    """Every identifier of text (lowercased) followed by its parts, in order, repeats kept:
    BM25 wants term frequencies."""
    tokens: list[str] = []
    for name in identifiers(text):
        whole = name.lower()
        parts = identifier_parts(name)
        if len(whole) > 1 and parts != [whole]:
            tokens.append(whole)
        tokens.extend(parts)
    return tokens


def fts_query(text_before_cursor: str, lines: int = QUERY_LINES) -> str | None:
    """An FTS5 OR-query over the distinct tokens of the last `lines` lines, the nearest
    tokens kept when there are too many; None when there is nothing to look for. Tokens are
    [a-z0-9_] only, so quoting each one is enough to make the query safe."""
    tail = "\n".join(text_before_cursor.splitlines()[-lines:])
    distinct = list(dict.fromkeys(reversed(search_tokens(tail))))[:MAX_QUERY_TOKENS]
    if not distinct:
        return None
    return " OR ".join(f'"{token}"' for token in distinct)


def chunks(lines: list[str], first_line: int, size: int = MAX_SNIPPET_LINES) -> Iterable[tuple[int, str]]:
    """(start line, text) pieces of at most `size` lines: long functions become several
    snippets, so a hit returns the part that matched and a prompt never takes a whole file."""
    for offset in range(0, len(lines), size):
        piece = "\n".join(lines[offset : offset + size]).rstrip()
        if piece.strip():
            yield first_line + offset, piece


__all__ = ["identifiers", "identifier_parts", "search_tokens", "fts_query", "chunks", "MAX_SNIPPET_LINES", "KEYWORDS"]
