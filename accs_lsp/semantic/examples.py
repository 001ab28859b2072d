"""What the function at the cursor should return: its examples, from three sources.

- doctests in its docstring (`>>> f(2)` then `4`);
- `# accs: f([1, 2]) == ["1", "2"]` comments anywhere in the buffer;
- `assert f(...) == ...` in the project's test files (`test_*.py`, `*_test.py`).

The buffer is usually broken where the user types, so the enclosing `def` is found with
tree-sitter, which recovers from errors, and a cursor on the blank lines right after a
function's last statement (HumanEval's prompts end with the docstring) is still inside it.
Methods are left out: running one needs an instance. An example is kept only when every
name it uses is a builtin, a name the module binds at its top level, or the function's:
one that needs a doctest's earlier statement or a test file's fixture would fail for every
candidate and tell them apart by nothing.
"""

from __future__ import annotations

import ast
import builtins
import doctest
import functools
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from tree_sitter import Node, Tree

from accs_lsp.analysis import python_ast
from accs_lsp.documents.document import new_parser

SKIPPED_DIRECTORIES = frozenset({".venv", "venv", "node_modules", ".git", "site-packages", "__pycache__"})
MAX_TEST_FILES = 200
MAX_TEST_FILE_BYTES = 512 << 10
MAX_TEST_BYTES_READ = 8 << 20
MAX_DIRECTORIES = 2000
TEST_LIST_TTL_S = 5.0

COMMENT = re.compile(r"#\s*accs:\s*(.+?)\s*$")
BUILTIN_NAMES = frozenset(dir(builtins))
ANY_NAME = "*"



@dataclass(frozen=True)
class Example:
    call: str  # a Python expression, e.g. "f(2)"
    expected: str  # an expression, or the displayed text when `compare_repr`
    source: str  # "doctest" | "test" | "comment"
    line: int  # 0-based, in the file where it was found
    compare_repr: bool = False


@dataclass(frozen=True)
class FunctionExamples:
    name: str
    start_line: int  # 0-based, the `def` line
    end_line: int
    examples: tuple[Example, ...]


@dataclass(frozen=True)
class Chunk:
    """One top-level statement of a module (or a piece of a region that did not parse)."""

    start_line: int
    end_line: int
    text: str
    tree: ast.Module | None  # None where the text does not parse


@dataclass(frozen=True)
class _Assert:
    name: str
    call: str
    expected: str
    line: int


_TEST_ASSERTS: dict[Path, tuple[int, int, tuple[_Assert, ...]]] = {}
_TEST_FILES: dict[Path, tuple[float, tuple[Path, ...]]] = {}


def examples_at(
    buffer: str, offset: int, project_root: Path | None = None, max_examples: int = 16
) -> FunctionExamples | None:
    """The examples of the module-level or nested function enclosing `offset`; None in a
    method, outside any function, or where the function has none."""
    source = buffer.encode("utf-8")
    tree = parse(source)
    function = enclosing_function(tree, source, len(buffer[:offset].encode("utf-8")))
    if function is None or is_method(function):
        return None
    name = function_name(function)
    found = [*doctest_examples(function, name), *comment_examples(buffer, name)]
    if project_root is not None:
        found += test_examples(project_root, name)
    if not found:
        return None
    available = module_names(top_level_chunks(buffer, tree)) | BUILTIN_NAMES | {name}
    kept = _unique(usable for e in found if (usable := _usable(e, available)) is not None)
    if not kept:
        return None
    return FunctionExamples(name, function.start_point.row, function.end_point.row, tuple(kept[:max_examples]))


def parse(source: bytes) -> Tree:
    """A fresh parser per call: tree-sitter parsers are not shared between threads."""
    return new_parser().parse(source)


def enclosing_function(tree: Tree, source: bytes, cursor: int) -> Node | None:
    """The innermost `function_definition` holding the byte offset `cursor`, counting the
    blank lines after its end when the cursor's line is empty or indented past the `def`."""
    found: Node | None = None
    node = tree.root_node
    while True:
        child = _last_child_before(node, cursor)
        if child is None or not _holds(child, source, cursor):
            return found
        if child.type == "function_definition":
            found = child
        node = child


def _last_child_before(node: Node, cursor: int) -> Node | None:
    children = [c for c in node.children if c.start_byte < cursor or c.start_byte == cursor == c.end_byte]
    return children[-1] if children else None


def _holds(node: Node, source: bytes, cursor: int) -> bool:
    if cursor <= node.end_byte:
        return True
    if source[node.end_byte : cursor].strip():
        return False
    if node.type != "function_definition":
        return True
    line_start = source.rfind(b"\n", 0, cursor) + 1
    column = cursor - line_start
    return column > node.start_point.column or not source[line_start:cursor]


def is_method(function: Node) -> bool:
    """Defined directly in a class body (through decorators and blocks), not in a function."""
    parent = function.parent
    while parent is not None:
        if parent.type == "class_definition":
            return True
        if parent.type in ("function_definition", "module"):
            return False
        parent = parent.parent
    return False


def function_name(function: Node) -> str:
    name = function.child_by_field_name("name")
    return name.text.decode("utf-8") if name is not None and name.text else ""


def docstring(function: Node) -> tuple[str, str, int] | None:
    """The docstring's value, its text as written between the quotes, and the line its
    opening quotes are on."""
    body = function.child_by_field_name("body")
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is None or first.type != "expression_statement" or not first.named_children:
        return None
    string = first.named_children[0]
    if string.type not in ("string", "concatenated_string") or not string.text:
        return None
    written = string.text.decode("utf-8", errors="replace")
    try:
        value = ast.literal_eval(written)
    except (ValueError, SyntaxError):
        return None
    return (value, _between_quotes(written), string.start_point.row) if isinstance(value, str) else None


def _between_quotes(written: str) -> str:
    body = written.lstrip("rRbBuUfF")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    return body[len(quote) : len(body) - len(quote)]


def doctest_examples(function: Node, name: str) -> list[Example]:
    """Its docstring's `>>>` examples that are expressions mentioning the function, with an
    output that is not a traceback, or `>>> f(x) == y` with none; those using a name an
    earlier statement bound are left out (the statement is not run)."""
    found = docstring(function)
    if found is None:
        return []
    value, written, first_line = found
    parsed = _doctests(value, name) or _doctests(written, name)
    examples: list[Example] = []
    bound: set[str] = set()
    for example in parsed:
        expression = _expression(example.source)
        if expression is None:
            bound |= _statement_names(example.source)
            continue
        if _names(expression) & bound or example.exc_msg is not None:
            continue
        found_example = _doctest_example(example, expression, name, first_line + example.lineno)
        if found_example is not None:
            examples.append(found_example)
    return examples


def _doctests(text: str, name: str) -> list[doctest.Example]:
    """The docstring's examples; none where it does not parse as doctests (as one whose
    `\\n` escapes became line breaks: then its text as written is tried)."""
    try:
        return doctest.DocTestParser().get_examples(text, name)
    except ValueError:
        return []


def _doctest_example(example: doctest.Example, expression: ast.expr, name: str, line: int) -> Example | None:
    """Compare values where the output reads as an expression; the displayed text where it
    does not, or where the call prints instead of returning."""
    want = example.want.rstrip("\n")
    if not want.strip():
        compared = _compared_call(expression)
        return Example(compared[1], compared[2], "doctest", line) if compared and compared[0] == name else None
    if name not in _names(expression):
        return None
    call = example.source.strip()
    function = expression.func if isinstance(expression, ast.Call) else None
    prints = isinstance(function, ast.Name) and function.id == "print"
    as_value = not prints and _expression(want) is not None
    return Example(call, want.strip() if as_value else want, "doctest", line, compare_repr=not as_value)


def comment_examples(buffer: str, name: str) -> list[Example]:
    """`# accs: CALL == EXPECTED` comments whose call names the function."""
    examples = []
    for line, text in enumerate(buffer.splitlines()):
        match = COMMENT.search(text)
        found = _call_equals(match.group(1), name) if match else None
        if found is not None:
            examples.append(Example(*found, "comment", line))
    return examples


def _call_equals(text: str, name: str) -> tuple[str, str] | None:
    expression = _expression(text)
    found = _compared_call(expression) if expression is not None else None
    return (found[1], found[2]) if found is not None and found[0] == name else None


def _compared_call(test: ast.expr) -> tuple[str, str, str] | None:
    """For `f(...) == X` or `module.f(...) == X`: ("f", "f(...)") and "X"; rewritten as a
    call by bare name since the harness defines the function at its top level."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    call = test.left
    if not isinstance(call, ast.Call):
        return None
    name = _dotted_last(call.func)
    if name is None:
        return None
    bare = ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=call.args, keywords=call.keywords)
    return name, ast.unparse(bare), ast.unparse(test.comparators[0])


def _dotted_last(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and _dotted_last(func.value) is not None:
        return func.attr
    return None


def test_examples(project_root: Path, name: str) -> list[Example]:
    """The project's test asserts on the function, from files read once per modification."""
    examples = []
    budget = [MAX_TEST_BYTES_READ]
    for path in _test_files(project_root):
        for found in _asserts(path, budget):
            if found.name == name:
                examples.append(Example(found.call, found.expected, "test", found.line))
    return examples


def _test_files(root: Path) -> tuple[Path, ...]:
    """The test files under `root`, listed again after `TEST_LIST_TTL_S`: completions come
    at typing speed, and a walk of a large project is not free."""
    root = root.resolve()
    cached = _TEST_FILES.get(root)
    now = time.monotonic()
    if cached is not None and now - cached[0] < TEST_LIST_TTL_S:
        return cached[1]
    files = tuple(_walk_tests(root))
    _TEST_FILES[root] = (now, files)
    return files


def _walk_tests(root: Path) -> Iterator[Path]:
    found = 0
    for visited, (directory, subdirectories, files) in enumerate(os.walk(root)):
        if visited >= MAX_DIRECTORIES:
            return
        subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRECTORIES and not d.startswith("."))
        for file in sorted(files):
            if file.endswith(".py") and (file.startswith("test_") or file.endswith("_test.py")):
                yield Path(directory) / file
                found += 1
                if found >= MAX_TEST_FILES:
                    return


def _asserts(path: Path, budget: list[int]) -> tuple[_Assert, ...]:
    """The file's `assert CALL == X` statements, cached by (modification time, size);
    `budget` bounds the bytes read on cache misses in one request."""
    try:
        status = path.stat()
    except OSError:
        return ()
    cached = _TEST_ASSERTS.get(path)
    if cached is not None and cached[:2] == (status.st_mtime_ns, status.st_size):
        return cached[2]
    if status.st_size > MAX_TEST_FILE_BYTES or status.st_size > budget[0]:
        return ()
    budget[0] -= status.st_size
    try:
        tree = python_ast.parse(path.read_bytes().decode("utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        tree = None
    found = tuple(_asserts_in(tree)) if tree is not None else ()
    _TEST_ASSERTS[path] = (status.st_mtime_ns, status.st_size, found)
    return found


def _asserts_in(tree: ast.Module) -> Iterator[_Assert]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            found = _compared_call(node.test)
            if found is not None:
                yield _Assert(*found, node.lineno - 1)


def top_level_chunks(text: str, tree: Tree) -> list[Chunk]:
    """The module's top-level statements, each with its `ast` where it parses on its own;
    an error region is cut further at the lines that start at column 0."""
    lines = text.splitlines(keepends=True)
    chunks: list[Chunk] = []
    for node in tree.root_node.children:
        if node.type == "comment":
            continue
        start, end = node.start_point.row, _last_row(node)
        chunk = _chunk(lines, start, end)
        if chunk.tree is None and node.type == "ERROR":
            chunks += _split(lines, start, end)
        else:
            chunks.append(chunk)
    return chunks


def _last_row(node: Node) -> int:
    """The node's last line (a node ending at column 0 ends on the line before)."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _chunk(lines: list[str], start: int, end: int) -> Chunk:
    text = "".join(lines[start : end + 1])
    return Chunk(start, end, text, _parsed(text))


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> ast.Module | None:
    """Cached: each candidate's spliced buffer repeats the statements outside its function
    (the trees are only read)."""
    try:
        return python_ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _split(lines: list[str], start: int, end: int) -> list[Chunk]:
    starts = [row for row in range(start, end + 1) if lines[row][:1] not in ("", " ", "\t", "\n", "\r", "#")]
    bounds = zip(starts, [*starts[1:], end + 1])
    return [_chunk(lines, a, b - 1) for a, b in bounds]


def module_names(chunks: Iterable[Chunk]) -> set[str]:
    """The names the module's top-level statements bind (not those inside functions or
    classes); `ANY_NAME` where one is a star import."""
    names: set[str] = set()
    for chunk in chunks:
        if chunk.tree is not None:
            for statement in chunk.tree.body:
                _bind(statement, names)
    return names


def _bind(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(node.name)
        return
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names.update(ANY_NAME if a.name == "*" else a.asname or a.name.split(".")[0] for a in node.names)
        return
    if isinstance(node, ast.Lambda):
        return
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        names.add(node.id)
    for child in ast.iter_child_nodes(node):
        _bind(child, names)


def _expression(text: str) -> ast.expr | None:
    try:
        return python_ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None


def _statement_names(text: str) -> set[str]:
    try:
        tree = python_ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    return module_names([Chunk(0, 0, text, tree)])


def _names(expression: ast.expr) -> set[str]:
    """The free names an expression reads (those its comprehensions and lambdas bind are not)."""
    loaded, bound = set(), set()
    for node in ast.walk(expression):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound


def _usable(example: Example, available: set[str]) -> Example | None:
    """The example where the names it uses are there when it runs; an expected value whose
    names are not is compared as displayed text (a doctest printing a bare word)."""
    if ANY_NAME in available:
        return example
    call = _expression(example.call)
    if call is None or not _names(call) <= available:
        return None
    expected = None if example.compare_repr else _expression(example.expected)
    if expected is not None and not _names(expected) <= available:
        if example.source != "doctest":
            return None
        return Example(example.call, example.expected, example.source, example.line, compare_repr=True)
    return example


def _unique(examples: Iterable[Example]) -> list[Example]:
    seen: set[tuple[str, str, bool]] = set()
    kept = []
    for example in examples:
        key = (example.call, example.expected, example.compare_repr)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept
