"""`accs-lsp doctor`: what a user needs, checked one by one, one OK/FAIL line each.

Checks run in order and each may use what an earlier one built (the model, its
tokenizer); a check whose prerequisite failed is reported as SKIP. Optional checks
(basedpyright) never make the exit code fail.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, TextIO

from accs_lsp.errors import one_line

PACKAGES = ("accs-lsp", "pygls", "lsprotocol", "llama-cpp-python", "llguidance", "jedi", "tree-sitter", "basedpyright")
ONE_TOKEN_SOURCE = "def area(width: float, height: float) -> float:\n    return "


class CheckFailed(Exception):
    """A check's one-line reason for failing."""


@dataclass
class Check:
    name: str
    run: Callable[[], str]  # returns the detail shown after OK; raises CheckFailed (or anything) on failure
    required: bool = True
    needs: tuple[str, ...] = ()


class Doctor:
    def __init__(self, model_path: str | None, out: TextIO) -> None:
        self.model_path = model_path
        self.out = out
        self.model = None
        self.engine = None

    def checks(self) -> list[Check]:
        return [
            Check("grammars", self.grammars_found),
            Check("model", self.model_loads),
            Check("tokenizer", self.tokenizer_builds, needs=("model",)),
            Check("grammar compile", self.grammars_compile, needs=("tokenizer", "grammars")),
            Check("jedi", self.jedi_answers),
            Check("basedpyright", self.basedpyright_present, required=False),
            Check("completion", self.one_token_completion, needs=("grammar compile",)),
        ]

    def run(self) -> int:
        self.print_versions()
        passed: set[str] = set()
        failed_required = False
        for check in self.checks():
            missing = [name for name in check.needs if name not in passed]
            if missing:
                self.line("SKIP", check.name, f"needs {', '.join(missing)}")
                failed_required |= check.required
                continue
            try:
                detail = check.run()
            except Exception as error:  # every failure is a line, never a traceback
                suffix = "" if check.required else " (optional)"
                self.line("FAIL", check.name, f"{one_line(error)}{suffix}")
                failed_required |= check.required
                continue
            passed.add(check.name)
            self.line("OK", check.name, detail)
        return 1 if failed_required else 0

    def print_versions(self) -> None:
        print(f"{'python':18} {platform.python_version()}", file=self.out)
        for package in PACKAGES:
            try:
                installed = version(package)
            except PackageNotFoundError:
                installed = "not installed"
            print(f"{package:18} {installed}", file=self.out)

    def line(self, status: str, name: str, detail: str) -> None:
        print(f"{status:5} {name:16} {detail}", file=self.out, flush=True)

    # -- the checks ---------------------------------------------------------------------------

    def grammars_found(self) -> str:
        from accs_lsp.constraints.python_grammar import TEMPLATE_NAMES, grammar_directory, python_grammar

        python_grammar(indent="", mode="line")  # reads every template
        return f"{len(TEMPLATE_NAMES)} templates in {grammar_directory()}"

    def model_loads(self) -> str:
        from accs_lsp.models import LlamaModel, resolve_model_path

        self.model = LlamaModel.load(resolve_model_path(self.model_path))
        fim = "fill-in-the-middle tokens" if self.model.fim else "no fill-in-the-middle tokens"
        return (
            f"{self.model.path}{'' if self.model.file == self.model.path else f' (loaded from its copy {self.model.file})'} "
            f"({self.model.n_vocab} tokens, {fim}, "
            f"loaded in {self.model.load_seconds * 1000:.0f} ms)"
        )

    def tokenizer_builds(self) -> str:
        from accs_lsp.completion import CompletionEngine

        self.engine = CompletionEngine(self.model)
        tokenizer = self.engine.grammars.tokenizer
        return f"llguidance tokenizer of {tokenizer.vocab_size} tokens"

    def grammars_compile(self) -> str:
        from accs_lsp.constraints.python_grammar import python_grammar

        for mode in ("line", "block"):
            self.engine.grammars.matcher(python_grammar(indent="    ", mode=mode))
        return "line and block grammars compiled by llguidance"

    def jedi_answers(self) -> str:
        from accs_lsp.types.jedi_provider import JediProvider

        source = "xs: list[int] = []\nxs."
        names = JediProvider().member_names(source, len(source) - 1) or ()
        if "append" not in names:
            raise CheckFailed("Jedi did not list the members of list[int]")
        return f"{len(names)} members of list[int]"

    def basedpyright_present(self) -> str:
        from accs_lsp.types.pyright_provider import find_executable

        executable = find_executable()
        if executable is None:
            raise CheckFailed("basedpyright-langserver not found: pip install 'accs-lsp[pyright]'")
        return executable

    def one_token_completion(self) -> str:
        from accs_lsp.completion import CompletionOptions
        from accs_lsp.documents import Document

        snapshot = Document("file:///doctor.py", ONE_TOKEN_SOURCE).snapshot()
        options = CompletionOptions(constraints="syntax", max_tokens=1, timeout_ms=None)
        completion = self.engine.complete(snapshot, len(ONE_TOKEN_SOURCE), options)
        if completion.relaxed is not None:
            raise CheckFailed(completion.relaxed)
        if completion.tokens < 1:
            raise CheckFailed(f"no token generated (stop: {completion.stop_reason})")
        return f"{completion.tokens} token(s) under the syntax grammar in {completion.latency_ms:.0f} ms"


def run(model_path: str | None, out: TextIO) -> int:
    return Doctor(model_path, out).run()
