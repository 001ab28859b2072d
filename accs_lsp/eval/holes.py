"""Cursor positions ("holes") to complete, taken from real code.

Kinds: a statement start, mid-expression (the right operand of a binary
operator), after ".", inside a call's parentheses, and an empty line inside a
block (inserted after a statement of a function body, so the buffer still parses).
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path

from accs_lsp.analysis import python_ast

HOLE_KINDS = ("statement", "expression", "attribute", "call", "block")


@dataclass(frozen=True)
class Hole:
    name: str
    kind: str
    text: str  # the buffer, as the editor would hold it
    offset: int  # the cursor, as a str offset into `text`


def holes_in(path: Path, per_kind: int = 2, seed: int = 0) -> list[Hole]:
    """Up to `per_kind` holes of each kind from one file, chosen by a seeded draw.

    A file that does not parse has none: the parse rate is measured against a buffer that parses.
    """
    text = path.read_text(encoding="utf-8")
    try:
        tree = python_ast.parse(text)
    except SyntaxError:
        return []
    starts = line_starts(text)
    found: dict[str, list[Hole]] = {kind: [] for kind in HOLE_KINDS}
    for node in ast.walk(tree):
        for kind, offset in offsets_for(node, text, starts):
            found[kind].append(Hole(f"{path.name}:{kind}@{offset}", kind, text, offset))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found["block"].append(blank_line_hole(path.name, text, starts, node.body[0]))
    chosen: list[Hole] = []
    draw = random.Random(seed)
    for kind in HOLE_KINDS:
        candidates = sorted(set(found[kind]), key=lambda hole: hole.offset)
        chosen.extend(draw.sample(candidates, min(per_kind, len(candidates))))
    return chosen


def line_starts(text: str) -> list[int]:
    starts = [0]
    for index, character in enumerate(text):
        if character == "\n":
            starts.append(index + 1)
    return starts


def offsets_for(node: ast.AST, text: str, starts: list[int]) -> list[tuple[str, int]]:
    def at(line: int, column: int) -> int:
        # ast columns are UTF-8 byte offsets; the fixtures are ASCII where holes fall.
        return starts[line - 1] + column

    if isinstance(node, ast.stmt) and not hasattr(node, "body"):
        return [("statement", at(node.lineno, node.col_offset))]
    if isinstance(node, ast.BinOp):
        return [("expression", at(node.right.lineno, node.right.col_offset))]
    if isinstance(node, ast.Attribute) and node.end_lineno == node.value.end_lineno:
        end = at(node.end_lineno, node.end_col_offset)
        return [("attribute", end - len(node.attr))]
    if isinstance(node, ast.Call) and node.args:
        first = node.args[0]
        return [("call", at(first.lineno, first.col_offset))]
    return []


def blank_line_hole(name: str, text: str, starts: list[int], statement: ast.stmt) -> Hole:
    """An empty line, indented like `statement`, inserted after it."""
    end_line = statement.end_lineno or statement.lineno
    line_end = starts[end_line] - 1 if end_line < len(starts) else len(text)
    indent = " " * statement.col_offset
    buffer = text[:line_end] + "\n" + indent + text[line_end:]
    return Hole(f"{name}:block@{line_end}", "block", buffer, line_end + 1 + len(indent))
