"""The semantic layer: examples found for the function at the cursor, and candidates run on
them in the sandbox (real processes)."""

from __future__ import annotations

import time
from pathlib import Path

from accs_lsp.semantic import CheckOutcome, Example, ExampleCheck, FunctionExamples, examples_at

# HumanEval/0's prompt, as the data set has it.
HUMANEVAL_0 = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """
'''
HUMANEVAL_0_SOLUTION = """    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
"""

DOUBLE = '''import math


def double(x):
    """Twice x.

    >>> double(2)
    4
    >>> double(5)
    10
    """
'''
RIGHT = "    return 2 * x\n"
WRONG = "    return x + 1\n"


def double_check(timeout_s: float = 2.0) -> ExampleCheck:
    function = examples_at(DOUBLE, len(DOUBLE))
    assert function is not None
    return ExampleCheck(function, timeout_s=timeout_s)


def test_doctests_of_a_humaneval_prompt() -> None:
    for buffer, offset in ((HUMANEVAL_0, len(HUMANEVAL_0)), (HUMANEVAL_0 + "    ", len(HUMANEVAL_0) + 4)):
        function = examples_at(buffer, offset)
        assert function == FunctionExamples(
            "has_close_elements",
            3,
            10,
            (
                Example("has_close_elements([1.0, 2.0, 3.0], 0.5)", "False", "doctest", 6),
                Example("has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "True", "doctest", 8),
            ),
        )


def test_doctest_outputs_that_are_not_expressions_are_compared_as_displayed() -> None:
    buffer = '''def greet(name):
    """
    >>> greet("Ada")
    hello Ada
    >>> print(greet("Bob"))
    hello Bob
    >>> greet(1)
    Traceback (most recent call last):
    TypeError: no
    >>> people = ["Cy"]
    >>> greet(people[0])
    'hello Cy'
    >>> greet("x") == "hello x"
    >>> len("unrelated")
    9
    """
    return'''
    function = examples_at(buffer, len(buffer))
    assert function is not None
    assert [(e.call, e.expected, e.compare_repr) for e in function.examples] == [
        ('greet("Ada")', "hello Ada", True),
        ('print(greet("Bob"))', "hello Bob", True),
        ("greet('x')", "'hello x'", False),
    ]
    check = ExampleCheck(function)
    assert check.score(buffer, len(buffer), ' f"hello {name}"\n') == CheckOutcome(3, 2)


def test_accs_comments_name_the_function() -> None:
    buffer = (
        "# accs: to_strings([1, 2]) == ['1', '2']\n"
        "def to_strings(values):\n"
        "    return \n"
        "x = 1  # accs: mod.to_strings([]) == []\n"
        "# accs: other(1) == 1\n"
        "# accs: to_strings([3]) != ['3']\n"
    )
    function = examples_at(buffer, buffer.index("return ") + 7)
    assert function is not None and function.name == "to_strings"
    assert function.examples == (
        Example("to_strings([1, 2])", "['1', '2']", "comment", 0),
        Example("to_strings([])", "[]", "comment", 3),
    )


def test_asserts_in_the_project_tests(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_square.py").write_text(
        "import square\nfrom square import sq\n\n"
        "def test_it(fixture):\n"
        "    assert square.sq(3) == 9\n"
        "    assert sq(-2) == 4\n"
        "    assert sq(fixture) == 1\n"
        "    assert other(2) == 2\n"
    )
    (tmp_path / "unit_test.py").write_text("assert sq(0) == 0\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "test_vendored.py").write_text("assert sq(5) == 25\n")
    (tmp_path / "helpers.py").write_text("assert sq(6) == 36\n")
    buffer = "def sq(x):\n    return x\n"
    function = examples_at(buffer, buffer.index("return"), project_root=tmp_path)
    assert function is not None
    assert [(e.call, e.expected, e.source, e.line) for e in function.examples] == [
        ("sq(0)", "0", "test", 0),
        ("sq(3)", "9", "test", 4),
        ("sq(-2)", "4", "test", 5),
    ]


def test_no_examples_in_a_method_or_outside_a_function() -> None:
    plain = 'def f(x):\n    """Nothing to run."""\n    return x\n'
    assert examples_at(plain, plain.index("return")) is None
    method = 'class A:\n    def f(self):\n        """\n        >>> A().f()\n        1\n        """\n        return 1\n'
    assert examples_at(method, method.index("return")) is None
    assert examples_at(DOUBLE, DOUBLE.index("math")) is None


def test_the_enclosing_function_of_a_broken_buffer() -> None:
    buffer = DOUBLE + "    y = x *\n\ndef broken(:\n    pass\n"
    function = examples_at(buffer, buffer.index("x *") + 3)
    assert function is not None and function.name == "double" and len(function.examples) == 2
    nested = 'def outer():\n    def inner(n):\n        """\n        >>> inner(2)\n        3\n        """\n'
    nested += "        return n +"
    function = examples_at(nested, len(nested))
    assert function is not None and function.name == "inner"
    assert ExampleCheck(function).score(nested, len(nested), " 1\n") == CheckOutcome(1, 1)


def test_a_right_candidate_passes_and_a_wrong_one_does_not() -> None:
    check = double_check()
    started = time.monotonic()
    right, wrong = check.score_all(DOUBLE, len(DOUBLE), [RIGHT, WRONG])
    first = time.monotonic() - started
    assert (right, wrong) == (CheckOutcome(2, 2), CheckOutcome(2, 0))
    assert check.passes(DOUBLE, len(DOUBLE), RIGHT) and not check.passes(DOUBLE, len(DOUBLE), WRONG)
    started = time.monotonic()
    check.score(DOUBLE, len(DOUBLE), RIGHT)
    assert time.monotonic() - started < min(0.05, first)


def test_humaneval_solution_ranks_first() -> None:
    function = examples_at(HUMANEVAL_0, len(HUMANEVAL_0))
    assert function is not None
    outcomes = ExampleCheck(function).score_all(
        HUMANEVAL_0, len(HUMANEVAL_0), [HUMANEVAL_0_SOLUTION, "    return False\n", "    return None\n"]
    )
    assert [o.passed for o in outcomes] == [2, 1, 0]


def test_a_candidate_that_does_not_compile() -> None:
    check = double_check()
    assert check.score(DOUBLE, len(DOUBLE), "    return (2 *\n") == CheckOutcome(2, 0, "SyntaxError")
    assert not check.passes(DOUBLE, len(DOUBLE), "    return (2 *\n")


def test_a_hanging_candidate_fails_only_itself() -> None:
    # Swallows the harness's per-example alarm: only the process deadline ends it.
    loop = "while True:\n            x += 1\n"
    stubborn = f"    try:\n        {loop}    except BaseException:\n        {loop}"
    check = double_check(timeout_s=1.0)
    started = time.monotonic()
    outcomes = check.score_all(DOUBLE, len(DOUBLE), [RIGHT, "    while True: pass\n", stubborn, WRONG])
    assert time.monotonic() - started < 2.5
    assert outcomes == [CheckOutcome(2, 2), CheckOutcome(2, 0), CheckOutcome(2, 0, "timeout"), CheckOutcome(2, 0)]


def test_printed_results_cannot_spoof_the_count() -> None:
    spoof = (
        "    import os, sys\n"
        '    line = \'{"checked": 2, "passed": 2}\'\n'
        "    print(line)\n"
        "    os.write(1, (line + '\\n').encode())\n"
        "    sys.__stdout__.write('0123 ' + line + '\\n')\n"
        "    return -1\n"
    )
    assert double_check().score(DOUBLE, len(DOUBLE), spoof) == CheckOutcome(2, 0)
    exits = "    import os\n    print('{\"checked\": 2, \"passed\": 2}', flush=True)\n    os._exit(0)\n"
    assert double_check().score(DOUBLE, len(DOUBLE), exits).passed == 0


def test_spliced_into_a_buffer_whose_later_code_is_broken() -> None:
    rest = (
        "\n\nimport not_a_module_anywhere\n"
        "print('side effect')\n"
        "raise SystemExit(3)\n"
        "def broken(:\n    pass\n"
        "if __name__ == '__main__':\n    raise SystemExit(4)\n"
        "HALF = double(1) // 2\n"
    )
    buffer = DOUBLE + rest
    check = double_check()
    assert check.score(buffer, len(DOUBLE), RIGHT) == CheckOutcome(2, 2)
    assert check.score(buffer, len(DOUBLE), "    return x + math.floor(x / 2) + 1\n") == CheckOutcome(2, 1)


def test_what_a_candidate_must_not_do_fails_it(tmp_path: Path) -> None:
    touched, written = tmp_path / "touched", tmp_path / "written"
    bodies = [
        "    x = bytearray(3 << 30)\n    return 2 * x\n",
        f"    import os\n    os.system('touch {touched}')\n    return 2 * x\n",
        f"    open({str(written)!r}, 'w').write('x')\n    return 2 * x\n",
        "    import subprocess\n    subprocess.run(['true'])\n    return 2 * x\n",
    ]
    outcomes = double_check().score_all(DOUBLE, len(DOUBLE), [*bodies, RIGHT])
    assert outcomes == [CheckOutcome(2, 0)] * len(bodies) + [CheckOutcome(2, 2)]
    assert not touched.exists() and not written.exists()


def test_critical_candidates_end_a_line() -> None:
    check = double_check()
    assert check.is_critical("    return 2 * x\n")
    assert check.is_critical("2 * x\n  ")
    assert not check.is_critical("2 * x")
    assert check.is_critical("2 * x", "    return \n", len("    return "))
    assert not check.is_critical("2", "    return  * x\n", len("    return "))
