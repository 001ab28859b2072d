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
from typing import Callable, Sequence

import llguidance
import numpy as np

from accs_lsp.analysis.scanner import in_code
from accs_lsp.constraints.llguidance_bridge import GrammarCache, apply_mask, penalty_buffer
from accs_lsp.types.receivers import ReceiverTypes, trailing_chain

_IDENTIFIER = re.compile(r"[A-Za-z_0-9]*")
# Values of these types cannot be called: `(` right after one is refused (`self.name()` where
# `name: str`).
NOT_CALLABLE = frozenset({"str", "bytes", "int", "float", "complex", "bool", "list", "dict", "tuple", "set", "frozenset", "None"})
# A statement that so far is a dotted name: what follows may be ` = ...`, naming a new attribute.
_DOTTED_STATEMENT_START = re.compile(r"\s*[A-Za-z_][\w.]*")


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
        return not any(self._calls_a_value(combined[: start + index]) for index, c in enumerate(piece) if c == "(")

    def _calls_a_value(self, before: str) -> bool:
        """Whether a `(` after `before` calls a value of a type that cannot be called."""
        if not before or not (before[-1].isalnum() or before[-1] in "_)]") or not in_code(before):
            return False
        value = self.receivers.type_before(before)
        return value is not None and value.name in NOT_CALLABLE

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
        """False where the name after the dot may be a new attribute: on a receiver that starts
        the statement (an assignment target, `self.total = ...`), unless its type is a builtin
        one, whose attributes cannot be assigned. Elsewhere (`x = self.rend`) it must exist."""
        line = re.split(r"[\n;]", before)[-1]
        if _DOTTED_STATEMENT_START.fullmatch(line) is None:
            return True
        steps = trailing_chain(before)
        if steps and steps[0][1] in ("self", "cls"):
            return False
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
