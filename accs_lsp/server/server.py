"""LSP features: document sync, inline and regular completion, settings, progress, feedback."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import re
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from accs_lsp import __version__
from accs_lsp.completion import Completion, CompletionOptions
from accs_lsp.documents import DocumentStore, PositionError, Snapshot, TextChange
from accs_lsp.errors import one_line
from accs_lsp.models import ModelLoadError
from accs_lsp.server.memory import release_freed_memory
from accs_lsp.server.model_slot import ModelSlot, ModelSpec, ModelSuperseded, ModelUnavailable, StopEvents
from accs_lsp.server.transport import AccsProtocol
from accs_lsp.settings import Settings, SettingsError

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "accs/status"
DOCUMENT_STATE_REQUEST = "accs/documentState"
FEEDBACK_COMMAND = "accs.feedback"
SETTINGS_SECTION = "accs"
IDENTIFIER_TAIL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
REMEMBERED_COMPLETIONS = 256
REMEMBERED_FEEDBACK = 1024
MAX_FEEDBACK_ARGUMENTS = 32
MAX_COMPLETION_ID_LENGTH = 64
# Closing a document at least this large hands the freed memory back to the system.
LARGE_DOCUMENT_CHARACTERS = 1 << 20


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


class AccsLanguageServer(LanguageServer):
    def __init__(self, model_path: str | None = None) -> None:
        super().__init__("accs-lsp", __version__, protocol_cls=AccsProtocol)
        self.model_path_override = model_path
        self.settings = Settings()
        self.documents = DocumentStore()
        self.model = ModelSlot()
        self.stops = StopEvents()
        self.served: OrderedDict[str, Served] = OrderedDict()
        self.feedback: deque[dict[str, Any]] = deque(maxlen=REMEMBERED_FEEDBACK)
        self.warned: set[str] = set()

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
            self.settings, unknown = self.settings.updated(section)
        except SettingsError as error:
            self.warn_user(f"accs-lsp: ignored settings: {error}")
            return False
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
        warm_type_provider = self.settings.type_provider if self.settings.constraints == "types" else None
        loading = self.model.load(spec, warm_type_provider)
        self.notify_status("loading", f"loading {spec.path}")
        progress = await self.begin_progress(f"Loading {spec.path.rsplit('/', 1)[-1]}")
        try:
            engine = await asyncio.wrap_future(loading)
        except ModelSuperseded:
            return  # the newer load reports for itself
        except ModelLoadError as error:
            self.report_model_error(str(error))
            return
        finally:
            self.end_progress(progress)
        message = f"model ready: {engine.model.name} ({engine.model.n_vocab} tokens, loaded in {engine.model.load_seconds:.2f} s)"
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
        token = f"accs-load-{uuid.uuid4()}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception as error:  # the client refused a progress token: not worth failing the load
            log.debug("progress token refused: %s", error)
            return None
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))
        return token

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

    async def complete(self, uri: str, position: types.Position, kind: str) -> tuple[Served, Snapshot, int] | None:
        """Generate at a position; None when disabled, cancelled, superseded or stale."""
        if not self.settings.enabled:
            return None
        snapshot, offset = self.snapshot_at(uri, position)
        options = self.completion_options()
        try:
            options.check()
            engine = await self.model.engine(self.settings.model_load_timeout_ms / 1000)
        except (ValueError, ModelUnavailable) as error:
            raise RequestFailed(f"accs-lsp: {one_line(error)}") from None
        key = f"{kind}:{uri}"
        stop = self.stops.start(key, supersede=True)
        job = asyncio.ensure_future(self.model.run(lambda e: e.complete(snapshot, offset, options, stop), engine))
        job.add_done_callback(lambda done: self.stops.finish(key, stop))
        job.add_done_callback(lambda done: self.log_completion(kind, done))
        try:
            completion = await asyncio.shield(job)
        except asyncio.CancelledError:
            stop.set()  # the generation ends at its next token; its log line says so
            raise
        except ModelSuperseded:
            return None
        except Exception as error:
            log.error("generation failed", exc_info=error)
            raise RequestFailed(f"accs-lsp: generation failed: {one_line(error, with_type=True)}") from None
        self.warn_user_once(engine.type_provider_fallback)
        if completion.stop_reason == "cancelled":
            return None
        if not self.documents.is_current(snapshot):
            log.debug("dropped a completion computed for version %s of %s", snapshot.version, uri)
            return None
        return self.remember(uri, completion), snapshot, offset

    def log_completion(self, kind: str, job: "asyncio.Future[Completion]") -> None:
        if not job.cancelled() and isinstance(job.exception(), ModelSuperseded):
            log.debug("%s completion not run: %s", kind, job.exception())
            return
        if job.cancelled() or job.exception() is not None:
            log.error("%s completion failed: %r", kind, None if job.cancelled() else job.exception())
            return
        completion = job.result()
        constraints = completion.constraints + (f" ({completion.relaxed})" if completion.relaxed else "")
        self.log_to_client(
            f"{kind} completion: {completion.tokens} tokens, stop={completion.stop_reason}, "
            f"{completion.latency_ms:.0f} ms, prompt {completion.prompt_tokens} tokens "
            f"({completion.reused_prompt_tokens} reused), {completion.tokens_per_second:.1f} tok/s, "
            f"constraints {constraints}",
            types.MessageType.Log,
        )

    def remember(self, uri: str, completion: Completion) -> Served:
        served = Served(uuid.uuid4().hex[:12], uri, completion)
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
            log.info("feedback: %s %s", completion_id, "accepted" if entry["accepted"] else "dismissed")
            log.debug("feedback text: %r", entry["text"])


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
        await ls.load_model()

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
        if large:
            release_freed_memory()

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
        uri = params.get("textDocument", {}).get("uri") if isinstance(params, dict) else None
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

    @server.command(FEEDBACK_COMMAND)
    @answering_errors
    def feedback(ls: AccsLanguageServer, *arguments: Any) -> None:
        ls.record_feedback(list(arguments))

    @server.feature(types.SHUTDOWN)
    @answering_errors
    async def shutdown(ls: AccsLanguageServer, *args: Any) -> None:
        ls.stops.stop_all()
        await asyncio.get_running_loop().run_in_executor(None, ls.model.shutdown)

    return server
