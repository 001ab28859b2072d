"""The server's side of the contextual layer: learn the workspace folders in the background,
relearn a file when it is saved, and pass the user's feedback on to the project's store.

Learning runs on a thread of its own (never the model's), one folder at a time; a folder
learned before rereads only the files that changed. A store that cannot be opened (a
read-only cache directory) turns learning off for that folder with the store's warning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path
from typing import Callable

from accs_lsp.learn.registry import ProjectStores, uri_path
from accs_lsp.learn.store import LearnReport

log = logging.getLogger(__name__)

#: Progress is reported when it has moved by at least this many percent.
PROGRESS_STEP_PERCENT = 5

Progress = Callable[[int, int, str], None]


class WorkspaceLearning:
    def __init__(self, projects: ProjectStores) -> None:
        self.projects = projects
        self._lock = asyncio.Lock()  # one learning run at a time
        # Feedback is written off the event loop: the store may be busy with a learning batch.
        self._writes = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="accs-feedback")

    async def learn_folder(self, root: Path, progress: Progress | None = None) -> LearnReport | None:
        async with self._lock:
            return await asyncio.to_thread(self._learn, root, progress, None)

    async def learn_saved(self, uri: str) -> None:
        """Relearn a saved file, when it belongs to a learned project."""
        path = uri_path(uri)
        store = self.projects.for_uri(uri)
        if path is None or store is None or path.suffix != ".py":
            return
        async with self._lock:
            await asyncio.to_thread(self._learn, store.root, None, [path])

    def feedback(self, uri: str, text: str, accepted: bool) -> None:
        """Pass feedback on to the store of the file's project, in the background."""
        if text.strip():
            self._writes.submit(self._record_feedback, uri, text, accepted)

    def close(self) -> None:
        self._writes.shutdown(wait=True)

    def _record_feedback(self, uri: str, text: str, accepted: bool) -> None:
        store = self.projects.for_uri(uri)
        if store is None:
            return
        store.record_feedback(text, accepted)
        self.projects.changed(store)

    def _learn(self, root: Path, progress: Progress | None, paths: list[Path] | None) -> LearnReport | None:
        store = self.projects.open_root(root)
        if store is None:
            return None
        report = store.learn(paths, progress=progress)
        self.projects.changed(store)
        log.info(
            "learned %s: %d files, %d read, %d removed in %.1f s",
            root, report.files_seen, report.files_read, report.files_removed, report.seconds,
        )
        return report


def throttled(report: Callable[[str, int], None]) -> Progress:
    """A progress callback that passes on (message, percentage) only when the percentage has
    moved by PROGRESS_STEP_PERCENT (a big project has thousands of files)."""
    last = [-PROGRESS_STEP_PERCENT]

    def progress(done: int, total: int, path: str) -> None:
        percentage = 100 * done // total if total else 100
        if percentage - last[0] >= PROGRESS_STEP_PERCENT or done == total:
            last[0] = percentage
            report(f"{done}/{total} {path}", percentage)

    return progress
