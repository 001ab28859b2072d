"""`ast.parse` for code that runs on more than one thread.

CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state: two
threads parsing at once (the planner on a request's thread, member lookups in the
background) can trip its consistency check with `SystemError: AST constructor recursion
depth mismatch` on perfectly good code (python/cpython#106905). One lock makes the parses
take turns; each takes milliseconds.
"""

from __future__ import annotations

import ast
import threading

_PARSING = threading.Lock()


def parse(source: str, mode: str = "exec") -> ast.AST:
    """`ast.parse(source, mode=mode)`, one thread at a time. Raises what ast.parse raises."""
    with _PARSING:
        return ast.parse(source, mode=mode)


__all__ = ["parse"]
