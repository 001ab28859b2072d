"""Metrics of one completion against its task, and of HumanEval's tests."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TEST_TIMEOUT_S = 10.0
PASSED_MARKER = "accs-eval: all tests passed"


def percentile(values: list[float], share: float, default: float | None = None) -> float | None:
    """The value below which `share` of `values` lie (nearest rank); `default` when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else default


def normalized(code: str) -> str:
    return " ".join(code.split())


def exact_match(completion: str, truth: str) -> bool:
    return normalized(completion) == normalized(truth)


def edit_similarity(completion: str, truth: str) -> float:
    """1.0 for identical texts (blanks normalized), 0.0 for nothing in common."""
    a, b = normalized(completion), normalized(truth)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b).ratio()


def first_identifier(code: str) -> str:
    found = IDENTIFIER.match(code.lstrip())
    return found.group(0) if found else ""


def identifier_match(completion: str, truth: str) -> bool:
    """The identifier the completion starts with is the one the code had (after ".")."""
    expected = first_identifier(truth)
    return bool(expected) and first_identifier(completion) == expected


def passes_tests(program: str, tests: str, entry_point: str, timeout_s: float = TEST_TIMEOUT_S) -> bool:
    """Run HumanEval's tests on `program` in a fresh interpreter, in an empty directory, with a timeout.

    A test that fails, raises, exits, or runs past the timeout counts as failed; nothing
    it does reaches this process.
    """
    script = f"{program}\n\n{tests}\n\ncheck({entry_point})\nprint({PASSED_MARKER!r})\n"
    with tempfile.TemporaryDirectory(prefix="accs-eval-") as directory:
        path = Path(directory) / "candidate.py"
        path.write_text(script, encoding="utf-8")
        environment = {"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0", "no_proxy": "*"}
        try:
            completed = subprocess.run(
                [sys.executable, "-I", str(path)],
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return False
    # The marker: a candidate that exits early with status 0 has not passed.
    return completed.returncode == 0 and PASSED_MARKER in completed.stdout.decode(errors="replace")
