"""Conversions between LSP positions, str offsets and UTF-8 bytes.

LSP counts a position's character in UTF-16 code units unless the client and
server agreed on "utf-8" or "utf-32" at initialize; every conversion here takes
that encoding.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass


class PositionError(ValueError):
    """A position that does not exist in the document."""


@dataclass(frozen=True)
class Point:
    """A tree-sitter point: row and UTF-8 byte column."""

    row: int
    column: int


UTF16 = "utf-16"
ENCODINGS = ("utf-8", "utf-16", "utf-32")


def char_units(char: str, encoding: str) -> int:
    if encoding == "utf-32":
        return 1
    if encoding == "utf-8":
        return len(char.encode("utf-8"))
    return 2 if ord(char) > 0xFFFF else 1


def unit_length(text: str, encoding: str = UTF16) -> int:
    """The length of `text` in the code units of a position encoding."""
    if text.isascii() or encoding == "utf-32":
        return len(text)
    return sum(char_units(char, encoding) for char in text)


def units_to_index(line: str, character: int, encoding: str = UTF16) -> int:
    """The str index in `line` of a character in code units; past the end clamps (LSP rule).

    A position inside a character (half a surrogate pair) moves to its start.
    """
    if line.isascii() or encoding == "utf-32":
        return min(character, len(line))
    units = 0
    for index, char in enumerate(line):
        width = char_units(char, encoding)
        if units + width > character:
            return index
        units += width
    return len(line)


LINE_BREAK = re.compile(r"\r\n|\r|\n")


class LineIndex:
    """Line starts of a text, for offset arithmetic without rescanning the text.

    Lines end at "\n", "\r\n" or a lone "\r", as LSP says; tree-sitter's points count
    rows at "\n" only, so `point_at` keeps to that.
    """

    def __init__(self, text: str, encoding: str = UTF16) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown position encoding {encoding!r}")
        self.text = text
        self.encoding = encoding
        self.has_lone_cr = "\r" in text and text.count("\r") != text.count("\r\n")
        if self.has_lone_cr:
            self.line_starts = [0] + [match.end() for match in LINE_BREAK.finditer(text)]
        else:
            starts = [0]
            position = text.find("\n")
            while position != -1:
                starts.append(position + 1)
                position = text.find("\n", position + 1)
            self.line_starts = starts
        self.is_ascii = text.isascii()

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def line_text(self, line: int) -> str:
        """The line's text without its newline."""
        start = self.line_starts[line]
        if line + 1 == self.line_count:
            return self.text[start:]
        return self.text[start : self.line_starts[line + 1]].rstrip("\r\n")

    def offset_at(self, line: int, character: int, *, strict: bool = False) -> int:
        """The str offset of an LSP position.

        A line outside the document is always an error; a character past the end of
        its line clamps to the end as LSP says, or is an error when `strict`.
        """
        if line < 0 or character < 0:
            raise PositionError(f"negative position {line}:{character}")
        if line >= self.line_count:
            raise PositionError(
                f"line {line} is outside the document ({self.line_count} lines, 0-based)"
            )
        text = self.line_text(line)
        if strict and character > unit_length(text, self.encoding):
            raise PositionError(
                f"character {character} is past the end of line {line} "
                f"({unit_length(text, self.encoding)} {self.encoding} units)"
            )
        return self.line_starts[line] + units_to_index(text, character, self.encoding)

    def line_of(self, offset: int) -> int:
        return bisect_right(self.line_starts, offset) - 1

    def position_at(self, offset: int) -> tuple[int, int]:
        """The LSP position (line, character in code units) of a str offset."""
        line = self.line_of(offset)
        start = self.line_starts[line]
        return line, unit_length(self.text[start:offset], self.encoding)

    def point_at(self, offset: int) -> Point:
        if self.has_lone_cr:
            start = self.text.rfind("\n", 0, offset) + 1
            return Point(self.text.count("\n", 0, offset), len(self.text[start:offset].encode("utf-8")))
        line = self.line_of(offset)
        start = self.line_starts[line]
        return Point(line, len(self.text[start:offset].encode("utf-8")))

    def byte_offset(self, offset: int) -> int:
        if self.is_ascii:
            return offset
        return len(self.text[:offset].encode("utf-8"))


def end_point(start: Point, inserted: str) -> Point:
    """Where inserted text ends, given where it starts."""
    newlines = inserted.count("\n")
    if newlines == 0:
        return Point(start.row, start.column + len(inserted.encode("utf-8")))
    tail = inserted[inserted.rfind("\n") + 1 :]
    return Point(start.row + newlines, len(tail.encode("utf-8")))
