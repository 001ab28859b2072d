"""What a module's own code says about types, read once from its syntax tree.

Classes (fields declared in the body or assigned in methods, properties, methods with
their signatures, dataclass and attrs constructors, bases in the same module), module
functions, imports (`import typing as t` makes `t` a module), type variables and type
aliases; and for a cursor, the names in scope there with their types: parameters,
locals, loop targets, with narrowing of Optional values (`if x is None: return`).

It answers in milliseconds on files of thousands of lines, where asking Jedi about
every name in scope took a second. Whatever it cannot tell (an imported class's
members, a value computed by a call into another module) it leaves unknown, and the
indexed provider asks the type checker only about that.
"""

from __future__ import annotations

import ast
import builtins
import gc
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator

from accs_lsp.analysis import python_ast
from accs_lsp.types.model import ANY, BOOL, BYTES, FLOAT, INT, NONE, STR, PyType, _from_node, element_type, union
from accs_lsp.types.provider import Binding, Member, Param, Signature

BUILTIN_NAMES = frozenset(dir(builtins))
# Names every module has besides the builtins.
MODULE_NAMES = frozenset({"__file__", "__name__", "__doc__", "__spec__", "__loader__", "__package__", "__builtins__", "__path__", "__annotations__", "__dict__"})
# Bases that add no members a completion would use.
_EMPTY_BASES = frozenset({"object", "Generic", "Protocol", "ABC", "NamedTuple", "TypedDict"})
_PROPERTY_DECORATORS = frozenset({"property", "cached_property", "abstractproperty"})
_FIELD_CLASS_DECORATORS = frozenset({"dataclass", "define", "frozen", "mutable", "s", "attrs"})
_TERMINATING = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_MAX_BINDINGS = 80
_CLAUSE = re.compile(r"(else|elif|except|finally|case)\b")


@dataclass
class ClassFacts:
    name: str
    bases: tuple[str, ...]
    members: dict[str, Member] = field(default_factory=dict)
    init: Signature | None = None
    has_fields: bool = False  # a dataclass or attrs class: its constructor takes its fields


@dataclass(frozen=True)
class ScopeAtCursor:
    """The names visible at a cursor with their types, and the enclosing definitions."""

    bindings: tuple[Binding, ...]
    visible: frozenset[str] | None
    function: ast.FunctionDef | ast.AsyncFunctionDef | None
    class_name: str | None


class ModuleIndex:
    """Facts of one module's text (see the module docstring). Build with `ModuleIndex.build`."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.type_variables: set[str] = set()
        self.aliases: dict[str, PyType] = {}
        self.modules: dict[str, str] = {}  # local name -> imported module
        self.star_import = False
        self.classes: dict[str, ClassFacts] = {}
        self.module_bindings: dict[str, Binding] = {}
        self._module_names: frozenset[str] | None = None
        self._read_module(tree.body)

    @classmethod
    def build(cls, text: str, cursor: int, blocks: "BlockParser | None" = None) -> "ModuleIndex | None":
        """The index of `text` (`blocks`: reuse the parses of top-level statements seen before)."""
        # The syntax tree of a big file is hundreds of thousands of objects made at once: with
        # the cyclic collector on, its passes over the checker's caches (Jedi keeps its own
        # trees) double the time. The tree holds no cycles: collecting afterwards loses nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            tree = blocks.parse(text, cursor) if blocks is not None else None
            tree = tree or parse_tolerantly(text, cursor)
            return cls(tree) if tree is not None else None
        finally:
            if collecting:
                gc.enable()

    # -- types ----------------------------------------------------------------------------

    def type_of_annotation(self, node: ast.expr | None) -> PyType:
        if node is None:
            return ANY
        return self.resolve(_from_node(node))

    def resolve(self, value: PyType) -> PyType:
        """The type with this module's aliases expanded and its type variables read as Any."""
        if value.name in self.type_variables:
            return ANY
        if value.name in self.aliases and not value.args:
            return self.aliases[value.name]
        if not value.args:
            return value
        resolved = tuple(self.resolve(arg) for arg in value.args)
        return union(*resolved) if value.name == "Union" else PyType(value.name, resolved)

    # -- members --------------------------------------------------------------------------

    def members(self, owner: PyType) -> tuple[Member, ...] | None:
        """Members of an instance (or, for Type[C], of the class) of a class defined here,
        own and inherited; None when the class or one of its bases is not defined here."""
        name = owner.args[0].name if owner.name == "Type" and owner.args else owner.name
        found = self._members_of_class(name, set())
        return tuple(found.values()) if found is not None else None

    def _members_of_class(self, name: str, seen: set[str]) -> dict[str, Member] | None:
        facts = self.classes.get(name)
        if facts is None or name in seen:
            return None
        seen.add(name)
        merged: dict[str, Member] = {}
        for base in facts.bases:
            if base in _EMPTY_BASES:
                continue
            inherited = self._members_of_class(base, seen)
            if inherited is None:
                return None
            merged.update(inherited)
        merged.update(facts.members)
        return {key: value for key, value in merged.items() if not key.startswith("__")}

    def constructor(self, name: str) -> Signature | None:
        facts = self.classes.get(name)
        seen: set[str] = set()
        while facts is not None and name not in seen:
            seen.add(name)
            if facts.init is not None:
                return Signature(facts.init.params, PyType(facts.name), facts.init.variadic)
            local_bases = [base for base in facts.bases if base not in _EMPTY_BASES]
            if not local_bases:
                return Signature((), PyType(facts.name))
            name = local_bases[0]
            facts = self.classes.get(name)
        return None

    # -- the scope at a cursor -------------------------------------------------------------

    def scope_at(self, line: int) -> ScopeAtCursor:
        """Names in scope at 1-based `line`: this module's, then each enclosing function's."""
        chain = list(_enclosing(self.tree, line))
        scopes: list[dict[str, Binding]] = []  # innermost last
        class_name: str | None = None
        function: ast.FunctionDef | ast.AsyncFunctionDef | None = None
        for owner, node in chain:
            if isinstance(node, ast.ClassDef):
                class_name = node.name
                scopes.append(self._class_body_bindings(node) if node is chain[-1][1] else {})
                continue
            function = node
            method_of = class_name if owner is not None and isinstance(owner, ast.ClassDef) else None
            scopes.append({binding.name: binding for binding in self._function_bindings(node, method_of, line)})
        bindings: dict[str, Binding] = {}
        for scope in reversed(scopes):  # the innermost scope's names first: they are the likeliest
            for name, binding in scope.items():
                bindings.setdefault(name, binding)
        for name, binding in self.module_bindings.items():
            bindings.setdefault(name, binding)
        visible = None
        if not self.star_import:
            visible = frozenset(bindings) | BUILTIN_NAMES | MODULE_NAMES | self.module_names
            for owner, node in chain:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    visible |= bound_names(node.body) | _parameter_names(node)
                elif node is chain[-1][1]:
                    visible |= bound_names(node.body)  # a class body sees its own names
        ordered = sorted(bindings.values(), key=lambda b: b.kind == "module")  # modules last
        return ScopeAtCursor(tuple(ordered[:_MAX_BINDINGS]), visible, function, class_name)

    @property
    def module_names(self) -> frozenset[str]:
        """Every name the module's own statements bind (read once per index)."""
        if self._module_names is None:
            self._module_names = bound_names(self.tree.body)
        return self._module_names

    def _class_body_bindings(self, node: ast.ClassDef) -> dict[str, Binding]:
        """Names a class body defines, visible in the body itself (not in its methods)."""
        facts = self.classes.get(node.name)
        members = facts.members if facts is not None else {}
        return {name: Binding(name, member.type if not member.is_method else ANY, "function" if member.is_method else "variable",
                              member.signature) for name, member in members.items()}

    def _function_bindings(self, node: ast.FunctionDef | ast.AsyncFunctionDef, class_name: str | None, line: int) -> list[Binding]:
        local: dict[str, PyType] = {}
        for name, value in self._parameters(node, class_name):
            local[name] = value
        assigned = LocalTypes(self, local)
        assigned.read(node.body)
        narrowed = Narrowing(self, assigned.types).at(node.body, line)
        found = [Binding(name, narrowed.get(name, value)) for name, value in assigned.types.items()]
        found += [self.function_binding(f) for f in assigned.functions]
        return found

    def _parameters(self, node: ast.FunctionDef | ast.AsyncFunctionDef, class_name: str | None) -> Iterator[tuple[str, PyType]]:
        args = node.args
        positional = args.posonlyargs + args.args
        decorators = {_dotted_tail(d) for d in node.decorator_list}
        first_default = len(positional) - len(args.defaults)
        for index, arg in enumerate(positional):
            if index == 0 and class_name and "staticmethod" not in decorators:
                yield arg.arg, PyType("Type", (PyType(class_name),)) if "classmethod" in decorators else PyType(class_name)
                continue
            value = self.type_of_annotation(arg.annotation)
            if arg.annotation is None and index >= first_default:
                value = literal_type(args.defaults[index - first_default])
            yield arg.arg, value
        for arg in args.kwonlyargs:
            yield arg.arg, self.type_of_annotation(arg.annotation)
        if args.vararg:
            yield args.vararg.arg, PyType("tuple", (self.type_of_annotation(args.vararg.annotation),))
        if args.kwarg:
            yield args.kwarg.arg, PyType("dict", (STR, self.type_of_annotation(args.kwarg.annotation)))

    # -- reading the module ----------------------------------------------------------------

    def function_binding(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Binding:
        return Binding(node.name, ANY, "function", self.signature(node))

    def signature(self, node: ast.FunctionDef | ast.AsyncFunctionDef, bound: bool = False) -> Signature:
        """The signature as a caller sees it (`bound`: without the method's first parameter)."""
        args = node.args
        positional = args.posonlyargs + args.args
        if bound and positional:
            positional = positional[1:]
        first_default = len(positional) - len(args.defaults)
        params = [Param(a.arg, self.type_of_annotation(a.annotation), i >= first_default) for i, a in enumerate(positional)]
        params += [
            Param(a.arg, self.type_of_annotation(a.annotation), default is not None, keyword_only=True)
            for a, default in zip(args.kwonlyargs, args.kw_defaults)
        ]
        result = self.type_of_annotation(node.returns)
        if isinstance(node, ast.AsyncFunctionDef):
            result = ANY  # a coroutine
        return Signature(tuple(params), result, args.vararg is not None or args.kwarg is not None)

    def _read_module(self, body: list[ast.stmt]) -> None:
        for statement in _flattened(body):
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                self._read_import(statement)
            elif isinstance(statement, ast.Assign):
                self._read_module_assignment(statement)
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                self.module_bindings[statement.target.id] = Binding(statement.target.id, ANY)
        context = (frozenset(self.type_variables), frozenset(self.aliases.items()))
        for statement in _flattened(body):  # types need every alias and type variable first
            if isinstance(statement, ast.ClassDef):
                self.classes[statement.name] = self._class_facts(statement, context)
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name = statement.target.id
                self.module_bindings[name] = Binding(name, self.type_of_annotation(statement.annotation))
        for statement in _flattened(body):
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.module_bindings[statement.name] = self.function_binding(statement)
            elif isinstance(statement, ast.ClassDef):
                instance = PyType(statement.name)
                self.module_bindings[statement.name] = Binding(
                    statement.name, PyType("Type", (instance,)), "class", self.constructor(statement.name)
                )

    def _class_facts(self, node: ast.ClassDef, context: tuple) -> ClassFacts:
        """Read once per class definition: the parser reuses the trees of unchanged definitions,
        and a class's facts only depend on the module's aliases and type variables besides."""
        cached = getattr(node, "_accs_facts", None)
        if cached is not None and cached[0] == context:
            return cached[1]
        facts = ClassReader(self).read(node)
        node._accs_facts = (context, facts)  # type: ignore[attr-defined]
        return facts

    def _read_import(self, statement: ast.Import | ast.ImportFrom) -> None:
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                local = alias.asname or alias.name.split(".")[0]
                module = alias.name if alias.asname else alias.name.split(".")[0]
                self.modules[local] = module
                self.module_bindings[local] = Binding(local, PyType("Module", (PyType(module),)), "module")
            return
        for alias in statement.names:
            if alias.name == "*":
                self.star_import = True
                continue
            local = alias.asname or alias.name
            self.module_bindings[local] = Binding(local, ANY)

    def _read_module_assignment(self, statement: ast.Assign) -> None:
        value = statement.value
        for target in statement.targets:
            for name in _target_names(target):
                self.module_bindings[name] = Binding(name, literal_type(value))
        if len(statement.targets) != 1 or not isinstance(statement.targets[0], ast.Name):
            return
        name = statement.targets[0].id
        if isinstance(value, ast.Call) and _dotted_tail(value.func) in ("TypeVar", "ParamSpec", "TypeVarTuple"):
            self.type_variables.add(name)
        elif _looks_like_type(value):
            self.aliases[name] = _from_node(value)


class ClassReader:
    """The facts of one class definition."""

    def __init__(self, index: ModuleIndex) -> None:
        self.index = index

    def read(self, node: ast.ClassDef) -> ClassFacts:
        facts = ClassFacts(node.name, tuple(_dotted_tail(base) for base in node.bases))
        facts.has_fields = any(_dotted_tail(d) in _FIELD_CLASS_DECORATORS for d in node.decorator_list)
        fields: list[Param] = []
        overloaded: set[str] = set()
        for statement in _flattened(node.body):
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name, value = statement.target.id, self.index.type_of_annotation(statement.annotation)
                if _dotted_tail(statement.annotation) != "ClassVar":
                    fields.append(Param(name, value, statement.value is not None and not _is_required_field(statement.value)))
                facts.members.setdefault(name, Member(name, value))
            elif isinstance(statement, ast.Assign):
                for target in statement.targets:
                    for name in _target_names(target):
                        facts.members.setdefault(name, Member(name, literal_type(statement.value)))
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._read_method(facts, statement, overloaded)
        if facts.has_fields and facts.init is None:
            facts.init = Signature(tuple(fields), PyType(node.name))
        return facts

    def _read_method(self, facts: ClassFacts, node: ast.FunctionDef | ast.AsyncFunctionDef, overloaded: set[str]) -> None:
        decorators = [_dotted_tail(d) for d in node.decorator_list]
        if any(name in ("setter", "deleter") for name in decorators):
            return
        if "overload" in decorators or node.name in overloaded:
            overloaded.add(node.name)
            facts.members[node.name] = Member(node.name, ANY, True, None)  # result depends on the arguments
            return
        if any(name in _PROPERTY_DECORATORS for name in decorators):
            facts.members[node.name] = Member(node.name, self.index.type_of_annotation(node.returns))
            return
        bound = "staticmethod" not in decorators
        signature = self.index.signature(node, bound=bound)
        if node.name == "__init__":
            facts.init = signature
        facts.members[node.name] = Member(node.name, signature.result, True, signature)
        self._read_instance_attributes(facts, node)

    def _read_instance_attributes(self, facts: ClassFacts, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """`self.x: T = ...` and `self.x = <annotated parameter>` in a method's body."""
        positional = node.args.posonlyargs + node.args.args
        if not positional:
            return
        receiver = positional[0].arg
        parameters = {a.arg: self.index.type_of_annotation(a.annotation) for a in positional[1:] + node.args.kwonlyargs}
        for statement in ast.walk(node):
            if isinstance(statement, ast.AnnAssign) and _is_attribute_of(statement.target, receiver):
                name = statement.target.attr  # type: ignore[union-attr]
                declared = self.index.type_of_annotation(statement.annotation)
                facts.members[name] = Member(name, declared)  # a declaration beats an inferred type
            elif isinstance(statement, ast.Assign):
                for target in statement.targets:
                    if _is_attribute_of(target, receiver) and target.attr not in facts.members:  # type: ignore[union-attr]
                        value = statement.value
                        inferred = parameters.get(value.id, ANY) if isinstance(value, ast.Name) else literal_type(value)
                        facts.members[target.attr] = Member(target.attr, inferred)  # type: ignore[union-attr]


class LocalTypes:
    """The names a function's body binds (not inside nested definitions), with their types."""

    def __init__(self, index: ModuleIndex, types: dict[str, PyType]) -> None:
        self.index = index
        self.types = types
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self._declared: set[str] = set(types)

    def read(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self._statement(statement)

    def _statement(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.functions.append(node)
            return
        if isinstance(node, ast.ClassDef):
            self.types[node.name] = PyType("Type", (PyType(node.name),))
            return
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            self.types[node.target.id] = self.index.type_of_annotation(node.annotation)
            self._declared.add(node.target.id)
        elif isinstance(node, ast.Assign):
            value = self.infer(node.value)
            for target in node.targets:
                self._bind(target, value)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._bind(node.target, element_type(self.infer(node.iter)))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    self._bind(item.optional_vars, ANY)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                self.types[alias.asname or alias.name.split(".")[0]] = ANY
        elif isinstance(node, ast.Try):
            for handler in node.handlers:
                if handler.name:
                    self.types[handler.name] = self.index.type_of_annotation(handler.type) if handler.type else ANY
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self._statement(child)
            elif isinstance(child, ast.ExceptHandler):
                self.read(child.body)
            elif isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                self._bind(child.target, self.infer(child.value))

    def _bind(self, target: ast.expr, value: PyType) -> None:
        if isinstance(target, ast.Name):
            name = target.id
            if name in self._declared:
                return
            self.types[name] = value if name not in self.types else _joined(self.types[name], value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = value.args if value.name == "tuple" and len(value.args) == len(target.elts) else None
            for position, element in enumerate(target.elts):
                self._bind(element, items[position] if items else ANY)

    def infer(self, node: ast.expr) -> PyType:
        """The type of a simple expression: literals, names, constructor and function calls."""
        literal = literal_type(node)
        if literal.is_known:
            return literal
        if isinstance(node, ast.Name):
            return self.types.get(node.id, ANY)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in self.index.classes:
                return PyType(name)
            binding = self.index.module_bindings.get(name)
            if binding is not None and binding.signature is not None:
                return binding.signature.result
        return ANY


class Narrowing:
    """Optional values narrowed at a line: after `if x is None: return` (or raise, continue,
    break), after `assert x is not None`, and inside `if x is not None:` / `if x:` or
    `isinstance(x, C)` blocks."""

    def __init__(self, index: ModuleIndex, types: dict[str, PyType]) -> None:
        self.index = index
        self.types = types

    def at(self, body: list[ast.stmt], line: int) -> dict[str, PyType]:
        narrowed: dict[str, PyType] = {}
        self._walk(body, line, narrowed)
        return narrowed

    def _walk(self, body: list[ast.stmt], line: int, narrowed: dict[str, PyType]) -> None:
        for statement in body:
            if statement.lineno > line:
                return
            inside = statement.lineno <= line <= (statement.end_lineno or statement.lineno)
            if isinstance(statement, ast.If):
                if inside:
                    in_body = any(s.lineno <= line <= (s.end_lineno or s.lineno) for s in statement.body) or (
                        statement.body and line > (statement.body[-1].end_lineno or 0) and not statement.orelse
                    )
                    self._apply(statement.test, narrowed, positive=bool(in_body))
                    self._walk(statement.body if in_body else statement.orelse, line, narrowed)
                    return
                if statement.body and isinstance(statement.body[-1], _TERMINATING) and not statement.orelse:
                    self._apply(statement.test, narrowed, positive=False)
            elif isinstance(statement, ast.Assert) and not inside:
                self._apply(statement.test, narrowed, positive=True)
            elif inside:
                for child_body in _bodies(statement):
                    if child_body and child_body[0].lineno <= line:
                        self._walk(child_body, line, narrowed)
                return

    def _apply(self, test: ast.expr, narrowed: dict[str, PyType], positive: bool) -> None:
        """Narrow what `test` being `positive` (true) implies."""
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            self._apply(test.operand, narrowed, not positive)
        elif isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and positive:
            for value in test.values:
                self._apply(value, narrowed, True)
        elif isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or) and not positive:
            for value in test.values:
                self._apply(value, narrowed, False)
        elif isinstance(test, ast.Name) and positive:
            self._without_none(test.id, narrowed)
        elif isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.left, ast.Name):
            right = test.comparators[0]
            if isinstance(right, ast.Constant) and right.value is None:
                is_not = isinstance(test.ops[0], ast.IsNot)
                if isinstance(test.ops[0], (ast.Is, ast.IsNot)) and positive == is_not:
                    self._without_none(test.left.id, narrowed)
        elif isinstance(test, ast.Call) and _dotted_tail(test.func) == "isinstance" and positive and len(test.args) == 2:
            subject, kind = test.args
            if isinstance(subject, ast.Name) and isinstance(kind, (ast.Name, ast.Attribute)):
                narrowed[subject.id] = self.index.type_of_annotation(kind)

    def _without_none(self, name: str, narrowed: dict[str, PyType]) -> None:
        value = narrowed.get(name, self.types.get(name))
        if value is not None and value.name == "Union" and NONE in value.args:
            narrowed[name] = union(*(arg for arg in value.args if arg != NONE))


# -- parsing a buffer that may be broken at the cursor ---------------------------------------


# ValueError: a null byte. SystemError, RecursionError, MemoryError: CPython's parser gives
# up on some deeply nested or odd text.
_UNPARSEABLE = (SyntaxError, ValueError, SystemError, RecursionError, MemoryError)


def parse_tolerantly(text: str, cursor: int, attempts: int = 8) -> ast.Module | None:
    """The module's tree, where the hole may have broken the text. Tried in turn: the text;
    a name put at the cursor (`self.` → `self._`: most holes miss an expression there); then
    the failing statements stubbed out (`pass`, or `if True:` where a block follows), from
    the cursor's line on, keeping every line number. The repairs are tried on the top-level
    statement around the cursor first (parsing a few hundred lines, not the whole file)."""
    lines = text.split("\n")
    cursor_line = text.count("\n", 0, cursor)
    column = cursor - (text.rfind("\n", 0, cursor) + 1)
    if cursor_line >= len(lines):
        return None
    first, end = top_level_block(lines, cursor_line)
    whole = _stubbed(lines, _empty_indented(lines, cursor_line))
    for start, stop in ((0, 0), (first, end), (0, len(lines))):
        if stop > start:
            repaired = _repaired(lines[start:stop], cursor_line - start, column, attempts)
            if repaired is None:
                continue
            whole = lines[:start] + repaired + lines[stop:]
        try:
            return python_ast.parse("\n".join(whole))
        except _UNPARSEABLE:
            continue
    return None


class BlockParser:
    """Parses a module one top-level statement (a class, a function, an import...) at a time,
    reusing the trees of those whose text and first line did not change since an earlier
    version: while the user types, only the definition around the cursor is parsed again."""

    def __init__(self, kept: int = 4096) -> None:
        self.kept = kept
        self._trees: OrderedDict[tuple[str, int], list[ast.stmt]] = OrderedDict()

    def parse(self, text: str, cursor: int) -> ast.Module | None:
        """The module's tree, or None where a block does not parse even repaired (a string or a
        bracket spanning blocks): the caller parses the whole text then."""
        lines = text.split("\n")
        cursor_line = text.count("\n", 0, cursor)
        column = cursor - (text.rfind("\n", 0, cursor) + 1)
        body: list[ast.stmt] = []
        for first, end in _blocks(lines):
            block = lines[first:end]
            if first <= cursor_line < end:
                repaired = _repaired(block, cursor_line - first, column, attempts=8)
                statements = _parsed_at(repaired, first) if repaired is not None else None
            else:
                statements = self._cached(block, first)
            if statements is None:
                return None
            body.extend(statements)
        return ast.Module(body=body, type_ignores=[])

    def _cached(self, block: list[str], first: int) -> list[ast.stmt] | None:
        key = ("\n".join(block), first)
        if key in self._trees:
            self._trees.move_to_end(key)
            return self._trees[key]
        statements = _parsed_at(block, first)
        if statements is not None:
            self._trees[key] = statements
            if len(self._trees) > self.kept:
                self._trees.popitem(last=False)
        return statements


def _parsed_at(lines: list[str], first: int) -> list[ast.stmt] | None:
    """The statements of `lines`, numbered as if they began at 0-based line `first`."""
    try:
        tree = python_ast.parse("\n" * first + "\n".join(lines))
    except _UNPARSEABLE:
        return None
    return tree.body


def _blocks(lines: list[str]) -> Iterator[tuple[int, int]]:
    """[first, end) line ranges of the top-level statements, with the comments and blank lines
    before each; decorators, `else`/`except` clauses and triple-quoted strings stay with theirs."""
    first, in_string, decorated = 0, False, False
    for number, line in enumerate(lines):
        starts = not in_string and _starts_top_level(line) and not _CLAUSE.match(line) and not decorated
        if starts and number > first:
            yield first, number
            first = number
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_string = not in_string
        if line.strip() and not line.startswith("#"):
            decorated = not in_string and line.startswith("@")
    if first < len(lines):
        yield first, len(lines)


def _repaired(lines: list[str], cursor_line: int, column: int, attempts: int) -> list[str] | None:
    """The lines, repaired around the cursor so that they parse; None if that failed."""
    blanked = _empty_indented(lines, cursor_line)
    line = lines[cursor_line]
    filled = lines[:cursor_line] + [line[:column] + "_" + line[column:]] + lines[cursor_line + 1 :]
    for candidate in (_stubbed(lines, blanked), filled):
        if _parses(candidate):
            return candidate
    blanked.add(cursor_line)
    for _ in range(attempts):
        candidate = _stubbed(lines, blanked)
        try:
            python_ast.parse("\n".join(candidate))
            return candidate
        except SyntaxError as error:
            blanked |= _lines_to_stub(error, blanked)
        except _UNPARSEABLE:
            return None
    return None


def _parses(lines: list[str]) -> bool:
    try:
        python_ast.parse("\n".join(lines))
        return True
    except _UNPARSEABLE:
        return False


def _empty_indented(lines: list[str], number: int) -> set[int]:
    """{number} where that line is indented but empty: a statement there keeps it in its block."""
    return {number} if lines[number] and not lines[number].strip() else set()


def top_level_block(lines: list[str], number: int) -> tuple[int, int]:
    """The lines [first, end) of the top-level statement (a class, a function...) around `number`."""
    first = number
    while first > 0 and not _starts_top_level(lines[first]):
        first -= 1
    end = number + 1
    while end < len(lines) and not _starts_top_level(lines[end]):
        end += 1
    return first, end


def _starts_top_level(line: str) -> bool:
    return bool(line) and (line[0].isalpha() or line[0] in "_@")


def _lines_to_stub(error: SyntaxError, blanked: set[int]) -> set[int]:
    failing = (error.lineno or 0) - 1
    if failing < 0 or failing in blanked:
        return {max(blanked) + 1}
    if failing < min(blanked) and min(blanked) - failing <= 20:
        return set(range(failing, min(blanked)))  # the statement at the cursor began there
    return {failing}


def _stubbed(lines: list[str], blanked: set[int]) -> list[str]:
    """The lines with each run of blanked lines made one statement at its first line's indentation."""
    result = list(lines)
    for number in sorted(blanked):
        if number >= len(lines):
            continue
        if number - 1 in blanked:
            result[number] = ""
            continue
        run_end = number
        while run_end + 1 in blanked:
            run_end += 1
        indentation = _indentation(lines[number])
        following = next((line for line in lines[run_end + 1 :] if line.strip()), "")
        opens_block = len(_indentation(following)) > len(indentation)
        result[number] = indentation + ("if True:" if opens_block else "pass")
    return result


def _indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


# -- small readers ----------------------------------------------------------------------------


def literal_type(node: ast.expr | None) -> PyType:
    """The type of a literal or display (ANY for anything else)."""
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None:
            return NONE
        return {bool: BOOL, int: INT, float: FLOAT, str: STR, bytes: BYTES}.get(type(value), ANY)
    if isinstance(node, ast.JoinedStr):
        return STR
    if isinstance(node, (ast.List, ast.Set)):
        family = "list" if isinstance(node, ast.List) else "set"
        elements = [literal_type(element) for element in node.elts]
        return PyType(family, (union(*elements),)) if elements and all(e.is_known for e in elements) else PyType(family, (ANY,))
    if isinstance(node, ast.Dict):
        return PyType("dict", (ANY, ANY))
    if isinstance(node, ast.Tuple):
        return PyType("tuple", tuple(literal_type(element) for element in node.elts))
    if isinstance(node, ast.Compare) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return BOOL
    return ANY


def _joined(first: PyType, second: PyType) -> PyType:
    if first == NONE and second.is_known:  # `x = None` then assigned: Optional
        return union(second, NONE)
    return union(first, second) if first.is_known and second.is_known else ANY


def _looks_like_type(node: ast.expr) -> bool:
    """`t.Union[...]`, `t.Callable[...]`, `int | str`: a module-level type alias."""
    if isinstance(node, ast.Subscript):
        return _dotted_tail(node.value) in ("Union", "Optional", "Callable", "Dict", "List", "Tuple", "Mapping",
                                            "Sequence", "Type", "Literal", "dict", "list", "tuple", "type")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _looks_like_type(node.left) or _looks_like_type(node.right) or isinstance(node.left, ast.Name)
    return False


def _is_required_field(value: ast.expr) -> bool:
    """`x: int = field()` / `attr.ib()` without a default is still a required field."""
    if not isinstance(value, ast.Call) or _dotted_tail(value.func) not in ("field", "ib", "attrib"):
        return False
    return not any(k.arg in ("default", "default_factory", "factory") for k in value.keywords)


def _is_attribute_of(node: ast.expr, receiver: str) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == receiver


def _target_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)


def _dotted_tail(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _flattened(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements of a module or class body, looking into `if`, `try` and `with` blocks
    (`if TYPE_CHECKING:`, `try: import x except ImportError: ...`)."""
    for statement in body:
        if isinstance(statement, (ast.If, ast.Try, ast.With)):
            for inner in _bodies(statement):
                yield from _flattened(inner)
        else:
            yield statement


def _bodies(statement: ast.stmt) -> list[list[ast.stmt]]:
    bodies = [getattr(statement, name, None) for name in ("body", "orelse", "finalbody")]
    found = [body for body in bodies if isinstance(body, list)]
    found += [handler.body for handler in getattr(statement, "handlers", [])]
    return found


def _enclosing(tree: ast.Module, line: int) -> Iterator[tuple[ast.AST | None, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef]]:
    """The classes and functions whose body holds `line`, outermost first, each with its owner."""
    owner: ast.AST | None = None
    body: list[ast.stmt] = tree.body
    while True:
        found = None
        for statement in _flattened_all(body):
            if isinstance(statement, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and statement.body:
                if statement.body[0].lineno <= line <= (statement.end_lineno or statement.lineno) or (
                    statement.lineno < line <= (statement.end_lineno or statement.lineno)
                ):
                    found = statement
        if found is None:
            return
        yield owner, found
        owner, body = found, found.body


def bound_names(body: list[ast.stmt]) -> frozenset[str]:
    """Every name the statements of one scope bind: assignment, loop, `with`, `except` and
    pattern targets, imports, definitions, `global` and `nonlocal` names, walrus targets
    (not the names nested definitions bind inside themselves)."""
    names: set[str] = set()
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            pending.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name != "*")
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        pending.extend(ast.iter_child_nodes(node))
    return frozenset(names)


def _parameter_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    arguments = node.args
    every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [a for a in (arguments.vararg, arguments.kwarg) if a]
    return frozenset(argument.arg for argument in every)


def _flattened_all(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of a body, nested blocks included (not nested definitions' bodies)."""
    for statement in body:
        yield statement
        if not isinstance(statement, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in _bodies(statement):
                yield from _flattened_all(inner)


__all__ = ["ModuleIndex", "ScopeAtCursor", "ClassFacts", "parse_tolerantly", "top_level_block", "BlockParser", "literal_type", "BUILTIN_NAMES"]
