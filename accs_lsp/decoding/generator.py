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
from typing import Sequence

import numpy as np

from accs_lsp.constraints.protocol import ConstraintFailed, SoftBias, TokenConstraint
from accs_lsp.decoding.speculation import Lookahead, PromptLookup
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


@dataclass(frozen=True)
class GenerationResult:
    text: str
    tokens: int
    stop_reason: StopReason
    prompt_tokens: int
    reused_tokens: int
    prefill_seconds: float
    decode_seconds: float
    # Tokens run through the model after the prompt: the last token chosen is never run,
    # so a per-token rate over `tokens` would favour short completions.
    forwarded_tokens: int = 0
    # Lengths of `text` at which the constraint saw a complete construct (empty without one),
    # and the model's log-likelihood of the tokens chosen up to each of them.
    complete_lengths: tuple[int, ...] = ()
    complete_log_likelihoods: tuple[float, ...] = ()
    # The model's log-likelihood of all the tokens it chose (forced tokens count as certain).
    log_likelihood: float = 0.0
    # Time the constraint took on the critical path: waiting for a mask not ready when the
    # forward pass ended, applying it, and checking whether the construct is complete.
    constraint_seconds: float = 0.0
    # With `measure_invasiveness`: constrained steps, steps whose mask removed the model's
    # top token, and the probability mass the masks removed, summed over the steps.
    constrained_steps: int = 0
    top_token_removed: int = 0
    removed_mass: float = 0.0
    # The token ids chosen (forced ones included), and with `record_steps`, each free
    # choice: where it was made and how sure the model was (for branches).
    token_ids: tuple[int, ...] = ()
    steps: tuple["Step", ...] = ()
    # With `speculate`: draft tokens run through the model, and those the loop then chose.
    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.forwarded_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0


@dataclass(frozen=True)
class Step:
    """One free choice of a decoding: made after `position` tokens, the model's margin
    between its two favourite tokens (in logits, before any mask), the token chosen, and
    the log-likelihood of the tokens before it."""

    position: int
    margin: float
    token: int
    log_likelihood: float


@dataclass(frozen=True)
class Branch:
    """Decode again from a step of an earlier decoding: its first `tokens` (fed through the
    constraint as they were), then anything but `banned` at the next choice."""

    tokens: tuple[int, ...]
    banned: int
    log_likelihood: float


class Sampler:
    """Greedy when temperature is 0 (the default: completions repeat), else softmax sampling."""

    def __init__(self, temperature: float = 0.0, seed: int = 0) -> None:
        self.temperature = temperature
        self._random = np.random.default_rng(seed)

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0

    def choose(self, logits: np.ndarray) -> int:
        if self.temperature <= 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self.temperature
        scaled -= scaled.max()
        probabilities = np.exp(scaled)
        probabilities /= probabilities.sum()
        return int(self._random.choice(len(probabilities), p=probabilities))


@dataclass
class Invasiveness:
    steps: int = 0
    top_token_removed: int = 0
    removed_mass: float = 0.0

    def observe(self, constraint: TokenConstraint, logits: np.ndarray) -> None:
        mass, top_removed = constraint.removed_mass(logits)
        self.steps += 1
        self.top_token_removed += top_removed
        self.removed_mass += mass


class Generator:
    def __init__(self, model: LlamaModel, sampler: Sampler | None = None, measure_invasiveness: bool = False) -> None:
        """`measure_invasiveness`: compute the full mask at every step to measure what it removes (evaluation)."""
        self.model = model
        self.sampler = sampler or Sampler()
        self.measure_invasiveness = measure_invasiveness

    def run(
        self,
        prompt: Prompt,
        *,
        max_tokens: int,
        stop_rule: StopRule,
        stop_event: threading.Event | None = None,
        deadline: float | None = None,
        constraint: TokenConstraint | None = None,
        biases: Sequence[SoftBias] = (),
        branch: Branch | None = None,
        record_steps: bool = False,
        speculate: bool = False,
    ) -> GenerationResult:
        """`biases` (soft layers) are added to the logits before every choice, greedy included.
        `branch`: start from a step of an earlier decoding with another token there.
        `record_steps`: keep each free choice's margin (what branches start from).
        `speculate`: draft from the prompt and verify in batches (greedy decoding only; see
        decoding.speculation)."""
        replayed = list(branch.tokens) if branch is not None else []
        prefill = self.model.prefill(list(prompt.tokens) + replayed)
        started = time.perf_counter()
        output = _Output(prompt.healed_text)
        complete_lengths: list[int] = []
        complete_log_likelihoods: list[float] = []
        log_likelihood = branch.log_likelihood if branch is not None else 0.0
        invasiveness = Invasiveness()
        constraint_time = 0.0
        reason = StopReason.MAX_TOKENS
        chosen_ids: list[int] = []
        steps: list[Step] = []
        if replayed and not self._replay(replayed, output, constraint, chosen_ids):
            max_tokens = 0
            reason = StopReason.CONSTRAINT_FAILED
        if constraint is not None and not replayed and not output.pending_healing and constraint.is_complete():
            complete_lengths.append(0)  # the code around the cursor is whole already: nothing is an answer
            complete_log_likelihoods.append(0.0)
        generated = len(replayed)
        forwarded = 0
        drafter = PromptLookup(list(prompt.tokens) + replayed) if speculate and self.sampler.is_greedy else None
        lookahead: Lookahead | None = None
        drafted = accepted = 0
        while generated < max_tokens:
            if stop_event is not None and stop_event.is_set():
                reason = StopReason.CANCELLED
                break
            if deadline is not None and time.monotonic() > deadline:
                reason = StopReason.TIMEOUT
                break
            logits = lookahead.next_logits() if lookahead is not None else self.model.logits()
            for bias in biases:
                bias.apply(logits, output.visible)
            normaliser = log_sum_exp(logits)  # before any mask: the model's own distribution
            margin = top_margin(logits) if record_steps and not output.pending_healing else None
            if branch is not None and generated == len(replayed):
                logits[branch.banned] = -np.inf
            if constraint is None:
                tokens = self._next_tokens(logits, output)
                if len(tokens) == 1 and self.model.is_end_of_generation(tokens[0]):
                    reason = StopReason.END_OF_GENERATION
                    break
            else:
                if self.measure_invasiveness:
                    invasiveness.observe(constraint, logits)
                step_started = time.perf_counter()
                try:
                    chosen = self._constrained_step(logits, output, constraint)
                except ConstraintFailed:
                    reason = StopReason.CONSTRAINT_FAILED
                    break
                finally:
                    constraint_time += time.perf_counter() - step_started
                if isinstance(chosen, StopReason):
                    reason = chosen
                    break
                tokens = chosen
            if margin is not None:
                steps.append(Step(len(chosen_ids), margin, tokens[0], log_likelihood))
            log_likelihood += float(logits[tokens[0]]) - normaliser  # the tokens after it were forced
            generated += len(tokens)
            chosen_ids.extend(tokens)
            for token in tokens:
                output.add(self.model.token_bytes(token))
            if constraint is not None and not output.pending_healing:
                checked = time.perf_counter()
                if constraint.is_complete():
                    complete_lengths.append(len(output.visible))
                    complete_log_likelihoods.append(log_likelihood)
                constraint_time += time.perf_counter() - checked
            uncut = output.visible
            if output.apply(stop_rule):
                complete_lengths, complete_log_likelihoods = clamp_to_cut(
                    complete_lengths, complete_log_likelihoods, uncut, len(output.visible), log_likelihood
                )
                reason = StopReason.STOP_RULE
                break
            if self.model.n_ctx - len(prompt.tokens) - generated <= len(tokens):
                reason = StopReason.CONTEXT_FULL
                break
            if constraint is not None:
                constraint.start_next_mask()  # computed while the forward pass runs
            if drafter is not None:
                drafter.extend(tokens)
            if lookahead is not None and lookahead.take(tokens):
                accepted += len(tokens)
                forwarded += len(tokens)
                continue  # the draft already ran these tokens through the model
            if lookahead is not None:
                self.model.truncate(lookahead.verified_end)
                drafter.taken(len(lookahead.draft), lookahead.used)
                lookahead = None
            draft = self._fitting_draft(drafter, len(prompt.tokens) + generated + len(tokens)) if drafter is not None else []
            if draft:
                lookahead = self._run_draft(tokens, draft)
                drafted += len(draft)
            else:
                self.model.advance(tokens)
            forwarded += len(tokens)
        if lookahead is not None:
            self.model.truncate(lookahead.verified_end)
        return GenerationResult(
            text=output.visible,
            tokens=generated,
            stop_reason=reason,
            prompt_tokens=len(prompt.tokens),
            reused_tokens=prefill.reused_tokens,
            prefill_seconds=prefill.seconds,
            decode_seconds=time.perf_counter() - started,
            forwarded_tokens=forwarded,
            complete_lengths=tuple(complete_lengths),
            complete_log_likelihoods=tuple(complete_log_likelihoods),
            log_likelihood=log_likelihood,
            constraint_seconds=constraint_time,
            constrained_steps=invasiveness.steps,
            top_token_removed=invasiveness.top_token_removed,
            removed_mass=invasiveness.removed_mass,
            token_ids=tuple(chosen_ids),
            steps=tuple(steps),
            drafted_tokens=drafted,
            accepted_draft_tokens=accepted,
        )

    def _fitting_draft(self, drafter: PromptLookup, used: int) -> list[int]:
        """The drafter's proposal, cut to what the context window has room for."""
        room = self.model.n_ctx - used - 2
        return drafter.propose()[: max(room, 0)]

    def _run_draft(self, tokens: list[int], draft: list[int]) -> Lookahead:
        """One forward pass over the step's tokens and the draft, keeping the logits after
        the step's last token and after each draft token."""
        start = self.model.position
        rows = self.model.advance_scored(tokens + draft, range(len(tokens) - 1, len(tokens) + len(draft)))
        return Lookahead(draft, rows, start + len(tokens))

    def _replay(self, tokens: list[int], output: "_Output", constraint: TokenConstraint | None, chosen_ids: list[int]) -> bool:
        """Feed a branch's first tokens to the constraint and the output; False when the
        constraint no longer takes them."""
        for token in tokens:
            if constraint is not None and not constraint.try_accept(token):
                return False
            output.add(self.model.token_bytes(token))
            chosen_ids.append(token)
        return True

    def _constrained_step(
        self, logits: np.ndarray, output: "_Output", constraint: TokenConstraint
    ) -> list[int] | StopReason:
        """Choose under the constraint and feed the choice to it, with the tokens it then forces."""
        if constraint.is_finished():
            return StopReason.END_OF_GENERATION
        if self.sampler.is_greedy and not output.pending_healing:
            token = self._greedy_allowed(logits, constraint)
            if token is None:
                # The construct is complete and the model wants to go on with something else.
                return StopReason.STOP_RULE
            if self.model.is_end_of_generation(token):
                return StopReason.END_OF_GENERATION
            chosen = [token]
        else:
            # Healing under greedy decoding needs only the best allowed token among those that
            # re-create the text it took back (after `is Non`, " not" is better than " None" but
            # does not heal); sampling needs the full mask.
            if self.sampler.is_greedy and hasattr(constraint, "mask_logits_narrow"):
                constraint.mask_logits_narrow(logits, wanted=lambda token: self._heals(token, output))
            else:
                constraint.mask_logits(logits)
            chosen = self._next_tokens(logits, output)
            if len(chosen) == 1 and self.model.is_end_of_generation(chosen[0]):
                return StopReason.END_OF_GENERATION
            constraint.accept(chosen)
        forced = constraint.forced_tokens()
        if forced:
            constraint.accept(forced)
        return chosen + forced

    @staticmethod
    def _greedy_allowed(logits: np.ndarray, constraint: TokenConstraint) -> int | None:
        """The best allowed token, already accepted by the constraint; None when the construct is
        complete and the model's first choice is not allowed.

        The model's first choices are tried one by one (most are allowed), and the full mask is
        computed only when none of them is.
        """
        token = int(np.argmax(logits))
        if constraint.try_accept(token):
            return token
        if constraint.is_complete():
            return None
        for _ in range(constraint.greedy_retries):
            logits[token] = -np.inf  # llama.cpp's buffer: the next forward pass overwrites it
            token = int(np.argmax(logits))
            if constraint.try_accept(token):
                return token
        getattr(constraint, "mask_logits_narrow", constraint.mask_logits)(logits)
        token = int(np.argmax(logits))
        if not np.isfinite(logits[token]):  # the layers together allow nothing
            raise ConstraintFailed("no token is allowed by every constraint layer")
        constraint.accept([token])
        return token

    def _heals(self, token: int, output: "_Output") -> bool:
        """Whether `token` re-creates (part of) the text healing took back."""
        pending = output.pending_healing.encode("utf-8")
        piece = self.model.token_bytes(token)
        return bool(piece) and (pending.startswith(piece) or piece.startswith(pending))

    def _next_tokens(self, logits: np.ndarray, output: "_Output") -> list[int]:
        """The sampler's token, or while healing, the best token that re-creates the removed text."""
        if not output.pending_healing:
            return [self.sampler.choose(logits)]
        count = min(HEALING_CANDIDATES, len(logits))
        candidates = np.argpartition(-logits, count - 1)[:count]
        for token in candidates[np.argsort(-logits[candidates])]:
            if not np.isfinite(logits[token]):
                break  # masked out by a constraint, like everything after it
            if self._heals(int(token), output):
                return [int(token)]
        # None of the likely tokens fits: put the removed text back as it was.
        return self.model.tokenize(output.pending_healing)


def clamp_to_cut(
    lengths: list[int], likelihoods: list[float], uncut: str, cut: int, likelihood: float
) -> tuple[list[int], list[float]]:
    """Complete points past a stop-rule cut survive only when the cut removed nothing but blanks
    (the cut then becomes a complete point, with the likelihood of everything chosen)."""
    kept = [(length, value) for length, value in zip(lengths, likelihoods) if length <= cut]
    if any(length > cut and not uncut[cut:length].strip() for length in lengths) and cut not in dict(kept):
        kept.append((cut, likelihood))
    return [length for length, _ in kept], [value for _, value in kept]


def top_margin(logits: np.ndarray) -> float:
    """How much the model prefers its favourite token to the next one (in logits)."""
    second, first = np.partition(logits, len(logits) - 2)[-2:]
    return float(first - second)


def log_sum_exp(logits: np.ndarray) -> float:
    top = float(np.max(logits))
    return top + float(np.log(np.sum(np.exp(logits - top, dtype=np.float32))))


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
