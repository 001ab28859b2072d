"""`accs-lsp bench types`: what the type layer costs, next to the syntax-only loop.

The same holes (return, call-argument and attribute holes cut from the fixtures, plus
the seed's examples; or, with --source, from the largest module of a package) are
completed with constraints "syntax" and "types", alternating, with one engine (which of
the two goes first alternates too: the first pays for the prompt). For "types", every
type-layer constraint (the typed-expression
matcher and the member constraint) is wrapped in a timer, so the time it takes in
each decoding step is measured apart from the syntactic layer's:

* per token: the type layers' time in one step (checking the model's choice, masks
  when needed, the completeness check), p50 and p99 over all steps;
* per request: asking the type provider and running the inhabitation search, and
  compiling the typed grammar;
* end to end: decoding throughput and latency of both levels.

The first round pays for cold caches (Jedi's stubs, member tables, grammar
compilation); it is reported apart, and the figures come from the rounds after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.constraints.protocol import TokenConstraint
from accs_lsp.documents import Document
from accs_lsp.eval.metrics import percentile
from accs_lsp.eval.tasks import Task, source_tasks
from accs_lsp.models.llama import LlamaModel

SEEDS = (
    ("seed/transform", "def transform(arr: list[int]) -> list[str]:\n    return ", "\n"),
    ("seed/to_text", "def f(x: int) -> str:\n    return ", "\n"),
    ("seed/members", "xs: list[int] = []\nxs.", "\n"),
)
TARGET_P99_MS = 1.0
TARGET_PLANNING_MS = (100.0, 400.0)  # p50, p99 per request on a file of 3,000 lines


class TimedLayer:
    """A constraint whose methods add their time to the step being decoded."""

    def __init__(self, layer: TokenConstraint, clock: "StepClock") -> None:
        self.layer = layer
        self.clock = clock

    def __getattr__(self, name: str):
        method = getattr(self.layer, name)

        def timed(*arguments):
            started = time.perf_counter()
            try:
                return method(*arguments)
            finally:
                self.clock.add(time.perf_counter() - started, step_ends=name == "start_next_mask")

        return timed


@dataclass
class StepClock:
    """Time of the type layers per decoding step. A step ends when the loop asks for the next
    mask; the layers' first call of a request starts one."""

    steps: list[float] = field(default_factory=list)
    _current: float = 0.0
    _open: bool = False

    def add(self, seconds: float, step_ends: bool) -> None:
        self._current += seconds
        self._open = True
        if step_ends:
            self.close()

    def close(self) -> None:
        if self._open:
            self.steps.append(self._current)
        self._current, self._open = 0.0, False


@dataclass
class LevelFigures:
    tokens: int = 0
    decode_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.decode_seconds if self.decode_seconds else 0.0


@dataclass
class TypeFigures:
    holes: int
    rounds: int
    syntax: LevelFigures = field(default_factory=LevelFigures)
    types: LevelFigures = field(default_factory=LevelFigures)
    planning_ms: list[float] = field(default_factory=list)
    first_round_planning_ms: list[float] = field(default_factory=list)
    typed_holes: int = 0
    clock: StepClock = field(default_factory=StepClock)
    slowest: list[tuple[float, str, str]] = field(default_factory=list)  # (type_ms, hole, relaxed)


def bench_tasks(fixtures: Path, per_kind: int) -> list[Task]:
    tasks = source_tasks(fixtures, per_kind, ("return", "call_args", "attribute"))
    seeds = [Task(name, "seed", text + suffix, len(text), "", "") for name, text, suffix in SEEDS]
    return seeds + tasks


def largest_module(directory: Path) -> Path:
    """The .py file under `directory` with the most lines (where planning is slowest)."""
    modules = sorted(directory.rglob("*.py"), key=lambda path: (-len(path.read_bytes().splitlines()), str(path)))
    if not modules:
        raise ValueError(f"no .py files under {directory}")
    return modules[0]


def measure(engine: CompletionEngine, tasks: Sequence[Task], max_tokens: int, rounds: int, type_provider: str = "jedi") -> TypeFigures:
    figures = TypeFigures(len(tasks), rounds)
    engine.type_layer_probe = lambda layer: TimedLayer(layer, figures.clock)
    try:
        for round_index in range(rounds + 1):
            for number, task in enumerate(tasks):
                snapshot = Document(f"file:///bench/{task.name}.py", task.text).snapshot()
                # The first level at a hole pays for the prompt; the other reuses it: alternate.
                for level in ("syntax", "types") if number % 2 == 0 else ("types", "syntax"):
                    steps_before = len(figures.clock.steps)
                    options = CompletionOptions(
                        constraints=level, max_tokens=max_tokens, timeout_ms=None, mode="line", type_provider=type_provider
                    )
                    completion = engine.complete(snapshot, task.offset, options)
                    figures.clock.close()
                    if round_index == 0:  # cold caches: planning reported apart, nothing else kept
                        if level == "types":
                            figures.first_round_planning_ms.append(completion.type_ms)
                        del figures.clock.steps[steps_before:]
                        continue
                    record(figures, level, completion)
                    if level == "types":
                        figures.slowest.append((completion.type_ms, task.name, completion.relaxed or ""))
    finally:
        engine.type_layer_probe = None
    return figures


def record(figures: TypeFigures, level: str, completion) -> None:
    target = figures.syntax if level == "syntax" else figures.types
    decode_seconds = completion.decode_ms / 1000
    target.tokens += round(completion.tokens_per_second * decode_seconds)
    target.decode_seconds += decode_seconds
    target.latencies_ms.append(completion.latency_ms)
    if level == "types":
        figures.planning_ms.append(completion.type_ms)
        figures.typed_holes += completion.expected_type is not None


def report(name: str, figures: TypeFigures) -> str:
    steps_us = [seconds * 1e6 for seconds in figures.clock.steps]
    p50, p99 = (percentile(steps_us, share, float("nan")) for share in (0.5, 0.99))
    ratio = figures.types.tokens_per_second / figures.syntax.tokens_per_second if figures.syntax.tokens_per_second else float("nan")
    verdict = "met" if p99 < TARGET_P99_MS * 1000 else "NOT met"
    lines = [
        f"{name}: {figures.holes} holes x {figures.rounds} rounds (after one cold round), syntax and types alternating",
        f"  type layer per token   p50 {p50:8.1f} µs   p99 {p99:8.1f} µs   max {max(steps_us, default=float('nan')):8.1f} µs"
        f"   ({len(steps_us)} steps; target p99 < {TARGET_P99_MS:.0f} ms: {verdict})",
        f"  type layer per request p50 {percentile(figures.planning_ms, 0.5, float('nan')):8.1f} ms   "
        f"p99 {percentile(figures.planning_ms, 0.99, float('nan')):8.1f} ms   (provider, inhabitation search, typed grammar; "
        f"cold first round p50 {percentile(figures.first_round_planning_ms, 0.5, float('nan')):.1f} ms, "
        f"max {max(figures.first_round_planning_ms, default=float('nan')):.1f} ms)",
        f"  holes with an expected type constrained: {figures.typed_holes} of {len(figures.planning_ms)}",
        f"  planning target (p50 < {TARGET_PLANNING_MS[0]:.0f} ms, p99 < {TARGET_PLANNING_MS[1]:.0f} ms per request): "
        f"{'met' if planning_met(figures.planning_ms) else 'NOT met'}",
    ]
    for label, level in (("syntax", figures.syntax), ("types", figures.types)):
        lines.append(
            f"  {label:<7} {level.tokens_per_second:6.1f} tok/s   latency p50 {percentile(level.latencies_ms, 0.5, float('nan')):7.1f} ms"
            f"   p95 {percentile(level.latencies_ms, 0.95, float('nan')):7.1f} ms"
        )
    lines.append(f"  throughput ratio types / syntax: {ratio:.3f}")
    for type_ms, hole, relaxed in sorted(figures.slowest, reverse=True)[:3]:
        lines.append(f"  slowest type layer: {type_ms:7.1f} ms  {hole}  {relaxed}")
    return "\n".join(lines)


def planning_met(planning_ms: Sequence[float]) -> bool:
    p50, p99 = (percentile(planning_ms, share, float("inf")) for share in (0.5, 0.99))
    return p50 < TARGET_PLANNING_MS[0] and p99 < TARGET_PLANNING_MS[1]


def run(
    source: Path, model_path: str | None, per_kind: int, max_tokens: int, rounds: int,
    from_largest_module: bool = False, type_provider: str = "jedi",
) -> str:
    """The holes come from fixtures/ with the seed's examples, or (`largest_module`) from the
    biggest module under `source` (`from_largest_module`), where planning costs the most."""
    from accs_lsp.models.default import resolve_model_path

    if from_largest_module:
        module = largest_module(source)
        tasks = source_tasks(module, per_kind, ("return", "call_args", "attribute"))
        title = f"{module} ({len(module.read_bytes().splitlines())} lines), type provider {type_provider}"
    else:
        tasks, title = bench_tasks(source, per_kind), f"fixtures, type provider {type_provider}"
    model = LlamaModel.load(str(resolve_model_path(model_path)), n_ctx=2048)
    engine = CompletionEngine(model)
    engine.warm_up()
    figures = measure(engine, tasks, max_tokens, rounds, type_provider)
    engine.close()
    return f"holes from {title}\n" + report(model.name, figures)


__all__ = ["run", "measure", "report", "bench_tasks"]
