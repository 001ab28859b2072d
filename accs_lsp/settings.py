"""User settings, shared by the CLI and the server (camelCase on the wire, as editors send them)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from accs_lsp.models.remote import ENGINE_KINDS, ENGINE_MODES, parse_engine_url

CONSTRAINT_LEVELS = ("none", "syntax", "types", "full")
MODES = ("auto", "line", "block")
TYPE_PROVIDERS = ("jedi", "pyright")
MIN_PROMPT_TOKENS = 64
# The numbers a setting may take, both ends included. Beyond them a value is refused with a
# message, not clamped: a context window of 16,384 doubles the server's memory, and NaN or
# infinity cannot mean anything.
RANGES: dict[str, tuple[float, float]] = {
    "max_tokens": (1, 1024),
    "timeout_ms": (1, 600_000),
    "context_tokens": (MIN_PROMPT_TOKENS, 8192),
    "context_window": (256, 8192),
    "threads": (0, 256),
    "temperature": (0.0, 2.0),
    "model_load_timeout_ms": (1, 600_000),
    "memory_limit_mb": (64, 65536),
    "engine_candidates": (1, 8),
}


class SettingsError(ValueError):
    """A setting with a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    model_path: str = ""
    constraints: str = "syntax"
    max_tokens: int = 64
    mode: str = "auto"
    type_provider: str = "jedi"
    timeout_ms: int = 3000
    enabled: bool = True
    context_tokens: int = 1024
    context_window: int = 2048
    threads: int = 0
    temperature: float = 0.0
    model_load_timeout_ms: int = 60000
    # The bytes the server's own caches (the suggestion cache) may hold, in MiB.
    memory_limit_mb: int = 1024
    # Compute the next suggestion in the background as if the one shown were accepted, and
    # warm llama.cpp's KV cache with the prompt of a newly opened document.
    prefetch: bool = True
    # At constraints "full": run the candidates against the function's examples in a sandbox.
    run_examples: bool = True
    # Learn the workspace folders in the background after initialize, and a file when it is
    # saved (the contextual layer of constraints "full" reads what was learned).
    learn_workspace: bool = True
    # A shared inference engine to decode on instead of the local model ("" for none): an
    # OpenAI-compatible base URL, how to use it, its kind, the model name to send, and how
    # many candidates to ask for in validation mode. The API key: $ACCS_ENGINE_API_KEY.
    engine: str = ""
    engine_mode: str = "auto"
    engine_kind: str = "auto"
    engine_model: str = ""
    engine_candidates: int = 4

    def updated(self, changes: Mapping[str, Any]) -> tuple["Settings", list[str]]:
        """A copy with the given camelCase (or snake_case) keys changed, and the unknown keys.

        Unknown keys are returned rather than refused, so a client from a newer
        version still gets its known settings applied; a bad value is an error.
        """
        by_wire_name = {camel_case(field.name): field for field in fields(self)}
        by_wire_name.update({field.name: field for field in fields(self)})
        values: dict[str, Any] = {}
        unknown = []
        for key, value in changes.items():
            field = by_wire_name.get(key)
            if field is None:
                unknown.append(key)
                continue
            values[field.name] = coerce(field.name, field.type, value)
        result = replace(self, **values)
        result.validate()
        return result, unknown

    def validate(self) -> None:
        choices = {"constraints": CONSTRAINT_LEVELS, "mode": MODES, "type_provider": TYPE_PROVIDERS,
                   "engine_mode": ENGINE_MODES, "engine_kind": ENGINE_KINDS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(f"{camel_case(name)} must be one of {', '.join(allowed)}")
        for name, (low, high) in RANGES.items():
            if not low <= getattr(self, name) <= high:
                raise SettingsError(f"{camel_case(name)} must be between {low:g} and {high:g}, got {getattr(self, name)!r}")
        if self.max_tokens > self.context_window - MIN_PROMPT_TOKENS:
            raise SettingsError(f"maxTokens must leave at least {MIN_PROMPT_TOKENS} tokens of contextWindow for the prompt")
        if self.engine:
            try:
                parse_engine_url(self.engine)
            except ValueError as error:
                raise SettingsError(f"engine: {error}") from None
        if self.engine_mode == "grammar" and self.engine_kind == "openai":
            raise SettingsError("engineMode grammar needs engineKind auto, vllm, vllm-guided, sglang or llama-server")


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def coerce(name: str, type_name: Any, value: Any) -> Any:
    """The value as the field's type; JSON numbers must be finite, and whole for an int."""
    kind = {"str": str, "int": int, "bool": bool, "float": float}[str(type_name)]
    if kind is bool and isinstance(value, bool):
        return value
    if kind in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise SettingsError(f"{camel_case(name)} must be a finite number, got {value!r}")
        if kind is int and value != int(value):
            raise SettingsError(f"{camel_case(name)} must be a whole number, got {value!r}")
        return kind(value)
    if kind is str and isinstance(value, str):
        return value
    described = {str: "a string", int: "an integer", bool: "true or false", float: "a number"}[kind]
    raise SettingsError(f"{camel_case(name)} must be {described}, got {value!r}")
