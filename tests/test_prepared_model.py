"""The bundled model runs from its Q8_0 copy in the user's cache (models/prepared.py), with
real llama.cpp: made once, reused, remade when broken, skipped on request or when it cannot
be made, and never applied to a model the user names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from accs_lsp.models import LlamaModel, default_model_path
from accs_lsp.models.prepared import AS_SHIPPED_ENV_VAR, prepared_path

BUNDLED = default_model_path()
PROMPT = "def add(a: int, b: int) -> int:\n    return a +"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(AS_SHIPPED_ENV_VAR, raising=False)
    return tmp_path / "accs-lsp" / "models"


def next_logits(model: LlamaModel) -> np.ndarray:
    model.prefill(model.begin_tokens() + model.tokenize(PROMPT))
    return np.array(model.logits(), dtype=np.float32)


def test_the_bundled_model_loads_from_a_q8_0_copy_made_once(cache: Path) -> None:
    assert BUNDLED is not None
    model = LlamaModel.load(BUNDLED)
    copy = prepared_path(BUNDLED, cache)
    assert model.path == BUNDLED and model.file == copy and copy.is_file()
    assert copy.read_bytes()[:4] == b"GGUF" and model.name.endswith("(as Q8_0)")
    made = copy.stat().st_mtime_ns
    assert LlamaModel.load(BUNDLED).file == copy and copy.stat().st_mtime_ns == made  # reused, not remade


def test_the_copy_predicts_as_the_shipped_model_does(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BUNDLED is not None
    prepared = next_logits(LlamaModel.load(BUNDLED))
    monkeypatch.setenv(AS_SHIPPED_ENV_VAR, "1")
    shipped_model = LlamaModel.load(BUNDLED)
    assert shipped_model.file == BUNDLED
    shipped = next_logits(shipped_model)
    assert int(prepared.argmax()) == int(shipped.argmax())
    top = set(np.argsort(shipped)[-10:])
    assert len(top & set(np.argsort(prepared)[-10:])) >= 8


def test_a_broken_copy_is_discarded_and_made_again(cache: Path) -> None:
    assert BUNDLED is not None
    copy = prepared_path(BUNDLED, cache)
    cache.mkdir(parents=True)
    copy.write_bytes(BUNDLED.read_bytes()[:4096])  # a GGUF header, then nothing: llama.cpp refuses it
    model = LlamaModel.load(BUNDLED)
    assert model.file == BUNDLED and not copy.exists()
    assert LlamaModel.load(BUNDLED).file == copy and copy.stat().st_size > 100_000_000


def test_an_unwritable_cache_loads_the_model_as_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert BUNDLED is not None
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ACCS_CACHE_DIR", str(blocker))
    assert LlamaModel.load(BUNDLED).file == BUNDLED


def test_a_model_the_user_names_is_loaded_as_it_is(cache: Path, tmp_path: Path) -> None:
    assert BUNDLED is not None
    own = tmp_path / "mine.gguf"
    try:
        os.link(BUNDLED, own)
    except OSError:
        shutil.copyfile(BUNDLED, own)
    model = LlamaModel.load(own)
    assert model.file == own and model.name == "mine.gguf" and not cache.exists()
