"""llama.cpp model adapter: loading, tokenizing, and a KV-cached forward pass.

The decoding loop drives the model one token at a time (masks, healing and
fast-forward live there), so this adapter exposes the primitive steps instead of
llama-cpp-python's `create_completion`. One instance must be used by one thread
at a time: llama.cpp contexts are not thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from accs_lsp.models.default import ModelLoadError, is_bundled_default
from accs_lsp.models.prepared import PREPARED_TYPE, as_shipped, discard, prepared_model

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int


@dataclass(frozen=True)
class PrefillStats:
    reused_tokens: int
    evaluated_tokens: int
    seconds: float


_PARAMS_LOCK = threading.Lock()


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU reports Intel AMX tiles (Sapphire Rapids and later)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as lines:
            return any(line.startswith("flags") and " amx_tile" in line for line in lines)
    except OSError:
        return False


@contextlib.contextmanager
def extra_buffer_types(enabled: bool):
    """Load with or without ggml's extra weight buffer types (repacked layouts, AMX).

    On CPUs that report AMX, llama.cpp 0.3.36 puts the weights in AMX buffers and its AMX
    matrix multiply crashes the process (SIGSEGV in ggml_backend_amx_mul_mat, seen on a
    Xeon with amx_tile at the first forward pass). llama-cpp-python does not expose
    `use_extra_bufts`, so its default model parameters are wrapped while one model loads
    (or, around a whole `llama_cpp.server` process, while it serves).
    """
    import llama_cpp.llama_cpp as bindings

    if enabled:
        yield
        return
    with _PARAMS_LOCK:
        default_params = bindings.llama_model_default_params

        def without_extra_buffers():
            params = default_params()
            params.use_extra_bufts = False
            return params

        bindings.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            bindings.llama_model_default_params = default_params


def check_model_file(path: Path) -> None:
    """Fail with one clear sentence before llama.cpp gets a chance to abort noisily."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelLoadError(f"cannot read model file {path}: {error.strerror}") from error
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF model file (bad header): {path}")


def default_thread_count() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class LlamaModel:
    """A loaded GGUF model with its vocabulary facts and a reusable KV cache."""

    def __init__(self, llm: "llama_cpp.Llama", path: Path, load_seconds: float, file: Path | None = None) -> None:  # noqa: F821
        import llama_cpp

        self._llm = llm
        self.path = path  # the model asked for
        self.file = file or path  # the file llama.cpp loaded: the bundled model's Q8_0 copy, or path
        self.load_seconds = load_seconds
        self.vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_ctx = int(llm.n_ctx())
        self.eog_tokens = frozenset(
            token for token in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, token)
        )
        self.fim = self._find_fim_tokens()
        self._token_bytes = lru_cache(maxsize=65536)(self._piece)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        vocab_only: bool = False,
        prepare: bool = True,
    ) -> "LlamaModel":
        """`path`: a GGUF; the bundled default is loaded from its Q8_0 copy (models/prepared.py)
        unless `prepare` is False or ACCS_MODEL_AS_SHIPPED is set."""
        model_path = Path(path)
        check_model_file(model_path)
        started = time.perf_counter()
        wants_copy = prepare and not vocab_only and not as_shipped() and is_bundled_default(model_path)
        runtime = prepared_model(model_path) if wants_copy else model_path
        try:
            llm = cls._load_llama(runtime, n_ctx, n_threads, vocab_only)
        except ModelLoadError as error:
            if runtime == model_path:
                raise
            log.warning("loading %s as shipped: its copy %s did not load (%s)", model_path.name, runtime, error)
            discard(runtime)
            runtime = model_path
            llm = cls._load_llama(runtime, n_ctx, n_threads, vocab_only)
        return cls(llm, model_path, time.perf_counter() - started, runtime)

    @staticmethod
    def _load_llama(path: Path, n_ctx: int, n_threads: int | None, vocab_only: bool) -> "llama_cpp.Llama":  # noqa: F821
        import llama_cpp

        try:
            with extra_buffer_types(not cpu_has_amx()):
                return llama_cpp.Llama(
                    str(path),
                    n_ctx=n_ctx,
                    n_batch=512,
                    n_threads=n_threads or default_thread_count(),
                    vocab_only=vocab_only,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as error:
            raise ModelLoadError(f"llama.cpp could not load model {path}: {error}") from error

    @property
    def name(self) -> str:
        return self.path.name + (f" (as {PREPARED_TYPE})" if self.file != self.path else "")

    @property
    def threads(self) -> int:
        """Threads llama.cpp uses for a forward pass."""
        return int(self._llm.n_threads)

    @property
    def llama(self) -> "llama_cpp.Llama":  # noqa: F821
        """The underlying llama-cpp-python object, for tokenizer bridges (llguidance)."""
        return self._llm

    def _find_fim_tokens(self) -> FimTokens | None:
        import llama_cpp

        ids = (
            llama_cpp.llama_vocab_fim_pre(self.vocab),
            llama_cpp.llama_vocab_fim_suf(self.vocab),
            llama_cpp.llama_vocab_fim_mid(self.vocab),
        )
        if any(token < 0 for token in ids):
            return None
        return FimTokens(*ids)

    def tokenize(self, text: str) -> list[int]:
        """Tokens of plain text: no BOS, and special-token names in user code stay text."""
        if not text:
            return []
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def begin_tokens(self) -> list[int]:
        """What a prompt starts with (BOS where the model's vocabulary asks for it)."""
        import llama_cpp

        if llama_cpp.llama_vocab_get_add_bos(self.vocab):
            return [int(llama_cpp.llama_vocab_bos(self.vocab))]
        return []

    def start_of_text(self) -> list[int]:
        """Something to condition on when there is no text at all (cursor at the top of an empty file)."""
        import llama_cpp

        bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        if bos >= 0:
            return [bos]
        return self.tokenize("\n")

    def _piece(self, token: int) -> bytes:
        return self._llm.detokenize([token], special=False)

    def token_bytes(self, token: int) -> bytes:
        return self._token_bytes(token)

    def token_text(self, token: int) -> str:
        """The token's text; bytes of a character cut across tokens are dropped."""
        return self._token_bytes(token).decode("utf-8", errors="ignore")

    def is_end_of_generation(self, token: int) -> bool:
        return token in self.eog_tokens

    @property
    def evaluated_tokens(self) -> list[int]:
        return self._llm.input_ids[: self._llm.n_tokens].tolist()

    def prefill(self, tokens: Sequence[int]) -> PrefillStats:
        """Evaluate a prompt, reusing the KV cache for its longest common prefix with the last one."""
        if not tokens:
            raise ValueError("cannot evaluate an empty prompt")
        if len(tokens) >= self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        started = time.perf_counter()
        cached = self._llm.input_ids[: self._llm.n_tokens]
        reuse = common_prefix_length(cached, tokens)
        # The last prompt token is always evaluated again: its logits are what we sample from.
        reuse = min(reuse, len(tokens) - 1)
        self._llm.n_tokens = reuse
        self._llm.eval(list(tokens[reuse:]))
        return PrefillStats(reuse, len(tokens) - reuse, time.perf_counter() - started)

    def forget(self) -> None:
        """Drop the KV cache: the next prompt is evaluated whole (no reuse, same batches every time)."""
        self._llm.reset()

    def advance(self, tokens: Sequence[int]) -> None:
        """Append tokens to the sequence (one forward pass for all of them)."""
        if self._llm.n_tokens + len(tokens) >= self.n_ctx:
            raise ValueError("context window is full")
        self._llm.eval(list(tokens))

    def advance_scored(self, tokens: Sequence[int], rows: Sequence[int]) -> list[np.ndarray]:
        """Append tokens in one forward pass and return copies of the next-token logits after
        each of the positions `rows` (indexes into `tokens`): what verifying a draft needs."""
        llm = self._llm
        count = len(tokens)
        if not 0 < count <= llm.n_batch or llm.n_tokens + count >= self.n_ctx:
            raise ValueError("draft does not fit the batch or the context window")
        import llama_cpp

        llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        start = llm.n_tokens
        llm._batch.set_batch(batch=list(tokens), n_past=start, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[start : start + count] = tokens
        llm.n_tokens += count
        return [
            np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, row), shape=(self.n_vocab,)).copy()
            for row in rows
        ]

    @property
    def position(self) -> int:
        """How many tokens the KV cache holds."""
        return int(self._llm.n_tokens)

    def truncate(self, length: int) -> None:
        """Forget the tokens after the first `length` (a draft that was not verified); the next
        forward pass overwrites their KV entries."""
        if not 0 < length <= self._llm.n_tokens:
            raise ValueError(f"cannot truncate {self._llm.n_tokens} tokens to {length}")
        self._llm.n_tokens = length

    def logits(self) -> np.ndarray:
        """The next-token logits as a writable view into llama.cpp's buffer (no copy)."""
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

    def close(self) -> None:
        self._llm.close()


def common_prefix_length(cached: np.ndarray, tokens: Sequence[int]) -> int:
    limit = min(len(cached), len(tokens))
    if limit == 0:
        return 0
    mismatch = np.flatnonzero(cached[:limit] != np.asarray(tokens[:limit], dtype=cached.dtype))
    return int(mismatch[0]) if mismatch.size else limit
