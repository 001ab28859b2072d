"""The command line, run as a user runs it: a subprocess with the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
        assert output["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
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


def test_unavailable_constraint_level_exits_2():
    result = run("complete", "fixtures/inventory.py:1:1", "--constraints", "full")
    assert result.returncode == 2
    assert "not available yet" in result.stderr


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
        [sys.executable, "-m", "accs_lsp", "doctor"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "ACCS_MODEL": str(tmp_path / "env.gguf")},
        timeout=120,
    )
    assert env_result.returncode == 2 and "env.gguf" in env_result.stderr


def test_doctor_reports_the_model():
    result = run("doctor")
    assert result.returncode == 0, result.stderr
    assert "49152 tokens" in result.stdout
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in result.stdout


def test_location_parsing_counts_columns_in_characters():
    assert parse_location("a:b.py:3:4") == (Path("a:b.py"), 3, 4)
    assert cursor_offset("é😀x\nab", 1, 3) == 2
    assert cursor_offset("é😀x\nab", 2, 3) == 6
    with pytest.raises(UsageError):
        cursor_offset("ab", 1, 4)
