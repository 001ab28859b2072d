"""Inhabitation search: the expressions that build a value of the expected type.

From the names in scope, their member tables and a table of builtins, the search
finds the ways to reach the expected type within a depth bound (variables,
attribute and method chains, calls of functions and constructors, builtin
conversions, literals, comprehensions, displays, operators), and writes them as
Lark rules over the Python grammar's terminals (see
`constraints.python_grammar.expression_grammar`).

* Every rule it writes is productive (rules that derive no string are pruned), so
  llguidance's Earley parser keeps the prefix property: every prefix the mask
  allows still extends to an expression of the expected type.
* Gradual typing: names whose type is unknown, and members whose type is
  unknown, stay allowed with any trailers after them. Builtins this search does
  not model are such names. Argument types that the model cannot express are
  any expression.
* Memoised on (type, depth, whitespace flavour, comprehension variable), so
  cycles (a method returning its own class) end at the depth bound.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from accs_lsp.types.model import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    PyType,
    element_type,
    is_assignable,
    is_iterable,
    subscript_result,
)
from accs_lsp.types.provider import Binding, Member, Signature

# Past this many rules, sub-expressions are left unconstrained (gradual) instead of searched:
# the grammar stays small enough to compile and mask quickly in a scope with many types.
RULE_BUDGET = 250
# Member chains from one type to the target beyond which the chain is left open (any trailers).
CHAIN_ALTERNATIVES = 24
# Distinct member steps the search examines before it leaves the rest open: the seed's examples
# take about 150; a hole in a 3,800-line module with dozens of classes in scope about 600, and
# the grammar of the whole search then costs more per token than the type layers' 1 ms target.
STEP_BUDGET = 400
# Completion items are searched this deep (the grammar goes deeper).
ITEM_DEPTH = 2
# The iterable of a comprehension whose loop variable's type is unknown: reached only by
# values of unknown type, never by a known iterable (whose comprehension is typed).
UNKNOWN_ITERABLE = PyType("<unknown iterable>")
# Names of the builtins scope as type checkers see it (typeshed's stub adds a few): never
# values whose element type is unknown.
_BUILTIN_CLASSES = frozenset(name for name in dir(builtins) if isinstance(getattr(builtins, name), type))
_BUILTIN_SCOPE = frozenset(dir(builtins)) | {"AbstractSet", "WindowsError", "ellipsis", "function", "reveal_type"}
# Members of a type; None when they are unknown (the search then treats the type as Any).
MembersOf = Callable[[PyType], "tuple[Member, ...] | None"]

# Builtin callables the search models: name -> (parameter kinds, result rule). "any" is any
# expression; "iter" an iterable whose element the result rule receives.
_CONVERSIONS = {"str": STR, "repr": STR, "int": INT, "float": FLOAT, "bool": BOOL, "len": INT, "round": INT,
                "abs": ANY, "ord": INT, "chr": STR, "hash": INT, "id": INT, "format": STR, "ascii": STR,
                "isinstance": BOOL, "callable": BOOL, "hasattr": BOOL, "any": BOOL, "all": BOOL}
_COLLECTORS = {"list": "list", "sorted": "list", "set": "set", "frozenset": "frozenset", "tuple": "tuple",
               "reversed": "Iterator", "iter": "Iterator", "filter": "Iterator"}
_REDUCERS = ("sum", "min", "max", "next")
MODELLED_BUILTINS = frozenset(_CONVERSIONS) | frozenset(_COLLECTORS) | frozenset(_REDUCERS) | {"map", "range", "dict", "enumerate", "zip"}
_KNOWN_CLASSES = frozenset(
    {"int", "float", "complex", "str", "bytes", "bool", "None", "list", "dict", "set", "frozenset", "tuple",
     "range", "Iterator", "Iterable", "Sequence", "Collection", "Mapping", "MutableMapping", "MutableSequence",
     "AbstractSet", "MutableSet", "Union", "enumerate", "map", "filter", "zip", "reversed", "Sized", "Container",
     "Hashable", "Reversible", "KeysView", "ValuesView"}
)
_NUMERIC = {"int": ("+", "-", "*", "//", "%", "**"), "float": ("+", "-", "*", "/", "//", "%", "**"),
            "complex": ("+", "-", "*", "/", "**")}
_TERMINAL_OF = {"(": "LPAR", ")": "RPAR", "[": "LSQB", "]": "RSQB", "{": "LBRACE", "}": "RBRACE", ",": "COMMA",
                ".": "DOT", ":": "COLON", "for": "FOR1", "in": "IN1", "if": "IF1", "else": "ELSE1",
                "not": "NOT0", "and": "BOOLOP", "=": "EQ"}


@dataclass(frozen=True)
class Lit:
    """Fixed text; `inner`: it sits inside this production's brackets (bracket whitespace)."""

    text: str
    inner: bool = False


@dataclass(frozen=True)
class Hole:
    """A sub-expression: of `type` ("typed"), any expression ("any"), a fresh name ("fresh"),
    comprehension targets ("targets"), or a raw grammar symbol ("raw": `type` unused, `symbol` set)."""

    kind: str
    type: PyType = ANY
    inner: bool = True
    loop: PyType | None = None
    depth_cost: int = 1
    symbol: str = ""


Part = Lit | Hole


def raw(symbol: str) -> Hole:
    """A grammar symbol used as it is (`args_b?`), or in the production's flavour (`strings@`)."""
    return Hole("raw", symbol=symbol, inner=False, depth_cost=0)


def chain(value: PyType) -> Hole:
    """Trailers after a value of type `value` that reach the production's target type."""
    return Hole("chain", value, False, depth_cost=0)


@dataclass(frozen=True)
class Production:
    parts: tuple[Part, ...]
    cost: float


@dataclass
class Scope:
    bindings: dict[str, Binding]
    members_of: MembersOf
    classes: frozenset[str] = field(default_factory=frozenset)
    visible: frozenset[str] | None = None  # None: any identifier may be a name in scope

    @classmethod
    def of(cls, bindings: Iterable[Binding], members_of: MembersOf, visible: frozenset[str] | None = None) -> "Scope":
        by_name = {binding.name: binding for binding in bindings}
        classes = frozenset(b.name for b in by_name.values() if b.kind == "class")
        return cls(by_name, members_of, classes, visible)


@functools.lru_cache(maxsize=8192)  # asked tens of thousands of times in one search
def is_modelled(value: PyType, classes: frozenset[str]) -> bool:
    """Whether every class named in the type is one this search can reason about."""
    if not value.is_known:
        return True
    if value.name not in _KNOWN_CLASSES and value.name not in classes:
        return False
    return all(is_modelled(arg, classes) for arg in value.args)


def gradual(value: PyType, classes: frozenset[str]) -> PyType:
    """The type, or ANY where the search cannot reason about it."""
    return value if is_modelled(value, classes) else ANY


class InhabitationGrammar:
    """The Lark rules for "an expression of type T" in one scope.

    `rule_for(T, flavour)` returns the nonterminal; `text()` the rules written so far
    (to append to `expression_grammar(extra=...)`). `inhabitants(T)` lists concrete
    expressions ranked by cost, for completion items.
    """

    def __init__(
        self, scope: Scope, max_depth: int = 3, chain_steps: int = 2, out_of_time: Callable[[], bool] = lambda: False,
        step_budget: int = STEP_BUDGET,
    ) -> None:
        self.scope = scope
        self.max_depth = max_depth
        self.chain_steps = chain_steps
        # Once `step_budget` member steps are examined (the same answer for the same code on
        # any machine), or `out_of_time()` (a safety net), what is left unexplored is read as
        # Any: the grammar gets looser, never wrong. `ran_out` says that it happened.
        self.out_of_time = out_of_time
        self.step_budget = step_budget
        self.examined = 0
        self.ran_out = False
        self._steps: dict[PyType, list[tuple[tuple[Part, ...], PyType]]] = {}
        self._names: dict[tuple, str] = {}
        self._rules: dict[str, list[str]] = {}
        self._productive: dict[tuple, bool] = {}
        self._terminals: dict[str, str] = {}
        self._best: dict[tuple, tuple[str, float] | None] = {}
        self._deadline = float("inf")
        self._unknown_names = (
            None if scope.visible is None else sorted(name for name in scope.visible if _is_plain_name(name))
        )
        self._known_names = sorted(
            {name for name, binding in scope.bindings.items() if binding.type.is_known or binding.signature}
            | {name for name in dir(builtins) if name in MODELLED_BUILTINS}
        )

    # -- the search ------------------------------------------------------------------------

    def productions(self, target: PyType, depth: int, loop: PyType | None) -> list[Production]:
        """Every way to build `target` at this depth (sub-holes one level shallower)."""
        found: list[Production] = []
        if target == UNKNOWN_ITERABLE:
            return self._names_reaching(target, loop) + self._calls_reaching(target, 0) + [
                Production((Lit(name), Lit("("), raw("args_b"), Lit(")"), chain(ANY)), 3)
                for name in ("range", "enumerate", "zip", "reversed", "sorted", "map", "filter", "iter")
            ]
        found += self._literals(target)
        found += self._names_reaching(target, loop)
        found += self._calls_reaching(target, depth)
        if depth > 0:
            found += self._builtin_calls(target, depth)
            found += self._collections(target, depth, loop)
            found += self._operators(target, loop)
        return found

    def _literals(self, target: PyType) -> list[Production]:
        symbols = []
        for name in ("int", "float", "complex", "str", "bytes", "bool", "None"):
            if is_assignable(PyType(name), target) and target.is_known:
                symbols.append({"int": "INTLIT@", "float": "NUMBER@", "complex": "NUMBER@", "str": "strings@",
                                "bytes": "strings@", "bool": "BOOLLIT@", "None": "NONELIT@"}[name])
        productions = [Production((raw(symbol),), 2) for symbol in dict.fromkeys(symbols)]
        if is_assignable(STR, target) and target.is_known:  # "sep".join(...), "{}".format(...)
            productions += [Production((raw("strings@"), chain(STR)), 4)]
        return productions

    def _names_reaching(self, target: PyType, loop: PyType | None) -> list[Production]:
        found = []
        for name, binding in self.scope.bindings.items():
            if binding.kind in ("function", "class") or not binding.type.is_known:
                continue
            value = gradual(binding.type, self.scope.classes)
            if self._chain_productive(value, target, self.chain_steps):
                found.append(Production((Lit(name), chain(value)), 1))
        if loop is not None:
            if self._chain_productive(loop, target, self.chain_steps):
                found.append(Production((Hole("fresh", depth_cost=0), chain(loop)), 1))
        elif self._unknown_names is None or set(self._unknown_names) - set(self._known_names):
            found.append(Production((raw("gx@"),), 50))  # gradual: unknown names
        return found

    def _calls_reaching(self, target: PyType, depth: int) -> list[Production]:
        found = []
        for name, binding in self.scope.bindings.items():
            if binding.kind not in ("function", "class"):
                continue
            signature = binding.signature
            result = gradual(signature.result, self.scope.classes) if signature else ANY
            if not self._chain_productive(result, target, self.chain_steps):
                continue
            arguments = self._arguments(signature, depth)
            if arguments is None:
                continue
            found.append(Production((Lit(name), Lit("("), *arguments, Lit(")"), chain(result)), 4))
        return found

    def _arguments(self, signature: Signature | None, depth: int) -> tuple[Part, ...] | None:
        if signature is None or signature.variadic or depth == 0:
            return (raw("args_b?"),)
        parts: list[Part] = []
        for index, param in enumerate(signature.required):
            if index:
                parts.append(Lit(",", True))
            param_type = gradual(param.type, self.scope.classes)
            parts.append(Hole("typed", param_type) if param_type.is_known else Hole("any"))
        if len(signature.required) < len(signature.params):
            parts.append(raw("more_args_b?" if parts else "args_b?"))
        return tuple(parts)

    def _builtin_calls(self, target: PyType, depth: int) -> list[Production]:
        found = []
        for name, result in _CONVERSIONS.items():
            if name == "abs" and target.name in _NUMERIC:
                found.append(Production((Lit("abs"), Lit("("), Hole("typed", target), Lit(")")), 3))
            elif result.is_known and self._chain_productive(result, target, 1):
                found.append(Production((Lit(name), Lit("("), raw("args_b"), Lit(")"), chain(result)), 2))
        element = element_type(target) if _is_collection_target(target) else None
        if element is not None:
            for name, family in _COLLECTORS.items():
                made = PyType(family, (element,))
                if is_assignable(made, target):
                    extra = (raw("more_args_b?"),) if name in ("sorted", "filter") else ()
                    iterable = (Hole("any"), Lit(",", True), Hole("typed", PyType("Iterable", (element,)))) if name == "filter" else (Hole("typed", PyType("Iterable", (element,))), *extra)
                    found.append(Production((Lit(name), Lit("("), *iterable, Lit(")")), 3))
            if is_assignable(PyType("Iterator", (element,)), target):
                found += self._maps(element)
        if target.is_known and target.name in ("int", "float", "complex", "str"):
            for name in ("min", "max"):
                found.append(Production((Lit(name), Lit("("), Hole("typed", target), raw("more_args_b"), Lit(")")), 4))
        for name in _REDUCERS:
            if target.is_known and target.name != "Union":
                found.append(Production((Lit(name), Lit("("), Hole("typed", PyType("Iterable", (target,))), raw("more_args_b?"), Lit(")")), 4))
        if is_assignable(PyType("range"), target) or target.name in ("Iterable", "Sequence") and is_assignable(INT, element_type(target)):
            found.append(Production((Lit("range"), Lit("("), raw("args_b"), Lit(")")), 3))
        if target.name in ("dict", "Mapping", "MutableMapping"):
            found.append(Production((Lit("{"), raw("brace_inner_b?"), Lit("}")), 2))
            found.append(Production((Lit("dict"), Lit("("), raw("args_b?"), Lit(")")), 3))
        return found

    def _maps(self, element: PyType) -> list[Production]:
        """map(f, iterable) where f returns the element type: a conversion, a function in scope, a lambda."""
        found = []
        functions = [name for name, result in _CONVERSIONS.items() if result.is_known and is_assignable(result, element)]
        functions += [name for name, b in self.scope.bindings.items()
                      if b.kind == "function" and b.signature and is_assignable(gradual(b.signature.result, self.scope.classes), element)]
        for name in functions:
            found.append(Production((Lit("map"), Lit("("), Lit(name, True), Lit(",", True), Hole("any"), Lit(")")), 4))
        found.append(Production((Lit("map"), Lit("("), raw("lambdef_b"), Lit(",", True), Hole("any"), Lit(")")), 6))
        return found

    def _collections(self, target: PyType, depth: int, loop: PyType | None) -> list[Production]:
        if not _is_collection_target(target):
            return []
        element = element_type(target)
        found = []
        for family, (opening, closing) in (("list", "[]"), ("set", "{}"), ("Iterator", "()")):
            if not is_assignable(PyType(family, (element,)), target):
                continue
            if family != "Iterator":
                empty = (Lit(opening), Lit(closing)) if family == "list" else (Lit("set"), Lit("("), Lit(")"))
                found.append(Production(empty, 6))
                found.append(Production((Lit(opening), Hole("typed", element), raw("more_any_b"), Lit(closing)), 3))
            comprehensions = [self._comprehension(opening, closing, element, source) for source in self._iterables()]
            comprehensions.append(self._range_comprehension(opening, closing, element))
            if self._has_unknown_iterables():
                comprehensions.append(self._comprehension(opening, closing, element, None))
            found += comprehensions
            if family == "Iterator":  # sum(len(w) for w in words): the syntax layer checks it is a sole argument
                found += [Production(production.parts[1:-1], production.cost + 1) for production in comprehensions]
        if target.name == "tuple" and target.args and len(target.args) > 1 and ANY not in target.args:
            parts: list[Part] = [Lit("(")]
            for index, arg in enumerate(target.args):
                parts += ([Lit(",", True)] if index else []) + [Hole("typed", arg)]
            found.append(Production((*parts, Lit(")")), 3))
        return found

    def _comprehension(self, opening: str, closing: str, element: PyType, source: PyType | None) -> Production:
        """[element for name in iterable]: with a known iterable the loop name has its element type."""
        if source is None:  # an iterable whose element type is unknown: the element is not checked
            return Production((Lit(opening), Hole("any"), Lit("for", True), Hole("targets"), Lit("in", True),
                               Hole("typed", UNKNOWN_ITERABLE), raw("comp_if_b?"), Lit(closing)), 8)
        return Production((Lit(opening), Hole("typed", element, loop=element_type(source)), Lit("for", True), Hole("fresh"),
                           Lit("in", True), Hole("typed", source), raw("comp_if_b?"), Lit(closing)), 2)

    def _range_comprehension(self, opening: str, closing: str, element: PyType) -> Production:
        """[element for i in range(...)]: the loop name is an int."""
        return Production((Lit(opening), Hole("typed", element, loop=INT), Lit("for", True), Hole("fresh"), Lit("in", True),
                           Lit("range"), Lit("("), raw("args_b"), Lit(")"), raw("comp_if_b?"), Lit(closing)), 3)

    def _has_unknown_iterables(self) -> bool:
        """Whether the scope has values whose element type is unknown (names of unknown type,
        functions whose result is unknown, iterables of unknown element). Only then is a
        comprehension with an unchecked element offered: elsewhere it lets the model write an
        ill-typed element (`[x * 100 for x in`) that no iterable in scope can then justify."""
        if self._unknown_names is None or set(self._unknown_names) - set(self._known_names) - _BUILTIN_SCOPE:
            return True
        for binding in self.scope.bindings.values():
            if binding.kind == "function" and (binding.signature is None or not binding.signature.result.is_known):
                return True
            value = gradual(binding.type, self.scope.classes)
            if binding.kind == "variable" and value.is_known and is_iterable(value) and not element_type(value).is_known:
                return True
        return False

    def _iterables(self) -> list[PyType]:
        seen = []
        for binding in self.scope.bindings.values():
            value = gradual(binding.type, self.scope.classes)
            if binding.kind == "variable" and value.is_known and is_iterable(value) and element_type(value).is_known:
                if value not in seen:
                    seen.append(value)
        return seen[:6]

    def _operators(self, target: PyType, loop: PyType | None) -> list[Production]:
        found = []
        name = target.name
        if name in _NUMERIC or name == "str" or name == "list" and target.args:
            operand = Hole("typed", target, False, loop)
            op = "ARITH_" + name.upper() + "@"
            found.append(Production((operand, raw(op), operand), 4))
        if name == "str":
            found.append(Production((Hole("typed", STR, False, loop), raw("ARITH_REPEAT@"), Hole("typed", INT, False, loop)), 5))
        if target.is_known:
            branch = Hole("typed", target, False, loop)
            found.append(Production((branch, Lit("if"), raw("disjunction@"), Lit("else"), branch), 6))
        if target == BOOL or target.name == "Union" and BOOL in target.args:  # not where a bool is only promoted
            found.append(Production((raw("arith@"), raw("compare_op@"), raw("arith@")), 3))
            found.append(Production((Lit("not"), Hole("typed", BOOL, False, loop)), 3))
            found.append(Production((Hole("typed", BOOL, False, loop), Lit("and"), Hole("typed", BOOL, False, loop)), 4))
        return found

    # -- chains: value --member/subscript/call--> ... --> target ------------------------------

    def chain_steps_of(self, value: PyType) -> list[tuple[tuple[Part, ...], PyType]]:
        """One step from a value: attribute, method call, subscript; with the step's result type."""
        if value not in self._steps:
            self._steps[value] = self._new_chain_steps(value)
        return self._steps[value]

    def _new_chain_steps(self, value: PyType) -> list[tuple[tuple[Part, ...], PyType]]:
        steps: list[tuple[tuple[Part, ...], PyType]] = []
        for member in self.scope.members_of(value) or ():
            result = gradual(member.type, self.scope.classes)
            if member.is_method:
                steps.append(((Lit("."), Lit(member.name), Lit("("), raw("args_b?"), Lit(")")), result))
            else:
                steps.append(((Lit("."), Lit(member.name)), result))
        subscripted = subscript_result(value)
        if subscripted is not None:
            steps.append(((Lit("["), raw("expr_b"), Lit("]")), subscripted))
        if value.name in ("list", "str", "tuple", "bytes") and value.args or value.name in ("str", "bytes"):
            steps.append(((Lit("["), raw("slice_range_b"), Lit("]")), value))
        self.examined += len(steps)
        return steps

    def _members_known(self, value: PyType) -> bool:
        if self._out_of_time():
            return False
        return value.is_known and (value.name == "None" or self.scope.members_of(value) is not None)

    def _out_of_time(self) -> bool:
        if not self.ran_out and (self.examined > self.step_budget or self.out_of_time()):
            self.ran_out = True
        return self.ran_out

    def _chain_productive(self, value: PyType, target: PyType, steps: int) -> bool:
        key = ("chain", value, target, steps)
        if key in self._productive:
            return self._productive[key]
        self._productive[key] = False  # a cycle reaching back here adds nothing
        result = not self._members_known(value) or is_assignable(value, target)
        if not result and steps > 0:
            result = any(self._chain_productive(after, target, steps - 1) for _, after in self.chain_steps_of(value))
        self._productive[key] = result
        return result

    # -- writing the grammar ----------------------------------------------------------------

    def rule_for(self, target: PyType, flavour: str = "", depth: int | None = None, loop: PyType | None = None) -> str | None:
        """The nonterminal deriving expressions of `target`; None if the search finds none."""
        depth = self.max_depth if depth is None else depth
        key = ("typed", target, depth, flavour, loop)
        if key in self._names:
            return self._names[key] or None
        self._names[key] = ""  # in progress: a reference back to it is not (yet) productive
        alternatives = []
        if target.name == "Union":
            alternatives = [rule for member in target.args if (rule := self.rule_for(member, flavour, depth, loop))]
        union_extra = self._operators(target, loop) if target.name == "Union" and depth > 0 else []
        for production in self.productions(target, depth, loop) if target.name != "Union" else union_extra:
            written = self._write(production, flavour, depth, target)
            if written is not None:
                alternatives.append(written)
        if not alternatives:
            return None
        name = f"ty{len(self._rules)}{flavour}"
        self._rules[name] = alternatives
        self._names[key] = name
        return name

    def _write(self, production: Production, flavour: str, depth: int, target: PyType) -> str | None:
        symbols = []
        for part in production.parts:
            symbol = self._symbol(part, flavour, depth, target)
            if symbol is None:
                return None
            symbols.append(symbol)
        return " ".join(symbol for symbol in symbols if symbol)

    def _symbol(self, part: Part, flavour: str, depth: int, target: PyType) -> str | None:
        inner_flavour = "_b" if getattr(part, "inner", False) else flavour
        suffix = "_B" if inner_flavour == "_b" else ""
        if isinstance(part, Lit):
            if part.text in _TERMINAL_OF:
                closing = part.text in ")]}"
                return _TERMINAL_OF[part.text] + ("_B" if (flavour == "_b" if closing else inner_flavour == "_b") else "")
            return self._name_terminal(part.text, suffix)
        if part.kind == "raw":
            symbol = part.symbol
            if "@" in symbol:  # a symbol of the production's own context, in its whitespace flavour
                stem = symbol.replace("@", "")
                return stem + ("" if flavour != "_b" else "_b" if stem.islower() else "_B")
            return symbol
        if part.kind == "any":
            return "expr" + inner_flavour if inner_flavour else "expr"
        if part.kind == "targets":
            return "star_targets_b"
        if part.kind == "fresh":
            return "FRESH" + suffix
        if part.kind == "chain":
            return self._chain_rule(part.type, target, self.chain_steps, flavour)
        if not part.type.is_known or len(self._rules) >= RULE_BUDGET or self._out_of_time():  # unknown, or too big a search: any expression
            return "expr" + inner_flavour
        if depth - part.depth_cost < 0:
            return None
        return self.rule_for(part.type, inner_flavour, depth - part.depth_cost, part.loop)

    def _chain_rule(self, value: PyType, target: PyType, steps: int, flavour: str) -> str | None:
        """Trailers after a value of type `value` that make it a `target`: a symbol ("" when
        nothing may follow), or None when no chain gets there."""
        if not self._members_known(value):
            return "trailers" + flavour
        if not self._chain_productive(value, target, steps):
            return None
        key = ("chain", value, target, steps, flavour)
        if key in self._names:
            return self._names[key]
        self._names[key] = ""
        alternatives = []
        if steps > 0:
            for parts, after in self.chain_steps_of(value):
                rest = self._chain_rule(after, target, steps - 1, flavour)
                if rest is None or not self._chain_productive(after, target, steps - 1):
                    continue
                symbols = [self._symbol(part, flavour, 0, target) for part in parts]
                if None not in symbols:
                    alternatives.append(" ".join(s for s in symbols + [rest] if s))
        nullable = is_assignable(value, target)
        if not alternatives:
            self._names[key] = "" if nullable else None
            return self._names[key]
        if len(alternatives) > CHAIN_ALTERNATIVES and value.name not in _KNOWN_CLASSES:
            # A class with dozens of members that lead to the target (real code's big classes)
            # makes a grammar that takes longer to compile than it saves: any trailers instead
            # (at least one where the value itself is not of the target type).
            self._names[key] = ("trailers" if nullable else "some_trailers") + flavour
            return self._names[key]
        name = f"ch{len(self._rules)}{flavour}"
        self._rules[name] = alternatives
        self._names[key] = name + ("?" if nullable else "")
        return self._names[key]

    def _name_terminal(self, text: str, suffix: str) -> str:
        key = text + suffix
        if key not in self._terminals:
            self._terminals[key] = f"K{len(self._terminals)}{suffix}: \"{text}\" {'WS_B' if suffix else 'WS'}"
        return self._terminals[key].split(":")[0]

    def text(self) -> str:
        lines = []
        for name, alternatives in self._rules.items():
            body = " | ".join(f"({a})" for a in alternatives)
            lines.append(f"{name}: {body}")
        lines += list(self._terminals.values())
        excluded = "|".join(self._known_names) or "_^"
        # Gradual: names in scope whose type is unknown (any identifier when the scope is not known);
        # a loop variable: any identifier that is not a typed name.
        # A builtin class is not a value of unknown type: alone it is a class (`return tuple`
        # where a tuple is expected is wrong); called, subscripted or with a member it may be anything.
        anything_but_known = f"NAME_CORE & ~/({excluded})/"
        unknown_core, class_core = anything_but_known, "/_^/"
        if self._unknown_names is not None:
            unknown = [name for name in self._unknown_names if name not in set(self._known_names)]
            values = [name for name in unknown if name not in _BUILTIN_CLASSES]
            classes = [name for name in unknown if name in _BUILTIN_CLASSES]
            unknown_core = f"/({'|'.join(values)})/" if values else anything_but_known
            class_core = f"/({'|'.join(classes)})/" if classes else class_core
        lines += [
            f"UNK_CORE: {unknown_core}",
            "UNK: UNK_CORE WS",
            "UNK_B: UNK_CORE WS_B",
            f"UNKC_CORE: {class_core}",
            "UNKC: UNKC_CORE WS",
            "UNKC_B: UNKC_CORE WS_B",
            f"FRESH_CORE: NAME_CORE & ~/({excluded})/",
            "FRESH: FRESH_CORE WS",
            "FRESH_B: FRESH_CORE WS_B",
            "gx: UNK trailers | UNKC some_trailers",
            "gx_b: UNK_B trailers_b | UNKC_B some_trailers_b",
            "trailers: (DOT NAME | LPAR args_b? RPAR | LSQB slices_b RSQB)*",
            "trailers_b: (DOT_B NAME_B | LPAR_B args_b? RPAR_B | LSQB_B slices_b RSQB_B)*",
            "some_trailers: (DOT NAME | LPAR args_b? RPAR | LSQB slices_b RSQB)+",
            "some_trailers_b: (DOT_B NAME_B | LPAR_B args_b? RPAR_B | LSQB_B slices_b RSQB_B)+",
            "more_args_b: COMMA_B args_b?",
            "more_any_b: (COMMA_B expr_b)* COMMA_B?",
            "comp_if_b: IF1_B disjunction_b",
            "slice_range_b: expr_b? COLON_B expr_b? (COLON_B expr_b?)?",
            "compare_op: COMPOP | IN1 | NOT1 IN1 | IS1 | IS1 NOT1",
            "compare_op_b: COMPOP_B | IN1_B | NOT1_B IN1_B | IS1_B | IS1_B NOT1_B",
            "INTLIT: INTNUM WS",
            "INTLIT_B: INTNUM WS_B",
            "BOOLLIT: /True|False/ WS",
            "BOOLLIT_B: /True|False/ WS_B",
            "NONELIT: /None/ WS",
            "NONELIT_B: /None/ WS_B",
        ]
        for name, ops in list(_NUMERIC.items()) + [("str", ("+",)), ("list", ("+",)), ("repeat", ("*",))]:
            regex = "|".join(op.replace("*", "\\*").replace("+", "\\+").replace("/", "\\/") for op in ops)
            lines.append(f"ARITH_{name.upper()}: /{regex}/ WS")
            lines.append(f"ARITH_{name.upper()}_B: /{regex}/ WS_B")
        return "\n".join(lines) + "\n"

    # -- completion items ---------------------------------------------------------------------

    def inhabitants(self, target: PyType, limit: int = 8, seconds: float = 0.05) -> list[tuple[str, float]]:
        """Concrete expressions of `target`, cheapest first (no model involved); what the
        search finds within `seconds`."""
        self._deadline = time.perf_counter() + seconds
        found: dict[str, float] = {}
        depth = min(self.max_depth, ITEM_DEPTH)
        for production in self.productions(target, depth, None):
            if time.perf_counter() > self._deadline:
                break
            for text, cost in itertools.islice(self._concrete(production, target, depth), 4):
                if text not in found or cost < found[text]:
                    found[text] = cost
        return sorted(found.items(), key=lambda item: (item[1], len(item[0])))[:limit]

    def _concrete(self, production: Production, target: PyType, depth: int, loop_name: str = "") -> Iterable[tuple[str, float]]:
        texts = [""]
        cost = production.cost
        for part in production.parts:
            if isinstance(part, Lit):
                piece = {",": ", ", "for": " for ", "in": " in ", "not": "not ", "and": " and "}.get(part.text, part.text)
                texts = [text + piece for text in texts]
            elif part.kind == "chain":
                options = [(text_, c) for text_, c in self._concrete_chain(part.type, target, self.chain_steps)]
                if not options:
                    return
                texts = [text + option for text in texts for option, _ in options[:2]]
                cost += min(c for _, c in options)
            elif part.kind == "fresh":
                loop_name = loop_name or "item"
                texts = [text + loop_name for text in texts]
            elif part.kind == "typed" and depth > 0:
                inner = self._best_inhabitant(part.type, depth - 1, part.loop, loop_name or "item")
                if inner is None:
                    return
                texts = [text + inner[0] for text in texts]
                cost += inner[1]
                if part.loop is not None:
                    loop_name = loop_name or "item"
            elif part.kind == "raw" and part.symbol.endswith("?"):
                continue
            elif part.kind == "raw" and part.symbol == "args_b" and loop_name:
                texts = [text + loop_name for text in texts]
            else:
                return
        for text in texts:
            yield text, cost

    def _best_inhabitant(self, target: PyType, depth: int, loop: PyType | None, loop_name: str) -> tuple[str, float] | None:
        key = ("best", target, depth, loop, loop_name)
        if key not in self._best and time.perf_counter() > self._deadline:
            return None
        if key not in self._best:
            self._best[key] = None  # a cycle back here finds nothing
            self._best[key] = self._find_best_inhabitant(target, depth, loop, loop_name)
        return self._best[key]

    def _find_best_inhabitant(self, target: PyType, depth: int, loop: PyType | None, loop_name: str) -> tuple[str, float] | None:
        best: tuple[str, float] | None = None
        for production in self.productions(target, depth, loop):
            if production.cost >= 50:
                continue
            for text, cost in itertools.islice(self._concrete(production, target, depth, "item" if loop else ""), 1):
                text = text.replace("item", loop_name) if loop is not None else text
                if best is None or cost < best[1]:
                    best = (text, cost)
        return best

    def _concrete_chain(self, value: PyType, target: PyType, steps: int) -> list[tuple[str, float]]:
        if not value.is_known:
            return []
        options = [("", 0.0)] if is_assignable(value, target) else []
        if steps > 0 and not options:
            for parts, after in self.chain_steps_of(value):
                if any(isinstance(p, Hole) and not p.symbol.endswith("?") for p in parts) or after == NONE:
                    continue
                if not self._callable_without_arguments(value, parts):
                    continue
                step = "".join(p.text for p in parts if isinstance(p, Lit))
                for rest, cost in self._concrete_chain(after, target, steps - 1):
                    options.append((step + rest, cost + 1))
        return sorted(options, key=lambda option: option[1])


    def _callable_without_arguments(self, value: PyType, parts: tuple[Part, ...]) -> bool:
        if len(parts) < 3:
            return True
        name = parts[1].text if isinstance(parts[1], Lit) else ""
        member = next((m for m in self.scope.members_of(value) or () if m.name == name), None)
        return member is not None and member.signature is not None and not member.signature.required


def _is_plain_name(name: str) -> bool:
    return name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


def _is_collection_target(target: PyType) -> bool:
    return target.is_known and target.name in ("list", "set", "frozenset", "Iterable", "Iterator", "Sequence",
                                               "Collection", "MutableSequence", "AbstractSet", "MutableSet") and bool(target.args)


