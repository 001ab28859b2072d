"""Cursor context read from the tree: the facts the constraint layers will start from."""

from __future__ import annotations

from accs_lsp.analysis import cursor_context
from accs_lsp.documents import Document


def context_at(source: str):
    """`source` holds one "|" marking the cursor."""
    offset = source.index("|")
    document = Document("file:///c.py", source.replace("|", "", 1))
    return cursor_context(document.snapshot(), offset)


def test_after_return_in_a_function():
    context = context_at("def f(x: int) -> str:\n    return |\n")
    assert context.after_return
    assert context.statement_kind == "return_statement"
    assert context.statement_prefix == "return "
    assert context.indentation == "    "
    assert context.suggested_mode == "line"


def test_after_dot():
    context = context_at("xs = []\nxs.ap|\n")
    assert context.after_dot
    assert not context_at("x = 1.|\n").after_dot
    assert not context_at("x = y|\n").after_dot


def test_inside_a_call_being_typed():
    context = context_at("total = compute(a, |\n")
    assert context.in_argument_list
    assert context.open_brackets == "("
    assert context.statement_prefix == "total = compute(a, "
    assert not context.at_statement_start


def test_inside_a_complete_call():
    context = context_at("print(value|)\n")
    assert context.in_argument_list
    assert context.line_suffix == ")"


def test_blank_line_in_a_block_is_a_statement_start_in_block_mode():
    context = context_at("def f():\n    x = 1\n    |\n")
    assert context.at_statement_start
    assert context.on_blank_line
    assert context.suggested_mode == "block"
    assert context.indentation == "    "


def test_multiline_statement_starts_on_its_first_line():
    context = context_at("values = [\n    1,\n    |")
    assert context.statement_prefix == "values = [\n    1,\n    "
    assert context.open_brackets == "["
    assert context.suggested_mode == "line"


def test_compound_statement_header():
    context = context_at("for item in ite|:\n    pass\n")
    assert context.statement_kind == "for_statement"
    assert context.statement_prefix == "for item in ite"


def test_comment_and_string_are_recognised():
    assert context_at("x = 1  # note |\n").in_string_or_comment
    assert context_at('s = "abc|"\n').in_string_or_comment
    assert not context_at("s = abc|\n").in_string_or_comment


def test_first_statement_of_a_body_starts_at_the_cursor():
    for source in (
        "def f(x: int) -> int:\n    |return x\n",
        "@dataclass\nclass A:\n    def f(self) -> int:\n        |return 1\n",
        "@cache\ndef f() -> int:\n    |return 1\n",
    ):
        context = context_at(source)
        assert context.statement_prefix == "", source
        assert context.at_statement_start


def test_header_of_a_decorated_definition_starts_at_def():
    context = context_at("@cache\ndef f(x|) -> int:\n    return 1\n")
    assert context.statement_kind == "function_definition"
    assert context.statement_prefix == "def f(x"
