"""Where the expression at the cursor begins, and what kind of position it is in.

Read from the statement's text before the cursor: the type checker is asked about
this position afterwards. Strings are skipped so that brackets inside them do not count.
"""

from __future__ import annotations

import re

from accs_lsp.types.provider import ExpressionSlot

_RETURN = re.compile(r"return\b[ \t]*")
_ATTRIBUTE = re.compile(r"(self\.[A-Za-z_]\w*)[ \t]*=(?!=)[ \t]*")
_ANNOTATED = re.compile(r"([A-Za-z_][\w.]*)[ \t]*:[ \t]*(.+?)[ \t]*=(?!=)[ \t]*")
_KEYWORD = re.compile(r"[ \t\r\n]*([A-Za-z_]\w*)[ \t]*=(?!=)[ \t]*")
_BLANKS = re.compile(r"[ \t\r\n]*")
_CALLEE_END = re.compile(r"[\w\)\]][ \t]*$")


def expression_slot(text: str, statement_start: int, cursor: int) -> ExpressionSlot | None:
    """The slot of the expression that the cursor is in, or None where no expected type applies."""
    prefix = text[statement_start:cursor]
    opened = _unclosed_brackets(prefix)
    calls = [index for index, bracket in opened if bracket == "(" and _CALLEE_END.search(prefix[:index])]
    if calls:
        return _argument_slot(prefix, calls[-1], statement_start)
    if opened and any(bracket == "(" for _, bracket in opened):
        return None  # inside a parenthesised expression that is not a call: no slot known
    for pattern, kind in ((_RETURN, "return"), (_ATTRIBUTE, "attribute"), (_ANNOTATED, "annotation")):
        match = pattern.match(prefix)
        if match:
            return ExpressionSlot(
                kind,
                statement_start + match.end(),
                annotation=match.group(2) if kind == "annotation" else "",
                target=match.group(1) if kind != "return" else "",
            )
    return None


def _argument_slot(prefix: str, paren: int, statement_start: int) -> ExpressionSlot:
    arguments = prefix[paren + 1 :]
    start = paren + 1 + _last_top_level_comma(arguments)
    keyword = _KEYWORD.match(prefix, start)
    name = ""
    if keyword:
        name, start = keyword.group(1), keyword.end()
    else:
        start = _BLANKS.match(prefix, start).end()
    return ExpressionSlot("argument", statement_start + start, callee_end=statement_start + paren + 1, keyword=name)


def _last_top_level_comma(arguments: str) -> int:
    """Offset just after the last comma at the arguments' own bracket depth (0 if none)."""
    commas = top_level_commas(arguments)
    return commas[-1] + 1 if commas else 0


def top_level_commas(text: str) -> list[int]:
    """Offsets of the commas outside brackets, strings and comments."""
    depth, commas = 0, []
    for index, character in _code_characters(text):
        if character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
        elif character == "," and depth == 0:
            commas.append(index)
    return commas


def _unclosed_brackets(prefix: str) -> list[tuple[int, str]]:
    stack: list[tuple[int, str]] = []
    for index, character in _code_characters(prefix):
        if character in "([{":
            stack.append((index, character))
        elif character in ")]}" and stack:
            stack.pop()
    return stack


def _code_characters(text: str):
    """(index, character) of the characters outside string literals and comments."""
    quote = ""
    index = 0
    while index < len(text):
        character = text[index]
        if quote:
            if character == "\\":
                index += 2
                continue
            if text.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
        elif character == "#":
            while index < len(text) and text[index] != "\n":
                index += 1
            continue
        elif character in "'\"":
            quote = character * 3 if text.startswith(character * 3, index) else character
            index += len(quote)
            continue
        else:
            yield index, character
        index += 1
