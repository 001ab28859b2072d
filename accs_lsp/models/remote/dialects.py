"""Request bodies for remote engines: OpenAI completions, grammar fields per engine, infill.

Grammar mode sends the request's llguidance grammar (the Lark text the local decoding
compiles: the syntax grammar at the cursor, or the typed expression at a typed hole) as it
is, prefixed with `%llguidance {}`, in the field each engine reads. The field names below
were checked against the projects' documentation and source (tests/test_remote_engine.py
holds them too):

vLLM (`vllm`, v0.10.2 and newer; the `guided_*` fields were removed in v0.12.0):
    {"structured_outputs": {"grammar": ...}} on /v1/completions, the backend chosen on the
    server with `--structured-outputs-config.backend guidance` (the request cannot choose it
    since v0.12.0: "guided_decoding_backend -> Remove this field from your request").
    https://docs.vllm.ai/en/latest/features/structured_outputs/
    vllm/v1/structured_output/backend_guidance.py: `llguidance.grammar_from("grammar", ...)`,
    which reads text starting with `%llguidance` or `start:` as Lark.
vLLM before v0.12 (`vllm-guided`):
    {"guided_grammar": ..., "guided_decoding_backend": "guidance"}
    https://docs.vllm.ai/en/v0.8.3/features/structured_outputs.html
SGLang (`sglang`), server started with `--grammar-backend llguidance`:
    {"ebnf": ...} on /v1/completions (sglang/srt/entrypoints/openai/protocol.py,
    CompletionRequest.ebnf); the llguidance backend passes it to
    `llguidance.grammar_from("ebnf", ...)`; llguidance's README: "When passing Lark grammars,
    prefix them with %llguidance {}".
    https://github.com/sgl-project/sglang/blob/main/docs/advanced_features/structured_outputs.ipynb
llama.cpp's llama-server built with `-DLLAMA_LLGUIDANCE=ON` (`llama-server`):
    {"grammar": ...} on /v1/completions ("llama.cpp /completion-specific features ... are
    supported") and on /infill ("accepts all the options of /completion"); "grammars
    starting with %llguidance are passed to LLGuidance".
    https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
    https://github.com/ggml-org/llama.cpp/blob/master/docs/llguidance.md
    A llama-server built without LLGuidance aborts on such a grammar (GGML_ABORT in
    common/sampling.cpp), and llama-cpp-python's server, which parses `grammar` as GBNF,
    crashes on it: this dialect is used only when a setting asks for it.

Fill-in-the-middle: llama-server's POST /infill takes `input_prefix`, `input_suffix` and the
/completion options (`n_predict`, `temperature`, `stop`, `cache_prompt`...) and lays the
prompt out with the model's own FIM tokens (same README).
"""

from __future__ import annotations

from typing import Any, Sequence

LLGUIDANCE_HEADER = "%llguidance {}\n"
GRAMMAR_DIALECTS = ("vllm", "vllm-guided", "sglang", "llama-server")
# OpenAI's completions API takes at most 4 stop sequences.
MAX_STOP_SEQUENCES = 4
SAMPLING_TOP_P = 0.95


def llguidance_grammar(lark: str) -> str:
    """The grammar as every llguidance engine recognises it: starting with `%llguidance`."""
    return lark if lark.lstrip().startswith("%llguidance") else LLGUIDANCE_HEADER + lark


def grammar_fields(dialect: str, grammar: str, llguidance: bool = True) -> dict[str, Any]:
    """The request fields that carry `grammar` to an engine of `dialect`. `llguidance=False`
    sends the text as it is (a GBNF grammar, for engines that only take GBNF)."""
    text = llguidance_grammar(grammar) if llguidance else grammar
    if dialect == "vllm":
        return {"structured_outputs": {"grammar": text}}
    if dialect == "vllm-guided":
        return {"guided_grammar": text, "guided_decoding_backend": "guidance"}
    if dialect == "sglang":
        return {"ebnf": text}
    if dialect == "llama-server":
        return {"grammar": text}
    raise ValueError(f"unknown grammar dialect {dialect!r} (expected one of {', '.join(GRAMMAR_DIALECTS)})")


def sampling_fields(temperature: float, seed: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"temperature": temperature}
    if temperature > 0:
        fields["top_p"] = SAMPLING_TOP_P
        if seed is not None:
            fields["seed"] = seed
    return fields


def completion_body(
    prompt: str,
    *,
    model: str | None,
    max_tokens: int,
    temperature: float,
    n: int = 1,
    stop: Sequence[str] = (),
    seed: int | None = None,
    dialect: str | None = None,
    grammar: str | None = None,
) -> dict[str, Any]:
    """POST /v1/completions (OpenAI's legacy completions API, which every engine serves)."""
    body: dict[str, Any] = {"prompt": prompt, "max_tokens": max_tokens, "n": n, "stream": False}
    if model:
        body["model"] = model
    body.update(sampling_fields(temperature, seed))
    if stop:
        body["stop"] = list(stop)[:MAX_STOP_SEQUENCES]
    if grammar is not None and dialect is not None:
        body.update(grammar_fields(dialect, grammar))
    return body


def infill_body(
    prefix: str,
    suffix: str,
    *,
    max_tokens: int,
    temperature: float,
    n: int = 1,
    stop: Sequence[str] = (),
    seed: int | None = None,
    grammar: str | None = None,
) -> dict[str, Any]:
    """POST /infill (llama-server): the engine puts its model's FIM tokens around the parts."""
    body: dict[str, Any] = {
        "input_prefix": prefix,
        "input_suffix": suffix,
        "n_predict": max_tokens,
        "cache_prompt": True,
        "stream": False,
    }
    body.update(sampling_fields(temperature, seed))
    if temperature == 0:
        body["top_k"] = 1  # greedy, whatever the server's sampler chain
    if n > 1:
        body["n_cmpl"] = n
    if stop:
        body["stop"] = list(stop)
    if grammar is not None:
        body.update(grammar_fields("llama-server", grammar))
    return body


def completion_texts(answer: Any) -> list[tuple[str, str]]:
    """(text, finish reason) of each choice of a /v1/completions answer, in index order."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list):
        raise ValueError("the answer has no choices")
    ordered = sorted((c for c in choices if isinstance(c, dict)), key=lambda c: c.get("index", 0))
    return [(str(c.get("text") or ""), str(c.get("finish_reason") or "")) for c in ordered]


INFILL_FINISH = {"eos": "stop", "word": "stop", "limit": "length"}


def infill_texts(answer: Any) -> list[tuple[str, str]]:
    """(text, finish reason as OpenAI names it) of an /infill answer: one object, or a list."""
    results = answer if isinstance(answer, list) else [answer]
    texts = []
    for result in results:
        if not isinstance(result, dict) or "content" not in result:
            raise ValueError("the answer has no content")
        stop_type = str(result.get("stop_type") or ("length" if result.get("stopped_limit") else "eos"))
        texts.append((str(result.get("content") or ""), INFILL_FINISH.get(stop_type, stop_type)))
    return texts


def usage_counts(answer: Any) -> tuple[int, int, int]:
    """(prompt tokens, completion tokens, cached prompt tokens) where the answer says."""
    if isinstance(answer, list):
        counts = [usage_counts(item) for item in answer]
        return (max((c[0] for c in counts), default=0), sum(c[1] for c in counts), max((c[2] for c in counts), default=0))
    if not isinstance(answer, dict):
        return 0, 0, 0
    usage = answer.get("usage")
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), int(cached or 0)
    # llama-server's native answers
    return int(answer.get("tokens_evaluated") or 0), int(answer.get("tokens_predicted") or 0), int(answer.get("tokens_cached") or 0)
