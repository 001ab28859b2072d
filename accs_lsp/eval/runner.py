"""`accs-lsp eval`: every available constraint level (arm) on the same tasks, same model, one run.

Writes `results.json` (per-task records and a summary), `report.md` (the summary as a
table) and `chart.png` (the arms side by side) to the output directory.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.completion.validation import parses
from accs_lsp.documents import Document
from accs_lsp.eval import metrics
from accs_lsp.eval.tasks import Task
from accs_lsp.settings import CONSTRAINT_LEVELS


@dataclass
class Record:
    task: str
    kind: str
    arm: str
    completion: str
    truth: str
    parses: bool
    exact_match: bool
    edit_similarity: float
    identifier_match: bool | None  # attribute tasks only
    passed: bool | None  # HumanEval only
    latency_ms: float
    tokens_run: int
    decode_ms: float
    constrained_steps: int
    top_token_removed: int
    removed_mass: float
    new_type_errors: int | None = None  # None: basedpyright not run
    new_type_error_rules: list[str] = field(default_factory=list)  # basedpyright's rule of each new error
    examples_checked: int = 0  # the semantic layer (full): examples run on the completion
    examples_passed: int = 0
    context_snippets: int = 0  # the contextual layer (full): other files' snippets in the prompt


@dataclass
class Evaluation:
    model: str
    arms: list[str]
    records: list[Record] = field(default_factory=list)
    type_checker: str = "not run"
    project_store: str = "none"  # what the full arm's contextual layer read

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        return {arm: summarize([r for r in self.records if r.arm == arm]) for arm in self.arms}


def run(
    engine: CompletionEngine,
    tasks: list[Task],
    max_tokens: int,
    progress: Callable[[int, int, str], None] = lambda done, total, what: None,
    only_arms: Sequence[str] | None = None,
    source_root: Path | None = None,
) -> Evaluation:
    """Every available constraint level (or those of `only_arms`) on every task.
    `source_root`: where the source tasks' files are (their documents get those paths, so
    that a store learned there finds them, and leaves their own file out of the snippets)."""
    arms = [
        level for level in CONSTRAINT_LEVELS
        if only_arms is None or level in only_arms
    ]
    evaluation = Evaluation(engine.model.name, arms)
    total = len(tasks) * len(arms)
    for index, task in enumerate(tasks):
        snapshot = Document(task_uri(task, source_root), task.text).snapshot()
        fill_prompt_cache(engine, snapshot, task.offset)
        for arm_index, arm in enumerate(arms):
            progress(index * len(arms) + arm_index, total, task.name)
            if arm == "full":  # its prompt starts with the project's snippets: evaluated untimed too
                fill_prompt_cache(engine, snapshot, task.offset, arm)
            options = CompletionOptions(constraints=arm, max_tokens=max_tokens, timeout_ms=None)
            evaluation.records.append(record(task, arm, engine.complete(snapshot, task.offset, options)))
    progress(total, total, "done")
    return evaluation


def task_uri(task: Task, source_root: Path | None) -> str:
    if source_root is not None and task.path:
        return (source_root / task.path).resolve().as_uri()
    return f"file:///eval/{task.name}"


def fill_prompt_cache(engine: CompletionEngine, snapshot, offset: int, level: str = "none") -> None:
    """One untimed token at the task's cursor, so that every arm finds the prompt evaluated
    (the model's cache keeps it): otherwise the first arm alone pays for it, seconds on a
    long file, and the arms' latencies compare the order they ran in, not their layers."""
    options = CompletionOptions(constraints=level, max_tokens=1, timeout_ms=None, run_examples=False)
    engine.complete(snapshot, offset, options)


def record(task: Task, arm: str, completion) -> Record:
    spliced = task.text[: task.offset] + completion.text + task.text[task.offset :]
    passed = None
    if task.kind == "humaneval":
        passed = metrics.passes_tests(task.text + completion.text, task.tests, task.entry_point)
    return Record(
        task=task.name,
        kind=task.kind,
        arm=arm,
        completion=completion.text,
        truth=task.truth,
        parses=parses(spliced),
        exact_match=metrics.exact_match(completion.text, task.truth),
        edit_similarity=round(metrics.edit_similarity(completion.text, task.truth), 4),
        identifier_match=metrics.identifier_match(completion.text, task.truth) if task.kind == "attribute" else None,
        passed=passed,
        latency_ms=completion.latency_ms,
        tokens_run=round(completion.tokens_per_second * completion.decode_ms / 1000),
        decode_ms=completion.decode_ms,
        constrained_steps=completion.constrained_steps,
        top_token_removed=completion.top_token_removed,
        removed_mass=completion.removed_mass,
        examples_checked=completion.examples_checked,
        examples_passed=completion.examples_passed,
        context_snippets=len(completion.context_snippets),
    )


def summarize(records: list[Record]) -> dict[str, float | int | None]:
    def share(values: list[bool]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    latencies = [r.latency_ms for r in records]
    steps = sum(r.constrained_steps for r in records)
    decode_seconds = sum(r.decode_ms for r in records) / 1000
    typed = [r.new_type_errors for r in records if r.new_type_errors is not None]
    return {
        "tasks": len(records),
        "parse_rate": share([r.parses for r in records]),
        "exact_match": share([r.exact_match for r in records]),
        "edit_similarity": round(statistics.fmean(r.edit_similarity for r in records), 4) if records else None,
        "identifier_match": share([r.identifier_match for r in records if r.identifier_match is not None]),
        "pass_at_1": share([r.passed for r in records if r.passed is not None]),
        "tasks_with_new_type_errors": share([n > 0 for n in typed]),
        "new_type_errors_per_task": round(statistics.fmean(typed), 4) if typed else None,
        "latency_p50_ms": metrics.percentile(latencies, 0.5),
        "latency_p95_ms": metrics.percentile(latencies, 0.95),
        "tokens_per_second": round(sum(r.tokens_run for r in records) / decode_seconds, 1) if decode_seconds else None,
        "top_token_removed_share": round(sum(r.top_token_removed for r in records) / steps, 4) if steps else None,
        "mean_removed_mass": round(sum(r.removed_mass for r in records) / steps, 4) if steps else None,
        "tasks_with_examples_run": share([r.examples_checked > 0 for r in records]),
        "tasks_with_context_snippets": share([r.context_snippets > 0 for r in records]),
    }


def count_new_type_errors(evaluation: Evaluation, tasks: list[Task]) -> None:
    """basedpyright once over a temporary tree holding, per task, the original file and each arm's
    spliced file; a record's new errors are its file's errors minus the original's."""
    checker = shutil.which("basedpyright") or str(Path(sys.executable).with_name("basedpyright"))
    if not Path(checker).exists() and shutil.which("basedpyright") is None:
        return
    by_name = {task.name: task for task in tasks}
    with tempfile.TemporaryDirectory(prefix="accs-types-") as directory:
        root = Path(directory)
        files: dict[tuple[str, str], Path] = {}
        for index, task in enumerate(tasks):
            files[(task.name, "original")] = write(root / f"t{index}" / "original" / "code.py", typed_source(task, task.truth))
        for record_ in evaluation.records:
            index = tasks.index(by_name[record_.task])
            files[(record_.task, record_.arm)] = write(
                root / f"t{index}" / record_.arm / "code.py", typed_source(by_name[record_.task], record_.completion)
            )
        errors = pyright_errors(checker, root)
        for record_ in evaluation.records:
            mine = errors.get(str(files[(record_.task, record_.arm)]), Counter())
            original = errors.get(str(files[(record_.task, "original")]), Counter())
            record_.new_type_errors = max(0, mine.total() - original.total())
            record_.new_type_error_rules = sorted((mine - original).elements())
    evaluation.type_checker = "basedpyright"


def typed_source(task: Task, completion: str) -> str:
    return task.text[: task.offset] + completion + task.text[task.offset :]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def pyright_errors(checker: str, root: Path) -> dict[str, Counter[str]]:
    """Per file, how many errors of each rule basedpyright reports."""
    (root / "pyrightconfig.json").write_text(json.dumps({"typeCheckingMode": "standard", "reportMissingImports": False}))
    completed = subprocess.run(
        [checker, "--outputjson", "-p", str(root / "pyrightconfig.json"), str(root)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    report = json.loads(completed.stdout or "{}")
    counts: dict[str, Counter[str]] = {}
    for diagnostic in report.get("generalDiagnostics", []):
        if diagnostic.get("severity") == "error":
            file = str(Path(diagnostic["file"]).resolve())
            counts.setdefault(file, Counter())[diagnostic.get("rule", "syntax")] += 1
    return counts


def write_outputs(evaluation: Evaluation, output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    summary = evaluation.summary()
    results = output / "results.json"
    results.write_text(
        json.dumps(
            {
                "model": evaluation.model,
                "arms": evaluation.arms,
                "project_store": evaluation.project_store,
                "type_checker": evaluation.type_checker,
                "summary": summary,
                "records": [asdict(r) for r in evaluation.records],
            },
            indent=1,
        )
    )
    report = output / "report.md"
    report.write_text(markdown(evaluation, summary))
    chart = output / "chart.png"
    draw_chart(summary, chart)
    return [results, report, chart]


ROWS = (
    ("tasks", "tasks"),
    ("parse_rate", "parses (ast.parse of the spliced file)"),
    ("exact_match", "exact match"),
    ("edit_similarity", "edit similarity"),
    ("identifier_match", "next identifier after \".\""),
    ("pass_at_1", "HumanEval pass@1"),
    ("tasks_with_new_type_errors", "tasks with new type errors (basedpyright)"),
    ("new_type_errors_per_task", "new type errors per task"),
    ("latency_p50_ms", "latency p50 (ms)"),
    ("latency_p95_ms", "latency p95 (ms)"),
    ("tokens_per_second", "tokens per second"),
    ("top_token_removed_share", "steps where the mask removed the top token"),
    ("mean_removed_mass", "probability mass removed per step"),
    ("tasks_with_examples_run", "tasks whose examples were run (full)"),
    ("tasks_with_context_snippets", "tasks with project snippets in the prompt (full)"),
)


def markdown(evaluation: Evaluation, summary: dict[str, dict[str, float | int | None]]) -> str:
    lines = [
        f"Model: `{evaluation.model}`. Project store for full: {evaluation.project_store}.",
        f"Type checker: {evaluation.type_checker}. Latency: each arm with the task's prompt already evaluated.",
        "",
        "| metric | " + " | ".join(evaluation.arms) + " |",
        "|---|" + "---|" * len(evaluation.arms),
    ]
    for key, label in ROWS:
        cells = [format_value(summary[arm][key], key) for arm in evaluation.arms]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    kinds = sorted({r.kind for r in evaluation.records})
    lines += ["", "Parse rate and edit similarity by task kind:", "", "| kind | " + " | ".join(evaluation.arms) + " |"]
    lines.append("|---|" + "---|" * len(evaluation.arms))
    for kind in kinds:
        cells = []
        for arm in evaluation.arms:
            part = summarize([r for r in evaluation.records if r.arm == arm and r.kind == kind])
            cells.append(f"{format_value(part['parse_rate'])} / {format_value(part['edit_similarity'])}")
        count = sum(1 for r in evaluation.records if r.kind == kind and r.arm == evaluation.arms[0])
        lines.append(f"| {kind} ({count}) | " + " | ".join(cells) + " |")
    lines += error_rule_lines(evaluation)
    return "\n".join(lines) + "\n"


def error_rule_lines(evaluation: Evaluation) -> list[str]:
    """Tasks with new type errors of each basedpyright rule, per arm (empty where it was not run)."""
    rules = sorted({rule for r in evaluation.records for rule in r.new_type_error_rules})
    if not rules:
        return []
    lines = ["", "Tasks with new type errors, by basedpyright rule:", "", "| rule | " + " | ".join(evaluation.arms) + " |"]
    lines.append("|---|" + "---|" * len(evaluation.arms))
    for rule in rules:
        cells = [str(sum(1 for r in evaluation.records if r.arm == arm and rule in r.new_type_error_rules)) for arm in evaluation.arms]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return lines


SHARES = {
    "parse_rate",
    "exact_match",
    "edit_similarity",
    "identifier_match",
    "pass_at_1",
    "tasks_with_new_type_errors",
    "top_token_removed_share",
    "mean_removed_mass",
    "tasks_with_examples_run",
    "tasks_with_context_snippets",
}


def format_value(value: float | int | None, key: str = "parse_rate") -> str:
    if value is None:
        return "n/a"
    if key in SHARES:
        return f"{value:.1%}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def draw_chart(summary: dict[str, dict[str, float | int | None]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["parse_rate", "exact_match", "edit_similarity", "identifier_match", "pass_at_1", "top_token_removed_share"]
    labels = ["parses", "exact match", "edit sim.", "next ident.", "pass@1", "top removed"]
    arms = list(summary)
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(arms), 1)
    for index, arm in enumerate(arms):
        values = [summary[arm][key] or 0.0 for key in keys]
        axes.bar([k + index * width for k in range(len(keys))], values, width, label=arm)
    axes.set_xticks([k + width * (len(arms) - 1) / 2 for k in range(len(keys))], labels)
    axes.set_ylim(0, 1)
    axes.set_ylabel("share")
    axes.legend(title="constraints")
    axes.set_title("accs-lsp eval: arms side by side")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def progress_bar(done: int, total: int, what: str) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what[:40]:40}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
