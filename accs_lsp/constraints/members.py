"""The member constraint: after `<expr>.`, only the receiver's members.

It follows the text as it is decoded. Where the text ends with an expression whose
type is known (a name in scope, then attributes, calls and subscripts through the
member tables), the identifier after its "." must be one of the type's members.
Receivers of unknown type are not restricted (fail open).

Most tokens are checked in Python (a token like ".append" carries the dot and the
name at once); a full mask is computed only when the decoding loop needs one, from a
small regex matcher cached per member set, and AND-ed with the other layers' masks.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

import llguidance
import numpy as np

from accs_lsp.analysis.scanner import in_code
from accs_lsp.constraints.llguidance_bridge import GrammarCache, apply_mask, penalty_buffer
from accs_lsp.types.model import PyType, subscript_result
from accs_lsp.types.provider import Binding, Member

_IDENTIFIER_TAIL = re.compile(r"[A-Za-z_]\w*$|\w*$")
_IDENTIFIER = re.compile(r"[A-Za-z_0-9]*")


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
        steps = _trailing_chain(text)
        if not steps or steps[0][0] != "name":
            return None
        binding = self.bindings.get(steps[0][1])
        if binding is None:
            return None
        value: PyType | None = binding.type if binding.kind == "variable" else None
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


def _trailing_chain(text: str) -> list[tuple[str, str]]:
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


class MemberConstraint:
    """Implements decoding.TokenConstraint for member access (see the module docstring).

    `text` is the statement's text before the first decoded token. `first_members`:
    the members Jedi lists at the cursor when it is right after "expr." (its own answer
    there is better than ours), as (offset of that dot in `text`, names).
    """

    greedy_retries = 3

    def __init__(
        self,
        grammars: GrammarCache,
        token_text: Callable[[int], str],
        receivers: ReceiverTypes,
        text: str,
        first_members: tuple[int, frozenset[str]] | None = None,
    ) -> None:
        self.grammars = grammars
        self.token_text = token_text
        self.receivers = receivers
        self.text = text
        self.first_members = first_members
        self.vocab_size = grammars.tokenizer.vocab_size
        self._bitmask = llguidance.numpy.allocate_token_bitmask(1, self.vocab_size)
        self._penalty = penalty_buffer(self._bitmask)
        self._lengths: list[int] = []
        self.restricted_steps = 0

    # -- TokenConstraint -------------------------------------------------------------------

    def start_next_mask(self) -> None:
        pass  # masks are rare here: computed on demand

    def mask_logits(self, logits: np.ndarray) -> None:
        regex = self._continuation_regex()
        if regex is None:
            return
        self.restricted_steps += 1
        matcher = self.grammars.matcher(f"start: CONTINUATION\nCONTINUATION: /{regex}/\n")
        llguidance.numpy.fill_next_token_bitmask(matcher, self._bitmask, 0)
        apply_mask(logits, self._bitmask, self._penalty, self.vocab_size)

    def removed_mass(self, logits: np.ndarray) -> tuple[float, bool]:
        masked = logits.copy()
        self.mask_logits(masked)
        return removed_by(logits, masked)

    def try_accept(self, token: int) -> bool:
        piece = self.token_text(token)
        if not self.allows(piece):
            return False
        self._append(piece)
        return True

    def accept(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self._append(self.token_text(token))

    def rollback(self, count: int) -> None:
        for _ in range(count):
            self.text = self.text[: self._lengths.pop()]

    def forced_tokens(self) -> list[int]:
        return []

    def is_finished(self) -> bool:
        return False

    def is_complete(self) -> bool:
        """A member name cut short is not complete."""
        return self.allows(" ")

    # -- the check --------------------------------------------------------------------------

    def _append(self, piece: str) -> None:
        self._lengths.append(len(self.text))
        self.text += piece

    def allows(self, piece: str) -> bool:
        """Whether every member name that `piece` writes (or goes on writing) is a member."""
        combined = self.text + piece
        start = len(self.text)
        dot = _open_member_access(self.text)
        positions = [dot] if dot is not None else []
        positions += [start + index for index, character in enumerate(piece) if character == "."]
        for position in positions:
            names = self._members_at(combined, position)
            if names is None:
                continue
            name = _IDENTIFIER.match(combined, position + 1).group(0)
            finished = position + 1 + len(name) < len(combined)
            if finished and name not in names or not finished and not any(m.startswith(name) for m in names):
                return False
        return True

    def _members_at(self, text: str, dot: int) -> frozenset[str] | None:
        before = text[:dot]
        if not before or not in_code(before) or before[-1].isspace() or not self._attributes_fixed(before):
            return None
        if self.first_members is not None and dot == self.first_members[0]:
            return self.first_members[1]
        value = self.receivers.type_before(before)
        if value is None:
            return None
        names = frozenset(self.receivers.members(value))
        return names or None

    def _attributes_fixed(self, before: str) -> bool:
        """False where the name after the dot may be a new attribute: on `self` and `cls`, and on
        a receiver that starts the statement (maybe an assignment target) unless its type is a
        builtin one, whose attributes cannot be assigned."""
        steps = _trailing_chain(before)
        if steps and steps[0][1] in ("self", "cls"):
            return False
        starts_statement = bool(steps) and before.lstrip().startswith(steps[0][1]) and "=" not in before
        if not starts_statement:
            return True
        value = self.receivers.type_before(before)
        return value is not None and not self.receivers.is_user_class(value)

    def _continuation_regex(self) -> str | None:
        """What may follow the text, as a regex; None where nothing is restricted."""
        dot = _open_member_access(self.text)
        rest = r"([^A-Za-z0-9_](.|\n)*)?"
        if dot is not None:
            names = self._members_at(self.text, dot)
            if names is None:
                return None
            typed = self.text[dot + 1 :]
            endings = sorted({re.escape(name[len(typed) :]) for name in names if name.startswith(typed)})
            return f"({'|'.join(endings)}){rest}" if endings else None
        names = self._members_at(self.text + ".", len(self.text))
        if names is None:
            return None
        choices = "|".join(sorted(re.escape(name) for name in names))
        return rf"([^.](.|\n)*)?|\.({choices}){rest}"


def _open_member_access(text: str) -> int | None:
    """Offset of the "." when `text` ends with `.name-so-far`."""
    match = re.search(r"\.(\w*)$", text)
    return match.start() if match else None


def removed_by(logits: np.ndarray, masked: np.ndarray) -> tuple[float, bool]:
    """Probability mass the mask removed (masked = -inf), and whether the top token went."""
    scores = logits.astype(np.float64)
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    removed = ~np.isfinite(masked)
    return float(probabilities[removed].sum()), bool(removed[int(np.argmax(scores))])
