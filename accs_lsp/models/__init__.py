"""Model adapters: load a GGUF model and run it token by token."""

from accs_lsp.models.default import DEFAULT_MODEL_NAME, default_model_path, resolve_model_path
from accs_lsp.models.llama import LlamaModel, ModelLoadError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "LlamaModel",
    "ModelLoadError",
    "default_model_path",
    "resolve_model_path",
]
