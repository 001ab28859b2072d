"""The basedpyright type provider, against a real `basedpyright-langserver` subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accs_lsp.types.model import INT, STR, PyType, parse_type
from accs_lsp.types.provider import Binding, ExpressionSlot, HoleTypes
from accs_lsp.types.pyright_provider import PyrightProvider, find_executable
from accs_lsp.types.slots import expression_slot

pytestmark = pytest.mark.skipif(find_executable() is None, reason="basedpyright is not installed")


@pytest.fixture(scope="module")
def provider() -> Iterator[PyrightProvider]:
    provider = PyrightProvider()
    yield provider
    provider.close()


def slot_at_end(text: str, statement_start: int | None = None) -> ExpressionSlot:
    """The slot at the end of `text`, whose last statement starts on its last line by default."""
    if statement_start is None:
        line_start = text.rfind("\n") + 1
        statement_start = line_start + len(text[line_start:]) - len(text[line_start:].lstrip())
    slot = expression_slot(text, statement_start, len(text))
    assert slot is not None
    return slot


def holes(provider: PyrightProvider, text: str, statement_start: int | None = None) -> HoleTypes:
    return provider.hole_types(text, slot_at_end(text, statement_start))


def bound(answer: HoleTypes) -> dict[str, Binding]:
    return {binding.name: binding for binding in answer.bindings}


def test_return_type_and_parameter_binding(provider: PyrightProvider) -> None:
    answer = holes(provider, "def transform(arr: list[int]) -> list[str]:\n    return ")
    assert answer.expected == PyType("list", (STR,))
    assert answer.origin == "return"
    assert bound(answer)["arr"] == Binding("arr", PyType("list", (INT,)), "variable")


def test_return_type_of_a_small_function(provider: PyrightProvider) -> None:
    assert holes(provider, "def f(x: int) -> str:\n    return ").expected == STR


def test_no_return_annotation_means_no_expectation(provider: PyrightProvider) -> None:
    answer = holes(provider, "def f(x: int):\n    return ")
    assert answer.expected is None
    assert bound(answer)["x"].type == INT


def test_bindings_cover_the_file_and_skip_builtins(provider: PyrightProvider) -> None:
    source = (
        "LIMIT = 3\n"
        "class Point:\n"
        "    def __init__(self, x: int, y: int = 0) -> None:\n"
        "        self.x = x\n"
        "def helper(a: int, b: str = '') -> None: ...\n"
        "def run(id: int, names: list[str] | None) -> Point:\n"
        "    total = len('ab')\n"
        "    if names is not None:\n"
        "        return "
    )
    names = bound(holes(provider, source))
    assert names["LIMIT"].type == INT
    assert names["id"].type == INT  # a parameter that shadows a builtin
    assert names["names"].type == PyType("list", (STR,))  # narrowed at the hole
    assert names["total"].type == INT
    assert names["helper"].kind == "function"
    assert names["helper"].signature is not None and names["helper"].signature.result == PyType("None")
    point = names["Point"]
    assert point.kind == "class" and point.type == PyType("Type", (PyType("Point"),))
    assert point.signature is not None and point.signature.result == PyType("Point")
    assert [param.name for param in point.signature.params] == ["x", "y"]
    assert not {"len", "print", "int"} & names.keys()
    assert not any(name.startswith("__") for name in names)


def test_keyword_argument_type(provider: PyrightProvider) -> None:
    answer = holes(provider, 'def helper(a: int, b: str = "") -> None: ...\nhelper(1, b=')
    assert answer.origin == "argument"
    assert answer.expected == STR


def test_positional_argument_type_with_text_after_the_hole(provider: PyrightProvider) -> None:
    text = 'def helper(a: int, b: str = "") -> None: ...\nhelper('
    slot = slot_at_end(text)
    assert provider.hole_types(text + "\nprint('after')\n", slot).expected == INT


def test_annotation_and_attribute(provider: PyrightProvider) -> None:
    assert holes(provider, "names: list[str] = ").expected == PyType("list", (STR,))
    source = "class A:\n    count: int\n    def reset(self) -> None:\n        self.count = "
    answer = holes(provider, source)
    assert (answer.origin, answer.expected) == ("attribute", INT)
    assert bound(answer)["self"].type == PyType("A")


def test_columns_are_utf16(provider: PyrightProvider) -> None:
    text = 'def f(x: int) -> str:\n    y = "\U0001f600\U0001f600"; return '
    answer = holes(provider, text, statement_start=text.index("return"))
    assert answer.expected == STR
    assert bound(answer)["y"].type == STR


def test_member_names(provider: PyrightProvider) -> None:
    source = "xs: list[int] = []\nxs."
    names = provider.member_names(source, len(source) - 1)
    assert names is not None
    assert {"append", "pop"} <= set(names)
    assert "upper" not in names


def test_member_names_of_an_untyped_receiver(provider: PyrightProvider) -> None:
    source = "def g(v):\n    v."
    assert provider.member_names(source, len(source) - 1) is None


def test_members_with_solved_generics(provider: PyrightProvider) -> None:
    members = {member.name: member for member in provider.members("", parse_type("list[int]"))}
    assert members["pop"].is_method and members["pop"].type == INT
    assert members["copy"].type == PyType("list", (INT,))
    assert not any(name.startswith("_") for name in members)
    assert provider.members("", parse_type("list[int]")) is provider.members("x = 1", parse_type("list[int]"))


def test_members_of_a_class_in_the_source(provider: PyrightProvider) -> None:
    source = (
        "class Box:\n"
        "    def __init__(self) -> None:\n"
        "        self.size = 1\n"
        "    def label(self, k: str) -> list[str]: ...\n"
    )
    members = {member.name: member for member in provider.members(source, PyType("Box"))}
    assert members["size"].type == INT and not members["size"].is_method
    assert members["label"].type == PyType("list", (STR,))
    assert members["label"].signature is not None and members["label"].signature.params[0].type == STR


def test_restarts_after_the_server_died(provider: PyrightProvider) -> None:
    holes(provider, "def f(x: int) -> str:\n    return ")
    process = provider.process
    assert process is not None
    process.kill()
    process.wait()
    assert holes(provider, "def f(x: int) -> str:\n    return ").expected == STR
    assert provider.process is not None and provider.process is not process


def test_a_request_that_times_out_fails_open(provider: PyrightProvider) -> None:
    holes(provider, "def f(x: int) -> str:\n    return ")  # warm
    provider.timeout = 1e-6
    try:
        answer = holes(provider, "def f(x: int) -> bytes:\n    return ")
    finally:
        provider.timeout = 5.0
    assert answer == HoleTypes(origin="return")
    assert holes(provider, "def f(x: int) -> bytes:\n    return ").expected == PyType("bytes")


def test_callable_types_are_read(provider: PyrightProvider) -> None:
    source = "from typing import Callable\ndef apply(f: Callable[[int], str], n: int) -> str:\n    return "
    names = bound(holes(provider, source))
    callable_ = PyType("Callable", (INT, STR))
    assert names["f"].type == callable_
    signature = names["apply"].signature
    assert signature is not None and signature.params[0].type == callable_
