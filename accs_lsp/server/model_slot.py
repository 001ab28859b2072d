"""The model behind the server: loaded in the background, replaced when its settings change.

Loading, warm-up and generation share one worker thread, so a llama.cpp context is
never touched by two threads, a reload waits for the generation in progress, and no job
runs on a model that a later load has closed.
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


class ModelSuperseded(ModelUnavailable):
    """A newer load replaced the engine a job was meant for; the job did not run."""


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
    """Every touch of llama.cpp (load, warm-up, generation, close) runs on one worker thread,
    in order; `_current` is read and written only there. A load queued behind another makes
    the earlier one superseded: it is skipped if it has not started, and a job that reaches
    the worker for an engine that is no longer current is refused instead of running on a
    closed model."""

    def __init__(self) -> None:
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="accs-model")
        self._engine: concurrent.futures.Future[CompletionEngine] | None = None
        self._current: CompletionEngine | None = None
        self._generation = 0
        self.spec: ModelSpec | None = None

    @property
    def loading(self) -> bool:
        return self._engine is not None and not self._engine.done()

    def load(self, spec: ModelSpec, warm_type_provider: str | None = None) -> concurrent.futures.Future[CompletionEngine]:
        """Queue loading `spec` and warming it up (a no-op when it is already the current one).
        `warm_type_provider`: the type provider whose stubs and member tables to load too."""
        if self._engine is not None and spec == self.spec:
            return self._engine
        self._generation += 1
        self.spec = spec
        self._engine = self._worker.submit(self._load, spec, self._generation, warm_type_provider)
        return self._engine

    def _load(self, spec: ModelSpec, generation: int, warm_type_provider: str | None) -> CompletionEngine:
        if generation != self._generation:
            raise ModelSuperseded("a newer model load replaced this one")
        self._close_current()
        from accs_lsp.completion.engine import CompletionEngine  # numpy and llama.cpp load here, off the event loop
        from accs_lsp.models import LlamaModel

        model = LlamaModel.load(spec.path, n_ctx=spec.context_window, n_threads=spec.threads or None)
        self._current = CompletionEngine(model, spec.context_tokens)
        if generation == self._generation:  # no newer load waits behind this one
            self._current.warm_up(warm_type_provider)
        return self._current

    def _close_current(self) -> None:
        if self._current is not None:
            engine, self._current = self._current, None
            engine.close()
            engine.model.close()

    async def engine(self, wait_seconds: float) -> CompletionEngine:
        """The newest engine, waiting up to `wait_seconds` for loads in progress."""
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            pending = self._engine
            if pending is None:
                raise ModelUnavailable("no model has been loaded")
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                engine = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)), max(remaining, 0))
            except asyncio.TimeoutError:
                raise ModelUnavailable(f"the model is still loading after {wait_seconds:.0f} s") from None
            except ModelSuperseded:
                continue
            except Exception as error:  # the load failed: its message names the path
                if pending is not self._engine:
                    continue
                raise ModelUnavailable(str(error)) from None
            if pending is self._engine:
                return engine

    async def run(self, job: Callable[[CompletionEngine], T], engine: CompletionEngine) -> T:
        """Run `job` on the model's thread, unless `engine` was replaced before its turn came."""

        def guarded() -> T:
            if engine is not self._current:
                raise ModelSuperseded("the model was reloaded while this request waited")
            return job(engine)

        return await asyncio.get_running_loop().run_in_executor(self._worker, guarded)

    def shutdown(self) -> None:
        """Drop the queued jobs, wait for the running one, and close the engine (its
        basedpyright process too). Blocks: call it off the event loop."""
        self._generation += 1
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._close_current()


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

    def stop_all(self) -> None:
        for events in self._events.values():
            for event in events:
                event.set()

    def finish(self, key: str, event: threading.Event) -> None:
        events = self._events.get(key, [])
        if event in events:
            events.remove(event)
        if not events:
            self._events.pop(key, None)
