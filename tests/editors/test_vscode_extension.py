"""The VS Code extension's own build and tests, run from pytest so that one test
command covers the whole project.

`npm ci` installs the pinned packages, `npm test` compiles (tsc + esbuild) and runs
the mocha unit tests and the protocol tests, which start this checkout's real server
(`.venv/bin/python -m accs_lsp serve`, or `$ACCS_SERVER_COMMAND`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

EXTENSION = Path(__file__).resolve().parents[2] / "vscode-extension"
NPM_TIMEOUT_S = 900


def _npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    assert npm, "npm is needed for the VS Code extension's tests (Node 20 or newer)"
    env = dict(os.environ)
    env.setdefault("ACCS_SERVER_COMMAND", f"{sys.executable} -m accs_lsp serve")
    return subprocess.run(
        [npm, *args], cwd=EXTENSION, env=env, text=True, capture_output=True, timeout=NPM_TIMEOUT_S
    )


def test_extension_builds_and_passes_its_tests() -> None:
    if not (EXTENSION / "node_modules").is_dir() or os.environ.get("CI"):
        installed = _npm("ci", "--no-audit", "--no-fund")
        assert installed.returncode == 0, installed.stdout + installed.stderr
    result = _npm("test")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    assert "passing" in result.stdout and "failing" not in result.stdout, result.stdout[-6000:]


def test_extension_packages_as_a_vsix(tmp_path: Path) -> None:
    if not (EXTENSION / "node_modules").is_dir():
        installed = _npm("ci", "--no-audit", "--no-fund")
        assert installed.returncode == 0, installed.stdout + installed.stderr
    vsix = tmp_path / "accs-lsp.vsix"
    result = _npm("run", "package", "--", "--out", str(vsix))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
    assert {"extension/package.json", "extension/dist/extension.js"} <= names, sorted(names)
