"""Cursor context from the tree-sitter tree and the text around the cursor."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

import tree_sitter

from accs_lsp.documents import Snapshot

SIMPLE_STATEMENTS = frozenset(
    {
        "expression_statement",
        "return_statement",
        "assert_statement",
        "raise_statement",
        "delete_statement",
        "pass_statement",
        "break_statement",
        "continue_statement",
        "import_statement",
        "import_from_statement",
        "future_import_statement",
        "global_statement",
        "nonlocal_statement",
        "print_statement",
        "exec_statement",
        "type_alias_statement",
    }
)
COMPOUND_STATEMENTS = frozenset(
    {
        "if_statement",
        "for_statement",
        "while_statement",
        "try_statement",
        "with_statement",
        "function_definition",
        "class_definition",
        "decorated_definition",
        "match_statement",
    }
)
# Clauses whose header the cursor can be in, like `elif cond|:`.
CLAUSES = frozenset({"elif_clause", "else_clause", "except_clause", "finally_clause", "case_clause"})

AFTER_DOT = re.compile(r"(?<![\w.])(?!\d)[\w\)\]\}\"']*[\w\)\]\}\"']\s*\.\s*([A-Za-z_]\w*)?$")
OPENING = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class CursorContext:
    offset: int
    line: int
    line_prefix: str
    line_suffix: str
    indentation: str
    statement_start: int
    statement_prefix: str
    statement_kind: str | None
    open_brackets: str
    after_dot: bool
    in_argument_list: bool
    after_return: bool
    at_statement_start: bool
    in_string_or_comment: bool
    # The code after the cursor up to the end of its statement (several lines when brackets
    # opened before the cursor close on a later line, or a multi-line `def` header goes on).
    statement_rest: str = ""
    # Whether the next line of code after the statement is indented deeper than the line the
    # statement starts on: the statement must then end with a compound header's colon.
    body_follows: bool = False

    @property
    def on_blank_line(self) -> bool:
        return not self.line_prefix.strip() and not self.line_suffix.strip()

    @property
    def suggested_mode(self) -> str:
        """Block mode on a blank line outside brackets, one line otherwise (also where the line
        must be the header of the indented body below it)."""
        return "block" if self.on_blank_line and not self.open_brackets and not self.body_follows else "line"


def cursor_context(document: Snapshot, offset: int) -> CursorContext:
    text = document.text
    line = document.lines.line_of(offset)
    line_start = document.lines.line_starts[line]
    line_prefix = text[line_start:offset]
    line_end = text.find("\n", offset)
    line_suffix = text[offset : len(text) if line_end == -1 else line_end]

    # Trailing blanks belong to no node: look up the statement from the last character typed
    # on this line. On a line with nothing typed yet, the cursor itself tells (a continuation
    # line inside brackets belongs to its statement; the first line of a body does not).
    trailing_blanks = len(line_prefix) - len(line_prefix.rstrip(" \t"))
    probe = offset if trailing_blanks == len(line_prefix) else offset - trailing_blanks
    statement = enclosing_statement(document, probe) or statement_in_broken_code(document, offset)
    statement_start = statement.start if statement else line_start + indentation_width(line_prefix)
    statement_start = min(statement_start, offset)
    statement_prefix = text[statement_start:offset]
    open_brackets = unclosed_brackets(statement_prefix)
    kind = statement.kind if statement else None
    statement_rest = rest_of_statement(text[offset:], open_brackets)
    statement_line_start = text.rfind("\n", 0, statement_start) + 1
    statement_indentation = text[statement_line_start : statement_line_start + indentation_width(text[statement_line_start:])]

    return CursorContext(
        offset=offset,
        line=line,
        line_prefix=line_prefix,
        line_suffix=line_suffix,
        indentation=line_prefix[: indentation_width(line_prefix)],
        statement_start=statement_start,
        statement_prefix=statement_prefix,
        statement_kind=kind,
        open_brackets=open_brackets,
        after_dot=bool(AFTER_DOT.search(line_prefix)),
        in_argument_list=in_call_arguments(document, offset, statement_prefix, open_brackets),
        after_return=kind == "return_statement" or bool(re.match(r"return\b", statement_prefix)),
        at_statement_start=not open_brackets and not statement_prefix.strip(" \t;"),
        in_string_or_comment=in_string_or_comment(document, offset),
        statement_rest=statement_rest,
        body_follows=deeper(next_code_indentation(text, offset + len(statement_rest)), statement_indentation),
    )


@dataclass(frozen=True)
class Statement:
    start: int
    kind: str | None


def indentation_width(line_prefix: str) -> int:
    return len(line_prefix) - len(line_prefix.lstrip(" \t"))


def node_before(document: Snapshot, offset: int) -> tree_sitter.Node:
    """The smallest node that ends at or covers the character just before the cursor."""
    byte = document.byte_offset(offset)
    start = max(byte - 1, 0)
    return document.tree.root_node.descendant_for_byte_range(start, byte)


def enclosing_statement(document: Snapshot, offset: int) -> Statement | None:
    """The statement (or clause header) the cursor is in, as the tree sees it.

    A compound statement counts only while the cursor is in its header, before
    its body. ERROR nodes (code being typed) end the walk: the caller then falls
    back to the current line.
    """
    byte = document.byte_offset(offset)
    node: tree_sitter.Node | None = node_before(document, offset)
    while node is not None:
        if node.type == "ERROR":
            return statement_around(document, node, byte) or statement_in_error(document, node, offset)
        if node.start_byte < byte or (node.start_byte == byte and node.end_byte > byte):
            if node.type in SIMPLE_STATEMENTS:
                return Statement(char_offset(document, node.start_byte), node.type)
            if node.type in COMPOUND_STATEMENTS | CLAUSES and in_header(node, byte):
                return Statement(char_offset(document, node.start_byte), node.type)
        node = node.parent
    return None


def statement_around(document: Snapshot, error: tree_sitter.Node, byte: int) -> Statement | None:
    """The statement whose header holds an ERROR node that does not span lines (a broken
    parameter in a multi-line `def`, a broken argument in a call over several lines)."""
    if error.start_point[0] != error.end_point[0]:
        return None
    node = error.parent
    while node is not None and node.type not in ("module", "block", "ERROR"):
        if node.type in SIMPLE_STATEMENTS or node.type in COMPOUND_STATEMENTS | CLAUSES and in_header(node, byte):
            return Statement(char_offset(document, node.start_byte), node.type)
        node = node.parent
    return None


def statement_in_broken_code(document: Snapshot, offset: int) -> Statement | None:
    """On a blank line inside code being typed (an unclosed bracket), the ERROR node says where it began."""
    last_written = len(document.text[:offset].rstrip())
    if last_written == 0:
        return None
    node: tree_sitter.Node | None = node_before(document, last_written)
    while node is not None and node.type != "ERROR":
        node = node.parent
    return statement_in_error(document, node, offset) if node is not None else None


def statement_in_error(document: Snapshot, error: tree_sitter.Node, offset: int) -> Statement | None:
    """In code being typed, the logical line the cursor is on, found by Python's tokenizer."""
    start = char_offset(document, error.start_byte)
    source = document.text[start:offset]
    lines = source.splitlines(keepends=True)
    line_start = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            # The tokenizer ends an unfinished last line with an empty NEWLINE: not a line end here.
            if token.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) and token.string:
                row, column = token.end
                line_start = sum(len(line) for line in lines[: row - 1]) + column
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    rest = source[line_start:]
    line_start += len(rest) - len(rest.lstrip())
    if start + line_start > offset:
        return None
    return Statement(start + line_start, None)


def in_header(node: tree_sitter.Node, byte: int) -> bool:
    if node.type == "decorated_definition":
        node = node.child_by_field_name("definition") or node
    body = node.child_by_field_name("body") or node.child_by_field_name("consequence")
    if body is not None and byte >= body.start_byte:
        return False
    # On a line below the header's `:` the cursor is in the body being written, not the header.
    colons = [child for child in node.children if child.type == ":" and child.end_byte <= byte]
    if colons and node.text is not None:
        between = node.text[colons[-1].end_byte - node.start_byte : byte - node.start_byte]
        return b"\n" not in between
    return True


def char_offset(document: Snapshot, byte: int) -> int:
    if document.lines.is_ascii:
        return byte
    return len(document.text.encode("utf-8")[:byte].decode("utf-8", errors="ignore"))


def unclosed_brackets(source: str) -> str:
    """The brackets still open at the end of `source`, outermost first (strings skipped)."""
    stack: list[str] = []
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    try:
        for token in tokens:
            if token.type != tokenize.OP:
                continue
            if token.string in OPENING:
                stack.append(token.string)
            elif stack and token.string == OPENING[stack[-1]]:
                stack.pop()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return "".join(stack)


def rest_of_statement(after: str, open_brackets: str) -> str:
    """`after` (the text after the cursor) up to the end of the statement the cursor is in:
    the rest of the line, or more where brackets open before the cursor close later."""
    line_end = after.find("\n")
    rest_of_line = after if line_end == -1 else after[:line_end]
    if not open_brackets and not rest_of_line.rstrip().endswith("\\"):
        return rest_of_line
    source = open_brackets + after  # the brackets opened before the cursor, so depths are right
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                end = offset_of(source, token.start)
                return after[: max(end - len(open_brackets), 0)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # the statement does not end before the end of the file
    return rest_of_line


def offset_of(source: str, position: tuple[int, int]) -> int:
    row, column = position
    lines = source.split("\n")
    return sum(len(line) + 1 for line in lines[: row - 1]) + column


def next_code_indentation(text: str, position: int) -> str | None:
    """The indentation of the first line after the one `position` is on that holds code."""
    line_end = text.find("\n", position)
    while line_end != -1:
        next_end = text.find("\n", line_end + 1)
        line = text[line_end + 1 : None if next_end == -1 else next_end]
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#"):
            return line[: len(line) - len(stripped)]
        line_end = next_end
    return None


def deeper(indentation: str | None, than: str) -> bool:
    return indentation is not None and len(indentation) > len(than) and indentation.startswith(than)


def in_call_arguments(document: Snapshot, offset: int, statement_prefix: str, open_brackets: str) -> bool:
    node: tree_sitter.Node | None = node_before(document, offset)
    byte = document.byte_offset(offset)
    while node is not None:
        if node.type == "argument_list" and node.start_byte < byte and (
            byte < node.end_byte or node.children[-1].type != ")" or node.children[-1].is_missing
        ):
            return True
        node = node.parent
    # While a call is being typed the tree often has an ERROR instead of an argument list.
    return open_brackets.endswith("(") and bool(re.search(r"[\w\)\]]\s*\([^()]*$", statement_prefix))


def in_string_or_comment(document: Snapshot, offset: int) -> bool:
    byte = document.byte_offset(offset)
    node: tree_sitter.Node | None = node_before(document, offset)
    while node is not None:
        if node.type == "comment" and node.start_byte < byte <= node.end_byte:
            return True
        if node.type in ("string_content", "string") and node.start_byte < byte < node.end_byte:
            return True
        node = node.parent
    return False
