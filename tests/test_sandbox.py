"""The sandbox that runs candidates (eval's HumanEval tests, later the semantic layer)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from accs_lsp.eval.metrics import passes_tests
from accs_lsp.sandbox import MAX_OUTPUT_BYTES, run_many, run_python


@pytest.mark.parametrize(
    "code, refused",
    [
        ("open({outside!r}, 'w').write('x')", "writing"),
        ("import os; os.remove({kept!r})", "os.remove"),
        ("import os; os.rename({kept!r}, {outside!r})", "os.rename"),
        ("import subprocess; subprocess.run(['true'])", "subprocess.Popen"),
        ("import os; os.fork()", "os.fork"),
        ("import os; os.system('true')", "os.system"),
        ("import socket; socket.create_connection(('127.0.0.1', 9))", "socket.connect"),
        ("import resource; resource.setrlimit(resource.RLIMIT_AS, (-1, -1))", "resource.setrlimit"),
    ],
)
def test_refuses_what_a_candidate_has_no_business_doing(tmp_path: Path, code: str, refused: str) -> None:
    kept = tmp_path / "kept.txt"
    kept.write_text("kept")
    outside = tmp_path / "written.txt"
    result = run_python(code.format(outside=str(outside), kept=str(kept)), timeout_s=5)
    assert result.returncode == 1
    assert f"accs-lsp sandbox: {refused}" in result.stderr
    assert kept.read_text() == "kept"
    assert not outside.exists()


def test_writes_inside_its_own_directory_and_prints() -> None:
    result = run_python("open('notes.txt', 'w').write('ok')\nprint(open('notes.txt').read())", timeout_s=5)
    assert result.succeeded and result.stdout.strip() == "ok"


@pytest.mark.parametrize("code", ["while True: pass", "import time; time.sleep(60)"])
def test_nothing_outlives_the_timeout(code: str) -> None:
    started = time.monotonic()
    result = run_python(code, timeout_s=1.0)
    assert result.timed_out and not result.succeeded
    assert time.monotonic() - started < 5


def test_memory_is_bounded() -> None:
    result = run_python("x = bytearray(3 << 30)\nprint('allocated')", timeout_s=5, memory_mb=512)
    assert not result.succeeded and "MemoryError" in result.stderr


def test_humaneval_tests_pass_and_fail_through_it() -> None:
    program = "def add(a, b):\n    return a + b\n"
    tests = "def check(f):\n    assert f(2, 3) == 5\n"
    assert passes_tests(program, tests, "add")
    assert not passes_tests(program.replace("a + b", "a - b"), tests, "add")
    assert not passes_tests("import sys\ndef add(a, b):\n    sys.exit(0)\n", tests, "add")


def test_no_network_where_the_kernel_gives_it_a_namespace() -> None:
    interfaces = "import os\nprint(os.readlink('/proc/self/ns/net'))\nprint(open('/proc/self/net/dev').read())"
    result = run_python(interfaces, timeout_s=5)
    assert result.succeeded
    namespace, *devices = result.stdout.splitlines()
    if namespace == os.readlink("/proc/self/ns/net"):
        pytest.skip("no user and network namespaces here: the audit hook alone refuses sockets")
    # Past the audit hook, which refuses connections anyway: no interface but loopback.
    assert [line.split(":")[0].strip() for line in devices[2:] if line.strip()] == ["lo"]


def test_endless_output_costs_the_caller_nothing() -> None:
    started = time.monotonic()
    result = run_python("import os\nwhile True: os.write(1, b'x' * 65536)", timeout_s=5)
    assert not result.succeeded and len(result.stdout) <= MAX_OUTPUT_BYTES
    assert time.monotonic() - started < 5


def test_run_many_runs_concurrently_and_in_order() -> None:
    started = time.monotonic()
    results = run_many(["print(1)", "while True: pass", "print(3)", "import time; time.sleep(60)"], timeout_s=1.0)
    assert time.monotonic() - started < 3
    assert [r.stdout.strip() for r in results] == ["1", "", "3", ""]
    assert [r.timed_out for r in results] == [False, True, False, True]
