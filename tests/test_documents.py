"""Incremental buffers: random edit sequences keep text and tree equal to a fresh parse."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accs_lsp.documents import Document, LineIndex, PositionError, TextChange
from accs_lsp.documents.document import new_parser

BASE = '''import os


def area(width: float, height: float) -> float:
    """Größe — 面积 😀"""
    return width * height


class Box:
    def __init__(self, size: int) -> None:
        self.size = size
'''

SNIPPETS = ["x", " ", "\n", "    ", "def ", "(", ")", ":", "return a.b(1, 2)", "é", "😀", "面", '"""', "\n    pass\n", ""]


def tree_shape(tree) -> list[tuple[str, int, int, bool]]:
    """Every node (named or not) with its byte span: equal shapes mean equal trees."""
    shape = []
    cursor = tree.walk()
    visited_children = False
    while True:
        if not visited_children:
            node = cursor.node
            shape.append((node.type, node.start_byte, node.end_byte, node.is_missing))
            if cursor.goto_first_child():
                continue
        if cursor.goto_next_sibling():
            visited_children = False
        elif cursor.goto_parent():
            visited_children = True
        else:
            return shape


def utf16_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n")
    column_text = before[before.rfind("\n") + 1 :]
    return line, len(column_text.encode("utf-16-le")) // 2


@st.composite
def edit_sequences(draw):
    text = BASE
    edits = []
    for _ in range(draw(st.integers(1, 12))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        inserted = draw(st.sampled_from(SNIPPETS))
        edits.append((utf16_position(text, start), utf16_position(text, end), inserted))
        text = text[:start] + inserted + text[end:]
    return edits, text


@settings(max_examples=150, deadline=None)
@given(edit_sequences())
def test_random_edits_match_a_fresh_parse(case):
    edits, expected_text = case
    document = Document("file:///t.py", BASE)
    for version, (start, end, inserted) in enumerate(edits, start=1):
        document.apply([TextChange(inserted, (start, end))], version)
    assert document.text == expected_text
    fresh = new_parser().parse(expected_text.encode("utf-8"))
    # tree-sitter's incremental reparse recovers from syntax errors its own way (the string
    # scanner's state is kept across the edit), so only trees without errors must be equal.
    assert document.tree.root_node.has_error == fresh.root_node.has_error
    if not fresh.root_node.has_error:
        assert tree_shape(document.tree) == tree_shape(fresh)
    assert document.version == len(edits)


@settings(max_examples=50, deadline=None)
@given(edit_sequences())
def test_several_changes_in_one_notification(case):
    edits, expected_text = case
    document = Document("file:///t.py", BASE)
    document.apply([TextChange(inserted, (start, end)) for start, end, inserted in edits], 7)
    assert document.text == expected_text
    assert tree_shape(document.tree) == tree_shape(new_parser().parse(expected_text.encode("utf-8")))


def test_full_text_change_replaces_everything():
    document = Document("file:///t.py", BASE)
    document.apply([TextChange("x = 1\n")], 3)
    assert document.text == "x = 1\n"
    assert document.tree.root_node.child(0).type == "expression_statement"


def test_positions_count_utf16_code_units():
    index = LineIndex("a😀b\n")
    assert index.offset_at(0, 3) == 2  # 😀 is two UTF-16 units
    assert index.position_at(3) == (0, 4)
    assert LineIndex("a😀b\n", "utf-8").offset_at(0, 5) == 2
    assert LineIndex("a😀b\n", "utf-32").offset_at(0, 2) == 2


def test_position_outside_document_is_an_error():
    index = LineIndex("one\ntwo")
    with pytest.raises(PositionError):
        index.offset_at(2, 0)
    with pytest.raises(PositionError):
        index.offset_at(1, 9, strict=True)
    assert index.offset_at(1, 9) == len("one\ntwo")  # LSP: past the end clamps to the end


def test_snapshot_is_not_affected_by_later_edits():
    document = Document("file:///t.py", "x = 1\n")
    snapshot = document.snapshot()
    document.apply([TextChange("yy", ((0, 0), (0, 1)))], 2)
    assert snapshot.text == "x = 1\n"
    assert snapshot.tree.root_node.end_byte == len("x = 1\n")
    assert document.text == "yy = 1\n"


# -- edits as the LSP specification says ------------------------------------------------------


def edited(text: str, start: tuple[int, int], end: tuple[int, int], new_text: str) -> str:
    document = Document("file:///t.py", text)
    document.apply([TextChange(new_text, (start, end))])
    assert document.text == "".join(document.parser.parse(document.text.encode()).root_node.text.decode())
    return document.text


@pytest.mark.parametrize(
    "text, start, end, new_text, expected",
    [
        ("line zero\nline one!\n", (1, 99), (1, 99), "X", "line zero\nline one!X\n"),  # past the end: end of line
        ("a", (0, 0), (0, 2), "", ""),
        ("ab\r\ncd\r\n", (0, 99), (0, 99), "X", "abX\r\ncd\r\n"),  # never between \r and \n
        ("ab\rcd", (1, 0), (1, 1), "Z", "ab\rZd"),  # a lone \r ends a line
        ("ab\rcd\nef", (2, 1), (2, 1), "-", "ab\rcd\ne-f"),
    ],
)
def test_edits_follow_the_lsp_specification(text, start, end, new_text, expected) -> None:
    assert edited(text, start, end, new_text) == expected


def test_lone_surrogates_become_replacement_characters_without_moving_positions() -> None:
    document = Document("file:///t.py", "x = '\ud800'\ny = 1\n")
    assert document.text == "x = '\ufffd'\ny = 1\n"
    document.apply([TextChange("\udc00z", ((1, 4), (1, 5)))], version=2)
    assert document.text == "x = '\ufffd'\ny = \ufffdz\n"
    assert document.tree.root_node.end_byte == len(document.text.encode("utf-8"))


def test_a_reopened_document_is_not_the_one_before_even_at_the_same_version() -> None:
    from accs_lsp.documents import DocumentStore

    store = DocumentStore()
    snapshot = store.open("file:///t.py", "x = 1\n", 3).snapshot()
    assert store.is_current(snapshot)
    store.close("file:///t.py")
    store.open("file:///t.py", "y = 2\n", 3)
    assert not store.is_current(snapshot)
    edited_snapshot = store.get("file:///t.py").snapshot()
    store.change("file:///t.py", [TextChange("z", ((0, 0), (0, 1)))], None)  # edited without a new version
    assert not store.is_current(edited_snapshot)
