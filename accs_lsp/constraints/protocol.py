"""What the decoding loop asks of a constraint layer (the seam between constraints/ and
decoding/): hard layers implement TokenConstraint, soft layers SoftBias.

No dependencies, so that the decoding loop can take constraints without importing them.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

# When the model's first choice is not allowed, greedy decoding tries this many of its next
# choices before computing a full mask.
GREEDY_RETRIES = 3


class ConstraintFailed(Exception):
    """A constraint cannot follow the tokens chosen: generation ends with what is complete."""


class TokenConstraint(Protocol):
    """A decoding-time constraint (the syntactic layer, later the type layer).

    The loop asks for the next mask to be computed (`start_next_mask`) before it
    runs the forward pass, so an implementation can overlap the two. Greedy decoding
    tries the model's next `greedy_retries` choices one by one before asking for a mask.
    """

    greedy_retries: int

    def start_next_mask(self) -> None: ...

    def mask_logits(self, logits: np.ndarray) -> None: ...

    def try_accept(self, token: int) -> bool: ...

    def rollback(self, count: int) -> None: ...

    def removed_mass(self, logits: np.ndarray) -> tuple[float, bool]: ...

    def accept(self, tokens: Sequence[int]) -> None: ...

    def forced_tokens(self) -> list[int]: ...

    def is_finished(self) -> bool: ...

    def is_complete(self) -> bool: ...


class SoftBias(Protocol):
    """A soft constraint layer: adds to the logits, in place, before the token is chosen."""

    def apply(self, logits: np.ndarray, text: str) -> None: ...
