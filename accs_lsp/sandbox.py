"""Run untrusted Python (a model's candidate with its tests) so that it harms nothing.

The code runs in a fresh `python -I` process in an empty temporary directory, in a process
group of its own that is killed as a whole at the deadline (nothing it starts outlives
it). Before the code runs, the child's bootstrap moves itself into new user and network
namespaces where the kernel allows it (then it has no network at all, not even loopback;
where it does not, it goes on without), puts itself under CPU-time, address-space,
file-size and open-file limits, and installs an audit hook (which the code cannot remove)
that refuses what it has no business doing: writing, deleting or renaming outside its
directory, starting processes, network connections, raising its limits. Its output goes
to files beside its directory, bounded by the file-size limit, so a candidate that prints
without end costs this process nothing. This is a guard against accidents and careless
code, not a container.

Everything is set up in the child, none in a `preexec_fn`: the server may call this from
several threads at once (`run_many`), and without a `preexec_fn` `subprocess` can spawn
with vfork, which stays cheap when the parent holds a model in memory.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

DEFAULT_MEMORY_MB = 1024
MAX_OUTPUT_BYTES = 1 << 20
MAX_FILE_BYTES = 16 << 20
MAX_PARALLEL = 4

# Runs first in the child: namespaces, limits, the audit hook, then the candidate's file.
BOOTSTRAP = r"""
import os, sys, types

def isolate_network():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x40000000)
    except Exception:
        pass

def limit(cpu_seconds, memory_bytes, file_bytes):
    import resource
    for which, value in ((resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_AS, memory_bytes),
            (resource.RLIMIT_FSIZE, file_bytes), (resource.RLIMIT_NOFILE, 256), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))

def make_hook(root):
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = frozenset({"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
        "os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move"})
    refused = frozenset({"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "subprocess.Popen", "socket.connect", "socket.bind", "socket.sendto", "pty.spawn",
        "os.kill", "os.killpg", "ctypes.dlopen", "resource.setrlimit", "resource.prlimit"})
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

path, cpu_seconds, memory_bytes, file_bytes = sys.argv[1], *map(int, sys.argv[2:5])
sys.argv = [path]
isolate_network()
limit(cpu_seconds, memory_bytes, file_bytes)
sys.addaudithook(make_hook(os.path.realpath(os.getcwd())))
del isolate_network, limit, make_hook
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
        work = Path(directory) / "work"
        work.mkdir()
        path = work / "candidate.py"
        path.write_text(script, encoding="utf-8")
        stdout_path, stderr_path = Path(directory) / "stdout", Path(directory) / "stderr"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                _command(path, timeout_s, memory_mb),
                cwd=work,
                env=_environment(work),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        timed_out = _wait(process, timeout_s)
        return SandboxResult(
            None if timed_out else process.returncode,
            _head(stdout_path),
            _head(stderr_path),
            timed_out,
        )


def run_many(
    scripts: Sequence[str],
    timeout_s: float,
    memory_mb: int = DEFAULT_MEMORY_MB,
    parallel: int = MAX_PARALLEL,
) -> list[SandboxResult]:
    """`run_python` on each script, `parallel` processes at a time, results in order: one
    that hangs costs its own timeout and delays none of the others beyond it."""
    if not scripts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(scripts)))) as pool:
        return list(pool.map(lambda script: run_python(script, timeout_s, memory_mb), scripts))


def _command(path: Path, timeout_s: float, memory_mb: int) -> list[str]:
    cpu_seconds = int(timeout_s) + 1
    limits = (cpu_seconds, memory_mb << 20, MAX_FILE_BYTES)
    return [sys.executable, "-I", "-c", BOOTSTRAP, str(path), *map(str, limits)]


def _environment(work: Path) -> dict[str, str]:
    """A bare environment; numerical libraries kept to one thread, which their address
    space reservations under the memory limit need."""
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "TMPDIR": str(work),
        "PYTHONHASHSEED": "0",
        "no_proxy": "*",
        **threads,
    }


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for the child up to the deadline, then kill its group; whether it timed out."""
    try:
        timed_out = not _exited_within(process, timeout_s)
    finally:
        _kill_group(process)
    process.wait()
    return timed_out


def _exited_within(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether the child exits before the deadline (not reaped yet, so its group can still
    be killed). A pidfd wakes at the exit; `Popen.wait`'s polling, where there is none,
    sleeps up to 50 ms past it."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        try:
            process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout_s * 1000))))
    finally:
        os.close(pidfd)


def _head(path: Path) -> str:
    with path.open("rb") as output:
        return output.read(MAX_OUTPUT_BYTES).decode(errors="replace")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the child's whole process group, whatever it started and left behind."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
