"""Run a candidate's function on its examples in the sandbox, and count what passes.

The candidate is spliced into the buffer; the program run is built from it without the
rest of the module's side effects and in spite of its broken parts: of the top-level
statements (tree-sitter's, which recover from errors) those that parse and only define
(imports, assignments, `def`, `class`, `if`, `try`) are run each under `try` (a failing
import does not take the rest with it), with `__name__ == "accs_candidate"`; then the
function itself, which must compile. A nested function is run as a top-level one (a
closure over its enclosing function's names fails its examples).

A harness then evaluates each example under its own share of the time (a SIGALRM timer)
with the candidate's prints captured, and writes one result line behind a nonce drawn for
the run, which the candidate's own prints cannot know; the sandbox's deadline is the hard
bound. Each candidate runs in a process of its own, a few at a time, so one that hangs only
fails itself.
"""

from __future__ import annotations

import __future__
import ast
import json
import re
import secrets
import signal
from dataclasses import dataclass
from typing import Sequence

from tree_sitter import Tree

from accs_lsp.sandbox import SandboxResult, run_many
from accs_lsp.semantic.examples import (
    Chunk,
    FunctionExamples,
    enclosing_function,
    function_name,
    parse,
    top_level_chunks,
)

MAX_CACHED = 256
STARTUP_S = 0.15
DEFINING = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.If,
    ast.Try,
    ast.Pass,
)
EXCEPTION_LINE = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Exit|Interrupt))\b")

HARNESS = r"""
import io, json, math, os, signal, sys, time

class _Timeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _Timeout()

def _same(value, expected):
    if isinstance(value, float) and isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12)
    return bool(value == expected)

def _shown(value, printed):
    return (printed + ("" if value is None else repr(value) + "\n")).strip()

def _passes(call, expected, compare_repr, namespace):
    printed = sys.stdout = io.StringIO()
    value = eval(compile(call, "<example>", "eval", FLAGS, True), namespace)
    if not compare_repr:
        try:
            wanted = eval(compile(expected, "<expected>", "eval", FLAGS, True), namespace)
        except Exception:
            pass
        else:
            return _same(value, wanted)
    return _shown(value, printed.getvalue()) == expected.strip()

def _timed(budget, run, *args):
    signal.setitimer(signal.ITIMER_REAL, max(0.01, budget))
    try:
        return run(*args)
    except BaseException:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.stdout = io.StringIO()

def _define(source, namespace):
    exec(compile(source, "<candidate>", "exec", FLAGS, True), namespace)

def _main():
    deadline = time.monotonic() + BUDGET
    signal.signal(signal.SIGALRM, _alarm)
    sys.stdout = io.StringIO()
    namespace = {"__name__": "accs_candidate", "__builtins__": __builtins__}
    for source in CHUNKS:
        try:
            _define(source, namespace)
        except BaseException:
            pass
    passed = 0
    for left, (call, expected, compare_repr) in enumerate(EXAMPLES):
        budget = (deadline - time.monotonic()) / (len(EXAMPLES) - left)
        try:
            passed += _timed(budget, _passes, call, expected, compare_repr, namespace) is True
        except BaseException:
            pass
    result = json.dumps({"checked": len(EXAMPLES), "passed": passed})
    os.write(1, f"{NONCE} {result}\n".encode())
    os._exit(0)

_main()
"""


@dataclass(frozen=True)
class CheckOutcome:
    checked: int
    passed: int
    error: str | None = None  # why none ran: "timeout", "SyntaxError", an exception's name


class ExampleCheck:
    """A candidate check (`constraints.pipeline.CandidateCheck`): the candidate passes when
    its function passes every example."""

    def __init__(self, function: FunctionExamples, timeout_s: float = 2.0, memory_mb: int = 512) -> None:
        self.function = function
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._outcomes: dict[tuple[int, int, int, str], CheckOutcome] = {}

    def score(self, buffer: str, offset: int, candidate: str) -> CheckOutcome:
        return self.score_all(buffer, offset, [candidate])[0]

    def score_all(self, buffer: str, offset: int, candidates: Sequence[str]) -> list[CheckOutcome]:
        """Each candidate's outcome, those not scored before run concurrently; cached by
        the candidate's text (and the buffer's hash and the offset)."""
        keys = [(hash(buffer), len(buffer), offset, candidate) for candidate in candidates]
        missing = list(dict.fromkeys(k for k in keys if k not in self._outcomes))
        built = {k: self.program(buffer[:offset] + k[3] + buffer[offset:]) for k in missing}
        programs = list(dict.fromkeys(p for p in built.values() if isinstance(p, str)))
        nonces = [secrets.token_hex(16) for _ in programs]
        scripts = [f"NONCE = {nonce!r}\n{program}" for nonce, program in zip(nonces, programs)]
        results = run_many(scripts, self.timeout_s, self.memory_mb)
        ran = {p: self._outcome(r, n) for p, n, r in zip(programs, nonces, results)}
        for key, program in built.items():
            self._remember(key, program if isinstance(program, CheckOutcome) else ran[program])
        return [self._outcomes[k] for k in keys]

    def passes(self, buffer: str, offset: int, candidate: str) -> bool:
        outcome = self.score(buffer, offset, candidate)
        return outcome.checked > 0 and outcome.passed == outcome.checked

    def is_critical(self, candidate: str, buffer: str | None = None, offset: int | None = None) -> bool:
        """Whether the candidate ends a statement or a block, so that running it is worth
        it: its text ends a line (the pipeline cuts candidates at complete points, and
        one that ends a line ends what it completed). Given the buffer, a candidate that
        ends where the cursor's line has nothing more also counts."""
        if candidate.rstrip(" \t").endswith("\n"):
            return True
        if buffer is None or offset is None or not candidate.strip():
            return False
        return not buffer[offset:].split("\n", 1)[0].strip()

    def program(self, spliced: str) -> str | CheckOutcome:
        """The program that runs the examples on the spliced buffer (without its nonce),
        or the outcome where the function does not compile."""
        sources = self._sources(spliced)
        if sources is None:
            return self._failed("SyntaxError")
        before, function, after = sources
        flags = _future_flags([*before, *after])
        try:
            compile(function, "<candidate>", "exec", flags, True)
        except (SyntaxError, ValueError):
            return self._failed("SyntaxError")
        examples = [(e.call, e.expected, e.compare_repr) for e in self.function.examples]
        budget = max(0.1, 0.8 * self.timeout_s - STARTUP_S)
        chunks = [c.text for c in before] + [function] + [c.text for c in after]
        return f"CHUNKS = {chunks!r}\nEXAMPLES = {examples!r}\nBUDGET = {budget!r}\nFLAGS = {flags!r}\n{HARNESS}"

    def _sources(self, spliced: str) -> tuple[list[Chunk], str, list[Chunk]] | None:
        """The module's defining statements before the function, its text, and those after
        it; a nested function comes after all of them."""
        source = spliced.encode("utf-8")
        tree = parse(source)
        lines = spliced.splitlines(keepends=True)
        region = _function_region(tree, source, lines, self.function)
        if region is None:
            return None
        start, end, column = region
        outside = [c for c in top_level_chunks(spliced, tree) if c.end_line < start or c.start_line > end]
        kept = [c for c in outside if c.tree is not None and all(isinstance(s, DEFINING) for s in c.tree.body)]
        function = _dedent(lines[start : end + 1], column)
        if column > 0:
            return kept, function, []
        return [c for c in kept if c.end_line < start], function, [c for c in kept if c.start_line > end]

    def _failed(self, error: str) -> CheckOutcome:
        return CheckOutcome(len(self.function.examples), 0, error)

    def _outcome(self, result: SandboxResult, nonce: str) -> CheckOutcome:
        marker = nonce + " "
        for line in result.stdout.splitlines():
            if line.startswith(marker):
                try:
                    counts = json.loads(line[len(marker) :])
                    return CheckOutcome(int(counts["checked"]), int(counts["passed"]))
                except (ValueError, KeyError, TypeError):
                    break
        if result.timed_out:
            return self._failed("timeout")
        return self._failed(_exception_name(result.stderr) or _exit_reason(result.returncode))

    def _remember(self, key: tuple[int, int, int, str], outcome: CheckOutcome) -> None:
        if len(self._outcomes) >= MAX_CACHED:
            self._outcomes.pop(next(iter(self._outcomes)))
        self._outcomes[key] = outcome


def _function_region(
    tree: Tree, source: bytes, lines: list[str], function: FunctionExamples
) -> tuple[int, int, int] | None:
    """The lines of the function (decorators included) in the spliced buffer, and its
    column: tree-sitter's node, then the lines after it indented past the `def` (those
    its error recovery left outside belong to the function for Python); from the `def`
    line by indentation alone where tree-sitter found no function there."""
    if function.start_line >= len(lines):
        return None
    header = lines[function.start_line]
    column = len(header) - len(header.lstrip())
    inside_header = len("".join(lines[: function.start_line]).encode("utf-8")) + column + 1
    node = enclosing_function(tree, source, inside_header)
    if node is not None and node.start_point.row == function.start_line and function_name(node) == function.name:
        outer = node.parent if node.parent is not None and node.parent.type == "decorated_definition" else node
        start, end = outer.start_point.row, node.end_point.row
    elif header.lstrip().startswith(("def ", "async def ")):
        start = end = function.start_line
    else:
        return None
    while end + 1 < len(lines) and _inside(lines[end + 1], column):
        end += 1
    while end > start and not lines[end].strip():
        end -= 1
    return start, end, column


def _inside(line: str, column: int) -> bool:
    """Blank, a comment, or indented past `column`."""
    stripped = line.lstrip()
    return not stripped or stripped.startswith("#") or len(line) - len(stripped) > column


def _dedent(lines: list[str], column: int) -> str:
    """The lines without the `def`'s indentation (lines indented less, inside a string,
    lose what they have)."""
    return "".join(line[min(column, len(line) - len(line.lstrip(" \t"))) :] for line in lines)


def _future_flags(chunks: Sequence[Chunk]) -> int:
    """The compiler flags of the module's `from __future__` imports, which `exec` of each
    statement on its own would lose."""
    flags = 0
    for chunk in chunks:
        for statement in chunk.tree.body if chunk.tree is not None else ():
            if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
                for alias in statement.names:
                    feature = getattr(__future__, alias.name, None)
                    flags |= getattr(feature, "compiler_flag", 0)
    return flags


def _exit_reason(returncode: int | None) -> str:
    """The signal that ended it (SIGXCPU past its CPU time), or its exit status."""
    if returncode is not None and returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            pass
    return f"exit status {returncode}"


def _exception_name(stderr: str) -> str | None:
    for line in reversed(stderr.strip().splitlines()):
        found = EXCEPTION_LINE.match(line)
        if found:
            return found.group(1).rsplit(".", 1)[-1]
    return None
