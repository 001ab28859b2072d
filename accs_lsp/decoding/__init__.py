"""From a prompt to text: prompt layout, the token loop, and when to stop."""

from accs_lsp.decoding.generator import GenerationResult, Generator, StopReason
from accs_lsp.decoding.prompt import Prompt, PromptBuilder
from accs_lsp.decoding.stopping import BlockStop, LineStop, StopRule, stop_rule_for

__all__ = [
    "BlockStop",
    "GenerationResult",
    "Generator",
    "LineStop",
    "Prompt",
    "PromptBuilder",
    "StopReason",
    "StopRule",
    "stop_rule_for",
]
