"""The wire between the editor and the server: framing, message intake, lifecycle, output.

pygls's own loop trusts its client. This module guards against one that is buggy or hostile:

- Framing. Header names are matched case-insensitively, LF-only line ends and a Content-Type
  (or any other) header are accepted, garbage before a header is skipped. A Content-Length
  that is missing, zero, negative, not a number or over MAX_FRAME_BYTES is refused with a
  warning and the reader resynchronises on the next valid header instead of reading the
  frame. A Content-Length that overruns into the next header is caught by seeing that
  header inside the body (a raw header line cannot occur in valid JSON). A body that is
  not JSON is answered with ParseError (id null). Input ending inside a frame ends the loop.
- Intake. Every request (a message with `id` and `method`) gets exactly one response:
  InvalidRequest for a batch, a bad id, a missing or non-string method or a notification
  method sent with an id; InvalidParams, in one line naming the method and the field, for
  params that do not decode (pygls sends nothing). Params must have JSON's types: cattrs's
  coercions (5 to "5", "3" or 1.5 to an int) are refused. A notification whose params do
  not decode is logged and dropped; an unknown `$/` notification is dropped silently.
- Lifecycle, as LSP says: before `initialize` requests get ServerNotInitialized and
  notifications other than `exit` are dropped; a second `initialize` and any request after
  `shutdown` get InvalidRequest. `exit` ends the process with status 0 after `shutdown`,
  1 without. End of input counts as `exit`: 0 after `shutdown`, 1 otherwise.
- Output. The stdio protocol is written to a private duplicate of fd 1, and fd 1 is pointed
  at stderr: llama.cpp's loader redirects fds 1 and 2 to /dev/null while a model loads, and
  stray prints or C libraries must not corrupt the stream either.
- Document sync. The text of open documents lives only in accs-lsp's DocumentStore; pygls's
  workspace copy (and its own range handling) is bypassed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union

import attrs
import cattrs
from lsprotocol import types
from lsprotocol.types import ErrorCodes, ResponseErrorMessage
from pygls.exceptions import JsonRpcInternalError
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage, RPCRequest
from pygls.protocol.language_server import lsp_method

from accs_lsp.errors import one_line

if TYPE_CHECKING:
    from cattrs import Converter
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_HEADER_LINE_BYTES = 4096
HEADER_OVERLAP_BYTES = 64
READ_CHUNK_BYTES = 64 * 1024

PARSE_ERROR = int(ErrorCodes.ParseError)
INVALID_REQUEST = int(ErrorCodes.InvalidRequest)
INVALID_PARAMS = int(ErrorCodes.InvalidParams)
SERVER_NOT_INITIALIZED = int(ErrorCodes.ServerNotInitialized)

CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\d+)[ \t]*$", re.IGNORECASE)
CONTENT_LENGTH_NAME = re.compile(rb"[ \t]*content-length[ \t]*:[ \t]*(.*)", re.IGNORECASE)
OTHER_HEADER = re.compile(rb"[A-Za-z0-9-]+[ \t]*:.*")
# A complete header line inside a body: the declared length ran into the next frame.
EMBEDDED_HEADER = re.compile(rb"content-length[ \t]*:[ \t]*\d+[ \t]*\r?\n", re.IGNORECASE)

MsgId = Union[int, str]


# -- framing --------------------------------------------------------------------------------


class ByteSource(Protocol):
    async def read(self, n: int) -> bytes:
        """Up to n bytes, at least one; b"" at end of input."""
        ...


@dataclass(frozen=True)
class Frame:
    """One message body, or (error set) a frame whose body could not be delimited."""

    body: bytes
    error: str | None = None


class FrameReader:
    """Splits a byte stream into LSP frames, skipping whatever is not one."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self._buffer = bytearray()
        self._eof = False

    async def next_frame(self) -> Frame | None:
        """The next frame; None at end of input (also inside a frame)."""
        length = await self._next_header_block()
        if length is None:
            return None
        return await self._read_body(length)

    async def _next_header_block(self) -> int | None:
        """Read header lines up to the blank line after a valid Content-Length."""
        pending: int | None = None
        skipped = 0
        while True:
            line, consumed = await self._read_line()
            if not line:
                if skipped:
                    log.warning("skipped %d bytes of input that were not an LSP frame", skipped)
                return None
            text = line.rstrip(b"\n").rstrip(b"\r")
            if not line.endswith(b"\n"):  # too long for a header line, or cut off by end of input
                skipped += consumed
                pending = None
            elif not text.strip():
                if pending is not None:
                    if skipped:
                        log.warning("skipped %d bytes of input that were not an LSP header", skipped)
                    return pending
            elif match := CONTENT_LENGTH.search(text):
                skipped += match.start()
                pending = checked_length(match.group(1))
            elif match := CONTENT_LENGTH_NAME.match(text):
                log.warning("refused a frame with Content-Length %r", match.group(1)[:40].decode("latin-1"))
                pending = None
            elif not OTHER_HEADER.fullmatch(text):  # another header (Content-Type) is ignored
                skipped += consumed
                pending = None

    async def _read_body(self, length: int) -> Frame | None:
        body = bytearray()
        while len(body) < length:
            chunk = await self._take(length - len(body))
            if not chunk:
                log.warning("input ended inside a %d-byte message", length)
                return None
            searched_from = max(0, len(body) - HEADER_OVERLAP_BYTES)
            body += chunk
            if header := EMBEDDED_HEADER.search(body, searched_from):
                self._buffer[:0] = body[header.start() :]
                message = f"the frame declared {length} bytes but the next header began after {header.start()}"
                log.warning("%s; resynchronised on it", message)
                return Frame(b"", error=message)
        cut = header_begun_at_end(body)
        if cut is not None:  # it ran a few bytes into the next frame's `Content-Length`
            self._buffer[:0] = body[cut:]
            log.warning("the frame declared %d bytes but the next header began after %d; resynchronised on it", length, cut)
            return Frame(b"", error=f"the frame declared {length} bytes but the next header began after {cut}")
        return Frame(bytes(body))

    async def _read_line(self) -> tuple[bytes, int]:
        """A line and the bytes it consumed. A line longer than any header comes in pieces
        without a newline that overlap, so that a header straddling two is still seen whole."""
        while True:
            end = self._buffer.find(b"\n", 0, MAX_HEADER_LINE_BYTES)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line, len(line)
            if len(self._buffer) >= MAX_HEADER_LINE_BYTES:
                line = bytes(self._buffer[:MAX_HEADER_LINE_BYTES])
                del self._buffer[: MAX_HEADER_LINE_BYTES - HEADER_OVERLAP_BYTES]
                return line, MAX_HEADER_LINE_BYTES - HEADER_OVERLAP_BYTES
            if not await self._fill():
                line = bytes(self._buffer)
                self._buffer.clear()
                return line, len(line)

    async def _take(self, n: int) -> bytes:
        if not self._buffer and not await self._fill():
            return b""
        chunk = bytes(self._buffer[:n])
        del self._buffer[:n]
        return chunk

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            data = await self._source.read(READ_CHUNK_BYTES)
        except OSError as error:
            log.warning("reading from the client failed: %s", error)
            data = b""
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True


HEADER_NAME = b"content-length:"


def header_begun_at_end(body: bytes) -> int | None:
    """Where the body ends with the start of a `Content-Length:` header. No JSON text ends
    in a letter "c" word that is not a literal, so such an end is the next frame's header."""
    tail = body[-len(HEADER_NAME) :].lower()
    for size in range(len(tail), 0, -1):
        if HEADER_NAME.startswith(tail[-size:]):
            return len(body) - size
    return None


def checked_length(digits: bytes) -> int | None:
    length = int(digits) if len(digits) <= 20 else MAX_FRAME_BYTES + 1
    if length == 0:
        log.warning("refused a frame with Content-Length 0")
        return None
    if length > MAX_FRAME_BYTES:
        log.warning("refused a %d-byte frame (the limit is %d bytes); resynchronising", length, MAX_FRAME_BYTES)
        return None
    return length


class ThreadedFdSource:
    """Reads a descriptor on a daemon thread, one read per call: reading never blocks the event
    loop, never runs ahead of the reader, and a read still blocked at exit does not keep the
    process alive (a ThreadPoolExecutor worker would be joined at interpreter exit)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._requests: queue.SimpleQueue[tuple[int, asyncio.Future[bytes]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def read(self, n: int) -> bytes:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="accs-stdin", daemon=True)
            self._thread.start()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._requests.put((n, future))
        return await future

    def _run(self) -> None:
        while True:
            n, future = self._requests.get()
            try:
                outcome: bytes | OSError = os.read(self._fd, n)
            except OSError as error:
                outcome = error
            try:
                future.get_loop().call_soon_threadsafe(settle, future, outcome)
            except RuntimeError:  # the event loop has closed: nobody is reading any more
                return


def settle(future: asyncio.Future[bytes], outcome: bytes | OSError) -> None:
    if future.done():
        return
    if isinstance(outcome, OSError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


# -- output ---------------------------------------------------------------------------------


class FdWriter:
    """Writes each message whole to a descriptor, unbuffered; pygls may write from threads."""

    def __init__(self, fd: int, on_broken: Callable[[], None]) -> None:
        self._fd = fd
        self._on_broken = on_broken
        self._lock = threading.Lock()
        self._closed = False

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as error:
                log.error("lost the connection to the client: %s", error)
                self._close()
                self._on_broken()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)


class StreamWriterAdapter:
    """An asyncio StreamWriter for pygls, safe to call from other threads."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._loop = loop

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            return
        if on_loop(self._loop):
            self._writer.write(data)
        else:
            self._loop.call_soon_threadsafe(self._writer.write, data)

    def close(self) -> None:
        self._writer.close()


def on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def claim_stdout() -> int:
    """Take fd 1 for the protocol: return a private duplicate of it and point fd 1 at stderr,
    so output written to fd 1 by anyone else (or hidden by llama.cpp's dup2 tricks) never
    touches the protocol stream."""
    if sys.stdout is not None:
        sys.stdout.flush()
    private = os.dup(1)  # not inheritable: child processes do not hold the client's pipe open
    os.set_blocking(private, True)  # a client may hand over a non-blocking pipe; writes must be whole
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr: discard instead
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    return private


# -- intake and lifecycle -------------------------------------------------------------------


class Refused(Exception):
    """A message that is not handled: answered with `code` for `msg_id` when code is set,
    otherwise logged and dropped."""

    def __init__(self, reason: str, code: int | None = None, msg_id: MsgId | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.msg_id = msg_id


class Undecodable(ValueError):
    """A message whose fields do not have the types LSP gives them."""


class AccsProtocol(LanguageServerProtocol):
    def __init__(self, server: LanguageServer, converter: Converter) -> None:
        # Set before pygls's __init__, which reads every attribute looking for builtin handlers.
        self._initialize_received = False
        self._shutdown_received = False
        self._on_stop: Callable[[], None] = lambda: None
        register_strict_hooks(converter)
        super().__init__(server, converter)

    @property
    def exit_status(self) -> int:
        return 0 if self._shutdown_received else 1

    def on_stop(self, callback: Callable[[], None]) -> None:
        """`callback` (callable from any thread) ends the connection's loop."""
        self._on_stop = callback

    def stop(self) -> None:
        self._on_stop()

    # -- intake ---------------------------------------------------------------------------

    def receive(self, frame: Frame) -> None:
        if frame.error is not None:
            self.reply_error(None, PARSE_ERROR, f"accs-lsp: {frame.error}")
            return
        try:
            data = json.loads(frame.body)
        except (ValueError, RecursionError) as error:
            self.reply_error(None, PARSE_ERROR, f"accs-lsp: the message is not valid JSON: {one_line(error)}")
            return
        try:
            message = self.admit(data)
        except Refused as refused:
            if refused.code is None:
                log.warning("dropped a message: %s", refused.reason)
            else:
                self.reply_error(refused.msg_id, refused.code, f"accs-lsp: {refused.reason}")
            return
        if message is not None:
            self.handle_message(message)

    def admit(self, data: Any) -> Any:
        """The structured message, None to drop it silently, or Refused."""
        if isinstance(data, list):
            raise Refused("batches are not part of LSP; send one message per frame", INVALID_REQUEST)
        if not isinstance(data, dict):
            raise Refused("a message must be a JSON object", INVALID_REQUEST)
        has_id = "id" in data
        msg_id = data.get("id")
        if has_id and not is_message_id(msg_id):
            raise Refused(f"a message id must be an integer or a string, not {json_type(msg_id)}", INVALID_REQUEST)
        if data.get("jsonrpc") != self.VERSION:
            raise Refused(f"jsonrpc must be {self.VERSION!r}", INVALID_REQUEST, msg_id)
        if "method" not in data:
            if has_id and ("result" in data or "error" in data):
                return self.admit_response(data, msg_id)
            raise Refused("the message has no method", INVALID_REQUEST, msg_id)
        method = data["method"]
        if not isinstance(method, str):
            raise Refused(f"method must be a string, not {json_type(method)}", INVALID_REQUEST, msg_id)
        if has_id:
            return self.admit_request(data, method, msg_id)
        return self.admit_notification(data, method)

    def admit_request(self, data: dict[str, Any], method: str, msg_id: MsgId) -> Any:
        if self.is_notification_method(method):
            raise Refused(f"{method} is a notification and must not have an id", INVALID_REQUEST, msg_id)
        if not self._initialize_received and method != types.INITIALIZE:
            raise Refused(f"{method} before initialize", SERVER_NOT_INITIALIZED, msg_id)
        if self._initialize_received and method == types.INITIALIZE:
            raise Refused("initialize was already received", INVALID_REQUEST, msg_id)
        if self._shutdown_received:
            raise Refused(f"{method} after shutdown", INVALID_REQUEST, msg_id)
        try:
            return self.structure_message(data)
        except Undecodable as error:
            raise Refused(f"{method}: invalid params: {error}", INVALID_PARAMS, msg_id) from None

    def admit_notification(self, data: dict[str, Any], method: str) -> Any:
        if method == types.EXIT:
            data = {key: value for key, value in data.items() if key != "params"}  # exit, whatever its params
        elif not self._initialize_received or self._shutdown_received:
            log.debug("dropped %s: %s", method, "after shutdown" if self._shutdown_received else "before initialize")
            return None
        elif method.startswith("$/") and method != types.CANCEL_REQUEST and not self.has_handler(method):
            return None
        elif (message_type := self.get_message_type(method)) is not None and "id" in attrs.fields_dict(message_type):
            raise Refused(f"{method} is a request and needs an id")
        try:
            return self.structure_message(data)
        except Undecodable as error:
            raise Refused(f"{method}: invalid params: {error}") from None

    def admit_response(self, data: dict[str, Any], msg_id: MsgId) -> Any:
        try:
            return self.structure_message(data)
        except Undecodable as error:
            if (future := self._request_futures.pop(msg_id, None)) is not None and not future.done():
                future.set_exception(JsonRpcInternalError(f"the client's response did not decode: {error}"))
            raise Refused(f"the response to {msg_id!r}: {error}") from None

    def structure_message(self, data: dict[str, Any]) -> Any:
        """The message as its lsprotocol type (pygls's generic types for unknown methods)."""
        message_type = self.message_type(data)
        if message_type in (JsonRPCRequestMessage, JsonRPCNotification):
            data = {"params": None, **data}  # params are optional in JSON-RPC
        elif attrs.has(params_type := self.params_type(data)) and not isinstance(data.get("params", {}), dict):
            raise Undecodable(f"params must be an object, not {json_type(data['params'])}")
        try:
            return self._converter.structure(data, message_type)
        except Exception as error:
            raise Undecodable(describe_structure_error(error)) from None

    def message_type(self, data: dict[str, Any]) -> type:
        if "method" in data:
            generic = JsonRPCRequestMessage if "id" in data else JsonRPCNotification
            return self.get_message_type(data["method"]) or generic
        if "error" in data:
            return ResponseErrorMessage
        return self._result_types.pop(data["id"], None) or JsonRPCResponseMessage

    def params_type(self, data: dict[str, Any]) -> Any:
        method = data.get("method")
        return types.METHOD_TO_TYPES.get(method, (None, None, None))[2] if isinstance(method, str) else None

    def is_notification_method(self, method: str) -> bool:
        message_type = self.get_message_type(method)
        return message_type is not None and "id" not in attrs.fields_dict(message_type)

    def has_handler(self, method: str) -> bool:
        return method in self.fm.builtin_features or method in self.fm.features

    def handle_message(self, message: Any) -> None:
        if isinstance(message, RPCRequest):
            if message.method == types.INITIALIZE:
                self._initialize_received = True
            elif message.method == types.SHUTDOWN:
                self._shutdown_received = True
        super().handle_message(message)

    def reply_error(self, msg_id: MsgId | None, code: int, message: str) -> None:
        log.warning("answered %s with error %d: %s", "a message" if msg_id is None else f"request {msg_id!r}", code, message)
        # A dict, not ResponseErrorMessage: its converter would leave out "id": null.
        self._send_data({"jsonrpc": self.VERSION, "id": msg_id, "error": {"code": code, "message": message}})

    # -- builtin handlers -----------------------------------------------------------------

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        log.info("exit received (status %d)", self.exit_status)
        self.stop()

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Generator[Any, Any, None]:
        yield from self.user_handler_only(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Generator[Any, Any, None]:
        yield from self.user_handler_only(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Generator[Any, Any, None]:
        yield from self.user_handler_only(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def user_handler_only(self, method: str, params: Any) -> Generator[Any, Any, None]:
        """Document sync goes to accs-lsp's DocumentStore only, never to pygls's workspace."""
        if (user_handler := self.fm.features.get(method)) is not None:
            yield user_handler, (params,), None


def is_message_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def register_strict_hooks(converter: Converter) -> None:
    """cattrs would turn 5 into "5", "3" or 1.5 into 3 or 1 and anything into a bool; LSP's
    types are JSON's. The hooks are inherited by the int and str enums, which still check
    their values by constructing the enum."""

    def structure_str(value: Any, cls: type) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {json_type(value)}")
        return value if cls is str else cls(value)

    def structure_int(value: Any, cls: type) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"expected an integer, got {json_type(value)}")
        return value if cls is int else cls(value)

    def structure_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected a boolean, got {json_type(value)}")
        return value

    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(int, structure_int)
    converter.register_structure_hook(bool, structure_bool)


def describe_structure_error(error: Exception) -> str:
    """One line: what was wrong and where, in the message's JSON names (no traceback)."""
    if not isinstance(error, cattrs.BaseValidationError):
        return one_line(error)

    def describe(exc: BaseException, expected: type | None) -> str:
        if type(exc) is ValueError and str(exc):
            return one_line(exc)
        return cattrs.v.format_exception(exc, expected)

    problems = [json_path(problem) for problem in cattrs.transform_error(error, format_exception=describe)]
    return "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")


def json_path(problem: str) -> str:
    """cattrs's "... @ $.params.text_document" as "... at textDocument"."""
    problem = re.sub(r"\.? @ \$(\.params\.|\.)?", " at ", problem).removesuffix(" at ")
    return re.sub(r"_([a-z])", lambda match: match.group(1).upper(), problem)


# -- entry points ---------------------------------------------------------------------------


async def serve_connection(protocol: AccsProtocol, reader: FrameReader) -> int:
    """Hand frames to the protocol until `exit`, end of input or a lost connection."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def stop() -> None:
        try:
            loop.call_soon_threadsafe(stopped.set)
        except RuntimeError:  # the loop has closed already
            pass

    protocol.on_stop(stop)
    stop_wait = asyncio.ensure_future(stopped.wait())
    try:
        while True:
            next_frame = asyncio.ensure_future(reader.next_frame())
            await asyncio.wait({next_frame, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not next_frame.done():
                next_frame.cancel()
                break
            frame = next_frame.result()
            if frame is None:
                log.info("the client closed the connection")
                break
            try:
                protocol.receive(frame)
            except Exception:  # a bug in handling one message must not end the session
                log.exception("failed to handle a message")
    finally:
        stop_wait.cancel()
    return protocol.exit_status


def accs_protocol(server: LanguageServer) -> AccsProtocol:
    if not isinstance(server.protocol, AccsProtocol):
        raise TypeError(f"the server needs protocol_cls=AccsProtocol, not {type(server.protocol).__name__}")
    return server.protocol


def serve_stdio(server: LanguageServer) -> int:
    """Serve one client on stdin and stdout; returns the process's exit status."""
    protocol = accs_protocol(server)
    os.set_blocking(0, True)
    writer = FdWriter(claim_stdout(), on_broken=protocol.stop)
    protocol.set_writer(writer)
    try:
        return asyncio.run(serve_connection(protocol, FrameReader(ThreadedFdSource(0))))
    finally:
        writer.close()
        server.shutdown()


def serve_tcp(server: LanguageServer, host: str, port: int) -> int:
    """Listen on host:port and serve the first client to connect (later ones are turned away);
    returns the process's exit status. OSError: the address cannot be listened on."""
    protocol = accs_protocol(server)
    try:
        return asyncio.run(serve_first_tcp_client(protocol, host, port))
    finally:
        server.shutdown()


async def serve_first_tcp_client(protocol: AccsProtocol, host: str, port: int) -> int:
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connected.done():
            log.warning("turned away a second client from %s", writer.get_extra_info("peername"))
            writer.close()
        else:
            connected.set_result((reader, writer))

    listener = await asyncio.start_server(accept, host, port)
    async with listener:
        log.info("listening on %s", ", ".join(str(sock.getsockname()) for sock in listener.sockets))
        reader, stream_writer = await connected
        protocol.set_writer(StreamWriterAdapter(stream_writer, loop))
        try:
            return await serve_connection(protocol, FrameReader(reader))
        finally:
            stream_writer.close()
