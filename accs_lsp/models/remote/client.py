"""HTTP for a remote inference engine: persistent connections, deadlines, retries, one-line errors.

The standard library only (http.client): the server imports this before anything heavy,
and a completion client needs no more than JSON over HTTP/1.1 with keep-alive.

Secrets: the API key comes from $ACCS_ENGINE_API_KEY (or credentials in the URL) and goes
into the Authorization header only. Neither the key nor the headers are ever logged or put
in an error message; the URL is shown without its credentials.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

API_KEY_ENV_VAR = "ACCS_ENGINE_API_KEY"
# The engine the server uses when the `engine` setting is empty (`serve --engine URL` sets it).
ENGINE_ENV_VAR = "ACCS_ENGINE"
# Retries after the first attempt, for connection errors and 5xx answers, waiting
# BACKOFF_SECONDS, then twice that, within the request's deadline.
RETRIES = 2
BACKOFF_SECONDS = 0.25
# A request without a deadline of its own (the CLI without --timeout-ms).
DEFAULT_TIMEOUT_SECONDS = 60.0
# Idle connections kept per engine (a greedy request and a sampling request run at once).
KEPT_CONNECTIONS = 4
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
MAX_MESSAGE = 200


class EngineError(RuntimeError):
    """The engine could not be used for this request; the message is one line naming it."""


class EngineUnreachable(EngineError):
    """No connection (refused, unknown host, reset before an answer), after the retries."""


class EngineTimeout(EngineError):
    """The engine did not answer before the request's deadline."""


class EngineCancelled(EngineError):
    """The request was broken off (`EngineClient.abort`): the completion was cancelled."""


class EngineAnswerError(EngineError):
    """The engine answered with an HTTP error (after the retries for 5xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EngineURL:
    """An engine's base URL (`http://host:port/v1`), split for http.client."""

    scheme: str
    host: str
    port: int
    base_path: str  # "/v1": where /completions and /models are
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def display(self) -> str:
        """The URL as shown in logs, errors and `--json`: no credentials, no query."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.scheme == "https" else 80
        netloc = host if self.port == default_port else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.base_path}"

    @property
    def root_path(self) -> str:
        """The server's root, where llama-server has /props and /infill and vLLM /version."""
        return self.base_path[: -len("/v1")] if self.base_path.endswith("/v1") else self.base_path

    def path(self, endpoint: str, root: bool = False) -> str:
        return (self.root_path if root else self.base_path) + endpoint


def parse_engine_url(text: str) -> EngineURL:
    """`http[s]://host[:port][/path]`; a URL without a path gets `/v1`. Raises ValueError."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"not an engine URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("an engine URL starts with http:// or https:// (e.g. http://gpu-box:8000/v1)")
    if not parts.hostname:
        raise ValueError("an engine URL names a host (e.g. http://gpu-box:8000/v1)")
    path = parts.path.rstrip("/") or "/v1"
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return EngineURL(
        parts.scheme, parts.hostname, port, path, unquote(parts.username or ""), unquote(parts.password or "")
    )


def answer_message(status: int, reason: str, payload: bytes) -> str:
    """The engine's own message from an error answer, on one line: OpenAI's
    `{"error": {"message"}}`, FastAPI's `{"detail"}`, llama-server's `{"error": {"message"}}`,
    or the start of a plain body."""
    text = payload.decode("utf-8", errors="replace").strip()
    message: Any = None
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("error", body.get("detail", body.get("message")))
        if isinstance(message, dict):
            message = message.get("message", message.get("msg"))
        if isinstance(message, list) and message:  # FastAPI validation errors
            message = message[0].get("msg") if isinstance(message[0], dict) else message[0]
    if not isinstance(message, str) or not message.strip():
        message = text or reason or "no message"
    line = message.strip().splitlines()[0] if message.strip() else "no message"
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def connection_error_text(error: BaseException) -> str:
    """`Connection refused`, `Name or service not known`...: what the system said."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, http.client.RemoteDisconnected):
        return "the connection closed without an answer"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class EngineClient:
    """JSON over HTTP/1.1 to one engine, safe to use from several threads at once.

    Connections are kept open between requests (keep-alive) and reused; a request that
    fails on a reused connection, which the engine may have closed while it was idle, is
    sent again at once on a new one. Connection errors and 5xx answers are retried
    `retries` times with exponential backoff, within the request's deadline.
    """

    def __init__(
        self,
        url: EngineURL,
        api_key: str | None = None,
        retries: int = RETRIES,
        backoff_seconds: float = BACKOFF_SECONDS,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV_VAR, "")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "accs-lsp"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        elif url.username or url.password:
            token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._idle: list[http.client.HTTPConnection] = []
        self._busy: set[http.client.HTTPConnection] = set()
        self._lock = threading.Lock()
        self._epoch = 0  # abort() moves it on: the requests begun before it stop
        self.connections_opened = 0  # for tests and logs: how often keep-alive did not help

    @property
    def display(self) -> str:
        return self.url.display

    def get(self, path: str, deadline: float | None = None) -> Any:
        return self.request("GET", path, None, deadline)

    def post(self, path: str, body: dict[str, Any], deadline: float | None = None) -> Any:
        return self.request("POST", path, body, deadline)

    def request(self, method: str, path: str, body: dict[str, Any] | None, deadline: float | None = None) -> Any:
        """The decoded JSON answer. Raises EngineUnreachable, EngineTimeout or EngineAnswerError."""
        if deadline is None:
            deadline = time.monotonic() + DEFAULT_TIMEOUT_SECONDS
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        epoch = self._epoch
        attempt = 0
        while True:
            try:
                status, reason, data = self._exchange(method, path, payload, deadline, epoch)
            except (TimeoutError, socket.timeout):
                raise self._timeout(deadline) from None
            except (OSError, http.client.HTTPException) as error:
                if epoch != self._epoch:
                    raise EngineCancelled(f"request to engine {self.display} cancelled") from None
                failure: EngineError = EngineUnreachable(f"engine {self.display} unreachable: {connection_error_text(error)}")
            else:
                if 200 <= status < 300:
                    try:
                        return json.loads(data.decode("utf-8"))
                    except ValueError:
                        raise EngineAnswerError(f"engine {self.display} answered {path} with something other than JSON", status) from None
                failure = EngineAnswerError(f"engine {self.display} answered {status}: {answer_message(status, reason, data)}", status)
                if status not in RETRIED_STATUSES:
                    raise failure
            if attempt >= self.retries:
                raise failure
            wait = self.backoff_seconds * (2**attempt)
            if time.monotonic() + wait >= deadline:
                raise failure
            attempt += 1
            log.debug("engine %s: %s %s failed (%s), retry %d in %.2f s", self.display, method, path, failure, attempt, wait)
            time.sleep(wait)

    def _timeout(self, deadline: float) -> EngineTimeout:
        return EngineTimeout(f"engine {self.display} did not answer in time")

    def _exchange(self, method: str, path: str, payload: bytes | None, deadline: float, epoch: int) -> tuple[int, str, bytes]:
        """One request, on a kept connection when there is one (again on a new one when the
        kept one turns out to be closed)."""
        for reused in (True, False):
            connection, was_idle = self._connection(reused)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._discard(connection)
                raise TimeoutError
            connection.timeout = remaining
            if connection.sock is not None:
                connection.sock.settimeout(remaining)
            try:
                connection.request(method, path, body=payload, headers=self._headers)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.CannotSendRequest):
                self._discard(connection)
                if was_idle and epoch == self._epoch:
                    continue  # the engine closed the idle connection: a new one, not a retry
                raise
            except BaseException:
                self._discard(connection)
                raise
            if response.will_close:
                self._discard(connection)
            else:
                self._release(connection)
            return response.status, response.reason, data
        raise http.client.RemoteDisconnected("the connection closed without an answer")

    def _connection(self, reuse: bool) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if reuse and self._idle:
                connection = self._idle.pop()
                self._busy.add(connection)
                return connection, True
        if self.url.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.url.host, self.url.port, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self.url.host, self.url.port)
        with self._lock:
            self._busy.add(connection)
            self.connections_opened += 1
        return connection, False

    def _release(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(connection)
            if len(self._idle) < KEPT_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._busy.discard(connection)
        connection.close()

    def abort(self) -> None:
        """Break the requests in flight (their threads see a connection error): a cancelled
        completion does not wait for the engine's answer."""
        with self._lock:
            self._epoch += 1
            busy = list(self._busy)
        for connection in busy:
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        with self._lock:
            connections = self._idle + list(self._busy)
            self._idle.clear()
            self._busy.clear()
        for connection in connections:
            connection.close()
