"""The completion pipeline: context → prompt → constrained decoding → post-processing."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from accs_lsp.analysis import CursorContext, cursor_context
from accs_lsp.decoding import Generator, PromptBuilder, stop_rule_for
from accs_lsp.decoding.generator import Sampler
from accs_lsp.documents import Snapshot
from accs_lsp.models import LlamaModel
from accs_lsp.completion.options import Completion, CompletionOptions, InvalidRequest
from accs_lsp.completion.validation import first_parsing
from accs_lsp.constraints.python_grammar import GrammarFilesMissing, infer_indent_unit, python_grammar
from accs_lsp.constraints.syntax import (
    GrammarCache,
    GrammarError,
    SyntaxConstraint,
    brackets_may_span_lines,
    spare_core_for_masks,
    syntax_constraint,
    tokenizer_for,
)
from accs_lsp.constraints.members import in_code
from accs_lsp.constraints.types import AllOf, TypeLayerPlan, member_constraint, plan_type_layer, typed_constraint
from accs_lsp.decoding.generator import TokenConstraint
from accs_lsp.settings import MIN_PROMPT_TOKENS
from accs_lsp.types.provider import TypeProvider

log = logging.getLogger(__name__)

# A hole whose inhabitation search visits the commonest builtin types (their member tables
# are cached for the session).
WARM_UP_SOURCE = (
    "def warm_up(words: list[str], numbers: list[int], count: int, ratio: float, table: dict[str, int]) -> str:\n"
    "    return "
)


class CompletionEngine:
    """Turns (document, cursor) into a completion. Not thread-safe: call from one thread."""

    def __init__(
        self,
        model: LlamaModel,
        context_tokens: int = 1024,
        overlap_masks: bool | None = None,
        measure_invasiveness: bool = False,
    ) -> None:
        """`overlap_masks`: compute masks during the forward pass (None: when a core is spare for it).
        `measure_invasiveness`: record what the masks remove from the model's choices (evaluation)."""
        self.model = model
        self.measure_invasiveness = measure_invasiveness
        self.context_tokens = context_tokens
        self.overlap_masks = spare_core_for_masks(model.threads) if overlap_masks is None else overlap_masks
        self._grammars: GrammarCache | None = None
        self._type_grammars: GrammarCache | None = None
        self._type_providers: dict[str, "TypeProvider"] = {}
        # Why the configured type provider was replaced by Jedi (basedpyright not installed).
        self.type_provider_fallback: str | None = None
        # Wraps each type-layer constraint of a request (`accs-lsp bench types` times them).
        self.type_layer_probe: Callable[[TokenConstraint], TokenConstraint] | None = None

    @property
    def grammars(self) -> GrammarCache:
        """Built on first use: the llguidance tokenizer takes 0.4 s (49k tokens) to 2 s (262k)."""
        if self._grammars is None:
            self._grammars = GrammarCache(tokenizer_for(self.model))
        return self._grammars

    @property
    def type_grammars(self) -> GrammarCache:
        """The type layer's grammars (one per hole and scope, member sets) are kept apart, so
        that they never push the syntax grammars out of their cache."""
        if self._type_grammars is None:
            self._type_grammars = GrammarCache(self.grammars.tokenizer, kept=64)
        return self._type_grammars

    def type_provider(self, name: str) -> "TypeProvider":
        """Started on first use and kept: Jedi's caches and basedpyright's process stay warm.
        Where basedpyright is asked for and missing, Jedi answers, after one warning."""
        if name not in self._type_providers:
            if name == "pyright":
                self._type_providers[name] = self._pyright_or_jedi()
            else:
                from accs_lsp.types.jedi_provider import JediProvider

                self._type_providers[name] = JediProvider()
        return self._type_providers[name]

    def _pyright_or_jedi(self) -> "TypeProvider":
        from accs_lsp.types.pyright_provider import PyrightProvider, PyrightUnavailable

        try:
            return PyrightProvider()
        except PyrightUnavailable as error:
            self.type_provider_fallback = f"{error}; Jedi answers instead"
            log.warning("typeProvider pyright: %s", self.type_provider_fallback)
            return self.type_provider("jedi")

    def close(self) -> None:
        for provider in self._type_providers.values():
            provider.close()
        self._type_providers.clear()

    def warm_up(self, type_provider: str | None = None) -> None:
        """Build the grammar tokenizer and compile the grammars of the commonest cursors now,
        so that the first constrained completion does not pay for them; with a type provider,
        load its stubs and the member tables of the commonest builtin types too."""
        for indent in ("", "    ", "        "):
            self.grammars.matcher(python_grammar(indent=indent, mode="block"))
            self.grammars.matcher(python_grammar(indent=indent, mode="line", bracket_newlines=False))
        if type_provider is not None:
            plan_type_layer(self.type_provider(type_provider), WARM_UP_SOURCE, WARM_UP_SOURCE.rindex("return"), len(WARM_UP_SOURCE), False)

    def complete(
        self,
        document: Snapshot,
        offset: int,
        options: CompletionOptions,
        stop_event: threading.Event | None = None,
    ) -> Completion:
        options.check()
        started = time.perf_counter()
        context = cursor_context(document, offset)
        mode = context.suggested_mode if options.mode == "auto" else options.mode
        # The prompt gets what the context window leaves after the tokens to generate.
        budget = min(self.context_tokens, self.model.n_ctx - options.max_tokens - 8)
        if budget < MIN_PROMPT_TOKENS:
            raise InvalidRequest(f"max_tokens={options.max_tokens} leaves no room for a prompt in {self.model.n_ctx} tokens")
        statement_prefix = document.text[context.statement_start : offset]
        constrained = options.constraints != "none"
        prompt = PromptBuilder(self.model, budget).build(document.text[:offset], document.text[offset:])
        constraint, relaxed, plan = None, None, None
        if constrained:
            constraint, relaxed = self._syntax_constraint(document, context, mode, statement_prefix, prompt.healed_text)
        if options.constraints == "types" and constraint is not None:
            plan = plan_type_layer(
                self.type_provider(options.type_provider), document.text, context.statement_start, offset, context.after_dot
            )
            bracket_newlines = brackets_may_span_lines(mode, statement_prefix, context.statement_rest)
            constraint, relaxed = self._with_type_layer(
                plan, constraint, document.text, context, offset - len(prompt.healed_text), bracket_newlines
            )
        deadline = time.monotonic() + options.timeout_ms / 1000 if options.timeout_ms else None
        result = Generator(self.model, Sampler(options.temperature), self.measure_invasiveness).run(
            prompt,
            max_tokens=options.max_tokens,
            stop_rule=stop_rule_for(mode, context.indentation),
            stop_event=stop_event,
            deadline=deadline,
            constraint=constraint,
        )
        suffix = document.text[offset:]
        if not constrained:
            text, rejections = tidy(result.text, context, mode, suffix), 0
        else:
            # Where the grammar could not be applied, whole lines are the cut points to try.
            lengths = result.complete_lengths if constraint is not None else line_ends(result.text)
            ordered = sorted(set(lengths), reverse=True)
            joined = suffix_join(ordered, result.text, context.line_suffix)
            if joined is not None:  # the model went on to write the rest of the line itself: end there
                ordered.remove(joined)
                ordered.insert(0, joined)
            candidates = [result.text[:length] for length in ordered]
            if context.line_suffix.strip():  # a comment would swallow the code after the cursor
                candidates = [candidate for candidate in candidates if in_code(candidate)]
            tidied = [tidy(candidate, context, mode, suffix) for candidate in candidates] + [""]
            text, rejections = first_parsing(document.text, offset, tidied)
        return Completion(
            text=text,
            mode=mode,
            constraints=options.constraints,
            model=self.model.name,
            tokens=result.tokens,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            stop_reason=result.stop_reason.value,
            prompt_tokens=result.prompt_tokens,
            reused_prompt_tokens=result.reused_tokens,
            tokens_per_second=round(result.tokens_per_second, 1),
            relaxed=relaxed,
            parser_rejections=rejections,
            constraint_ms=round(result.constraint_seconds * 1000, 2),
            decode_ms=round(result.decode_seconds * 1000, 2),
            constrained_steps=result.constrained_steps,
            top_token_removed=result.top_token_removed,
            removed_mass=round(result.removed_mass, 6),
            expected_type=str(plan.expected) if plan is not None and plan.expected is not None else None,
            type_ms=round(plan.seconds * 1000, 2) if plan is not None else 0.0,
            typed_alternatives=typed_alternatives(plan, offset),
        )

    def _syntax_constraint(
        self, document: Snapshot, context: CursorContext, mode: str, statement_prefix: str, healed_text: str
    ) -> tuple[SyntaxConstraint | None, str | None]:
        """The grammar constraint, or None and the reason it cannot apply here."""
        try:
            return (
                syntax_constraint(
                    self.grammars,
                    self.model.tokenize,
                    mode=mode,
                    indent=context.indentation,
                    indent_unit=infer_indent_unit(document.text),
                    statement_prefix=statement_prefix,
                    statement_rest=context.statement_rest,
                    healed_text=healed_text,
                    overlap=self.overlap_masks,
                    line_shape="header" if context.body_follows else "statement",
                ),
                None,
            )
        except (GrammarError, GrammarFilesMissing) as error:
            return None, f"syntax constraint not applied: {error}"


    def _with_type_layer(
        self,
        plan: "TypeLayerPlan",
        syntax: SyntaxConstraint,
        text: str,
        context: CursorContext,
        decode_start: int,
        bracket_newlines: bool,
    ) -> tuple[TokenConstraint, str | None]:
        """The syntactic layer AND the typed-expression grammar (where a type is expected) AND the
        member constraint; the typed grammar is left out, with the reason, where it cannot apply."""
        layers: list[TokenConstraint] = [syntax]
        relaxed = None
        if plan.top_rule is not None:
            started = time.perf_counter()
            try:
                layers.append(typed_constraint(
                    plan, self.type_grammars, self.model.tokenize, text, decode_start, self.overlap_masks, bracket_newlines
                ))
            except GrammarError as error:
                relaxed = f"type grammar not applied: {error}"
                plan.top_rule = None
            plan.seconds += time.perf_counter() - started  # compiling the typed grammar
        statement_text = text[context.statement_start : decode_start] if decode_start > context.statement_start else ""
        layers.append(member_constraint(plan, self.type_grammars, self.model.token_text, statement_text))
        if self.type_layer_probe is not None:
            layers = layers[:1] + [self.type_layer_probe(layer) for layer in layers[1:]]
        return AllOf(layers), relaxed


def typed_alternatives(plan: "TypeLayerPlan | None", offset: int, limit: int = 5) -> tuple[str, ...]:
    """The cheapest inhabitants of the expected type, where the hole is still empty."""
    if plan is None or plan.grammar is None or plan.expected is None or plan.slot is None or plan.slot.start != offset:
        return ()
    return tuple(text for text, _ in plan.grammar.inhabitants(plan.expected, limit))


def suffix_join(lengths: list[int], text: str, line_suffix: str, sample: int = 4) -> int | None:
    """The shortest complete length after which the generated text goes on with the rest of the
    line (its first `sample` characters): where the completion meets the code after the cursor."""
    rest = line_suffix.strip()[:sample]
    if not rest:
        return None
    for length in sorted(lengths):
        if length and text[length:].lstrip(" \t").startswith(rest):
            return length
    return None


def line_ends(text: str) -> list[int]:
    return [index for index, character in enumerate(text) if character == "\n"] + [len(text)]


def tidy(text: str, context: CursorContext, mode: str, suffix: str) -> str:
    """Trim what editors would show wrong: trailing blanks, a repeated rest of line, a copy of the next lines."""
    text = text.rstrip()
    rest_of_line = context.line_suffix.strip()
    if mode == "line" and rest_of_line and text.endswith(rest_of_line):
        text = text[: -len(rest_of_line)].rstrip()
    following = suffix.lstrip()
    if mode == "block" and text.strip() and following.startswith(text.strip()):
        return ""
    return text
