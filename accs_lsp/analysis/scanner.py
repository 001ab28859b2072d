"""Where strings and comments are in Python text, and how deep in brackets each position is.

A small lexical scanner for the text before the cursor: it reads the text left to right
and knows at every position whether that position is in code, in a string literal or in
a comment, and which brackets are open. Unlike `tokenize` it never fails: its main use is
a prefix of a file, which may end in the middle of a string, a comment or a bracket.

What it follows:

* string literals with any prefix (r, b, u, f and t in any case and valid combination),
  single or triple quotes, and backslash escapes (a backslash escapes the next character
  in raw strings too, as Python's tokenizer reads them: r"\\"" is one string);
* f-strings (and t-strings): a replacement field `{...}` is code, one level deeper, with
  strings, brackets, comments and line breaks of its own, as Python 3.12 reads them (a
  quote inside a field starts a nested string, even the f-string's own quote);
  `{{` and `}}` are literal braces; after the field's own `:` comes its format spec,
  which is string again and may hold nested fields; `\\N{...}` is an escape, not a field;
* comments, from `#` in code to the end of the line.

Error recovery, for text that is not valid Python: a single-quoted string (or a format
spec in one) ends at the end of its line, and a closing bracket that closes nothing is
ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Kind = Literal["code", "string", "comment"]

_OPENERS = "([{"
_CLOSERS = ")]}"
_NEWLINES = "\r\n"
# A string prefix, at the start of a word, right before the quote.
_PREFIX = re.compile(r"(?i)(?:br|rb|[ft]r|r[ft]|[rbuft])(?=['\"])")
_PREFIX_LETTERS = frozenset("rRbBuUfFtT")
# Characters that may change the state inside a string literal and inside a format spec.
_IN_STRING = {
    (quote, formatted): re.compile("[\\\\\r\n" + quote + ("{}" if formatted else "") + "]")
    for quote in "'\""
    for formatted in (False, True)
}
_IN_FORMAT_SPEC = {quote: re.compile("[\\\\\r\n" + quote + "{}]") for quote in "'\""}


@dataclass(frozen=True)
class Opened:
    """Something open at a position: a bracket, a string literal, an f-string's replacement
    field or a field's format spec. `offset` is where it starts (a string: at its prefix)."""

    kind: Literal["bracket", "string", "field", "format_spec"]
    offset: int
    delimiter: str  # the bracket; the string's quote, one or three; "{" for a field; ":" for a spec
    raw: bool = False
    formatted: bool = False

    @property
    def is_string(self) -> bool:
        return self.kind == "string"


class CodeCharacter(NamedTuple):
    """A character of code; `depth`: the brackets (and replacement fields) open around it.
    An opening bracket stands at the depth outside it, a closing one at the depth it returns to."""

    offset: int
    character: str
    depth: int


@dataclass
class ScanState:
    """What is open at a position, innermost last, and whether that position is in a comment."""

    opened: list[Opened] = field(default_factory=list)
    in_comment: bool = False

    @property
    def kind(self) -> Kind:
        if self.in_comment:
            return "comment"
        if self.opened and self.opened[-1].kind in ("string", "format_spec"):
            return "string"
        return "code"

    @property
    def depth(self) -> int:
        """Brackets open, counting each enclosing replacement field as one."""
        return _depth(self.opened)

    @property
    def brackets(self) -> list[tuple[int, str]]:
        """(offset, character) of the open brackets, outermost first; a field counts as "{"."""
        return [(item.offset, item.delimiter) for item in self.opened if item.kind in ("bracket", "field")]


def scan(text: str) -> ScanState:
    """The state at the end of `text`."""
    state = ScanState()
    for _ in _walk(text, state):
        pass
    return state


def code_characters(text: str) -> Iterator[CodeCharacter]:
    """The characters of `text` that are code, outside string literals and comments (inside an
    f-string's replacement fields too). The braces and the `:` that delimit a field are not
    listed, nor a string's prefix."""
    return _walk(text, ScanState())


def in_code(text: str) -> bool:
    """Whether the end of `text` is in code: not inside a string literal or a comment."""
    return scan(text).kind == "code"


def top_level_commas(text: str) -> list[int]:
    """Offsets of the commas outside brackets, strings and comments."""
    return [item.offset for item in code_characters(text) if item.character == "," and item.depth == 0]


def split_top_level(text: str) -> list[str]:
    """`text` split at its top-level commas, each part stripped; empty parts left out."""
    bounds = [-1, *top_level_commas(text), len(text)]
    parts = (text[start + 1 : end].strip() for start, end in zip(bounds, bounds[1:]))
    return [part for part in parts if part]


def unclosed_brackets(text: str) -> list[tuple[int, str]]:
    """(offset, character) of the brackets still open at the end of `text`, outermost first
    (an f-string replacement field the end is in counts as "{")."""
    return scan(text).brackets


CLOSERS = {"(": ")", "[": "]", "{": "}"}


def closing_text(text: str) -> str | None:
    """What closes everything open at the end of `text`, innermost first: string quotes,
    replacement fields, brackets (`f"a{b(c` → `)}"`). None at the end of a comment."""
    state = scan(text)
    if state.in_comment:
        return None
    closers = []
    for item in reversed(state.opened):
        if item.kind == "string":
            closers.append(item.delimiter)
        elif item.kind == "field":
            closers.append("}")
        elif item.kind == "bracket":
            closers.append(CLOSERS[item.delimiter])
    return "".join(closers)


def _walk(text: str, state: ScanState) -> Iterator[CodeCharacter]:
    """Reads `text`, starting in `state`: yields its code characters, and leaves `state` as it
    is at the end of `text`."""
    opened = state.opened
    index, length = 0, len(text)
    while index < length:
        if state.in_comment:
            index = _line_end(text, index)
            if index < length:
                state.in_comment = False
            continue
        top = opened[-1] if opened else None
        if top is not None and top.kind == "string":
            index = _in_string(text, index, top, opened)
        elif top is not None and top.kind == "format_spec":
            index = _in_format_spec(text, index, opened)
        else:
            character = text[index]
            if character == "#":
                state.in_comment = True
            elif character in "'\"" or character in _PREFIX_LETTERS and _word_starts(text, index):
                string, body = _string_start(text, index)
                if string is not None:
                    opened.append(string)
                    index = body
                    continue
                yield CodeCharacter(index, character, _depth(opened))
            elif character in _OPENERS:
                yield CodeCharacter(index, character, _depth(opened))
                opened.append(Opened("bracket", index, character))
            elif character in _CLOSERS:
                if top is not None and top.kind == "field" and character == "}":
                    opened.pop()  # back in the f-string
                else:
                    if top is not None and top.kind == "bracket":
                        opened.pop()
                    yield CodeCharacter(index, character, _depth(opened))
            elif character == ":" and top is not None and top.kind == "field":
                opened.append(Opened("format_spec", index, ":"))
            else:
                yield CodeCharacter(index, character, _depth(opened))
            index += 1


def _depth(opened: list[Opened]) -> int:
    return sum(1 for item in opened if item.kind in ("bracket", "field"))


def _line_end(text: str, index: int) -> int:
    ends = [position for position in (text.find("\n", index), text.find("\r", index)) if position >= 0]
    return min(ends) if ends else len(text)


def _word_starts(text: str, index: int) -> bool:
    return index == 0 or not (text[index - 1].isalnum() or text[index - 1] == "_")


def _string_start(text: str, index: int) -> tuple[Opened | None, int]:
    """The string literal that starts at `index` (at its prefix or at its quote), if one does,
    and where its contents begin."""
    prefix = _PREFIX.match(text, index)
    quote_at = prefix.end() if prefix else index
    if quote_at >= len(text) or text[quote_at] not in "'\"":
        return None, index
    letters = prefix.group(0).lower() if prefix else ""
    quote = text[quote_at] * 3 if text.startswith(text[quote_at] * 3, quote_at) else text[quote_at]
    string = Opened("string", index, quote, raw="r" in letters, formatted="f" in letters or "t" in letters)
    return string, quote_at + len(quote)


def _in_string(text: str, index: int, string: Opened, opened: list[Opened]) -> int:
    """Reads on inside `string` (the innermost thing open) from `index`; returns where to go on."""
    found = _IN_STRING[string.delimiter[0], string.formatted].search(text, index)
    if found is None:
        return len(text)
    index, character = found.start(), found.group(0)
    if character == "\\":
        return _after_escape(text, index, string)
    if character in _NEWLINES:
        if len(string.delimiter) == 1:  # an unterminated single-quoted string ends with its line
            opened.pop()
            return index
        return index + 1
    if character == "{":
        if text.startswith("{{", index):
            return index + 2
        opened.append(Opened("field", index, "{"))
        return index + 1
    if character == "}":
        return index + 2 if text.startswith("}}", index) else index + 1
    if text.startswith(string.delimiter, index):
        opened.pop()
        return index + len(string.delimiter)
    return index + 1  # one quote of a triple-quoted string's delimiter


def _in_format_spec(text: str, index: int, opened: list[Opened]) -> int:
    """Reads on in a replacement field's format spec (the innermost thing open)."""
    string = _enclosing_string(opened)
    found = _IN_FORMAT_SPEC[string.delimiter[0]].search(text, index)
    if found is None:
        return len(text)
    index, character = found.start(), found.group(0)
    if character == "\\":
        return _after_escape(text, index, string)
    if character == "{":
        opened.append(Opened("field", index, "{"))
        return index + 1
    if character == "}":
        del opened[-2:]  # the spec and its field
        return index + 1
    if character in _NEWLINES:
        if len(string.delimiter) > 1:
            return index + 1
        _close_through(opened, string)  # a single-quoted string's spec cannot go on to the next line
        return index
    if text.startswith(string.delimiter, index):  # the string ends inside the field
        _close_through(opened, string)
        return index + len(string.delimiter)
    return index + 1


def _after_escape(text: str, index: int, string: Opened) -> int:
    """Where reading goes on after the backslash at `index` inside `string`."""
    following = text[index + 1 : index + 2]
    if string.formatted and following in ("{", "}"):
        return index + 1  # the brace is not escaped: it still opens (or closes) a field
    if string.formatted and not string.raw and following == "N" and text.startswith("{", index + 2):
        close = text.find("}", index + 3)  # a named escape, \N{NAME}, is not a field
        return close + 1 if close >= 0 else len(text)
    if text.startswith("\r\n", index + 1):
        return index + 3
    return min(index + 2, len(text))


def _enclosing_string(opened: list[Opened]) -> Opened:
    string = next((item for item in reversed(opened) if item.is_string), None)
    assert string is not None, "a format spec is always inside an f-string"
    return string


def _close_through(opened: list[Opened], item: Opened) -> None:
    """Closes everything open inside `item`, and `item` itself."""
    while opened:
        if opened.pop() is item:
            return
