"""The syntactic layer: an llguidance matcher over the Python grammar, per request.

One compiled matcher per grammar text is kept (the grammar depends on the
cursor's indentation and the mode) and deep-copied for each request. The
statement's text before the cursor is consumed before decoding, so the model
continues that statement. Where a core is spare, masks are computed in a worker
thread while llama.cpp runs the forward pass (both release the GIL); otherwise a
token is checked on its own and a full mask computed only when needed.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, Sequence

import llguidance
import llguidance.llamacpp
import llguidance.numpy as llnumpy
import numpy as np
from llguidance import LLMatcher

from accs_lsp.constraints.python_grammar import LineShape, python_grammar
from accs_lsp.decoding.generator import GREEDY_RETRIES, ConstraintFailed

if TYPE_CHECKING:
    from accs_lsp.models.llama import LlamaModel

COMPILED_GRAMMARS_KEPT = 32


def spare_core_for_masks(model_threads: int) -> bool:
    """Whether a mask worker thread can run beside llama.cpp's threads without taking a core from them."""
    return (os.cpu_count() or 1) > model_threads

# Row b holds 0.0 where bit i of byte b is set and -inf elsewhere: a mask is applied by
# gathering one row per byte of the bitmask and adding the result to the logits, several
# times faster than llguidance.numpy.apply_token_bitmask_inplace on these vocabularies.
_PENALTY_ROWS = np.where(
    np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little").astype(bool),
    np.float32(0.0),
    np.float32(-np.inf),
).astype(np.float32)
# One thread computes masks for every request: requests run one at a time on the model's worker.
_MASK_WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="accs-mask")


class GrammarError(ValueError):
    """A grammar llguidance cannot compile, or code the grammar cannot continue."""


def tokenizer_for(model: "LlamaModel") -> llguidance.LLTokenizer:
    """The model's vocabulary for llguidance, with every end-of-generation token as EOS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # one per token from llama-cpp-python 0.3.36
        return llguidance.llamacpp.lltokenizer_from_vocab(model.vocab, eos_token=sorted(model.eog_tokens))


class GrammarCache:
    """Compiled matchers per grammar text, for one tokenizer; a request gets a copy."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, kept: int = COMPILED_GRAMMARS_KEPT) -> None:
        self.tokenizer = tokenizer
        self.kept = kept
        self._compiled: OrderedDict[str, LLMatcher] = OrderedDict()
        self._lock = threading.Lock()

    def matcher(self, grammar: str) -> LLMatcher:
        with self._lock:
            compiled = self._compiled.get(grammar)
            if compiled is None:
                compiled = self._compile(grammar)
                self._compiled[grammar] = compiled
                if len(self._compiled) > self.kept:
                    self._compiled.popitem(last=False)
            self._compiled.move_to_end(grammar)
            return compiled.deep_copy()

    def _compile(self, grammar: str) -> LLMatcher:
        error = LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error:
            raise GrammarError(f"grammar does not compile: {first_line(error)}")
        return LLMatcher(self.tokenizer, LLMatcher.grammar_from_lark(grammar), log_level=0)


def penalty_buffer(bitmask: np.ndarray) -> np.ndarray:
    return np.empty((bitmask.shape[1] * 4, 8), dtype=np.float32)


def apply_mask(logits: np.ndarray, bitmask: np.ndarray, penalty: np.ndarray, vocab_size: int) -> None:
    """Set the logits of the tokens `bitmask` forbids to -inf, in place (`penalty` is scratch space)."""
    np.take(_PENALTY_ROWS, bitmask[0].view(np.uint8), axis=0, out=penalty)
    logits[:vocab_size] += penalty.reshape(-1)[:vocab_size]
    logits[vocab_size:] = -np.inf  # padding rows some GGUFs have beyond the tokenizer's vocabulary


class SyntaxConstraint:
    """Keeps the decoded tokens inside the grammar (implements decoding.TokenConstraint).

    `suffix_tokens` are the rest of the line after the cursor: the completion is
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
        self._pending = _MASK_WORKER.submit(llnumpy.fill_next_token_bitmask, self.matcher, self._bitmask, 0)

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


def first_line(error: str) -> str:
    """llguidance's errors go on with the parser state and the whole grammar."""
    return error.strip().splitlines()[0] if error.strip() else "unknown error"
