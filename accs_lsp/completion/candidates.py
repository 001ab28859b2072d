"""The candidate stage: which of the texts a request decoded is returned.

Candidates come from each decoding the request ran (the strict constraint set, then
each step down the ladder) and from its branches (decodings that replay it up to one of
the model's least certain choices and take another token there: as many as the
request's `alternatives`, and a few where a decoding found nothing to return): the
generated text cut at every point where the hard layers saw a complete construct
followed by the rest of the statement (at line ends where no grammar was applied), or,
where there was no such point, what closes the constructs left open. One ordered choice
picks among them:

1. cut at a complete point (by construction);
2. fits the code after the cursor: it does not end inside a comment or string that
   would swallow the rest of the line;
3. parses when spliced into the buffer (where the buffer parsed before, a candidate
   that breaks it is never returned; where it did not, one that repairs it is preferred);
4. passes more of the candidate checks' examples (the semantic layer: MAX_CHECKED
   candidates that parse are run, each decoding's favourite first, then each one's
   second, and so on, so that every branch is tried before one decoding's shorter cuts);
5. the model's likelihood: an earlier decoding (stricter, or the greedy one before its
   branches) before a later one, and within one decoding the point where the model
   rejoined the code after the cursor, then the longest cut (the model chose to go on
   past the shorter ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from accs_lsp.completion.validation import REPAIR_TRIES, buffer_parses, parses
from accs_lsp.constraints.members import in_code
from accs_lsp.constraints.pipeline import CandidateCheck


@dataclass(frozen=True)
class Candidate:
    text: str
    source: str  # the ladder step that decoded it ("strict" first)
    rank: int  # order within its decoding (0 is the model's favourite cut)
    log_likelihood: float = 0.0


#: Candidates run against the checks (each is a sandboxed process).
MAX_CHECKED = 12


@dataclass(frozen=True)
class Choice:
    candidate: Candidate | None
    rejected: int  # candidates passed over because they did not parse when spliced
    checked: int = 0  # examples run on the chosen candidate
    passed: int = 0  # of them, passed
    candidates_run: int = 0  # candidates run against the checks

    @property
    def passes_all(self) -> bool:
        return self.checked > 0 and self.passed == self.checked


def choose(
    buffer: str,
    offset: int,
    candidates: Sequence[Candidate],
    checks: Sequence[CandidateCheck] = (),
    code_follows_on_line: bool = False,
) -> Choice:
    """The first candidate in the stage's order (see the module docstring); None when none
    may be returned (the buffer parsed and every candidate breaks it)."""
    ordered = [c for c in candidates if not code_follows_on_line or in_code(c.text)]
    if not ordered:
        return Choice(None, 0)
    broken = not buffer_parses(buffer)
    # A broken buffer is the common case while typing: bound the parses spent on repairs.
    tried = ordered[:REPAIR_TRIES] if broken else ordered
    parsing = [c for c in tried if parses(buffer[:offset] + c.text + buffer[offset:])]
    if not parsing:
        return Choice(ordered[0], 0) if broken else Choice(None, len(ordered))
    if not checks:
        return Choice(parsing[0], tried.index(parsing[0]))
    return _best_by_checks(buffer, offset, parsing, tried, checks)


def _best_by_checks(
    buffer: str, offset: int, parsing: list[Candidate], tried: list[Candidate], checks: Sequence[CandidateCheck]
) -> Choice:
    """The candidate that passes the most examples; among equals the earliest (the model's)."""
    run = _by_decoding_then_rank([c for c in parsing if c.text.strip()])[:MAX_CHECKED]
    if not run:
        return Choice(parsing[0], tried.index(parsing[0]))
    texts = [c.text for c in run]
    checked, passed = [0] * len(run), [0] * len(run)
    for check in checks:
        for index, result in enumerate(check.score_all(buffer, offset, texts)):
            checked[index] += result.checked
            passed[index] += result.passed
    best = max(range(len(run)), key=lambda index: (passed[index], -index))
    return Choice(run[best], tried.index(run[best]), checked[best], passed[best], len(run))


def _by_decoding_then_rank(candidates: list[Candidate]) -> list[Candidate]:
    """Each decoding's first candidate, then each one's second, ... (the order kept within)."""
    turns: dict[str, int] = {}
    keyed = []
    for index, candidate in enumerate(candidates):
        turn = turns.get(candidate.source, 0)
        turns[candidate.source] = turn + 1
        keyed.append((turn, index, candidate))
    return [candidate for _, _, candidate in sorted(keyed, key=lambda item: item[:2])]
