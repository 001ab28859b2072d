"""Model adapters: load a GGUF model and run it token by token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from accs_lsp.models.default import DEFAULT_MODEL_NAME, ModelLoadError, default_model_path, resolve_model_path

if TYPE_CHECKING:
    from accs_lsp.models.llama import LlamaModel

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LlamaModel",
    "ModelLoadError",
    "default_model_path",
    "resolve_model_path",
]


def __getattr__(name: str) -> Any:
    # llama.cpp and numpy load with the first model, not with the package.
    if name == "LlamaModel":
        from accs_lsp.models.llama import LlamaModel

        return LlamaModel
    raise AttributeError(name)
