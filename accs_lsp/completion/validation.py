"""The last check of a constrained completion: the buffer with it spliced in still parses.

The grammar guarantees the statement it decoded; this check covers what the grammar
does not see (the code after the cursor, the grammar's known approximations).
"""

from __future__ import annotations

import functools
import warnings

from accs_lsp.analysis import python_ast


def parses(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes in the user's strings
            python_ast.parse(source)
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
    candidates were passed over: the candidate stage's parse rule (completion.candidates.choose)
    on plain texts. When `text` parses as it is, a candidate that breaks it is never returned
    (the empty completion is the last resort); when it does not, one that repairs it is
    preferred, else the first one."""
    from accs_lsp.completion.candidates import Candidate, choose

    choice = choose(text, offset, [Candidate(candidate, "", rank) for rank, candidate in enumerate(candidates)])
    return (choice.candidate.text if choice.candidate else ""), choice.rejected
