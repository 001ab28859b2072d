"""The transport against a hostile client: raw bytes over a real stdio connection to
`python -m accs_lsp serve`, every expected answer read with a timeout so that a missing one
fails the test instead of hanging it."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accs_lsp.server.transport import MAX_FRAME_BYTES

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
ANSWER_TIMEOUT = 15.0
URI = "file:///tmp/accs_transport/example.py"
SOURCE = "def add(a: int, b: int) -> int:\n    return a + b\n\n\ndef double(x: int) -> int:\n    return \n"


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def request(msg_id: Any, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def notification(method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def at(line: Any, character: Any = 0, **extra: Any) -> dict[str, Any]:
    return {"textDocument": {"uri": URI}, "position": {"line": line, "character": character}, **extra}


def error_code(response: dict[str, Any]) -> int | None:
    return response.get("error", {}).get("code")


class Server:
    """`accs-lsp serve` on pipes; a thread splits its stdout into messages."""

    def __init__(self, log_path: Path) -> None:
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "accs_lsp", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self.ids = itertools.count(1000)
        self.initialized = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            headers: dict[str, str] = {}
            while (line := stdout.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            if not line:
                self.messages.put(None)
                return
            message = json.loads(stdout.read(int(headers["content-length"])))
            if "method" in message and "id" not in message:
                self.notifications.append(message)
            self.messages.put(message)

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        self.write(frame(message))

    def next_message(self, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any] | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message from the server within {timeout} s") from None

    def responses_until(self, msg_id: Any, timeout: float = ANSWER_TIMEOUT) -> list[dict[str, Any]]:
        """Every response up to and including the one for msg_id (notifications skipped)."""
        responses = []
        while True:
            message = self.next_message(timeout)
            assert message is not None, f"the server closed its output before answering {msg_id!r}"
            if "method" not in message:
                responses.append(message)
                if message.get("id") == msg_id:
                    return responses

    def ask(self, method: str, params: Any = None) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.send(request(msg_id, method, params))
        return self.responses_until(msg_id)[-1]

    def exchange(self, data: bytes) -> list[dict[str, Any]]:
        """Write data, then a request that must be answered; the responses before its answer."""
        self.write(data)
        msg_id = next(self.ids)
        self.send(request(msg_id, "accs/ping"))
        *before, answer = self.responses_until(msg_id)
        assert error_code(answer) == (METHOD_NOT_FOUND if self.initialized else SERVER_NOT_INITIALIZED), answer
        return before

    def initialize(self, open_document: bool = True, **options: Any) -> None:
        params = {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": options}
        assert "result" in self.ask("initialize", params)
        self.initialized = True
        if open_document:
            item = {"uri": URI, "languageId": "python", "version": 1, "text": SOURCE}
            self.send(notification("textDocument/didOpen", {"textDocument": item}))

    def close_input(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def wait(self, timeout: float = ANSWER_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit within {timeout} s") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.log.close()


def summary(responses: list[dict[str, Any]]) -> list[tuple[Any, int | None]]:
    return [(response.get("id"), error_code(response)) for response in responses]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "server.log")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One initialized server for the cases that end with a request answered, which leaves
    neither framing nor lifecycle state behind (the model never loads: no `initialized`)."""
    started = Server(tmp_path_factory.mktemp("transport") / "server.log")
    started.initialize()
    yield started
    started.stop()


# -- framing ----------------------------------------------------------------------------------

PING_BODY = json.dumps(request("framed", "accs/ping")).encode()
LENGTH = len(PING_BODY)
ANSWERED = [("framed", METHOD_NOT_FOUND)]
NULL_PARSE_ERROR = [(None, PARSE_ERROR)]

FRAMES: dict[str, tuple[bytes, list[tuple[Any, int | None]]]] = {
    # refused headers: the frame is skipped unread, nothing is answered
    "content-length-zero": (b"Content-Length: 0\r\n\r\n" + PING_BODY, []),
    "content-length-negative": (b"Content-Length: -5\r\n\r\n" + PING_BODY, []),
    "content-length-not-a-number": (b"Content-Length: abc\r\n\r\n" + PING_BODY, []),
    "content-length-empty": (b"Content-Length:\r\n\r\n" + PING_BODY, []),
    "content-length-huge": (b"Content-Length: 1000000000000000\r\n\r\n" + PING_BODY, []),
    "content-length-over-the-limit": (b"Content-Length: %d\r\n\r\n%s" % (MAX_FRAME_BYTES + 1, PING_BODY), []),
    "content-length-missing": (b"Content-Type: application/vscode-jsonrpc\r\n\r\n" + PING_BODY, []),
    # delimited but broken bodies: ParseError with id null
    "content-length-too-short": (b"Content-Length: %d\r\n\r\n%s" % (LENGTH - 5, PING_BODY), NULL_PARSE_ERROR),
    "content-length-too-long": (b"Content-Length: %d\r\n\r\n%s" % (LENGTH + 40, PING_BODY), NULL_PARSE_ERROR),
    # too long by a few bytes: the body ends inside the next frame's "Content-Length"
    "content-length-nine-too-long": (b"Content-Length: %d\r\n\r\n%s" % (LENGTH + 9, PING_BODY), NULL_PARSE_ERROR),
    "body-not-json": (b"Content-Length: 9\r\n\r\n{not json", NULL_PARSE_ERROR),
    "body-not-utf8": (b"Content-Length: 4\r\n\r\n\xff\xfe\xfd\xfc", NULL_PARSE_ERROR),
    "body-nested-too-deep": (b"Content-Length: 100000\r\n\r\n" + b"[" * 100000, NULL_PARSE_ERROR),
    # garbage before a valid frame is skipped
    "garbage-line-before-the-header": (b"hello there\r\n" + frame(request("framed", "accs/ping")), ANSWERED),
    "garbage-on-the-header-line": (b"\x00\xffjunk" + frame(request("framed", "accs/ping")), ANSWERED),
    "a-long-garbage-line": (b"x" * 20000 + b"\n" + frame(request("framed", "accs/ping")), ANSWERED),
    "long-garbage-without-a-newline": (b"y" * 20000 + frame(request("framed", "accs/ping")), ANSWERED),
    # what the base protocol allows
    "lowercase-header-name": (b"content-length: %d\r\n\r\n%s" % (LENGTH, PING_BODY), ANSWERED),
    "lf-only-line-ends": (b"Content-Length: %d\n\n%s" % (LENGTH, PING_BODY), ANSWERED),
    "content-type-after": (
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n%s" % (LENGTH, PING_BODY),
        ANSWERED,
    ),
    "content-type-before": (b"Content-Type: application/vscode-jsonrpc\r\nContent-Length: %d\r\n\r\n%s" % (LENGTH, PING_BODY), ANSWERED),
}


@pytest.mark.parametrize("kind", list(FRAMES))
def test_a_bad_frame_does_not_stop_the_next_request_being_answered(shared: Server, kind: str):
    data, expected = FRAMES[kind]
    assert summary(shared.exchange(data)) == expected
    assert shared.process.poll() is None


# -- params and envelopes -----------------------------------------------------------------

COMPLETION = "textDocument/completion"
INLINE = "textDocument/inlineCompletion"
INVOKED = {"triggerKind": 1}

MESSAGES: dict[str, tuple[Any, list[tuple[Any, int | None]]]] = {
    "negative-line": (request("a", COMPLETION, at(-1)), [("a", INVALID_PARAMS)]),
    "negative-character": (request("b", INLINE, at(0, -3, context=INVOKED)), [("b", INVALID_PARAMS)]),
    "line-past-uinteger": (request("c", COMPLETION, at(2**31)), [("c", INVALID_PARAMS)]),
    "character-past-uinteger": (request("d", INLINE, at(0, 2**40, context=INVOKED)), [("d", INVALID_PARAMS)]),
    "line-a-string": (request("e", COMPLETION, at("3")), [("e", INVALID_PARAMS)]),
    "missing-position": (request("f", COMPLETION, {"textDocument": {"uri": URI}}), [("f", INVALID_PARAMS)]),
    "params-null": (request("g", COMPLETION, None), [("g", INVALID_PARAMS)]),
    "params-an-array": (request("h", COMPLETION, [URI, 0, 0]), [("h", INVALID_PARAMS)]),
    "params-a-string": (request("i", COMPLETION, "here"), [("i", INVALID_PARAMS)]),
    "inline-context-a-number": (request("j", INLINE, at(0, context=5)), [("j", INVALID_PARAMS)]),
    "inline-context-bad-trigger": (request("k", INLINE, at(0, context={"triggerKind": 99})), [("k", INVALID_PARAMS)]),
    "inline-context-missing": (request("l", INLINE, at(0)), [("l", INVALID_PARAMS)]),
    "command-a-number": (request("m", "workspace/executeCommand", {"command": 5}), [("m", INVALID_PARAMS)]),
    "command-an-array": (request("n", "workspace/executeCommand", {"command": ["accs.feedback"]}), [("n", INVALID_PARAMS)]),
    "batch": ([request("o", "accs/ping"), request("p", "accs/ping")], [(None, INVALID_REQUEST)]),
    "notification-with-an-id": (request(7, "textDocument/didClose", {"textDocument": {"uri": URI}}), [(7, INVALID_REQUEST)]),
    "id-a-float": (request(1.5, "accs/ping"), [(None, INVALID_REQUEST)]),
    "id-a-boolean": (request(True, "accs/ping"), [(None, INVALID_REQUEST)]),
    "id-an-object": (request({"n": 1}, "accs/ping"), [(None, INVALID_REQUEST)]),
    "id-null": (request(None, "accs/ping"), [(None, INVALID_REQUEST)]),
    "method-a-number": ({"jsonrpc": "2.0", "id": "q", "method": 5}, [("q", INVALID_REQUEST)]),
    "no-method": ({"jsonrpc": "2.0", "id": "r"}, [("r", INVALID_REQUEST)]),
    "wrong-jsonrpc-version": ({"jsonrpc": "1.0", "id": "s", "method": "accs/ping"}, [("s", INVALID_REQUEST)]),
    "not-an-object": (42, [(None, INVALID_REQUEST)]),
    "unknown-request": (request("t", "accs/noSuchMethod"), [("t", METHOD_NOT_FOUND)]),
    "unknown-dollar-notification": (notification("$/noSuchThing", {"x": 1}), []),
    "unknown-notification": (notification("accs/noSuchThing"), []),
    "notification-with-bad-params": (notification("textDocument/didChange", {"textDocument": 5}), []),
    "request-without-an-id": (notification(COMPLETION, at(0)), []),
    "cancel-with-bad-params": (notification("$/cancelRequest", {"id": [1]}), []),
}


@pytest.mark.parametrize("kind", list(MESSAGES))
def test_a_bad_message_gets_exactly_one_error_and_the_server_keeps_serving(shared: Server, kind: str):
    message, expected = MESSAGES[kind]
    responses = shared.exchange(frame(message))
    assert summary(responses) == expected
    for response in responses:
        error = response["error"]
        assert "\n" not in error["message"] and "Traceback" not in error["message"] and "data" not in error
        if error["code"] == INVALID_PARAMS:
            assert error["message"].startswith(f"accs-lsp: {message['method']}: invalid params: ")


def test_a_notification_sent_with_an_id_is_not_run(shared: Server):
    other = "file:///tmp/accs_transport/other.py"
    item = {"uri": other, "languageId": "python", "version": 1, "text": "x = 1\n"}
    assert summary(shared.exchange(frame(request(8, "textDocument/didOpen", {"textDocument": item})))) == [(8, INVALID_REQUEST)]
    shared.send(request("probe", INLINE, {"textDocument": {"uri": other}, "position": {"line": 0, "character": 0}, "context": INVOKED}))
    (answer,) = [r for r in shared.responses_until("probe") if r.get("id") == "probe"]
    assert error_code(answer) == INVALID_PARAMS and "not open" in answer["error"]["message"]


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    garbage=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [b"Content-Length: ", b"content-length:", b"\r\n", b"\n", b"\r\n\r\n", b"Content-Length: 5\r\n\r\n", b"{", b"}"]
                + [b"Content-Length: 99999999999999\r\n", b"Content-Type: x\r\n", b"Content-Length: 70\r\n\r\n", b"7"]
            ),
        ),
        max_size=12,
    ).map(b"".join)
)
def test_garbage_before_a_request_never_stops_a_later_request_being_answered(shared: Server, garbage: bytes):
    shared.exchange(garbage + frame(request("after-garbage", "accs/ping")))
    assert shared.process.poll() is None


# -- lifecycle --------------------------------------------------------------------------------


def test_before_initialize_requests_get_server_not_initialized_and_notifications_are_dropped(server: Server):
    assert summary(server.exchange(frame(request("early", COMPLETION, at(0))))) == [("early", SERVER_NOT_INITIALIZED)]
    assert summary(server.exchange(frame(notification("initialized", {})))) == []
    server.initialize()
    assert summary(server.exchange(b"")) == []


def test_a_second_initialize_is_an_invalid_request(server: Server):
    server.initialize(open_document=False)
    again = request("again", "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert summary(server.exchange(frame(again))) == [("again", INVALID_REQUEST)]


def test_after_shutdown_requests_are_invalid_and_exit_ends_with_status_0(server: Server):
    server.initialize()
    shutdown = server.ask("shutdown")
    assert "error" not in shutdown and shutdown["result"] is None
    server.send(notification("textDocument/didClose", {"textDocument": {"uri": URI}}))
    server.send(request("late", COMPLETION, at(0)))
    assert summary(server.responses_until("late")) == [("late", INVALID_REQUEST)]
    server.send(notification("exit"))
    assert server.wait() == 0
    while (message := server.next_message()) is not None:  # until the server closes its output
        assert "method" in message, message


def test_exit_without_shutdown_ends_with_status_1(server: Server):
    server.initialize()
    server.send(notification("exit"))
    assert server.wait() == 1


def test_exit_before_initialize_ends_with_status_1(server: Server):
    server.send(notification("exit"))
    assert server.wait() == 1


@pytest.mark.parametrize("shutdown, status", [(True, 0), (False, 1)])
def test_end_of_input_counts_as_exit(server: Server, shutdown: bool, status: int):
    server.initialize()
    if shutdown:
        server.ask("shutdown")
    server.write(b"Content-Length: 50\r\n\r\n{")  # and the input ends inside a frame
    server.close_input()
    assert server.wait() == status


def test_open_documents_are_kept_once_not_in_pygls_workspace():
    from accs_lsp.server import create_server
    from accs_lsp.server.transport import Frame

    server = create_server()
    server.protocol.set_writer(type("Discard", (), {"write": lambda self, data: None})())
    item = {"uri": URI, "languageId": "python", "version": 1, "text": SOURCE}
    for message in [
        request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}}),
        notification("textDocument/didOpen", {"textDocument": item}),
    ]:
        server.protocol.receive(Frame(json.dumps(message).encode()))
    assert URI in server.documents
    assert server.workspace.text_documents == {}


# -- output while the model loads -------------------------------------------------------------


def test_requests_while_the_model_loads_are_all_answered(server: Server):
    """llama.cpp points fds 1 and 2 at /dev/null while it loads a model: answers written then
    must still reach the client."""
    server.initialize(maxTokens=4, timeoutMs=60000)
    server.send(notification("initialized", {}))
    server.send(request("inline", INLINE, at(5, 11, context=INVOKED)))
    sent = []
    deadline = time.monotonic() + 60
    while not any(n["method"] == "accs/status" and n["params"]["state"] != "loading" for n in server.notifications):
        assert time.monotonic() < deadline, "the model did not load within 60 s"
        sent.append(msg_id := next(server.ids))
        server.send(request(msg_id, "accs/ping"))
        time.sleep(0.02)
    status = [n["params"] for n in server.notifications if n["method"] == "accs/status"][-1]
    assert status["state"] == "ready", status
    waiting = {*sent, "inline"}
    answers: dict[Any, dict[str, Any]] = {}
    while waiting - answers.keys():
        message = server.next_message(timeout=60)
        assert message is not None, f"the server closed its output; unanswered: {sorted(map(str, waiting - answers.keys()))}"
        if "method" not in message:
            answers[message["id"]] = message
    assert len(sent) >= 5
    assert all(error_code(answers[msg_id]) == METHOD_NOT_FOUND for msg_id in sent)
    assert "result" in answers["inline"], answers["inline"]
