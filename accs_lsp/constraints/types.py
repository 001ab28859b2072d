"""The type layer: a typed-expression grammar at holes with an expected type, and the
member constraint everywhere; both AND-ed with the syntactic layer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from accs_lsp.constraints.members import MemberConstraint, ReceiverTypes
from accs_lsp.constraints.python_grammar import _exact_regex, expression_grammar
from accs_lsp.constraints.llguidance_bridge import GrammarCache
from accs_lsp.constraints.syntax import SyntaxConstraint
from accs_lsp.types.inhabitation import InhabitationGrammar, Scope, is_modelled
from accs_lsp.types.model import PyType
from accs_lsp.types.provider import ExpressionSlot, HoleTypes, Member, TypeProvider
from accs_lsp.types.slots import expression_slot

# Time for asking the provider about members in one request; past it, user types stay unknown.
PLANNING_SECONDS = 1.0
# What may follow the typed expression: the end of the statement, or after an argument a "," or ")".
_TAILS = {"statement": r"([;#\r\n](.|\n)*)?", "argument": r"([,)](.|\n)*)?"}


@dataclass
class TypeLayerPlan:
    """What the type layer knows at one cursor, before decoding."""

    slot: ExpressionSlot | None
    hole: HoleTypes
    grammar: InhabitationGrammar | None
    top_rule: str | None
    receivers: ReceiverTypes
    first_members: tuple[int, frozenset[str]] | None
    seconds: float

    @property
    def expected(self) -> PyType | None:
        """The expected type, where the typed grammar constrains the hole."""
        return self.hole.expected if self.top_rule else None


def plan_type_layer(
    provider: TypeProvider, text: str, statement_start: int, offset: int, after_dot: bool
) -> TypeLayerPlan:
    """Ask the provider about the cursor and run the inhabitation search (once per request)."""
    started = time.perf_counter()
    slot = expression_slot(text, statement_start, offset)
    probe = slot or ExpressionSlot("statement", offset)
    hole = provider.hole_types(text, probe)
    before_statement = text[:statement_start]
    deadline = started + PLANNING_SECONDS

    def members_of(value: PyType) -> tuple[Member, ...] | None:
        """Past the planning budget, only builtin types' members (cached for the session) are
        looked up; other types are left unknown, which the search reads as Any."""
        if time.perf_counter() > deadline and not is_modelled(value, frozenset()):
            return None
        return provider.members(before_statement, value)

    scope = Scope.of(hole.bindings, members_of, hole.visible)
    receivers = ReceiverTypes(scope.bindings, members_of)
    grammar, top = None, None
    if slot is not None and hole.expected is not None and is_modelled(hole.expected, scope.classes):
        grammar = InhabitationGrammar(scope)
        top = grammar.rule_for(hole.expected, "_b" if slot.kind == "argument" else "")
    first_members = None
    if after_dot:
        dot = text.rfind(".", statement_start, offset)
        names = provider.member_names(text, dot) if dot >= 0 else None
        if names:
            first_members = (dot - statement_start, frozenset(names))
    return TypeLayerPlan(slot, hole, grammar, top, receivers, first_members, time.perf_counter() - started)


def typed_grammar(plan: TypeLayerPlan, lead: str, bracket_newlines: bool = True) -> str:
    """Lark text: `lead` (text token healing took back from before the expression), the typed
    expression, then whatever may follow it. `bracket_newlines`: as in `python_grammar`."""
    assert plan.grammar is not None and plan.top_rule is not None and plan.slot is not None
    tail = _TAILS["argument" if plan.slot.kind == "argument" else "statement"]
    flavour = "bracket" if plan.slot.kind == "argument" else "line"
    grammar = expression_grammar(
        hole=plan.top_rule, extra=plan.grammar.text(), context=flavour, end="none", bracket_newlines=bracket_newlines
    )
    start = f"start: LEAD hole TAIL\nLEAD: /{_exact_regex(lead)}/\n" if lead else "start: hole TAIL\n"
    return grammar.replace("start: hole\n", start + f"TAIL: /{tail}/\n", 1)


def typed_constraint(
    plan: TypeLayerPlan,
    grammars: GrammarCache,
    tokenize: Callable[[str], list[int]],
    text: str,
    decode_start: int,
    overlap: bool,
    bracket_newlines: bool = True,
) -> SyntaxConstraint:
    """The typed-expression matcher, having consumed the expression's text before decoding starts.
    Raises GrammarError when it cannot continue that text (the layer is then left out)."""
    assert plan.slot is not None
    expression_start = plan.slot.start
    lead = text[decode_start:expression_start] if decode_start < expression_start else ""
    constraint = SyntaxConstraint(grammars.matcher(typed_grammar(plan, lead, bracket_newlines)), grammars.tokenizer.vocab_size, (), overlap)
    typed_so_far = text[expression_start:decode_start]
    if typed_so_far:
        constraint.consume_prefix(tokenize(typed_so_far))
    return constraint


def member_constraint(plan: TypeLayerPlan, grammars: GrammarCache, token_text: Callable[[int], str], statement_text: str) -> MemberConstraint:
    return MemberConstraint(grammars, token_text, plan.receivers, statement_text, plan.first_members)


__all__ = ["TypeLayerPlan", "plan_type_layer", "typed_constraint", "typed_grammar", "member_constraint"]
