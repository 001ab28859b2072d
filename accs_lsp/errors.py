"""How failures are told to users: one line, never a traceback."""

from __future__ import annotations


def one_line(error: BaseException, with_type: bool = False) -> str:
    """The first line of the error's message (its type's name when it has none)."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return f"{type(error).__name__}: {lines[0]}" if with_type else lines[0]
