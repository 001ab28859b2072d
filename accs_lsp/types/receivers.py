"""The type of the expression that ends a text (`name(.attr|(...)|[...])*`), from the
names in scope and the member tables: what the member constraint and the indexed
provider read receivers with."""

from __future__ import annotations

import re
from typing import Callable, Mapping

from accs_lsp.types.model import PyType, subscript_result
from accs_lsp.types.provider import Binding, Member

_IDENTIFIER_TAIL = re.compile(r"[A-Za-z_]\w*$|\w*$")


class ReceiverTypes:
    """Types of the expression that ends a text: `name(.attr|(...)|[...])*`, from the scope's
    bindings and the member tables. None wherever a step is unknown."""

    def __init__(self, bindings: Mapping[str, Binding], members_of: Callable[[PyType], tuple[Member, ...] | None]) -> None:
        self.bindings = bindings
        self.members_of = members_of

    def is_user_class(self, value: PyType) -> bool:
        binding = self.bindings.get(value.name)
        return binding is not None and binding.kind == "class"

    def members(self, value: PyType) -> dict[str, Member]:
        return {member.name: member for member in self.members_of(value) or ()}

    def type_before(self, text: str) -> PyType | None:
        steps = trailing_chain(text)
        if not steps or steps[0][0] != "name":
            return None
        binding = self.bindings.get(steps[0][1])
        if binding is None:
            return None
        value: PyType | None = binding.type if binding.kind in ("variable", "module") else None
        callable_result = binding.signature.result if binding.signature and binding.kind != "variable" else None
        for kind, detail in steps[1:]:
            if kind == "call":
                value, callable_result = callable_result, None
            elif value is None or not value.is_known:
                return None
            elif kind == "attribute":
                member = self.members(value).get(detail)
                if member is None:
                    return None
                value, callable_result = (None, member.type) if member.is_method else (member.type, None)
            else:  # subscript
                value, callable_result = subscript_result(value), None
        return value if value is not None and value.is_known else None

    def parameters_before(self, text: str) -> frozenset[str] | None:
        """The parameter names of the function, class or method that ends `text` (`f`,
        `self.render`), where its signature is known and takes no `**kwargs`; else None."""
        steps = trailing_chain(text)
        if not steps or steps[0][0] != "name" or any(kind != "attribute" for kind, _ in steps[1:]):
            return None
        if len(steps) == 1:
            binding = self.bindings.get(steps[0][1])
            signature = binding.signature if binding is not None and binding.kind in ("function", "class") else None
        else:
            owner = self.type_before(text[: text.rfind(".")])
            member = self.members(owner).get(steps[-1][1]) if owner is not None else None
            signature = member.signature if member is not None and member.is_method else None
        if signature is None or signature.variadic:
            return None
        return frozenset(param.name for param in signature.params)


def trailing_chain(text: str) -> list[tuple[str, str]]:
    """The steps of the primary expression that ends `text`, first to last: ("name", n),
    ("attribute", n), ("call", ""), ("subscript", "")."""
    steps: list[tuple[str, str]] = []
    end = len(text)
    while end > 0:
        closing = text[end - 1]
        if closing in ")]":
            start = _matching_open(text, end - 1)
            if start is None:
                return []
            steps.append(("call" if closing == ")" else "subscript", ""))
            end = start
            continue
        match = _IDENTIFIER_TAIL.search(text, 0, end)
        name = match.group(0) if match else ""
        if not name or name[0].isdigit():
            return []
        start = end - len(name)
        if start > 0 and text[start - 1] == ".":
            steps.append(("attribute", name))
            end = start - 1
            continue
        steps.append(("name", name))
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_\"'"):
            return []
        return steps[::-1]
    return []


def _matching_open(text: str, close: int) -> int | None:
    pairs = {")": "(", "]": "["}
    depth = 0
    for index in range(close, -1, -1):
        character = text[index]
        if character in ")]":
            depth += 1
        elif character in "([":
            depth -= 1
            if depth == 0:
                return index if pairs[text[close]] == character else None
    return None
