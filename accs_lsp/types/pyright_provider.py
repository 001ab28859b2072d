"""Type questions answered by basedpyright, through a `basedpyright-langserver --stdio` subprocess.

The subprocess starts on the first question, stays warm, and is restarted when it has
died. All questions go through one virtual document in a temporary workspace. Like the
Jedi provider, this one fails open: a question that times out or fails gets None or an
empty answer.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from accs_lsp.analysis.scanner import split_top_level
from accs_lsp.types.model import ANY, PyType, known_or_none, parse_type, union
from accs_lsp.types.provider import Binding, ExpressionSlot, HoleTypes, Member, MemberTables, Signature, parse_signature

EXECUTABLE = "basedpyright-langserver"
REQUEST_TIMEOUT_S = 5.0
MEMBERS_PROBE = "__accs_members"
_MAX_BINDINGS = 40
_MAX_CACHED_MEMBERS = 256
# Types whose members do not depend on the user's code (cached for the whole session).
BUILTIN_NAMES = frozenset(
    {"int", "float", "complex", "str", "bytes", "bool", "list", "dict", "set", "frozenset", "tuple",
     "range", "Iterator", "Iterable", "Sequence", "Mapping", "None", "Union", "Callable", "Type", "Any"}
)


class LspError(Exception):
    """A request that failed, timed out, or found the server gone."""


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Any = None


class LspClient:
    """A small synchronous JSON-RPC client over a subprocess's stdin/stdout (LSP framing).

    A reader thread resolves pending requests by id, answers the server's own requests
    and drops notifications. Requests may be sent from any thread.
    """

    def __init__(self, command: list[str], cwd: str) -> None:
        self.proc = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._write_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read_loop, name="pyright-reader", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, method: str, params: Any, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        return self.wait(self.send_request(method, params), timeout)

    def send_request(self, method: str, params: Any) -> int:
        """Sends a request without waiting; `wait` gets its answer (several can be in flight)."""
        with self._pending_lock:
            self._next_id += 1
            request_id = self._next_id
            self._pending[request_id] = _Pending()
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return request_id

    def wait(self, request_id: int, timeout: float = REQUEST_TIMEOUT_S) -> Any:
        with self._pending_lock:
            pending = self._pending.get(request_id)
        if pending is None:
            raise LspError(f"no request {request_id}")
        finished = pending.done.wait(timeout)
        with self._pending_lock:
            self._pending.pop(request_id, None)
        if not finished:
            self._send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": request_id}}, quiet=True)
            raise LspError(f"request {request_id} timed out")
        if pending.error is not None:
            raise LspError(str(pending.error))
        return pending.result

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def close(self, timeout: float = 2.0) -> None:
        if self.alive:
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
                self.proc.wait(timeout)
            except (LspError, subprocess.TimeoutExpired):
                pass
        if self.alive:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    # -- wire ------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any], quiet: bool = False) -> None:
        body = json.dumps(message, separators=(",", ":")).encode("utf-8")
        try:
            with self._write_lock:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                self.proc.stdin.flush()
        except (OSError, ValueError) as error:  # a dead server: a broken pipe or a closed stream
            if not quiet:
                raise LspError(f"cannot write to {EXECUTABLE}: {error}") from error

    def _read_loop(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        try:
            while True:
                message = _read_message(stream)
                if message is None:
                    break
                self._dispatch(message)
        except (OSError, ValueError):
            pass
        finally:
            self._fail_all("the server exited")

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message:
            if "id" in message:  # a request from the server
                result = _answer_server_request(message["method"], message.get("params"))
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": result}, quiet=True)
            return  # notifications (diagnostics, logs, progress) are not needed
        request_id = message.get("id")
        with self._pending_lock:
            pending = self._pending.get(request_id) if isinstance(request_id, int) else None
        if pending is not None:
            pending.result, pending.error = message.get("result"), message.get("error")
            pending.done.set()

    def _fail_all(self, reason: str) -> None:
        with self._pending_lock:
            for pending in self._pending.values():
                pending.error = reason
                pending.done.set()


def _read_message(stream: IO[bytes]) -> dict[str, Any] | None:
    """One framed message, or None at the end of the stream."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        return {}
    body = stream.read(length)
    if len(body) < length:
        return None
    return json.loads(body)


def _answer_server_request(method: str, params: Any) -> Any:
    if method == "workspace/configuration":
        items = (params or {}).get("items", [])
        return [_configuration(item.get("section")) for item in items]
    return None  # client/registerCapability, window/workDoneProgress/create, ...


def _configuration(section: str | None) -> dict[str, Any]:
    # No pythonPath: pyright finds the interpreter on PATH, as it does in the user's editor.
    if section in ("python.analysis", "basedpyright.analysis"):
        return {"autoImportCompletions": False}  # names from unimported modules are not in scope
    return {}


# -- the provider ------------------------------------------------------------------------------

_KEYWORD_KIND = 14
_SCOPE_KINDS = frozenset({3, 5, 6, 7, 21})  # Function, Field, Variable, Class, Constant
_FUNCTION_SYMBOL_KINDS = frozenset({6, 9, 12})  # Method, Constructor, Function
_DOCUMENT = "__accs_hole__.py"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_HOVER_CODE = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_HOVER_KIND = re.compile(r"\((\w[\w ]*)\)\s*")
_DEF = re.compile(r"^(?:async\s+)?def\s+", re.MULTILINE)
_SELF = re.compile(r"\bSelf@(\w+)")  # `self: Self@Point` is a Point
_TYPE_VAR_SCOPE = re.compile(r"@\w+")  # pyright prints type variables as `_T@pop`
_UNKNOWN = re.compile(r"\bUnknown\b")
_ARROW = re.compile(r"\s*->\s*")
_UNBOUND = re.compile(r"\s*\|\s*Unbound\b|\bUnbound\s*\|\s*")


@dataclass
class _Session:
    """One running server and the state of its virtual document."""

    lsp: LspClient
    uri: str
    text: str | None = None
    version: int = 0
    builtins: tuple[str, ...] | None = None
    answered: int = 0  # requests answered so far


class PyrightUnavailable(RuntimeError):
    """basedpyright is not installed where accs-lsp can find it."""


class PyrightProvider:
    """Implements types.provider.TypeProvider with basedpyright. Thread-safe (one lock):
    all questions share one virtual document."""

    def __init__(self, path: str | None = None, timeout: float = REQUEST_TIMEOUT_S) -> None:
        executable = find_executable()
        if executable is None:
            raise PyrightUnavailable("basedpyright-langserver not found: pip install 'accs-lsp[pyright]'")
        self.executable = executable
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._workspace: str | None = None
        self._members = MemberTables(BUILTIN_NAMES, _MAX_CACHED_MEMBERS)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running server, if any (it starts on the first question)."""
        return self._session.lsp.proc if self._session is not None else None

    def warm_up(self) -> None:
        """Starts the server now rather than on the first question (it takes a few seconds)."""
        with self._lock:
            try:
                self._builtin_names()
            except Exception:
                pass  # the first question tries again

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.lsp.close()
                self._session = None
            if self._workspace is not None:
                shutil.rmtree(self._workspace, ignore_errors=True)
                self._workspace = None
            self._members.clear()

    def hole_types(self, source: str, slot: ExpressionSlot) -> HoleTypes:
        with self._lock:
            try:
                names, visible = self._scope_names(source, slot.start)
                expected = known_or_none(self._expected(source, slot))
            except Exception:  # a dead, slow or confused server: fail open
                return HoleTypes(origin=slot.kind)
            try:
                bindings = self._bindings(source, slot.start, names)
            except Exception:
                bindings = ()
            return HoleTypes(expected, slot.kind, bindings, visible)

    def expected_type(self, source: str, slot: ExpressionSlot) -> PyType | None:
        with self._lock:
            try:
                return known_or_none(self._expected(source, slot))
            except Exception:
                return None

    def member_names(self, source: str, receiver_end: int) -> tuple[str, ...] | None:
        code = source[:receiver_end] + "."
        with self._lock:
            try:
                items = self._completion(code, len(code))
            except Exception:
                return None
        names = tuple(dict.fromkeys(item["label"] for item in items))
        return names or None

    def members(self, source: str, owner: PyType) -> tuple[Member, ...]:
        # A failure is not cached: the next question may find the server warm.
        return self._members.lookup(self._lock, source, owner, self._find_members, cache_failures=False)

    # -- the server and its document -------------------------------------------------------

    def _live_session(self) -> _Session:
        if self._session is not None and self._session.lsp.alive:
            return self._session
        if self._session is not None:
            self._session.lsp.close()
        self._session = None
        self._session = self._start()
        return self._session

    def _start(self) -> _Session:
        root = self._workspace_folder()
        lsp = LspClient([self.executable, "--stdio"], cwd=root)
        root_uri = Path(root).as_uri()
        try:
            lsp.request("initialize", _initialize_params(root_uri), timeout=self._cold_timeout)
            lsp.notify("initialized", {})
        except LspError:
            lsp.close()
            raise
        return _Session(lsp, Path(root, _DOCUMENT).as_uri())

    def _workspace_folder(self) -> str:
        if self._workspace is None or not os.path.isdir(self._workspace):
            self._workspace = tempfile.mkdtemp(prefix="accs-pyright-")
            config: dict[str, Any] = {"typeCheckingMode": "off"}  # no diagnostics: only answers
            if self.path:
                config["extraPaths"] = [str(Path(self.path).resolve().parent)]  # the user's sibling modules
            Path(self._workspace, "pyrightconfig.json").write_text(json.dumps(config))
        return self._workspace

    @property
    def _cold_timeout(self) -> float:
        return max(self.timeout, 30.0)  # a cold server loads typeshed before its first answer

    def _sync(self, text: str) -> _Session:
        session = self._live_session()
        if session.text == text:
            return session
        session.version += 1
        if session.text is None:
            document = {"uri": session.uri, "languageId": "python", "version": session.version, "text": text}
            session.lsp.notify("textDocument/didOpen", {"textDocument": document})
        else:
            session.lsp.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": session.uri, "version": session.version}, "contentChanges": [{"text": text}]},
            )
        session.text = text
        return session

    def _ask(self, method: str, text: str, offset: int | None = None) -> Any:
        """A request about `text` (at a character offset, for positional requests)."""
        session = self._sync(text)
        params: dict[str, Any] = {"textDocument": {"uri": session.uri}}
        if offset is not None:
            params["position"] = _position(text, offset)
        answer = session.lsp.request(method, params, timeout=self._timeout(session))
        session.answered += 1
        return answer

    def _timeout(self, session: _Session) -> float:
        # The first two questions (the builtins, then the user's code) wait while a new
        # server loads the standard library's stubs: seconds, not milliseconds.
        return self.timeout if session.answered >= 2 else self._cold_timeout

    def _completion(self, text: str, offset: int) -> list[dict[str, Any]]:
        answer = self._ask("textDocument/completion", text, offset)
        items = answer.get("items", []) if isinstance(answer, dict) else answer or []
        return [item for item in items if isinstance(item, dict) and "label" in item]

    def _hovers(self, text: str, offsets: list[int]) -> list[str | None]:
        """The hover code block at each offset (None where there is none), asked all at once."""
        session = self._sync(text)
        ids = [
            session.lsp.send_request(
                "textDocument/hover", {"textDocument": {"uri": session.uri}, "position": _position(text, offset)}
            )
            for offset in offsets
        ]
        return [_hover_code(session.lsp.wait(request_id, self._timeout(session))) for request_id in ids]

    def _hover(self, text: str, offset: int) -> str | None:
        return self._hovers(text, [offset])[0]

    def _builtin_names(self) -> tuple[str, ...]:
        """The names pyright offers in an empty module: the builtins, in the stub's order."""
        session = self._live_session()
        if session.builtins is None:
            items = self._completion("\n", 1)
            if not items:
                raise LspError("no completions in an empty module")
            session.builtins = tuple(item["label"] for item in items if item.get("kind") != _KEYWORD_KIND)
        return session.builtins

    # -- expected type ---------------------------------------------------------------------

    def _expected(self, source: str, slot: ExpressionSlot) -> PyType | None:
        if slot.kind in ("annotation", "default"):
            return parse_type(slot.annotation)
        if slot.kind == "return":
            return self._return_type(source, slot.start)
        if slot.kind == "attribute":
            return self._attribute_type(source, slot)
        if slot.kind == "argument":
            return self._parameter_type(source, slot)
        return None

    def _return_type(self, source: str, offset: int) -> PyType | None:
        name_offset = self._enclosing_function(source, offset)
        if name_offset is None or not _has_return_annotation(source, name_offset):
            return None
        code = self._hover(source, name_offset)
        if code is None:
            return None
        _, body = _split_hover(code)
        return parse_type(_return_text(_type_text(body)))

    def _enclosing_function(self, source: str, offset: int) -> int | None:
        """Offset of the name of the innermost function whose body holds `offset`."""
        symbols = self._ask("textDocument/documentSymbol", source) or []
        here = _position(source, offset)
        best: tuple[tuple[int, int], str, dict[str, int]] | None = None
        for symbol in symbols:
            if symbol.get("kind") not in _FUNCTION_SYMBOL_KINDS:
                continue
            span = symbol.get("location", symbol).get("range")
            if not span or not _line_span_holds(span, here):
                continue
            start = (span["start"]["line"], span["start"]["character"])
            if best is None or start > best[0]:
                best = (start, symbol["name"], span["start"])
        if best is None:
            return None
        definition = re.compile(rf"\bdef\s+({re.escape(best[1])})\b")
        match = definition.search(source, _offset(source, best[2]["line"], best[2]["character"]))
        return match.start(1) if match else None

    def _attribute_type(self, source: str, slot: ExpressionSlot) -> PyType | None:
        # At the assignment's target pyright shows the type narrowed to the (unfinished) value,
        # so the question is asked about the target read as an expression instead.
        target_start = source.rfind(slot.target, 0, slot.start)
        if not slot.target or target_start < 0:
            return None
        line_end = source.find("\n", slot.start)
        probe = source[:target_start] + slot.target + (source[line_end:] if line_end >= 0 else "")
        code = self._hover(probe, target_start + len(slot.target) - 1)
        if code is None:
            return None
        _, body = _split_hover(code)
        return parse_type(_type_text(body.partition(":")[2])) if ":" in body else None

    def _parameter_type(self, source: str, slot: ExpressionSlot) -> PyType | None:
        help_ = self._ask("textDocument/signatureHelp", source, slot.start)
        if not help_ or not help_.get("signatures"):
            help_ = self._ask("textDocument/signatureHelp", source, slot.callee_end)
        signatures = (help_ or {}).get("signatures") or []
        found: set[PyType] = set()
        for signature in signatures:
            labels = [_parameter_label(signature["label"], param["label"]) for param in signature.get("parameters", [])]
            if slot.keyword:
                chosen = [label for label in labels if _parameter_name(label) == slot.keyword]
            else:
                active = signature.get("activeParameter", help_.get("activeParameter"))
                chosen = [labels[active]] if isinstance(active, int) and 0 <= active < len(labels) else []
            if not chosen or chosen[0].startswith("*"):
                return None  # no such parameter, or *args / **kwargs
            parsed = parse_signature(f"f({_type_text(chosen[0])})")
            found.add(parsed.params[0].type if parsed and parsed.params else ANY)
        return found.pop() if len(found) == 1 else None  # overloads that disagree: no expectation

    # -- scope -------------------------------------------------------------------------------

    def _scope_names(self, source: str, offset: int) -> tuple[list[str], frozenset[str]]:
        """Names in scope at `offset` that this file defines, innermost scope first; and every
        name visible there (builtins included)."""
        builtins = self._builtin_names()
        items = [
            item for item in self._completion(source, offset)
            if item.get("kind") != _KEYWORD_KIND and not item.get("additionalTextEdits")
        ]
        own = items[: _builtins_start([item["label"] for item in items], builtins)]
        names = [
            item["label"] for item in own
            if item.get("kind") in _SCOPE_KINDS and item["label"].isidentifier() and not item["label"].startswith("__")
        ]
        visible = frozenset(item["label"] for item in items if item["label"].isidentifier())
        return list(dict.fromkeys(names))[:_MAX_BINDINGS], visible

    def _bindings(self, source: str, offset: int, names: list[str]) -> tuple[Binding, ...]:
        """Each name's type at `offset`, read from hovers on a tuple of the names put there."""
        if not names:
            return ()
        line_end = source.find("\n", offset)
        head = source[:offset] + "("
        offsets, cursor = [], len(head)
        for name in names:
            offsets.append(cursor)
            cursor += len(name) + 2
        probe = head + ", ".join(names) + ",)" + (source[line_end:] if line_end >= 0 else "")
        found = (_binding(name, code) for name, code in zip(names, self._hovers(probe, offsets)) if code)
        return tuple(binding for binding in found if binding is not None)

    # -- members -----------------------------------------------------------------------------

    def _find_members(self, source: str, owner: PyType) -> tuple[Member, ...]:
        head = "from typing import *\n" + source + f"\n\ndef {MEMBERS_PROBE}(_v: {owner}):\n    _v."
        items = self._completion(head, len(head))
        public = list(dict.fromkeys(item["label"] for item in items if not item["label"].startswith("_")))
        if not public:
            return ()
        probe = head[: -len("_v.")]
        offsets = []
        for name in public:
            offsets.append(len(probe) + len("_v."))
            probe += f"_v.{name}\n    "
        hovers = self._hovers(probe, offsets)
        return tuple(_member(name, code) for name, code in zip(public, hovers))


# -- reading pyright's answers ---------------------------------------------------------------------


def find_executable() -> str | None:
    """basedpyright-langserver on PATH, or beside the running interpreter (an unactivated venv)."""
    found = shutil.which(EXECUTABLE)
    if found:
        return found
    beside = Path(sys.executable).parent / EXECUTABLE
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _initialize_params(root_uri: str) -> dict[str, Any]:
    capabilities = {
        "textDocument": {
            "synchronization": {"dynamicRegistration": False},
            "hover": {"contentFormat": ["markdown", "plaintext"]},
            "completion": {
                "completionItem": {"snippetSupport": False, "documentationFormat": ["markdown", "plaintext"]},
            },
            "signatureHelp": {
                "signatureInformation": {
                    "parameterInformation": {"labelOffsetSupport": True},
                    "activeParameterSupport": True,
                },
            },
            "documentSymbol": {"hierarchicalDocumentSymbolSupport": False},
        },
        "workspace": {"configuration": True, "workspaceFolders": True},
    }
    return {
        "processId": os.getpid(),
        "rootUri": root_uri,
        "workspaceFolders": [{"uri": root_uri, "name": "accs"}],
        "capabilities": capabilities,
    }


def _hover_code(answer: Any) -> str | None:
    """The code block of a hover answer: `(variable) xs: list[int]`, `(function) def f(...) -> int`..."""
    if not isinstance(answer, dict):
        return None
    contents = answer.get("contents")
    value = contents.get("value", "") if isinstance(contents, dict) else contents if isinstance(contents, str) else ""
    match = _HOVER_CODE.search(value)
    code = match.group(1) if match else value.split("\n---", 1)[0]
    return code.strip() or None


def _split_hover(code: str) -> tuple[str, str]:
    """(`variable`, `xs: list[int]`) from `(variable) xs: list[int]`; classes have no parenthesised kind."""
    match = _HOVER_KIND.match(code)
    if match:
        return match.group(1), code[match.end():]
    if code.startswith("class "):
        return "class", code[len("class "):]
    return "", code


def _type_text(text: str) -> str:
    """A pyright type string (or signature) made readable by parse_type and parse_signature."""
    text = _UNKNOWN.sub("Any", _TYPE_VAR_SCOPE.sub("", _SELF.sub(r"\1", text)))
    return _callables(text).strip()


def _callables(text: str) -> str:
    """Pyright's callable types, `(x: int, /) -> str`, written as `Callable[[int], str]`."""
    out, index = [], 0
    while index < len(text):
        close = _closing(text, index) if text[index] == "(" and _type_starts(text, index) else -1
        arrow = _ARROW.match(text, close + 1) if close > 0 else None
        if arrow is None:
            out.append(text[index])
            index += 1
            continue
        end = _type_end(text, arrow.end())
        params = [_parameter_type(part) for part in _top_level_split(text[index + 1 : close])]
        arguments = "..." if None in params else "[" + ", ".join(p for p in params if p) + "]"
        out.append(f"Callable[{arguments}, {_callables(text[arrow.end() : end]).strip()}]")
        index = end
    return "".join(out)


def _type_starts(text: str, index: int) -> bool:
    """Whether a "(" at `index` stands where a type may begin (not a call's or a def's parenthesis)."""
    before = text[:index].rstrip()
    return not before or before[-1] in "[,|(:>"


def _closing(text: str, index: int) -> int:
    """The index of the bracket that closes the one at `index`, or -1."""
    depth = 0
    for position in range(index, len(text)):
        if text[position] in "([{":
            depth += 1
        elif text[position] in ")]}":
            depth -= 1
            if depth == 0:
                return position
    return -1


def _type_end(text: str, start: int) -> int:
    """Where a callable's result type ends: at a top-level `,`, or at an unmatched closing bracket."""
    depth = 0
    for position in range(start, len(text)):
        if text[position] in "([{":
            depth += 1
        elif text[position] in ")]}":
            if depth == 0:
                return position
            depth -= 1
        elif text[position] == "," and depth == 0:
            return position
    return len(text)


def _top_level_split(text: str) -> list[str]:
    """The parts of `text` between its top-level commas, stripped, empty ones left out."""
    return split_top_level(text)


def _parameter_type(parameter: str) -> str | None:
    """The type of one parameter of a printed callable: "" for the `/` and `*` markers, None for
    `...`, *args and **kwargs (a Callable[..., R])."""
    if parameter in ("/", "*"):
        return ""
    if parameter == "..." or parameter.startswith("*"):
        return None
    name, colon, annotation = parameter.partition(":")
    if colon and name.strip().isidentifier():
        return _callables(annotation.partition("=")[0]).strip()
    return _callables(parameter).strip()


def _definitions(body: str) -> list[str]:
    """The signatures in a function's hover (several for an overload), without `def` and `: ...`."""
    parts = [part.strip() for part in _DEF.split(body) if part.strip()]
    return [part[: -len(": ...")] if part.endswith(": ...") else part for part in parts]


def _return_text(signature: str) -> str:
    """The text after the last top-level `->` of a signature ("" when there is none)."""
    depth, arrow = 0, -1
    for index, character in enumerate(signature):
        if character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
        elif depth == 0 and signature.startswith("->", index):
            arrow = index
    return signature[arrow + 2:].strip() if arrow >= 0 else ""


def _single_signature(body: str) -> Signature | None:
    definitions = _definitions(body)
    return parse_signature(_type_text(definitions[0])) if len(definitions) == 1 else None


def _binding(name: str, code: str) -> Binding | None:
    kind, body = _split_hover(code)
    if kind in ("parameter", "variable", "constant"):
        type_text = _UNBOUND.sub("", _type_text(body.partition(":")[2]))
        if type_text == "Unbound":
            return None  # assigned only after this point
        return Binding(name, parse_type(type_text))
    if kind == "function" and _DEF.match(body):  # not `(function) y: Any`, a name still unbound
        return Binding(name, ANY, "function", _single_signature(body))
    if kind == "class":
        instance = PyType(name)
        signature = parse_signature(_type_text(body))
        if signature is not None:
            signature = Signature(signature.params, instance, signature.variadic)
        return Binding(name, PyType("Type", (instance,)), "class", signature)
    return None  # modules, type aliases, type variables


def _member(name: str, code: str | None) -> Member:
    kind, body = _split_hover(code or "")
    if kind in ("method", "function"):
        definitions = _definitions(body)
        results = [parse_type(_return_text(_type_text(definition))) for definition in definitions]
        result = union(*results) if results else ANY
        return Member(name, result, True, _single_signature(body))
    if kind == "class":
        return Member(name, PyType("Type", (PyType(name),)))
    if ":" in body:
        return Member(name, parse_type(_type_text(body.partition(":")[2])))
    return Member(name, ANY)


def _parameter_label(signature_label: str, label: str | list[int]) -> str:
    if isinstance(label, str):
        return label
    start, end = label  # UTF-16 offsets into the signature's label
    encoded = signature_label.encode("utf-16-le")
    return encoded[2 * start : 2 * end].decode("utf-16-le")


def _parameter_name(label: str) -> str:
    match = re.match(r"\*{0,2}(\w+)", label.strip())
    return match.group(1) if match else ""


def _builtins_start(labels: list[str], builtins: tuple[str, ...]) -> int:
    """Where the builtins scope begins in a completion list: pyright lists the scopes innermost
    first, and the builtins last, in their stub's order (less the names the file shadows)."""
    order = {name: index for index, name in enumerate(builtins)}
    start, bound = len(labels), len(builtins)
    for index in range(len(labels) - 1, -1, -1):
        rank = order.get(labels[index])
        if rank is None or rank >= bound:
            break
        start, bound = index, rank
    return start


def _has_return_annotation(source: str, name_offset: int) -> bool:
    """Whether the `def` whose name starts at `name_offset` has a `->` before its colon."""
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source[name_offset:]).readline):
            if token.type != tokenize.OP:
                continue
            if token.string in "([{":
                depth += 1
            elif token.string in ")]}":
                depth -= 1
            elif depth == 0 and token.string in ("->", ":"):
                return token.string == "->"
    except (tokenize.TokenError, SyntaxError):
        pass
    return False


def _line_span_holds(span: dict[str, Any], here: dict[str, int]) -> bool:
    """Whether a symbol's range holds a position, by lines: pyright ends a function's range at
    its last token, before any blanks that follow it on that line (`return ` at the cursor)."""
    start, end = span["start"], span["end"]
    if here["line"] < start["line"] or here["line"] > end["line"]:
        return False
    return here["line"] > start["line"] or here["character"] >= start["character"]


def _position(text: str, offset: int) -> dict[str, int]:
    """The LSP position (0-based line, UTF-16 column) of a character offset."""
    offset = max(0, min(offset, len(text)))
    before = text[:offset]
    line, line_start = 0, 0
    for match in _LINE_BREAK.finditer(before):
        line, line_start = line + 1, match.end()
    return {"line": line, "character": len(before[line_start:].encode("utf-16-le")) // 2}


def _offset(text: str, line: int, character: int) -> int:
    """The character offset of an LSP position (the inverse of _position)."""
    line_starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]
    if line >= len(line_starts):
        return len(text)
    index, units = line_starts[line], 0
    while index < len(text) and units < character and text[index] not in "\r\n":
        units += 2 if ord(text[index]) > 0xFFFF else 1
        index += 1
    return index


