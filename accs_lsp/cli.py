"""Command line: `accs-lsp serve | complete | doctor | bench | eval`.

Exit codes: 0 success; 1 an internal failure (one line on stderr, the traceback only in the
log with `--log-level debug`); 2 bad input (a missing file, a position outside the file, a
missing or corrupt model, bad arguments); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from accs_lsp import __version__
from accs_lsp.errors import one_line
from accs_lsp.eval.tasks import TASK_KINDS
from accs_lsp.models.remote import API_KEY_ENV_VAR, ENGINE_ENV_VAR, ENGINE_KINDS, ENGINE_MODES
from accs_lsp.settings import CONSTRAINT_LEVELS, MODES, TYPE_PROVIDERS

EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# The checkout's fixtures: the default input of `bench` and `eval`, absent from a regular install.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger("accs_lsp")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accs-lsp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"accs-lsp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default=None,
        help="log to stderr at this level (default: INFO for serve, WARNING otherwise)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_subparser_with(common))

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio (loopback only unless --allow-remote)")
    serve.add_argument(
        "--allow-remote", action="store_true",
        help="let --tcp listen on an address other than loopback: anyone who reaches it can read the files sent to it",
    )
    serve.add_argument("--stdio", action="store_true", help="use stdio (the default; accepted because clients add it)")
    serve.add_argument("--model", metavar="PATH", help="GGUF model file (default: $ACCS_MODEL, then SmolLM2)")
    serve.add_argument(
        "--engine", metavar="URL",
        help=f"complete through this OpenAI-compatible engine (as the setting `engine`; default: ${ENGINE_ENV_VAR})",
    )
    serve.add_argument("--log-file", metavar="PATH", help="write the server's log here instead of stderr")

    complete = commands.add_parser("complete", help="print a completion at FILE:LINE:COL (1-based)")
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument("--constraints", choices=CONSTRAINT_LEVELS, default="syntax")
    complete.add_argument("--type-provider", choices=TYPE_PROVIDERS, default="jedi", help="where types come from (constraints types)")
    complete.add_argument("--max-tokens", type=positive_int, default=64)
    complete.add_argument("--mode", choices=MODES, default="auto")
    complete.add_argument("--timeout-ms", type=positive_int, default=None, help="stop generating after this long")
    complete.add_argument("--model", metavar="PATH")
    complete.add_argument("--json", action="store_true", help="print one JSON object with timings")
    complete.add_argument("--no-examples", action="store_true", help="at constraints full, do not run the function's examples")
    complete.add_argument(
        "--engine", metavar="URL",
        help=f"decode on this OpenAI-compatible engine (vLLM, SGLang, llama-server: http://host:port/v1) instead of a local "
        f"model; --model is then the vocabulary the layers check its text with; API key from ${API_KEY_ENV_VAR}",
    )
    complete.add_argument("--engine-mode", choices=ENGINE_MODES, default="auto", help="grammar: the engine decodes under the grammar; validation: its candidates are checked here")
    complete.add_argument("--engine-kind", choices=ENGINE_KINDS, default="auto", help="the engine's request dialect (auto: asked of the engine)")
    complete.add_argument("--engine-model", metavar="NAME", default="", help="the model name sent to the engine (default: the first it lists)")
    complete.add_argument("--engine-candidates", type=positive_int, default=4, help="candidates asked for in validation mode")

    learn = commands.add_parser("learn", help="learn a project's names, habits and snippets for constraints full")
    learn.add_argument("path", type=Path, metavar="PATH", help="the project's root directory")
    learn.add_argument("--reset", action="store_true", help="forget what was learned of PATH (and learn nothing)")

    doctor = commands.add_parser("doctor", help="check grammars, model, tokenizer, type providers and one completion")
    doctor.add_argument("--model", metavar="PATH")

    bench = commands.add_parser("bench", help="measure speed and memory")
    benches = bench.add_subparsers(dest="bench", required=True)
    server = benches.add_parser("server", help="initialize time, first completion, latency, tok/s, memory")
    server.add_argument("--file", type=Path, default=FIXTURES / "geometry.py", help="document to complete at its end")
    server.add_argument("--rounds", type=positive_int, default=10, help="completions after the first")
    server.add_argument("--model", metavar="PATH")
    mask = benches.add_parser("mask", help="syntax mask time per token and constrained/unconstrained throughput")
    mask.add_argument("--models", default="smollm2,gemma3", help="vocabularies for mask times (names or GGUF paths)")
    mask.add_argument("--throughput-models", default="smollm2", help="models for the throughput ratio")
    mask.add_argument("--max-tokens", type=positive_int, default=48)
    mask.add_argument("--rounds", type=positive_int, default=3, help="passes over the holes for the throughput")
    types_bench = benches.add_parser("types", help="type layer overhead per token and per request, next to syntax only")
    types_bench.add_argument("--per-kind", type=positive_int, default=4, help="return, argument and attribute holes from fixtures/")
    types_bench.add_argument("--max-tokens", type=positive_int, default=32)
    types_bench.add_argument("--rounds", type=positive_int, default=2, help="passes over the holes after the cold one")
    types_bench.add_argument("--model", metavar="PATH")
    types_bench.add_argument("--source", type=Path, metavar="DIR", help="cut the holes from the largest module under DIR (default: fixtures/)")
    types_bench.add_argument("--type-provider", choices=TYPE_PROVIDERS, default="jedi")
    e2e = benches.add_parser("e2e", help="typing sessions over a real LSP connection: fresh, typed-ahead and prefetched latency")
    e2e.add_argument("--levels", default="none,syntax,types,full", help="comma-separated constraint levels, one server each")
    e2e.add_argument("--holes", type=positive_int, default=3, help="holes per file (fixtures/ and a big stdlib module)")
    e2e.add_argument("--typed", type=positive_int, default=3, help="characters typed into each suggestion")
    e2e.add_argument("--max-tokens", type=positive_int, default=64)
    e2e.add_argument("--no-fill", action="store_true", help="skip filling the suggestion cache before the memory figure")
    e2e.add_argument("--model", metavar="PATH")
    speculation = benches.add_parser("speculation", help="drafts from the buffer against the plain decoding loop: tok/s, drafts taken")
    speculation.add_argument("--source", type=Path, action="append", help="directory of .py files to cut holes from (default: fixtures/)")
    speculation.add_argument("--per-kind", type=positive_int, default=4, help="holes of each kind per source")
    speculation.add_argument("--max-tokens", type=positive_int, default=48)
    speculation.add_argument("--model", metavar="PATH")
    prepared = benches.add_parser("model", help="the bundled model as shipped (Q4_1) against its Q8_0 copy: prompt and decoding tok/s")
    prepared.add_argument("--source", type=Path, action="append", help="directory of .py files to cut holes from (default: fixtures/)")
    prepared.add_argument("--per-kind", type=positive_int, default=4, help="holes of each kind per source")
    prepared.add_argument("--max-tokens", type=positive_int, default=48)
    faults = benches.add_parser("faults", help="a hostile client against the real server: crashes, unanswered requests, desyncs")
    faults.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    faults.add_argument("--quick", action="store_true", help="fewer inputs per class")
    faults.add_argument(
        "--classes", default=None,
        help="comma-separated, from frames,params,lifecycle,edits,documents,cancellation,settings,reload,stale,soak (default: all)",
    )

    evaluate = commands.add_parser(
        "eval", help="completion quality of every constraint level on the same tasks (JSON, Markdown, PNG)"
    )
    evaluate.add_argument("--source", type=Path, default=FIXTURES, help="directory of .py files to cut holes from")
    evaluate.add_argument("--limit", type=positive_int, default=10, help="tasks per kind (and HumanEval problems)")
    evaluate.add_argument("--kinds", default=",".join(TASK_KINDS), help=f"comma-separated, from {','.join(TASK_KINDS)}")
    evaluate.add_argument("--output", type=Path, default=Path("eval-output"), help="where the report goes")
    evaluate.add_argument("--max-tokens", type=positive_int, default=64)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--no-type-check", action="store_true", help="skip basedpyright")
    evaluate.add_argument("--arms", default=None, help="comma-separated constraint levels (default: every available one)")
    evaluate.add_argument(
        "--learn", action="store_true",
        help="learn --source first (in a temporary store) so that the full arm uses it; without it, full uses no store",
    )
    evaluate.add_argument("--model", metavar="PATH")
    evaluations = evaluate.add_subparsers(dest="evaluation", required=False)
    parse_rate = evaluations.add_parser("parse", help="share of completions that leave the buffer parseable")
    parse_rate.add_argument("--fixtures", type=Path, default=FIXTURES, help="directory of .py files to take holes from")
    parse_rate.add_argument("--per-kind", type=positive_int, default=4, help="holes of each kind per file")
    parse_rate.add_argument("--humaneval", type=int, default=0, metavar="N", help="also the first N HumanEval bodies")
    parse_rate.add_argument("--max-tokens", type=positive_int, default=64)
    parse_rate.add_argument("--model", metavar="PATH")
    return parser


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _subparser_with(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """Every subcommand (and sub-subcommand) accepts the common options after its name."""

    class Subparser(argparse.ArgumentParser):
        def __init__(self, **kwargs) -> None:
            kwargs.setdefault("parents", [common])
            super().__init__(**kwargs)

    return Subparser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    level = arguments.log_level or ("INFO" if arguments.command == "serve" else "WARNING")
    handlers = {
        "serve": run_serve, "complete": run_complete, "learn": run_learn, "doctor": run_doctor, "bench": run_bench, "eval": run_eval,
    }
    try:
        configure_logging(level, getattr(arguments, "log_file", None))
        return handlers[arguments.command](arguments)
    except UsageError as error:
        print(f"accs-lsp: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("accs-lsp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        log.debug("internal failure", exc_info=True)
        hint = "" if level == "DEBUG" else " (rerun with --log-level debug for details)"
        print(f"accs-lsp: internal error: {one_line(error, with_type=True)}{hint}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def configure_logging(level: str, log_file: str | None) -> None:
    """The server logs with timestamps; the one-shot commands only say what went wrong."""
    if log_file is None and level != "DEBUG" and level != "INFO":
        log_format = "accs-lsp: %(levelname)s: %(message)s"
    else:
        log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=level,
        format=log_format,
        **({"stream": private_log_file(log_file)} if log_file else {"stream": sys.stderr}),
    )
    if level != "DEBUG":
        logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO


def private_log_file(path: str):
    """The log file, readable by its owner only (completions and file names go there)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as error:
        raise UsageError(f"cannot write the log file {path}: {error.strerror or error}") from None
    os.fchmod(descriptor, 0o600)
    return open(descriptor, "a", encoding="utf-8")


def run_serve(arguments: argparse.Namespace) -> int:
    from accs_lsp.server import create_server
    from accs_lsp.server.transport import serve_stdio, serve_tcp

    if arguments.engine:  # what the `engine` setting falls back on, as --model for `modelPath`
        from accs_lsp.models.remote import parse_engine_url

        try:
            parse_engine_url(arguments.engine)
        except ValueError as error:
            raise UsageError(f"--engine: {error}") from None
        os.environ[ENGINE_ENV_VAR] = arguments.engine
    if not arguments.tcp:
        return stopped(server := create_server(model_path=arguments.model), serve_stdio(server))
    host, _, port = arguments.tcp.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--tcp expects HOST:PORT, got {arguments.tcp!r}")
    if not is_loopback(host):
        if not arguments.allow_remote:
            raise UsageError(f"--tcp {host} is not a loopback address: add --allow-remote to listen there")
        log.warning("listening on %s, which is not loopback: anyone who can reach it can send requests and read completions", host)
    server = create_server(model_path=arguments.model)
    try:
        return stopped(server, serve_tcp(server, host.strip("[]"), int(port)))
    except OSError as error:
        raise UsageError(f"cannot listen on {arguments.tcp}: {error.strerror or error}") from None


def stopped(server, status: int) -> int:
    """The connection has ended: stop a generation in flight, so the process exits now."""
    server.stops.stop_all()
    return status


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_location(location: str) -> tuple[Path, int, int]:
    path, separator, rest = location.rpartition(":")
    path, separator2, line = path.rpartition(":")
    if not separator or not separator2 or not path:
        raise UsageError(f"expected FILE:LINE:COL, got {location!r}")
    try:
        return Path(path), int(line), int(rest)
    except ValueError:
        raise UsageError(f"LINE and COL must be integers in {location!r}") from None


def read_source(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None


def cursor_offset(text: str, line: int, column: int) -> int:
    """The str offset of a 1-based LINE and 1-based COL counted in characters."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise UsageError(f"line {line} is outside the file (1..{len(lines)})")
    if not 1 <= column <= len(lines[line - 1]) + 1:
        raise UsageError(f"column {column} is outside line {line} (1..{len(lines[line - 1]) + 1})")
    return sum(len(previous) + 1 for previous in lines[: line - 1]) + column - 1


def load_model(path: str | None):
    from accs_lsp.models import LlamaModel, ModelLoadError, resolve_model_path

    try:
        return LlamaModel.load(resolve_model_path(path))
    except ModelLoadError as error:
        raise UsageError(str(error)) from None


def run_complete(arguments: argparse.Namespace) -> int:
    from accs_lsp.completion import CompletionEngine, CompletionOptions
    from accs_lsp.completion.options import InvalidRequest
    from accs_lsp.documents import Document

    path, line, column = parse_location(arguments.location)
    text = read_source(path)
    offset = cursor_offset(text, line, column)
    options = CompletionOptions(
        constraints=arguments.constraints,
        max_tokens=arguments.max_tokens,
        mode=arguments.mode,
        timeout_ms=arguments.timeout_ms,
        type_provider=arguments.type_provider,
        run_examples=not arguments.no_examples,
    )
    from accs_lsp.models.remote import EngineError

    try:
        options.check()
        engine = remote_engine(arguments) if arguments.engine else CompletionEngine(load_model(arguments.model))
        completion = engine.complete(Document(path.resolve().as_uri(), text).snapshot(), offset, options)
    except InvalidRequest as error:
        raise UsageError(str(error)) from None
    except EngineError as error:  # unreachable, or it answered an error: one line, bad input
        print(f"accs-lsp: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if arguments.json:
        print(json.dumps(completion.to_json()))
    else:
        print(completion.text)
    return 0


def run_learn(arguments: argparse.Namespace) -> int:
    from accs_lsp.learn.progress import stderr_progress_bar
    from accs_lsp.learn.store import ProjectStore, forget

    root = arguments.path.resolve()
    if not root.is_dir():
        raise UsageError(f"no such directory: {arguments.path}")
    if arguments.reset:
        print(f"forgot {root}" if forget(root) else f"nothing was learned of {root}")
        return 0
    store = ProjectStore.open(root)
    if store is None:  # the cache directory cannot be written: the store said why
        return EXIT_BAD_INPUT
    try:
        report = store.learn(progress=stderr_progress_bar())
    finally:
        store.close()
    print(
        f"learned {root}: {report.files_seen} files, {report.files_read} read, "
        f"{report.files_removed} removed, {report.seconds:.1f} s"
    )
    return 0


def remote_engine(arguments: argparse.Namespace):
    """The engine for `complete --engine URL`: the local model is loaded vocab-only, and only
    when a layer checks the engine's text with it."""
    from accs_lsp.completion import CompletionEngine
    from accs_lsp.models import ModelLoadError, resolve_model_path
    from accs_lsp.models.remote import RemoteEngine
    from accs_lsp.models.remote.vocabulary import load_vocabulary

    try:
        remote = RemoteEngine(
            arguments.engine, arguments.engine_kind, arguments.engine_mode, arguments.engine_model, arguments.engine_candidates
        )
    except ValueError as error:
        raise UsageError(f"--engine: {error}") from None
    remote.info()  # an engine that cannot be reached fails here, before anything loads
    vocabulary = None
    if arguments.constraints != "none":
        try:
            vocabulary = load_vocabulary(resolve_model_path(arguments.model), quiet=True)
        except ModelLoadError as error:
            if arguments.model:
                raise UsageError(str(error)) from None
            log.warning("no local vocabulary (%s): the engine's text is checked by the parse only", error)
    return CompletionEngine(vocabulary, remote=remote)


def run_doctor(arguments: argparse.Namespace) -> int:
    from accs_lsp import doctor

    return doctor.run(arguments.model, sys.stdout)


def bench_sources(given: list[Path] | None) -> list[Path]:
    """The directories a bench cuts its holes from (default: fixtures/)."""
    sources = given or [FIXTURES]
    missing = [str(source) for source in sources if not source.is_dir()]
    if missing:
        raise UsageError(f"no such directory: {', '.join(missing)}")
    return sources


def run_bench(arguments: argparse.Namespace) -> int:
    if arguments.bench in ("types", "mask", "e2e"):
        require_fixtures()
    if arguments.bench == "e2e":
        from accs_lsp.bench import e2e

        levels = [level.strip() for level in arguments.levels.split(",") if level.strip()]
        unknown = [level for level in levels if level not in e2e.LEVELS]
        if unknown or not levels:
            raise UsageError(f"--levels takes a comma-separated list of {', '.join(e2e.LEVELS)}, got {arguments.levels!r}")
        print(e2e.run(FIXTURES, levels, arguments.holes, arguments.typed, arguments.max_tokens, arguments.model, not arguments.no_fill))
        return 0
    if arguments.bench == "types":
        from accs_lsp.bench import types as types_bench

        source = arguments.source
        if source is not None and not source.is_dir():
            raise UsageError(f"--source {source}: not a directory")
        print(types_bench.run(source or FIXTURES, arguments.model, arguments.per_kind, arguments.max_tokens, arguments.rounds,
                              from_largest_module=source is not None, type_provider=arguments.type_provider))
        return 0
    if arguments.bench == "mask":
        from accs_lsp.bench import mask

        models, throughput = arguments.models.split(","), arguments.throughput_models.split(",")
        print(mask.run(models, throughput, FIXTURES, arguments.max_tokens, arguments.rounds))
        return 0
    if arguments.bench == "speculation":
        from accs_lsp.bench import speculation

        sources = bench_sources(arguments.source)
        print(speculation.run(sources, arguments.per_kind, arguments.max_tokens, arguments.model))
        return 0
    if arguments.bench == "model":
        from accs_lsp.bench import model

        sources = bench_sources(arguments.source)
        print(model.run(sources, arguments.per_kind, arguments.max_tokens))
        return 0
    if arguments.bench == "faults":
        from accs_lsp.bench import faults

        try:
            classes = faults.parse_classes(arguments.classes)
        except ValueError as error:
            raise UsageError(str(error)) from None
        text, status = faults.run(arguments.seed, arguments.quick, classes)
        print(text)
        return status
    from accs_lsp.bench import server

    if not arguments.file.is_file():
        raise UsageError(f"no such file: {arguments.file}")
    print(server.run(arguments.file, arguments.rounds, arguments.model))
    return 0


def require_fixtures() -> None:
    if not FIXTURES.is_dir():
        raise UsageError(f"this benchmark replays the holes of the source checkout's fixtures/, not found at {FIXTURES}")


def run_eval(arguments: argparse.Namespace) -> int:
    if arguments.evaluation == "parse":
        return run_eval_parse(arguments)
    from accs_lsp.completion.engine import CompletionEngine
    from accs_lsp.eval import runner, tasks

    kinds = tuple(kind.strip() for kind in arguments.kinds.split(",") if kind.strip())
    unknown = set(kinds) - set(TASK_KINDS)
    if unknown:
        raise UsageError(f"unknown task kinds: {', '.join(sorted(unknown))} (known: {', '.join(TASK_KINDS)})")
    if not arguments.source.is_dir():
        raise UsageError(f"no such directory: {arguments.source}")
    arms = None
    if arguments.arms:
        arms = [arm.strip() for arm in arguments.arms.split(",") if arm.strip()]
        unknown_arms = set(arms) - set(CONSTRAINT_LEVELS)
        if unknown_arms or not arms:
            raise UsageError(f"unknown arms: {', '.join(sorted(unknown_arms)) or '(none given)'} (known: {', '.join(CONSTRAINT_LEVELS)})")
    chosen: list = []
    if "humaneval" in kinds:
        chosen += tasks.humaneval_tasks(arguments.limit)
    source_kinds = tuple(kind for kind in kinds if kind != "humaneval")
    if source_kinds:
        chosen += tasks.source_tasks(arguments.source, arguments.limit, source_kinds, arguments.seed)
    with evaluation_store(arguments) as projects:
        engine = CompletionEngine(load_model(arguments.model), measure_invasiveness=True, projects=projects)
        evaluation = runner.run(engine, chosen, arguments.max_tokens, runner.progress_bar, arms, arguments.source)
    evaluation.project_store = f"{arguments.source} learned before the run" if arguments.learn else "none (not learned)"
    if not arguments.no_type_check:
        runner.count_new_type_errors(evaluation, chosen)
    for path in runner.write_outputs(evaluation, arguments.output):
        print(path)
    print((arguments.output / "report.md").read_text())
    return 0


@contextlib.contextmanager
def evaluation_store(arguments: argparse.Namespace):
    """The stores the evaluation's full arm reads: with --learn, --source learned into a
    temporary cache (the user's stores are neither read nor changed); without, none."""
    from accs_lsp.learn.progress import stderr_progress_bar
    from accs_lsp.learn.registry import ProjectStores
    from accs_lsp.learn.store import ProjectStore

    projects = ProjectStores(discover=False)
    with tempfile.TemporaryDirectory(prefix="accs-eval-store-") as cache:
        if arguments.learn:
            store = ProjectStore.open(arguments.source.resolve(), cache_dir=Path(cache))
            if store is None:
                raise UsageError(f"cannot write a store for {arguments.source} in {cache}")
            store.learn(progress=stderr_progress_bar())
            projects.add(store)
        try:
            yield projects
        finally:
            projects.close()


def run_eval_parse(arguments: argparse.Namespace) -> int:
    from accs_lsp.completion.engine import CompletionEngine
    from accs_lsp.eval import parse_rate

    if not arguments.fixtures.is_dir():
        raise UsageError(f"no such directory: {arguments.fixtures}")
    engine = CompletionEngine(load_model(arguments.model))
    levels = ("none", "syntax")
    holes = parse_rate.fixture_holes(arguments.fixtures, arguments.per_kind)
    outcomes = parse_rate.complete_holes(engine, holes, levels, arguments.max_tokens)
    print(parse_rate.summary(outcomes, f"fixtures ({arguments.fixtures})"))
    if arguments.humaneval:
        holes = parse_rate.humaneval_holes(arguments.humaneval)
        outcomes = parse_rate.complete_holes(engine, holes, levels, arguments.max_tokens)
        print(parse_rate.summary(outcomes, "HumanEval function bodies"))
    return 0
