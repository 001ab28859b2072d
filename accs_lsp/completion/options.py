"""What a completion request asks for and what it returns (no numpy or llama.cpp here:
the server imports this before the model loads)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from accs_lsp.settings import CONSTRAINT_LEVELS, MODES, TYPE_PROVIDERS

MAX_ALTERNATIVES = 8


class InvalidRequest(ValueError):
    """A completion request that cannot be served as asked (bad options, too many tokens)."""


@dataclass(frozen=True)
class CompletionOptions:
    constraints: str = "syntax"
    max_tokens: int = 64
    mode: str = "auto"
    timeout_ms: int | None = 3000
    temperature: float = 0.0
    type_provider: str = "jedi"
    # Decodings beyond the greedy one, each from one of the model's least certain choices,
    # for the candidate stage to choose among (the semantic layer's examples pick from them).
    alternatives: int = 0
    # The cheapest inhabitants of the expected type, for a completion list (the search costs
    # tens of ms, which an inline suggestion would wait for and never show).
    typed_alternatives: bool = True
    # Draft tokens from the buffer and verify them in batches (greedy decoding only). Off by
    # default: on the fixtures' holes with SmolLM2 drafts were rarely proposed and never
    # taken, and the lookup cost 2-9% of throughput (`accs-lsp bench speculation`).
    speculative: bool = False
    # At `full`: run the candidates against the examples found for the function at the
    # cursor (doctests, the project's asserts, `# accs:` comments) in the sandbox.
    run_examples: bool = True

    def check(self) -> None:
        if self.constraints not in CONSTRAINT_LEVELS:
            raise InvalidRequest(f"unknown constraint level {self.constraints!r}")
        if self.mode not in MODES:
            raise InvalidRequest(f"unknown mode {self.mode!r} (expected one of {', '.join(MODES)})")
        if self.type_provider not in TYPE_PROVIDERS:
            raise InvalidRequest(f"unknown type provider {self.type_provider!r} (expected one of {', '.join(TYPE_PROVIDERS)})")
        if self.max_tokens <= 0:
            raise InvalidRequest("max_tokens must be positive")
        if not 0 <= self.alternatives <= MAX_ALTERNATIVES:
            raise InvalidRequest(f"alternatives must be between 0 and {MAX_ALTERNATIVES}")


@dataclass(frozen=True)
class Completion:
    text: str
    mode: str
    constraints: str
    model: str
    tokens: int
    latency_ms: float
    stop_reason: str
    prompt_tokens: int
    reused_prompt_tokens: int
    tokens_per_second: float  # tokens run through the model per second of the decoding loop
    # Why a requested constraint layer was not applied (None when it was, or none was asked for).
    relaxed: str | None = None
    # Grammar-complete cut points that the parser check of the spliced buffer refused.
    parser_rejections: int = 0
    # Decodings branched from the greedy one's least certain choices.
    branches: int = 0
    # Speculation in the last decoding: draft tokens run through the model, and those taken.
    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0
    # Time the constraint layers took on the decoding loop's critical path.
    constraint_ms: float = 0.0
    # Time of the decoding loop (after the prompt's prefill).
    decode_ms: float = 0.0
    # Only when the engine measures invasiveness (evaluation): see GenerationResult.
    constrained_steps: int = 0
    top_token_removed: int = 0
    removed_mass: float = 0.0
    # The type layer (constraints "types"): the expected type at the hole, where one was
    # known and constrained, and the time spent asking the type provider and searching.
    expected_type: str | None = None
    type_ms: float = 0.0
    # Expressions of the expected type from the inhabitation search (no model), cheapest first;
    # only for an empty hole.
    typed_alternatives: tuple[str, ...] = ()
    # The relaxation ladder: each step taken, as "why: the step" (empty when none was).
    relaxation_steps: tuple[str, ...] = ()
    # The constraint layers of the level, in the last decoding: name, kind (hard, soft,
    # check), whether it was applied and why not.
    layers: tuple[dict[str, object], ...] = ()
    # The semantic layer (constraints "full"): examples run on the chosen candidate, and how
    # many it passed; how many candidates were run.
    examples_checked: int = 0
    examples_passed: int = 0
    candidates_run: int = 0
    # The contextual layer: snippets of other files of the project put in the prompt.
    context_snippets: tuple[str, ...] = ()
    # The model's log-likelihood of the tokens it chose in the last decoding.
    log_likelihood: float = 0.0
    # Where the completion was decoded: "local" (llama.cpp in this process) or the remote
    # engine's URL (without credentials); for a remote engine, how: "grammar" (the engine
    # decoded under the request's grammar) or "validation" (its candidates were checked
    # here), how many candidates it returned, what checked them here (the layers applied in
    # the last step and the parse of the spliced buffer), and why grammar mode was not used.
    engine: str = "local"
    engine_mode: str | None = None
    engine_candidates: int = 0
    checked_by: tuple[str, ...] = ()
    engine_note: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)
