"""LSP features: document sync, inline and regular completion, settings, progress, feedback."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import re
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from accs_lsp import __version__
from accs_lsp.completion import Completion, CompletionOptions
from accs_lsp.documents import Document, DocumentStore, PositionError, Snapshot, TextChange
from accs_lsp.errors import one_line
from accs_lsp.learn.registry import ProjectStores, uri_path
from accs_lsp.models import ModelLoadError
from accs_lsp.models.remote import EngineError
from accs_lsp.server.learning import WorkspaceLearning, throttled
from accs_lsp.server.memory import release_freed_memory
from accs_lsp.server.model_slot import ModelSlot, ModelSpec, ModelSuperseded, ModelUnavailable, StopEvents, ready_message
from accs_lsp.server.stats import MemoryBudget, ServerStats, summary_line
from accs_lsp.server.suggestions import (
    BackgroundSlot,
    Fingerprint,
    Hit,
    LatestOnly,
    SeenIds,
    SuggestionCache,
    Ticket,
    warm_kv_cache,
)
from accs_lsp.server.transport import AccsProtocol
from accs_lsp.settings import Settings, SettingsError

if TYPE_CHECKING:
    from accs_lsp.completion.engine import CompletionEngine

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "accs/status"
DOCUMENT_STATE_REQUEST = "accs/documentState"
STATS_REQUEST = "accs/stats"
COMPLETION_KINDS = ("inline", "completion")
FEEDBACK_COMMAND = "accs.feedback"
SETTINGS_SECTION = "accs"
IDENTIFIER_TAIL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
REMEMBERED_COMPLETIONS = 256
REMEMBERED_FEEDBACK = 1024
MAX_FEEDBACK_ARGUMENTS = 32
MAX_COMPLETION_ID_LENGTH = 64
# Closing a document at least this large hands the freed memory back to the system.
LARGE_DOCUMENT_CHARACTERS = 1 << 20
# Requests that come together (a burst) wait this long before the model starts on one, so
# that only the newest of them runs.
BURST_WINDOW_S = 0.02
# Background work (prefetch, KV warm-up) starts once the editor has been quiet this long.
IDLE_BEFORE_BACKGROUND_S = 0.05
# Completions worth serving again from the cache: a stop that the same request would reach
# again (not a timeout or a cancellation).
REPEATABLE_STOPS = frozenset({"eos", "stop_rule", "max_tokens", "constraint_failed", "context_full"})


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed: the request was valid but the server could not answer it."""

    CODE = -32803


def answering_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A handler's unexpected exception becomes one RequestFailed line for the client (pygls
    would send the traceback in the error's data); the traceback goes to the server log."""

    def failed(error: Exception) -> RequestFailed:
        log.exception("%s failed", handler.__name__)
        return RequestFailed(f"accs-lsp: internal error in {handler.__name__}: {one_line(error, with_type=True)} (see the server log)")

    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def answer_async(*arguments: Any) -> Any:
            try:
                return await handler(*arguments)
            except (JsonRpcException, asyncio.CancelledError):
                raise
            except Exception as error:
                raise failed(error) from None

        return answer_async

    @functools.wraps(handler)
    def answer(*arguments: Any) -> Any:
        try:
            return handler(*arguments)
        except JsonRpcException:
            raise
        except Exception as error:
            raise failed(error) from None

    return answer


@dataclass(frozen=True)
class Served:
    """A completion as returned to the editor, kept so feedback can refer to it."""

    id: str
    uri: str
    completion: Completion


@dataclass
class Outcome:
    """What a request's generation gave, settled once (by the job's callback or the request)."""

    settled: bool = False
    served: Served | None = None


class AccsLanguageServer(LanguageServer):
    def __init__(self, model_path: str | None = None) -> None:
        super().__init__("accs-lsp", __version__, protocol_cls=AccsProtocol)
        self.model_path_override = model_path
        self.settings = Settings()
        self.documents = DocumentStore()
        self.projects = ProjectStores()
        self.learning = WorkspaceLearning(self.projects)
        self.model = ModelSlot(self.projects)
        self.stops = StopEvents()
        self.served: OrderedDict[str, Served] = OrderedDict()
        self.feedback: deque[dict[str, Any]] = deque(maxlen=REMEMBERED_FEEDBACK)
        self.warned: set[str] = set()
        self.suggestions = SuggestionCache()
        self.budget = MemoryBudget(self.settings.memory_limit_mb, self.suggestions)
        self.latest = LatestOnly()
        self.background = BackgroundSlot()
        self.stats = ServerStats()
        self.shown_ids = SeenIds()
        self.feedback_ids = SeenIds()
        # Requests that need the model thread now (background work yields to them).
        self.waiting = 0
        # The engine last used or loaded: its relaxation counts and grammar caches for stats.
        self.engine_seen: CompletionEngine | None = None

    # -- status and settings ------------------------------------------------------------

    def notify_status(self, state: str, message: str) -> None:
        self.protocol.notify(STATUS_NOTIFICATION, {"state": state, "message": message})

    def log_to_client(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        log.info(message)
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def warn_user(self, message: str) -> None:
        log.warning(message)
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))

    def warn_user_once(self, message: str | None) -> None:
        if message and message not in self.warned:
            self.warned.add(message)
            self.warn_user(f"accs-lsp: {message}")

    def apply_settings(self, changes: Any) -> bool:
        """Merge editor settings; a bad value is reported and the previous settings stay."""
        if not isinstance(changes, dict):
            return False
        section = changes.get(SETTINGS_SECTION, changes)
        if not isinstance(section, dict):
            return False
        try:
            settings, unknown = self.settings.updated(section)
        except SettingsError as error:
            self.warn_user(f"accs-lsp: ignored settings: {error}")
            return False
        previous_key, self.settings = self.suggestion_key(), settings
        if self.suggestion_key() != previous_key:  # suggestions computed under other settings
            self.suggestions.clear()
            self.background.cancel()
        if not settings.prefetch:
            self.background.cancel()
        self.budget.resize(settings.memory_limit_mb)
        if unknown:
            self.log_to_client(f"accs-lsp: unknown settings ignored: {', '.join(sorted(unknown))}", types.MessageType.Warning)
        return True

    # -- model ------------------------------------------------------------------------------

    async def load_model(self) -> None:
        """Load (or reload) the model in the background, with progress and status for the editor."""
        try:
            spec = ModelSpec.from_settings(self.settings, self.model_path_override)
        except ModelLoadError as error:
            self.report_model_error(str(error))
            return
        if spec == self.model.spec:
            return
        # Start loading before anything is awaited: a request arriving now must find the load under way.
        warm_type_provider = self.settings.type_provider if self.settings.constraints in ("types", "full") else None
        loading = self.model.load(spec, warm_type_provider)
        self.notify_status("loading", f"loading {spec.label}")
        progress = await self.begin_progress(f"Loading {spec.label.rsplit('/', 1)[-1]}")
        try:
            engine = await asyncio.wrap_future(loading)
        except ModelSuperseded:
            return  # the newer load reports for itself
        except ModelLoadError as error:
            self.report_model_error(str(error))
            return
        finally:
            self.end_progress(progress)
        self.engine_seen = engine
        message = ready_message(engine)
        self.log_to_client(message)
        self.notify_status("ready", message)

    def report_model_error(self, message: str) -> None:
        self.notify_status("error", message)
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=f"accs-lsp: {message}"))
        log.error(message)

    async def begin_progress(self, title: str) -> str | None:
        capabilities = self.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            return None
        token = f"accs-progress-{uuid.uuid4()}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception as error:  # the client refused a progress token: not worth failing the load
            log.debug("progress token refused: %s", error)
            return None
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))
        return token

    def report_progress(self, token: str | None, message: str, percentage: int) -> None:
        if token is not None:
            self.work_done_progress.report(token, types.WorkDoneProgressReport(message=message, percentage=percentage))

    async def learn_workspace(self) -> None:
        """Learn each workspace folder, one after the other, with work-done progress."""
        if not self.settings.learn_workspace:
            return
        loop = asyncio.get_running_loop()
        for root in self.workspace_roots():
            token = await self.begin_progress(f"Learning {root.name}")

            def report(message: str, percentage: int, token: str | None = token) -> None:
                loop.call_soon_threadsafe(self.report_progress, token, message, percentage)

            try:
                await self.learning.learn_folder(root, throttled(report))
            except Exception as error:  # learning is a help, never a reason to fail the session
                log.warning("could not learn %s: %s", root, one_line(error, with_type=True))
            finally:
                self.end_progress(token)

    def workspace_roots(self) -> list[Path]:
        uris = [folder.uri for folder in self.workspace.folders.values()] or [self.workspace.root_uri or ""]
        paths = [uri_path(uri) for uri in uris if uri]
        return [path for path in paths if path is not None and path.is_dir()]

    def end_progress(self, token: str | None) -> None:
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd())

    # -- completion -------------------------------------------------------------------------

    def completion_options(self) -> CompletionOptions:
        settings = self.settings
        return CompletionOptions(
            constraints=settings.constraints,
            max_tokens=settings.max_tokens,
            mode=settings.mode,
            timeout_ms=settings.timeout_ms,
            temperature=settings.temperature,
            type_provider=settings.type_provider,
            run_examples=settings.run_examples,
        )

    def snapshot_at(self, uri: str, position: types.Position) -> tuple[Snapshot, int]:
        if uri not in self.documents:
            raise JsonRpcInvalidParams(f"document is not open: {uri}")
        document = self.documents.get(uri)
        try:
            offset = document.offset_at(position.line, position.character)
        except PositionError as error:
            raise JsonRpcInvalidParams(f"invalid position: {error}") from None
        return document.snapshot(), offset

    def suggestion_key(self) -> Hashable:
        """What a suggestion depends on besides the document: a change of any of it invalidates
        the suggestions computed before."""
        # Every setting but those that change nothing in a completion.
        unrelated = {"enabled": True, "prefetch": True, "memory_limit_mb": 0, "model_load_timeout_ms": 0, "learn_workspace": True}
        return (self.completion_options(), replace(self.settings, **unrelated))

    async def complete(self, uri: str, position: types.Position, kind: str) -> tuple[Served, Snapshot, int] | None:
        """A suggestion at a position: the rest of the one the user is typing into (no model
        call), else a generation; None when disabled, cancelled, superseded or stale."""
        if not self.settings.enabled:
            return None
        began = time.perf_counter()
        snapshot, offset = self.snapshot_at(uri, position)
        key = f"{kind}:{uri}"
        ticket = self.latest.begin(key)
        cache_key = self.suggestion_key()
        served = self.from_cache(snapshot, offset, cache_key, began)
        if served is not None:
            self.after_serving(uri, snapshot, offset, served.completion.text, cache_key)
            return served, snapshot, offset
        self.stats.cache_misses += 1
        self.background.cancel()  # a real request: the prefetch or warm-up stops at once
        self.waiting += 1
        try:
            return await self.generate(snapshot, offset, kind, ticket, cache_key, began)
        finally:
            self.waiting -= 1

    def from_cache(self, snapshot: Snapshot, offset: int, cache_key: Hashable, began: float) -> Served | None:
        """The suggestion cache's answer; a failure there falls back to generating."""
        try:
            hit = self.suggestions.lookup(snapshot.uri, snapshot.text, offset, cache_key)
            return self.serve_hit(hit, began) if hit is not None else None
        except Exception:
            log.exception("the suggestion cache failed; generating instead")
            return None

    def serve_hit(self, hit: Hit, began: float) -> Served:
        """The rest of a suggestion, under the id it was first served with (feedback on it
        refers to the whole suggestion)."""
        original: Served = hit.suggestion.payload
        completion = original.completion
        served = Served(
            original.id,
            original.uri,
            replace(
                completion,
                text=hit.rest,
                latency_ms=round((time.perf_counter() - began) * 1000, 2),
                typed_alternatives=completion.typed_alternatives if not hit.typed else (),
            ),
        )
        if original.id not in self.served:
            self.remember(original)
        self.count_shown(served)
        source = "prefetch" if hit.origin == "prefetch" and hit.first else "cache"
        self.stats.record_latency(source, (time.perf_counter() - began) * 1000)
        log.debug("%s hit for %s: %d characters typed, %d served", source, original.uri, len(hit.typed), len(hit.rest))
        return served

    async def generate(
        self, snapshot: Snapshot, offset: int, kind: str, ticket: Ticket, cache_key: Hashable, began: float
    ) -> tuple[Served, Snapshot, int] | None:
        uri = snapshot.uri
        options = replace(self.completion_options(), typed_alternatives=kind == "completion")
        try:
            options.check()
            engine = await self.model.engine(self.settings.model_load_timeout_ms / 1000)
        except (ValueError, ModelUnavailable) as error:
            raise RequestFailed(f"accs-lsp: {one_line(error)}") from None
        self.engine_seen = engine
        # A burst of requests: the older ones answer empty at once, only the newest runs.
        await asyncio.wait({ticket.superseded}, timeout=BURST_WINDOW_S)
        if ticket.superseded.done():
            self.stats.superseded += 1
            return None
        key = ticket.key
        stop = self.stops.start(key, supersede=True)
        outcome = Outcome()

        def run(e: CompletionEngine) -> Completion | None:
            if not self.latest.is_newest(ticket):
                return None  # superseded while it waited for the model thread: not run
            self.stats.generations[kind] += 1
            return e.complete(snapshot, offset, options, stop)

        job = asyncio.ensure_future(self.model.run(run, engine))
        job.add_done_callback(lambda done: self.stops.finish(key, stop))
        job.add_done_callback(lambda done: self.log_completion(kind, done))
        job.add_done_callback(lambda done: self.settle(done, outcome, snapshot, offset, cache_key))
        try:
            await asyncio.wait({job, ticket.superseded}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            stop.set()  # the generation ends at its next token; its log line says so
            raise
        if ticket.superseded.done():
            stop.set()
            self.stats.superseded += 1
            return None
        try:
            completion = job.result()
        except ModelSuperseded:
            return None
        except EngineError as error:  # the remote engine is down or answered an error: one line
            log.warning("%s completion failed: %s", kind, error)
            raise RequestFailed(f"accs-lsp: {one_line(error)}") from None
        except Exception as error:
            log.error("generation failed", exc_info=error)
            raise RequestFailed(f"accs-lsp: generation failed: {one_line(error, with_type=True)}") from None
        self.warn_user_once(engine.type_provider_fallback)
        if completion is None:
            self.stats.superseded += 1
            return None
        if completion.stop_reason == "cancelled":
            return None
        if not self.documents.is_current(snapshot):
            log.debug("dropped a completion computed for version %s of %s", snapshot.version, uri)
            return None
        served = self.settle(job, outcome, snapshot, offset, cache_key) or Served(new_id(), uri, completion)
        self.remember(served)
        self.count_shown(served)
        self.stats.record_latency("fresh", (time.perf_counter() - began) * 1000)
        self.after_serving(uri, snapshot, offset, completion.text, cache_key)
        return served, snapshot, offset

    def settle(
        self, job: "asyncio.Future[Completion | None]", outcome: Outcome, snapshot: Snapshot, offset: int, cache_key: Hashable
    ) -> Served | None:
        """Once per generation, whether or not its request still waits: its figures, and its
        suggestion into the cache (a superseded request's result may still be typed into)."""
        if outcome.settled:
            return outcome.served
        outcome.settled = True
        if job.cancelled() or job.exception() is not None or job.result() is None:
            return None
        completion = job.result()
        assert completion is not None
        self.stats.record_generation(completion)
        if completion.stop_reason == "cancelled":
            self.stats.cancelled_generations += 1
            return None
        outcome.served = Served(new_id(), snapshot.uri, completion)
        if completion.stop_reason in REPEATABLE_STOPS and cache_key == self.suggestion_key() and snapshot.uri in self.documents:
            try:
                at = Fingerprint.of(snapshot.text, offset)
                self.suggestions.put(snapshot.uri, at, completion.text, cache_key, outcome.served, "fresh")
            except Exception:
                log.exception("could not keep a suggestion in the cache")
        return outcome.served

    def count_shown(self, served: Served) -> None:
        if served.completion.text and self.shown_ids.add(served.id):
            self.stats.shown += 1

    # -- background work: prefetch and KV warm-up --------------------------------------------

    def after_serving(self, uri: str, snapshot: Snapshot, offset: int, text: str, cache_key: Hashable) -> None:
        """Prefetch the suggestion after this one, as if it were accepted; never fails."""
        if not self.settings.prefetch or not text:
            return
        try:
            document = snapshot.text[:offset] + text + snapshot.text[offset:]
            cursor = offset + len(text)
            at = Fingerprint.of(document, cursor)
            target = (uri, at, cache_key)
            if self.suggestions.contains(uri, at, cache_key) or self.background.busy_with(target):
                return
            options = replace(self.completion_options(), typed_alternatives=False)  # served inline, mostly
            self.background.start("prefetch", target, lambda stop: self.prefetch(uri, document, cursor, at, options, cache_key, stop))
        except Exception:
            log.exception("could not start a prefetch")

    async def prefetch(
        self, uri: str, text: str, offset: int, at: Fingerprint, options: CompletionOptions, cache_key: Hashable, stop: Any
    ) -> None:
        await asyncio.sleep(IDLE_BEFORE_BACKGROUND_S)
        if self.waiting:
            self.stats.prefetches_skipped += 1
            return
        try:
            engine = await self.model.engine(1.0)
        except ModelUnavailable:
            return
        if not self.background.mark_running(stop):
            return
        encoding = self.documents.encoding

        def run(e: CompletionEngine) -> Completion | None:
            if stop.is_set() or self.waiting:
                return None
            self.stats.prefetches_started += 1
            return e.complete(Document(uri, text, -1, encoding).snapshot(), offset, options, stop)

        try:
            completion = await self.model.run(run, engine)
        except ModelSuperseded:
            return
        if completion is None:
            self.stats.prefetches_skipped += 1
            return
        self.stats.record_generation(completion)
        self.log_to_client(
            f"prefetched: {completion.tokens} tokens, stop={completion.stop_reason}, {completion.latency_ms:.0f} ms, "
            f"{completion.tokens_per_second:.1f} tok/s",
            types.MessageType.Log,
        )
        if completion.stop_reason == "cancelled":
            self.stats.prefetches_cancelled += 1
            return
        self.stats.prefetches_completed += 1
        if completion.stop_reason in REPEATABLE_STOPS and cache_key == self.suggestion_key() and uri in self.documents:
            self.suggestions.put(uri, at, completion.text, cache_key, Served(new_id(), uri, completion), "prefetch")

    def warm_up_document(self, uri: str) -> None:
        """On didOpen: evaluate the start of the document's prompt while the editor is idle."""
        if self.settings.prefetch:
            self.background.start("warm-up", ("warm-up", uri), lambda stop: self.warm_up(uri, stop))

    async def warm_up(self, uri: str, stop: Any) -> None:
        try:
            engine = await self.model.engine(self.settings.model_load_timeout_ms / 1000)
        except ModelUnavailable:
            return
        await asyncio.sleep(IDLE_BEFORE_BACKGROUND_S)
        if self.waiting or uri not in self.documents or not self.background.mark_running(stop):
            return
        snapshot, max_tokens, level = self.documents.get(uri).snapshot(), self.settings.max_tokens, self.settings.constraints

        def run(e: CompletionEngine) -> int:
            if stop.is_set() or self.waiting:
                return 0
            self.stats.warm_ups += 1
            text = e.prompt_context(snapshot, level, max_tokens) + snapshot.text
            return warm_kv_cache(e, text, max_tokens, lambda: stop.is_set() or self.waiting > 0)

        try:
            self.stats.warm_up_tokens += await self.model.run(run, engine)
        except ModelSuperseded:
            return

    # -- figures ----------------------------------------------------------------------------

    def stats_json(self) -> dict[str, Any]:
        engine = self.engine_seen
        figures = self.stats.to_json(self.suggestions, dict(engine.relaxation_counts) if engine is not None else None)
        figures["prefetch"]["enabled"] = self.settings.prefetch
        figures["prefetch"]["running"] = self.background.running and self.background.label == "prefetch"
        figures["memory"] = self.budget.to_json(grammar_cache_sizes(engine))
        figures["servedRemembered"] = len(self.served)
        figures["learnedProjects"] = [str(root) for root in self.projects.roots()]
        return figures

    def log_completion(self, kind: str, job: "asyncio.Future[Completion | None]") -> None:
        if not job.cancelled() and isinstance(job.exception(), ModelSuperseded):
            log.debug("%s completion not run: %s", kind, job.exception())
            return
        if job.cancelled() or job.exception() is not None:
            log.error("%s completion failed: %r", kind, None if job.cancelled() else job.exception())
            return
        completion = job.result()
        if completion is None:
            log.debug("%s completion not run: a newer request came first", kind)
            return
        constraints = completion.constraints + (f" ({completion.relaxed})" if completion.relaxed else "")
        self.log_to_client(
            f"{kind} completion: {completion.tokens} tokens, stop={completion.stop_reason}, "
            f"{completion.latency_ms:.0f} ms, prompt {completion.prompt_tokens} tokens "
            f"({completion.reused_prompt_tokens} reused), {completion.tokens_per_second:.1f} tok/s, "
            f"constraints {constraints}",
            types.MessageType.Log,
        )

    def remember(self, served: Served) -> Served:
        self.served[served.id] = served
        while len(self.served) > REMEMBERED_COMPLETIONS:
            self.served.popitem(last=False)
        return served

    def record_feedback(self, arguments: list[Any]) -> None:
        if len(arguments) > MAX_FEEDBACK_ARGUMENTS:
            raise JsonRpcInvalidParams(f"{FEEDBACK_COMMAND} takes at most {MAX_FEEDBACK_ARGUMENTS} entries, got {len(arguments)}")
        for argument in arguments:
            completion_id = argument.get("completionId") if isinstance(argument, dict) else None
            if not isinstance(completion_id, str) or len(completion_id) > MAX_COMPLETION_ID_LENGTH:
                raise JsonRpcInvalidParams(f"{FEEDBACK_COMMAND} expects {{completionId: string, accepted: boolean}}, got {one_line_repr(argument)}")
            served = self.served.get(completion_id)
            entry = {
                "completionId": completion_id,
                "accepted": bool(argument.get("accepted", True)),
                "known": served is not None,
                "text": served.completion.text if served else None,
            }
            self.feedback.append(entry)
            if served is not None:
                self.learning.feedback(served.uri, served.completion.text, entry["accepted"])
            if served is not None and self.feedback_ids.add(completion_id):
                if entry["accepted"]:
                    self.stats.accepted += 1
                else:
                    self.stats.dismissed += 1
            log.info("feedback: %s %s", completion_id, "accepted" if entry["accepted"] else "dismissed")
            log.debug("feedback text: %r", entry["text"])


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def grammar_cache_sizes(engine: "CompletionEngine | None") -> dict[str, Any]:
    """Entries of the engine's compiled-grammar caches (their bytes are not known), without
    building them: the engine exposes no size, so this reads what is there."""
    sizes: dict[str, Any] = {}
    for name, attribute in (("syntax", "_grammars"), ("types", "_type_grammars")):
        cache = getattr(engine, attribute, None)
        compiled = getattr(cache, "_compiled", None)
        sizes[name] = {"entries": len(compiled), "kept": getattr(cache, "kept", None)} if compiled is not None else None
    return sizes


def field_of(value: Any, name: str) -> Any:
    """A field of a custom request's params, which pygls gives as an object (or a dict)."""
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def one_line_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def feedback_command(served: Served, accepted: bool = True) -> types.Command:
    return types.Command(
        title="accs-lsp: completion accepted",
        command=FEEDBACK_COMMAND,
        arguments=[{"completionId": served.id, "accepted": accepted}],
    )


def inline_items(served: Served, position: types.Position) -> types.InlineCompletionList:
    text = served.completion.text
    if not text:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=text,
        range=types.Range(start=position, end=position),
        command=feedback_command(served),
    )
    return types.InlineCompletionList(items=[item])


def completion_items(served: Served, snapshot: Snapshot, offset: int, position: types.Position) -> types.CompletionList:
    """One item that replaces the identifier being typed, so clients' prefix filtering keeps it."""
    text = served.completion.text
    if not text:
        return types.CompletionList(is_incomplete=False, items=typed_items(served, position))
    line_start = snapshot.lines.line_starts[snapshot.lines.line_of(offset)]
    typed = IDENTIFIER_TAIL.search(snapshot.text[line_start:offset])
    typed_text = typed.group(0) if typed else ""
    start_line, start_character = snapshot.lines.position_at(offset - len(typed_text))
    new_text = typed_text + text
    first_line = new_text.split("\n", 1)[0]
    item = types.CompletionItem(
        label=first_line if len(first_line) <= 60 else first_line[:57] + "...",
        kind=types.CompletionItemKind.Snippet,
        detail=f"accs-lsp · {served.completion.model} · {served.completion.latency_ms:.0f} ms",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```python\n{new_text}\n```"),
        filter_text=new_text,
        sort_text="0",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(
            range=types.Range(start=types.Position(start_line, start_character), end=position),
            new_text=new_text,
        ),
        command=feedback_command(served),
    )
    return types.CompletionList(is_incomplete=False, items=[item, *typed_items(served, position)])


def typed_items(served: Served, position: types.Position) -> list[types.CompletionItem]:
    """Expressions of the expected type from the inhabitation search, after the model's item."""
    expected = served.completion.expected_type
    return [
        types.CompletionItem(
            label=text,
            kind=types.CompletionItemKind.Value,
            detail=f"accs-lsp · inhabits {expected}",
            sort_text=f"1{rank:02d}",
            text_edit=types.TextEdit(range=types.Range(start=position, end=position), new_text=text),
        )
        for rank, text in enumerate(served.completion.typed_alternatives)
    ]


def lsp_changes(params: types.DidChangeTextDocumentParams) -> list[TextChange]:
    changes = []
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            changes.append(TextChange(change.text, ((start.line, start.character), (end.line, end.character))))
        else:
            changes.append(TextChange(change.text))
    return changes


def create_server(model_path: str | None = None) -> AccsLanguageServer:
    server = AccsLanguageServer(model_path)

    @server.feature(types.INITIALIZE)
    @answering_errors
    def initialize(ls: AccsLanguageServer, params: types.InitializeParams) -> None:
        ls.apply_settings(params.initialization_options)
        encoding = ls.workspace.position_encoding or types.PositionEncodingKind.Utf16
        ls.documents.encoding = getattr(encoding, "value", encoding)

    @server.feature(types.INITIALIZED)
    @answering_errors
    async def initialized(ls: AccsLanguageServer, params: types.InitializedParams) -> None:
        learning = asyncio.ensure_future(ls.learn_workspace())  # beside the model's load, on its own thread
        await ls.load_model()
        await learning

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @answering_errors
    async def did_change_configuration(ls: AccsLanguageServer, params: types.DidChangeConfigurationParams) -> None:
        changed = ls.apply_settings(params.settings)
        if not changed and ls.client_capabilities.workspace and ls.client_capabilities.workspace.configuration:
            pulled = await ls.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SETTINGS_SECTION)])
            )
            if pulled:
                ls.apply_settings(pulled[0])
        await ls.load_model()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @answering_errors
    def did_open(ls: AccsLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        document = params.text_document
        ls.documents.open(document.uri, document.text, document.version)
        ls.warm_up_document(document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @answering_errors
    def did_change(ls: AccsLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if uri not in ls.documents:
            log.warning("change for a document that is not open: %s", uri)
            return
        try:
            ls.documents.change(uri, lsp_changes(params), params.text_document.version)
        except PositionError as error:
            # The editor and the server disagree on the text: ask for a resync rather than guess.
            ls.warn_user(f"accs-lsp: lost sync with {uri} ({error}); reopen the file")
            ls.documents.close(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @answering_errors
    def did_close(ls: AccsLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        large = uri in ls.documents and len(ls.documents.get(uri).text) >= LARGE_DOCUMENT_CHARACTERS
        ls.documents.close(uri)
        ls.suggestions.drop(uri)
        for kind in COMPLETION_KINDS:
            ls.latest.forget(f"{kind}:{uri}")
        target = ls.background.target
        if isinstance(target, tuple) and (target[0] == uri or target == ("warm-up", uri)):
            ls.background.cancel()
        if large:
            release_freed_memory()

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    @answering_errors
    async def did_save(ls: AccsLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        if ls.settings.learn_workspace:
            await ls.learning.learn_saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    @answering_errors
    async def inline_completion(
        ls: AccsLanguageServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        result = await ls.complete(params.text_document.uri, params.position, "inline")
        if result is None:
            return types.InlineCompletionList(items=[])
        served, _, _ = result
        return inline_items(served, params.position)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["."]))
    @answering_errors
    async def completion(ls: AccsLanguageServer, params: types.CompletionParams) -> types.CompletionList:
        result = await ls.complete(params.text_document.uri, params.position, "completion")
        if result is None:
            return types.CompletionList(is_incomplete=False, items=[])
        served, snapshot, offset = result
        return completion_items(served, snapshot, offset, params.position)

    @server.feature(DOCUMENT_STATE_REQUEST)
    @answering_errors
    def document_state(ls: AccsLanguageServer, params: Any) -> dict[str, Any]:
        """What the server holds of a document, for a client to check that it is in sync."""
        uri = field_of(field_of(params, "textDocument"), "uri")
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams(f"{DOCUMENT_STATE_REQUEST} expects {{textDocument: {{uri}}}}")
        if uri not in ls.documents:
            return {"uri": uri, "open": False}
        document = ls.documents.get(uri)
        return {
            "uri": uri,
            "open": True,
            "version": document.version,
            "lineCount": document.lines.line_count,
            "sha256": hashlib.sha256(document.text.encode("utf-8")).hexdigest(),
        }

    @server.feature(STATS_REQUEST)
    @answering_errors
    def stats(ls: AccsLanguageServer, params: Any) -> dict[str, Any]:
        """The session's figures: generations, cache and prefetch hits, speed, memory."""
        return ls.stats_json()

    @server.command(FEEDBACK_COMMAND)
    @answering_errors
    def feedback(ls: AccsLanguageServer, *arguments: Any) -> None:
        ls.record_feedback(list(arguments))

    @server.feature(types.SHUTDOWN)
    @answering_errors
    async def shutdown(ls: AccsLanguageServer, *args: Any) -> None:
        try:
            ls.log_to_client(summary_line(ls.stats_json()), types.MessageType.Log)
        except Exception:
            log.exception("could not sum up the session")
        ls.background.cancel()
        ls.stops.stop_all()
        await asyncio.get_running_loop().run_in_executor(None, ls.model.shutdown)
        ls.learning.close()
        ls.projects.close()

    return server
