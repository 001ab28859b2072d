"""The last check of a constrained completion: the buffer with it spliced in still parses.

The grammar guarantees the statement it decoded; this check covers what the grammar
does not see (the code after the cursor, the grammar's known approximations). It only
applies when the buffer parses without the completion.
"""

from __future__ import annotations

import ast
import functools
import warnings


def parses(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes in the user's strings
            ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


@functools.lru_cache(maxsize=8)
def buffer_parses(text: str) -> bool:
    """`parses` for whole buffers, which repeat from one request to the next."""
    return parses(text)


def first_parsing(text: str, offset: int, candidates: list[str]) -> tuple[str, int]:
    """The first candidate that keeps `text` parseable when inserted at `offset`, and how many failed before it.

    When `text` does not parse as it is, the first candidate is taken unchecked.
    """
    if not candidates:
        return "", 0
    if not buffer_parses(text):
        return candidates[0], 0
    for rejected, candidate in enumerate(candidates):
        if parses(text[:offset] + candidate + text[offset:]):
            return candidate, rejected
    return "", len(candidates)
