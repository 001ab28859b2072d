"""The server's figures for `accs/stats` and its shutdown log line, and the memory budget over
the caches the server owns (`memoryLimitMb`)."""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from accs_lsp.server.memory import peak_resident_mb, resident_mb

if TYPE_CHECKING:
    from accs_lsp.completion import Completion
    from accs_lsp.server.suggestions import SuggestionCache

log = logging.getLogger(__name__)

SAMPLES_KEPT = 4096
SOURCES = ("fresh", "cache", "prefetch")


def percentile(values: Iterable[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in 0..1), None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class ServerStats:
    # Completions run on the model thread for requests, by kind (prefetches are apart).
    generations: Counter[str] = field(default_factory=Counter)
    cancelled_generations: int = 0
    # Requests answered with nothing because a newer one for the same document came.
    superseded: int = 0
    cache_misses: int = 0
    prefetches_started: int = 0
    prefetches_completed: int = 0
    prefetches_cancelled: int = 0
    prefetches_skipped: int = 0
    warm_ups: int = 0
    warm_up_tokens: int = 0
    # Suggestions shown (distinct ids, non-empty) and the feedback on them.
    shown: int = 0
    accepted: int = 0
    dismissed: int = 0
    tokens: int = 0
    decode_ms: float = 0.0
    mask_ms: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    mask_ms_per_token: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    type_ms: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    latency_ms: dict[str, deque[float]] = field(default_factory=lambda: {source: deque(maxlen=SAMPLES_KEPT) for source in SOURCES})
    relaxation_steps: Counter[str] = field(default_factory=Counter)
    relaxed_completions: int = 0

    def record_generation(self, completion: "Completion") -> None:
        """What one decoding (a request's or a prefetch's) cost."""
        if completion.stop_reason == "cancelled":
            return
        self.tokens += completion.tokens
        self.decode_ms += completion.decode_ms
        self.mask_ms.append(completion.constraint_ms)
        if completion.tokens:
            self.mask_ms_per_token.append(completion.constraint_ms / completion.tokens)
        if completion.constraints in ("types", "full"):
            self.type_ms.append(completion.type_ms)
        for step in completion.relaxation_steps:
            self.relaxation_steps[step.rsplit(": ", 1)[-1]] += 1
        if completion.relaxation_steps:
            self.relaxed_completions += 1

    def record_latency(self, source: str, milliseconds: float) -> None:
        self.latency_ms[source].append(milliseconds)

    def to_json(self, cache: "SuggestionCache", engine_relaxations: dict[str, int] | None) -> dict[str, Any]:
        counters = cache.counters
        generations = sum(self.generations.values())
        return {
            "generations": generations,
            "generationsByKind": dict(self.generations),
            "cancelledGenerations": self.cancelled_generations,
            "superseded": self.superseded,
            "cacheHits": counters.hits,
            "prefetchHits": counters.prefetch_hits,
            "cacheLookups": counters.lookups,
            "cacheHitRate": rate(counters.hits, counters.lookups),
            "prefetch": {
                "started": self.prefetches_started,
                "completed": self.prefetches_completed,
                "cancelled": self.prefetches_cancelled,
                "skipped": self.prefetches_skipped,
                "hits": counters.prefetch_hits,
                "hitRate": rate(counters.prefetch_hits, self.prefetches_completed),
            },
            "warmUps": {"runs": self.warm_ups, "tokens": self.warm_up_tokens},
            "tokensPerSecond": round(self.tokens / (self.decode_ms / 1000), 1) if self.decode_ms > 0 else None,
            "maskMs": {
                "p50": rounded(percentile(self.mask_ms, 0.5)),
                "p95": rounded(percentile(self.mask_ms, 0.95)),
                "p99": rounded(percentile(self.mask_ms, 0.99)),
                "perTokenP50": rounded(percentile(self.mask_ms_per_token, 0.5), 4),
            },
            "typeMs": {"p50": rounded(percentile(self.type_ms, 0.5)), "p99": rounded(percentile(self.type_ms, 0.99))},
            "latencyMs": {
                source: {
                    "count": len(samples),
                    "p50": rounded(percentile(samples, 0.5)),
                    "p95": rounded(percentile(samples, 0.95)),
                }
                for source, samples in self.latency_ms.items()
            },
            "relaxation": {
                "engine": dict(engine_relaxations or {}),
                "requests": dict(self.relaxation_steps),
                "relaxedCompletions": self.relaxed_completions,
            },
            "acceptance": {
                "shown": self.shown,
                "accepted": self.accepted,
                "dismissed": self.dismissed,
                "rate": rate(self.accepted, self.shown),
            },
        }


def summary_line(figures: dict[str, Any]) -> str:
    """The session's figures in one log line."""
    mask, latency, memory = figures["maskMs"], figures["latencyMs"], figures["memory"]

    def show(value: Any, unit: str = "") -> str:
        return "-" if value is None else f"{value}{unit}"

    return (
        f"session stats: {figures['generations']} generations, {show(figures['tokensPerSecond'])} tok/s, "
        f"mask p50/p95/p99 {show(mask['p50'])}/{show(mask['p95'])}/{show(mask['p99'])} ms, "
        f"type p50/p99 {show(figures['typeMs']['p50'])}/{show(figures['typeMs']['p99'])} ms, "
        f"cache hits {figures['cacheHits']}/{figures['cacheLookups']} (rate {show(figures['cacheHitRate'])}), "
        f"prefetch hits {figures['prefetch']['hits']}/{figures['prefetch']['completed']} "
        f"(rate {show(figures['prefetch']['hitRate'])}), "
        f"latency p50 fresh/cache/prefetch {show(latency['fresh']['p50'])}/{show(latency['cache']['p50'])}/"
        f"{show(latency['prefetch']['p50'])} ms, "
        f"relaxations {figures['relaxation']['requests'] or {}}, "
        f"acceptance {figures['acceptance']['accepted']}/{figures['acceptance']['shown']}, "
        f"resident {memory['residentMb']} MiB (peak {memory['peakResidentMb']} MiB, limit {memory['limitMb']} MiB)"
    )


class MemoryBudget:
    """`memoryLimitMb` over the caches the server owns: the suggestion cache is bounded in
    (estimated) bytes by it and evicts its least recently used entries to stay under it. The
    process's resident memory (the model, llama.cpp's KV cache, the grammars, Jedi) is
    reported next to it, not bounded by it."""

    def __init__(self, limit_mb: int, cache: "SuggestionCache") -> None:
        self.cache = cache
        self.limit_mb = limit_mb
        self.resize(limit_mb)

    def resize(self, limit_mb: int) -> None:
        self.limit_mb = limit_mb
        self.cache.resize(limit_mb * 2**20)

    def to_json(self, grammar_caches: dict[str, Any]) -> dict[str, Any]:
        resident = resident_mb()
        return {
            "limitMb": self.limit_mb,
            "cachesMb": round(self.cache.bytes / 2**20, 3),
            "residentMb": round(resident, 1),
            "peakResidentMb": round(max(resident, peak_resident_mb()), 1),
            "suggestionCache": self.cache.to_json(),
            "grammarCaches": grammar_caches,
        }
