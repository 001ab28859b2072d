"""The decoding loop with the real default model: prompts, healing, stop rules, KV reuse."""

from __future__ import annotations

import threading

import pytest

from accs_lsp.completion import CompletionEngine, CompletionOptions, InvalidRequest
from accs_lsp.decoding import Generator, LineStop, PromptBuilder
from accs_lsp.documents import Document

FUNCTION = "def transform(arr: list[int]) -> list[str]:\n    return "


def complete(model, source: str, **options) -> object:
    offset = source.index("|")
    document = Document("file:///g.py", source.replace("|", "", 1))
    settings = {"max_tokens": 24, "timeout_ms": None, **options}
    return CompletionEngine(model).complete(document.snapshot(), offset, CompletionOptions(**settings))


def test_prefix_prompt_heals_the_last_token(model):
    prompt = PromptBuilder(model, 256).build("xs = []\nxs.ap", "")
    assert prompt.format == "prefix"  # SmolLM2 has no fill-in-the-middle tokens
    assert prompt.healed_text == "ap"
    assert model.tokenize("xs = []\nxs.") == prompt.tokens


def test_healed_completion_continues_the_word_being_typed(model):
    completion = complete(model, "items = []\nfor i in range(3):\n    items.ap|", mode="line")
    assert completion.text.startswith("pend(")


def test_line_mode_returns_one_line(model):
    completion = complete(model, FUNCTION.replace("return ", "return |"))
    assert completion.mode == "line"
    assert completion.text and "\n" not in completion.text
    assert completion.stop_reason in ("stop_rule", "eos", "max_tokens")


def test_block_mode_stays_in_the_block(model):
    source = "class Stack:\n    def __init__(self):\n        |\n\n    def push(self, x):\n        pass\n"
    completion = complete(model, source, max_tokens=48)
    assert completion.mode == "block"
    assert completion.text.strip()
    for line in completion.text.split("\n")[1:]:
        assert not line.strip() or line.startswith("        "), completion.text


def test_second_request_on_the_same_file_reuses_the_kv_cache(model):
    source = "import math\n\n\ndef circle_area(radius: float) -> float:\n    return |"
    complete(model, source)
    again = complete(model, source.replace("|", "m|"))
    assert again.reused_prompt_tokens >= again.prompt_tokens - 2


def test_stop_event_cancels_before_the_first_token(model):
    stop = threading.Event()
    stop.set()
    prompt = PromptBuilder(model, 256).build(FUNCTION, "")
    result = Generator(model).run(prompt, max_tokens=50, stop_rule=LineStop(), stop_event=stop)
    assert result.stop_reason.value == "cancelled"
    assert result.tokens == 0


def test_max_tokens_bounds_the_generation(model):
    prompt = PromptBuilder(model, 256).build("numbers = [1, 2, 3, 4, 5, 6, 7, 8, ", "")
    result = Generator(model).run(prompt, max_tokens=3, stop_rule=LineStop())
    assert result.tokens == 3
    assert result.stop_reason.value == "max_tokens"


def test_completion_at_the_top_of_an_empty_file(model):
    completion = complete(model, "|", max_tokens=4)
    assert completion.tokens <= 4


def test_unknown_constraint_level_is_refused(model):
    with pytest.raises(InvalidRequest, match="unknown constraint level 'strict'"):
        complete(model, FUNCTION + "|", constraints="strict")


REPEATING = (
    "def totals(rows: list[list[int]]) -> list[int]:\n"
    "    result = []\n"
    "    for row in rows:\n"
    "        subtotal = 0\n"
    "        for value in row:\n"
    "            subtotal += value\n"
    "        result.append(subtotal)\n"
    "    return result\n\n\n"
    "def maxima(rows: list[list[int]]) -> list[int]:\n"
    "    result = []\n"
    "    for row in rows:\n"
)


@pytest.mark.parametrize("constrained", [False, True])
def test_speculation_changes_nothing_but_the_forward_passes(model, constrained):
    """Drafts from the buffer are verified by the same choices: the greedy output is the
    plain loop's, token for token, and some draft tokens were taken."""
    from accs_lsp.decoding.stopping import BlockStop

    engine = CompletionEngine(model)

    def run(speculate: bool):
        constraint = None
        if constrained:
            document = Document("file:///t.py", REPEATING)
            request = engine._request(document.snapshot(), len(REPEATING), CompletionOptions(mode="block"))
            constraint = engine._grammar_layer(request)
        model.forget()  # the same KV cache start for both
        prompt = PromptBuilder(model, 512).build(REPEATING, "")
        return Generator(model).run(prompt, max_tokens=32, stop_rule=BlockStop("    "), constraint=constraint, speculate=speculate)

    plain, speculative = run(False), run(True)
    assert speculative.token_ids == plain.token_ids and speculative.text == plain.text
    assert speculative.drafted_tokens > 0 and speculative.accepted_draft_tokens > 0


def test_amx_is_read_from_the_cpu_flags(tmp_path):
    from accs_lsp.models.llama import cpu_has_amx

    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert cpu_has_amx(str(amx))
    assert not cpu_has_amx(str(plain))
    assert not cpu_has_amx(str(tmp_path / "missing"))


def test_the_model_keeps_default_parameters_unpatched_after_loading(model):
    import llama_cpp.llama_cpp as bindings

    assert bindings.llama_model_default_params().use_extra_bufts  # wrapped only while a model loads
    assert model.tokenize("def f():")  # and the loaded model answers (it crashed on AMX CPUs before)
