"""The contextual layer's soft bias: the project's own names, learned by `accs-lsp learn`.

Where the model writes a name (a new one, or the rest of one it has begun), the tokens
that begin or continue the names the project uses are reweighted by how often the project
uses them (accepted completions raise a name's weight, dismissed ones lower it). The bias
only moves probability among those tokens: their total stays what the model gave them, so
whether a name comes next at all remains the model's choice, and the project only says
which. After `receiver.` the names are the attributes the project uses on that receiver.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from accs_lsp.analysis.scanner import in_code
from accs_lsp.decoding.generator import log_sum_exp

#: The largest shift, in nats, between the project's most and least used names.
BIAS_STRENGTH = 1.5
#: Names considered at a position without a typed start (the most used first).
NAMES_WITHOUT_START = 400
#: Token tables kept (one per receiver and name start met while decoding).
MAX_TABLES = 4096
_TRAILING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_RECEIVER = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\.$")


@dataclass
class ProjectNames:
    """The project's names and how much each is used, with the token tables built from them
    (kept from one request to the next until the project's store changes)."""

    identifiers: Mapping[str, float]
    attributes: Callable[[str], Mapping[str, float]]  # receiver text -> attribute weights
    tokenize: Callable[[str], list[int]]
    _tables: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def table(self, receiver: str | None, started: str) -> tuple[np.ndarray, np.ndarray]:
        """The tokens that begin or continue a learned name here, with their biases."""
        key = (receiver or "", started)
        if key not in self._tables:
            if len(self._tables) >= MAX_TABLES:
                self._tables.clear()
            self._tables[key] = self._build_table(receiver, started)
        return self._tables[key]

    def _build_table(self, receiver: str | None, started: str) -> tuple[np.ndarray, np.ndarray]:
        names = self.attributes(receiver) if receiver is not None else self.identifiers
        matching = [(name, weight) for name, weight in names.items() if weight > 0 and name.startswith(started) and name != started]
        if not started:
            matching = sorted(matching, key=lambda item: -item[1])[:NAMES_WITHOUT_START]
        if not matching:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        most = max(math.log1p(weight) for _, weight in matching)
        best: dict[int, float] = {}
        for name, weight in matching:
            value = BIAS_STRENGTH * math.log1p(weight) / most if most > 0 else 0.0
            for spelling in _spellings(name[len(started):], fresh=not started):
                pieces = self.tokenize(spelling)
                if pieces:
                    best[pieces[0]] = max(best.get(pieces[0], 0.0), value)
        tokens = np.fromiter(best, dtype=np.int64, count=len(best))
        return tokens, np.fromiter(best.values(), dtype=np.float64, count=len(best))


@dataclass
class ProjectBias:
    """Implements constraints.protocol.SoftBias for one request."""

    names: ProjectNames
    left_context: str  # the statement before the cursor, without the text the prompt healed

    def apply(self, logits: np.ndarray, text: str) -> None:
        before = self.left_context + text
        if not in_code(before):
            return
        tokens, bias = self.names.table(*_name_position(before))
        if len(tokens) < 2:
            return
        chosen = logits[tokens]
        finite = np.isfinite(chosen)
        if finite.sum() < 2:
            return
        old_total = log_sum_exp(chosen[finite])
        shifted = chosen[finite] + bias[finite]
        logits[tokens[finite]] = shifted - (log_sum_exp(shifted) - old_total)


def _name_position(before: str) -> tuple[str | None, str]:
    """(the receiver before a `.`, or None; the part of the name already written)."""
    started_match = _TRAILING_NAME.search(before)
    started = started_match.group() if started_match else ""
    head = before[: len(before) - len(started)]
    receiver = _RECEIVER.search(head)
    return (receiver.group(1) if receiver else None), started


def _spellings(rest: str, fresh: bool) -> tuple[str, ...]:
    """How the next token may spell the rest of a name: a new name may come after a space."""
    return (rest, " " + rest) if fresh else (rest,)

