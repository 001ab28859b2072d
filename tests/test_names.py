"""The name layer: an expression reads only names that are defined (accs_lsp/constraints/names.py)."""

from __future__ import annotations

import builtins

import pytest

from accs_lsp.completion import CompletionEngine, CompletionOptions
from accs_lsp.constraints.names import NameConstraint, name_uses
from accs_lsp.documents import Document

DEFINED = frozenset(dir(builtins)) | {"xs", "self", "os", "items", "config"}


def undefined(text: str) -> list[str]:
    return [name.text for name in name_uses(text, 0, DEFINED.__contains__, final=True).undefined]


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("x = foo(1)", ["foo"]),
        ("return bar + len(xs)", ["bar"]),
        ("a, b = 1, 2\nprint(a + b)", []),
        ("x: int = 5\nprint(x)", []),
        ("self.total = count", ["count"]),
        ("result.append(1)", ["result"]),
        ("[y * 2 for y in xs]", []),
        ("sum(len(w) for w in words)", ["words"]),
        ("sum(abs(x - mean) for x in xs)", []),  # a comprehension's element is let be
        ("{k: v for k, v in items}", []),
        ("[a, b]", ["a", "b"]),
        ("f(key=1, other=zz)", ["f", "zz"]),
        ("config(key=1)", []),
        ("(n := 10) + n", []),
        ("lambda q: q + r", ["r"]),
        ("sorted(xs, key=lambda e: e[0])", []),
        ("def f(a, b=c, *rest, **options) -> int:\n    return a + b + len(rest) + d", ["c", "d"]),
        ("import os.path as p\np.join", []),
        ("from collections import OrderedDict\nOrderedDict()", []),
        ("with open(path) as fh:\n    fh.read()", ["path"]),
        ("for i, j in enumerate(xs):\n    print(i, j, k)", ["k"]),
        ("try:\n    pass\nexcept ValueError as error:\n    raise error", []),
        ("if ready: go()", ["ready", "go"]),
        ("global counter\ncounter", []),
        ("match command:\n    case [first, *rest]:\n        pass", []),
        ('f"{undefined}" + "plain"', []),
        ("os.path.join(xs)  # a comment naming nothing", []),
        ("class C(Base, metaclass=Meta):\n    pass", ["Base", "Meta"]),
        ("@decorator\ndef g(): pass", ["decorator"]),
        ("x = 1 if xs else None", []),
        ("del xs[0]", []),
    ],
)
def test_names_that_are_read_must_be_defined(code: str, names: list[str]) -> None:
    assert undefined(code) == names


def test_a_name_a_comprehension_may_bind_waits_for_the_comprehension() -> None:
    # While the element is written, `y` may be bound by a `for` still to come.
    assert name_uses("[y * 2", 0, DEFINED.__contains__).undefined == []
    # A comma rules the comprehension out.
    assert [n.text for n in name_uses("[y, ", 0, DEFINED.__contains__).undefined] == ["y"]
    # At the end of a completion, nothing binds it any more.
    assert [n.text for n in name_uses("[y * 2", 0, DEFINED.__contains__, final=True).undefined] == ["y"]


def test_names_written_before_the_decoding_are_not_its_concern() -> None:
    text = "total = unknown_thing + "
    assert name_uses(text + "len(xs)", len(text), DEFINED.__contains__, final=True).undefined == []
    assert [n.text for n in name_uses(text + "missing", len(text), DEFINED.__contains__, final=True).undefined] == ["missing"]


def test_keyword_arguments_are_among_the_callees_parameters() -> None:
    def parameters_of(before: str) -> frozenset[str] | None:
        return frozenset({"path", "mode"}) if before.endswith("config") else None

    def wrong_keywords(text: str) -> list[str]:
        uses = name_uses(text, 0, DEFINED.__contains__, final=True, parameters_of=parameters_of)
        return [name.text for name in uses.undefined]

    assert wrong_keywords("config(xs, mode=1)") == []
    assert wrong_keywords("config(xs, colour=1)") == ["colour"]
    assert wrong_keywords("print(xs, colour=1)") == [], "an unknown callee takes any keyword"
    partial = name_uses("config(xs, mo", 0, DEFINED.__contains__, parameters_of=parameters_of)
    assert partial.reading == "mo" and partial.keywords == {"path", "mode"}


def test_a_partial_name_that_can_only_be_read_is_reported() -> None:
    assert name_uses("return con", 0, DEFINED.__contains__).reading == "con"
    assert name_uses("x = f(con", 0, DEFINED.__contains__).reading is None, "may be a keyword argument"
    assert name_uses("con", 0, DEFINED.__contains__).reading is None, "may be an assignment target"


@pytest.fixture(scope="module")
def engine(model) -> CompletionEngine:
    engine = CompletionEngine(model)
    yield engine
    engine.close()


def layer_after(engine: CompletionEngine, statement: str, visible: frozenset[str] = DEFINED) -> NameConstraint:
    return NameConstraint(engine.type_grammars, engine.model.token_text, statement, visible)


def accepts(layer: NameConstraint, engine: CompletionEngine, text: str) -> bool:
    """Whether the layer takes `text`, token by token (left as it was)."""
    tokens = engine.model.tokenize(text)
    for taken, token in enumerate(tokens):
        if not layer.try_accept(token):
            layer.rollback(taken)
            return False
    layer.rollback(len(tokens))
    return True


def test_the_layer_refuses_tokens_that_read_undefined_names(engine) -> None:
    layer = layer_after(engine, "    return ")
    assert accepts(layer, engine, "len(xs)")
    assert accepts(layer, engine, "config")
    assert not accepts(layer, engine, "undefined_helper(xs)")
    assert not accepts(layer, engine, "len(missing)")
    assert accepts(layer, engine, "[w for w in xs]")
    assert not accepts(layer, engine, "[w for v in missing]")
    # A name the completion itself binds may be read on the lines after.
    assert accepts(layer_after(engine, "    "), engine, "largest = max(xs)\n    return largest")


def test_the_mask_after_a_partial_name_keeps_defined_names_only(engine) -> None:
    import numpy as np

    layer = layer_after(engine, "    return conf")
    logits = np.zeros(engine.model.n_vocab, dtype=np.float32)
    layer.mask_logits(logits)
    allowed = {engine.model.token_text(int(t)) for t in np.flatnonzero(np.isfinite(logits))}
    assert "ig" in allowed
    assert "usion" not in allowed and " =" not in allowed
    # Where a name may start, names outside the scope are masked, other text is not.
    layer = layer_after(engine, "    return ")
    logits = np.zeros(engine.model.n_vocab, dtype=np.float32)
    layer.mask_logits(logits)
    allowed = {engine.model.token_text(int(t)) for t in np.flatnonzero(np.isfinite(logits))}
    assert {"len", " len", "(", " [", " \"", "1"} <= allowed
    assert " banana" not in allowed and "banana" not in allowed


SOURCE = (
    "import os\n\n\n"
    "def size_of(path: str) -> int:\n"
    "    folder = os.path.dirname(path)\n"
    "    return \n"
)


def test_a_completion_at_types_reads_only_defined_names(engine) -> None:
    document = Document("file:///names.py", SOURCE).snapshot()
    offset = SOURCE.index("return ") + len("return ")
    completion = engine.complete(document, offset, CompletionOptions(constraints="types", max_tokens=16))
    layers = {layer["name"]: layer for layer in completion.layers}
    assert layers["names"]["applied"], layers["names"]
    visible = {"os", "size_of", "path", "folder"} | frozenset(dir(builtins))
    assert [n.text for n in name_uses(completion.text, 0, visible.__contains__, final=True).undefined] == []
