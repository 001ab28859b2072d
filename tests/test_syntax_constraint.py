"""The syntactic layer end to end: real model, real llguidance, real grammar."""

from __future__ import annotations

import pytest

from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.completion.validation import parses
from accs_lsp.constraints.llguidance_bridge import GrammarCache, GrammarError, tokenizer_for
from accs_lsp.documents import Document
from accs_lsp.eval.holes import HOLE_KINDS, holes_in
from accs_lsp.eval.parse_rate import complete_holes, fixture_holes

from conftest import FIXTURES


@pytest.fixture(scope="module")
def engine(model) -> CompletionEngine:
    return CompletionEngine(model)


def complete(engine: CompletionEngine, text: str, constraints: str = "syntax", max_tokens: int = 24, mode: str = "auto"):
    snapshot = Document("file:///t.py", text).snapshot()
    options = CompletionOptions(constraints=constraints, max_tokens=max_tokens, mode=mode, timeout_ms=None)
    return engine.complete(snapshot, len(text), options)


def test_fixture_holes_stay_parseable_with_syntax_constraints(engine: CompletionEngine) -> None:
    holes = fixture_holes(FIXTURES, per_kind=2)
    assert {hole.kind for hole in holes} == set(HOLE_KINDS)
    outcomes = complete_holes(engine, holes, ("none", "syntax"), max_tokens=16)
    rates = {}
    for level in ("none", "syntax"):
        mine = [outcome for outcome in outcomes if outcome.constraints == level]
        rates[level] = sum(outcome.parses for outcome in mine) / len(mine)
    print(f"parse rate on {len(holes)} fixture holes: unconstrained {rates['none']:.1%}, syntax {rates['syntax']:.1%}")
    constrained = [outcome for outcome in outcomes if outcome.constraints == "syntax"]
    assert [outcome.hole.name for outcome in constrained if not outcome.parses] == []
    # Parseable because something useful was written, not because nothing was.
    assert sum(bool(outcome.text.strip()) for outcome in constrained) >= len(constrained) // 2


def test_mid_statement_call_is_closed(engine: CompletionEngine) -> None:
    text = "def compute(a, b):\n    return a + b\n\n\ndef main(a: int) -> int:\n    total = compute(a, "
    completion = complete(engine, text, mode="line")
    assert ")" in completion.text
    assert parses(text + completion.text)


def test_token_healing_completes_a_partial_attribute(engine: CompletionEngine) -> None:
    text = "def fill(xs: list[int]) -> None:\n    for i in range(10):\n        xs.ap"
    completion = complete(engine, text)
    assert completion.text.startswith("pend(")
    assert parses(text + completion.text)


def test_prompt_ending_in_a_space_gets_a_word_not_another_space(engine: CompletionEngine) -> None:
    text = "def first(items: list[str]) -> str:\n    return "
    completion = complete(engine, text)
    assert completion.text and not completion.text[0].isspace()
    assert parses(text + completion.text)


def test_block_completion_stays_inside_the_block(engine: CompletionEngine) -> None:
    text = "def area(width: float, height: float) -> float:\n    "
    completion = complete(engine, text, max_tokens=48)
    assert completion.mode == "block" and completion.text
    for line in completion.text.splitlines()[1:]:
        assert not line.strip() or line.startswith("    ")
    assert parses(text + completion.text + "\n\nprint(area(2, 3))\n")


def test_trailing_comment_is_continued_under_the_grammar(engine: CompletionEngine) -> None:
    text = "x = 1  # the number of "
    completion = complete(engine, text)
    assert completion.relaxed is None and completion.text
    assert parses(text + completion.text)


def test_code_the_grammar_cannot_continue_relaxes_to_unconstrained(engine: CompletionEngine) -> None:
    # `in(` without a blank is valid Python the grammar does not cover (a documented approximation).
    completion = complete(engine, "def has(x, ys):\n    found = x in(")
    assert completion.relaxed is not None and completion.relaxed.startswith("syntax constraint not applied")
    assert completion.constraints == "syntax"


def test_a_grammar_that_does_not_compile_is_a_clear_error(model) -> None:
    with pytest.raises(GrammarError, match="does not compile"):
        GrammarCache(tokenizer_for(model)).matcher("start: (")


def test_mask_strategies_choose_the_same_tokens(engine: CompletionEngine, monkeypatch) -> None:
    """Masks overlapped with the forward pass, masks on demand, and a full mask as soon as the
    model's first choice is refused are three ways to the same greedy choices."""
    from accs_lsp.constraints.syntax import SyntaxConstraint

    holes = [hole for hole in holes_in(FIXTURES / "text_stats.py", per_kind=2) if hole.kind != "expression"]
    chosen: list[int] = []  # the tokens the grammar layer accepted, in order
    masks_applied = 0
    try_accept, accept, mask_logits = SyntaxConstraint.try_accept, SyntaxConstraint.accept, SyntaxConstraint.mask_logits

    def recorded_try_accept(self: SyntaxConstraint, token: int) -> bool:
        accepted = try_accept(self, token)
        if accepted:
            chosen.append(token)
        return accepted

    def recorded_accept(self: SyntaxConstraint, tokens) -> None:
        accept(self, tokens)
        chosen.extend(tokens)

    def counted_mask_logits(self: SyntaxConstraint, logits) -> None:
        nonlocal masks_applied
        masks_applied += 1
        mask_logits(self, logits)

    monkeypatch.setattr(SyntaxConstraint, "try_accept", recorded_try_accept)
    monkeypatch.setattr(SyntaxConstraint, "accept", recorded_accept)
    monkeypatch.setattr(SyntaxConstraint, "mask_logits", counted_mask_logits)

    def decode(overlap: bool) -> tuple[list[tuple[str, list[int]]], int]:
        """(text, tokens chosen) for each hole, and how many full masks were applied."""
        nonlocal masks_applied
        engine.overlap_masks = overlap
        masks_applied = 0
        results = []
        for hole in holes:
            # Reused KV entries change llama.cpp's batches and so the last bits of the logits:
            # evaluate every prompt whole, so that the strategies see the same numbers.
            engine.model.forget()
            chosen.clear()
            snapshot = Document(f"file:///{hole.name}", hole.text).snapshot()
            options = CompletionOptions(constraints="syntax", max_tokens=16, timeout_ms=None)
            results.append((engine.complete(snapshot, hole.offset, options).text, list(chosen)))
        return results, masks_applied

    try:
        overlapped, _ = decode(True)
        on_demand, masks_on_demand = decode(False)
        # The decoding loop reads the retries from the constraint it is given (the grammar
        # layer alone at this level): none, and every refused first choice takes the full mask.
        monkeypatch.setattr(SyntaxConstraint, "greedy_retries", 0)
        without_retries, masks_without_retries = decode(False)
    finally:
        engine.overlap_masks = False
    assert sum(bool(text.strip()) for text, _ in overlapped) >= 2
    # Without retries the full mask is taken more often, or this did not test that path.
    assert masks_without_retries > masks_on_demand
    # The tokens, not only the texts: a completion is cut back to its last complete construct,
    # which often drops the steps where the strategies would part.
    assert overlapped == on_demand == without_retries
