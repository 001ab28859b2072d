"""Python syntax grammar for llguidance, instantiated per completion request.

The grammar lives in ``accs_lsp/grammars/python/*.lark`` (llguidance's Lark dialect) as
templates; this module stitches them together for one request.

Design
------
* **No ``%ignore``.**  Every lexeme carries the whitespace that may *follow* it:
  ``WS`` (blanks and backslash continuations) on a logical line, ``WS_B``
  (also newlines and comments) inside brackets.  Hence no lexeme starts with a
  blank, and indentation can be exact.  Rules that can occur both on a line and
  inside brackets are instantiated twice: ``expr`` and ``expr_b`` (terminals
  ``NAME`` and ``NAME_B``...).
* **Indentation is explicit.**  Statements are separated by generated lexemes
  ``NL_k`` = end of line (optional comment), any blank or comment-only lines,
  then exactly ``indent + indent_unit * k``.  Block rules ``block_k`` are
  unrolled from the cursor's level (k = 0) to ``max_depth`` levels deeper; at
  the deepest level a compound statement's body must stay on its header's line.
  No lexeme can produce a line indented less than ``indent``, or a line whose
  indentation is not one of the unrolled levels.
* **How a completion ends.**

  - ``mode="line"``: the rest of one logical line: simple statements
    (``a = 1; b = 2``), a compound-statement header with an optional inline
    body (``if x:``, ``if x: return y``) or a decorator.  Brackets may span
    physical lines.  The matcher accepts (EOS allowed) as soon as the line is
    complete; if the model writes the newline (``EOL``, optionally preceded by
    a comment) the grammar is finished and the matcher stops by itself.
  - ``mode="block"``: statements at the cursor's indentation, compound bodies
    indented one unit more.  The matcher accepts after every complete
    statement (EOS allowed there).  A trailing ``END`` lexeme (newline, blank
    lines, trailing blanks, a final comment) is allowed too, so after the model
    wrote ``"\\n"`` and would dedent below the cursor, EOS is still allowed:
    the decoding loop stops when the model samples EOS, or (recommended) when
    the matcher is accepting and the model's preferred token is masked out.
    Strip trailing whitespace from the result.

* **Mid-statement use.**  Both modes start at the beginning of a statement
  (without its indentation, which is already in the buffer); feed the
  statement's text before the cursor to the matcher before decoding.
* **Expression hole.**  :func:`expression_grammar` returns a grammar whose
  start symbol derives the rule ``hole`` (by default ``expr`` or ``expr_b``).
  A typed-expression layer passes its own ``hole`` body plus extra rules; it can
  reuse every rule and terminal of this grammar (``expr``, ``primary``,
  ``atom``, ``NAME``, ``NUMBER``, ``STRING``, ``DOT``, ``LPAR``, ``RPAR``...).

Known approximations are listed in the test module's docstring and in the
report that came with this module; the important ones: word operators that
follow an operand need a separator (``x in(y)`` is rejected, ``x in (y)`` is
fine), identifiers accept any non-ASCII character, f-string replacement fields
follow Python 3.12 (quotes of the enclosing kind are allowed inside).
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

__all__ = [
    "GRAMMAR_DIR_ENV_VAR",
    "GrammarFilesMissing",
    "grammar_directory",
    "python_grammar",
    "expression_grammar",
    "infer_indent_unit",
    "TEMPLATE_NAMES",
]

#: Names a directory that replaces the packaged grammars (it contains ``python/``).
GRAMMAR_DIR_ENV_VAR = "ACCS_GRAMMAR_DIR"

#: The template files, in the order they are concatenated.
TEMPLATE_NAMES = (
    "terminals.lark",
    "terminals_flavour.lark",
    "expressions.lark",
    "params.lark",
    "inner.lark",
    "statements.lark",
    "blocks.lark",
)


# (rule suffix, terminal suffix) per whitespace flavour
_FLAVOURS = {"line": ("", ""), "bracket": ("_b", "_B")}
# params.lark kinds: kind -> (rule suffix for "$", flavour for "@")
_PARAM_KINDS = {"_lam": "line", "_lam_b": "bracket", "_def": "bracket"}

_COMMENT = r"#[^\r\n]*"
_EOLC = rf"({_COMMENT})?\r?\n"
_BLANKS = rf"([ \t\f]*({_COMMENT})?\r?\n)*"
#: end of a line in line mode: a comment and/or the newline
EOL_REGEX = rf"{_COMMENT}(\r?\n)?|\r?\n"
#: trailing text allowed at the end of a block-mode completion
END_REGEX = rf"{_COMMENT}|{_EOLC}{_BLANKS}[ \t\f]*({_COMMENT})?"


class GrammarFilesMissing(OSError):
    """A template cannot be read: a broken install, or a wrong ``ACCS_GRAMMAR_DIR``."""


def grammar_directory() -> Traversable:
    """The templates' directory: ``$ACCS_GRAMMAR_DIR/python``, else the package's own data
    (read through importlib.resources, so wheels and zipped installs find it too)."""
    override = os.environ.get(GRAMMAR_DIR_ENV_VAR)
    if override:
        return Path(override).expanduser() / "python"
    return resources.files("accs_lsp") / "grammars" / "python"


def _template(name: str) -> str:
    return _read_template(str(grammar_directory()), name)


@functools.lru_cache(maxsize=None)
def _read_template(directory: str, name: str) -> str:
    """Cached per directory, so that a changed ``ACCS_GRAMMAR_DIR`` is read afresh."""
    try:
        return (grammar_directory() / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        hint = f" (set by {GRAMMAR_DIR_ENV_VAR})" if os.environ.get(GRAMMAR_DIR_ENV_VAR) else " (reinstall accs-lsp)"
        raise GrammarFilesMissing(f"cannot read the grammar template {name} in {directory}{hint}: {error}") from None


LineShape = Literal["any", "header", "statement"]
_LINE_SHAPES: dict[str, str] = {
    "any": "simple_stmts | compound_header simple_stmts? | decorator",
    "header": "compound_header",
    "statement": "simple_stmts | compound_header simple_stmts | decorator",
}

_AT = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)@")
_DOLLAR = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\$")


# Whitespace slots of the terminal templates per flavour.  BLEAD@ / BTRAIL@
# are the bracket flavour's slots, used by lexemes that always sit inside
# brackets (closers lead with them, f-string field punctuation).  Whitespace
# trails lexemes in both flavours; a leading-whitespace bracket flavour (which
# would let llguidance's slicer skip identifier slices after "(" or ",") was
# measured slower overall on SmolLM2's vocabulary and dropped.
_WS_SLOTS = {
    "line": {"LEAD@": "", "TRAIL@": "WS", "TRAIL1@": "WS1"},
    "bracket": {"LEAD@": "", "TRAIL@": "WS_B", "TRAIL1@": "WS1_B"},
}
_WS_SLOT = re.compile(r"\b(LEAD|TRAIL1|TRAIL|BLEAD|BTRAIL)@")


def _slots(text: str, flavour: str) -> str:
    slots = dict(_WS_SLOTS[flavour])
    slots["BLEAD@"] = _WS_SLOTS["bracket"]["LEAD@"]
    slots["BTRAIL@"] = _WS_SLOTS["bracket"]["TRAIL@"]
    return _WS_SLOT.sub(lambda m: slots[m[0]], text)


def _flavour(text: str, flavour: str) -> str:
    rule_sfx, term_sfx = _FLAVOURS[flavour]
    text = _slots(text, flavour)
    return _AT.sub(lambda m: m[1] + (term_sfx if m[1].isupper() else rule_sfx), text)


def _strip_comments(text: str) -> str:
    # Lark comments start with "//" at a line start or after blanks; regexes in
    # the templates never contain " //", so this is safe and keeps the
    # generated grammar small.
    out = []
    for line in text.splitlines():
        i = line.find("//")
        while i > 0 and not line[i - 1].isspace():
            i = line.find("//", i + 2)
        if i >= 0:
            line = line[:i]
        line = line.rstrip()
        if line:
            out.append(line)
    return "\n".join(out) + "\n"


# Whitespace inside brackets for a completion that must end on the cursor's line: a newline
# or a comment there could only end the completion with the brackets still open.
_SINGLE_LINE_BRACKET_WS = (
    r"WS_B: /([ \t\f]|\\\r?\n)*/",
    r"WS1_B: /([ \t\f]|\\\r?\n)+/",
)


@functools.lru_cache(maxsize=None)
def _common(bracket_newlines: bool = True) -> str:
    """Everything but the block rules and the start rule."""
    terminals = _template("terminals.lark")
    if not bracket_newlines:
        for definition in _SINGLE_LINE_BRACKET_WS:
            name = definition.split(":")[0]
            terminals, count = re.subn(rf"^{name}: .*$", lambda _: definition, terminals, flags=re.M)
            if count != 1:
                raise GrammarFilesMissing(f"terminals.lark does not define {name} once")
    parts = [_slots(terminals, "bracket")]
    for fl in ("line", "bracket"):
        parts.append(_flavour(_template("terminals_flavour.lark"), fl))
        parts.append(_flavour(_template("expressions.lark"), fl))
    for kind, fl in _PARAM_KINDS.items():
        parts.append(_flavour(_DOLLAR.sub(lambda m: m[1] + kind, _template("params.lark")), fl))
    parts.append(_template("inner.lark"))
    parts.append(_template("statements.lark"))
    return "".join(_strip_comments(p) for p in parts)


def _regex_literal(s: str) -> str:
    """``s`` (blanks only) as text inside a Lark ``/.../`` regex."""
    return s.replace(" ", r"\x20").replace("\t", r"\t").replace("\f", r"\f")


def _check_indent(name: str, s: str) -> None:
    if any(c not in " \t\f" for c in s):
        raise ValueError(f"{name} must contain only spaces and tabs: {s!r}")


def _blocks(indent: str, indent_unit: str, max_depth: int) -> str:
    out = []
    for k in range(max_depth + 1):
        for line in _template("blocks.lark").splitlines():
            if "// deeper-only" in line and k == max_depth:
                continue
            line = _strip_comments(line).strip()
            if line:
                indent_alt = line.startswith("|")
                line = line.replace("__K1", f"_{k + 1}").replace("__K", f"_{k}")
                out.append(("    " if indent_alt else "") + line)
        ind = _regex_literal(indent + indent_unit * k)
        out.append(f"NL_{k}: /{_EOLC}{_BLANKS}{ind}/")
    return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=256)
def python_grammar(
    indent: str = "",
    mode: Literal["line", "block"] = "block",
    max_depth: int = 4,
    indent_unit: str = "    ",
    extra: str = "",
    lead: str = "",
    bracket_newlines: bool = True,
    line_shape: LineShape = "any",
) -> str:
    """Lark text of the Python grammar for one completion.

    indent: the cursor line's indentation (already in the buffer).
    mode: ``"line"``: the rest of one logical line; ``"block"``: a sequence of
        statements at ``indent``; see the module docstring for how each ends.
    max_depth: how many levels deeper than ``indent`` bodies may be indented
        (block mode).  Compound statements at the deepest level must keep their
        body on the header's line.
    indent_unit: one indentation step of the file (``"    "``, ``"\\t"``...).
    extra: Lark text appended verbatim (more rules for other layers).
    lead: exact text the completion must begin with before the construct (token
        healing took back text from before the statement, like ``"\\n    "``).
    bracket_newlines: whether newlines and comments may appear inside brackets. A line
        completion passes False unless the statement already spans lines: it ends at the
        line's end, so a newline inside brackets would leave them open.
    line_shape: what the line must be (line mode): ``"header"`` a compound statement's
        header alone (its indented body follows in the buffer), ``"statement"`` anything
        but a header without a body, ``"any"`` either.
    """
    _check_indent("indent", indent)
    _check_indent("indent_unit", indent_unit)
    if not indent_unit:
        raise ValueError("indent_unit must not be empty")
    if max_depth < 0:
        raise ValueError("max_depth must be >= 0")
    if line_shape not in _LINE_SHAPES:
        raise ValueError(f"unknown line shape {line_shape!r}")
    if mode == "line":
        head = f"start: line EOL?\nline: {_LINE_SHAPES[line_shape]}\nEOL: /{EOL_REGEX}/\n"
        body = ""
    elif mode == "block":
        head = f"start: NL_0? block_0 END?\nEND: /{END_REGEX}/\n"
        body = _blocks(indent, indent_unit, max_depth)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    if lead:
        head = head.replace("start: ", "start: LEAD ", 1) + f"LEAD: /{_exact_regex(lead)}/\n"
    return head + _common(bracket_newlines) + body + extra


def _exact_regex(text: str) -> str:
    """A Rust regex matching exactly `text`."""
    return "".join(f"\\x{{{ord(c):x}}}" for c in text)


@functools.lru_cache(maxsize=256)
def expression_grammar(
    hole: str | None = None,
    extra: str = "",
    context: Literal["line", "bracket"] = "line",
    end: Literal["eol", "none"] = "eol",
    bracket_newlines: bool = True,
) -> str:
    """Lark text whose start symbol is one expression (the *hole*).

    hole: body of the rule ``hole``; default ``expr`` (``expr_b`` when
        ``context="bracket"``).  A typed layer passes e.g. ``"int_expr"`` and
        defines ``int_expr`` in ``extra``, reusing this grammar's rules and
        terminals.  Names ``start``, ``hole`` and ``EOL`` are taken; all other
        rules of this grammar are available (``expr``, ``primary``, ``atom``,
        ``args_b``...; terminals ``NAME``, ``NUMBER``, ``STRING``...).
    context: ``"line"``: the expression is on a logical line (newlines only
        inside brackets); ``"bracket"``: inside brackets (newlines anywhere).
    end: ``"eol"``: the end of the line (comment, newline) may follow, as in
        line mode; ``"none"``: the completion is the expression only.
    bracket_newlines: as in ``python_grammar``.
    """
    if hole is None:
        hole = "expr" if context == "line" else "expr_b"
    if context not in _FLAVOURS:
        raise ValueError(f"unknown context {context!r}")
    if end == "eol":
        head = f"start: hole EOL?\nEOL: /{EOL_REGEX}/\n"
    elif end == "none":
        head = "start: hole\n"
    else:
        raise ValueError(f"unknown end {end!r}")
    return head + f"hole: {hole}\n" + _common(bracket_newlines) + extra


@functools.lru_cache(maxsize=8)  # asked once per request; the buffer rarely changes between two
def infer_indent_unit(source: str, default: str = "    ") -> str:
    """The indentation step used by ``source``: ``"\\t"`` if blocks are
    indented with tabs, else the most common increase of indentation between a
    block and the block it opens.  Continuation lines inside brackets are not
    counted; a buffer with a syntax error is read up to the error."""
    import io
    import tokenize

    steps: dict[str, int] = {}
    stack = [""]
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.INDENT:
                ind = tok.string
                if "\t" in ind:
                    return "\t"
                outer = stack[-1]
                if ind.startswith(outer) and len(ind) > len(outer):
                    step = ind[len(outer):]
                    steps[step] = steps.get(step, 0) + 1
                stack.append(ind)
            elif tok.type == tokenize.DEDENT and len(stack) > 1:
                stack.pop()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    if not steps:
        return default
    return max(steps.items(), key=lambda kv: (kv[1], -len(kv[0])))[0]
