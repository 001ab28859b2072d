"""Where the expression at the cursor begins, and what kind of position it is in.

Read from the statement's text before the cursor: the type checker is asked about
this position afterwards. Strings and comments are skipped (accs_lsp.analysis.scanner) so
that brackets and commas inside them do not count.
"""

from __future__ import annotations

import re

from accs_lsp.analysis.scanner import top_level_commas, unclosed_brackets
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
    opened = unclosed_brackets(prefix)
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
