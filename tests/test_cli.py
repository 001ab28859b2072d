"""The command line, run as a user runs it: a subprocess with the real model."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accs_lsp import cli
from accs_lsp.cli import cursor_offset, parse_location, UsageError
from accs_lsp.completion.validation import parses


def run(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accs_lsp", *arguments], capture_output=True, text=True, timeout=timeout
    )


def end_of_first_def(path: Path) -> str:
    """A cursor right after `return ` or at the end of the first def line with a body."""
    lines = path.read_text().split("\n")
    for number, line in enumerate(lines, start=1):
        if line.strip().startswith("return "):
            column = line.index("return ") + len("return ") + 1
            return f"{path}:{number}:{column}"
    return f"{path}:{len(lines)}:1"


def test_complete_works_on_every_fixture(fixture_files):
    for path in fixture_files:
        result = run("complete", end_of_first_def(path), "--max-tokens", "8", "--json")
        assert result.returncode == 0, result.stderr
        output = json.loads(result.stdout)
        assert output["constraints"] == "syntax"  # the default
        assert output["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf (as Q8_0)"
        assert 0 < output["tokens"] <= 8
        assert {"text", "latency_ms", "stop_reason"} <= output.keys()


def test_syntax_constrained_completion_on_every_fixture(fixture_files):
    for path in fixture_files:
        result = run("complete", end_of_first_def(path), "--constraints", "syntax", "--max-tokens", "12", "--json")
        assert result.returncode == 0, result.stderr
        output = json.loads(result.stdout)
        assert output["constraints"] == "syntax" and output["relaxed"] is None
        source = path.read_text()
        _, line, column = parse_location(end_of_first_def(path))
        offset = cursor_offset(source, line, column)
        if parses(source):
            assert parses(source[:offset] + output["text"] + source[offset:]), output["text"]


def test_plain_output_is_the_inserted_text(fixture_files):
    result = run("complete", end_of_first_def(fixture_files[0]), "--max-tokens", "6")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize(
    "location, message",
    [
        ("fixtures/inventory.py:999:1", "outside the file"),
        ("fixtures/inventory.py:1:999", "outside line 1"),
        ("fixtures/inventory.py:0:1", "outside the file"),
        ("fixtures/missing.py:1:1", "no such file"),
        ("fixtures/inventory.py", "expected FILE:LINE:COL"),
    ],
)
def test_bad_positions_exit_2_with_a_message(location, message):
    result = run("complete", location)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_constraint_level_exits_2():
    result = run("complete", "fixtures/inventory.py:1:1", "--constraints", "strict")
    assert result.returncode == 2
    assert "invalid choice: 'strict'" in result.stderr


def test_learn_reads_only_what_changed_and_reset_forgets(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "shapes.py").write_text("def area(width, height):\n    return width * height\n")
    (project / "names.py").write_text("import numpy as np\nTOTAL = np.zeros(3)\n")
    environment = {**os.environ, "ACCS_CACHE_DIR": str(tmp_path / "cache")}

    def learn(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "accs_lsp", "learn", str(project), *extra]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)

    first, second = learn(), learn()
    assert first.returncode == 0 and "2 files, 2 read" in first.stdout, first.stderr
    assert second.returncode == 0 and "2 files, 0 read" in second.stdout
    assert learn("--reset").stdout.startswith("forgot ")
    assert "2 files, 2 read" in learn().stdout
    missing = subprocess.run(
        [sys.executable, "-m", "accs_lsp", "learn", str(tmp_path / "nowhere")], capture_output=True, text=True, env=environment
    )
    assert missing.returncode == 2 and missing.stderr.strip() == f"accs-lsp: error: no such directory: {tmp_path / 'nowhere'}"


def test_missing_and_corrupt_model_files_name_the_path(tmp_path):
    missing = run("complete", "fixtures/inventory.py:1:1", "--model", str(tmp_path / "nope.gguf"))
    assert missing.returncode == 2 and "model file not found" in missing.stderr and "nope.gguf" in missing.stderr
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 64)
    broken = run("complete", "fixtures/inventory.py:1:1", "--model", str(corrupt))
    assert broken.returncode == 2 and str(corrupt) in broken.stderr
    assert "Traceback" not in broken.stderr
    not_gguf = tmp_path / "text.gguf"
    not_gguf.write_text("hello")
    result = run("complete", "fixtures/inventory.py:1:1", "--model", str(not_gguf))
    assert result.returncode == 2 and "not a GGUF" in result.stderr


def test_model_from_environment_variable(tmp_path):
    env_result = subprocess.run(
        [sys.executable, "-m", "accs_lsp", "complete", "fixtures/inventory.py:1:1"],
        capture_output=True,
        text=True,
        env={**os.environ, "ACCS_MODEL": str(tmp_path / "env.gguf")},
        timeout=120,
    )
    assert env_result.returncode == 2 and "env.gguf" in env_result.stderr


def doctor_lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """check name -> the status and detail of its line."""
    checks = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("OK", "FAIL", "SKIP"):
            name = rest.strip().split("  ")[0]
            checks[name] = f"{status} {rest.strip()[len(name):].strip()}"
    return checks


def test_doctor_checks_each_part():
    result = run("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = doctor_lines(result)
    assert list(checks) == ["grammars", "model", "tokenizer", "grammar compile", "jedi", "basedpyright", "completion"]
    assert all(line.startswith("OK") for line in checks.values()), checks
    assert "49152 tokens" in checks["model"] and "SmolLM2-135M-Instruct.Q4_1.gguf" in checks["model"]


def test_doctor_fails_with_a_missing_model_and_skips_what_needs_it(tmp_path):
    result = run("doctor", "--model", str(tmp_path / "nope.gguf"))
    assert result.returncode == 1
    checks = doctor_lines(result)
    assert checks["model"].startswith("FAIL") and "nope.gguf" in checks["model"]
    assert checks["tokenizer"].startswith("SKIP") and checks["completion"].startswith("SKIP")
    assert checks["grammars"].startswith("OK") and checks["jedi"].startswith("OK")
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_grammars_fail_the_doctor_and_relax_a_completion(tmp_path):
    env = {**os.environ, "ACCS_GRAMMAR_DIR": str(tmp_path / "no-grammars")}
    doctor = subprocess.run([sys.executable, "-m", "accs_lsp", "doctor"], capture_output=True, text=True, env=env, timeout=300)
    assert doctor.returncode == 1
    checks = doctor_lines(doctor)
    assert checks["grammars"].startswith("FAIL") and "ACCS_GRAMMAR_DIR" in checks["grammars"]
    complete = subprocess.run(
        [sys.executable, "-m", "accs_lsp", "complete", "fixtures/geometry.py:32:5", "--max-tokens", "4", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert complete.returncode == 0, complete.stderr
    assert "cannot read the grammar template" in json.loads(complete.stdout)["relaxed"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["complete", "fixtures"], "expected FILE:LINE:COL"),
        (["complete", "fixtures:1:1"], "cannot read fixtures"),
        (["complete", "fixtures/inventory.py:1:1", "--max-tokens", "0"], "must be positive"),
        (["complete", "fixtures/inventory.py:x:1"], "must be integers"),
        (["eval", "--source", "no-such-dir"], "no such directory"),
        (["bench", "server", "--file", "no-such-file.py"], "no such file"),
        (["serve", "--tcp", "localhost"], "HOST:PORT"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(arguments, message):
    result = run(*arguments, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("accs-lsp")]) == 1


def test_too_many_tokens_for_the_context_window_is_bad_input():
    result = run("complete", "fixtures/geometry.py:32:5", "--max-tokens", "4000")
    assert result.returncode == 2, result.stderr
    assert "leaves no room for a prompt" in result.stderr and "Traceback" not in result.stderr


def test_an_interrupt_exits_130_with_one_line():
    command = [sys.executable, "-m", "accs_lsp", "bench", "server", "--rounds", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=120)
    assert process.returncode == 130
    assert error.strip() == "accs-lsp: interrupted"


def test_a_file_that_is_not_utf8_exits_2(tmp_path):
    binary = tmp_path / "binary.py"
    binary.write_bytes(b"\xff\xfe\x00x = 1\n")
    result = run("complete", f"{binary}:1:1")
    assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_exits_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--tcp", f"127.0.0.1:{port}", timeout=120)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_an_internal_failure_is_one_line_with_a_hint_and_exit_1(monkeypatch, capsys):
    def fail(arguments):
        raise KeyError("lost")

    monkeypatch.setattr(cli, "run_complete", fail)
    assert cli.main(["complete", "fixtures/inventory.py:1:1"]) == cli.EXIT_INTERNAL_ERROR
    error = capsys.readouterr().err
    assert error.strip() == "accs-lsp: internal error: KeyError: 'lost' (rerun with --log-level debug for details)"


def test_an_internal_failure_under_debug_logs_the_traceback(monkeypatch, caplog):
    def fail(arguments):
        raise KeyError("lost")

    monkeypatch.setattr(cli, "run_complete", fail)
    with caplog.at_level(logging.DEBUG, logger="accs_lsp"):
        assert cli.main(["complete", "fixtures/inventory.py:1:1", "--log-level", "debug"]) == 1
    assert any(record.exc_info for record in caplog.records)


def test_location_parsing_counts_columns_in_characters():
    assert parse_location("a:b.py:3:4") == (Path("a:b.py"), 3, 4)
    assert cursor_offset("é😀x\nab", 1, 3) == 2
    assert cursor_offset("é😀x\nab", 2, 3) == 6
    with pytest.raises(UsageError):
        cursor_offset("ab", 1, 4)


def test_bench_model_compares_the_shipped_file_with_its_copy_side_by_side() -> None:
    result = run("bench", "model", "--per-kind", "1", "--max-tokens", "4")
    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    for figure in ("prompt evaluation (tok/s)", "decoding (tok/s)", "completion latency p50 (ms)"):
        shipped, prepared, ratio = lines[figure].split()[-3:]
        assert float(shipped) > 0 and float(prepared) > 0 and ratio.endswith("x"), lines[figure]
    assert "as-Q8_0.gguf" in result.stdout and "identical completions" in result.stdout
