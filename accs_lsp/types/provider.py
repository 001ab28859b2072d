"""What the type layer asks a type checker, and the shape of the answers.

Two providers answer these questions: Jedi (default, in process) and basedpyright
(`typeProvider: "pyright"`, a language-server subprocess). Both fail open: a
question they cannot answer gets None or an empty answer, never an exception.
"""

from __future__ import annotations

import ast
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Protocol

from accs_lsp.analysis import python_ast
from accs_lsp.types.model import ANY, PyType, _from_node


@dataclass(frozen=True)
class Param:
    name: str
    type: PyType
    has_default: bool = False
    keyword_only: bool = False


@dataclass(frozen=True)
class Signature:
    params: tuple[Param, ...]
    result: PyType
    variadic: bool = False  # takes *args or **kwargs

    @property
    def required(self) -> tuple[Param, ...]:
        return tuple(param for param in self.params if not param.has_default and not param.keyword_only)


@dataclass(frozen=True)
class Binding:
    """A name in scope. `type` is the value's type: for a class, Type[C]; for a function,
    its result type is in `signature`."""

    name: str
    type: PyType
    kind: str = "variable"  # variable | function | class | module
    signature: Signature | None = None


@dataclass(frozen=True)
class Member:
    """An attribute or method of a type; `type` is the attribute's type or the method's result."""

    name: str
    type: PyType
    is_method: bool = False
    signature: Signature | None = None


@dataclass(frozen=True)
class HoleTypes:
    """What the checker knows at a hole.

    expected: the type the expression at the hole must have (None: no expectation).
    origin: where the expectation comes from: return, annotation, argument, attribute.
    bindings: the names in scope with their types (builtins excluded).
    visible: every name in scope; a name outside it is undefined there.
    """

    expected: PyType | None = None
    origin: str = ""
    bindings: tuple[Binding, ...] = field(default=())
    # Every name visible at the hole (builtins and modules too); None when the provider could not tell.
    visible: frozenset[str] | None = None


class TypeProvider(Protocol):
    def hole_types(self, source: str, slot: "ExpressionSlot") -> HoleTypes:
        """Expected type of the expression at `slot`, and the names in scope there."""
        ...

    def member_names(self, source: str, receiver_end: int) -> tuple[str, ...] | None:
        """Members of the value whose expression ends at character offset `receiver_end`
        (just before a "."); None when its type is unknown."""
        ...

    def members(self, source: str, owner: PyType) -> tuple[Member, ...]:
        """Members of a value of type `owner` (public names only), with their types; () if unknown."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExpressionSlot:
    """An expression position in the statement at the cursor, found from the text alone.

    kind: return | yield | annotation | default | attribute | argument | operand | iterable
    start: character offset in the document where the expression begins
    annotation: the annotation's text (annotation: of an assignment; default: of a parameter),
        the operator (operand)
    callee_end: offset just after the callee's "(" (kind argument)
    keyword: the keyword of a keyword argument (kind argument), else ""
    target: the assigned attribute (`self.x`), the left operand's text (operand), the loop
        target (iterable)
    lambda_start: where the argument's `lambda` begins when the slot is that lambda's body
        (kind argument; the expected type is then the parameter's callable's result), else 0
    """

    kind: str
    start: int
    annotation: str = ""
    callee_end: int = 0
    keyword: str = ""
    target: str = ""
    lambda_start: int = 0
    cursor: int = 0  # where the cursor is (the hole may have broken the text there); 0: at `start`

    @property
    def argument_start(self) -> int:
        """Where the argument itself begins (for a lambda's body, the lambda)."""
        return self.lambda_start or self.start


def parse_signature(text: str) -> Signature | None:
    """A signature from its text as Jedi prints it: `name(a: int, b: str = "") -> list[str]`."""
    text = text.strip()
    if not text:
        return None
    try:
        tree = python_ast.parse(f"def {text}: pass")
    except SyntaxError:
        return None
    function = tree.body[0]
    if not isinstance(function, ast.FunctionDef):
        return None
    args = function.args
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    params = [
        Param(arg.arg, _annotation(arg.annotation), index >= first_default)
        for index, arg in enumerate(positional)
        if arg.arg not in ("self", "cls")
    ]
    params += [
        Param(arg.arg, _annotation(arg.annotation), default is not None, keyword_only=True)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults)
    ]
    variadic = args.vararg is not None or args.kwarg is not None
    return Signature(tuple(params), _annotation(function.returns), variadic)


def _annotation(node: ast.expr | None) -> PyType:
    return ANY if node is None else _from_node(node)


# Characters at the start of a buffer that tell one file from another for the member cache.
FILE_HEAD = 2000


class MemberTables:
    """Member tables cached per type. Types made of builtins only are shared by every source
    for the whole session. Other types are kept per file (told apart by the text of its
    head) for `user_seconds`: a class's members change as it is edited, but not at every
    keystroke, and asking the checker again costs up to seconds."""

    def __init__(self, builtin_names: frozenset[str], size: int = 256, user_seconds: float = 60.0) -> None:
        self.builtin_names = builtin_names
        self.size = size
        self.user_seconds = user_seconds
        self._tables: OrderedDict[tuple[str, int], tuple[Member, ...]] = OrderedDict()
        self._found_at: dict[tuple[str, int], float] = {}

    def lookup(
        self,
        lock: threading.Lock,
        source: str,
        owner: PyType,
        find: Callable[[str, PyType], tuple[Member, ...]],
        cache_failures: bool = True,
    ) -> tuple[Member, ...]:
        """The members of `owner`, from the cache or from `find(source, owner)` (under `lock`)."""
        if not owner.is_known or owner.name in ("Union", "Callable", "Module"):
            return ()
        shared = self._builtin_only(owner)
        key = (str(owner), 0 if shared else hash(source[:FILE_HEAD]))
        with lock:
            fresh = shared or time.monotonic() - self._found_at.get(key, -1e9) < self.user_seconds
            if key in self._tables and fresh:
                self._tables.move_to_end(key)
                return self._tables[key]
            try:
                found = find("" if shared else source, owner)
            except Exception:  # the checker failed on this type: unknown, fail open
                if not cache_failures:
                    return ()
                found = ()
            self._tables[key] = found
            self._found_at[key] = time.monotonic()
            if len(self._tables) > self.size:
                dropped, _ = self._tables.popitem(last=False)
                self._found_at.pop(dropped, None)
            return found

    def clear(self) -> None:
        self._tables.clear()
        self._found_at.clear()

    def _builtin_only(self, value: PyType) -> bool:
        return value.name in self.builtin_names and all(self._builtin_only(arg) for arg in value.args)
