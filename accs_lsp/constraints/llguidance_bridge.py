"""llguidance plumbing, shared by every layer that masks tokens: the model's vocabulary as an
llguidance tokenizer, compiled grammars (compiled once, copied per request), the mask
worker thread and the fast application of a bitmask to the logits."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import warnings
from collections import OrderedDict
from typing import TYPE_CHECKING

import llguidance
import llguidance.llamacpp
import numpy as np
from llguidance import LLMatcher

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
MASK_WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="accs-mask")


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
        # A grammar that does not compile gives a matcher in its error state, with the reason:
        # one pass, where validate_grammar first would compile it twice.
        matcher = LLMatcher(self.tokenizer, LLMatcher.grammar_from_lark(grammar), log_level=0)
        if matcher.is_error():
            raise GrammarError(f"grammar does not compile: {first_line(matcher.get_error())}")
        return matcher


def penalty_buffer(bitmask: np.ndarray) -> np.ndarray:
    return np.empty((bitmask.shape[1] * 4, 8), dtype=np.float32)


def apply_mask(logits: np.ndarray, bitmask: np.ndarray, penalty: np.ndarray, vocab_size: int) -> None:
    """Set the logits of the tokens `bitmask` forbids to -inf, in place (`penalty` is scratch space)."""
    np.take(_PENALTY_ROWS, bitmask[0].view(np.uint8), axis=0, out=penalty)
    logits[:vocab_size] += penalty.reshape(-1)[:vocab_size]
    logits[vocab_size:] = -np.inf  # padding rows some GGUFs have beyond the tokenizer's vocabulary


def first_line(error: str) -> str:
    """llguidance's errors go on with the parser state and the whole grammar."""
    return error.strip().splitlines()[0] if error.strip() else "unknown error"
