"""`accs-lsp bench speculation`: drafts from the buffer against the plain decoding loop.

The same holes (cut from the given sources: line, block-sized and argument holes) are
completed by the engine with and without speculation, alternating, from the same empty
KV cache each time, at each constraint level (figures of each request's last decoding).
Printed per level: decoding throughput
of both, their ratio, the draft tokens run and the share the loop took, and how many
completions came out identical (all of them should: speculation changes forward passes,
not choices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from accs_lsp.completion import Completion, CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.documents import Document
from accs_lsp.eval.tasks import Task, source_tasks
from accs_lsp.models.llama import LlamaModel

LEVELS = ("none", "syntax")
KINDS = ("line", "line_rest", "return", "call_args")


@dataclass
class Tally:
    tokens: int = 0
    seconds: float = 0.0
    drafted: int = 0
    accepted: int = 0

    def add(self, completion: Completion) -> None:
        self.tokens += completion.tokens
        self.seconds += completion.decode_ms / 1000
        self.drafted += completion.drafted_tokens
        self.accepted += completion.accepted_draft_tokens

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def run(sources: Sequence[Path], per_kind: int, max_tokens: int, model_path: str | None) -> str:
    from accs_lsp.models import resolve_model_path

    model = LlamaModel.load(str(resolve_model_path(model_path)))
    engine = CompletionEngine(model)
    tasks = [task for source in sources for task in source_tasks(source, per_kind, KINDS, 0)]
    lines = [f"speculation: {len(tasks)} holes from {', '.join(str(s) for s in sources)}, max {max_tokens} tokens, {model.name}"]
    lines.append("level   plain tok/s  speculative tok/s  ratio  drafted  taken  identical")
    for level in LEVELS:
        plain, speculative, identical = measure(engine, tasks, level, max_tokens)
        taken = speculative.accepted / speculative.drafted if speculative.drafted else 0.0
        ratio = speculative.rate / plain.rate if plain.rate else 0.0
        lines.append(
            f"{level:7} {plain.rate:11.1f}  {speculative.rate:17.1f}  {ratio:5.2f}  {speculative.drafted:7d}  "
            f"{taken:5.0%}  {identical}/{len(tasks)}"
        )
    return "\n".join(lines)


def measure(engine: CompletionEngine, tasks: Sequence[Task], level: str, max_tokens: int) -> tuple[Tally, Tally, int]:
    tallies = {False: Tally(), True: Tally()}
    identical = 0
    for task in tasks:
        snapshot = Document(f"file:///{task.name}", task.text).snapshot()
        texts = {}
        for speculate in (False, True):
            engine.model.forget()  # both start from the same empty KV cache
            options = CompletionOptions(constraints=level, max_tokens=max_tokens, timeout_ms=None, speculative=speculate)
            completion = engine.complete(snapshot, task.offset, options)
            tallies[speculate].add(completion)
            texts[speculate] = completion.text
        identical += texts[False] == texts[True]
    return tallies[False], tallies[True], identical
