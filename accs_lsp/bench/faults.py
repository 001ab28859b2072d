"""`accs-lsp bench faults`: a hostile LSP client against the real server over real stdio.

Every input goes to `python -m accs_lsp serve` as raw framed bytes on its stdin; a reader
thread splits its stdout into messages. The server runs the real default model, with
`{"maxTokens": 8, "timeoutMs": 5000, "contextTokens": 256}` wherever completions run.

Failure kinds (the counts of the summary line):

- crash: the process exits when it should not (anything but the `exit` notification), or
  stops answering the sentinel (`accs/ping`, an unknown method, which must get
  MethodNotFound -32601) within a timeout, or stops reading its input. The campaign
  restarts the server and goes on.
- unanswered: a request built to be invalid did not get exactly one response (none, two,
  or not the expected error: invalid params -32602, invalid request -32600, parse error
  -32700 with id null, server not initialized -32002 before `initialize`).
- lost: a valid request did not get exactly one response, or got an error where a result
  is due (completions, documentState; in the cancellation storm, anything but a result or
  RequestCancelled). `exit` not ending the process with status 0 after `shutdown`, 1
  without, counts here too. In the frames class, a sentinel unanswered by a living
  server is lost (the frame before it cost a valid request) rather than a crash.
- desync: after edits, `accs/documentState` (version, lineCount, sha256 of the UTF-8 text)
  differs from the campaign's reference model of the document, which follows LSP: UTF-16
  positions, a character past the end of its line clamps to the line's end, lines end at
  \\n, \\r\\n or a lone \\r, a lone surrogate (sent as a JSON "\\ud800" escape) is U+FFFD,
  and an edit on a line past the end of the document makes the server close the document
  (`open: false`: a lost sync the server reported, not a desync).
- stale: a completion computed for a document state that was gone when the response was
  sent (the document closed and reopened at the same version with other text) still has
  items.

A memory failure (resident memory growing by more than 100 MB) is listed with the others
and makes the exit status 1, without a count of its own in the summary line.

Input classes, each a generator of inputs and a function returning a ClassResult:

1. frames: bad frames (Content-Length too small, too large, zero, negative, not a number,
   10**15; a lowercase header name, LF-only headers, leading garbage, ...), each followed
   by a sentinel that must be answered (lost if not; a crash if the process died).
2. params: requests whose params don't decode, invalid messages (a batch array, an object
   id, a notification sent with an id, bad JSON) and oversize `accs.feedback` arguments.
3. lifecycle: a request before `initialize` (-32002); shutdown, a request after it
   (-32600), exit (status 0); in a second server, exit without shutdown (status 1).
4. edits: seeded random edit sequences over ASCII, CRLF, lone \\r, emoji, lone surrogates,
   positions past line ends and past the document end, checked against the reference.
5. documents: a 5 MB document, a completion at its end, its close; resident memory before
   the open and after the close (the `memory:` line).
6. cancellation: a burst of inline completions, each followed by $/cancelRequest for the
   previous one; each must get exactly one response, a result or RequestCancelled -32800.
7. settings: initializationOptions and didChangeConfiguration with values JSON can't carry
   (Infinity, NaN), out of range or of the wrong type; the server must go on completing.
8. reload: `initialized` then at once several didChangeConfiguration reloads, then a
   completion: answered, and the process alive.
9. stale: a completion, then at once didClose and didOpen of the same uri and version with
   other text: the response must have no items.
10. soak: 200 mixed valid requests; all answered, memory within 100 MB of after warm-up.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

SERVER_COMMAND = (sys.executable, "-m", "accs_lsp", "serve")
# A short prompt too: prefilling the default 1,024 tokens takes seconds on two busy cores.
FAST_OPTIONS: dict[str, Any] = {"maxTokens": 8, "timeoutMs": 5000, "contextTokens": 256}

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
REQUEST_CANCELLED = -32800

KINDS = ("crash", "unanswered", "lost", "desync", "stale", "memory")
SUMMARY_COUNTS = (("crashes", "crash"), ("unanswered", "unanswered"), ("lost", "lost"), ("desyncs", "desync"), ("stale", "stale"))
MEMORY_GROWTH_LIMIT_MB = 100.0
SENTINEL = "accs/ping"
INLINE = "textDocument/inlineCompletion"
COMPLETION = "textDocument/completion"
STATE = "accs/documentState"
SOURCE = 'def add(a: int, b: int) -> int:\n    return a + b\n\n\ndef greet(name: str) -> str:\n    message = "Hello, " + name\n    return '


class ServerGone(RuntimeError):
    """The server's stdin is closed or stopped taking bytes."""


class StartFailed(RuntimeError):
    """A fresh server did not answer `initialize`: `kind` is crash (it died) or lost."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- framing -----------------------------------------------------------------------------


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode(message: Any) -> bytes:
    """JSON as the wire carries it: ASCII, so a lone surrogate travels as a \\ud800 escape."""
    return json.dumps(message, ensure_ascii=True).encode("ascii")


class FrameReader:
    """Splits the server's output into messages, whatever the sizes of the reads."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.garbage: list[bytes] = []

    def feed(self, data: bytes) -> list[Any]:
        self.buffer += data
        messages = []
        while (message := self._next()) is not None:
            messages.append(message)
        return messages

    def _next(self) -> Any | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        length = self._content_length(bytes(self.buffer[:end]))
        if length is None:
            self.garbage.append(bytes(self.buffer[: end + 4]))
            del self.buffer[: end + 4]
            return self._next()
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        try:
            return json.loads(body)
        except ValueError:
            self.garbage.append(body)
            return self._next()

    @staticmethod
    def _content_length(headers: bytes) -> int | None:
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                return int(value.strip())
        return None


def id_key(request_id: Any) -> str:
    return json.dumps(request_id, sort_keys=True)


# -- the client ----------------------------------------------------------------------------


class RawClient:
    """One server process, spoken to in raw bytes; every message it sends is kept."""

    def __init__(self, command: Sequence[str] = SERVER_COMMAND) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.changed = threading.Condition()
        self.write_lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.by_id: dict[str, list[dict[str, Any]]] = {}
        self.eof = False
        self.ids = itertools.count(1)
        self.frames = FrameReader()
        os.set_blocking(self.stdin.fileno(), False)
        self.reader = threading.Thread(target=self._read, name="faults-reader", daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        """Whether the process runs; once its output has ended, after a moment to exit."""
        if self.eof:
            self.wait_exit(1.0)
        return self.process.poll() is None

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    # reading

    def _read(self) -> None:
        descriptor = self.stdout.fileno()
        while True:
            try:
                data = os.read(descriptor, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            for message in self.frames.feed(data):
                self._receive(message)
        with self.changed:
            self.eof = True
            self.changed.notify_all()

    def _receive(self, message: Any) -> None:
        if not isinstance(message, dict):
            message = {"unexpected": message}
        if "method" in message and "id" in message:  # a request from the server: answer it, off this thread
            reply = encode({"jsonrpc": "2.0", "id": message["id"], "result": None})
            threading.Thread(target=self._send_quietly, args=(frame(reply),), daemon=True).start()
        with self.changed:
            self.received.append(message)
            if "method" not in message and "id" in message:
                self.by_id.setdefault(id_key(message["id"]), []).append(message)
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate` (called under the lock) holds or the server's output ends."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate() or self.eof, timeout) and predicate()

    def mark(self) -> int:
        with self.changed:
            return len(self.received)

    def responses(self, request_id: Any) -> list[dict[str, Any]]:
        with self.changed:
            return list(self.by_id.get(id_key(request_id), []))

    def wait_response(self, request_id: Any, timeout: float) -> dict[str, Any] | None:
        key = id_key(request_id)
        self.wait(lambda: key in self.by_id, timeout)
        found = self.responses(request_id)
        return found[0] if found else None

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self.changed:
            return list(self.received[mark:])

    def null_id_responses(self, mark: int) -> list[dict[str, Any]]:
        return [m for m in self.since(mark) if "method" not in m and "id" in m and m["id"] is None]

    def wait_notification(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, mark: int = 0) -> dict[str, Any] | None:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.received[mark:] if "method" in m and "id" not in m and predicate(m)), None)

        self.wait(lambda: found() is not None, timeout)
        with self.changed:
            return found()

    # writing

    def send_bytes(self, data: bytes, timeout: float = 30.0) -> None:
        with self.write_lock:
            self._write(data, timeout)

    def _write(self, data: bytes, timeout: float) -> None:
        descriptor = self.stdin.fileno()
        view, deadline = memoryview(data), time.monotonic() + timeout
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerGone(f"the server took no input for {timeout:.0f} s")
            if not select.select([], [descriptor], [], remaining)[1]:
                continue
            try:
                view = view[os.write(descriptor, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as error:
                raise ServerGone(f"the server's stdin is closed ({error})") from None

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.send_bytes(data, timeout=5.0)
        except ServerGone:
            pass

    def send(self, message: Any) -> None:
        self.send_bytes(frame(encode(message)))

    def request(self, method: str, params: Any = None, request_id: Any = None) -> Any:
        request_id = next(self.ids) if request_id is None else request_id
        self.send(request_message(method, params, request_id))
        return request_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send(notification_message(method, params))

    # ending

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self, grace: float = 2.0) -> None:
        """End the process however it is: stdin closed, then SIGTERM, then SIGKILL."""
        try:
            self.stdin.close()
        except OSError:
            pass
        if self.wait_exit(grace) is None:
            self.process.terminate()
            if self.wait_exit(grace) is None:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=2.0)
        self.stdout.close()

    def stderr_tail(self, limit: int = 160) -> str:
        try:
            self.stderr.seek(0)
            lines = [line for line in self.stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1].strip()[:limit] if lines else ""

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        tail = self.stderr_tail()
        return f"exited with status {code}" + (f" ({tail})" if tail else "")


def request_message(method: Any, params: Any, request_id: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification_message(method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def error_code(response: dict[str, Any] | None) -> int | None:
    error = response.get("error") if isinstance(response, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def describe(response: dict[str, Any] | None, limit: int = 100) -> str:
    if response is None:
        return "no response"
    if "error" in response:
        error = response["error"] if isinstance(response["error"], dict) else {}
        return f"error {error.get('code')} {str(error.get('message', ''))[:limit]!r}"
    return f"result {json.dumps(response.get('result'))[:limit]}"


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    kind: str
    name: str
    input: str
    what: str

    def line(self) -> str:
        return f"  {self.kind:10} {self.name:12} {self.input}: {self.what}"


@dataclass
class ClassResult:
    name: str
    inputs: int = 0
    failures: dict[str, list[Failure]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    notes: list[str] = field(default_factory=list)

    def fail(self, kind: str, input_name: str, what: str) -> None:
        self.failures[kind].append(Failure(kind, self.name, input_name, what))

    def count(self, kind: str) -> int:
        return len(self.failures[kind])

    def all_failures(self) -> list[Failure]:
        return [failure for kind in KINDS for failure in self.failures[kind]]


# -- the campaign --------------------------------------------------------------------------


@dataclass
class Campaign:
    """Settings shared by the classes, and every server started, so none is left behind."""

    seed: int = 0
    quick: bool = False
    command: tuple[str, ...] = SERVER_COMMAND
    startup_s: float = 60.0
    sentinel_s: float = 5.0
    request_s: float = 10.0
    completion_s: float = 60.0
    grace_s: float = 1.5
    clients: list[RawClient] = field(default_factory=list)

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")

    def spawn(self) -> RawClient:
        client = RawClient(self.command)
        self.clients.append(client)
        return client

    def start(self, options: Any = FAST_OPTIONS) -> RawClient:
        """A fresh server past `initialize` and `initialized`."""
        client = self.spawn()
        request_id = client.request("initialize", initialize_params(options))
        response = client.wait_response(request_id, self.startup_s)
        if response is None or "result" not in response:
            kind, detail = ("lost", describe(response)) if client.alive() else ("crash", f"the server {client.describe_exit()}")
            self.retire(client)
            raise StartFailed(kind, f"initialize: {detail}")
        client.notify("initialized", {})
        return client

    def retire(self, client: RawClient) -> None:
        client.close()
        if client in self.clients:
            self.clients.remove(client)

    def close_all(self) -> None:
        while self.clients:
            self.retire(self.clients[-1])

    def ping(self, client: RawClient, timeout: float | None = None) -> dict[str, Any] | None:
        if not client.alive():
            return None
        try:
            request_id = client.request(SENTINEL, {}, request_id=f"ping-{next(client.ids)}")
        except ServerGone:
            return None
        return client.wait_response(request_id, self.sentinel_s if timeout is None else timeout)

    def wait_ready(self, client: RawClient, mark: int = 0) -> str | None:
        message = client.wait_notification(
            lambda m: m.get("method") == "accs/status" and (m.get("params") or {}).get("state") in ("ready", "error"),
            self.startup_s,
            mark,
        )
        return (message or {}).get("params", {}).get("state")


def initialize_params(options: Any) -> dict[str, Any]:
    return {"processId": os.getpid(), "rootUri": None, "capabilities": {}, "initializationOptions": options}


class Target:
    """The server one class talks to: checked by the sentinel after each input, restarted
    (and set up again) after a crash."""

    def __init__(self, campaign: Campaign, result: ClassResult, setup: Callable[[RawClient], None] | None = None, client: RawClient | None = None) -> None:
        """A fresh server (set up by `setup`), or `client`, a one-off server not restarted."""
        self.campaign, self.result, self.setup = campaign, result, setup
        self.restarts = client is None
        self.client = client or self._fresh()

    def _fresh(self) -> RawClient:
        client = self.campaign.start()
        if self.setup:
            self.setup(client)
        return client

    def survived(self, label: str, silent_kind: str = "crash") -> bool:
        """The sentinel after an input; False (with a fresh server) when the server died or
        went silent. `silent_kind`: what a silent, living server counts as."""
        response = self.campaign.ping(self.client)
        if response is not None:
            if error_code(response) != METHOD_NOT_FOUND:
                self.result.fail("unanswered", f"{label}, then {SENTINEL}", f"{describe(response)}, expected error {METHOD_NOT_FOUND}")
            return True
        if self.client.alive():
            self.result.fail(silent_kind, label, f"the sentinel {SENTINEL} got no response within {self.campaign.sentinel_s:.0f} s")
        else:
            self.result.fail("crash", label, f"the server {self.client.describe_exit()}")
        self.restart()
        return False

    def missing(self, label: str, what: str) -> bool:
        """A valid request got no response: lost, or a crash (and a fresh server, False) when
        the process is gone or the sentinel goes unanswered too."""
        if self.client.alive() and self.campaign.ping(self.client) is not None:
            self.result.fail("lost", label, what)
            return True
        silent = f"{what}, nor the sentinel {SENTINEL}"
        self.result.fail("crash", label, silent if self.client.alive() else f"the server {self.client.describe_exit()}")
        self.restart()
        return False

    def gone(self, label: str, error: ServerGone) -> None:
        """A write failed: the process died, or it stopped reading its input (a crash too)."""
        what = f"the server {self.client.describe_exit()}" if not self.client.alive() else str(error)
        self.result.fail("crash", label, what)
        self.restart()

    def restart(self) -> None:
        self.campaign.retire(self.client)
        if self.restarts:
            self.client = self._fresh()

    def close(self) -> None:
        self.campaign.retire(self.client)


def open_document(client: RawClient, uri: str, text: str, version: int = 1) -> None:
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": version, "text": text}})


def end_position(text: str) -> dict[str, int]:
    lines = Reference.split(text)
    return {"line": len(lines) - 1, "character": utf16_length(lines[-1])}


def inline_params(uri: str, position: dict[str, int]) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}}


def items_of(response: dict[str, Any] | None) -> list[Any]:
    result = (response or {}).get("result")
    if isinstance(result, dict):
        return list(result.get("items") or [])
    return list(result) if isinstance(result, list) else []


# -- the reference document ------------------------------------------------------------------

LINE_BREAK = re.compile(r"\r\n|\r|\n")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def wire(text: str) -> str:
    """The text the server holds for one we send: what JSON makes of it (a high and a low
    surrogate in a row become one character), then each lone surrogate U+FFFD."""
    return LONE_SURROGATE.sub("\ufffd", json.loads(encode(text)))


def utf16_length(text: str) -> int:
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


class Reference:
    """A document as LSP defines it, independent of the server's code."""

    def __init__(self, text: str, version: int) -> None:
        self.text = wire(text)
        self.version = version
        self.open = True

    @staticmethod
    def split(text: str) -> list[str]:
        return LINE_BREAK.split(text)

    def lines(self) -> list[str]:
        return self.split(self.text)

    def line_starts(self) -> list[int]:
        return [0] + [match.end() for match in LINE_BREAK.finditer(self.text)]

    @property
    def line_count(self) -> int:
        return len(self.line_starts())

    def offset(self, line: int, character: int) -> int | None:
        """The str offset of a position; None for a line outside the document."""
        starts = self.line_starts()
        if line < 0 or character < 0 or line >= len(starts):
            return None
        units = 0
        content = self.lines()[line]
        for index, char in enumerate(content):
            width = 2 if ord(char) > 0xFFFF else 1
            if units + width > character:
                return starts[line] + index
            units += width
        return starts[line] + len(content)

    def apply(self, changes: list[dict[str, Any]], version: int) -> None:
        """One didChange; a range on a line past the end closes the document."""
        if not self.open:
            return
        for change in changes:
            if "range" not in change:
                self.text = wire(change["text"])
                continue
            start, end = (self.offset(p["line"], p["character"]) for p in (change["range"]["start"], change["range"]["end"]))
            if start is None or end is None or end < start:
                self.open = False
                return
            self.text = self.text[:start] + wire(change["text"]) + self.text[end:]
        self.version = version

    def state(self, uri: str) -> dict[str, Any]:
        if not self.open:
            return {"uri": uri, "open": False}
        digest = hashlib.sha256(self.text.encode("utf-8")).hexdigest()
        return {"uri": uri, "open": True, "version": self.version, "lineCount": self.line_count, "sha256": digest}


def state_difference(expected: dict[str, Any], got: dict[str, Any] | None) -> str | None:
    """None when the server's documentState matches the reference, else what differs."""
    if not isinstance(got, dict):
        return f"documentState result {json.dumps(got)[:80]}"
    if not expected["open"]:
        return None if got.get("open") is False else f"open at version {got.get('version')}, but an edit had a line past the end: expected closed"
    if got.get("open") is not True:
        return "closed, expected open"
    differing = [name for name in ("version", "lineCount", "sha256") if got.get(name) != expected[name]]
    if not differing:
        return None
    def shown(value: Any) -> str:
        return repr(value[:12] if isinstance(value, str) else value)

    return "; ".join(f"{name}: server {shown(got.get(name))}, reference {shown(expected[name])}" for name in differing)


PIECES = (
    "def f(x):", "    return x", "a", "b = 1", "é", "日本", "😀", "🐍🐍", "\ud800", "\udfff", "\ud83d", "\ude00",
    "\r\n", "\r", "\n", "\n", "\r\n", "\x0c", "\u2028", "\x85", "\t", " ", "#", "\x00", "''", "\ufeff", "x" * 40,
)


def random_text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, most)))


def random_position(rng: random.Random, reference: Reference, past_end: float) -> tuple[int, int]:
    lines = reference.lines()
    if rng.random() < past_end:
        return len(lines) + rng.choice((0, 0, 1, 5, 2**31 - 1 - len(lines))), rng.randint(0, 3)
    line = rng.randrange(len(lines))
    content = lines[line]
    if rng.random() < 0.2:
        return line, utf16_length(content) + rng.choice((1, 2, 7, 1000, 2**31 - 1 - utf16_length(content)))
    return line, utf16_length(content[: rng.randint(0, len(content))])


def random_change(rng: random.Random, reference: Reference, past_end: float) -> dict[str, Any]:
    text = random_text(rng, 4)
    if rng.random() < 0.05:
        return {"text": text}
    first, second = random_position(rng, reference, past_end), random_position(rng, reference, past_end)
    if rng.random() < 0.4:
        second = first
    offsets = [reference.offset(*position) for position in (first, second)]
    if offsets[0] is None or (offsets[1] is not None and offsets[0] > offsets[1]):
        first, second = second, first
    as_range = {"start": {"line": first[0], "character": first[1]}, "end": {"line": second[0], "character": second[1]}}
    return {"range": as_range, "text": text}


def did_change(uri: str, version: int, changes: list[dict[str, Any]]) -> dict[str, Any]:
    return notification_message("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes})


def random_edits(rng: random.Random, reference: Reference, uri: str, past_end: float) -> Iterator[dict[str, Any]]:
    """didChange messages, applied to the reference as they are made."""
    for _ in range(rng.randint(1, 8)):
        if not reference.open:
            return
        changes = []
        for _ in range(rng.randint(1, 3)):
            change = random_change(rng, reference, past_end)
            changes.append(change)
            reference.apply([change], reference.version)
        reference.version += rng.randint(1, 3)
        yield did_change(uri, reference.version, changes)


# -- 1. frames -------------------------------------------------------------------------------


def frame_inputs(rng: random.Random, quick: bool) -> Iterator[tuple[str, bytes]]:
    body = encode(request_message(STATE, {"textDocument": {"uri": "file:///faults/none.py"}}, "framed"))
    n = len(body)
    fixed = [
        ("Content-Length too small", b"Content-Length: %d\r\n\r\n" % (n - 7) + body),
        ("Content-Length too large", b"Content-Length: %d\r\n\r\n" % (n + 9) + body),
        ("Content-Length 0", b"Content-Length: 0\r\n\r\n" + body),
        ("Content-Length -5", b"Content-Length: -5\r\n\r\n" + body),
        ("Content-Length not a number", b"Content-Length: twelve\r\n\r\n" + body),
        ("lowercase content-length", b"content-length: %d\r\n\r\n" % n + body),
        ("LF-only headers", b"Content-Length: %d\n\n" % n + body),
        ("leading garbage", b"\x00garbage\r\n" + frame(body)),
        ("Content-Length 10**15", b"Content-Length: %d\r\n\r\n" % 10**15 + body),
        ("no Content-Length header", b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + body),
        ("body not UTF-8", frame(b'{"\xff\xfe": 1}')),
        ("body not JSON", frame(b"hello, world")),
    ]
    if quick:
        fixed = [fixed[i] for i in (0, 3, 6, 8)]
    yield from fixed
    for index in range(0 if quick else 20):
        yield random_frame(rng, body, index)


def random_frame(rng: random.Random, body: bytes, index: int) -> tuple[str, bytes]:
    choice = rng.randrange(4)
    if choice == 0:
        garbage = rng.randbytes(rng.randint(1, 64)).replace(b"Content-Length", b"")
        return f"random garbage #{index} ({len(garbage)} bytes)", garbage
    if choice == 1:
        delta = rng.choice((-1, 1)) * rng.randint(1, 40)
        delta = max(delta, 1 - len(body))
        return f"Content-Length off by {delta:+d} #{index}", b"Content-Length: %d\r\n\r\n" % (len(body) + delta) + body
    if choice == 2:
        cut = rng.randint(1, len(body) - 1)
        return f"body cut at {cut} #{index}", frame(body[:cut])
    size = rng.choice((1000, 100_000))
    return f"{size}-byte unknown header #{index}", b"X-Junk: " + b"a" * size + b"\r\n" + frame(body)


def run_frames(campaign: Campaign, result: ClassResult) -> ClassResult:
    target = Target(campaign, result)
    try:
        for label, data in frame_inputs(campaign.rng("frames"), campaign.quick):
            result.inputs += 1
            try:
                target.client.send_bytes(data)
            except ServerGone:
                pass
            target.survived(label, silent_kind="lost")
    finally:
        target.close()
    return result


# -- 2. params -------------------------------------------------------------------------------

PARAMS_URI = "file:///faults/params.py"


@dataclass(frozen=True)
class Invalid:
    """A message built to be invalid and the errors that may answer it. `null_id`: the
    answer may (or, when `body` is given, must) carry id null."""

    label: str
    message: Any = None
    codes: tuple[int, ...] = (INVALID_PARAMS,)
    null_id: bool = False
    body: bytes | None = None


def position_request(label: str, position: Any, method: str = INLINE) -> Invalid:
    params: dict[str, Any] = {"textDocument": {"uri": PARAMS_URI}, "context": {"triggerKind": 1}}
    if position is not None:
        params["position"] = position
    if method == COMPLETION:
        params.pop("context")
    return Invalid(label, request_message(method, params, None))


def params_inputs(rng: random.Random, quick: bool) -> Iterator[Invalid]:
    document = {"uri": PARAMS_URI}
    at = {"line": 0, "character": 0}
    feedback = [{"completionId": f"c{i}", "accepted": True} for i in range(100)]
    inputs = [
        position_request("negative line", {"line": -1, "character": 0}),
        position_request("negative character", {"line": 0, "character": -3}),
        position_request("line 2**31", {"line": 2**31, "character": 0}),
        position_request("character 2**31", {"line": 0, "character": 2**31}),
        position_request("completion at line 10**20", {"line": 10**20, "character": 0}, COMPLETION),
        position_request("no position", None),
        position_request("position a string", "0:0"),
        Invalid("inlineCompletion params null", request_message(INLINE, None, None) | {"params": None}),
        Invalid("inlineCompletion params an array", request_message(INLINE, [document, at], None)),
        Invalid("completion params a string", request_message(COMPLETION, "file:///faults/params.py", None)),
        Invalid("inlineCompletion context triggerKind 99", request_message(INLINE, {"textDocument": document, "position": at, "context": {"triggerKind": 99}}, None)),
        Invalid("inlineCompletion context a string", request_message(INLINE, {"textDocument": document, "position": at, "context": "invoked"}, None)),
        Invalid("inlineCompletion without context", request_message(INLINE, {"textDocument": document, "position": at}, None)),
        Invalid("executeCommand command 5", request_message("workspace/executeCommand", {"command": 5, "arguments": []}, None)),
        Invalid("executeCommand command null", request_message("workspace/executeCommand", {"command": None}, None)),
        Invalid("accs.feedback with 100 entries", request_message("workspace/executeCommand", {"command": "accs.feedback", "arguments": feedback}, None)),
        Invalid("accs.feedback with a 10 kB completionId", request_message("workspace/executeCommand", {"command": "accs.feedback", "arguments": [{"completionId": "x" * 10_000}]}, None)),
        Invalid("documentState params null", request_message(STATE, None, None) | {"params": None}),
        Invalid("didOpen sent with an id", request_message("textDocument/didOpen", {"textDocument": {"uri": "file:///faults/with-id.py", "languageId": "python", "version": 1, "text": ""}}, None), (INVALID_REQUEST, METHOD_NOT_FOUND)),
        Invalid("id an object", request_message(SENTINEL, {}, {"a": 1}), (INVALID_REQUEST,), null_id=True),
        Invalid("id true", request_message(SENTINEL, {}, True), (INVALID_REQUEST,), null_id=True),
        Invalid("method a number", request_message(5, {}, None), (INVALID_REQUEST,), null_id=True),
        Invalid("jsonrpc 1.0", request_message(SENTINEL, {}, None) | {"jsonrpc": "1.0"}, (INVALID_REQUEST,), null_id=True),
        Invalid("JSON batch array", None, (INVALID_REQUEST,), null_id=True, body=encode([request_message(SENTINEL, {}, "batch-1"), notification_message("initialized", {})])),
        Invalid("malformed JSON body", None, (PARSE_ERROR,), null_id=True, body=b'{"jsonrpc": "2.0", "id": 9, "method": '),
    ]
    if quick:
        inputs = [inputs[i] for i in (0, 3, 7, 10, 13, 15, 19, 23)]
    yield from inputs


def send_invalid(client: RawClient, invalid: Invalid) -> Any:
    """Send it; the id to find its answer under (a fresh one unless the input sets it)."""
    if invalid.body is not None:
        client.send_bytes(frame(invalid.body))
        return None
    message = dict(invalid.message)
    if message.get("id") is None:
        message["id"] = next(client.ids)
    client.send(message)
    return message["id"]


def answers_to(client: RawClient, invalid: Invalid, request_id: Any, mark: int) -> list[dict[str, Any]]:
    if invalid.body is not None:
        return client.null_id_responses(mark)
    answers = client.responses(request_id)
    return answers + client.null_id_responses(mark) if invalid.null_id else answers


def judge_invalid(invalid: Invalid, answers: list[dict[str, Any]]) -> str | None:
    expected = " or ".join(str(code) for code in invalid.codes) + (" with id null" if invalid.body is not None else "")
    if not answers:
        return f"no response, expected error {expected}"
    if len(answers) > 1:
        return f"{len(answers)} responses ({'; '.join(describe(a, 40) for a in answers)}), expected one"
    if error_code(answers[0]) not in invalid.codes or (invalid.body is not None and answers[0].get("id") is not None):
        return f"{describe(answers[0])} (id {json.dumps(answers[0].get('id'))}), expected error {expected}"
    return None


def check_invalid(campaign: Campaign, target: Target, invalid: Invalid) -> None:
    client, result = target.client, target.result
    mark = client.mark()
    try:
        request_id = send_invalid(client, invalid)
    except ServerGone as error:
        target.gone(invalid.label, error)
        return
    if not target.survived(invalid.label):
        return
    client.wait(lambda: bool(answers_to(client, invalid, request_id, mark)), campaign.grace_s)
    problem = judge_invalid(invalid, answers_to(client, invalid, request_id, mark))
    if problem:
        result.fail("unanswered", invalid.label, problem)


def run_params(campaign: Campaign, result: ClassResult) -> ClassResult:
    target = Target(campaign, result, setup=lambda client: open_document(client, PARAMS_URI, SOURCE))
    try:
        for invalid in params_inputs(campaign.rng("params"), campaign.quick):
            result.inputs += 1
            check_invalid(campaign, target, invalid)
    finally:
        target.close()
    return result


# -- 3. lifecycle ----------------------------------------------------------------------------


def expect_answer(client: RawClient, result: ClassResult, label: str, request_id: Any, timeout: float, kind: str, codes: tuple[int, ...] | None) -> dict[str, Any] | None:
    """One response to `request_id`: a result when `codes` is None, else one of those errors."""
    response = client.wait_response(request_id, timeout)
    if response is None and not client.alive():
        result.fail("crash", label, f"the server {client.describe_exit()}")
        return None
    time.sleep(0.05)
    answers = client.responses(request_id)
    expected = "a result" if codes is None else f"error {' or '.join(map(str, codes))}"
    if len(answers) != 1:
        result.fail(kind, label, f"{len(answers)} responses, expected one ({expected})")
        return answers[0] if answers else None
    answer = answers[0]
    if (codes is None and "result" not in answer) or (codes is not None and error_code(answer) not in codes):
        result.fail(kind, label, f"{describe(answer)}, expected {expected}")
    return answer


def expect_exit(client: RawClient, result: ClassResult, label: str, status: int, timeout: float) -> None:
    code = client.wait_exit(timeout)
    if code is None:
        result.fail("lost", label, f"the server still runs {timeout:.0f} s later, expected exit status {status}")
    elif code < 0:
        result.fail("crash", label, f"the server {client.describe_exit()}, expected exit status {status}")
    elif code != status:
        result.fail("lost", label, f"exit status {code}, expected {status}")


def lifecycle_with_shutdown(campaign: Campaign, result: ClassResult) -> None:
    client = campaign.spawn()
    try:
        state = {"textDocument": {"uri": "file:///faults/lifecycle.py"}}
        result.inputs += 1
        expect_answer(client, result, f"{STATE} before initialize", client.request(STATE, state), campaign.startup_s, "unanswered", (SERVER_NOT_INITIALIZED,))
        if not client.alive():
            return
        result.inputs += 2
        expect_answer(client, result, "initialize", client.request("initialize", initialize_params(FAST_OPTIONS)), campaign.startup_s, "lost", None)
        if not client.alive():
            return
        client.notify("initialized", {})
        if campaign.ping(client) is None:
            result.fail("crash", "initialized", f"the sentinel got no response; the server {client.describe_exit()}")
            return
        result.inputs += 3
        expect_answer(client, result, "shutdown", client.request("shutdown"), campaign.request_s, "lost", None)
        if not client.alive():
            result.fail("crash", "shutdown", f"the server {client.describe_exit()} before exit")
            return
        expect_answer(client, result, f"{STATE} after shutdown", client.request(STATE, state), campaign.request_s, "unanswered", (INVALID_REQUEST,))
        if not client.alive():
            result.fail("crash", "after shutdown, before exit", f"the server {client.describe_exit()}")
            return
        client.notify("exit")
        expect_exit(client, result, "exit after shutdown", 0, campaign.request_s)
    except ServerGone as error:
        result.fail("crash", "lifecycle", f"{error}; the server {client.describe_exit()}")
    finally:
        campaign.retire(client)


def lifecycle_without_shutdown(campaign: Campaign, result: ClassResult) -> None:
    try:
        client = campaign.start()
    except StartFailed as error:
        result.fail(error.kind, "initialize (second server)", str(error))
        return
    try:
        result.inputs += 1
        client.notify("exit")
        expect_exit(client, result, "exit without shutdown", 1, campaign.request_s)
    except ServerGone as error:
        result.fail("crash", "exit without shutdown", f"{error}; the server {client.describe_exit()}")
    finally:
        campaign.retire(client)


def run_lifecycle(campaign: Campaign, result: ClassResult) -> ClassResult:
    lifecycle_with_shutdown(campaign, result)
    lifecycle_without_shutdown(campaign, result)
    return result


# -- 4. edits --------------------------------------------------------------------------------


@dataclass
class EditSequence:
    label: str
    uri: str
    open_text: str
    open_version: int
    messages: list[dict[str, Any]]
    expected: dict[str, Any]


def edit_inputs(rng: random.Random, quick: bool, seed: int) -> Iterator[EditSequence]:
    for number in range(10 if quick else 80):
        uri = f"file:///faults/edits/{seed}-{number}.py"
        text, version = random_text(rng, 30), rng.randint(0, 5)
        reference = Reference(text, version)
        messages = list(random_edits(rng, reference, uri, past_end=0.01))
        label = f"sequence {number} (seed {seed}, {len(messages)} didChange)"
        yield EditSequence(label, uri, text, version, messages, reference.state(uri))


def check_state(campaign: Campaign, target: Target, label: str, uri: str, expected: dict[str, Any]) -> None:
    client, result = target.client, target.result
    try:
        request_id = client.request(STATE, {"textDocument": {"uri": uri}})
    except ServerGone as error:
        target.gone(label, error)
        return
    response = client.wait_response(request_id, campaign.request_s)
    if response is None:
        target.missing(f"{label}: {STATE}", f"no response within {campaign.request_s:.0f} s")
        return
    if "result" not in response:
        result.fail("lost", f"{label}: {STATE}", f"{describe(response)}, expected a result")
    elif difference := state_difference(expected, response["result"]):
        result.fail("desync", label, difference)


def run_edits(campaign: Campaign, result: ClassResult) -> ClassResult:
    target = Target(campaign, result)
    try:
        for sequence in edit_inputs(campaign.rng("edits"), campaign.quick, campaign.seed):
            result.inputs += len(sequence.messages) + 3
            try:
                open_document(target.client, sequence.uri, sequence.open_text, sequence.open_version)
                target.client.send_bytes(b"".join(frame(encode(message)) for message in sequence.messages))
            except ServerGone as error:
                target.gone(sequence.label, error)
                continue
            check_state(campaign, target, sequence.label, sequence.uri, sequence.expected)
            try:
                target.client.notify("textDocument/didClose", {"textDocument": {"uri": sequence.uri}})
            except ServerGone as error:
                target.gone(sequence.label, error)
    finally:
        target.close()
    return result


# -- 5. documents ----------------------------------------------------------------------------

LARGE_DOCUMENT_CHARACTERS = 5 * 2**20


def large_document() -> str:
    unit = "def function_{0}(value: int) -> int:\n    return value * {0} + len('{0}')\n\n\n"
    parts, size, index = [], 0, 0
    while size < LARGE_DOCUMENT_CHARACTERS:
        parts.append(unit.format(index))
        size += len(parts[-1])
        index += 1
    return "".join(parts) + "def last(x: int) -> int:\n    return "


def complete_once(campaign: Campaign, target: Target, label: str, params: dict[str, Any], method: str = INLINE, accept_errors: bool = False) -> dict[str, Any] | None:
    """A valid completion request: lost (or a crash) unless exactly one result (or, with
    `accept_errors`, one error) comes back."""
    try:
        request_id = target.client.request(method, params)
    except ServerGone as error:
        target.gone(label, error)
        return None
    response = target.client.wait_response(request_id, campaign.completion_s)
    if response is None:
        target.missing(label, f"no response within {campaign.completion_s:.0f} s")
        return None
    time.sleep(0.01)
    if len(target.client.responses(request_id)) != 1:
        target.result.fail("lost", label, f"{len(target.client.responses(request_id))} responses, expected one")
    elif "result" not in response and not accept_errors:
        target.result.fail("lost", label, f"{describe(response)}, expected a result")
    return response


def warm_up(campaign: Campaign, target: Target, result: ClassResult, uri: str) -> None:
    """The model loaded (or failed: then the completions say so) and one completion done."""
    campaign.wait_ready(target.client)
    open_document(target.client, uri, SOURCE)
    result.inputs += 2
    complete_once(campaign, target, "warm-up completion", inline_params(uri, end_position(SOURCE)))


def run_documents(campaign: Campaign, result: ClassResult) -> ClassResult:
    target = Target(campaign, result)
    uri = "file:///faults/documents/large.py"
    try:
        warm_up(campaign, target, result, "file:///faults/documents/small.py")
        before = target.client.rss_mb()
        text = large_document()
        result.inputs += 3
        try:
            open_document(target.client, uri, text)
        except ServerGone as error:
            target.gone("didOpen of a 5 MB document", error)
            return result
        label = "completion at the end of a 5 MB document"
        response = target.client.wait_response(target.client.request(INLINE, inline_params(uri, end_position(text))), campaign.completion_s)
        if response is None and not target.missing(label, f"no response within {campaign.completion_s:.0f} s"):
            return result
        target.client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        if not target.survived("didClose of a 5 MB document"):
            return result
        after = target.client.rss_mb()
        result.notes.append(f"memory: before open {before:.0f} MB, after close {after:.0f} MB")
        if after - before > MEMORY_GROWTH_LIMIT_MB:
            result.fail("memory", "5 MB document opened and closed", f"resident memory {before:.0f} MB before, {after:.0f} MB after (+{after - before:.0f} MB > {MEMORY_GROWTH_LIMIT_MB:.0f} MB)")
    except ServerGone as error:
        target.gone("5 MB document", error)
    finally:
        target.close()
    return result


# -- 6. cancellation storm -------------------------------------------------------------------


def storm_inputs(rng: random.Random, quick: bool, uri: str) -> Iterator[tuple[int, bytes]]:
    """(request id, the bytes of the request and the cancel of the previous one)."""
    previous = None
    lines = SOURCE.split("\n")
    for request_id in range(1000, 1000 + (10 if quick else 50)):
        line = rng.randrange(len(lines))
        data = frame(encode(request_message(INLINE, inline_params(uri, {"line": line, "character": len(lines[line])}), request_id)))
        if previous is not None:
            data += frame(encode(notification_message("$/cancelRequest", {"id": previous})))
        previous = request_id
        yield request_id, data


def judge_storm(client: RawClient, request_id: int) -> str | None:
    answers = client.responses(request_id)
    if len(answers) != 1:
        return f"{len(answers)} responses, expected one"
    if "result" not in answers[0] and error_code(answers[0]) != REQUEST_CANCELLED:
        return f"{describe(answers[0])}, expected a result or error {REQUEST_CANCELLED}"
    return None


def run_cancellation(campaign: Campaign, result: ClassResult) -> ClassResult:
    target = Target(campaign, result)
    uri = "file:///faults/storm.py"
    try:
        warm_up(campaign, target, result, uri)
        storm = list(storm_inputs(campaign.rng("cancellation"), campaign.quick, uri))
        result.inputs += len(storm) * 2 - 1
        target.client.send_bytes(b"".join(data for _, data in storm))
        deadline = time.monotonic() + campaign.completion_s
        for request_id, _ in storm:
            target.client.wait_response(request_id, max(deadline - time.monotonic(), 0))
        if target.survived(f"cancellation storm of {len(storm)}"):
            for request_id, _ in storm:
                problem = judge_storm(target.client, request_id)
                if problem:
                    result.fail("lost", f"storm request {request_id - 999} of {len(storm)}", problem)
    except ServerGone as error:
        target.gone("cancellation storm", error)
    finally:
        target.close()
    return result


# -- 7. settings abuse -----------------------------------------------------------------------

# (label, the JSON text of a settings object, whether it is JSON at all). Each of these
# starts a server of its own; didChangeConfiguration sends these and CONFIGURATION_ONLY.
INITIALIZATION_SETTINGS: tuple[tuple[str, str, bool], ...] = (
    ("maxTokens Infinity", '{"maxTokens": Infinity}', False),
    ("maxTokens 1e999", '{"maxTokens": 1e999}', True),
    ("temperature NaN", '{"temperature": NaN}', False),
    ("maxTokens 1.9", '{"maxTokens": 1.9}', True),
    ("threads -1", '{"threads": -1}', True),
    ("contextWindow 16384", '{"contextWindow": 16384}', True),
    ("wrong types", '{"maxTokens": "8", "enabled": "yes", "constraints": 3, "contextWindow": null, "modelPath": ["/tmp/x.gguf"]}', True),
)
CONFIGURATION_ONLY: tuple[tuple[str, str, bool], ...] = (
    ("settings a string", '"fast"', True),
    ("timeoutMs -Infinity", '{"timeoutMs": -Infinity}', False),
    ("maxTokens a string", '{"maxTokens": "8"}', True),
    ("enabled a string", '{"enabled": "yes"}', True),
    ("constraints a number", '{"constraints": 3}', True),
    ("contextWindow null", '{"contextWindow": null}', True),
    ("settings an array", "[1, 2]", True),
)


def settings_inputs(quick: bool, configuration: bool = False) -> Iterator[tuple[str, str, bool]]:
    if quick:
        yield from (INITIALIZATION_SETTINGS[i] for i in (0, 2, 5))
        return
    yield from INITIALIZATION_SETTINGS
    if configuration:
        yield from CONFIGURATION_ONLY


def initialize_body(request_id: int, options_json: str) -> bytes:
    params = '{"processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": %s}' % options_json
    return ('{"jsonrpc": "2.0", "id": %d, "method": "initialize", "params": %s}' % (request_id, params)).encode()


def initialize_raw(campaign: Campaign, result: ClassResult, label: str, options_json: str, is_json: bool) -> RawClient | None:
    """A fresh server initialized with raw settings; None (with a failure) when it won't start.
    Settings that are not JSON may be refused as a parse error, then a clean initialize follows."""
    client = campaign.spawn()
    client.send_bytes(frame(initialize_body(1, options_json)))
    client.wait(lambda: bool(client.by_id), campaign.startup_s)
    response, refused = client.wait_response(1, 0), client.null_id_responses(0)
    if response is None and not is_json and [error_code(r) for r in refused] == [PARSE_ERROR]:
        response = client.wait_response(client.request("initialize", initialize_params(FAST_OPTIONS)), campaign.startup_s)
    if response is not None and "result" in response:
        client.notify("initialized", {})
        return client
    kind = "crash" if not client.alive() else ("lost" if is_json else "unanswered")
    result.fail(kind, f"initialize with {label}", describe(response) if client.alive() else f"the server {client.describe_exit()}")
    campaign.retire(client)
    return None


def still_completing(campaign: Campaign, target: Target, label: str, uri: str) -> None:
    if target.survived(label):
        complete_once(campaign, target, f"completion after {label}", inline_params(uri, end_position(SOURCE)))


def fast_settings_besides(settings_json: str) -> dict[str, Any]:
    """FAST_OPTIONS without the keys under test: a refused initializationOptions leaves the
    slower defaults, and this keeps completions fast without hiding a value the server took."""
    abused = json.loads(settings_json)
    return {key: value for key, value in FAST_OPTIONS.items() if not isinstance(abused, dict) or key not in abused}


def settings_from_initialize(campaign: Campaign, result: ClassResult) -> None:
    uri = "file:///faults/settings.py"
    for label, options_json, is_json in settings_inputs(campaign.quick):
        result.inputs += 3
        client = initialize_raw(campaign, result, label, options_json, is_json)
        if client is None:
            continue
        target = Target(campaign, result, client=client)
        try:
            client.notify("workspace/didChangeConfiguration", {"settings": {"accs": fast_settings_besides(options_json)}})
            open_document(client, uri, SOURCE)
            still_completing(campaign, target, f"initializationOptions {label}", uri)
        except ServerGone as error:
            target.gone(f"initializationOptions {label}", error)
        finally:
            target.close()


def settings_from_configuration(campaign: Campaign, result: ClassResult) -> None:
    uri = "file:///faults/settings-change.py"
    target = Target(campaign, result, setup=lambda client: open_document(client, uri, SOURCE))
    try:
        for label, settings_json, _ in settings_inputs(campaign.quick, configuration=True):
            result.inputs += 2
            body = '{"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration", "params": {"settings": {"accs": %s}}}' % settings_json
            try:
                target.client.send_bytes(frame(body.encode()))
            except ServerGone as error:
                target.gone(f"didChangeConfiguration {label}", error)
                continue
            still_completing(campaign, target, f"didChangeConfiguration {label}", uri)
    finally:
        target.close()


def run_settings(campaign: Campaign, result: ClassResult) -> ClassResult:
    settings_from_initialize(campaign, result)
    settings_from_configuration(campaign, result)
    return result


# -- 8. reload during load -------------------------------------------------------------------


def reload_inputs(rng: random.Random, quick: bool) -> Iterator[list[dict[str, Any]]]:
    yield [{"contextWindow": 1024}, {"contextWindow": 2048}, {"contextWindow": 1536, "threads": 1}, {"threads": 2}]
    for _ in range(0 if quick else 2):
        yield [{"contextWindow": rng.choice((512, 1024, 1536, 2048)), "threads": rng.choice((0, 1, 2))} for _ in range(rng.randint(2, 6))]


def initialize_only(campaign: Campaign, result: ClassResult, label: str) -> RawClient | None:
    """A fresh server past `initialize` but not `initialized`; None (with a failure) if not."""
    client = campaign.spawn()
    response = client.wait_response(client.request("initialize", initialize_params(FAST_OPTIONS)), campaign.startup_s)
    if response is not None and "result" in response:
        return client
    if client.alive():
        result.fail("lost", f"{label}: initialize", describe(response))
    else:
        result.fail("crash", f"{label}: initialize", f"the server {client.describe_exit()}")
    campaign.retire(client)
    return None


def reload_burst(uri: str, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    burst = [notification_message("initialized", {})]
    burst += [notification_message("workspace/didChangeConfiguration", {"settings": {"accs": change}}) for change in changes]
    burst.append(notification_message("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}}))
    return burst


def run_reload(campaign: Campaign, result: ClassResult) -> ClassResult:
    uri = "file:///faults/reload.py"
    for number, changes in enumerate(reload_inputs(campaign.rng("reload"), campaign.quick)):
        label = f"reload burst {number} ({' -> '.join(json.dumps(c, separators=(',', ':')) for c in changes)})"
        client = initialize_only(campaign, result, label)
        if client is None:
            continue
        target = Target(campaign, result, client=client)
        try:
            burst = reload_burst(uri, changes)
            result.inputs += len(burst) + 1
            client.send_bytes(b"".join(frame(encode(message)) for message in burst))
            if complete_once(campaign, target, label, inline_params(uri, end_position(SOURCE)), accept_errors=True) is not None:
                target.survived(label)
        except ServerGone as error:
            target.gone(label, error)
        finally:
            target.close()
    return result


# -- 9. stale --------------------------------------------------------------------------------


def stale_texts(rng: random.Random, trial: int) -> tuple[str, str]:
    """A document whose prompt takes a while (so the completion outlasts the reopen, sent
    in the same write), and the other text."""
    salt = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
    body = "".join(f"def helper_{salt}_{i}(value: int) -> int:\n    return value + {i}\n\n\n" for i in range(6))
    first = f"# {salt} {trial}\n{body}def add(a: int, b: int) -> int:\n    return "
    return first, f"# reopened {salt}\nx = 1\n"


def run_stale(campaign: Campaign, result: ClassResult) -> ClassResult:
    target = Target(campaign, result)
    rng = campaign.rng("stale")
    try:
        warm_up(campaign, target, result, "file:///faults/stale/warm.py")
        for trial in range(2 if campaign.quick else 4):
            stale_trial(campaign, target, trial, *stale_texts(rng, trial))
    except ServerGone as error:
        target.gone("stale", error)
    finally:
        target.close()
    return result


def stale_trial(campaign: Campaign, target: Target, trial: int, first: str, second: str) -> None:
    uri, label = f"file:///faults/stale/{trial}.py", f"trial {trial}"
    client, result = target.client, target.result
    open_document(client, uri, first, 1)
    request_id = 5000 + trial
    burst = [
        request_message(INLINE, inline_params(uri, end_position(first)), request_id),
        notification_message("textDocument/didClose", {"textDocument": {"uri": uri}}),
        notification_message("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": second}}),
    ]
    result.inputs += 4
    client.send_bytes(b"".join(frame(encode(message)) for message in burst))
    response = client.wait_response(request_id, campaign.completion_s)
    if response is None:
        target.missing(label, f"the completion got no response within {campaign.completion_s:.0f} s")
        return
    if items_of(response):
        result.fail("stale", label, f"{len(items_of(response))} item(s) for the closed text, e.g. {json.dumps(items_of(response)[0].get('insertText', items_of(response)[0]))[:60]}")
    check_state(campaign, target, f"{label}, after the reopen", uri, Reference(second, 1).state(uri))
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})


# -- 10. soak --------------------------------------------------------------------------------


def soak_inputs(rng: random.Random, quick: bool, uri: str, reference: Reference) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, message) for requests (`inline`, `completion`, `state`) and `change`s."""
    for _ in range(30 if quick else 200):
        roll = rng.random()
        if roll < 0.45:
            yield "change", next(random_edits(rng, reference, uri, past_end=0.0), did_change(uri, reference.version, []))
        elif roll < 0.9:
            yield "state", request_message(STATE, {"textDocument": {"uri": uri}}, None)
        else:
            lines = reference.lines()
            line = rng.randrange(len(lines))
            position = {"line": line, "character": utf16_length(lines[line])}
            method = INLINE if roll < 0.97 else COMPLETION
            params = inline_params(uri, position) if method == INLINE else {"textDocument": {"uri": uri}, "position": position}
            yield method, request_message(method, params, None)


def run_soak(campaign: Campaign, result: ClassResult) -> ClassResult:
    uri = "file:///faults/soak.py"
    reference = Reference(SOURCE, 1)
    # After a crash, the fresh server gets the document as the reference has it now.
    target = Target(campaign, result, setup=lambda client: open_document(client, uri, reference.text, reference.version))
    try:
        warm_up(campaign, target, result, uri)
        warmed, pid = target.client.rss_mb(), target.client.pid
        for number, (kind, message) in enumerate(soak_inputs(campaign.rng("soak"), campaign.quick, uri, reference)):
            result.inputs += 1
            soak_step(campaign, target, f"soak {number}: {kind}", kind, message, reference.state(uri))
        end = target.client.rss_mb()
        if target.client.pid == pid and end - warmed > MEMORY_GROWTH_LIMIT_MB:
            result.fail("memory", "soak", f"resident memory {warmed:.0f} MB after warm-up, {end:.0f} MB at the end (+{end - warmed:.0f} MB)")
    except ServerGone as error:
        target.gone("soak", error)
    finally:
        target.close()
    return result


def soak_step(campaign: Campaign, target: Target, label: str, kind: str, message: dict[str, Any], expected: dict[str, Any]) -> None:
    if kind == "change":
        target.client.send(message)
    elif kind == "state":
        check_state(campaign, target, label, expected["uri"], expected)
    else:
        complete_once(campaign, target, label, message["params"], message["method"])


# -- the report ------------------------------------------------------------------------------

CLASSES: dict[str, Callable[[Campaign, ClassResult], ClassResult]] = {
    "frames": run_frames,
    "params": run_params,
    "lifecycle": run_lifecycle,
    "edits": run_edits,
    "documents": run_documents,
    "cancellation": run_cancellation,
    "settings": run_settings,
    "reload": run_reload,
    "stale": run_stale,
    "soak": run_soak,
}


def parse_classes(text: str | None) -> list[str]:
    names = [name.strip() for name in (text or "").split(",") if name.strip()] or list(CLASSES)
    unknown = [name for name in names if name not in CLASSES]
    if unknown:
        raise ValueError(f"unknown fault classes: {', '.join(unknown)} (known: {', '.join(CLASSES)})")
    return names


def run_class(campaign: Campaign, name: str) -> ClassResult:
    began, result = time.monotonic(), ClassResult(name)
    try:
        CLASSES[name](campaign, result)
    except StartFailed as error:  # a fresh server that never answered: the class ends here
        result.fail(error.kind, "server start", str(error))
    except ServerGone as error:
        result.fail("crash", "server", str(error))
    finally:
        campaign.close_all()
    print(f"faults: {name}: {result.inputs} inputs, {len(result.all_failures())} failures ({time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)
    return result


def report(results: list[ClassResult], seconds: float) -> str:
    inputs = sum(result.inputs for result in results)
    counts = ", ".join(f"{title} {sum(result.count(kind) for result in results)}" for title, kind in SUMMARY_COUNTS)
    lines = [f"faults: inputs {inputs}, {counts} ({seconds:.0f} s)"]
    lines += [note for result in results for note in result.notes]
    lines += [failure.line() for result in results for failure in result.all_failures()]
    return "\n".join(lines)


def run(seed: int = 0, quick: bool = False, classes: str | Sequence[str] | None = None, campaign: Campaign | None = None) -> tuple[str, int]:
    """Run the chosen classes; the report and the exit status (1 when anything failed)."""
    names = parse_classes(classes if isinstance(classes, str) or classes is None else ",".join(classes))
    campaign = campaign or Campaign(seed=seed, quick=quick)
    began = time.monotonic()
    try:
        results = [run_class(campaign, name) for name in names]
    finally:
        campaign.close_all()
    failed = any(result.all_failures() for result in results)
    return report(results, time.monotonic() - began), 1 if failed else 0
