"""Metrics of one completion against its task, and of HumanEval's tests."""

from __future__ import annotations

import difflib
import re

from accs_lsp.sandbox import run_python

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
    """Run HumanEval's tests on `program` in the sandbox (accs_lsp.sandbox), with a timeout.

    A test that fails, raises, exits, or runs past the timeout counts as failed; nothing
    it does reaches this process or outlives the timeout.
    """
    script = f"{program}\n\n{tests}\n\ncheck({entry_point})\nprint({PASSED_MARKER!r})\n"
    result = run_python(script, timeout_s)
    # The marker: a candidate that exits early with status 0 has not passed.
    return result.succeeded and PASSED_MARKER in result.stdout
