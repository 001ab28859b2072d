"""Run untrusted Python (a model's candidate with its tests) so that it harms nothing.

The code runs in a fresh `python -I` process in an empty temporary directory, in a process
group of its own that is killed as a whole at the deadline (nothing it starts outlives
it), under CPU-time, address-space, file-size and open-file limits. Before the code runs,
an audit hook (which the code cannot remove) refuses what it has no business doing:
writing, deleting or renaming outside its directory, starting processes, and network
connections. This is a guard against accidents and careless code, not a container.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MEMORY_MB = 1024
MAX_OUTPUT_BYTES = 1 << 20
MAX_FILE_BYTES = 16 << 20

# Runs first in the child: installs the audit hook, then executes the candidate's file.
BOOTSTRAP = r"""
import os, sys, types

def make_hook(root):
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = frozenset({"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
        "os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move"})
    refused = frozenset({"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "subprocess.Popen", "socket.connect", "socket.bind", "socket.sendto", "pty.spawn",
        "os.kill", "os.killpg", "ctypes.dlopen"})
    realpath, fsdecode, sep, path_like = os.path.realpath, os.fsdecode, os.sep, (str, bytes, os.PathLike)

    def inside(path):
        if isinstance(path, int):
            return True
        try:
            real = realpath(fsdecode(path))
        except Exception:
            return False
        return real == root or real.startswith(root + sep)

    def hook(event, args):
        if event in refused:
            raise PermissionError(f"accs-lsp sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & writes)
            if writing and not inside(path):
                raise PermissionError(f"accs-lsp sandbox: writing {path!r} is not allowed")
        elif event in path_events:
            for path in args[:2]:
                if isinstance(path, path_like) and not inside(path):
                    raise PermissionError(f"accs-lsp sandbox: {event} on {path!r} is not allowed")

    return hook

sys.addaudithook(make_hook(os.path.realpath(os.getcwd())))
del make_hook
path = sys.argv[1]
sys.argv = sys.argv[1:]
with open(path, encoding="utf-8") as source:
    code = compile(source.read(), path, "exec")
main = types.ModuleType("__main__")
main.__file__ = path
sys.modules["__main__"] = main
exec(code, main.__dict__)
"""


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run_python(script: str, timeout_s: float, memory_mb: int = DEFAULT_MEMORY_MB) -> SandboxResult:
    """Run `script` as a file in an empty directory; the directory is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="accs-sandbox-") as directory:
        path = Path(directory) / "candidate.py"
        path.write_text(script, encoding="utf-8")
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": directory,
            "TMPDIR": directory,
            "PYTHONHASHSEED": "0",
            "no_proxy": "*",
        }
        process = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOTSTRAP, str(path)],
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _limit_resources(timeout_s, memory_mb),
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            stdout, stderr = b"", b""
        finally:
            _kill_group(process)
        if timed_out:
            process.communicate()
    return SandboxResult(
        None if timed_out else process.returncode,
        stdout[:MAX_OUTPUT_BYTES].decode(errors="replace"),
        stderr[:MAX_OUTPUT_BYTES].decode(errors="replace"),
        timed_out,
    )


def _limit_resources(timeout_s: float, memory_mb: int) -> None:
    """In the child, before exec: CPU seconds, address space, file size, open files."""
    import resource

    cpu_seconds = int(timeout_s) + 1
    memory = memory_mb << 20
    for limit, value in (
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_FSIZE, MAX_FILE_BYTES),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole process group, whatever it started and left behind."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
