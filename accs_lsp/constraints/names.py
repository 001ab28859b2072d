"""The name constraint: in an expression, only names that are defined.

It follows the statement as it is decoded, like the member constraint, and refuses a
token that makes a name that is read (a load) and is not visible at the cursor: not in
scope, not imported, not a builtin, not bound earlier in the statement (an assignment
target, a `for` target, a lambda's or a definition's parameter, an `as` name). A partly
written name in a place that can only be a load must continue one that exists.

Where a name is read or bound is not always known when it is written: `a, b = ...`
binds names the statement started with, `f(key=...)` names a keyword, and in
`[x * 2 for x in xs]` the element reads `x` before the `for` binds it. Such a name is
decided by what follows it: the `=` of an assignment or keyword, or, for a name that a
comprehension may bind, the comma that rules the comprehension out or the bracket that
closes it (a comprehension's element itself is not checked: a refusal at its closing
bracket comes too late to help). The rest of a name's place follows Python's grammar
(`NameReader`).

Import statements, `global` and `nonlocal`, and `match`/`case` patterns are not checked
(they bind names, or name modules). Where the names in scope are unknown (a star
import, or no index of the file) the layer is not applied.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from accs_lsp.constraints.following import TextFollowingConstraint
from accs_lsp.constraints.llguidance_bridge import GrammarCache

KEYWORDS = frozenset(keyword.kwlist)
# Keywords that may start an expression (an operand), where a name is read.
_OPERAND_KEYWORDS = ("None", "True", "False", "not", "lambda", "await", "yield")
_SOFT_KEYWORD_STATEMENTS = frozenset({"match", "case", "type"})
_COMPOUND = frozenset({"if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def", "class", "async"})
# Statements whose names are bound or name modules: not checked.
_UNCHECKED_STATEMENTS = frozenset({"import", "from", "global", "nonlocal"})
_AUGMENTED = frozenset({"+=", "-=", "*=", "/=", "//=", "%=", "**=", ">>=", "<<=", "&=", "|=", "^=", "@="})
_PREFIX = r"(?i:rb|br|fr|rf|tr|rt|r|b|u|f|t)"
# A string prefix right before its quote is not a name.
_STRING_PREFIX = _PREFIX + r"[\"']"


@dataclass(frozen=True)
class Token:
    kind: str  # name, number, string, op, open, close, newline
    text: str
    start: int
    end: int


_TOKEN = re.compile(
    r"""
    (?P<comment>\#[^\r\n]*)
  | (?P<string>"""
    + _PREFIX
    + r"""?(?:
        '\'\'(?:\\.|[^\\])*?(?:'\'\'|\Z) | \"\"\"(?:\\.|[^\\])*?(?:\"\"\"|\Z)
      | '(?:\\.|[^\\'\r\n])*(?:'|$) | "(?:\\.|[^\\"\r\n])*(?:"|$) ))
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\.?\d[\w.]*)
  | (?P<continuation>\\\r?\n)
  | (?P<newline>[\r\n;])
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<op>\*\*=|//=|>>=|<<=|\.\.\.|->|:=|[=!<>]=|\*\*|//|<<|>>|[-+*/%&|^@]=|\S)
  | (?P<space>\s)
    """,
    re.VERBOSE | re.MULTILINE,
)


def code_tokens(text: str, start: int = 0, depth: int = 0) -> list[Token]:
    """The tokens of `text` that matter to names: a string literal (an f-string with its fields)
    is one `string` token, comments and spaces are dropped, and a line break inside brackets or
    after a backslash is not a `newline`. Text that ends inside a string ends in that string."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text, start):
        kind = match.lastgroup
        if kind in ("comment", "space", "continuation") or kind == "newline" and depth > 0:
            continue
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        tokens.append(Token(kind, match.group(), match.start(), match.end()))
    return tokens


@dataclass
class _Bracket:
    kind: str  # call, subscript, display, parameters
    commas: int = 0
    has_for: bool = False  # a comprehension: commas after its `for` are in its targets
    parameters: frozenset[str] | None = None  # a call's: the callee's parameter names, where known
    pending: list[Token] = field(default_factory=list)  # read names a comprehension here may bind

    @property
    def may_be_comprehension(self) -> bool:
        return self.kind in ("call", "display") and (self.commas == 0 or self.has_for)

    @property
    def may_bind_later(self) -> bool:
        """Whether a `for` still to come in it may bind a name read now."""
        return self.may_be_comprehension and not self.has_for


def _starts_a_pattern(token: Token | None) -> bool:
    """Whether `token`, after `match`, `case` or `type` at a statement's start, makes it that
    soft keyword's statement (rather than a name: `match = ...`, `type(x)`)."""
    return token is not None and (token.kind in ("name", "number", "string") or token.text in ("[", "{"))


@dataclass
class NameUses:
    """What `NameReader` found: the names read that are not defined (`undefined`), and the
    name the text ends in where only a read can stand there (`reading`; None elsewhere)."""

    undefined: list[Token]
    reading: str | None
    keywords: frozenset[str] = frozenset()  # where `reading` may also be a keyword argument
    bound: frozenset[str] = frozenset()  # names the text itself binds


#: The parameter names of the callable the text ends in (None: unknown).
ParametersOf = Callable[[str], "frozenset[str] | None"]


class NameReader:
    """Reads a statement's tokens and decides, for each name, whether it is read or bound."""

    def __init__(self, defined: Callable[[str], bool], parameters_of: ParametersOf | None = None) -> None:
        self.defined = defined
        self.parameters_of = parameters_of
        self.text = ""  # the text the tokens come from
        self.bound: set[str] = set()
        self.undefined: list[Token] = []
        self.brackets: list[_Bracket] = []
        self.last: Token | None = None  # the last token read, and the one before it
        self.before_last: Token | None = None
        self._start_statement()

    def clone(self) -> "NameReader":
        """A copy that reads on without changing this one."""
        copy = object.__new__(NameReader)
        copy.__dict__.update(self.__dict__)
        copy.bound = set(self.bound)
        copy.undefined = list(self.undefined)
        copy.brackets = [_Bracket(b.kind, b.commas, b.has_for, b.parameters, list(b.pending)) for b in self.brackets]
        copy.targets = list(self.targets)
        copy.for_depths = list(self.for_depths)
        copy.lambda_depths = list(self.lambda_depths)
        return copy

    def _start_statement(self) -> None:
        self.first: Token | None = None  # the statement's first token
        self.previous: Token | None = None
        self.skipping = False  # an import, global, nonlocal or match/case statement
        self.target_list = True  # the statement so far can be assignment targets
        self.targets: list[Token] = []
        self.bind_next = False  # after `as`, `def`, `class`
        self.for_depths: list[int] = []  # where a `for`'s targets are being written
        self.lambda_depths: list[int] = []
        self.compound = False
        self.awaiting: Token | None = None  # a read name decided by the next token (`:=`, keyword `=`)
        self.parameters_next = False  # the next "(" opens a definition's parameters

    def feed(self, tokens: Sequence[Token], lookahead: Token | None = None) -> None:
        """Read `tokens` (`lookahead`: the token after them, when known)."""
        for position, token in enumerate(tokens):
            self._token(token, tokens[position + 1] if position + 1 < len(tokens) else lookahead)
            self.before_last, self.last = self.last, token

    def uses(self, final: bool) -> NameUses:
        """What the tokens read so far use; `final`: the text ends there (the names still
        undecided are read)."""
        if not final:
            reading, keywords = self._reading()
            return NameUses(list(self.undefined), reading, keywords, frozenset(self.bound))
        finished = self.clone()
        finished._finish()
        return NameUses(finished.undefined, None)

    # -- one token ------------------------------------------------------------------------------

    def _token(self, token: Token, following: Token | None) -> None:
        if self.awaiting is not None:
            self._decide_awaiting(token)
        if token.kind == "newline":
            self._end_targets(as_targets=False)
            self._start_statement()
            return
        if self.first is None:
            self.first = token
            if token.kind == "name" and (
                token.text in _UNCHECKED_STATEMENTS
                or token.text in _SOFT_KEYWORD_STATEMENTS and _starts_a_pattern(following)
            ):
                self.skipping = True
        if self.skipping:
            if token.kind == "name" and self.first.text in _UNCHECKED_STATEMENTS:
                self.bound.add(token.text)
        elif token.kind == "name" and token.text in KEYWORDS:
            self._keyword(token)
        elif token.kind == "name":
            self._name(token)
        else:
            self._punctuation(token)
        self.previous = token

    def _keyword(self, token: Token) -> None:
        word, depth = token.text, len(self.brackets)
        if word not in ("None", "True", "False"):
            self._end_targets(as_targets=False)
        if self.previous is None and word in _COMPOUND:
            self.compound = True
        if word in ("def", "class", "as"):
            self.bind_next = True
            self.parameters_next = word == "def"
        elif word == "for":
            self.for_depths.append(depth)
            if self.brackets:
                self.brackets[-1].has_for = True
        elif word == "in" and self.for_depths and self.for_depths[-1] == depth:
            self.for_depths.pop()
        elif word == "lambda":
            self.lambda_depths.append(depth)

    def _name(self, token: Token) -> None:
        depth = len(self.brackets)
        previous = self.previous.text if self.previous is not None else None
        if previous == "." and self.previous.kind == "op":
            return  # a member: the member constraint's
        if self.bind_next:
            self.bind_next = False
            self.bound.add(token.text)
            return
        if self.for_depths and self.for_depths[-1] <= depth:
            self.bound.add(token.text)
            return
        if self.lambda_depths and self.lambda_depths[-1] == depth and previous in ("lambda", ",", "*", "**"):
            self.bound.add(token.text)
            return
        top = self.brackets[-1] if self.brackets else None
        if top is not None and top.kind == "parameters" and previous in ("(", ",", "*", "**", "/"):
            self.bound.add(token.text)
            return
        if self._after_operand():
            return  # where only a keyword can stand: the grammar's to refuse
        if depth == 0 and self.target_list:
            self.targets.append(token)
            return
        self.awaiting = token

    def _punctuation(self, token: Token) -> None:
        depth = len(self.brackets)
        if token.kind == "open":
            self._open(token)
            return
        if token.kind == "close":
            self._close()
            return
        if depth == 0 and self.target_list:
            if token.text in ("=", ":") or token.text in _AUGMENTED:
                self._end_targets(as_targets=token.text in ("=", ":"))
            elif token.text == "." and self.targets and self.previous is self.targets[-1]:
                self._check(self.targets.pop())  # `x.attr = ...` reads x
            elif token.text not in (",", "*"):
                self._end_targets(as_targets=False)
        if token.text == "," and self.brackets and not self.brackets[-1].has_for:
            bracket = self.brackets[-1]
            bracket.commas += 1
            if bracket.commas == 1:
                self._settle(bracket)
        if token.text == ":" and self.lambda_depths and self.lambda_depths[-1] == depth:
            self.lambda_depths.pop()
        elif token.text == ":" and depth == 0 and self.compound:
            self._start_statement()  # the block's first statement follows on the same line

    def _open(self, token: Token) -> None:
        if self.targets and self.previous is self.targets[-1]:
            self._check(self.targets.pop())  # `f(...)`, `x[...]` read the name
        if len(self.brackets) == 0 and self.target_list and self.previous is not None and token.text == "(":
            self._end_targets(as_targets=False)
        if self.parameters_next and token.text == "(":
            self.parameters_next = False
            kind = "parameters"
        elif self._after_operand():
            kind = "call" if token.text == "(" else "subscript" if token.text == "[" else "display"
        else:
            kind = "display"
        parameters = None
        if kind == "call" and self.parameters_of is not None:
            parameters = self.parameters_of(self.text[: token.start])
        self.brackets.append(_Bracket(kind, parameters=parameters))

    def _close(self) -> None:
        if not self.brackets:
            return
        bracket = self.brackets.pop()
        self._settle(bracket)

    def _after_operand(self) -> bool:
        previous = self.previous
        if previous is None:
            return False
        if previous.kind == "name":
            return previous.text not in KEYWORDS or previous.text in ("None", "True", "False")
        return previous.kind in ("number", "string", "close")

    # -- decisions ------------------------------------------------------------------------------

    def _decide_awaiting(self, token: Token) -> None:
        name, self.awaiting = self.awaiting, None
        assert name is not None
        if token.text == ":=":
            self.bound.add(name.text)
            return
        top = self.brackets[-1] if self.brackets else None
        if token.text == "=" and top is not None and top.kind in ("call", "display"):
            if top.parameters is not None and name.text not in top.parameters:
                self.undefined.append(name)  # a keyword the callee does not take
            return  # a keyword argument names a parameter, not a variable
        self._read_name(name)

    def _read_name(self, name: Token) -> None:
        """A name that is read: checked now, or where a comprehension may bind it, when that is
        ruled out or its bracket closes. A comprehension past its `for` binds nothing more
        (its iterable is read outside it), but one around it still may."""
        binding = self._binding_bracket()
        if binding is not None:
            binding.pending.append(name)
        else:
            self._check(name)

    def _binding_bracket(self, besides: _Bracket | None = None) -> _Bracket | None:
        """The innermost open bracket (other than `besides`) whose comprehension may still bind
        a name read now."""
        return next((b for b in reversed(self.brackets) if b is not besides and b.may_bind_later), None)

    def _settle(self, bracket: _Bracket) -> None:
        """`bracket` is closed or has a comma: no comprehension of it binds its pending names.
        A comprehension's element is let be: refusing its closing bracket comes too late for the
        model to write something else (it went on inside the bracket until its tokens ran out),
        and its `for` may bind the name in a form this reader does not follow."""
        pending, bracket.pending = bracket.pending, []
        if bracket.has_for:
            return
        for name in pending:
            if name.text in self.bound:
                continue
            outer = self._binding_bracket(besides=bracket)
            if outer is not None:
                outer.pending.append(name)
            else:
                self._check(name)

    def _end_targets(self, as_targets: bool) -> None:
        if not self.target_list:
            return
        self.target_list = False
        targets, self.targets = self.targets, []
        for target in targets:
            if as_targets:
                self.bound.add(target.text)
            else:
                self._check(target)

    def _check(self, name: Token) -> None:
        if name.text not in self.bound and not self.defined(name.text):
            self.undefined.append(name)

    def _finish(self) -> None:
        """At the end of a completion: the names still undecided are read (the targets of a
        statement with no `=` in it are left alone: the text after the cursor may hold it)."""
        if self.awaiting is not None:
            name, self.awaiting = self.awaiting, None
            self._check(name)
        for bracket in self.brackets:
            for name in bracket.pending:
                self._check(name)
            bracket.pending = []

    def _reading(self) -> tuple[str | None, frozenset[str]]:
        """The name the text ends in, when that name can only be read, and the callee's keywords
        it may also be."""
        last, before = self.last, self.before_last
        if last is None or last is not self.awaiting:
            return None, frozenset()
        if any(bracket.may_be_comprehension for bracket in self.brackets):
            return None, frozenset()  # a comprehension may bind it
        top = self.brackets[-1] if self.brackets else None
        if top is not None and top.kind == "call" and before is not None and before.text in ("(", ","):
            if top.parameters is None:
                return None, frozenset()  # may be a keyword argument of any name
            return last.text, top.parameters
        return last.text, frozenset()


@dataclass(frozen=True)
class _Snapshot:
    """A reader that has read a text's tokens but the last (which the next piece may extend),
    and where that last token starts."""

    reader: NameReader
    resume: int

    def read_on(self, text: str) -> tuple[NameReader, list[Token]]:
        """A reader that has read `text`, which starts with the snapshot's text, but its last
        token; and that last token (empty when there is none)."""
        reader = self.reader.clone()
        reader.text = text
        tokens = code_tokens(text, self.resume, len(reader.brackets))
        reader.feed(tokens[:-1], tokens[-1] if tokens else None)
        return reader, tokens[-1:]

    def uses(self, text: str, final: bool = False) -> NameUses:
        reader, last = self.read_on(text)
        reader.feed(last)
        return reader.uses(final)

    def after(self, text: str) -> "_Snapshot":
        reader, last = self.read_on(text)
        return _Snapshot(reader, last[0].start if last else len(text))


def name_uses(
    text: str, decoded_from: int, defined: Callable[[str], bool], final: bool = False, parameters_of: ParametersOf | None = None
) -> NameUses:
    """The names `text` reads that are not defined (and the keywords its calls' callees do not
    take), among those that end after `decoded_from`."""
    uses = _Snapshot(NameReader(defined, parameters_of), 0).uses(text, final)
    uses.undefined = [name for name in uses.undefined if name.end > decoded_from]
    return uses


# Appended to the text to ask whether a name may start there that can only be read.
_PROBE = " Ʃprobe"


class NameConstraint(TextFollowingConstraint):
    """Implements decoding.TokenConstraint for the names an expression reads (see the module
    docstring). `text`: the statement's text before the first decoded token; `visible`: the
    names defined at the cursor (builtins included)."""

    def __init__(
        self,
        grammars: GrammarCache,
        token_text: Callable[[int], str],
        text: str,
        visible: frozenset[str],
        parameters_of: ParametersOf | None = None,
    ) -> None:
        super().__init__(grammars, token_text, text)
        self.decoded_from = len(text)
        self.visible = visible
        self._snapshots = [_Snapshot(NameReader(self.defined, parameters_of), 0).after(text)]
        # Undefined names a full mask let through (it does not see every case): not refused again.
        self._let_through: set[int] = set()

    def defined(self, name: str) -> bool:
        return name in self.visible

    def accept(self, tokens: Sequence[int]) -> None:
        super().accept(tokens)
        self._let_through.update(name.start for name in self._uses(self.text).undefined)

    def rollback(self, count: int) -> None:
        super().rollback(count)
        del self._snapshots[len(self._snapshots) - count :]

    def is_complete(self) -> bool:
        """Every name read so far is defined, the last one and those a comprehension might have
        bound included."""
        return not self._new_undefined(self._uses(self.text, final=True))

    # -- the check --------------------------------------------------------------------------

    def _append(self, piece: str) -> None:
        super()._append(piece)
        self._snapshots.append(self._snapshots[-1].after(self.text))

    def _uses(self, text: str, final: bool = False) -> NameUses:
        """The uses in `text`, which starts with the text the last snapshot was taken of."""
        return self._snapshots[-1].uses(text, final)

    def _new_undefined(self, uses: NameUses) -> list[Token]:
        return [name for name in uses.undefined if name.end > self.decoded_from and name.start not in self._let_through]

    def allows(self, piece: str) -> bool:
        uses = self._uses(self.text + piece)
        if self._new_undefined(uses):
            return False
        return uses.reading is None or any(name.startswith(uses.reading) for name in self._readable(uses))

    def _readable(self, uses: NameUses) -> tuple[str, ...]:
        """What a name that can only be read may be: defined, bound by the text itself, a
        keyword, or one of the callee's keywords."""
        return (*self.visible, *uses.bound, *KEYWORDS, *uses.keywords)

    def continuation_regex(self) -> str | None:
        """What may follow the text where it ends in (or right before) a name that can only be
        read: the rest of a defined name or keyword, then anything. None elsewhere."""
        uses = self._uses(self.text)
        rest = r"([^A-Za-z0-9_](.|\n)*)?"
        if uses.reading:
            written = uses.reading
            endings = sorted({re.escape(n[len(written) :]) for n in self._readable(uses) if n.startswith(written)})
            return f"({'|'.join(endings)}){rest}" if endings else None
        if self._uses(self.text + _PROBE).reading != _PROBE.strip():
            return None
        names = "|".join(sorted(re.escape(n) for n in {*self.visible, *uses.bound, *_OPERAND_KEYWORDS}))
        return rf"[ \t]*(({_STRING_PREFIX}|[^A-Za-z_ \t])(.|\n)*|({names}){rest})?"


__all__ = ["NameConstraint", "name_uses", "code_tokens", "KEYWORDS"]
