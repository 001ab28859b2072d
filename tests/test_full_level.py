"""The `full` level end to end with the real model: the semantic layer's examples choose
among the candidates, and the contextual layer reads a project learned into a real store."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from accs_lsp.completion import CompletionEngine, CompletionOptions
from accs_lsp.completion.candidates import Candidate, choose
from accs_lsp.constraints.project import ProjectBias
from accs_lsp.documents import Document
from accs_lsp.learn.registry import ProjectStores
from accs_lsp.learn.store import ProjectStore
from accs_lsp.semantic import ExampleCheck, examples_at

WITH_EXAMPLES = '''def add_one(values: list[int]) -> list[int]:
    """Add one to every element.
    >>> add_one([1, 2, 3])
    [2, 3, 4]
    >>> add_one([])
    []
    """
    '''


@pytest.fixture
def engines(model):
    """New engines, closed after the test (their background member lookups stopped)."""
    made: list[CompletionEngine] = []

    def make(**arguments: object) -> CompletionEngine:
        made.append(CompletionEngine(model, **arguments))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def layer(completion, name: str) -> dict[str, object]:
    return next(entry for entry in completion.layers if entry["name"] == name)


def complete_at_end(engine: CompletionEngine, uri: str, source: str, **options: object):
    options = {"constraints": "full", "max_tokens": 32, "timeout_ms": None, **options}
    return engine.complete(Document(uri, source).snapshot(), len(source), CompletionOptions(**options))


def test_full_runs_the_docstring_examples_on_the_candidates(engines) -> None:
    engine = engines(projects=ProjectStores(discover=False))
    completion = complete_at_end(engine, "file:///nowhere/add_one.py", WITH_EXAMPLES)
    assert layer(completion, "examples")["applied"]
    assert completion.examples_checked == 2
    assert completion.candidates_run >= 1 and completion.branches >= 1
    assert 0 <= completion.examples_passed <= 2

    off = complete_at_end(engine, "file:///nowhere/add_one.py", WITH_EXAMPLES, run_examples=False)
    assert not layer(off, "examples")["applied"] and "runExamples" in layer(off, "examples")["reason"]
    assert off.examples_checked == 0 and off.candidates_run == 0


def test_the_candidate_that_passes_the_examples_is_chosen_over_the_models_favourite() -> None:
    function = examples_at(WITH_EXAMPLES, len(WITH_EXAMPLES))
    assert function is not None
    wrong = Candidate("return None", "strict", 0)
    right = Candidate("return [value + 1 for value in values]", "strict", 1)
    choice = choose(WITH_EXAMPLES, len(WITH_EXAMPLES), [wrong, right], [ExampleCheck(function)])
    assert choice.candidate == right and (choice.checked, choice.passed, choice.candidates_run) == (2, 2, 2)
    neither = Candidate("return [2, 3, 4]", "strict", 1)
    choice = choose(WITH_EXAMPLES, len(WITH_EXAMPLES), [wrong, neither], [ExampleCheck(function)])
    assert choice.candidate == neither and choice.passed == 1, "when none passes all, the one passing most wins"


@pytest.fixture
def learned(tmp_path: Path, cache: Path) -> ProjectStore:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "pricing.py").write_text(
        "def discounted_total(prices: list[float], discount_rate: float) -> float:\n"
        "    subtotal = sum(prices)\n"
        "    return subtotal - subtotal * discount_rate\n"
    )
    (project / "cart.py").write_text("from pricing import discounted_total\n\n\ndef checkout(prices, rate):\n    return ")
    store = ProjectStore.open(project)
    assert store is not None
    store.learn()
    yield store
    store.close()


def test_full_puts_the_projects_snippets_in_the_prompt_and_biases_its_names(engines, learned: ProjectStore) -> None:
    engine = engines()  # finds the learned store from the file's path, as `complete` does
    cart = learned.root / "cart.py"
    completion = complete_at_end(engine, cart.as_uri(), cart.read_text(), max_tokens=12)
    assert completion.context_snippets == ("pricing.py",)
    assert layer(completion, "project")["applied"]
    unlearned = complete_at_end(engines(), "file:///elsewhere/cart.py", cart.read_text(), max_tokens=12)
    assert unlearned.context_snippets == () and "not learned" in layer(unlearned, "project")["reason"]


def test_the_projects_own_file_is_left_out_of_its_snippets(engines, learned: ProjectStore) -> None:
    pricing = learned.root / "pricing.py"
    source = pricing.read_text()
    completion = complete_at_end(engines(), pricing.as_uri(), source[: source.index("return") + 7], max_tokens=4)
    assert "pricing.py" not in completion.context_snippets


def token_shares(bias: ProjectBias, model, names: list[str], logits: np.ndarray) -> dict[str, float]:
    """The probability of each name's first token after the bias (from the same logits)."""
    biased = logits.copy()
    bias.apply(biased, "")
    probabilities = np.exp(biased - biased.max())
    probabilities /= probabilities.sum()
    return {name: float(probabilities[model.tokenize(" " + name)[0]]) for name in names}


def test_feedback_changes_the_next_completions_ranking_and_the_bias_keeps_the_names_total(model, learned: ProjectStore) -> None:
    projects = ProjectStores()
    projects.add(learned)
    names = ["subtotal", "discount_rate"]
    logits = np.zeros(model.n_vocab, dtype=np.float32)
    before = token_shares(ProjectBias(projects.names(learned, model.tokenize), "x ="), model, names, logits)
    assert before["subtotal"] > before["discount_rate"], "subtotal is used three times, discount_rate twice"

    for _ in range(3):
        learned.record_feedback("discount_rate", accepted=True)
        learned.record_feedback("subtotal", accepted=False)
    projects.changed(learned)
    after = token_shares(ProjectBias(projects.names(learned, model.tokenize), "x ="), model, names, logits)
    assert after["discount_rate"] > after["subtotal"]

    biased = logits.copy()
    ProjectBias(projects.names(learned, model.tokenize), "x =").apply(biased, "")
    assert math.isclose(float(np.exp(biased).sum()), float(np.exp(logits).sum()), rel_tol=1e-4)
    inside_a_string = logits.copy()
    ProjectBias(projects.names(learned, model.tokenize), "x = 'a ").apply(inside_a_string, "")
    assert np.array_equal(inside_a_string, logits), "no bias inside a string"



def test_the_snippets_stay_the_same_across_the_file_so_its_prompt_stays_cached(engines, learned: ProjectStore) -> None:
    engine = engines()
    cart = learned.root / "cart.py"
    source = cart.read_text() + "prices\n\n\ndef refund(prices, rate):\n    return "
    first = complete_at_end(engine, cart.as_uri(), cart.read_text(), max_tokens=4)
    second = complete_at_end(engine, cart.as_uri(), source, max_tokens=4)
    assert first.context_snippets == second.context_snippets == ("pricing.py",)
    assert second.reused_prompt_tokens >= first.prompt_tokens - 2, "the snippets and the file's start were cached"
