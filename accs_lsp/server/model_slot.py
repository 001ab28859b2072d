"""The model behind the server: loaded in the background, replaced when its settings change.

Loading, warm-up and generation share one worker thread, so a llama.cpp context is
never touched by two threads, a reload waits for the generation in progress, and no job
runs on a model that a later load has closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TypeVar

from accs_lsp.models import ModelLoadError, resolve_model_path
from accs_lsp.settings import Settings

if TYPE_CHECKING:
    from accs_lsp.learn.registry import ProjectStores
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
    # A remote engine to decode on (settings `engine`...): `path` is then only the vocabulary
    # the layers check the engine's text with, loaded without weights ("" for none).
    engine: str = ""
    engine_mode: str = "auto"
    engine_kind: str = "auto"
    engine_model: str = ""
    engine_candidates: int = 4

    @classmethod
    def from_settings(cls, settings: Settings, override_path: str | None) -> "ModelSpec":
        from accs_lsp.models.remote import ENGINE_ENV_VAR, parse_engine_url

        engine = settings.engine or os.environ.get(ENGINE_ENV_VAR, "")
        if engine:
            try:
                parse_engine_url(engine)
            except ValueError as error:  # $ACCS_ENGINE is not checked as the setting is
                raise ModelLoadError(f"engine: {error}") from None
            path = ""
            if settings.constraints != "none":  # a layer needs the vocabulary
                try:
                    path = str(resolve_model_path(settings.model_path or override_path))
                except ModelLoadError:
                    path = ""
            return cls(
                path, settings.context_window, settings.threads, settings.context_tokens, engine,
                settings.engine_mode, settings.engine_kind, settings.engine_model, settings.engine_candidates,
            )
        path = resolve_model_path(settings.model_path or override_path)
        return cls(str(path), settings.context_window, settings.threads, settings.context_tokens)

    @property
    def label(self) -> str:
        """What is loaded, for the editor: the engine's URL (no credentials) or the model file."""
        if self.engine:
            from accs_lsp.models.remote import parse_engine_url

            return f"engine {parse_engine_url(self.engine).display}"
        return self.path


class ModelSlot:
    """Every touch of llama.cpp (load, warm-up, generation, close) runs on one worker thread,
    in order; `_current` is read and written only there. A load queued behind another makes
    the earlier one superseded: it is skipped if it has not started, and a job that reaches
    the worker for an engine that is no longer current is refused instead of running on a
    closed model."""

    def __init__(self, projects: "ProjectStores | None" = None) -> None:
        """`projects`: the learned stores every engine loaded here reads (constraints full)."""
        self.projects = projects
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

        if spec.engine:
            self._current = remote_completion_engine(spec, self.projects)
            if generation == self._generation and self._current.model is not None:
                self._current.warm_up(warm_type_provider)
            return self._current
        model = LlamaModel.load(spec.path, n_ctx=spec.context_window, n_threads=spec.threads or None)
        self._current = CompletionEngine(model, spec.context_tokens, projects=self.projects)
        if generation == self._generation:  # no newer load waits behind this one
            self._current.warm_up(warm_type_provider)
        return self._current

    def _close_current(self) -> None:
        if self._current is not None:
            engine, self._current = self._current, None
            engine.close()
            if engine.model is not None:
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


def remote_completion_engine(spec: ModelSpec, projects: "ProjectStores | None" = None) -> CompletionEngine:
    """An engine that decodes on `spec.engine`; nothing is asked of it until the first
    completion, so an engine that is down makes requests fail, not the load."""
    import logging

    from accs_lsp.completion.engine import CompletionEngine
    from accs_lsp.models.remote import RemoteEngine
    from accs_lsp.models.remote.vocabulary import load_vocabulary

    try:
        remote = RemoteEngine(spec.engine, spec.engine_kind, spec.engine_mode, spec.engine_model, spec.engine_candidates)
    except ValueError as error:
        raise ModelLoadError(f"engine: {error}") from None  # the URL may hold credentials: not repeated
    vocabulary = None
    if spec.path:
        try:
            vocabulary = load_vocabulary(spec.path)
        except ModelLoadError as error:
            logging.getLogger(__name__).warning("no local vocabulary for the engine's text (%s): only the parse checks it", error)
    return CompletionEngine(vocabulary, spec.context_tokens, remote=remote, projects=projects)


def ready_message(engine: CompletionEngine) -> str:
    """What the editor is told once the model (or the engine's vocabulary) is loaded."""
    model = engine.model
    if engine.remote is not None:
        checks = f"its text checked with the vocabulary of {model.name}" if model is not None else "no local vocabulary: only the parse checks its text"
        return f"model ready: engine {engine.remote.display} ({checks})"
    assert model is not None
    return f"model ready: {model.name} ({model.n_vocab} tokens, loaded in {model.load_seconds:.2f} s)"


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
