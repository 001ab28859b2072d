"""The model behind the server: loaded in the background, replaced when its settings change.

Loading and generation share one worker thread, so a llama.cpp context is never
touched by two threads and a reload waits for the generation in progress.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TypeVar

from accs_lsp.models import resolve_model_path
from accs_lsp.settings import Settings

if TYPE_CHECKING:
    from accs_lsp.completion.engine import CompletionEngine

T = TypeVar("T")


class ModelUnavailable(RuntimeError):
    """No model to complete with: still loading past the wait limit, or failed to load."""


@dataclass(frozen=True)
class ModelSpec:
    """What identifies a loaded model: changing any of these reloads it."""

    path: str
    context_window: int
    threads: int
    context_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings, override_path: str | None) -> "ModelSpec":
        path = resolve_model_path(settings.model_path or override_path)
        return cls(str(path), settings.context_window, settings.threads, settings.context_tokens)


class ModelSlot:
    def __init__(self) -> None:
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="accs-model")
        self._engine: concurrent.futures.Future[CompletionEngine] | None = None
        self.spec: ModelSpec | None = None
        # The type provider whose stubs and member tables the warm-up loads (constraints "types").
        self.warm_type_provider: str | None = None

    @property
    def loading(self) -> bool:
        return self._engine is not None and not self._engine.done()

    def load(self, spec: ModelSpec) -> concurrent.futures.Future[CompletionEngine]:
        """Start loading `spec` on the worker thread (a no-op when it is already the current one)."""
        if self._engine is not None and spec == self.spec:
            return self._engine
        previous = self._engine
        self.spec = spec
        self._engine = self._worker.submit(self._load, spec, previous)
        self._engine.add_done_callback(self._warm_up)
        return self._engine

    def _warm_up(self, loaded: concurrent.futures.Future[CompletionEngine]) -> None:
        """Once the model is ready, prepare the grammar layer on the worker, before any request queued after it."""
        if not loaded.cancelled() and loaded.exception() is None:
            self._worker.submit(loaded.result().warm_up, self.warm_type_provider)

    @staticmethod
    def _load(spec: ModelSpec, previous: concurrent.futures.Future[CompletionEngine] | None) -> CompletionEngine:
        if previous is not None and previous.done() and previous.exception() is None:
            previous.result().model.close()
        from accs_lsp.completion.engine import CompletionEngine  # numpy and llama.cpp load here, off the event loop
        from accs_lsp.models import LlamaModel

        model = LlamaModel.load(spec.path, n_ctx=spec.context_window, n_threads=spec.threads or None)
        return CompletionEngine(model, spec.context_tokens)

    async def engine(self, wait_seconds: float) -> CompletionEngine:
        """The loaded engine, waiting up to `wait_seconds` for a load in progress."""
        if self._engine is None:
            raise ModelUnavailable("no model has been loaded")
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._engine)), wait_seconds)
        except asyncio.TimeoutError:
            raise ModelUnavailable(f"the model is still loading after {wait_seconds:.0f} s") from None
        except Exception as error:  # the load failed: its message names the path
            raise ModelUnavailable(str(error)) from None

    async def run(self, job: Callable[[CompletionEngine], T], engine: CompletionEngine) -> T:
        """Run `job` on the model's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, job, engine)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


class StopEvents:
    """Stop flags of the generations in flight, so a newer request can stop older ones."""

    def __init__(self) -> None:
        self._events: dict[str, list[threading.Event]] = {}

    def start(self, key: str, supersede: bool) -> threading.Event:
        if supersede:
            for event in self._events.get(key, []):
                event.set()
        event = threading.Event()
        self._events.setdefault(key, []).append(event)
        return event

    def finish(self, key: str, event: threading.Event) -> None:
        events = self._events.get(key, [])
        if event in events:
            events.remove(event)
        if not events:
            self._events.pop(key, None)
