"""Remote inference engines behind an OpenAI-compatible API (vLLM, SGLang, llama-server).

Standard library only: the server imports this before numpy and llama.cpp load.
"""

from accs_lsp.models.remote.client import (
    API_KEY_ENV_VAR,
    ENGINE_ENV_VAR,
    EngineAnswerError,
    EngineCancelled,
    EngineClient,
    EngineError,
    EngineTimeout,
    EngineUnreachable,
    EngineURL,
    parse_engine_url,
)
from accs_lsp.models.remote.dialects import GRAMMAR_DIALECTS, completion_body, grammar_fields, infill_body
from accs_lsp.models.remote.engine import (
    ENGINE_KINDS,
    ENGINE_MODES,
    EngineInfo,
    EngineReply,
    EngineText,
    PromptParts,
    RemoteEngine,
)

__all__ = [
    "API_KEY_ENV_VAR",
    "ENGINE_ENV_VAR",
    "ENGINE_KINDS",
    "ENGINE_MODES",
    "GRAMMAR_DIALECTS",
    "EngineAnswerError",
    "EngineCancelled",
    "EngineClient",
    "EngineError",
    "EngineInfo",
    "EngineReply",
    "EngineText",
    "EngineTimeout",
    "EngineURL",
    "EngineUnreachable",
    "PromptParts",
    "RemoteEngine",
    "completion_body",
    "grammar_fields",
    "infill_body",
    "parse_engine_url",
]
