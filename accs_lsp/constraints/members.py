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
from typing import Callable

from accs_lsp.analysis.scanner import in_code
from accs_lsp.constraints.following import TextFollowingConstraint
from accs_lsp.constraints.llguidance_bridge import GrammarCache
from accs_lsp.types.receivers import ReceiverTypes, trailing_chain

_IDENTIFIER = re.compile(r"[A-Za-z_0-9]*")
# Values of these types cannot be called: `(` right after one is refused (`self.name()` where
# `name: str`).
NOT_CALLABLE = frozenset({"str", "bytes", "int", "float", "complex", "bool", "list", "dict", "tuple", "set", "frozenset", "None"})
# A statement that so far is a dotted name: what follows may be ` = ...`, naming a new attribute.
_DOTTED_STATEMENT_START = re.compile(r"\s*[A-Za-z_][\w.]*")


class MemberConstraint(TextFollowingConstraint):
    """Implements decoding.TokenConstraint for member access (see the module docstring).

    `text` is the statement's text before the first decoded token. `first_members`:
    the members Jedi lists at the cursor when it is right after "expr." (its own answer
    there is better than ours), as (offset of that dot in `text`, names).
    """

    def __init__(
        self,
        grammars: GrammarCache,
        token_text: Callable[[int], str],
        receivers: ReceiverTypes,
        text: str,
        first_members: tuple[int, frozenset[str]] | None = None,
    ) -> None:
        super().__init__(grammars, token_text, text)
        self.receivers = receivers
        self.first_members = first_members

    def is_complete(self) -> bool:
        """A member name cut short is not complete."""
        return self.allows(" ")

    # -- the check --------------------------------------------------------------------------

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

    def continuation_regex(self) -> str | None:
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
