"""Type questions answered by Jedi (in process; typeshed stubs for the standard library)."""

from __future__ import annotations

import keyword
import threading
from typing import Iterable

import jedi

from accs_lsp.types.model import ANY, NONE, PyType, known_or_none, parse_type, union
from accs_lsp.types.provider import Binding, ExpressionSlot, HoleTypes, Member, MemberTables, Signature, parse_signature

# Types whose members do not depend on the user's code (cached for the whole session).
BUILTIN_NAMES = frozenset(
    {"int", "float", "complex", "str", "bytes", "bool", "list", "dict", "set", "frozenset", "tuple",
     "range", "Iterator", "Iterable", "Sequence", "Mapping", "None", "Union", "Callable", "Type", "Any"}
)
_BINDING_KINDS = frozenset({"param", "statement", "instance", "function", "class"})
MEMBERS_PROBE = "__accs_members"
_MAX_BINDINGS = 60


class JediProvider:
    """Implements types.provider.TypeProvider. Thread-safe (one lock): Jedi's caches are not."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._members = MemberTables(BUILTIN_NAMES)

    def close(self) -> None:
        self._members.clear()

    def hole_types(self, source: str, slot: ExpressionSlot) -> HoleTypes:
        source = _held_open(source, slot.start)
        with self._lock:
            try:
                script = jedi.Script(source, path=self.path)
                line, column = _position(source, slot.start)
                expected = self._expected(script, source, slot)
                completions = script.complete(line, column)
                visible = frozenset(c.name for c in completions if c.name.isidentifier() and not keyword.iskeyword(c.name))
                return HoleTypes(known_or_none(expected), slot.kind, tuple(self._bindings(completions)), visible)
            except Exception:  # Jedi fails on odd code in many ways: fail open
                return HoleTypes(origin=slot.kind)

    def expected_type(self, source: str, slot: ExpressionSlot) -> PyType | None:
        source = _held_open(source, slot.start)
        with self._lock:
            try:
                return known_or_none(self._expected(jedi.Script(source, path=self.path), source, slot))
            except Exception:
                return None

    def member_names(self, source: str, receiver_end: int) -> tuple[str, ...] | None:
        with self._lock:
            code = source[:receiver_end] + "."
            try:
                completions = jedi.Script(code, path=self.path).complete(*_position_after(code))
            except Exception:
                return None
            names = tuple(completion.name for completion in completions)
            return names or None

    def members(self, source: str, owner: PyType) -> tuple[Member, ...]:
        return self._members.lookup(self._lock, source, owner, self._find_members)

    # -- expected type -------------------------------------------------------------------

    def _expected(self, script: jedi.Script, source: str, slot: ExpressionSlot) -> PyType | None:
        if slot.kind in ("annotation", "default"):
            return parse_type(slot.annotation)
        if slot.kind == "return":
            return self._return_annotation(script, *_position(source, slot.start))
        if slot.kind == "attribute":
            target_end = source.rfind(slot.target, 0, slot.start) + len(slot.target)
            return _union_of_hints(script.infer(*_position(source, target_end)))
        if slot.kind == "argument":
            return self._parameter_type(script, source, slot)
        return None

    @staticmethod
    def _return_annotation(script: jedi.Script, line: int, column: int) -> PyType | None:
        context = script.get_context(line, column)
        if context.type != "function":
            return None
        signatures = context.get_signatures()
        if len(signatures) != 1:
            return None
        signature = parse_signature(signatures[0].to_string())
        return signature.result if signature else None

    @staticmethod
    def _parameter_type(script: jedi.Script, source: str, slot: ExpressionSlot) -> PyType | None:
        signatures = script.get_signatures(*_position(source, slot.start))
        found: set[PyType] = set()
        for signature in signatures:
            params = signature.params
            if slot.keyword:
                chosen = [param for param in params if param.name == slot.keyword]
            else:
                index = signature.index
                chosen = [params[index]] if index is not None and index < len(params) else []
            if not chosen or chosen[0].kind.name in ("VAR_POSITIONAL", "VAR_KEYWORD"):
                return None
            parsed = parse_signature(f"f({chosen[0].to_string()})")
            found.add(parsed.params[0].type if parsed and parsed.params else ANY)
        return found.pop() if len(found) == 1 else None  # overloads that disagree: no expectation

    # -- scope -----------------------------------------------------------------------------

    def _bindings(self, completions: list[jedi.api.classes.Completion]) -> Iterable[Binding]:
        count = 0
        for completion in completions:
            if count >= _MAX_BINDINGS:
                return
            if completion.module_name == "builtins" or not completion.name.isidentifier():
                continue
            if completion.name.startswith("__"):
                continue
            if completion.type not in _BINDING_KINDS:
                continue
            binding = _binding(completion)
            if binding is not None:
                count += 1
                yield binding

    # -- members -----------------------------------------------------------------------------

    def _find_members(self, source: str, owner: PyType) -> tuple[Member, ...]:
        head = "from typing import *\n" + source + f"\n\ndef {MEMBERS_PROBE}(_v: {owner}):\n    _v."
        completions = jedi.Script(head, path=self.path).complete(*_position_after(head))
        public = [completion for completion in completions if not completion.name.startswith("_")]
        if not public:
            return ()
        probes = [f"    _v.{c.name}{'()' if c.type == 'function' else ''}\n" for c in public]
        probe_source = head[: -len("    _v.")] + "".join(probes)
        script = jedi.Script(probe_source, path=self.path)
        first_line = probe_source.count("\n", 0, len(head) - len("    _v.")) + 1
        members = []
        for offset, completion in enumerate(public):
            line = first_line + offset
            column = 7 + len(completion.name) + (1 if completion.type == "function" else 0)
            signature = _single_signature(completion) if completion.type == "function" else None
            overloaded = completion.type == "function" and signature is None
            # An overloaded method's result depends on its arguments: unknown here.
            result = ANY if overloaded else _union_of_hints(script.infer(line, column)) or ANY
            members.append(Member(completion.name, result, completion.type == "function", signature))
        return tuple(members)


def _binding(completion: jedi.api.classes.Completion) -> Binding | None:
    if completion.type == "function":
        return Binding(completion.name, ANY, "function", _single_signature(completion))
    if completion.type == "class":
        signature = _single_signature(completion)
        instance = PyType(completion.name)
        if signature is not None:
            signature = Signature(signature.params, instance, signature.variadic)
        return Binding(completion.name, PyType("Type", (instance,)), "class", signature)
    hinted = _type_hint(completion)
    # Jedi prints "None" for a variable whose value it could not infer (`total = sum(...)`).
    return Binding(completion.name, ANY if hinted == NONE else hinted)


def _single_signature(completion: jedi.api.classes.BaseName) -> Signature | None:
    signatures = completion.get_signatures()
    if len(signatures) != 1:
        return None
    return parse_signature(signatures[0].to_string())


def _union_of_hints(names: list[jedi.api.classes.Name]) -> PyType | None:
    types = [_type_hint(name) for name in names]
    return union(*types) if types else None


def _type_hint(name: jedi.api.classes.BaseName) -> PyType:
    try:
        return parse_type(name.get_type_hint())
    except Exception:  # Jedi raises on some generic types (a TypeError inside its printer)
        return ANY


def _held_open(source: str, hole: int) -> str:
    """Jedi closes a function whose body is still empty at the cursor (its parameters go out
    of scope): an expression placed at the hole keeps it open."""
    line_end = source.find("\n", hole)
    if not source[hole : len(source) if line_end < 0 else line_end].strip():
        source = source[:hole] + "0" + source[hole:]
    return source if source.endswith("\n") else source + "\n"


def _position(source: str, offset: int) -> tuple[int, int]:
    """Jedi's (1-based line, 0-based column) of a character offset."""
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1)
    return line, column


def _position_after(code: str) -> tuple[int, int]:
    return _position(code, len(code))
