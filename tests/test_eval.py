"""The evaluation harness: hole extraction, metrics, and contained HumanEval tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from accs_lsp.eval import metrics
from accs_lsp.eval.tasks import SOURCE_KINDS, source_tasks

from conftest import FIXTURES

SOURCE = '''\
import math


def area(radius: float) -> float:
    return math.pi * radius ** 2


def describe(name: str, size: int) -> str:
    label = name.upper()
    return format_size(label, size=size)
'''


def test_holes_keep_their_truth_and_restore_the_file_exactly(tmp_path: Path) -> None:
    (tmp_path / "shapes.py").write_text(SOURCE)
    tasks = source_tasks(tmp_path, per_kind=10)
    assert {task.kind for task in tasks} == set(SOURCE_KINDS)
    for task in tasks:
        assert task.original == SOURCE, task.name
        assert task.truth and task.truth == SOURCE[task.offset : task.offset + len(task.truth)]
    truths = {(task.kind, task.truth) for task in tasks}
    assert ("return", "math.pi * radius ** 2") in truths
    assert ("call_args", "label, size=size") in truths
    assert ("attribute", "upper") in truths


def test_sampling_is_deterministic_for_a_seed() -> None:
    first = [task.name for task in source_tasks(FIXTURES, per_kind=3, seed=7)]
    again = [task.name for task in source_tasks(FIXTURES, per_kind=3, seed=7)]
    other = [task.name for task in source_tasks(FIXTURES, per_kind=3, seed=8)]
    assert first == again and first != other


def test_metrics_on_known_inputs() -> None:
    assert metrics.exact_match("a  +  b", "a + b")
    assert not metrics.exact_match("a + c", "a + b")
    assert metrics.edit_similarity("abcd", "abcd") == 1.0
    assert metrics.edit_similarity("", "") == 1.0
    assert metrics.edit_similarity("", "abc") == 0.0
    assert metrics.edit_similarity("abcd", "abxy") == pytest.approx(0.5)
    assert metrics.identifier_match("append(x)", "append")
    assert not metrics.identifier_match("extend(x)", "append")
    assert not metrics.identifier_match("", "")


PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


def test_humaneval_tests_pass_and_fail() -> None:
    assert metrics.passes_tests(PROGRAM, TESTS, "add")
    assert not metrics.passes_tests(PROGRAM.replace("a + b", "a - b"), TESTS, "add")
    assert not metrics.passes_tests("import sys\ndef add(a, b):\n    sys.exit(0)\n", TESTS, "add")


def test_a_hanging_or_exiting_candidate_is_contained() -> None:
    started = time.monotonic()
    assert not metrics.passes_tests("def add(a, b):\n    while True: pass\n", TESTS, "add", timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert not metrics.passes_tests("import os\ndef add(a, b):\n    os._exit(3)\n", TESTS, "add")


def test_eval_command_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    output = tmp_path / "report"
    completed = subprocess.run(
        [sys.executable, "-m", "accs_lsp", "eval", "--limit", "1", "--kinds", "humaneval,return,attribute",
         "--max-tokens", "24", "--output", str(output), "--learn"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((output / "results.json").read_text())
    assert results["arms"] == ["none", "syntax", "types", "full"]
    assert results["project_store"].endswith("learned before the run")
    assert results["summary"]["full"]["tasks_with_examples_run"] > 0, "HumanEval docstrings carry examples"
    assert results["type_checker"] == "basedpyright"
    assert {record["kind"] for record in results["records"]} == {"humaneval", "return", "attribute"}
    assert results["summary"]["syntax"]["parse_rate"] == 1.0
    assert all(record["new_type_errors"] is not None for record in results["records"])
    assert "| parses (ast.parse of the spliced file) |" in (output / "report.md").read_text()
    assert (output / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
