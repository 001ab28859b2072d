"""The code after the cursor is part of the constraint: holes whose removal broke the buffer.

Each hole is a piece of ordinary code taken out (as an infilling task takes it out); the
completion at the default level must be non-empty and leave the file parseable.
"""

from __future__ import annotations

import pytest

from accs_lsp.analysis import cursor_context
from accs_lsp.completion import CompletionEngine, CompletionOptions
from accs_lsp.completion.validation import parses
from accs_lsp.documents import Document

HOLES = {
    "block header on a blank line, body below": (
        "def total_length(words: list[str]) -> int:\n"
        "    total = 0\n"
        "    |\n"
        "        total += len(word)\n"
        "    return total\n"
    ),
    "block header cut mid-line, body below": (
        "def total_length(words: list[str]) -> int:\n"
        "    total = 0\n"
        "    for w|\n"
        "        total += len(word)\n"
        "    return total\n"
    ),
    "enumerate header with its body below": (
        "def show(xs: list[str]) -> None:\n"
        "    for i, x in enum|\n"
        "        print(i, x)\n"
    ),
    "bracket closed on a later line": (
        "def scale(values: list[float], factor: float) -> list[float]:\n"
        "    result = [\n"
        "        value * factor for value in |\n"
        "    ]\n"
        "    return result\n"
    ),
    "argument of a call over several lines": (
        "def report(name: str, count: int) -> None:\n"
        "    print(\n"
        "        name,\n"
        "        sep=|\n"
        "    )\n"
    ),
    "annotation in a multi-line def": (
        "def connect(\n"
        "    host: str,\n"
        "    port: |,\n"
        "    timeout: float = 5.0,\n"
        ") -> None:\n"
        "    print(host, port, timeout)\n"
    ),
    "last line of a decorator chain": (
        "import functools\n\n\n"
        "class Cache:\n"
        "    @property\n"
        "    @functools.|\n"
        "    def size(self) -> int:\n"
        "        return 0\n"
    ),
    "first line of a body taken out, its own body below": (
        "def cheapest(items: list[int]) -> \"int or None\":\n"
        "    |\n"
        "        return None\n"
        "    return min(items)\n"
    ),
    "class header cut mid-name under a decorator": (
        "from dataclasses import dataclass\n\n\n"
        "@dataclass\n"
        "cla|\n"
        "    name: str\n"
        "    price: float\n"
    ),
    "unclosed bracket closed on the same line": (
        "def longest(names: list[str]) -> int:\n"
        "    return max(len(s) for s in reversed(|)\n"
    ),
}


def split(marked: str) -> tuple[str, int]:
    return marked.replace("|", ""), marked.index("|")


@pytest.fixture(scope="module")
def engine(model) -> CompletionEngine:
    return CompletionEngine(model)


@pytest.mark.parametrize("name", HOLES)
def test_holes_that_broke_the_buffer_get_a_parsing_completion(engine, name) -> None:
    text, offset = split(HOLES[name])
    assert not parses(text), "the hole must break the buffer"
    completion = engine.complete(Document("file:///hole.py", text).snapshot(), offset, CompletionOptions(max_tokens=24, timeout_ms=None))
    assert completion.text.strip(), completion
    assert parses(text[:offset] + completion.text + text[offset:]), completion.text


def context_of(marked: str):
    text, offset = split(marked)
    return cursor_context(Document("file:///t.py", text).snapshot(), offset)


def test_the_rest_of_a_statement_runs_to_its_closing_bracket() -> None:
    context = context_of(HOLES["annotation in a multi-line def"])
    assert context.statement_rest == ",\n    timeout: float = 5.0,\n) -> None:"
    assert context.statement_prefix.startswith("def connect(")
    assert context.body_follows  # the def's body is below its header


def test_a_line_with_a_deeper_line_below_must_be_a_header() -> None:
    assert context_of(HOLES["block header on a blank line, body below"]).body_follows
    assert context_of(HOLES["block header on a blank line, body below"]).suggested_mode == "line"
    plain = context_of("def f() -> int:\n    x = 1\n    |\n    return x\n")
    assert not plain.body_follows and plain.suggested_mode == "block"


def test_a_blank_line_below_a_header_is_in_the_body_not_the_header() -> None:
    context = context_of(HOLES["first line of a body taken out, its own body below"])
    assert context.statement_prefix == ""
    assert context.body_follows


def test_a_decorator_line_is_its_own_statement() -> None:
    context = context_of(HOLES["last line of a decorator chain"])
    assert context.statement_prefix == "@functools."
    assert not context.body_follows


def test_line_shapes_of_the_grammar(engine) -> None:
    from accs_lsp.constraints.python_grammar import python_grammar

    def accepts(shape: str, line: str) -> bool:
        matcher = engine.grammars.matcher(python_grammar(mode="line", line_shape=shape))
        return matcher.consume_tokens(engine.model.tokenize(line)) and matcher.is_accepting()

    assert accepts("header", "for x in y:") and not accepts("header", "x = 1")
    assert not accepts("header", "for x in y: pass")
    assert accepts("statement", "x = 1") and accepts("statement", "for x in y: pass")
    assert not accepts("statement", "for x in y:")
    assert accepts("any", "for x in y:") and accepts("any", "x = 1")


def test_a_cut_by_the_grammar_keeps_its_own_closing_bracket(engine) -> None:
    """`Counter(words(text))`: the model writes `words(text))` in tokens that end the argument
    and rewrite the `)` after the cursor at once; the completion is `words(text)`, not `words`."""
    from conftest import FIXTURES

    from accs_lsp.eval.tasks import source_tasks

    (task,) = [t for t in source_tasks(FIXTURES, 8, ("call_args",), 0) if t.name == "text_stats.py:call_args@366"]
    assert task.truth == "words(text)"
    snapshot = Document("file:///text_stats.py", task.text).snapshot()
    completion = engine.complete(snapshot, task.offset, CompletionOptions(max_tokens=16, timeout_ms=None))
    assert completion.text == "words(text)"


def test_tidy_leaves_a_grammar_cut_whole() -> None:
    from accs_lsp.completion.engine import tidy

    context = context_of("x = f(|)\n")
    assert tidy("g(a)", context, "line", ")\n") == "g(a"  # unconstrained: a copy of the rest of the line
    assert tidy("g(a)", context, "line", ")\n", cut_by_grammar=True) == "g(a)"


def test_out_of_tokens_inside_a_string_the_completion_closes_it(engine) -> None:
    """The model goes on inside an f-string whose end was cut away until its tokens run out
    (no complete point); what closes the string is returned, not nothing."""
    text, offset = split(
        "def func_name(prog_name: str) -> str:\n"
        '    safe_name = prog_name.replace("-", "_")\n'
        '    return f"_{safe_name}_|\n'
        "\n\n"
        "def other() -> None:\n"
        "    pass\n"
    )
    assert not parses(text)
    completion = engine.complete(Document("file:///hole.py", text).snapshot(), offset, CompletionOptions(max_tokens=2, timeout_ms=None))
    assert completion.stop_reason == "max_tokens"
    assert completion.text.endswith('"'), completion
    assert parses(text[:offset] + completion.text + text[offset:])
