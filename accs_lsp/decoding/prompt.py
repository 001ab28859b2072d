"""Prompt layout: fill-in-the-middle when the vocabulary has FIM tokens, prefix only otherwise.

Two habits keep llama.cpp's KV cache useful from one keystroke to the next:
the stable part of the prompt comes first (in FIM, the suffix comes before the
prefix, since typing only grows the prefix), and when the prefix must be cut its
start moves by whole chunks of lines, so it stays put while the user types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from accs_lsp.models import LlamaModel


class ContextSnippet(Protocol):
    path: str
    text: str

PREFIX_CHUNK_LINES = 32
SUFFIX_SHARE = 0.25
# The share of the budget the project's other files may take (the contextual layer).
CONTEXT_SHARE = 0.25


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    format: str  # "fim" or "prefix"
    healed_text: str  # text removed from the prompt's end that generation must re-create
    prefix_lines_dropped: int
    context: tuple[str, ...] = ()  # the paths of the project's snippets put in the prefix


class PromptBuilder:
    def __init__(self, model: LlamaModel, budget_tokens: int) -> None:
        self.model = model
        self.budget_tokens = budget_tokens

    def build(self, prefix: str, suffix: str, snippets: Sequence[ContextSnippet] = (), snippets_at: int = 0) -> Prompt:
        """`snippets`: code from the project's other files, as many as fit CONTEXT_SHARE, put
        in the prefix as comments at `snippets_at` (as editor plugins give cross-file
        context). Put before the definition being written, rather than first, they leave the
        file's start, which the KV cache holds, as it was."""
        context, used = self._fit_context(snippets)
        if self.model.fim is not None:
            return self._fim(prefix, suffix, context, used, snippets_at)
        kept, dropped = self._fit_prefix(prefix, self.budget_tokens - len(self.model.tokenize(context)))
        text = _inserted(kept, context, snippets_at - (len(prefix) - len(kept)))
        tokens, healed = self._heal(self.model.begin_tokens() + self.model.tokenize(text))
        return Prompt(tokens or self.model.start_of_text(), "prefix", healed, dropped, used)

    def _fim(self, prefix: str, suffix: str, context: str, used: tuple[str, ...], snippets_at: int) -> Prompt:
        fim = self.model.fim
        assert fim is not None
        suffix_tokens = self.model.tokenize(self._fit_suffix(suffix))
        budget = self.budget_tokens - len(suffix_tokens) - len(self.model.tokenize(context)) - 3
        kept, dropped = self._fit_prefix(prefix, budget)
        text = _inserted(kept, context, snippets_at - (len(prefix) - len(kept)))
        prefix_tokens, healed = self._heal(self.model.tokenize(text))
        tokens = (
            self.model.begin_tokens()
            + [fim.suffix]
            + suffix_tokens
            + [fim.prefix]
            + prefix_tokens
            + [fim.middle]
        )
        return Prompt(tokens, "fim", healed, dropped, used)

    def _fit_context(self, snippets: Sequence[ContextSnippet]) -> tuple[str, tuple[str, ...]]:
        """The snippets that fit, best first, each as comment lines headed by its path."""
        budget = int(self.budget_tokens * CONTEXT_SHARE)
        parts: list[str] = []
        used: list[str] = []
        for snippet in snippets:
            lines = snippet.text.rstrip("\n").splitlines()
            part = f"# Compare this snippet from {snippet.path}:\n" + "".join(f"# {line}\n" for line in lines) + "\n"
            if len(self.model.tokenize("".join(parts) + part)) > budget:
                continue
            parts.append(part)
            used.append(snippet.path)
        return "".join(parts), tuple(used)

    def _fit_prefix(self, prefix: str, budget: int) -> tuple[str, int]:
        """Drop whole chunks of leading lines until the prefix fits the budget."""
        lines = prefix.splitlines(keepends=True)
        dropped = 0
        kept = prefix
        # A cheap bound first (a token is rarely shorter than 2 characters of code).
        while len(kept) > 8 * budget and dropped + PREFIX_CHUNK_LINES < len(lines):
            dropped += PREFIX_CHUNK_LINES
            kept = "".join(lines[dropped:])
        while len(self.model.tokenize(kept)) > budget and dropped < len(lines) - 1:
            dropped = min(dropped + PREFIX_CHUNK_LINES, len(lines) - 1)
            kept = "".join(lines[dropped:])
        if len(self.model.tokenize(kept)) > budget:
            kept = kept[-2 * budget :]
        return kept, dropped

    def _fit_suffix(self, suffix: str) -> str:
        budget = int(self.budget_tokens * SUFFIX_SHARE)
        lines = suffix.splitlines(keepends=True)
        while lines and len(self.model.tokenize("".join(lines))) > budget:
            lines = lines[: max(len(lines) // 2, len(lines) - PREFIX_CHUNK_LINES)]
        return "".join(lines)

    def _heal(self, tokens: list[int]) -> tuple[list[int], str]:
        """Remove the last token: the cursor may cut it short, so generation chooses it anew.

        `xs.ap|` is tokenized as [... ".", "ap"]; the model would never have chosen
        "ap" itself before "pend". Removing it and requiring the output to start
        with "ap" lets the model pick "append" in one token.
        """
        if len(tokens) < 2:
            return tokens, ""
        last = tokens[-1]
        piece = self.model.token_bytes(last)
        try:
            healed = piece.decode("utf-8")
        except UnicodeDecodeError:  # a token holding part of a character: leave it be
            return tokens, ""
        if not healed or self.model.is_end_of_generation(last):
            return tokens, ""
        return tokens[:-1], healed


def _inserted(kept: str, context: str, at: int) -> str:
    """`context` put into `kept` at `at` (at its start where `at` fell among the lines
    dropped, or where it would end the prompt: the last token is taken back for healing)."""
    if not context:
        return kept
    if not 0 < at < len(kept) or not kept[at:].strip():
        at = 0
    return kept[:at] + context + kept[at:]
