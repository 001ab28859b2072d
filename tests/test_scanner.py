"""The lexical scanner: code, strings and comments in (possibly incomplete) Python text."""

from __future__ import annotations

import ast
import io
import re
import tokenize

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accs_lsp.analysis.scanner import (
    code_characters,
    in_code,
    scan,
    split_top_level,
    top_level_commas,
    unclosed_brackets,
)

from conftest import FIXTURES, ROOT


@pytest.mark.parametrize(
    "text",
    [
        'x = "it\'s" ',
        "x = 'say \"hi\"' + ",
        'x = "#" + y',
        "x = '''a\nb # c\n''' + ",
        'x = "a\\"b" + ',
        "x = r'\\'' + ",
        "x = rb'a' + Rb'b' + bR'c' + BR\"d\" + F\"e\" + fR'g' + u'h' + ",
        'x = f"{y}" + ',
        'x = f"{d[\'k\']:>{width}}" + ',
        'x = f"{{" + ',
        "x = 1  # note\ny = ",
        "x = (1,\n     2",
        'x = "a\\\nb" + ',  # a backslash continues a single-quoted string on the next line
        "",
    ],
)
def test_in_code(text: str) -> None:
    assert in_code(text)


@pytest.mark.parametrize(
    "text",
    [
        'x = "abc',
        "x = 'it",
        'x = "it\'s',
        "x = 1  # note",
        "x = 1  # it's",
        "x = 1  # \"",
        "# comment",
        "x = '''a\nb",
        'x = """a\nb"" ',
        'x = """\n""a""',
        'x = "a\\"',
        "x = r'\\'",
        "x = rb'",
        'x = F"',
        "x = Rb'''\n",
        'x = "a\\\nb',
        'x = f"{y}',
        'x = f"{y:>',
        'x = f"{y!r}',
        'x = f"{{y',
        'x = f"\\N{BULLET} {y}',
        'x = f"\\N{',
    ],
)
def test_not_in_code(text: str) -> None:
    assert not in_code(text)


def test_a_name_ending_in_a_prefix_letter_is_not_a_prefix() -> None:
    assert scan('xr"\\').opened[-1].raw is False
    assert scan('r"\\').opened[-1].raw is True
    assert scan('nf"{x').opened[-1].kind == "string"  # not an f-string: no field


def test_fstring_replacement_fields_are_code_one_level_deeper() -> None:
    assert in_code('f"{x')
    assert in_code('f"{obj.')
    assert not in_code('f"{d[\'k')
    assert in_code('f"{d[\'k\']')
    assert in_code('f"{x:>{width')
    assert in_code('rf"\\N{x')  # a raw f-string has no named escapes: a field
    assert in_code('f"\\{x')  # the backslash does not escape the brace
    assert in_code('f"""\n{\n  x,  # a comment\n  y')
    assert scan('f"{x').depth == 1
    assert scan('f"{x:{y').depth == 2
    assert scan('(f"{[x').depth == 3
    assert in_code('f"{x}" + f"{y:%Y}" + ')


def test_unterminated_single_quoted_strings_end_with_their_line() -> None:
    assert in_code('x = "abc\ny = ')
    assert in_code('x = f"{y:abc\nz = ')
    assert not in_code('x = """abc\ny = ')


@pytest.mark.parametrize(
    "text, commas",
    [
        ("a, b", [1]),
        ("f(a, b), c", [7]),
        ('"a, b", c', [6]),
        ("'(', c", [3]),
        ("\"it's\", (1, 2), [3, 4], {5: 6, 7: 8}, z", [6, 14, 22, 36]),
        ("a # , b\n, c", [8]),
        ('f"{a, b}", c', [9]),
        ("'''a,\n, b''', c", [12]),
        ("a), b", [2]),  # a bracket that closes nothing is ignored
        ("a, (b, c", [1]),
    ],
)
def test_top_level_commas(text: str, commas: list[int]) -> None:
    assert top_level_commas(text) == commas
    assert all(text[offset] == "," for offset in commas)


def test_split_top_level() -> None:
    assert split_top_level("int, Literal['a, b'], Callable[[int, str], None], ") == [
        "int",
        "Literal['a, b']",
        "Callable[[int, str], None]",
    ]
    assert split_top_level("") == []


def test_unclosed_brackets() -> None:
    assert unclosed_brackets('f(a, [b, "(", c') == [(1, "("), (5, "[")]
    assert unclosed_brackets("f(a)[0]") == []
    assert unclosed_brackets("x = {'}': (1") == [(4, "{"), (10, "(")]
    assert unclosed_brackets('g(f"{x') == [(1, "("), (4, "{")]


def test_code_characters_skip_strings_and_comments() -> None:
    text = "a = 'b' + c  # d\ne"
    assert "".join(item.character for item in code_characters(text)) == "a =  + c  \ne"
    depths = [(item.character, item.depth) for item in code_characters("(a[b])")]
    assert depths == [("(", 0), ("a", 1), ("[", 1), ("b", 2), ("]", 1), (")", 0)]


# -- against Python's tokenizer ---------------------------------------------------------------

_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)
_PREFIX = re.compile(r"[A-Za-z]*")


def tokenizer_kinds(source: str) -> list[str | None]:
    """For each cut point 0..len(source): "code", "string" or "comment" at the end of
    source[:cut], as Python's tokenizer reads the whole source; None where it cannot say:
    inside f-strings (one STRING token before Python 3.12), and two quotes into a
    triple-quoted string (which, cut there, is an empty string)."""
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    kinds: list[str | None] = ["code"] * (len(source) + 1)
    fstrings: list[int] = []

    def offset(position: tuple[int, int]) -> int:
        return starts[position[0] - 1] + position[1]

    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        start, end = offset(token.start), offset(token.end)
        if token.type == tokenize.COMMENT:
            kinds[start + 1 : end + 1] = ["comment"] * (end - start)
        elif token.type == tokenize.STRING:
            prefix = _PREFIX.match(token.string).group(0)
            body = start + len(prefix)
            kind = None if "f" in prefix.lower() else "string"
            kinds[body + 1 : end] = [kind] * (end - body - 1)
            if token.string.startswith(("'''", '"""'), len(prefix)):
                kinds[body + 2] = None
        elif token.type == _FSTRING_START:
            fstrings.append(start + len(_PREFIX.match(token.string).group(0)))
        elif token.type == _FSTRING_END:
            body = fstrings.pop()
            kinds[body + 1 : end] = [None] * (end - body - 1)
    return kinds


def tokenizer_top_level_commas(source: str) -> list[int]:
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    depth, commas = 0, []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.OP and token.string in "([{" or token.type == _FSTRING_START:
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}" or token.type == _FSTRING_END:
            depth -= 1
        elif token.type == tokenize.OP and token.string == "," and depth == 0:
            commas.append(starts[token.start[0] - 1] + token.start[1])
    return commas


def scanner_kind(text: str) -> str:
    return scan(text).kind


TRICKY = '''\
"""A docstring with 'quotes', a "#", brackets ( [ { and commas, """
import re  # a comment with "quotes" and 'it's' and a ( bracket

x = 'it\\'s', "say \\"hi\\"", r'\\'', rb"\\\\", Rb'a', BR"b", u'c', F"{x!r:>{width}}", fR'{y}'
y = (1,  # a comma in a comment, then a newline in brackets
     2, [3, "]"], {4: '}'})
z = """a
b "" \'\'\' c""" + \'\'\'d
"e" \'\'\' + "\\
continued"
w = f"{d['k']}" f\'{{literal}} {v:%Y-%m-%d}\' f"\\N{BULLET} {n}" rf"\\N{n}"
# a last comment: f"{
'''


SNIPPETS = [TRICKY, *(path.read_text() for path in sorted(FIXTURES.glob("*.py")))]


@pytest.mark.parametrize("snippet", range(len(SNIPPETS)))
def test_every_cut_point_of_real_snippets_agrees_with_tokenize(snippet: int) -> None:
    source = SNIPPETS[snippet]
    for cut, expected in enumerate(tokenizer_kinds(source)):
        if expected is not None:
            assert scanner_kind(source[:cut]) == expected, (cut, source[max(0, cut - 30) : cut])
    assert top_level_commas(source) == tokenizer_top_level_commas(source)


SOURCES = [ROOT / "accs_lsp" / "analysis" / "context.py", ROOT / "accs_lsp" / "types" / "pyright_provider.py"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([path.read_text() for path in SOURCES] + SNIPPETS).flatmap(
    lambda source: st.tuples(st.just(source), st.integers(0, len(source)))
))
def test_random_cut_points_of_project_sources_agree_with_tokenize(case: tuple[str, int]) -> None:
    source, cut = case
    expected = tokenizer_kinds(source)[cut]
    if expected is not None:
        assert scanner_kind(source[:cut]) == expected


# Random lexically valid sources: names, operators, strings of every kind, comments, nested brackets.

_OTHER_QUOTE = {"'": '"', '"': "'"}


@st.composite
def string_literals(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["", "r", "R", "b", "B", "u", "U", "rb", "Rb", "bR", "BR", "f", "F", "rf", "fR", "Rf"]))
    quote = draw(st.sampled_from(["'", '"', "'''", '"""']))
    atoms = ["a", " ", "#", ",", "(", ")", "]", "\\\\", "\\n", "\\'", '\\"', "\\\n", _OTHER_QUOTE[quote[0]]]
    if len(quote) == 3:
        atoms += ["\n", quote[0], quote[0] * 2 + "a"]
    if "f" in prefix.lower():
        atoms += ["{{", "}}", "{x}", "{x!r}", "{x:>10}", "{x:{w}.{p}}", "{a, b}", "{(a, b)}", "{x=}", "\\N{BULLET}",
                  "{d[" + _OTHER_QUOTE[quote[0]] * 2 + "]}"]
    else:
        atoms += ["{", "}"]
    literal = prefix + quote + "".join(draw(st.lists(st.sampled_from(atoms), max_size=8))) + quote
    try:
        ast.parse(literal, mode="eval")
    except SyntaxError:  # e.g. a triple-quoted body ending in its quote character, \N in bytes
        literal = prefix + quote + quote
    return literal


_PIECES = st.one_of(
    st.sampled_from(["x", "r", "rb", "f", "ur", "name_1", "1", "+", "=", ".", ":", ",", ",", "\\\n", "\n"]),
    string_literals(),
    st.text(alphabet="ab'\"#,([{\\ ", max_size=6).map(lambda text: "#" + text + "\n"),
)


def _joined(pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        out += piece if not out or out.endswith("\n") else " " + piece
    return out


_SOURCES = st.recursive(
    _PIECES,
    lambda inner: st.tuples(st.sampled_from(["()", "[]", "{}"]), st.lists(inner, max_size=5)).map(
        lambda group: group[0][0] + _joined(group[1]) + group[0][1]
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_SOURCES, max_size=12).map(_joined))
def test_generated_sources_agree_with_tokenize(source: str) -> None:
    # A continuation line must go on with something: end every source with a newline and a name.
    source += "\nend\n"
    for cut, expected in enumerate(tokenizer_kinds(source)):
        if expected is not None:
            assert scanner_kind(source[:cut]) == expected, (cut, source[:cut])
    assert top_level_commas(source) == tokenizer_top_level_commas(source)
