"""The constraint layers of one request, and the relaxation ladder.

A `ConstraintSet` is built from the constraint level by one mapping (`LEVEL_LAYERS`):

- hard layers: token masks AND-ed while decoding (the grammar, the typed expression,
  the members after ".", the names an expression reads);
- soft layers: a logit bias the decoding loop adds before it chooses a token, on the
  greedy fast path too (the contextual layer's learned weights);
- candidate checks: run on finished candidates (the semantic layer's examples).

A layer that cannot be built is kept with the reason, so the completion says what was
applied and why the rest was not. When the layers together allow nothing, or lead the
model into a dead end, the request steps down the ladder (`LADDER`) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Protocol, Sequence

import numpy as np

from accs_lsp.constraints.following import removed_by
from accs_lsp.constraints.protocol import SoftBias, TokenConstraint

LayerKind = Literal["hard", "soft", "check"]

GRAMMAR = "grammar"
TYPED_EXPRESSION = "typed expression"
MEMBERS = "members"
NAMES = "names"
EXAMPLES = "examples"
PROJECT = "project"

#: The kind of each layer.
LAYER_KINDS: dict[str, LayerKind] = {
    GRAMMAR: "hard",
    TYPED_EXPRESSION: "hard",
    MEMBERS: "hard",
    NAMES: "hard",
    EXAMPLES: "check",
    PROJECT: "soft",
}

#: The layers each constraint level asks for.
LEVEL_LAYERS: dict[str, tuple[str, ...]] = {
    "none": (),
    "syntax": (GRAMMAR,),
    "types": (GRAMMAR, TYPED_EXPRESSION, MEMBERS, NAMES),
    "full": (GRAMMAR, TYPED_EXPRESSION, MEMBERS, NAMES, EXAMPLES, PROJECT),
}

#: The relaxation ladder after the strict set: each step's name and the layers it drops.
LADDER: tuple[tuple[str, frozenset[str]], ...] = (
    ("without semantic", frozenset({EXAMPLES})),
    ("without types", frozenset({EXAMPLES, TYPED_EXPRESSION, MEMBERS, NAMES})),
    ("syntax only", frozenset({EXAMPLES, TYPED_EXPRESSION, MEMBERS, NAMES, PROJECT})),
    ("unconstrained with the parse check", frozenset(LAYER_KINDS)),
)


class LayerUnavailable(Exception):
    """A layer cannot be built for this request (a failure the completion reports as a
    relaxation); the message says why."""


class LayerNotApplicable(LayerUnavailable):
    """A layer has nothing to constrain here (no expected type at the cursor): not a failure."""


class CheckResult(Protocol):
    checked: int
    passed: int


class CandidateCheck(Protocol):
    """A candidate check: how well each finished candidate, spliced into the buffer, does
    (the semantic layer: how many of the function's examples it passes)."""

    def score_all(self, buffer: str, offset: int, candidates: Sequence[str]) -> Sequence[CheckResult]: ...


@dataclass(frozen=True)
class Layer:
    name: str
    kind: LayerKind
    implementation: TokenConstraint | SoftBias | CandidateCheck | None = None
    skipped: str | None = None  # why the layer is not applied
    failed: bool = False  # whether that is a failure (as opposed to nothing to constrain)

    @property
    def applied(self) -> bool:
        return self.implementation is not None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "applied": self.applied, "reason": self.skipped}


#: Builds one layer for the request; raises LayerUnavailable with the reason when it cannot.
LayerFactory = Callable[[], "TokenConstraint | SoftBias | CandidateCheck"]


@dataclass
class ConstraintSet:
    level: str
    layers: list[Layer] = field(default_factory=list)

    @classmethod
    def build(cls, level: str, factories: dict[str, LayerFactory]) -> "ConstraintSet":
        """The layers of `level`, each built by its factory, in the mapping's order (a layer
        may rely on the ones before it: the type layers on the grammar)."""
        layers = []
        for name in LEVEL_LAYERS[level]:
            factory = factories.get(name)
            if factory is None:
                layers.append(Layer(name, LAYER_KINDS[name], skipped="not built yet", failed=True))
                continue
            if any(layer.name == GRAMMAR and not layer.applied for layer in layers):
                layers.append(Layer(name, LAYER_KINDS[name], skipped="needs the grammar"))
                continue
            try:
                layers.append(Layer(name, LAYER_KINDS[name], factory()))
            except LayerUnavailable as why:
                failed = not isinstance(why, LayerNotApplicable)
                layers.append(Layer(name, LAYER_KINDS[name], skipped=str(why), failed=failed))
        return cls(level, layers)

    def _applied(self, kind: LayerKind) -> list:
        return [layer.implementation for layer in self.layers if layer.kind == kind and layer.applied]

    @property
    def hard(self) -> TokenConstraint | None:
        """The hard layers AND-ed (None when there is none)."""
        constraints = self._applied("hard")
        if not constraints:
            return None
        return constraints[0] if len(constraints) == 1 else AllOf(constraints)

    @property
    def soft(self) -> list[SoftBias]:
        return self._applied("soft")

    @property
    def checks(self) -> list[CandidateCheck]:
        return self._applied("check")

    @property
    def constrained(self) -> bool:
        return self.hard is not None

    def without(self, names: frozenset[str], reason: str) -> "ConstraintSet":
        """This set with `names` no longer applied (a step down the ladder)."""
        return ConstraintSet(
            self.level,
            [replace(layer, implementation=None, skipped=reason) if layer.name in names and layer.applied else layer
             for layer in self.layers],
        )

    def fresh(self, factories: dict[str, LayerFactory]) -> "ConstraintSet":
        """The same layers applied, each built anew: a decoding leaves its layers in the state
        it ended in, and the next decoding (a step down the ladder, a branch) starts over."""
        layers = []
        for layer in self.layers:
            if not layer.applied:
                layers.append(layer)
                continue
            try:
                layers.append(replace(layer, implementation=factories[layer.name]()))
            except LayerUnavailable as why:
                layers.append(replace(layer, implementation=None, skipped=str(why), failed=True))
        return ConstraintSet(self.level, layers)

    def failures(self) -> list[str]:
        """Why the layers that failed to build were left out."""
        return [layer.skipped for layer in self.layers if layer.failed and layer.skipped]

    def to_json(self) -> list[dict[str, object]]:
        return [layer.to_json() for layer in self.layers]


def ladder_steps(strict: ConstraintSet) -> list[tuple[str, ConstraintSet]]:
    """The sets to try after `strict`, in order: each drops more layers and differs from the
    one before it (steps that would change nothing are left out)."""
    steps = []
    previous = strict
    for name, dropped in LADDER:
        relaxed = strict.without(dropped, f"dropped by the ladder ({name})")
        applied_before = {layer.name for layer in previous.layers if layer.applied}
        applied_now = {layer.name for layer in relaxed.layers if layer.applied}
        if applied_now != applied_before:
            steps.append((name, relaxed))
            previous = relaxed
    return steps


# A full mask of several layers costs several masks (the typed grammar's most), while a
# refused try costs tens of microseconds: try more of the model's choices first.
ALL_OF_GREEDY_RETRIES = 8
# Greedy narrowing: how many of the first layer's best tokens are checked against the others.
NARROW_CANDIDATES = 16


class AllOf:
    """Several constraints AND-ed (implements decoding.TokenConstraint): a token is allowed
    when every layer allows it; the masks are applied one after the other."""

    greedy_retries = ALL_OF_GREEDY_RETRIES

    def __init__(self, layers: Sequence[TokenConstraint]) -> None:
        self.layers = list(layers)

    def start_next_mask(self) -> None:
        for layer in self.layers:
            layer.start_next_mask()

    def mask_logits(self, logits: np.ndarray) -> None:
        for layer in self.layers:
            layer.mask_logits(logits)

    def mask_logits_narrow(self, logits: np.ndarray, wanted: Callable[[int], bool] | None = None) -> None:
        """A mask that keeps only the best token every layer allows, enough for greedy decoding
        (healing that finds no fitting token puts the taken-back text back as it was): the
        first layer's full mask, then its best tokens checked against the other layers one by
        one. Their full masks (the typed grammar's costs about a millisecond) are computed only
        when none of the first NARROW_CANDIDATES passes. `wanted`: only tokens it accepts count
        (while healing: those that re-create the text taken back)."""
        self.layers[0].mask_logits(logits)
        count = min(NARROW_CANDIDATES, len(logits))
        best_first = np.argpartition(-logits, count - 1)[:count]  # not a sort of the whole vocabulary
        for token in best_first[np.argsort(-logits[best_first])]:
            token = int(token)
            if not np.isfinite(logits[token]):
                break
            if wanted is not None and not wanted(token):
                continue
            if self._others_allow(token):
                best = logits[token]
                logits[:] = -np.inf
                logits[token] = best
                return
        for layer in self.layers[1:]:
            layer.mask_logits(logits)

    def _others_allow(self, token: int) -> bool:
        """Whether every layer after the first allows `token` (their state is left unchanged)."""
        if not accept_in_all(self.layers[1:], token):
            return False
        for layer in self.layers[1:]:
            layer.rollback(1)
        return True

    def removed_mass(self, logits: np.ndarray) -> tuple[float, bool]:
        masked = logits.copy()
        self.mask_logits(masked)
        return removed_by(logits, masked)

    def try_accept(self, token: int) -> bool:
        return accept_in_all(self.layers, token)

    def rollback(self, count: int) -> None:
        for layer in self.layers:
            layer.rollback(count)

    def accept(self, tokens: Sequence[int]) -> None:
        for layer in self.layers:
            layer.accept(tokens)

    def forced_tokens(self) -> list[int]:
        """Tokens every layer forces (a common prefix; usually none)."""
        forced = []
        for layer in self.layers:
            tokens = layer.forced_tokens()
            if not tokens:
                return []
            forced.append(tokens)
        common = []
        for tokens in zip(*forced):
            if len(set(tokens)) != 1:
                break
            common.append(tokens[0])
        return common

    def is_finished(self) -> bool:
        return any(layer.is_finished() for layer in self.layers)

    def is_complete(self) -> bool:
        return all(layer.is_complete() for layer in self.layers)


def accept_in_all(layers: Sequence[TokenConstraint], token: int) -> bool:
    """Accept `token` in every layer, or in none: a refusal rolls back the layers that took it."""
    for index, layer in enumerate(layers):
        if not layer.try_accept(token):
            for accepted in layers[:index]:
                accepted.rollback(1)
            return False
    return True
