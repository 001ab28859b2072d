"""A remote OpenAI-compatible inference engine as a model adapter (vLLM, SGLang, llama-server).

Two modes (`engineMode`):

- **grammar**: the request's llguidance grammar goes to an engine that constrains its own
  decoding with it (vLLM with the guidance backend, SGLang with `--grammar-backend
  llguidance`, llama-server built with LLGuidance); see `dialects`.
- **validation**: any OpenAI-compatible endpoint. Several candidates are asked for (the
  greedy one and samples) and the caller checks each locally.

`auto` uses grammar mode where the engine kind is known to take llguidance grammars per
request (vLLM, SGLang; detected from `owned_by` in /v1/models) and validation elsewhere;
an engine that refuses the grammar (another backend) makes the adapter switch to
validation for the session, once, with a warning in the log. llama-server gets grammar
mode only when asked for (`engineMode: "grammar"`): built without LLGuidance it aborts on
such a grammar.

Fill-in-the-middle: llama-server's /infill where the code after the cursor matters (the
engine knows its model's FIM tokens); elsewhere the caller may put a model's FIM tokens in
the prompt text.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from accs_lsp.models.remote.client import (
    DEFAULT_TIMEOUT_SECONDS,
    EngineAnswerError,
    EngineClient,
    EngineError,
    EngineURL,
    parse_engine_url,
)
from accs_lsp.models.remote.dialects import (
    completion_body,
    completion_texts,
    infill_body,
    infill_texts,
    usage_counts,
)

log = logging.getLogger(__name__)

ENGINE_MODES = ("auto", "grammar", "validation")
ENGINE_KINDS = ("auto", "vllm", "vllm-guided", "sglang", "llama-server", "openai")
# `owned_by` in /v1/models, as each server writes it (vLLM and SGLang: ModelCard's default in
# their protocol.py; llama-server: server-context.cpp; llama-cpp-python answers "me").
OWNERS = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama-server"}
# vLLM took `structured_outputs` in v0.10.2 and dropped `guided_grammar` in v0.12.0.
VLLM_STRUCTURED_OUTPUTS = (0, 10, 2)
SAMPLE_TEMPERATURE = 0.8
POLL_SECONDS = 0.02
# Probing the engine (its models, version) takes at most this long of a request's time.
PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class EngineInfo:
    kind: str  # one of ENGINE_KINDS but "auto"
    model: str  # the model name sent in requests ("" when the engine does not say)
    owned_by: str = ""
    version: str = ""


@dataclass(frozen=True)
class PromptParts:
    """What the engine completes: the code before the cursor, the code after it (for
    /infill and FIM prompts) and, where the model's FIM tokens are known locally, their
    text (prefix, suffix, middle)."""

    prefix: str
    suffix: str = ""
    fim: tuple[str, str, str] | None = None

    def prompt_text(self) -> str:
        if self.fim is not None:
            pre, suf, mid = self.fim
            return f"{pre}{self.prefix}{suf}{self.suffix}{mid}"
        return self.prefix or "\n"


@dataclass(frozen=True)
class EngineText:
    text: str
    finish_reason: str  # "stop", "length", as the engine says
    sampled: bool  # False for the greedy candidate


@dataclass
class EngineReply:
    texts: list[EngineText] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    endpoint: str = ""
    grammar_sent: bool = False
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)


def version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


class RemoteEngine:
    """One engine endpoint; thread-safe (a greedy and a sampling request run at once)."""

    def __init__(
        self,
        url: str,
        kind: str = "auto",
        mode: str = "auto",
        model: str = "",
        candidates: int = 4,
        api_key: str | None = None,
        client: EngineClient | None = None,
    ) -> None:
        if kind not in ENGINE_KINDS:
            raise ValueError(f"unknown engine kind {kind!r} (expected one of {', '.join(ENGINE_KINDS)})")
        if mode not in ENGINE_MODES:
            raise ValueError(f"unknown engine mode {mode!r} (expected one of {', '.join(ENGINE_MODES)})")
        if mode == "grammar" and kind == "openai":
            raise ValueError("engine mode grammar needs an engine that takes llguidance grammars (engine kind vllm, vllm-guided, sglang or llama-server)")
        if candidates < 1:
            raise ValueError("engine candidates must be at least 1")
        self.url: EngineURL = parse_engine_url(url)
        self.kind = kind
        self.mode = mode
        self.model = model
        self.candidates = candidates
        self.client = client or EngineClient(self.url, api_key)
        self._info: EngineInfo | None = None
        self._lock = threading.Lock()
        self._workers = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="accs-engine")
        # Why grammar mode was given up for this session (the engine refused a grammar).
        self.grammar_refused: str | None = None
        self._infill_refused = False

    @property
    def display(self) -> str:
        return self.url.display

    # -- what the engine is ---------------------------------------------------------------

    def info(self) -> EngineInfo:
        """Asked of the engine once (its model list, and vLLM's version), within
        PROBE_SECONDS; an unreachable engine raises, and is asked again at the next request."""
        with self._lock:
            if self._info is None:  # its own time: once a session, not worth failing a request for
                self._info = self._probe(time.monotonic() + PROBE_SECONDS)
                log.info("engine %s: %s, model %r", self.display, self._info.kind, self._info.model or "(not named)")
            return self._info

    def _probe(self, deadline: float) -> EngineInfo:
        owned_by, model = "", ""
        try:
            listing = self.client.get(self.url.path("/models"), deadline)
        except EngineAnswerError as error:  # some gateways serve no model list
            log.info("engine %s: no model list (%s)", self.display, error)
            listing = None
        data = listing.get("data") if isinstance(listing, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            owned_by = str(data[0].get("owned_by") or "")
            model = str(data[0].get("id") or "")
        kind = self.kind if self.kind != "auto" else OWNERS.get(owned_by.lower(), "openai")
        version = ""
        if kind == "vllm" and self.kind == "auto":
            try:
                answer = self.client.get(self.url.path("/version", root=True), deadline)
                version = str(answer.get("version", "")) if isinstance(answer, dict) else ""
            except EngineAnswerError:
                version = ""
            if version and version_tuple(version) < VLLM_STRUCTURED_OUTPUTS:
                kind = "vllm-guided"
        return EngineInfo(kind, self.model or model, owned_by, version)

    def grammar_dialect(self, info: EngineInfo) -> tuple[str | None, str | None]:
        """The grammar dialect to send in, or None, and why not where grammar mode was wanted."""
        if self.mode == "validation":
            return None, None
        if self.grammar_refused:
            return None, self.grammar_refused
        if info.kind in ("vllm", "vllm-guided", "sglang"):
            return info.kind, None
        if info.kind == "llama-server":
            if self.mode == "grammar":
                return "llama-server", None
            return None, "llama-server takes llguidance grammars only when built with LLGuidance: set engineMode grammar if it is"
        if self.mode == "grammar":
            return None, f"this engine ({info.owned_by or 'unknown kind'}) is not known to take llguidance grammars: set engineKind"
        return None, None

    # -- completions ------------------------------------------------------------------------

    def generate(
        self,
        parts: PromptParts,
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str],
        count: int,
        grammar: str | None = None,
        dialect: str | None = None,
        deadline: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> EngineReply:
        """The greedy candidate and `count - 1` samples (all samples at temperature > 0).
        Raises EngineError when the engine cannot give the greedy one."""
        if deadline is None:
            deadline = time.monotonic() + DEFAULT_TIMEOUT_SECONDS
        info = self.info()
        started = time.perf_counter()
        infill = info.kind == "llama-server" and bool(parts.suffix.strip()) and parts.fim is None and not self._infill_refused
        requests = [(1, temperature, False)] if temperature == 0 else [(count, temperature, True)]
        if temperature == 0 and count > 1:
            requests.append((count - 1, SAMPLE_TEMPERATURE, True))
        jobs = []
        for n, heat, sampled in requests:
            if infill:
                path = self.url.path("/infill", root=True)
                body = infill_body(parts.prefix, parts.suffix, max_tokens=max_tokens, temperature=heat, n=n, stop=stop,
                                   grammar=grammar if dialect == "llama-server" else None)
            else:
                path = self.url.path("/completions")
                body = completion_body(parts.prompt_text(), model=info.model, max_tokens=max_tokens, temperature=heat,
                                       n=n, stop=stop, dialect=dialect, grammar=grammar)
            jobs.append((path, body, sampled, self._workers.submit(self.client.post, path, body, deadline)))
        reply = EngineReply(endpoint=jobs[0][0], grammar_sent=grammar is not None and dialect is not None)
        if not self._wait([job[3] for job in jobs], stop_event):
            reply.cancelled = True
            return reply
        first_error = jobs[0][3].exception()
        if isinstance(first_error, EngineAnswerError) and reply.grammar_sent:
            self.grammar_refused = f"the engine refused the grammar ({first_error}): candidates are validated locally"
            log.warning("engine %s: %s", self.display, self.grammar_refused)
            retried = self.generate(parts, max_tokens=max_tokens, temperature=temperature, stop=stop, count=count,
                                    deadline=deadline, stop_event=stop_event)
            retried.notes.insert(0, self.grammar_refused)
            return retried
        if isinstance(first_error, EngineAnswerError) and infill:
            self._infill_refused = True
            note = f"/infill refused ({first_error}): the prompt is the code before the cursor"
            log.warning("engine %s: %s", self.display, note)
            retried = self.generate(parts, max_tokens=max_tokens, temperature=temperature, stop=stop, count=count,
                                    grammar=grammar, dialect=dialect, deadline=deadline, stop_event=stop_event)
            retried.notes.insert(0, note)
            return retried
        if first_error is not None:
            raise first_error
        for index, (path, _, sampled, future) in enumerate(jobs):
            error = future.exception()
            if error is not None:  # a sample lost: the greedy candidate is enough
                log.info("engine %s: sampling request failed: %s", self.display, error)
                reply.notes.append(f"samples not returned: {error}")
                continue
            answer = future.result()
            try:
                texts = infill_texts(answer) if path.endswith("/infill") else completion_texts(answer)
            except ValueError as problem:
                if index == 0:
                    raise EngineError(f"engine {self.display} answered {path} without completions: {problem}") from None
                continue
            reply.texts += [EngineText(text, reason, sampled) for text, reason in texts]
            prompt, completion, cached = usage_counts(answer)
            reply.prompt_tokens = max(reply.prompt_tokens, prompt)
            reply.completion_tokens += completion
            reply.cached_tokens = max(reply.cached_tokens, cached)
        reply.seconds = time.perf_counter() - started
        return reply

    def _wait(self, futures: list[concurrent.futures.Future[Any]], stop_event: threading.Event | None) -> bool:
        """Wait for the requests; False (and the connections broken) when stopped first."""
        pending = set(futures)
        while pending:
            _, pending = concurrent.futures.wait(pending, timeout=POLL_SECONDS)
            if pending and stop_event is not None and stop_event.is_set():
                self.client.abort()
                concurrent.futures.wait(pending)
                return False
        return True

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
        self.client.close()
