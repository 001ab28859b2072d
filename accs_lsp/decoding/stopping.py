"""Where a completion ends: at the end of the line, or where it would leave the cursor's block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StopRule(Protocol):
    def cut(self, text: str) -> int | None:
        """Where to cut `text` if the completion is over, else None (keep generating)."""


@dataclass(frozen=True)
class LineStop:
    """One line: ends before the first newline."""

    def cut(self, text: str) -> int | None:
        newline = text.find("\n")
        return None if newline == -1 else newline


@dataclass(frozen=True)
class BlockStop:
    """Statements at the cursor's indentation and deeper.

    The first line continues the cursor's line. A later line that starts with
    less indentation than the cursor's leaves the block: the completion ends at
    the newline before it. At module level nothing can dedent, so a new
    top-level statement after a blank line ends the completion instead (one
    top-level paragraph at a time). Trailing blank lines are cut too.
    """

    indentation: str

    def cut(self, text: str) -> int | None:
        blank_run_start: int | None = None
        position = text.find("\n")
        while position != -1:
            next_newline = text.find("\n", position + 1)
            line = text[position + 1 : None if next_newline == -1 else next_newline]
            stripped = line.lstrip(" \t")
            if not stripped:
                if blank_run_start is None:
                    blank_run_start = position
            else:
                width = len(line) - len(stripped)
                if width < len(self.indentation):
                    return position if blank_run_start is None else blank_run_start
                if not self.indentation and width == 0 and blank_run_start is not None:
                    return blank_run_start
                blank_run_start = None
            position = next_newline
        return None


def stop_rule_for(mode: str, indentation: str) -> StopRule:
    if mode == "line":
        return LineStop()
    if mode == "block":
        return BlockStop(indentation)
    raise ValueError(f"unknown completion mode {mode!r} (expected 'line' or 'block')")
