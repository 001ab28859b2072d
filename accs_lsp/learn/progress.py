"""A progress callback for `ProjectStore.learn` that needs no CLI framework."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 20
REDRAW_INTERVAL_S = 0.05


def stderr_progress_bar(stream: TextIO | None = None) -> Callable[[int, int, str], None]:
    """`\\r[#####.....] 12/40 path` redrawn in place on a terminal (at most every 50 ms, so
    thousands of small files do not cost thousands of writes); on a pipe or log file, whose
    reader wants no carriage returns, only the final line."""
    out = stream if stream is not None else sys.stderr
    interactive = out.isatty()
    last_draw = [0.0]

    def report(done: int, total: int, path: str) -> None:
        finished = done >= total
        now = time.monotonic()
        if interactive and (finished or now - last_draw[0] >= REDRAW_INTERVAL_S):
            last_draw[0] = now
            width = shutil.get_terminal_size().columns - 1
            out.write("\r" + line(done, total, path, width) + "\x1b[K" + ("\n" if finished else ""))
            out.flush()
        elif finished:
            out.write(line(done, total, path) + "\n")
            out.flush()

    return report


def line(done: int, total: int, path: str, width: int | None = None) -> str:
    """The bar, the counts and as much of the path as fits in width: its end, where the
    file name is, since a wrapped line cannot be redrawn with `\\r`."""
    filled = BAR_WIDTH if total <= 0 else BAR_WIDTH * min(done, total) // total
    prefix = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} "
    if width is not None and len(prefix) + len(path) > width:
        room = width - len(prefix)
        path = "…" + path[len(path) - room + 1 :] if room > 1 else ""
    return (prefix + path).rstrip()


__all__ = ["stderr_progress_bar"]
