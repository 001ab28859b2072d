"""The type layer with real Jedi, real llguidance and the real model.

The typed-expression grammar is checked directly (which texts it admits as a prefix and
as a complete expression followed by the end of the statement), then through the
decoding loop. The seed's examples, translated to Python, come first.
"""

from __future__ import annotations

import ast

import pytest

from accs_lsp.completion import CompletionEngine, CompletionOptions
from accs_lsp.constraints import types as types_layer
from accs_lsp.constraints.members import MemberConstraint
from accs_lsp.constraints.types import plan_type_layer, typed_grammar
from accs_lsp.documents import Document
from accs_lsp.types.jedi_provider import JediProvider
from accs_lsp.types.model import parse_type

TRANSFORM = "def transform(arr: list[int]) -> list[str]:\n    return "
TO_TEXT = "def f(x: int) -> str:\n    return "
LIST_MEMBERS = "xs: list[int] = []\nxs."


@pytest.fixture(autouse=True)
def no_wall_clock_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the typed grammar admits is asserted here, not how fast it is planned: on a loaded
    machine (CI's) the wall-clock safety nets would cut the search short and let any expression
    through. The deterministic budget of member steps stays."""
    monkeypatch.setattr(types_layer, "SEARCH_SECONDS", float("inf"))
    monkeypatch.setattr(types_layer, "PLANNING_SECONDS", float("inf"))


@pytest.fixture(scope="module")
def provider() -> JediProvider:
    return JediProvider()


@pytest.fixture(scope="module")
def engine(model) -> CompletionEngine:
    engine = CompletionEngine(model)
    engine.warm_up("jedi")  # as the server does: the builtin types' member tables are at hand
    return engine


def statement_start(source: str) -> int:
    line_start = source.rfind("\n", 0, len(source) - 1) + 1
    return line_start + len(source[line_start:]) - len(source[line_start:].lstrip())


def plan_at_end(provider: JediProvider, source: str, after_dot: bool = False):
    return plan_type_layer(provider, source, statement_start(source), len(source), after_dot)


class TypedLanguage:
    """Which texts the typed grammar of a hole admits."""

    def __init__(self, engine: CompletionEngine, provider: JediProvider, source: str) -> None:
        self.plan = plan_at_end(provider, source)
        assert self.plan.top_rule is not None, "no typed grammar at this hole"
        self.matcher = engine.grammars.matcher(typed_grammar(self.plan, ""))
        self.tokenize = engine.model.tokenize

    def prefix(self, text: str) -> bool:
        matcher = self.matcher.deep_copy()
        return matcher.consume_tokens(self.tokenize(text)) and not matcher.is_error()

    def complete(self, text: str) -> bool:
        """Admitted as the whole expression: the end of the statement may follow."""
        return self.prefix(text + "\n")


def test_expected_types_from_jedi(provider: JediProvider) -> None:
    assert str(plan_at_end(provider, TRANSFORM).expected) == "list[str]"
    assert str(plan_at_end(provider, TO_TEXT).expected) == "str"
    keyword = "def helper(a: int, b: str = '') -> None: ...\nhelper(1, b="
    assert str(plan_at_end(provider, keyword).expected) == "str"
    positional = "def helper(a: int, b: str = '') -> None: ...\nhelper("
    assert str(plan_at_end(provider, positional).expected) == "int"
    annotated = "def g(n: int):\n    total: float = "
    assert str(plan_at_end(provider, annotated).expected) == "float"
    attribute = "class P:\n    x: int\n    def __init__(self) -> None:\n        self.x = "
    assert str(plan_at_end(provider, attribute).expected) == "int"


def test_seed_transform_admits_conversions_and_rejects_wrong_types(engine, provider) -> None:
    language = TypedLanguage(engine, provider, TRANSFORM)
    assert language.complete("[str(x) for x in arr]")
    assert language.complete("list(map(str, arr))")
    assert not language.prefix("arr.sum")  # list has no member "sum"
    assert not language.complete("len(arr)")  # an int
    assert not language.complete("arr")  # a list[int]
    assert not language.complete("[x for x in arr]")  # a list[int] again


def test_seed_int_to_str_admits_str_and_fstring_and_rejects_the_int(engine, provider) -> None:
    language = TypedLanguage(engine, provider, TO_TEXT)
    assert language.complete("str(x)")
    assert language.complete('f"{x}"')
    assert not language.complete("x")


def test_names_of_unknown_type_stay_allowed_and_undefined_names_do_not(engine, provider) -> None:
    source = "import os\ndef helper(v):\n    return v\ndef f(x: int, y) -> str:\n    return "
    language = TypedLanguage(engine, provider, source)
    assert language.complete("helper(x)") and language.complete("y") and language.complete("os.sep")
    assert language.complete("repr(x)") and language.complete("format(x)")
    assert not language.prefix("undefined_name") and not language.complete("x")


def test_a_builtin_class_alone_is_not_a_value_of_unknown_type(engine, provider) -> None:
    language = TypedLanguage(engine, provider, "def f(value, args: list[str]) -> list[str]:\n    return ")
    assert language.complete("value") and language.complete("list(args)") and language.complete("bytearray(value)")
    assert not language.complete("bytearray") and not language.complete("object")


def test_other_holes_follow_their_types(engine, provider) -> None:
    ints = TypedLanguage(engine, provider, "def g(words: list[str], n: int) -> int:\n    return ")
    assert ints.complete("len(words)") and ints.complete("n + 1") and ints.complete("sum(len(w) for w in words)")
    assert not ints.complete("words") and not ints.complete("words[0]")
    optional = TypedLanguage(engine, provider, "from typing import Optional\ndef g(xs: list[int]) -> Optional[int]:\n    return ")
    assert optional.complete("None") and optional.complete("xs[0]") and optional.complete("max(xs) if xs else None")
    assert not optional.complete("xs")
    argument = TypedLanguage(engine, provider, "def g(a: int) -> None: ...\ndef h(q: list[str]):\n    g(")
    assert argument.prefix("len(q))") and not argument.prefix("q)")


def test_unknown_expected_type_leaves_the_hole_unconstrained(provider) -> None:
    plan = plan_at_end(provider, "def g(p) -> SomethingUndefined:\n    return ")
    assert plan.top_rule is None
    assert plan_at_end(provider, "def g(p):\n    return ").top_rule is None


def member_constraint_at_end(engine, provider, source: str) -> MemberConstraint:
    plan = plan_at_end(provider, source, after_dot=True)
    start = statement_start(source)
    return MemberConstraint(engine.grammars, engine.model.token_text, plan.receivers, source[start:], plan.first_members)


def test_members_after_dot_are_the_receivers_members(engine, provider) -> None:
    members = member_constraint_at_end(engine, provider, LIST_MEMBERS)
    assert members.allows("append(") and members.allows("pop") and members.allows("ap")
    assert not members.allows("upper(") and not members.allows("sum") and not members.allows("zz")
    assert not MemberConstraint.is_complete(members_after(members, "ap"))


def members_after(members: MemberConstraint, text: str) -> MemberConstraint:
    members.accept([])
    members.text += text
    return members


def test_members_of_a_typed_name_are_checked_while_decoding(engine, provider) -> None:
    source = "def g(words: list[str]) -> None:\n    "
    members = member_constraint_at_end(engine, provider, source)
    assert members.allows("words.append(") and members.allows("words[0].upper()")
    assert not members.allows("words.upper") and not members.allows("words[0].append")


def test_a_value_that_cannot_be_called_is_not_called(engine, provider) -> None:
    source = "class Shell:\n    name: str = 'bash'\n\n    def source(self) -> str:\n        return self."
    members = member_constraint_at_end(engine, provider, source)
    assert members.allows("name") and members.allows("name.upper()") and members.allows("source()")
    assert not members.allows("name()") and not members.allows("name(")


def test_untyped_receiver_is_not_restricted(engine, provider) -> None:
    members = member_constraint_at_end(engine, provider, "def g(v):\n    v.")
    assert members.allows("anything_at_all(") and members.allows("x")


def complete(engine: CompletionEngine, source: str, constraints: str, max_tokens: int = 24, **options):
    offset = source.index("|")
    text = source.replace("|", "")
    document = Document("file:///typed.py", text, "python").snapshot()
    chosen = CompletionOptions(constraints=constraints, max_tokens=max_tokens, mode="line", timeout_ms=None, **options)
    return engine.complete(document, offset, chosen)


def test_decoding_loop_keeps_the_seed_completion_well_typed(engine, provider) -> None:
    completion = complete(engine, TRANSFORM + "|\n", "types")
    assert completion.expected_type == "list[str]" and completion.relaxed is None
    assert completion.text, "the typed layer produced nothing"
    assert TypedLanguage(engine, provider, TRANSFORM).complete(completion.text)


def test_decoding_loop_under_int_to_str_returns_a_str(engine, provider) -> None:
    completion = complete(engine, TO_TEXT + "|\n", "types")
    assert completion.expected_type == "str"
    assert completion.text.strip() not in ("x", "")
    assert TypedLanguage(engine, provider, TO_TEXT).complete(completion.text)


def test_decoding_loop_after_dot_writes_a_member(engine) -> None:
    completion = complete(engine, LIST_MEMBERS + "|\n", "types", max_tokens=8)
    name = completion.text.split("(")[0].strip()
    assert name in dir(list) and not name.startswith("_"), completion.text
    ast.parse(LIST_MEMBERS + completion.text)


def test_untyped_code_completes_as_with_syntax_only(engine) -> None:
    source = "def g(v):\n    return v.|\n"
    typed, syntax = complete(engine, source, "types", 12), complete(engine, source, "syntax", 12)
    assert typed.expected_type is None and typed.text == syntax.text


def test_parse_type_reads_checker_spellings() -> None:
    assert str(parse_type("List[int]")) == "list[int]"
    assert str(parse_type("Optional[str]")) == "str | None"
    assert str(parse_type("int | None")) == "int | None"
    assert str(parse_type("Dict[str, List[int]]")) == "dict[str, list[int]]"
    assert not parse_type("_T").is_known and not parse_type("not a type(").is_known


def test_typed_alternatives_are_expressions_of_the_expected_type(engine, provider) -> None:
    completion = complete(engine, TRANSFORM + "|\n", "types", max_tokens=4)
    assert completion.typed_alternatives, "the search offered nothing"
    language = TypedLanguage(engine, provider, TRANSFORM)
    assert all(language.complete(text) for text in completion.typed_alternatives)
    assert any("arr" in text for text in completion.typed_alternatives)
    # An inline suggestion never shows them: the server does not ask for the search.
    inline = complete(engine, TRANSFORM + "|\n", "types", max_tokens=4, typed_alternatives=False)
    assert inline.typed_alternatives == () and inline.expected_type == completion.expected_type


def test_new_attributes_on_self_and_user_classes_are_not_blocked(engine, provider) -> None:
    on_self = member_constraint_at_end(engine, provider, "class A:\n    def __init__(self) -> None:\n        self.")
    assert on_self.allows("brand_new_attribute = 1")
    source = "class B:\n    pass\ndef g(b: B, xs: list[int]) -> None:\n    b."
    assert member_constraint_at_end(engine, provider, source).allows("created = 2")
    assert not member_constraint_at_end(engine, provider, source[:-2] + "xs.").allows("created = 2")


def test_healing_with_two_layers_recreates_the_word_it_took_back(engine) -> None:
    # Healing takes " Non" back; the model's best token there is not one that re-creates it.
    # With the grammar, the member and the name layers together (which restrict nothing here), healing
    # must find the same token as with the grammar alone.
    source = (
        "class Wrapper:\n    def __init__(self, max_lines: int | None = None) -> None:\n        self.max_lines = max_lines\n\n"
        "    def fits(self, lines: list[str]) -> bool:\n        if (\n            self.max_lines is Non|\n"
        "            or len(lines) + 1 < self.max_lines\n        ):\n            return True\n        return False\n"
    )
    document = Document("file:///healing.py", source.replace("|", ""), "python").snapshot()

    def at(level: str):
        return engine.complete(document, source.index("|"), CompletionOptions(constraints=level, max_tokens=24, timeout_ms=None))

    typed, syntax = at("types"), at("syntax")
    assert [layer["name"] for layer in typed.layers if layer["applied"]] == ["grammar", "members", "names"]
    assert typed.text == syntax.text, (typed.text, syntax.text)
