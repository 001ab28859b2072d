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
    context: tuple[str, ...] = ()  # the paths of the project's snippets put before the prefix


class PromptBuilder:
    def __init__(self, model: LlamaModel, budget_tokens: int) -> None:
        self.model = model
        self.budget_tokens = budget_tokens

    def build(self, prefix: str, suffix: str, snippets: Sequence[ContextSnippet] = ()) -> Prompt:
        """`snippets`: code from the project's other files, as many as fit CONTEXT_SHARE, put
        before the prefix as comments (as editor plugins give cross-file context). Chosen
        once per document, they stay put while the user types, and so does the KV cache."""
        context, used = self.context_text(snippets)
        if self.model.fim is not None:
            return self._fim(prefix, suffix, context, used)
        kept, dropped = self._fit_prefix(prefix, self.budget_tokens - len(self.model.tokenize(context)))
        tokens, healed = self._heal(self.model.begin_tokens() + self.model.tokenize(context + kept))
        return Prompt(tokens or self.model.start_of_text(), "prefix", healed, dropped, used)

    def _fim(self, prefix: str, suffix: str, context: str, used: tuple[str, ...]) -> Prompt:
        fim = self.model.fim
        assert fim is not None
        suffix_tokens = self.model.tokenize(self._fit_suffix(suffix))
        budget = self.budget_tokens - len(suffix_tokens) - len(self.model.tokenize(context)) - 3
        kept, dropped = self._fit_prefix(prefix, budget)
        prefix_tokens, healed = self._heal(self.model.tokenize(context + kept))
        tokens = (
            self.model.begin_tokens()
            + [fim.suffix]
            + suffix_tokens
            + [fim.prefix]
            + prefix_tokens
            + [fim.middle]
        )
        return Prompt(tokens, "fim", healed, dropped, used)

    def context_text(self, snippets: Sequence[ContextSnippet]) -> tuple[str, tuple[str, ...]]:
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

