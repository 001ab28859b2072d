"""Settings from editors: every bad value is refused with a message naming it."""

from __future__ import annotations

import pytest

from accs_lsp.settings import Settings, SettingsError


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"maxTokens": float("inf")}, "maxTokens must be a finite number"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"maxTokens": 1.9}, "maxTokens must be a whole number"),
        ({"threads": -1}, "threads must be between 0 and 256"),
        ({"contextWindow": 16384}, "contextWindow must be between 256 and 8192"),
        ({"maxTokens": 0}, "maxTokens must be between 1 and 1024"),
        ({"timeoutMs": "fast"}, "timeoutMs must be an integer"),
        ({"enabled": 1}, "enabled must be true or false"),
        ({"constraints": "strict"}, "constraints must be one of"),
        ({"maxTokens": 2000, "contextWindow": 2048}, "maxTokens must be between 1 and 1024"),
        ({"maxTokens": 1000, "contextWindow": 1024}, "maxTokens must leave at least 64 tokens"),
    ],
)
def test_bad_values_are_refused_with_their_name(changes, message) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings().updated(changes)


def test_whole_floats_are_integers_and_unknown_keys_are_returned() -> None:
    settings, unknown = Settings().updated({"maxTokens": 32.0, "accs.future": True, "temperature": 0.5})
    assert settings.max_tokens == 32 and isinstance(settings.max_tokens, int)
    assert settings.temperature == 0.5
    assert unknown == ["accs.future"]
