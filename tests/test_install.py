"""A regular install, as users get it: a wheel of the checkout in a fresh virtual environment,
run from a directory outside the checkout (no editable finder, no grammars beside the source)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.timeout(1500)

FIXTURE = "geometry.py"
CURSOR = (32, 5)  # the body of circle_area, as in the README's first command


class Installed:
    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv = venv
        self.workdir = workdir

    def environment(self) -> dict[str, str]:
        """No trace of the checkout's environment: its venv off PATH, no overrides."""
        checkout_bin = str(Path(sys.executable).parent)
        path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and entry != checkout_bin]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("ACCS_", "PYTHON", "VIRTUAL_ENV"))}
        return {**env, "PATH": os.pathsep.join([str(self.venv / "bin"), *path])}

    def run(self, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / command[0]), *command[1:]],
            cwd=self.workdir, env=self.environment(), capture_output=True, text=True, timeout=timeout,
        )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("accs_lsp-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Installed:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(wheel)],
        capture_output=True, text=True, timeout=1200,
    )
    assert install.returncode == 0, install.stderr
    workdir = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(FIXTURES / FIXTURE, workdir / FIXTURE)
    return Installed(venv, workdir)


def test_the_wheel_carries_the_grammars(wheel) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(Path(name).name for name in names if name.startswith("accs_lsp/grammars/python/"))
    assert templates == sorted(path.name for path in (ROOT / "accs_lsp" / "grammars" / "python").glob("*.lark"))


def test_the_package_is_imported_from_the_fresh_environment(installed) -> None:
    where = installed.run("python", "-c", "import accs_lsp; print(accs_lsp.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout


def test_complete_with_the_default_settings(installed) -> None:
    line, column = CURSOR
    result = installed.run("accs-lsp", "complete", f"{FIXTURE}:{line}:{column}", "--max-tokens", "16", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    completion = json.loads(result.stdout)
    assert completion["constraints"] == "syntax" and completion["relaxed"] is None, completion
    assert completion["text"].strip()
    lines = (installed.workdir / FIXTURE).read_text().split("\n")
    offset = sum(len(text) + 1 for text in lines[: line - 1]) + column - 1
    source = "\n".join(lines)
    ast.parse(source[:offset] + completion["text"] + source[offset:])


def test_doctor_passes_without_the_optional_basedpyright(installed) -> None:
    result = installed.run("accs-lsp", "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = {line.split()[1]: line.split()[0] for line in result.stdout.splitlines() if line.startswith(("OK", "FAIL", "SKIP"))}
    assert statuses.pop("basedpyright") == "FAIL"  # not in the plain install: optional
    assert set(statuses.values()) == {"OK"}, result.stdout
    assert "pip install 'accs-lsp[pyright]'" in result.stdout


def test_pyright_provider_without_basedpyright_falls_back_to_jedi(installed) -> None:
    result = installed.run(
        "accs-lsp", "complete", f"{FIXTURE}:{CURSOR[0]}:{CURSOR[1]}", "--constraints", "types",
        "--type-provider", "pyright", "--max-tokens", "8", "--json",
    )
    assert result.returncode == 0, result.stderr
    assert "basedpyright-langserver not found" in result.stderr and "Jedi answers instead" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert json.loads(result.stdout)["constraints"] == "types"
