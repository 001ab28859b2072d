"""Type questions answered from the module's own syntax tree first, the checker after.

The module index (types.module_index) reads the buffer once per version in tens of
milliseconds, and knows the names in scope at any line with their types, the classes
the module defines with their members, and the annotations of every function. Only what
it cannot tell goes to the checker (Jedi or basedpyright): the parameter types of a
function imported from elsewhere, the members of an imported class, the members of a
module. On a file of thousands of lines that is the difference between a second of
planning per request and a few milliseconds.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import re
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, Callable, Iterator, Protocol

from accs_lsp.analysis.scanner import top_level_commas
from accs_lsp.types.inhabitation import is_modelled
from accs_lsp.types.model import ANY, BYTES, FLOAT, STR, PyType, callable_result, element_type, known_or_none, parse_type
from accs_lsp.types.module_index import BUILTIN_NAMES, BlockParser, ModuleIndex, ScopeAtCursor, top_level_block
from accs_lsp.types.provider import FILE_HEAD, Binding, ExpressionSlot, HoleTypes, Member, Signature, TypeProvider
from accs_lsp.types.receivers import ReceiverTypes, trailing_chain

_INDEXES_KEPT = 8
_BUSY = object()  # what `_ask` answers where the checker stayed busy
# How long a request waits for the checker while it looks members up in the background; where
# the index cannot be built at all, the checker's answer is all there is, and worth longer.
CHECKER_WAIT_SECONDS = 0.05
# Background lookups start once requests have asked nothing for this long.
IDLE_SECONDS = 0.3
FALLBACK_WAIT_SECONDS = 1.0
# Types whose members no table lists: a union's are its members' common ones, a callable's none.
_NO_MEMBER_TABLE = frozenset({"Union", "Callable", "Type", "None"})
# How far back a receiver or a callee is read from (`a.b(c)[d].e`): a statement's worth.
_RECEIVER_CHARACTERS = 2000
_BARE_NAME = re.compile(r"(?<![\w.])([A-Za-z_]\w*)$")
MembersOf = Callable[[PyType], "tuple[Member, ...] | None"]
# Names the statement at the cursor binds before the hole (the index cannot see them: the
# line being written does not parse): lambda parameters and comprehension targets.
_LAMBDA_PARAMS = re.compile(r"\blambda\b([^:]*):")
_FOR_TARGETS = re.compile(r"\bfor\b([\w\s,()]+?)\bin\b")
# The right operand's type for a left operand's: numbers meet any number (None: the same type).
_OPERAND_FAMILIES: dict[str, PyType | None] = {"int": FLOAT, "float": FLOAT, "bool": FLOAT, "str": STR, "bytes": BYTES, "list": None}
_GENERATOR_RESULTS = frozenset({"Iterator", "Iterable", "Generator", "AsyncIterator", "AsyncIterable", "AsyncGenerator"})


class Activity:
    """Whether requests are being served (planned or decoded): background lookups wait for a
    pause of IDLE_SECONDS, since on two cores a checker thread slows the model's own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._last = 0.0

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                self._last = time.monotonic()

    def touch(self) -> None:
        self._last = time.monotonic()

    def quiet_for(self, seconds: float) -> bool:
        with self._lock:
            return self._running == 0 and time.monotonic() - self._last >= seconds


class Checker(TypeProvider, Protocol):
    def expected_type(self, source: str, slot: ExpressionSlot) -> PyType | None:
        """The expected type at `slot` as the checker sees it (None: none or unknown)."""
        ...


class IndexedProvider:
    """Implements types.provider.TypeProvider over a checker that answers the rest.
    Falls back to the checker entirely where the buffer does not parse at all."""

    # It never waits long for the checker: the planner need not cut its member lookups short.
    bounds_its_waits = True

    def __init__(self, checker: Checker, member_seconds: float = 60.0) -> None:
        self.checker = checker
        self.activity = Activity()  # when requests run: the engine puts its own here, shared by its providers
        self.member_seconds = member_seconds  # how long a looked-up member table of a user type is kept
        self._lock = threading.Lock()
        self._checker_lock = threading.Lock()  # one question at a time, background lookups included
        self._indexes: OrderedDict[tuple[int, int], ModuleIndex | None] = OrderedDict()
        self._latest: tuple[str, ModuleIndex] | None = None
        self._blocks = BlockParser()
        self._declared: tuple[ModuleIndex, str] | None = None
        self._module_members: dict[str, tuple[Member, ...]] = {}
        self._builtin_parameters: dict[tuple, PyType | None] = {}
        # Members of types defined elsewhere take the checker up to a second each: they are
        # looked up in the background, and a request does not wait for them.
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accs-members")
        self._pending: dict[tuple[str, int], Future[tuple[Member, ...]]] = {}
        self._found: dict[tuple[str, int], tuple[float, tuple[Member, ...]]] = {}
        self._lookups_stopping = False
        self._draining = False
        # Types whose members this request did not wait for (looked up in the background).
        self.deferred: list[str] = []

    def close(self) -> None:
        self._lookups_stopping = True
        self._lookups.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._indexes.clear()
            self._latest = None
            self._declared = None
            self._pending.clear()
            self._found.clear()
        self.checker.close()

    # -- TypeProvider ------------------------------------------------------------------------

    def hole_types(self, source: str, slot: ExpressionSlot) -> HoleTypes:
        """Also starts a request: `deferred` starts afresh."""
        self.deferred = []
        self.activity.touch()
        index = self.index(source, slot.cursor or slot.start)
        if index is None:
            return self._ask(self.checker.hole_types, source, slot, wait=FALLBACK_WAIT_SECONDS) or HoleTypes(origin=slot.kind)
        scope = index.scope_at(source.count("\n", 0, slot.start) + 1)
        bindings, visible = _with_statement_names(scope, source, slot.start)
        reader = HoleReader(index, scope, source, lambda value: self._members(source, index, value, checker=True))
        expected = reader.expected(slot)
        if expected is UNRESOLVED:
            expected = self._checker_expected(source, slot, index, reader.builtin_call)
        if slot.lambda_start and isinstance(expected, PyType):
            expected = callable_result(expected) if expected.name == "Callable" else None
        return HoleTypes(known_or_none(expected), slot.kind, bindings, visible)

    def _checker_expected(self, source: str, slot: ExpressionSlot, index: ModuleIndex, builtin_call: tuple | None) -> PyType | None:
        """The checker's expected type, shown an excerpt of the file; for a builtin's parameter,
        asked once per session (it does not depend on the file)."""
        if builtin_call is not None and builtin_call in self._builtin_parameters:
            return self._builtin_parameters[builtin_call]
        excerpt = Excerpt.of(source, slot.start, index)
        moved = replace(slot, start=excerpt.offset(slot.argument_start), callee_end=excerpt.offset(slot.callee_end), lambda_start=0)
        expected = self._ask(self.checker.expected_type, excerpt.text, moved, busy=_BUSY)
        if expected is _BUSY:
            return None
        if builtin_call is not None:
            self._builtin_parameters[builtin_call] = expected
        return expected

    def member_names(self, source: str, receiver_end: int) -> tuple[str, ...] | None:
        index = self.index(source, receiver_end)
        if index is not None:
            scope = index.scope_at(source.count("\n", 0, receiver_end) + 1)
            receivers = ReceiverTypes({b.name: b for b in scope.bindings}, lambda value: self._members(source, index, value, checker=False))
            value = receivers.type_before(source[max(0, receiver_end - _RECEIVER_CHARACTERS) : receiver_end])
            members = self._members(source, index, value, checker=False) if value is not None else None
            if members:
                return tuple(member.name for member in members)
            excerpt = Excerpt.of(source, receiver_end, index)
            return self._ask(self.checker.member_names, excerpt.text, excerpt.offset(receiver_end))
        return self._ask(self.checker.member_names, source, receiver_end, wait=FALLBACK_WAIT_SECONDS)

    def members(self, source: str, owner: PyType) -> tuple[Member, ...]:
        latest = self._latest
        if latest is not None and latest[0].startswith(source):
            found = self._members(source, latest[1], owner, checker=True)
            return found or ()
        if owner.name == "Module":
            return self._members_of_module(owner)
        return self._ask(self.checker.members, source, owner) or ()

    def _ask(self, question: Callable[..., Any], *arguments: Any, wait: float = CHECKER_WAIT_SECONDS, busy: Any = None) -> Any:
        """The checker's answer, or `busy` when it stays busy (with a lookup in the background)
        for longer than `wait` seconds (< 0: as long as it takes)."""
        if not self._checker_lock.acquire(timeout=wait):
            return busy
        try:
            return question(*arguments)
        finally:
            self._checker_lock.release()

    # -- the index ---------------------------------------------------------------------------

    def index(self, source: str, cursor: int) -> ModuleIndex | None:
        """The index of `source` as seen from `cursor`'s line (that line may be broken)."""
        key = (hash(source), source.count("\n", 0, cursor))
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                found = self._indexes[key]
            else:
                found = ModuleIndex.build(source, cursor, self._blocks)
                self._indexes[key] = found
                if len(self._indexes) > _INDEXES_KEPT:
                    self._indexes.popitem(last=False)
            if found is not None:
                self._latest = (source, found)
            return found

    def _members(self, source: str, index: ModuleIndex, owner: PyType, checker: bool) -> tuple[Member, ...] | None:
        self.activity.touch()
        if owner.name == "Module":
            return self._members_of_module(owner)
        own = index.members(owner)
        if own is not None:
            return own
        if not checker or not owner.is_known or owner.name in _NO_MEMBER_TABLE:
            return None
        return self._checker_members(source, owner, index)

    def _checker_members(self, source: str, owner: PyType, index: ModuleIndex) -> tuple[Member, ...] | None:
        """The checker's answer when it is at hand, else None (unknown for this request) while
        it is looked up in the background, to be at hand for the requests after. The checker
        is shown the module's imports and declarations only: the type comes from elsewhere."""
        builtin = is_modelled(owner, frozenset())  # the same in every file, for the whole session
        key = (str(owner), 0 if builtin else hash(source[:FILE_HEAD]))
        with self._lock:
            found = self._found.get(key)
            if found is not None and (builtin or time.monotonic() - found[0] < self.member_seconds):
                return found[1]
            future = self._pending.get(key)
            if future is None:
                try:
                    future = self._lookups.submit(self._members_when_idle, self._declarations(source, index), owner)
                except RuntimeError:  # closed
                    return None
                self._pending[key] = future
        try:
            members = future.result(timeout=0)  # a lookup starts only once requests pause: no wait
        except FutureTimeout:
            runtime = runtime_members(owner)
            if runtime is not None:
                return runtime
            self.deferred.append(str(owner))
            return None
        except Exception:
            members = ()
        with self._lock:
            self._pending.pop(key, None)
            self._found[key] = (time.monotonic(), members)
        return members

    def _declarations(self, source: str, index: ModuleIndex) -> str:
        """The module's imports and declarations (computed once per index: milliseconds on a
        big file, and asked for while decoding)."""
        if self._declared is None or self._declared[0] is not index:
            self._declared = (index, Excerpt.of(source, None, index).text)
        return self._declared[1]

    def _members_when_idle(self, source: str, owner: PyType) -> tuple[Member, ...]:
        """A background lookup, started once no request has asked anything for a while: on
        two cores its work would otherwise slow the request being planned."""
        while not self.activity.quiet_for(IDLE_SECONDS) and not (self._lookups_stopping or self._draining):
            time.sleep(IDLE_SECONDS / 4)
        return self._ask(self.checker.members, source, owner, wait=-1) or ()

    @property
    def looking_up(self) -> bool:
        """Whether member lookups are under way in the background (a builtin class's included,
        whose names are at hand meanwhile but not their types)."""
        with self._lock:
            return any(not future.done() for future in self._pending.values())

    def finish_lookups(self, timeout: float) -> bool:
        """Waits (up to `timeout` seconds) for the member lookups asked so far, without the
        idle delay: for a warm-up, so that the first request finds the tables. True if done."""
        self._draining = True
        try:
            with self._lock:
                pending = list(self._pending.values())
            done, not_done = wait(pending, timeout=timeout)
            return not not_done
        finally:
            self._draining = False

    def _members_of_module(self, owner: PyType) -> tuple[Member, ...]:
        """A module's names (from the checker, once per module: they do not change)."""
        module = owner.args[0].name if owner.args else ""
        if not module or not all(part.isidentifier() for part in module.split(".")):
            return ()
        if module not in self._module_members:
            code = f"import {module}\n{module}"
            names = self._ask(self.checker.member_names, code, len(code))
            if names is None:
                return ()  # the checker is busy: asked again next time
            self._module_members[module] = tuple(Member(name, ANY) for name in names if not name.startswith("__"))
        return self._module_members[module]


def runtime_members(owner: PyType) -> tuple[Member, ...] | None:
    """A builtin class's members as Python itself lists them, their types unknown: what the
    member constraint needs (the names) while the checker's table, with the types, is looked up."""
    cls = getattr(builtins, owner.name, None)
    if not isinstance(cls, type):
        return None
    return tuple(Member(name, ANY, is_method=callable(getattr(cls, name, None))) for name in dir(cls))


class Excerpt:
    """What the checker is shown of a big file: the module's top-level statements other than
    definitions (imports, aliases, constants) and the whole definition around the cursor, the
    other lines left empty (line numbers kept). The index answers about the rest; the checker
    is asked about names from elsewhere, and parsing a few hundred lines instead of thousands
    takes it milliseconds instead of a tenth of a second."""

    def __init__(self, text: str, removed_before_line: list[int], line_starts: list[int]) -> None:
        self.text = text
        self._removed = removed_before_line
        self._line_starts = line_starts

    @classmethod
    def of(cls, source: str, offset: int | None, index: ModuleIndex) -> "Excerpt":
        """The excerpt around `offset` (None: the declarations only)."""
        lines = source.split("\n")
        keep = [False] * len(lines)
        if offset is not None:
            first, end = top_level_block(lines, min(source.count("\n", 0, offset), len(lines) - 1))
            for number in range(first, end):
                keep[number] = True
        for node in index.tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for number in range(node.lineno - 1, min(node.end_lineno or node.lineno, len(lines))):
                    keep[number] = True
        removed, line_starts, total, start = [], [], 0, 0
        for number, line in enumerate(lines):
            removed.append(total)
            line_starts.append(start)
            start += len(line) + 1
            if not keep[number]:
                total += len(line)
        text = "\n".join(line if keep[number] else "" for number, line in enumerate(lines))
        return cls(text, removed, line_starts)

    def offset(self, original: int) -> int:
        """Where an offset of the source is in the excerpt (offsets on kept lines only)."""
        line = bisect_right(self._line_starts, original) - 1
        return original - self._removed[max(line, 0)]


class _Unresolved:
    """The index cannot tell: ask the checker."""


UNRESOLVED = _Unresolved()


class HoleReader:
    """The expected type at a slot, from the index."""

    def __init__(self, index: ModuleIndex, scope: ScopeAtCursor, source: str, members_of: MembersOf) -> None:
        self.index = index
        self.scope = scope
        self.source = source
        self.bindings = {binding.name: binding for binding in scope.bindings}
        self.members_of = members_of
        self.receivers = ReceiverTypes(self.bindings, members_of)
        # (builtin name, keyword, position) where the slot is an argument of a builtin's call.
        self.builtin_call: tuple[str, str, int] | None = None

    def expected(self, slot: ExpressionSlot) -> PyType | None | _Unresolved:
        if slot.kind in ("annotation", "default"):
            return self.index.resolve(parse_type(slot.annotation))
        if slot.kind == "operand":
            return self._operand_type(slot.target, slot.annotation)
        if slot.kind == "iterable":
            binding = self.bindings.get(slot.target)
            return PyType("Iterable", (binding.type,)) if binding is not None and binding.type.is_known else None
        if slot.kind == "return":
            return self._return_type()
        if slot.kind == "yield":
            result = self._declared_result()
            return element_type(result) if result is not None and result.name in _GENERATOR_RESULTS else None
        if slot.kind == "attribute":
            return self._attribute_type(slot.target)
        if slot.kind == "argument":
            return self._argument_type(slot)
        return None

    def _declared_result(self) -> PyType | None:
        function = self.scope.function
        if function is None or function.returns is None:
            return None
        declared = self.index.type_of_annotation(function.returns)
        return PyType("Iterator", declared.args) if declared.name in _GENERATOR_RESULTS else declared

    def _return_type(self) -> PyType | None:
        function = self.scope.function
        if function is None or _is_generator(function):
            return None  # a generator's `return` value is not its declared result
        return self._declared_result()

    def _attribute_type(self, target: str) -> PyType | None | _Unresolved:
        receiver, _, name = target.rpartition(".")
        value = self.receivers.type_before(receiver)
        if value is None:
            return None
        members = self.members_of(value)
        if members is None:
            return UNRESOLVED
        found = next((member for member in members if member.name == name and not member.is_method), None)
        return found.type if found is not None else None

    def _operand_type(self, left: str, operator: str) -> PyType | None:
        """What the right operand should be, from the left one's type: numbers with numbers,
        strings with strings (`*` and `%` take other types, so they expect nothing)."""
        value = self.receivers.type_before(left)
        if value is None or value.name not in _OPERAND_FAMILIES:
            return None
        family = _OPERAND_FAMILIES[value.name]
        if operator in ("*", "%") or family is not FLOAT and operator not in ("+", "==", "!=", "<", "<=", ">", ">="):
            return None
        return value if family is None else family

    def _argument_type(self, slot: ExpressionSlot) -> PyType | None | _Unresolved:
        callee = self.source[max(0, slot.callee_end - 1 - _RECEIVER_CHARACTERS) : slot.callee_end - 1].rstrip()
        signature = self._callee_signature(callee)
        arguments = self.source[slot.callee_end : slot.argument_start]
        if signature is None:
            name = _BARE_NAME.search(callee)
            if name and name.group(1) not in self.bindings and name.group(1) in BUILTIN_NAMES:
                self.builtin_call = (name.group(1), slot.keyword, len(top_level_commas(arguments)))
            return UNRESOLVED
        if slot.keyword:
            chosen = [param for param in signature.params if param.name == slot.keyword]
        else:
            if "*" in arguments or "=" in arguments:
                return None  # after *args or keywords the position is not a parameter's
            position = len(top_level_commas(arguments))
            positional = [param for param in signature.params if not param.keyword_only]
            chosen = positional[position : position + 1]
        return chosen[0].type if chosen else None

    def _callee_signature(self, callee: str) -> Signature | None:
        steps = trailing_chain(callee)
        if not steps:
            return None
        if len(steps) == 1:
            binding = self.bindings.get(steps[0][1]) or self.index.module_bindings.get(steps[0][1])
            return binding.signature if binding is not None and binding.kind in ("function", "class") else None
        if steps[-1][0] != "attribute":
            return None
        receiver = self.receivers.type_before(callee[: callee.rfind(".")])
        members = self.members_of(receiver) if receiver is not None else None
        method = next((m for m in members or () if m.name == steps[-1][1] and m.is_method), None)
        return method.signature if method is not None else None


def _is_generator(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(node, nested):
            pending.extend(ast.iter_child_nodes(node))
    return False


def _with_statement_names(scope: ScopeAtCursor, source: str, offset: int) -> tuple[tuple[Binding, ...], frozenset[str] | None]:
    """The scope's bindings and visible names, with the names the unfinished statement at the
    cursor binds before the hole (lambda parameters, comprehension targets)."""
    line_start = source.rfind("\n", 0, max(0, source.rfind("\n", 0, offset))) + 1  # this line and the one before
    written = source[line_start:offset]
    names = set()
    for pattern in (_LAMBDA_PARAMS, _FOR_TARGETS):
        for match in pattern.finditer(written):
            names.update(re.findall(r"[A-Za-z_]\w*", match.group(1).split("=")[0]))
    if not names:
        return scope.bindings, scope.visible
    bindings = tuple(b for b in scope.bindings if b.name not in names) + tuple(Binding(name, ANY) for name in sorted(names))
    visible = scope.visible | names if scope.visible is not None else None
    return bindings, visible


__all__ = ["IndexedProvider", "HoleReader", "UNRESOLVED"]
