"""The last check of a constrained completion: the buffer with it spliced in still parses.

The grammar guarantees the statement it decoded; this check covers what the grammar
does not see (the code after the cursor, the grammar's known approximations).
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


REPAIR_TRIES = 4


@functools.lru_cache(maxsize=8)
def buffer_parses(text: str) -> bool:
    """`parses` for whole buffers, which repeat from one request to the next."""
    return parses(text)


def first_parsing(text: str, offset: int, candidates: list[str]) -> tuple[str, int]:
    """The first candidate that leaves `text` parseable when inserted at `offset`, and how many
    candidates were passed over.

    When `text` parses as it is, a candidate that breaks it is never returned (the empty
    completion is the last resort). When it does not (code being typed), a candidate that
    repairs it is preferred, else the first one.
    """
    if not candidates:
        return "", 0
    broken = not buffer_parses(text)
    # A broken buffer is the common case while typing: bound the parses spent on repairs.
    tried = candidates[:REPAIR_TRIES] if broken else candidates
    for rejected, candidate in enumerate(tried):
        if parses(text[:offset] + candidate + text[offset:]):
            return candidate, rejected
    if broken:
        return candidates[0], 0
    return "", len(candidates)
