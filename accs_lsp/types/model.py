"""A small model of Python types: enough to say which expressions fit a hole.

Types come from annotations and from Jedi's or basedpyright's type strings
(`List[int]`, `list[int]`, `Optional[str]`, `int | None`, `Type[Point]`...).
Anything this model cannot read becomes `ANY`, and `ANY` fits everywhere:
the type layer fails open.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from accs_lsp.analysis import python_ast


@dataclass(frozen=True)
class PyType:
    """`name` is a class name (`int`, `list`, `Point`), or one of the special names
    `Any`, `None`, `Union`, `Callable` (args: return type last), `Type` (a class object),
    `Module`."""

    name: str
    args: tuple["PyType", ...] = ()

    def __str__(self) -> str:
        if self.name == "Union":
            return " | ".join(str(arg) for arg in self.args)
        if self.name == "Callable" and self.args:
            return f"Callable[[{', '.join(map(str, self.args[:-1]))}], {self.args[-1]}]"
        if self.args:
            return f"{self.name}[{', '.join(map(str, self.args))}]"
        return self.name

    @property
    def is_known(self) -> bool:
        """False for Any and for types with Any inside, except as generic arguments."""
        if self.name == "Union":
            return all(arg.is_known for arg in self.args)
        return self.name not in ("Any", "TypeVar")


ANY = PyType("Any")
NONE = PyType("None")
INT, FLOAT, STR, BOOL, BYTES = (PyType(name) for name in ("int", "float", "str", "bool", "bytes"))


# typing aliases and abstract collections, read as the builtin they stand for
_ALIASES = {
    "List": "list", "Dict": "dict", "Set": "set", "FrozenSet": "frozenset", "Tuple": "tuple",
    "Type": "Type", "type": "Type", "DefaultDict": "dict", "OrderedDict": "dict", "Text": "str",
    "NoneType": "None", "Iterator": "Iterator", "Generator": "Iterator",
}
# Abstract types: a value of one of these is iterable over its first argument.
ITERABLES = frozenset(
    {"list", "set", "frozenset", "tuple", "dict", "Iterator", "Iterable", "Sequence", "Collection",
     "MutableSequence", "AbstractSet", "MutableSet", "Mapping", "MutableMapping", "KeysView", "ValuesView",
     "str", "bytes", "range", "map", "filter", "reversed", "enumerate", "zip"}
)
_PROTOCOL_PARENTS = {  # a value of the key's type is also one of these
    "list": ("Sequence", "MutableSequence", "Collection", "Iterable", "Reversible", "Sized", "Container"),
    "tuple": ("Sequence", "Collection", "Iterable", "Reversible", "Sized", "Container"),
    "str": ("Sequence", "Collection", "Iterable", "Sized", "Container", "Hashable"),
    "dict": ("Mapping", "MutableMapping", "Collection", "Iterable", "Sized", "Container"),
    "set": ("AbstractSet", "MutableSet", "Collection", "Iterable", "Sized", "Container"),
    "frozenset": ("AbstractSet", "Collection", "Iterable", "Sized", "Container", "Hashable"),
    "range": ("Sequence", "Collection", "Iterable", "Sized", "Container"),
    "Iterator": ("Iterable",),
    "map": ("Iterator", "Iterable"), "filter": ("Iterator", "Iterable"), "reversed": ("Iterator", "Iterable"),
    "enumerate": ("Iterator", "Iterable"), "zip": ("Iterator", "Iterable"),
    "Sequence": ("Collection", "Iterable", "Sized", "Container", "Reversible"),
    "Mapping": ("Collection", "Iterable", "Sized", "Container"),
    "Collection": ("Iterable", "Sized", "Container"),
}
# Numeric promotion of the typing spec: an int is accepted where a float is expected.
_PROMOTIONS = {"bool": ("int", "float", "complex"), "int": ("float", "complex"), "float": ("complex",)}
_INVARIANT = frozenset({"list", "dict", "set"})


def parse_type(text: str | None) -> PyType:
    """The type an annotation or a type string denotes; ANY when it cannot be read."""
    if not text or not text.strip():
        return ANY
    try:
        node = python_ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return ANY
    return _from_node(node)


def _from_node(node: ast.expr) -> PyType:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return NONE
        if isinstance(node.value, str):
            return parse_type(node.value)  # a forward reference
        return ANY
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return union(_from_node(node.left), _from_node(node.right))
    if isinstance(node, (ast.Name, ast.Attribute)):
        return _named(_dotted_tail(node), ())
    if isinstance(node, ast.Subscript):
        base = _dotted_tail(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Callable" and len(items) == 2:
            params = items[0].elts if isinstance(items[0], ast.List) else []
            return PyType("Callable", tuple(_from_node(p) for p in params) + (_from_node(items[1]),))
        if base == "Literal":
            return _literal(items)
        args = tuple(ANY if isinstance(item, ast.Constant) and item.value is Ellipsis else _from_node(item) for item in items)
        return _named(base, args)
    return ANY


def _dotted_tail(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _named(name: str, args: tuple[PyType, ...]) -> PyType:
    name = _ALIASES.get(name, name)
    if not name or name in ("Any", "object", "Self"):
        return ANY
    if name == "Optional" and args:
        return union(args[0], NONE)
    if name == "Union":
        return union(*args)
    if name == "Annotated" and args:
        return args[0]
    if len(name) <= 2 and name.startswith("_") or name.startswith("_T") or name in ("T", "K", "V", "KT", "VT"):
        return ANY  # an unsolved type variable
    if name == "tuple" and len(args) == 2 and args[1] == ANY:
        return PyType("tuple", (args[0],))  # tuple[int, ...]: iterable over int
    return PyType(name, args)


def _literal(items: list[ast.expr]) -> PyType:
    kinds = {type(item.value).__name__ for item in items if isinstance(item, ast.Constant)}
    return PyType(kinds.pop()) if len(kinds) == 1 and kinds <= {"int", "str", "bool", "bytes"} else ANY


def known_or_none(value: PyType | None) -> PyType | None:
    """The type where it says something (not None, not Any), else None."""
    return value if value is not None and value.is_known else None


def union(*members: PyType) -> PyType:
    flat: list[PyType] = []
    for member in members:
        for part in member.args if member.name == "Union" else (member,):
            if part not in flat:
                flat.append(part)
    if ANY in flat:
        return ANY
    return flat[0] if len(flat) == 1 else PyType("Union", tuple(flat))


def is_assignable(value: PyType, expected: PyType) -> bool:
    """Whether a value of type `value` fits where `expected` is wanted (gradually: Any fits both ways)."""
    if not value.is_known or not expected.is_known:
        return True
    if value.name == "Union":
        return all(is_assignable(member, expected) for member in value.args)
    if expected.name == "Union":
        return any(is_assignable(value, member) for member in expected.args)
    if value.name == expected.name:
        return _arguments_fit(value, expected)
    if expected.name in _PROMOTIONS.get(value.name, ()):
        return True
    if expected.name in ("Hashable",) and value.name in ("int", "str", "float", "bool", "bytes", "tuple", "None"):
        return True
    if expected.name in _PROTOCOL_PARENTS.get(value.name, ()):
        return is_assignable(element_type(value), element_type(expected))
    return False


def _arguments_fit(value: PyType, expected: PyType) -> bool:
    if not value.args or not expected.args:
        return True
    if value.name == "tuple" and len(value.args) != len(expected.args):
        element = union(*value.args)
        return all(is_assignable(element, arg) for arg in expected.args)
    pairs = zip(value.args, expected.args)
    if value.name in _INVARIANT:
        return all(_same_type(a, b) for a, b in pairs)
    return all(is_assignable(a, b) for a, b in pairs)


def _same_type(a: PyType, b: PyType) -> bool:
    """Equal, reading Any and missing generic arguments (a bare `tuple`) as wildcards."""
    if not a.is_known or not b.is_known:
        return True
    if a.name != b.name:
        return False
    if not a.args or not b.args:
        return True
    return len(a.args) == len(b.args) and all(_same_type(x, y) for x, y in zip(a.args, b.args))


def element_type(value: PyType) -> PyType:
    """What iterating over a value of this type gives (ANY when unknown)."""
    if value.name in ("str",):
        return STR
    if value.name == "bytes" or value.name == "range":
        return INT
    if value.name == "enumerate" and value.args:
        return PyType("tuple", (INT, value.args[0]))
    if value.name == "tuple" and value.args:
        return union(*value.args)
    if value.name in ITERABLES and value.args:
        return value.args[0]
    return ANY


def is_iterable(value: PyType) -> bool:
    return value.name in ITERABLES or value.name in _PROTOCOL_PARENTS and "Iterable" in _PROTOCOL_PARENTS[value.name]


def callable_result(value: PyType) -> PyType:
    """What calling a value of this type returns: a function's result, a class's instance."""
    if value.name == "Callable" and value.args:
        return value.args[-1]
    if value.name == "Type" and value.args:
        return value.args[0]
    return ANY


def subscript_result(value: PyType) -> PyType | None:
    """What `value[i]` gives (None when unknown)."""
    if value.name in ("list", "Sequence", "MutableSequence") and value.args:
        return value.args[0]
    if value.name in ("dict", "Mapping", "MutableMapping") and len(value.args) == 2:
        return value.args[1]
    if value.name == "str":
        return STR
    if value.name == "tuple" and value.args:
        return union(*value.args)
    return None
