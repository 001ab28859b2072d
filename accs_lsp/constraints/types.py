"""The type layer: a typed-expression grammar at holes with an expected type, and the
member constraint everywhere; both AND-ed with the syntactic layer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from accs_lsp.constraints.llguidance_bridge import GrammarCache
from accs_lsp.constraints.members import MemberConstraint
from accs_lsp.constraints.python_grammar import _exact_regex, expression_grammar
from accs_lsp.constraints.syntax import SyntaxConstraint
from accs_lsp.types.inhabitation import STEP_BUDGET, InhabitationGrammar, Scope, is_modelled
from accs_lsp.types.model import PyType
from accs_lsp.types.provider import ExpressionSlot, HoleTypes, Member, TypeProvider
from accs_lsp.types.receivers import ReceiverTypes
from accs_lsp.types.slots import expression_slot

# Time for asking the checker about members in one request; past it, types the module does
# not define stay unknown (the search reads them as Any) and the plan says so.
PLANNING_SECONDS = 0.25
# Time for the inhabitation search itself, apart from the checker's lookups: a safety net
# behind its budget of member steps (inhabitation.STEP_BUDGET), which answers the same on any
# machine.
SEARCH_SECONDS = 0.3
# What may follow the typed expression: the end of the statement; after an argument or a
# parameter's default a "," or ")"; after an operand or a loop's iterable, the rest of a clause
# (`:`, `and ...`, `<= hi` in a chained comparison: anything that does not go on with it).
_TAILS = {
    "statement": r"([;#\r\n](.|\n)*)?",
    "argument": r"([,)](.|\n)*)?",
    "clause": r"([^A-Za-z0-9_.(\[](.|\n)*)?",
}
_TAIL_OF_SLOT = {"argument": "argument", "default": "argument", "operand": "clause", "iterable": "clause"}


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
    # Why the plan is partial ("" when it is not): what was left unknown, and why.
    shortfall: str = ""

    @property
    def expected(self) -> PyType | None:
        """The expected type, where the typed grammar constrains the hole."""
        return self.hole.expected if self.top_rule else None


def plan_type_layer(
    provider: TypeProvider, text: str, statement_start: int, offset: int, after_dot: bool,
    thorough: bool = False,
) -> TypeLayerPlan:
    """Ask the provider about the cursor and run the inhabitation search (once per request).
    `thorough`: without the search's budgets (a warm-up, asking for every member table the
    search may use)."""
    search_seconds = float("inf") if thorough else SEARCH_SECONDS
    step_budget = 10**9 if thorough else STEP_BUDGET
    started = time.perf_counter()
    slot = expression_slot(text, statement_start, offset)
    probe = slot or ExpressionSlot("statement", offset, cursor=offset)
    hole = provider.hole_types(text, probe)
    before_statement = text[:statement_start]
    deadline = started + PLANNING_SECONDS
    skipped: list[str] = []
    bounded = getattr(provider, "bounds_its_waits", False)  # its slow lookups go to the background
    asked: dict[PyType, tuple[Member, ...] | None] = {}
    lookup_seconds = [0.0]

    def members_of(value: PyType) -> tuple[Member, ...] | None:
        """Past the planning budget, only builtin types' members (cached for the session) are
        looked up; other types are left unknown, which the search reads as Any."""
        if value in asked:
            return asked[value]
        if time.perf_counter() > deadline and not bounded and not is_modelled(value, frozenset()):
            skipped.append(str(value))
            return None
        looking = time.perf_counter()
        found: tuple[Member, ...] | None = provider.members(before_statement, value)
        lookup_seconds[0] += time.perf_counter() - looking
        if not found and str(value) in getattr(provider, "deferred", ()):
            found = None  # not looked up yet: unknown (any member), not a type without members
        asked[value] = found
        return found

    def values_members(value: PyType) -> tuple[Member, ...] | None:
        """A module is a receiver (`t.`), never a value the search builds expressions from."""
        return None if value.name == "Module" else members_of(value)

    scope = Scope.of(hole.bindings, values_members, hole.visible)
    receivers = ReceiverTypes(scope.bindings, members_of)
    grammar, top = None, None
    if slot is not None and hole.expected is not None and is_modelled(hole.expected, scope.classes):
        searching = time.perf_counter() - lookup_seconds[0]

        def out_of_time() -> bool:
            """The search's own time (not the checker's, paid once per type) is its budget."""
            return time.perf_counter() - lookup_seconds[0] - searching > search_seconds

        grammar = InhabitationGrammar(scope, out_of_time=out_of_time, step_budget=step_budget)
        top = grammar.rule_for(hole.expected, "_b" if _tail(slot) == "argument" else "")
    first_members = None
    if after_dot:
        dot = text.rfind(".", statement_start, offset)
        names = provider.member_names(text, dot) if dot >= 0 else None
        if names:
            first_members = (dot - statement_start, frozenset(names))
    shortfall = ""
    deferred = getattr(provider, "deferred", [])  # the indexed provider's lookups left to the background
    if skipped:
        shortfall = f"type planning ran past {PLANNING_SECONDS * 1000:.0f} ms: members of {_some(skipped)} left unknown"
    elif deferred:
        shortfall = f"members of {_some(deferred)} left unknown while the type checker looks them up"
    elif grammar is not None and grammar.ran_out:
        shortfall = "the typed search reached its budget: the rest of it reads as any expression"
    return TypeLayerPlan(slot, hole, grammar, top, receivers, first_members, time.perf_counter() - started, shortfall)


def _some(names: list[str]) -> str:
    unique = sorted(set(names))
    return ", ".join(unique[:3]) + (f" and {len(unique) - 3} more" if len(unique) > 3 else "")


def _tail(slot: ExpressionSlot) -> str:
    return _TAIL_OF_SLOT.get(slot.kind, "statement")


def typed_grammar(plan: TypeLayerPlan, lead: str, bracket_newlines: bool = True) -> str:
    """Lark text: `lead` (text token healing took back from before the expression), the typed
    expression, then whatever may follow it. `bracket_newlines`: as in `python_grammar`."""
    assert plan.grammar is not None and plan.top_rule is not None and plan.slot is not None
    tail = _TAILS[_tail(plan.slot)]
    flavour = "bracket" if _tail(plan.slot) == "argument" else "line"
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
