"""`ast.parse` for a process that parses on more than one thread.

CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state: two
threads parsing at once can trip its consistency check with `SystemError: AST constructor
recursion depth mismatch` on perfectly good code (python/cpython#106905, fixed in 3.12).
Here they do: the planner parses on a request's thread while Jedi, looking members up in
the background, calls `ast.literal_eval`, and pytest rewrites a module it imports late. A
lock of ours alone would not cover the parses other libraries make, so `ast.parse` itself
is replaced, once, by the same function under one lock (`literal_eval` calls it too). Each
parse takes milliseconds.
"""

from __future__ import annotations

import ast
import sys
import threading

_PARSING = threading.RLock()
_UNLOCKED_PARSE = getattr(ast.parse, "__wrapped__", ast.parse)


def parse(source: str | bytes, filename: str = "<unknown>", mode: str = "exec", **options: object) -> ast.AST:
    """`ast.parse` (the same arguments), one thread at a time. Raises what ast.parse raises."""
    with _PARSING:
        return _UNLOCKED_PARSE(source, filename, mode, **options)


def install() -> None:
    """Make every `ast.parse` in the process take the lock (where the bug exists)."""
    if sys.version_info < (3, 12) and getattr(ast.parse, "__wrapped__", None) is None:
        parse.__wrapped__ = _UNLOCKED_PARSE  # type: ignore[attr-defined]
        ast.parse = parse  # type: ignore[assignment]


install()

__all__ = ["parse"]
