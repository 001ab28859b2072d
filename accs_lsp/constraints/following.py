"""A hard layer that follows the decoded text: the member and name constraints.

Each token's text is checked in Python (`allows`: most tokens are a word or two); a full
mask, which the decoding loop asks for only when the model's first choices are refused,
comes from a regex of what may follow the text (`continuation_regex`), compiled by
llguidance and cached per regex.
"""

from __future__ import annotations

from typing import Callable, Sequence

import llguidance
import numpy as np

from accs_lsp.constraints.llguidance_bridge import GrammarCache, apply_mask, penalty_buffer


class TextFollowingConstraint:
    """Implements decoding.TokenConstraint for a check of the decoded text (see the module
    docstring). `text`: the statement's text before the first decoded token."""

    greedy_retries = 3

    def __init__(self, grammars: GrammarCache, token_text: Callable[[int], str], text: str) -> None:
        self.grammars = grammars
        self.token_text = token_text
        self.text = text
        self.vocab_size = grammars.tokenizer.vocab_size
        self._bitmask = llguidance.numpy.allocate_token_bitmask(1, self.vocab_size)
        self._penalty = penalty_buffer(self._bitmask)
        self._lengths: list[int] = []

    # -- what a layer says -------------------------------------------------------------------

    def allows(self, piece: str) -> bool:
        """Whether `piece` may follow the text."""
        raise NotImplementedError

    def continuation_regex(self) -> str | None:
        """What may follow the text, as a regex; None where nothing is restricted."""
        raise NotImplementedError

    def is_complete(self) -> bool:
        raise NotImplementedError

    # -- TokenConstraint -------------------------------------------------------------------

    def start_next_mask(self) -> None:
        pass  # masks are rare here: computed on demand

    def mask_logits(self, logits: np.ndarray) -> None:
        regex = self.continuation_regex()
        if regex is None:
            return
        matcher = self.grammars.matcher(f"start: CONTINUATION\nCONTINUATION: /{regex}/\n")
        llguidance.numpy.fill_next_token_bitmask(matcher, self._bitmask, 0)
        apply_mask(logits, self._bitmask, self._penalty, self.vocab_size)

    def removed_mass(self, logits: np.ndarray) -> tuple[float, bool]:
        masked = logits.copy()
        self.mask_logits(masked)
        return removed_by(logits, masked)

    def try_accept(self, token: int) -> bool:
        piece = self.token_text(token)
        if not self.allows(piece):
            return False
        self._append(piece)
        return True

    def accept(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self._append(self.token_text(token))

    def rollback(self, count: int) -> None:
        for _ in range(count):
            self.text = self.text[: self._lengths.pop()]

    def forced_tokens(self) -> list[int]:
        return []

    def is_finished(self) -> bool:
        return False

    def _append(self, piece: str) -> None:
        self._lengths.append(len(self.text))
        self.text += piece


def removed_by(logits: np.ndarray, masked: np.ndarray) -> tuple[float, bool]:
    """Probability mass the mask removed (masked = -inf), and whether the top token went."""
    scores = logits.astype(np.float64)
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    removed = ~np.isfinite(masked)
    return float(probabilities[removed].sum()), bool(removed[int(np.argmax(scores))])
