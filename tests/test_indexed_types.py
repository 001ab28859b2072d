"""The type layer on the idioms of real typed code, through the indexed provider over real
Jedi and over a real basedpyright subprocess (the same answers from both)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accs_lsp.constraints.members import MemberConstraint
from accs_lsp.constraints.types import plan_type_layer
from accs_lsp.types.indexed_provider import IndexedProvider
from accs_lsp.types.jedi_provider import JediProvider
from accs_lsp.types.model import FLOAT, INT, NONE, STR, PyType, union
from accs_lsp.types.module_index import ModuleIndex, parse_tolerantly
from accs_lsp.types.provider import HoleTypes
from accs_lsp.types.pyright_provider import PyrightProvider, find_executable
from accs_lsp.types.slots import expression_slot


@pytest.fixture(scope="module", params=["jedi", "pyright"])
def provider(request) -> Iterator[IndexedProvider]:
    if request.param == "pyright":
        assert find_executable() is not None, "basedpyright is a test dependency: pip install -e '.[test]'"
        checker = PyrightProvider()
    else:
        checker = JediProvider()
    provider = IndexedProvider(checker)
    yield provider
    provider.close()


def statement_start(source: str) -> int:
    line_start = source.rfind("\n", 0, len(source) - 1) + 1
    return line_start + len(source[line_start:]) - len(source[line_start:].lstrip())


def hole(provider: IndexedProvider, source: str) -> HoleTypes:
    slot = expression_slot(source, statement_start(source), len(source))
    assert slot is not None, "no expression slot at the end of the source"
    return provider.hole_types(source, slot)


def bound(answer: HoleTypes) -> dict[str, PyType]:
    return {binding.name: binding.type for binding in answer.bindings}


TYPING_ALIAS = "import typing as t\n\ndef names(x: t.Optional[int], ys: t.Dict[str, t.List[int]]) -> t.List[str]:\n    return "


def test_typing_under_an_alias(provider) -> None:
    answer = hole(provider, TYPING_ALIAS)
    assert answer.expected == PyType("list", (STR,))
    assert bound(answer)["x"] == union(INT, NONE)
    assert bound(answer)["ys"] == PyType("dict", (STR, PyType("list", (INT,))))


def test_string_annotations_under_future_annotations(provider) -> None:
    source = (
        "from __future__ import annotations\n\nclass Point:\n    x: float\n\n"
        "def moved(p: 'Point', by: \"float\") -> Point:\n    return "
    )
    answer = hole(provider, source)
    assert answer.expected == PyType("Point")
    assert bound(answer)["p"] == PyType("Point") and bound(answer)["by"] == FLOAT


def test_optional_narrowed_after_an_early_return(provider) -> None:
    source = "import typing as t\n\ndef label(name: t.Optional[str]) -> str:\n    if name is None:\n        return ''\n    return "
    assert bound(hole(provider, source))["name"] == STR
    inside = "def label(name: str | None) -> str:\n    if name is not None:\n        return "
    assert bound(hole(provider, inside))["name"] == STR
    unnarrowed = "def label(name: str | None) -> str:\n    return "
    assert bound(hole(provider, unnarrowed))["name"] == union(STR, NONE)


DATACLASS = (
    "from dataclasses import dataclass, field\nimport attr\n\n"
    "@dataclass\nclass Item:\n    name: str\n    count: int = 0\n    tags: list = field(default_factory=list)\n\n"
    "@attr.s(auto_attribs=True)\nclass Box:\n    width: float\n    label: str = attr.ib(default='')\n\n"
)


def test_dataclass_and_attrs_constructors(provider) -> None:
    assert hole(provider, DATACLASS + "Item(").expected == STR
    assert hole(provider, DATACLASS + "Item('a', ").expected == INT
    assert hole(provider, DATACLASS + "Item(count=").expected == INT
    assert hole(provider, DATACLASS + "Box(").expected == FLOAT
    assert hole(provider, DATACLASS + "Box(1.0, label=").expected == STR


CLASSES = (
    "class Base:\n    limit: int = 10\n\n    def __init__(self, name: str) -> None:\n        self.name = name\n"
    "        self.seen: list[str] = []\n\n    @property\n    def size(self) -> int:\n        return len(self.seen)\n\n"
    "    def render(self, width: int) -> str:\n        return self.name\n\n"
    "class Child(Base):\n    def render(self, width: int) -> str:\n        return "
)


def test_class_body_init_attributes_properties_and_inheritance(provider) -> None:
    answer = hole(provider, CLASSES)
    assert answer.expected == STR and bound(answer)["self"] == PyType("Child")
    members = {member.name: member for member in provider.members(CLASSES, PyType("Child"))}
    assert members["name"].type == STR and members["seen"].type == PyType("list", (STR,))
    assert members["limit"].type == INT and members["size"].type == INT and not members["size"].is_method
    assert members["render"].is_method and members["render"].type == STR


def test_the_parameters_of_a_callee_defined_in_the_file(provider) -> None:
    source = CLASSES + "\n\ndef draw(shape: Base, scale: float = 1.0) -> None:\n    pass\n\n\ndef main() -> None:\n    "
    start = statement_start(source)
    receivers = plan_type_layer(provider, source, start, len(source), False).receivers
    assert receivers.parameters_before("draw") == {"shape", "scale"}
    assert receivers.parameters_before("Base") == {"name"}  # the constructor's
    child = plan_type_layer(provider, CLASSES, statement_start(CLASSES), len(CLASSES), False).receivers
    assert child.parameters_before("self.render") == {"width"}
    assert child.parameters_before("len") is None  # not known from the file
    provider.finish_lookups(timeout=60)  # the member lookups planning started: none left running


def test_type_variables_expect_nothing(provider) -> None:
    source = "import typing as t\nT = t.TypeVar('T')\n\ndef first(xs: t.List[T]) -> T:\n    return "
    answer = hole(provider, source)
    assert answer.expected is None and bound(answer)["xs"] == PyType("list", (PyType("Any"),))


def test_type_aliases_are_expanded(provider) -> None:
    source = "import typing as t\nPair = t.Tuple[str, str]\n\ndef split(text: str) -> t.Optional[Pair]:\n    return "
    assert hole(provider, source).expected == union(PyType("tuple", (STR, STR)), NONE)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f(n: int = ", INT),
        ("def f(a, *, label: 'str' = ", STR),
        ("def f(count: int) -> bool:\n    if count == ", FLOAT),
        ("def f(name: str) -> str:\n    x = name + ", STR),
        ("import typing as t\n\ndef f() -> t.Iterator[int]:\n    yield ", INT),
        ("import typing as t\n\ndef f() -> None:\n    xs: t.List[int] = [", PyType("list", (INT,))),
        ("def f() -> None:\n    total: int\n    for total in ", PyType("Iterable", (INT,))),
        ("import typing as t\n\ndef apply(f: t.Callable[[int], str]) -> None: ...\n\napply(lambda v: ", STR),
    ],
    ids=["default", "keyword-only default", "comparison", "concatenation", "yield", "display", "for", "lambda"],
)
def test_more_places_with_an_expected_type(provider, source: str, expected: PyType) -> None:
    assert hole(provider, source).expected == expected


def test_a_generators_return_expects_nothing(provider) -> None:
    source = "import typing as t\n\ndef f() -> t.Iterator[int]:\n    yield 1\n    return "
    assert hole(provider, source).expected is None


def test_imported_functions_parameters_come_from_the_checker(provider) -> None:
    assert hole(provider, "from textwrap import indent\n\nindent(").expected == STR


def test_names_in_scope_imports_and_builtins_are_visible(provider) -> None:
    source = "import os\nfrom json import dumps\nLIMIT = 3\n\ndef f(a: int) -> int:\n    b = a\n    return "
    visible = hole(provider, source).visible
    assert visible is not None and {"os", "dumps", "LIMIT", "a", "b", "len", "f"} <= visible
    assert "undefined_name" not in visible
    local = "import os\n\ndef f(a: int, *rest: int) -> int:\n    for i in rest:\n        import json\n    with open(a) as fh:\n        pass\n    return "
    visible = hole(provider, local).visible
    assert visible is not None and {"i", "json", "fh", "rest", "__file__", "__name__"} <= visible
    star = hole(provider, "from os.path import *\n\ndef f(a: int) -> int:\n    return ")
    assert star.visible is None  # a star import: any name may be defined


def test_modules_as_receivers(provider) -> None:
    source = "import typing as t\nimport os.path\n\nx: t."
    names = provider.member_names(source, len(source) - 1)
    assert names is not None and {"Optional", "List", "cast"} <= set(names)
    members = {member.name for member in provider.members(source, PyType("Module", (PyType("typing"),)))}
    assert "Optional" in members and "zzz" not in members


def test_a_partly_typed_member_continues_an_existing_one(engine, provider) -> None:
    source = CLASSES.replace("        return ", "        x = self.")
    start = statement_start(source)
    plan = plan_type_layer(provider, source, start, len(source), True)
    members = MemberConstraint(engine.grammars, engine.model.token_text, plan.receivers, source[start:], plan.first_members)
    members.text += "rend"
    assert members.allows("er(") and not members.allows("ezvous")
    at_start = source.replace("        x = self.", "        self.")
    start = statement_start(at_start)
    plan = plan_type_layer(provider, at_start, start, len(at_start), True)
    target = MemberConstraint(engine.grammars, engine.model.token_text, plan.receivers, at_start[start:], plan.first_members)
    assert target.allows("brand_new = 1")  # an assignment may create an attribute


def test_a_builtin_class_has_its_member_names_before_the_checker_has_looked_them_up(provider) -> None:
    source = "def f(data: bytes) -> str:\n    return "
    fresh = IndexedProvider(type(provider.checker)())  # cold member tables: lookups go to the background
    try:
        fresh.index(source, len(source))
        names = {member.name for member in fresh.members(source, PyType("bytes"))}
    finally:
        fresh.close()
    assert "decode" in names and "encode" not in names


def test_a_buffer_the_hole_broke_still_parses_around_it() -> None:
    source = "def f(a: int) -> int:\n    b = (a +\n    return b\n\ndef g(c: str) -> str:\n    return c\n"
    tree = parse_tolerantly(source, source.index("return b"))
    assert tree is not None and [node.name for node in tree.body] == ["f", "g"]
    index = ModuleIndex.build(source, source.index("return b"))
    assert index is not None and index.module_bindings["g"].signature.result == STR


def test_an_unparseable_buffer_is_answered_by_the_checker(provider) -> None:
    broken = "".join(f"v{n} = = {n}\n" for n in range(30)) + "def f(x: int) -> str:\n    return "
    assert ModuleIndex.build(broken, len(broken)) is None
    answer = hole(provider, broken)
    assert answer.expected == STR and bound(answer)["x"] == INT  # the checker reads past broken code


@pytest.fixture(scope="module")
def engine(model):
    from accs_lsp.completion import CompletionEngine

    return CompletionEngine(model)


def test_an_operand_is_typed_and_the_clause_goes_on_after_it(engine, provider) -> None:
    from accs_lsp.constraints.types import typed_grammar

    source = "def within(lo: int, x: float) -> bool:\n    if lo < "
    plan = plan_type_layer(provider, source, statement_start(source), len(source), False)
    assert plan.top_rule is not None and plan.expected == FLOAT
    matcher = engine.grammars.matcher(typed_grammar(plan, ""))

    def admits(text: str) -> bool:
        copy = matcher.deep_copy()
        return copy.consume_tokens(engine.model.tokenize(text)) and not copy.is_error()

    assert admits("x:\n") and admits("x <= 10 and x > 0:\n") and admits("x + 1:\n")
    assert not admits("'text':\n") and not admits("within:\n")


def test_background_lookups_wait_while_a_request_is_served() -> None:
    """On two cores a checker thread slows the model: lookups start only in a pause."""
    from accs_lsp.types.indexed_provider import Activity

    activity = Activity()
    assert activity.quiet_for(0)
    with activity.serving():
        assert not activity.quiet_for(0)
        with activity.serving():  # a prefetch and a request at once
            pass
        assert not activity.quiet_for(0)
    assert activity.quiet_for(0) and not activity.quiet_for(3600)  # the pause counts from the end
