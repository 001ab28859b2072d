"""Where the expression at the cursor begins, and what kind of position it is in.

Read from the statement's text before the cursor: the type checker is asked about
this position afterwards. Strings and comments are skipped (accs_lsp.analysis.scanner) so
that brackets and commas inside them do not count.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import replace

from accs_lsp.analysis.scanner import top_level_commas, unclosed_brackets
from accs_lsp.types.provider import ExpressionSlot

_RETURN = re.compile(r"return\b[ \t]*")
_YIELD = re.compile(r"yield\b(?![ \t]+from\b)[ \t]*")
_ATTRIBUTE = re.compile(r"(self\.[A-Za-z_]\w*)[ \t]*=(?!=)[ \t]*")
_ANNOTATED = re.compile(r"([A-Za-z_][\w.]*)[ \t]*:[ \t]*(.+?)[ \t]*=(?!=)[ \t]*")
_KEYWORD = re.compile(r"[ \t\r\n]*([A-Za-z_]\w*)[ \t]*=(?!=)[ \t]*")
_BLANKS = re.compile(r"[ \t\r\n]*")
_CALLEE_END = re.compile(r"[\w\)\]][ \t]*$")
_LAST_WORD = re.compile(r"(?<![\w.])([A-Za-z_]\w*)[ \t]*$")
_DEFINITION = re.compile(r"(async[ \t]+)?def[ \t]+\w+[ \t]*$")
_PARAMETER_DEFAULT = re.compile(r"[ \t\r\n]*\*{0,2}([A-Za-z_]\w*)[ \t]*:[ \t]*(.+?)[ \t]*=[ \t]*$", re.S)
_LAMBDA_BODY = re.compile(r"lambda\b[^:]*:[ \t]*")
# `left OP ` where OP compares or computes and `left` is a name, attribute, call or subscript.
_OPERAND = re.compile(r"([A-Za-z_][\w.]*(?:\(\)|\[[^\[\]]*\])?)[ \t]*(==|!=|<=|>=|<|>|\+|-|\*|/|//|%)[ \t]*$")
_FOR_ITERABLE = re.compile(r"(?:async[ \t]+)?for[ \t]+([A-Za-z_]\w*)[ \t]+in[ \t]+")


def expression_slot(text: str, statement_start: int, cursor: int) -> ExpressionSlot | None:
    """The slot of the expression that the cursor is in, or None where no expected type applies."""
    slot = _slot(text, statement_start, cursor)
    return replace(slot, cursor=cursor) if slot is not None else None


def _slot(text: str, statement_start: int, cursor: int) -> ExpressionSlot | None:
    prefix = text[statement_start:cursor]
    opened = unclosed_brackets(prefix)
    calls = [index for index, bracket in opened if bracket == "(" and _is_callee(prefix[:index])]
    if calls:
        if _DEFINITION.match(prefix[: calls[-1]]):
            return _default_slot(prefix, calls[-1], statement_start)
        return _argument_slot(prefix, calls[-1], statement_start)
    if opened and any(bracket == "(" for _, bracket in opened):
        return None  # inside a parenthesised expression that is not a call: no slot known
    for pattern, kind in ((_RETURN, "return"), (_YIELD, "yield"), (_ATTRIBUTE, "attribute"), (_ANNOTATED, "annotation")):
        match = pattern.match(prefix)
        if match:
            return ExpressionSlot(
                kind,
                statement_start + match.end(),
                annotation=match.group(2) if kind == "annotation" else "",
                target=match.group(1) if kind in ("attribute", "annotation") else "",
            )
    iterable = _FOR_ITERABLE.fullmatch(prefix)
    if iterable:
        return ExpressionSlot("iterable", cursor, target=iterable.group(1))
    return _operand_slot(prefix, statement_start) if not opened else None


def _is_callee(before_paren: str) -> bool:
    """Whether the text before a "(" ends with something called (`f`, `x.m`, `g()`, `d[k]`),
    not a keyword (`elif (`, `return (`)."""
    if not _CALLEE_END.search(before_paren):
        return False
    word = _LAST_WORD.search(before_paren)
    return word is None or not keyword.iskeyword(word.group(1))


def _operand_slot(prefix: str, statement_start: int) -> ExpressionSlot | None:
    """The right operand of a comparison or arithmetic, where the left one is a plain primary."""
    operand = _OPERAND.search(prefix)
    if operand is None or operand.start() > 0 and (prefix[operand.start() - 1].isalnum() or prefix[operand.start() - 1] in "._)]\"'"):
        return None
    return ExpressionSlot("operand", statement_start + operand.end(), target=operand.group(1), annotation=operand.group(2))


def _default_slot(prefix: str, paren: int, statement_start: int) -> ExpressionSlot | None:
    """In a `def` header, the default value of an annotated parameter has the annotation's type."""
    parameters = prefix[paren + 1 :]
    last = parameters[_last_top_level_comma(parameters) :]
    match = _PARAMETER_DEFAULT.fullmatch(last)
    if match is None:
        return None
    return ExpressionSlot("default", statement_start + len(prefix), annotation=match.group(2), target=match.group(1))


def _argument_slot(prefix: str, paren: int, statement_start: int) -> ExpressionSlot:
    arguments = prefix[paren + 1 :]
    start = paren + 1 + _last_top_level_comma(arguments)
    keyword = _KEYWORD.match(prefix, start)
    name = ""
    if keyword:
        name, start = keyword.group(1), keyword.end()
    else:
        start = _BLANKS.match(prefix, start).end()
    callee_end = statement_start + paren + 1
    body = _LAMBDA_BODY.match(prefix, start)
    if body is not None and body.end() == len(prefix):
        return ExpressionSlot("argument", statement_start + body.end(), callee_end=callee_end, keyword=name,
                              lambda_start=statement_start + start)
    return ExpressionSlot("argument", statement_start + start, callee_end=callee_end, keyword=name)


def _last_top_level_comma(arguments: str) -> int:
    """Offset just after the last comma at the arguments' own bracket depth (0 if none)."""
    commas = top_level_commas(arguments)
    return commas[-1] + 1 if commas else 0
