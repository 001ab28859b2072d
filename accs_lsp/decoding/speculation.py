"""Speculative decoding from the buffer: drafts by prompt lookup, verified in one batch.

Code repeats itself: names, calls and whole lines already in the file come back. After each
choice, the drafter looks for the last few tokens earlier in the prompt and the output
(most recent occurrence first) and proposes the tokens that followed them there. The
decoding loop runs the chosen tokens and the draft through the model in one forward pass,
keeping the logits after each position, and then makes its next choices exactly as it
would have (biases, constraint layers, healing, stop rules) from those logits: each choice
that equals the draft's next token costs no forward pass. The first one that differs ends
the draft, and the positions after it are dropped from the KV cache. Under greedy decoding
the output is the plain loop's (batched and single-token evaluation agree to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# A match of two tokens is mostly chance in code (`self`, `.`); three or more mostly a copy.
NGRAM_SIZES = (5, 4, 3)
MAX_DRAFT_TOKENS = 8
FIRST_DRAFT_TOKENS = 2


class PromptLookup:
    """Proposes drafts from the tokens seen so far (the prompt, then the output)."""

    def __init__(self, history: Sequence[int], max_draft: int = MAX_DRAFT_TOKENS) -> None:
        self.history: list[int] = list(history)
        self.max_draft = max_draft
        # Drafts grow while they are taken whole and shrink back after a miss: a draft the
        # model does not follow costs its tokens' share of a forward pass for nothing.
        self.draft_length = FIRST_DRAFT_TOKENS
        # n-gram -> the position just after its latest occurrence, and after the one before.
        self._last: dict[tuple[int, ...], int] = {}
        self._previous: dict[tuple[int, ...], int] = {}
        for end in range(1, len(self.history) + 1):
            self._index(end)

    def extend(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.history.append(token)
            self._index(len(self.history))

    def propose(self) -> list[int]:
        """The tokens that followed the latest earlier occurrence of the longest recent n-gram."""
        for size in NGRAM_SIZES:
            if len(self.history) <= size:
                continue
            key = tuple(self.history[-size:])
            follows = self._previous.get(key)
            if follows is not None:
                return self.history[follows : follows + self.draft_length]
        return []

    def taken(self, drafted: int, used: int) -> None:
        """How much of the last draft the loop took: the next draft's length follows it."""
        if used >= drafted:
            self.draft_length = min(self.draft_length * 2, self.max_draft)
        else:
            self.draft_length = FIRST_DRAFT_TOKENS

    def _index(self, end: int) -> None:
        """Record the n-grams ending at `end`, keeping the occurrence before for `propose`
        (the latest one is the history's own tail)."""
        for size in NGRAM_SIZES:
            if end >= size:
                key = tuple(self.history[end - size : end])
                if key in self._last:
                    self._previous[key] = self._last[key]
                self._last[key] = end


@dataclass
class Lookahead:
    """A draft run through the model: the logits after the step's tokens and after each
    draft token, and how many of the draft the loop has taken so far."""

    draft: list[int]
    rows: list[np.ndarray]
    verified_end: int  # KV positions that hold the step's tokens and the draft tokens taken
    used: int = 0

    def next_logits(self) -> np.ndarray:
        return self.rows[self.used]

    def take(self, tokens: Sequence[int]) -> bool:
        """Whether the loop's next tokens are the draft's next ones (then no forward pass)."""
        if list(tokens) != self.draft[self.used : self.used + len(tokens)]:
            return False
        self.used += len(tokens)
        self.verified_end += len(tokens)
        return True
