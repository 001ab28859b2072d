"""The syntactic layer: an llguidance matcher over the Python grammar, per request.

The grammar depends on the cursor (indentation, mode, the shape of the line); its
compiled matcher comes from the GrammarCache (llguidance_bridge) and is copied per request. The
statement's text before the cursor is consumed before decoding, so the model
continues that statement. Where a core is spare, masks are computed in a worker
thread while llama.cpp runs the forward pass (both release the GIL); otherwise a
token is checked on its own and a full mask computed only when needed.
"""

from __future__ import annotations

import concurrent.futures
from typing import Callable, Sequence

import llguidance.numpy as llnumpy
import numpy as np
from llguidance import LLMatcher

from accs_lsp.constraints.llguidance_bridge import (
    MASK_WORKER,
    GrammarCache,
    GrammarError,
    apply_mask,
    first_line,
    penalty_buffer,
)
from accs_lsp.constraints.protocol import GREEDY_RETRIES, ConstraintFailed
from accs_lsp.constraints.python_grammar import LineShape, python_grammar


class SyntaxConstraint:
    """Keeps the decoded tokens inside the grammar (implements decoding.TokenConstraint).

    `suffix_tokens` are the rest of the statement after the cursor: the completion is
    complete only where the grammar also accepts them after it.

    `overlap`: compute each next mask in a worker thread during the forward pass. Where
    llama.cpp already keeps every core busy, that thread only slows the forward pass;
    without it, a token is checked on its own and the full mask is computed only when
    the model's choice is not allowed (or for sampling and healing).
    """

    greedy_retries = GREEDY_RETRIES

    def __init__(
        self, matcher: LLMatcher, vocab_size: int, suffix_tokens: Sequence[int] = (), overlap: bool = True
    ) -> None:
        self.matcher = matcher
        self.overlap = overlap
        self.vocab_size = vocab_size
        self.suffix_tokens = list(suffix_tokens)
        self._bitmask = llnumpy.allocate_token_bitmask(1, vocab_size)
        self._penalty = penalty_buffer(self._bitmask)
        self._pending: concurrent.futures.Future[None] | None = None
        self._mask_is_current = False

    def consume_prefix(self, tokens: Sequence[int]) -> None:
        """Feed the statement's text before the cursor (already in the buffer)."""
        self._mask_is_current = False
        consumed = self.matcher.consume_tokens(list(tokens)) if tokens else True
        if not consumed or self.matcher.is_error():
            raise GrammarError(f"the grammar cannot continue this code: {first_line(self.matcher.get_error())}")

    def start_next_mask(self) -> None:
        if not self.overlap:
            return
        self._pending = MASK_WORKER.submit(llnumpy.fill_next_token_bitmask, self.matcher, self._bitmask, 0)

    def _wait_for_mask(self) -> None:
        """The matcher must not be touched while the worker computes a mask with it."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None
            self._mask_is_current = True

    def _current_mask(self) -> np.ndarray:
        self._wait_for_mask()
        if not self._mask_is_current:
            llnumpy.fill_next_token_bitmask(self.matcher, self._bitmask, 0)
            self._mask_is_current = True
        return self._bitmask

    def mask_logits(self, logits: np.ndarray) -> None:
        apply_mask(logits, self._current_mask(), self._penalty, self.vocab_size)

    def removed_mass(self, logits: np.ndarray) -> tuple[float, bool]:
        """The model's probability mass this step's mask removes, and whether it removes the top token.
        For evaluation: it computes the full mask and a softmax."""
        allowed = np.unpackbits(self._current_mask()[0].view(np.uint8), bitorder="little")[: self.vocab_size]
        scores = logits[: self.vocab_size].astype(np.float64)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        return float(probabilities[allowed == 0].sum()), not allowed[int(np.argmax(scores))]

    def try_accept(self, token: int) -> bool:
        """Accept `token` if the grammar allows it; a mask computed for this step answers at once."""
        self._wait_for_mask()
        if self._mask_is_current and not self._bitmask[0, token >> 5] >> (token & 31) & 1:
            return False
        if self.matcher.try_consume_tokens([token]) != 1:
            return False
        self._mask_is_current = False
        return True

    def rollback(self, count: int) -> None:
        """Take back the last `count` accepted tokens (another layer refused one)."""
        self._wait_for_mask()
        self._mask_is_current = False
        self.matcher.rollback(count)

    def accept(self, tokens: Sequence[int]) -> None:
        self._wait_for_mask()
        self._mask_is_current = False
        if not self.matcher.consume_tokens(list(tokens)):
            raise ConstraintFailed(f"the grammar refused a token: {first_line(self.matcher.get_error())}")

    def forced_tokens(self) -> list[int]:
        self._wait_for_mask()
        return list(self.matcher.compute_ff_tokens())

    def is_finished(self) -> bool:
        self._wait_for_mask()
        return self.matcher.is_stopped()

    def is_complete(self) -> bool:
        """Whether the text so far, followed by the rest of the line, is a complete construct."""
        self._wait_for_mask()
        if not self.suffix_tokens:
            return self.matcher.is_accepting() or self.matcher.is_stopped() and not self.matcher.is_error()
        # Try the rest of the line and take it back: cheaper than copying the matcher.
        consumed = self.matcher.try_consume_tokens(self.suffix_tokens)
        complete = consumed == len(self.suffix_tokens) and (self.matcher.is_accepting() or self.matcher.is_stopped())
        self.matcher.rollback(consumed)
        return complete


def syntax_constraint(
    grammars: GrammarCache,
    tokenize: Callable[[str], list[int]],
    *,
    mode: str,
    indent: str,
    indent_unit: str,
    statement_prefix: str,
    statement_rest: str,
    healed_text: str = "",
    overlap: bool = True,
    line_shape: LineShape = "any",
) -> SyntaxConstraint:
    """The constraint for one request, having consumed the statement's text before the cursor.

    `statement_rest` is the code after the cursor up to the end of its statement: a
    completion is complete only where the grammar accepts it followed by that code.
    `line_shape`: what a line completion must be (see `python_grammar`).

    `healed_text` is the end of the text before the cursor that token healing took
    back from the prompt: the model writes it again, under the grammar. Where it
    reaches back before the statement (a newline and indentation), the grammar
    begins with that text as a literal.

    Raises GrammarError when the grammar cannot continue that text (a comment, code
    the grammar does not cover): the caller then relaxes to unconstrained decoding.
    """
    in_statement = min(len(healed_text), len(statement_prefix))
    lead = healed_text[: len(healed_text) - in_statement]
    grammar = python_grammar(
        indent=indent,
        mode="line" if mode == "line" else "block",
        indent_unit=indent_unit,
        lead=lead,
        bracket_newlines=brackets_may_span_lines(mode, statement_prefix, statement_rest),
        line_shape=line_shape if mode == "line" else "any",
    )
    constraint = SyntaxConstraint(
        grammars.matcher(grammar),
        grammars.tokenizer.vocab_size,
        tokenize(statement_rest) if statement_rest.strip() else (),
        overlap,
    )
    constraint.consume_prefix(tokenize(statement_prefix[: len(statement_prefix) - in_statement]))
    healed_in_statement = healed_text[len(lead) :]
    if healed_in_statement and not constraint.matcher.deep_copy().consume_tokens(tokenize(healed_in_statement)):
        raise GrammarError(f"the grammar cannot continue this code with {healed_in_statement!r}")
    return constraint


def brackets_may_span_lines(mode: str, statement_prefix: str, statement_rest: str = "") -> bool:
    """A line completion ends at the end of the line: brackets it opens must close there,
    unless the statement already runs over several lines."""
    return mode != "line" or "\n" in statement_prefix or "\n" in statement_rest
