"""The local vocabulary for a remote engine: the layers tokenize the engine's text with it."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from accs_lsp.models.llama import FimTokens, LlamaModel


class Vocabulary:
    """A GGUF's vocabulary without its weights (a fraction of a second, a few MB): what the
    layers need to feed an engine's text to their matchers, and nothing that runs a model
    (a vocab-only llama.cpp context cannot evaluate, so there is no `prefill` here)."""

    threads = 1  # no forward pass to leave cores for

    def __init__(self, model: "LlamaModel") -> None:
        self._model = model

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def path(self) -> Path:
        return self._model.path

    @property
    def load_seconds(self) -> float:
        return self._model.load_seconds

    @property
    def vocab(self):  # llama.cpp's vocabulary handle, for llguidance's tokenizer
        return self._model.vocab

    @property
    def n_vocab(self) -> int:
        return self._model.n_vocab

    @property
    def eog_tokens(self) -> frozenset[int]:
        return self._model.eog_tokens

    @property
    def fim(self) -> "FimTokens | None":
        return self._model.fim

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text)

    def token_bytes(self, token: int) -> bytes:
        return self._model.token_bytes(token)

    def token_text(self, token: int) -> str:
        return self._model.token_text(token)

    def is_end_of_generation(self, token: int) -> bool:
        return self._model.is_end_of_generation(token)

    def begin_tokens(self) -> list[int]:
        return self._model.begin_tokens()

    def start_of_text(self) -> list[int]:
        return self._model.start_of_text()

    def fim_texts(self) -> tuple[str, str, str] | None:
        """The text of the model's FIM tokens (prefix, suffix, middle), for a prompt an engine
        tokenizes itself; None without them."""
        fim = self._model.fim
        if fim is None:
            return None
        detokenize = self._model.llama.detokenize
        texts = tuple(detokenize([token], special=True).decode("utf-8", errors="ignore") for token in (fim.prefix, fim.suffix, fim.middle))
        return texts if all(texts) else None  # type: ignore[return-value]

    def close(self) -> None:
        self._model.close()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment (llama.cpp writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_vocabulary(path: str | os.PathLike[str], quiet: bool = False) -> Vocabulary:
    """The GGUF's vocabulary (raises ModelLoadError as a model load does). `quiet`: keep
    llama.cpp's warning that such a context has no training length off the terminal (a
    one-shot command; the server leaves its stderr alone: it is its log)."""
    from accs_lsp.models.llama import LlamaModel

    if not quiet:
        return Vocabulary(LlamaModel.load(path, vocab_only=True))
    with quiet_stderr():
        return Vocabulary(LlamaModel.load(path, vocab_only=True))
