"""The constraint pipeline: layers from the level, soft layers in the decoding loop, the ladder."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from accs_lsp.completion import CompletionEngine, CompletionOptions
from accs_lsp.constraints.pipeline import (
    GRAMMAR,
    MEMBERS,
    NAMES,
    TYPED_EXPRESSION,
    ConstraintSet,
    LayerNotApplicable,
    LayerUnavailable,
    ladder_steps,
)
from accs_lsp.constraints.python_grammar import python_grammar
from accs_lsp.constraints.syntax import SyntaxConstraint
from accs_lsp.decoding import Generator, LineStop, PromptBuilder
from accs_lsp.documents import Document

SOURCE = "def area(width: float, height: float) -> float:\n    return "


class RefusesEverything:
    """A hard layer that allows no token at all (implements decoding.TokenConstraint)."""

    greedy_retries = 0

    def start_next_mask(self) -> None: ...

    def mask_logits(self, logits: np.ndarray) -> None:
        logits[:] = -np.inf

    def try_accept(self, token: int) -> bool:
        return False

    def rollback(self, count: int) -> None: ...

    def removed_mass(self, logits: np.ndarray) -> tuple[float, bool]:
        return 1.0, True

    def accept(self, tokens: Sequence[int]) -> None: ...

    def forced_tokens(self) -> list[int]:
        return []

    def is_finished(self) -> bool:
        return False

    def is_complete(self) -> bool:
        return False


class AvoidToken:
    """A soft layer: a large penalty on one token."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.calls = 0

    def apply(self, logits: np.ndarray, text: str) -> None:
        self.calls += 1
        logits[self.token] -= 1000.0


class EngineWith(CompletionEngine):
    """The real engine with one layer's factory replaced."""

    def __init__(self, model, name: str, factory) -> None:
        super().__init__(model)
        self.replaced = (name, factory)

    def _layer_factories(self, request, options):
        factories = super()._layer_factories(request, options)
        factories[self.replaced[0]] = self.replaced[1]
        return factories


def complete(engine: CompletionEngine, level: str, max_tokens: int = 12):
    document = Document("file:///area.py", SOURCE)
    return engine.complete(document.snapshot(), len(SOURCE), CompletionOptions(constraints=level, max_tokens=max_tokens, timeout_ms=None))


def test_each_level_maps_to_its_layers() -> None:
    built = {name: object() for name in (GRAMMAR, TYPED_EXPRESSION, MEMBERS, NAMES)}
    factories = {name: (lambda value=value: value) for name, value in built.items()}
    assert ConstraintSet.build("none", factories).layers == []
    assert [layer.name for layer in ConstraintSet.build("syntax", factories).layers] == [GRAMMAR]
    typed = ConstraintSet.build("types", factories)
    assert [layer.name for layer in typed.layers] == [GRAMMAR, TYPED_EXPRESSION, MEMBERS, NAMES]
    assert all(layer.applied and layer.kind == "hard" for layer in typed.layers)


def test_a_layer_that_cannot_be_built_says_why_and_the_others_stay() -> None:
    def broken():
        raise LayerUnavailable("type grammar not applied: does not compile")

    def nothing_to_do():
        raise LayerNotApplicable("no known expected type at the cursor")

    grammar = object()
    built = ConstraintSet.build("types", {GRAMMAR: lambda: grammar, TYPED_EXPRESSION: broken, MEMBERS: nothing_to_do, NAMES: nothing_to_do})
    assert built.hard is grammar
    assert built.failures() == ["type grammar not applied: does not compile"]  # not the layer with nothing to do
    without_grammar = ConstraintSet.build("types", {GRAMMAR: broken, TYPED_EXPRESSION: lambda: grammar})
    assert without_grammar.hard is None
    assert without_grammar.layers[1].skipped == "needs the grammar"


def test_the_ladder_drops_the_type_layers_then_the_grammar() -> None:
    factories = {name: (lambda: object()) for name in (GRAMMAR, TYPED_EXPRESSION, MEMBERS, NAMES)}
    steps = ladder_steps(ConstraintSet.build("types", factories))
    assert [name for name, _ in steps] == ["without types", "unconstrained with the parse check"]
    assert [layer.name for layer in steps[0][1].layers if layer.applied] == [GRAMMAR]
    assert steps[1][1].hard is None
    assert [name for name, _ in ladder_steps(ConstraintSet.build("syntax", factories))] == ["unconstrained with the parse check"]


def test_layers_that_allow_nothing_step_down_and_the_completion_is_returned(model) -> None:
    syntax_only = complete(CompletionEngine(model), "syntax")
    engine = EngineWith(model, TYPED_EXPRESSION, RefusesEverything)
    engine.warm_up("jedi")  # as the server does: nothing left unknown for want of a warm-up
    completion = complete(engine, "types")
    assert completion.relaxation_steps == ("the layers together allowed nothing: without types",)
    assert completion.text == syntax_only.text and completion.text.strip()
    assert completion.relaxed == "the layers together allowed nothing: without types"
    assert engine.relaxation_counts["without types"] == 1
    assert [layer["name"] for layer in completion.layers if layer["applied"]] == [GRAMMAR]


def test_a_grammar_that_allows_nothing_ends_unconstrained_with_the_parse_check(model) -> None:
    engine = EngineWith(model, GRAMMAR, RefusesEverything)
    completion = complete(engine, "syntax")
    assert completion.relaxation_steps == ("the layers together allowed nothing: unconstrained with the parse check",)
    assert completion.text.strip()
    compile(SOURCE + completion.text, "<completion>", "exec")


@pytest.mark.parametrize("constrained", [False, True])
def test_soft_layers_bias_every_choice_greedy_included(model, engine_grammars, constrained) -> None:
    prompt = PromptBuilder(model, 256).build(SOURCE, "")

    def constraint():
        if not constrained:
            return None
        matcher = engine_grammars.matcher(python_grammar(indent="    ", mode="line"))
        syntax = SyntaxConstraint(matcher, engine_grammars.tokenizer.vocab_size, (), overlap=False)
        syntax.consume_prefix(model.tokenize("return "))
        return syntax

    plain = Generator(model).run(prompt, max_tokens=4, stop_rule=LineStop(), constraint=constraint())
    model.prefill(prompt.tokens)
    favourite = int(np.argmax(model.logits()))  # the first token greedy decoding takes
    bias = AvoidToken(favourite)
    biased = Generator(model).run(prompt, max_tokens=4, stop_rule=LineStop(), constraint=constraint(), biases=[bias])
    assert bias.calls >= biased.tokens
    assert plain.text.strip() and biased.text.strip() and biased.text != plain.text


@pytest.fixture(scope="module")
def engine_grammars(model):
    return CompletionEngine(model).grammars


class AllowsThenRefuses(RefusesEverything):
    """A hard layer that allows any token for its first `allowed` tokens, then none."""

    def __init__(self, allowed: int = 3) -> None:
        self.allowed = allowed
        self.accepted = 0

    def mask_logits(self, logits: np.ndarray) -> None:
        if self.accepted >= self.allowed:
            logits[:] = -np.inf

    def try_accept(self, token: int) -> bool:
        if self.accepted >= self.allowed:
            return False
        self.accepted += 1
        return True

    def accept(self, tokens: Sequence[int]) -> None:
        self.accepted += len(tokens)

    def rollback(self, count: int) -> None:
        self.accepted -= count


def test_a_step_down_starts_its_layers_afresh(model) -> None:
    """The grammar kept by the step down was fed the tokens of the decoding that failed; the
    next decoding must start from the cursor again, as the syntax level alone does."""
    syntax_only = complete(CompletionEngine(model), "syntax")
    engine = EngineWith(model, TYPED_EXPRESSION, AllowsThenRefuses)
    completion = complete(engine, "types")
    assert completion.relaxation_steps == ("the layers together allowed nothing: without types",)
    assert completion.text == syntax_only.text and completion.text.strip()


def test_a_branch_replays_the_decoding_up_to_its_step_and_chooses_another_token(model, engine_grammars) -> None:
    from accs_lsp.completion.engine import least_certain_branches

    prompt = PromptBuilder(model, 256).build(SOURCE, "")

    def grammar():
        matcher = engine_grammars.matcher(python_grammar(indent="    ", mode="line"))
        syntax = SyntaxConstraint(matcher, engine_grammars.tokenizer.vocab_size, (), overlap=False)
        syntax.consume_prefix(model.tokenize("return "))
        return syntax

    greedy = Generator(model).run(prompt, max_tokens=8, stop_rule=LineStop(), constraint=grammar(), record_steps=True)
    assert len(greedy.steps) >= 2 and len(greedy.token_ids) == greedy.tokens
    (branch,) = least_certain_branches(greedy, 1)
    assert min(step.margin for step in greedy.steps) == next(s.margin for s in greedy.steps if s.token == branch.banned)
    other = Generator(model).run(prompt, max_tokens=8, stop_rule=LineStop(), constraint=grammar(), branch=branch)
    position = len(branch.tokens)
    assert other.token_ids[:position] == greedy.token_ids[:position]
    assert other.token_ids[position] != greedy.token_ids[position] == branch.banned
    assert other.text != greedy.text and other.log_likelihood < 0


def test_alternatives_are_decoded_and_the_greedy_candidate_still_wins_without_checks(model) -> None:
    engine = CompletionEngine(model)
    document = Document("file:///area.py", SOURCE)
    greedy = engine.complete(document.snapshot(), len(SOURCE), CompletionOptions(max_tokens=12, timeout_ms=None))
    widened = engine.complete(document.snapshot(), len(SOURCE), CompletionOptions(max_tokens=12, timeout_ms=None, alternatives=2))
    assert greedy.branches == 0 and widened.branches == 2
    assert widened.text == greedy.text


def test_at_the_end_of_a_whole_line_nothing_is_an_answer_without_stepping_down(model) -> None:
    """After a complete statement an empty completion is complete (the grammar saw a
    complete construct at length 0): no step down to unconstrained decoding, no branches."""
    source = "def area(width: float, height: float) -> float:\n    return width * height"
    document = Document("file:///area.py", source)
    completion = CompletionEngine(model).complete(
        document.snapshot(), len(source), CompletionOptions(max_tokens=12, timeout_ms=None, mode="line")
    )
    assert completion.text == "" and completion.stop_reason == "stop_rule"
    assert completion.relaxation_steps == () and completion.branches == 0, completion
