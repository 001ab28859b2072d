"""The token loop: prefill, pick a token, check the stop rules, feed it back.

Written by hand rather than through `create_completion` because constraint
masks, token healing and fast-forwarding all act between two forward passes.
"""

from __future__ import annotations

import codecs
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, Sequence

import numpy as np

from accs_lsp.decoding.prompt import Prompt
from accs_lsp.decoding.stopping import StopRule
from accs_lsp.models import LlamaModel

HEALING_CANDIDATES = 64


class StopReason(str, Enum):
    END_OF_GENERATION = "eos"
    STOP_RULE = "stop_rule"
    MAX_TOKENS = "max_tokens"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    CONTEXT_FULL = "context_full"
    CONSTRAINT_FAILED = "constraint_failed"


class ConstraintFailed(Exception):
    """A constraint cannot follow the tokens chosen: generation ends with what is complete."""


class TokenConstraint(Protocol):
    """A decoding-time constraint (the syntactic layer, later the type layer).

    The loop asks for the next mask to be computed (`start_next_mask`) before it
    runs the forward pass, so an implementation can overlap the two.
    """

    def start_next_mask(self) -> None: ...

    def mask_logits(self, logits: np.ndarray) -> None: ...

    def allows(self, token: int) -> bool: ...

    def accept(self, tokens: Sequence[int]) -> None: ...

    def forced_tokens(self) -> list[int]: ...

    def is_finished(self) -> bool: ...

    def is_complete(self) -> bool: ...


@dataclass(frozen=True)
class GenerationResult:
    text: str
    tokens: int
    stop_reason: StopReason
    prompt_tokens: int
    reused_tokens: int
    prefill_seconds: float
    decode_seconds: float
    # Lengths of `text` at which the constraint saw a complete construct (empty without one).
    complete_lengths: tuple[int, ...] = ()
    # Time the constraint took on the critical path: waiting for a mask not ready when the
    # forward pass ended, applying it, and checking whether the construct is complete.
    constraint_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0


class Sampler:
    """Greedy when temperature is 0 (the default: completions repeat), else softmax sampling."""

    def __init__(self, temperature: float = 0.0, seed: int = 0) -> None:
        self.temperature = temperature
        self._random = np.random.default_rng(seed)

    def choose(self, logits: np.ndarray) -> int:
        if self.temperature <= 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self.temperature
        scaled -= scaled.max()
        probabilities = np.exp(scaled)
        probabilities /= probabilities.sum()
        return int(self._random.choice(len(probabilities), p=probabilities))


class Generator:
    def __init__(self, model: LlamaModel, sampler: Sampler | None = None) -> None:
        self.model = model
        self.sampler = sampler or Sampler()

    def run(
        self,
        prompt: Prompt,
        *,
        max_tokens: int,
        stop_rule: StopRule,
        stop_event: threading.Event | None = None,
        deadline: float | None = None,
        constraint: TokenConstraint | None = None,
    ) -> GenerationResult:
        prefill = self.model.prefill(prompt.tokens)
        started = time.perf_counter()
        output = _Output(prompt.healed_text)
        complete_lengths: list[int] = []
        constraint_time = 0.0
        reason = StopReason.MAX_TOKENS
        generated = 0
        while generated < max_tokens:
            if stop_event is not None and stop_event.is_set():
                reason = StopReason.CANCELLED
                break
            if deadline is not None and time.monotonic() > deadline:
                reason = StopReason.TIMEOUT
                break
            logits = self.model.logits()
            if constraint is not None:
                if constraint.is_finished():
                    reason = StopReason.END_OF_GENERATION
                    break
                waited = time.perf_counter()
                preferred = int(np.argmax(logits)) if constraint.is_complete() else None
                constraint.mask_logits(logits)
                constraint_time += time.perf_counter() - waited
                if preferred is not None and not constraint.allows(preferred) and not output.pending_healing:
                    # The construct is complete and the model wants to go on with something else.
                    reason = StopReason.STOP_RULE
                    break
            tokens = self._next_tokens(logits, output)
            if len(tokens) == 1 and self.model.is_end_of_generation(tokens[0]):
                reason = StopReason.END_OF_GENERATION
                break
            if constraint is not None:
                try:
                    tokens = tokens + self._follow(constraint, tokens)
                except ConstraintFailed:
                    reason = StopReason.CONSTRAINT_FAILED
                    break
            generated += len(tokens)
            for token in tokens:
                output.add(self.model.token_bytes(token))
            if constraint is not None and not output.pending_healing and constraint.is_complete():
                complete_lengths.append(len(output.visible))
            uncut = output.visible
            if output.apply(stop_rule):
                complete_lengths = clamp_to_cut(complete_lengths, uncut, len(output.visible))
                reason = StopReason.STOP_RULE
                break
            if self.model.n_ctx - len(prompt.tokens) - generated <= len(tokens):
                reason = StopReason.CONTEXT_FULL
                break
            if constraint is not None:
                constraint.start_next_mask()  # computed while the forward pass runs
            self.model.advance(tokens)
        return GenerationResult(
            text=output.visible,
            tokens=generated,
            stop_reason=reason,
            prompt_tokens=len(prompt.tokens),
            reused_tokens=prefill.reused_tokens,
            prefill_seconds=prefill.seconds,
            decode_seconds=time.perf_counter() - started,
            complete_lengths=tuple(complete_lengths),
            constraint_seconds=constraint_time,
        )

    @staticmethod
    def _follow(constraint: TokenConstraint, tokens: list[int]) -> list[int]:
        """Feed the chosen tokens to the constraint; return the tokens it then forces."""
        constraint.accept(tokens)
        forced = constraint.forced_tokens()
        if forced:
            constraint.accept(forced)
        return forced

    def _next_tokens(self, logits: np.ndarray, output: "_Output") -> list[int]:
        """The sampler's token, or while healing, the best token that re-creates the removed text."""
        if not output.pending_healing:
            return [self.sampler.choose(logits)]
        pending = output.pending_healing.encode("utf-8")
        count = min(HEALING_CANDIDATES, len(logits))
        candidates = np.argpartition(-logits, count - 1)[:count]
        for token in candidates[np.argsort(-logits[candidates])]:
            if not np.isfinite(logits[token]):
                break  # masked out by a constraint, like everything after it
            piece = self.model.token_bytes(int(token))
            if piece and (pending.startswith(piece) or piece.startswith(pending)):
                return [int(token)]
        # None of the likely tokens fits: put the removed text back as it was.
        return self.model.tokenize(output.pending_healing)


def clamp_to_cut(lengths: list[int], uncut: str, cut: int) -> list[int]:
    """Complete points past a stop-rule cut survive only when the cut removed nothing but blanks."""
    kept = [length for length in lengths if length <= cut]
    if any(length > cut and not uncut[cut:length].strip() for length in lengths) and cut not in kept:
        kept.append(cut)
    return kept


class _Output:
    """Generated text, split into the healed part (already in the buffer) and the visible part."""

    def __init__(self, healed_text: str) -> None:
        self.healed_text = healed_text
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.visible = ""

    @property
    def pending_healing(self) -> str:
        return self.healed_text[len(self.text) :] if len(self.text) < len(self.healed_text) else ""

    def add(self, piece: bytes) -> None:
        self.text += self._decoder.decode(piece)
        self.visible = self.text[len(self.healed_text) :]

    def apply(self, stop_rule: StopRule) -> bool:
        cut = stop_rule.cut(self.visible)
        if cut is None:
            return False
        self.visible = self.visible[:cut]
        return True
