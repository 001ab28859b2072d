"""What one Python file says about its project's habits, read with tree-sitter.

tree-sitter rather than `ast`: it never refuses a file (half-edited code, Python 2 leftovers,
templates), it needs no lock (see analysis/python_ast.py), and one query pass collects every
node kind the miner wants. Facts are plain counters; the store sums them across files.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

import tree_sitter

from accs_lsp.documents.document import new_parser, python_language
from accs_lsp.learn.snippets import KEYWORDS, chunks

MINER_VERSION = 1
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
OPTIONAL = re.compile(r"(?:typing\.)?Optional\[(.+)\]|(.+?)\s*\|\s*None|None\s*\|\s*(.+)")
MAX_RECEIVER = 80
DEFINITIONS = ("function_definition", "class_definition", "decorated_definition")
QUERY = """
(identifier) @identifier
(attribute) @attribute
(call) @call
(string_start) @string_start
(block) @block
(import_statement) @import
(import_from_statement) @import
"""


@cache
def query() -> tree_sitter.Query:
    return tree_sitter.Query(python_language(), QUERY)


@dataclass
class FileFacts:
    """Counts from one file. `attributes` is keyed by (receiver, attribute), `calls` by
    (callee, number of arguments), `aliases` by (module, bound name), `indents` by the
    whitespace one block adds to its header's; snippets are (1-based start line, text)."""

    identifiers: Counter[str] = field(default_factory=Counter)
    attributes: Counter[tuple[str, str]] = field(default_factory=Counter)
    calls: Counter[tuple[str, int]] = field(default_factory=Counter)
    aliases: Counter[tuple[str, str]] = field(default_factory=Counter)
    double_quotes: int = 0
    single_quotes: int = 0
    indents: Counter[str] = field(default_factory=Counter)
    snippets: list[tuple[int, str]] = field(default_factory=list)


class Miner:
    """One parser, so one Miner per thread (tree-sitter parsers are not shareable)."""

    def __init__(self) -> None:
        self._parser = new_parser()

    def mine(self, source: bytes) -> FileFacts:
        tree = self._parser.parse(source)
        captures = tree_sitter.QueryCursor(query()).captures(tree.root_node)
        lines = source.decode("utf-8", errors="replace").splitlines()
        facts = FileFacts()
        count_identifiers(facts, captures.get("identifier", []))
        count_attributes(facts, captures.get("attribute", []))
        count_calls(facts, captures.get("call", []))
        count_quotes(facts, captures.get("string_start", []))
        count_indents(facts, captures.get("block", []), lines)
        for statement in captures.get("import", []):
            count_import(facts, statement)
        facts.snippets = definition_snippets(tree.root_node, lines)
        return facts


def text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")


def dotted(node: tree_sitter.Node | None) -> str | None:
    """The node's text when it is a plain dotted name (`os.path`, `self`), whitespace
    squeezed out; None for calls, subscripts and the like, whose text is noise as a key."""
    if node is None or node.type not in ("identifier", "attribute", "dotted_name"):
        return None
    name = "".join(text(node).split())
    if len(name) > MAX_RECEIVER or not DOTTED.fullmatch(name):
        return None
    return name


def count_identifiers(facts: FileFacts, nodes: list[tree_sitter.Node]) -> None:
    for node in nodes:
        name = text(node)
        if name not in KEYWORDS:
            facts.identifiers[name] += 1


def count_attributes(facts: FileFacts, nodes: list[tree_sitter.Node]) -> None:
    """Keyed by the receiver's text, and also by its class when the file says it: `self`
    and `cls` inside a class, a parameter annotated with a plain class name."""
    for node in nodes:
        attribute = node.child_by_field_name("attribute")
        receiver_node = node.child_by_field_name("object")
        receiver = dotted(receiver_node)
        if attribute is None or receiver is None:
            continue
        name = text(attribute)
        facts.attributes[(receiver, name)] += 1
        if receiver_node is not None and receiver_node.type == "identifier":
            known = receiver_class(receiver_node, receiver)
            if known and known != receiver:
                facts.attributes[(known, name)] += 1


def count_calls(facts: FileFacts, nodes: list[tree_sitter.Node]) -> None:
    for node in nodes:
        callee = dotted(node.child_by_field_name("function"))
        arguments = node.child_by_field_name("arguments")
        if callee is None or arguments is None:
            continue
        if arguments.type == "generator_expression":
            count = 1
        else:
            count = sum(1 for child in arguments.named_children if child.type != "comment")
        facts.calls[(callee, count)] += 1


def count_quotes(facts: FileFacts, nodes: list[tree_sitter.Node]) -> None:
    """Triple-quoted strings are left out: docstrings are `\"\"\"` by convention whatever
    quote a project writes its other strings with."""
    for node in nodes:
        start = text(node).lstrip("rRbBuUfFtT")
        if start in ('"""', "'''"):
            continue
        if start == '"':
            facts.double_quotes += 1
        elif start == "'":
            facts.single_quotes += 1


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def count_indents(facts: FileFacts, blocks: list[tree_sitter.Node], lines: list[str]) -> None:
    """The step each block body adds to its header line's indentation; one-line bodies
    (`if x: return`) and mixed tab/space steps say nothing and are skipped."""
    for block in blocks:
        header = block.parent
        if header is None:
            continue
        body_row, header_row = block.start_point.row, header.start_point.row
        if body_row == header_row or body_row >= len(lines) or header_row >= len(lines):
            continue
        outer, inner = leading_whitespace(lines[header_row]), leading_whitespace(lines[body_row])
        if len(inner) > len(outer) and inner.startswith(outer):
            step = inner[len(outer) :]
            if step.strip(" ") == "" or step.strip("\t") == "":
                facts.indents[step] += 1


def count_import(facts: FileFacts, statement: tree_sitter.Node) -> None:
    """(module, bound name) for every imported name, plain imports too: the store wants
    the most used binding per module, and `import numpy` in most files outvotes one
    `import numpy as np`. `from a import b as c` is module `a.b` bound to `c`."""
    prefix = ""
    if statement.type == "import_from_statement":
        module = statement.child_by_field_name("module_name")
        prefix = "".join(text(module).split()) if module is not None else ""
    for name in statement.children_by_field_name("name"):
        binding = import_binding(name, from_import=statement.type == "import_from_statement")
        if binding is not None:
            target, bound = binding
            facts.aliases[(qualified(prefix, target), bound)] += 1


def import_binding(name: tree_sitter.Node, from_import: bool) -> tuple[str, str] | None:
    """(imported name, the name it binds). `import a.b` is skipped: it binds `a`, which
    says nothing about how the project names `a.b`."""
    if name.type == "aliased_import":
        target, alias = dotted(name.child_by_field_name("name")), name.child_by_field_name("alias")
        return (target, text(alias)) if target and alias is not None else None
    target = dotted(name)
    if target is None or (not from_import and "." in target):
        return None
    return target, target.rsplit(".", 1)[-1]


def qualified(prefix: str, target: str) -> str:
    if not prefix:
        return target
    return prefix + target if prefix.endswith(".") else f"{prefix}.{target}"


def receiver_class(receiver: tree_sitter.Node, name: str) -> str | None:
    """The class `name` stands for where the file states it: the enclosing class for
    `self`/`cls`, the annotation of a parameter of the enclosing function otherwise."""
    function = enclosing(receiver, "function_definition")
    if function is None:
        return None
    if name in ("self", "cls"):
        owner = enclosing(function, "class_definition")
        owner_name = owner.child_by_field_name("name") if owner is not None else None
        return text(owner_name) if owner_name is not None else None
    return parameter_class(function, name)


def parameter_class(function: tree_sitter.Node, name: str) -> str | None:
    parameters = function.child_by_field_name("parameters")
    for parameter in parameters.named_children if parameters is not None else []:
        if parameter.type not in ("typed_parameter", "typed_default_parameter"):
            continue
        annotated = parameter.child_by_field_name("name") or parameter.named_children[0]
        annotation = parameter.child_by_field_name("type")
        if text(annotated) == name and annotation is not None:
            return class_name(text(annotation))
    return None


def enclosing(node: tree_sitter.Node, kind: str) -> tree_sitter.Node | None:
    """The nearest ancestor of that kind, not crossing an inner function or class: `self`
    in a nested function is not the outer method's `self` (often, anyway, not for sure)."""
    parent = node.parent
    while parent is not None:
        if parent.type == kind:
            return parent
        if parent.type in ("function_definition", "class_definition"):
            return None
        parent = parent.parent
    return None


def class_name(annotation: str) -> str | None:
    """`Foo`, `mod.Foo`, `Optional[Foo]`, `Foo | None`, `"Foo"` -> the dotted name; None for
    anything richer (unions, generics), which does not name one class."""
    annotation = annotation.strip().strip("'\"").strip()
    optional = OPTIONAL.fullmatch(annotation)
    if optional:
        annotation = next(group for group in optional.groups() if group).strip()
    return annotation if DOTTED.fullmatch(annotation) else None


def definition_snippets(root: tree_sitter.Node, lines: list[str]) -> list[tuple[int, str]]:
    """Top-level functions, methods of top-level classes, and classes with no methods
    (dataclasses, enums: their fields are the useful part), each cut into chunks."""
    snippets: list[tuple[int, str]] = []
    for node in root.named_children:
        if node.type not in DEFINITIONS:
            continue
        methods = class_methods(node)
        for part in methods if methods is not None and methods else [node]:
            first, last = part.start_point.row, part.end_point.row
            snippets.extend(chunks(lines[first : last + 1], first + 1))
    return snippets


def class_methods(node: tree_sitter.Node) -> list[tree_sitter.Node] | None:
    """The method definitions of a (possibly decorated) class; None when node is no class."""
    definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if definition is None or definition.type != "class_definition":
        return None
    body = definition.child_by_field_name("body")
    members = body.named_children if body is not None else []
    return [member for member in members if member.type in ("function_definition", "decorated_definition") and is_function(member)]


def is_function(node: tree_sitter.Node) -> bool:
    definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    return definition is not None and definition.type == "function_definition"


__all__ = ["Miner", "FileFacts", "MINER_VERSION"]
