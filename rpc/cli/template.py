"""Go's text/template, as podman evaluates ``--format``: parsed and run on the reply dicts.

Imported only when a template is given (the default tables never need it). What
is here is what podman's templates offer: field paths (``.State.Status``,
``.Config.Labels``), variables, pipelines, ``if``/``else if``/``else``,
``range`` (with ``break``/``continue``), ``with``, parenthesised pipelines, Go's
builtins (``and or not len index slice print printf println eq ne lt le gt ge
html js urlquery call``) and podman's (``json join split lower upper title
truncate pad``). ``define``, ``template`` and ``block`` are refused by name; so
is anything else this engine does not know: a template is either evaluated as
Go would or refused with an error, never approximated.

Values are Go-shaped: a plain dict is a Go *struct* (an unknown field is an
error, as in podman), a ``GoMap`` is a Go map (a missing key prints
``<no value>``, printing is ``map[k:v]`` with sorted keys, as is JSON), a
``View`` is a struct with computed fields beside its JSON ones (podman's
``psReporter`` methods: ``.ID`` truncated, ``.Names`` the first name), and
``GoTime`` prints as Go prints a time.Time but is RFC 3339 in JSON.
"""

from __future__ import annotations

import time

from .common import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(CLIError):
    """A template that cannot be parsed or run; the message is Go's shape of it."""


# -- values ----------------------------------------------------------------------------------


class GoMap(dict):
    """A Go map (labels, annotations): missing keys are ``<no value>``, keys print sorted."""

    __slots__ = ()


class View(dict):
    """A Go struct with methods: ``fields`` (computed, or callables taking arguments) come
    before the dict's own keys; JSON is the dict's alone."""

    __slots__ = ("fields", "type_name")

    def __init__(self, data: dict, fields: dict[str, Any] | None = None,
                 type_name: str = "struct") -> None:
        super().__init__(data)
        self.fields = fields or {}
        self.type_name = type_name


class GoTime:
    """A time.Time: ``2006-01-02 15:04:05.999999999 -0700 MST`` when printed, RFC 3339 in JSON."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __str__(self) -> str:
        from .common import go_time_text

        return go_time_text(self.ns)

    def json(self) -> str:
        if not self.ns:
            return "0001-01-01T00:00:00Z"
        secs, frac = divmod(self.ns, 10**9)
        nanos = f".{frac:09d}".rstrip("0").rstrip(".")
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + nanos + "Z"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(self.ns)


class _Missing:
    """A map key that is not there (Go's invalid reflect.Value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def go_time(text: str) -> GoTime:
    """An RFC 3339 text (``2024-01-02T03:04:05.123456789Z``) as a GoTime."""
    from .common import parse_time

    return GoTime(parse_time(text) or 0)


# -- printing, as fmt's %v ----------------------------------------------------------------------


def kind(v: Any) -> str:
    """A Go-ish name of the value's type, for error messages."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, GoTime):
        return "time.Time"
    if isinstance(v, GoMap):
        return "map[string]string"
    if isinstance(v, View):
        return v.type_name
    if isinstance(v, dict):
        return "struct"
    if isinstance(v, (list, tuple)):
        return "[]" + (kind(v[0]) if v else "interface {}")
    if callable(v):
        return "func"
    return type(v).__name__


def go_float(f: float, eprec: int = 6) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64): the shortest digits, %e below 1e-4 or from 1e+eprec."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    r = repr(f)
    neg = r.startswith("-")
    mant, _, exp = r.lstrip("-").partition("e")
    whole, _, frac = mant.partition(".")
    digits = whole + frac
    dp = len(whole) + int(exp or 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "-0" if neg else "0"
    x = dp - 1
    if x < -4 or x >= eprec:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        text = f"{body}e{'-' if x < 0 else '+'}{abs(x):02d}"
    elif dp <= 0:
        text = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        text = digits + "0" * (dp - len(digits))
    else:
        text = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + text


def fmt_v(v: Any) -> str:
    """fmt.Sprint of one value, as Go prints what a template evaluates to."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if v is MISSING:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, GoTime):
        return str(v)
    if isinstance(v, GoMap):
        return "map[" + " ".join(f"{fmt_v(k)}:{fmt_v(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, dict):
        return "{" + " ".join(fmt_v(x) for x in v.values()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(fmt_v(x) for x in v) + "]"
    return str(v)


def _plain(v: Any) -> Any:
    """The value as JSON sees it: maps sorted by key, times as text, views as their dicts."""
    if isinstance(v, GoMap):
        return {k: _plain(v[k]) for k in sorted(v)}
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, GoTime):
        return v.json()
    if v is MISSING:
        return None
    return v


def to_json(v: Any) -> str:
    """json.Marshal with SetEscapeHTML(false): compact, UTF-8, maps sorted."""
    import json

    text = json.dumps(_plain(v), separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def truth(v: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false; structs are true."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, View) or (isinstance(v, dict) and not isinstance(v, GoMap)):
        return True
    if isinstance(v, GoTime):
        return True
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


# -- the lexer ---------------------------------------------------------------------------------

# token kinds
TEXT, LEFT, RIGHT, FIELD, VAR, IDENT, STRING, NUMBER, CHAR, PIPE, LPAREN, RPAREN, DECLARE, \
    ASSIGN, COMMA, DOT, BOOL, NIL, COMMENT, EOF = range(20)
KEYWORDS = frozenset(("if", "else", "end", "range", "with", "define", "template", "block",
                      "break", "continue"))
_SPACE = " \t\r\n"


class _Token:
    __slots__ = ("kind", "pos", "value")

    def __init__(self, kind: int, value: str, pos: int) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos

    def __repr__(self) -> str:
        return f"<{self.kind} {self.value!r} @{self.pos}>"


class _Lexer:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.tokens: list[_Token] = []

    def error(self, pos: int, message: str) -> TemplateError:
        line = self.text.count("\n", 0, pos) + 1
        return TemplateError(f"template: {self.name}:{line}: {message}")

    def run(self) -> list[_Token]:
        text, i, n = self.text, 0, len(self.text)
        trim_next = False
        while i < n:
            j = text.find("{{", i)
            end = n if j < 0 else j
            chunk = text[i:end]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
                trim_next = False
            trim_left = j >= 0 and text[j + 2 : j + 3] == "-" and text[j + 3 : j + 4] in tuple(_SPACE)
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.tokens.append(_Token(TEXT, chunk, i))
            if j < 0:
                break
            i = j + (4 if trim_left else 2)
            i, trim_next = self._action(i, j)
        self.tokens.append(_Token(EOF, "", n))
        return self.tokens

    def _action(self, i: int, start: int) -> tuple[int, bool]:
        """The tokens of one ``{{ ... }}`` from i; the index after it and its right trim."""
        text, n = self.text, len(self.text)
        while i < n and text[i] in _SPACE:
            i += 1
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                raise self.error(start, "unclosed comment")
            i = close + 2
            trim = text.startswith(" -}}", i) or text.startswith("\t-}}", i) \
                or text.startswith("\n-}}", i) or text.startswith("\r-}}", i)
            if trim:
                return i + 4, True
            if not text.startswith("}}", i):
                raise self.error(start, "comment ends before closing delimiter")
            return i + 2, False
        self.tokens.append(_Token(LEFT, "{{", start))
        depth = 0
        while True:
            while i < n and text[i] in _SPACE:
                if text[i + 1 : i + 4] == "-}}":  # " -}}": a right delimiter that trims
                    self.tokens.append(_Token(RIGHT, "}}", i))
                    return i + 4, True
                i += 1
            if i >= n:
                raise self.error(start, "unclosed action")
            if text.startswith("}}", i):
                if depth:
                    raise self.error(i, "unclosed left paren")
                self.tokens.append(_Token(RIGHT, "}}", i))
                return i + 2, False
            c = text[i]
            if c == "|":
                self.tokens.append(_Token(PIPE, c, i))
                i += 1
            elif c == "(":
                depth += 1
                self.tokens.append(_Token(LPAREN, c, i))
                i += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise self.error(i, "unexpected right paren")
                self.tokens.append(_Token(RPAREN, c, i))
                i += 1
            elif c == ",":
                self.tokens.append(_Token(COMMA, c, i))
                i += 1
            elif text.startswith(":=", i):
                self.tokens.append(_Token(DECLARE, ":=", i))
                i += 2
            elif c == "=":
                self.tokens.append(_Token(ASSIGN, c, i))
                i += 1
            elif c == '"':
                i = self._quoted(i)
            elif c == "`":
                close = text.find("`", i + 1)
                if close < 0:
                    raise self.error(i, "unterminated raw quoted string")
                self.tokens.append(_Token(STRING, text[i + 1 : close], i))
                i = close + 1
            elif c == "'":
                i = self._char(i)
            elif c == "$":
                j = self._word_end(i + 1)
                self.tokens.append(_Token(VAR, text[i:j], i))
                i = j
            elif c == ".":
                if i + 1 < n and text[i + 1].isdigit():
                    i = self._number(i)
                    continue
                j = self._field_end(i)
                if j == i + 1:
                    self.tokens.append(_Token(DOT, ".", i))
                else:
                    self.tokens.append(_Token(FIELD, text[i:j], i))
                i = j
            elif c.isdigit() or (c in "+-" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
                i = self._number(i)
            elif c.isalpha() or c == "_":
                j = self._word_end(i)
                word = text[i:j]
                kind = BOOL if word in ("true", "false") else NIL if word == "nil" else IDENT
                self.tokens.append(_Token(kind, word, i))
                i = j
            else:
                raise self.error(i, f"bad character U+{ord(c):04X} {c!r}")

    def _field_end(self, i: int) -> int:
        """The end of a field chain ``.A.B.C`` from the dot at i (i + 1 for a lone dot)."""
        text, n = self.text, len(self.text)
        j = self._word_end(i + 1)
        while j > i + 1 and j + 1 < n and text[j] == "." and (text[j + 1].isalpha()
                                                               or text[j + 1] == "_"):
            j = self._word_end(j + 1)
        return j

    def _word_end(self, i: int) -> int:
        text, n = self.text, len(self.text)
        while i < n and (text[i].isalnum() or text[i] == "_"):
            i += 1
        return i

    def _number(self, i: int) -> int:
        text, n = self.text, len(self.text)
        j = i + 1
        while j < n and (text[j].isalnum() or text[j] in "._" or (text[j] in "+-" and text[j - 1] in "eEpP")):
            j += 1
        self.tokens.append(_Token(NUMBER, text[i:j], i))
        return j

    def _quoted(self, i: int) -> int:
        text, n = self.text, len(self.text)
        j = i + 1
        while j < n and text[j] != '"':
            if text[j] == "\\":
                j += 1
            if j < n and text[j] == "\n":
                raise self.error(i, "unterminated quoted string")
            j += 1
        if j >= n:
            raise self.error(i, "unterminated quoted string")
        self.tokens.append(_Token(STRING, _unquote(text[i + 1 : j], self, i), i))
        return j + 1

    def _char(self, i: int) -> int:
        text = self.text
        j = text.find("'", i + 2 if text[i + 1 : i + 2] != "\\" else i + 3)
        if j < 0:
            raise self.error(i, "unterminated character constant")
        value = _unquote(text[i + 1 : j], self, i)
        if len(value) != 1:
            raise self.error(i, f"malformed character constant: {text[i:j + 1]}")
        self.tokens.append(_Token(CHAR, value, i))
        return j + 1


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}


def _unquote(body: str, lexer: _Lexer, pos: int) -> str:
    """Go's string escapes (\\n, \\t, \\x41, \\u00e9, \\101 ...)."""
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2 : i + 2 + size]
            try:
                out.append(chr(int(digits, 16)) if len(digits) == size else "")
            except ValueError:
                raise lexer.error(pos, "invalid syntax in quoted string") from None
            i += 2 + size
        elif e.isdigit():
            try:
                out.append(chr(int(body[i + 1 : i + 4], 8)))
            except ValueError:
                raise lexer.error(pos, "invalid syntax in quoted string") from None
            i += 4
        else:
            raise lexer.error(pos, "invalid syntax in quoted string")
    return "".join(out)


# -- the parse tree --------------------------------------------------------------------------


class Node:
    __slots__ = ("pos",)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos


class Pipe(Node):
    __slots__ = ("assign", "cmds", "decl", "source")

    def __init__(self, pos: int, decl: list[str], assign: bool, cmds: list[list[Node]],
                 source: str) -> None:
        self.pos = pos
        self.decl = decl
        self.assign = assign
        self.cmds = cmds
        self.source = source


class ActionNode(Node):
    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe, pos: int) -> None:
        self.pipe = pipe
        self.pos = pos


class Branch(Node):
    """if / range / with: a pipeline, what runs, and the else part."""

    __slots__ = ("body", "keyword", "otherwise", "pipe")

    def __init__(self, keyword: str, pipe: Pipe, body: list[Node], otherwise: list[Node] | None,
                 pos: int) -> None:
        self.keyword = keyword
        self.pipe = pipe
        self.body = body
        self.otherwise = otherwise
        self.pos = pos


class LoopControl(Node):
    __slots__ = ("word",)

    def __init__(self, word: str, pos: int) -> None:
        self.word = word
        self.pos = pos


class Operand(Node):
    """One argument: a literal, ``.``, a field chain, a variable (with fields), a function,
    or a parenthesised pipeline (with fields)."""

    __slots__ = ("base", "fields", "kind", "source", "value")

    def __init__(self, kind: str, pos: int, source: str, value: Any = None,
                 fields: tuple[str, ...] = ()) -> None:
        self.kind = kind  # "literal", "dot", "field", "var", "func", "pipe", "nil"
        self.pos = pos
        self.source = source
        self.value = value
        self.fields = fields


class _Parser:
    def __init__(self, name: str, text: str, funcs: dict[str, Callable]) -> None:
        self.name = name
        self.text = text
        self.lexer = _Lexer(name, text)
        self.tokens = self.lexer.run()
        self.i = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.loops = 0

    def error(self, pos: int, message: str) -> TemplateError:
        return self.lexer.error(pos, message)

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> list[Node]:
        nodes, stop = self.list_until(())
        if stop is not None:
            raise self.error(stop.pos, f"unexpected {{{{{stop.value}}}}}")
        return nodes

    def list_until(self, stops: tuple[str, ...]) -> tuple[list[Node], _Token | None]:
        """Nodes up to one of the keyword actions in ``stops`` (consumed: ``{{`` and the word)."""
        nodes: list[Node] = []
        while True:
            tok = self.next()
            if tok.kind == EOF:
                if stops:
                    raise self.error(tok.pos, f"unexpected EOF (expected {{{{{stops[0]}}}}})")
                return nodes, None
            if tok.kind == TEXT:
                nodes.append(TextNode(tok.value, tok.pos))
                continue
            # a LEFT delimiter
            word = self.peek()
            if word.kind == IDENT and word.value in KEYWORDS:
                if word.value in ("end", "else"):
                    if word.value not in stops:
                        raise self.error(word.pos, f"unexpected {{{{{word.value}}}}}")
                    self.next()
                    return nodes, word
                nodes.append(self.control(self.next()))
            else:
                pipe = self.pipeline("command", allow_decl=True)
                nodes.append(ActionNode(pipe, pipe.pos))

    def expect_right(self, context: str) -> None:
        tok = self.next()
        if tok.kind != RIGHT:
            raise self.error(tok.pos, f"unexpected {tok.value!r} in {context}")

    def control(self, word: _Token) -> Node:
        kw = word.value
        if kw in ("define", "template", "block"):
            raise self.error(word.pos, f"{{{{{kw}}}}} is not supported by varpod's templates")
        if kw in ("break", "continue"):
            if not self.loops:
                raise self.error(word.pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
            self.expect_right(kw)
            return LoopControl(kw, word.pos)
        mark = len(self.vars)
        pipe = self.pipeline(kw, allow_decl=True, range_decl=kw == "range")
        if kw == "range":
            self.loops += 1
        body, stop = self.list_until(("end", "else"))
        if kw == "range":
            self.loops -= 1
        otherwise = None
        if stop is not None and stop.value == "else":
            nxt = self.peek()
            if nxt.kind == IDENT and nxt.value in ("if", "with") and kw in ("if", "with") \
                    and nxt.value == kw:
                # {{else if ...}}: an if inside the else part, sharing this {{end}}
                otherwise = [self.control(self.next())]
            else:
                self.expect_right("else")
                otherwise, _ = self.list_until(("end",))
                self.expect_right("end")
        else:
            self.expect_right("end")
        del self.vars[mark:]
        return Branch(kw, pipe, body, otherwise, word.pos)

    def pipeline(self, context: str, *, allow_decl: bool, range_decl: bool = False,
                 closer: int = RIGHT) -> Pipe:
        start = self.peek()
        decl: list[str] = []
        assign = False
        if allow_decl and start.kind == VAR:
            # $x := ..., $x = ..., or (range) $i, $v := ...
            save = self.i
            names = [self.next().value]
            if range_decl and self.peek().kind == COMMA:
                self.next()
                second = self.next()
                if second.kind != VAR:
                    raise self.error(second.pos, "range can only initialize variables")
                names.append(second.value)
            op = self.peek()
            if op.kind in (DECLARE, ASSIGN):
                self.next()
                decl = names
                assign = op.kind == ASSIGN
                if assign and names[0] not in self.vars:
                    raise self.error(op.pos, f"undefined variable: {names[0]}")
                if not assign:
                    self.vars.extend(names)
            else:
                self.i = save
        cmds: list[list[Node]] = []
        while True:
            cmd = self.command(context, closer)
            cmds.append(cmd)
            tok = self.next()
            if tok.kind == PIPE:
                continue
            if tok.kind == closer:
                break
            raise self.error(tok.pos, f"unexpected {tok.value!r} in {context}")
        end = self.tokens[self.i - 1].pos
        source = self.text[start.pos:end].strip()
        if not cmds or not cmds[0]:
            raise self.error(start.pos, f"missing value for {context}")
        return Pipe(start.pos, decl, assign, cmds, source)

    def command(self, context: str, closer: int) -> list[Node]:
        operands: list[Node] = []
        while True:
            tok = self.peek()
            if tok.kind in (PIPE, closer, RIGHT, RPAREN):
                if not operands:
                    raise self.error(tok.pos, f"missing value for {context}")
                return operands
            operands.append(self.operand())

    def operand(self) -> Operand:
        tok = self.next()
        k = tok.kind
        if k == STRING:
            op = Operand("literal", tok.pos, repr(tok.value), tok.value)
        elif k == CHAR:
            op = Operand("literal", tok.pos, repr(tok.value), ord(tok.value))
        elif k == NUMBER:
            op = Operand("literal", tok.pos, tok.value, self.number(tok))
        elif k == BOOL:
            op = Operand("literal", tok.pos, tok.value, tok.value == "true")
        elif k == NIL:
            op = Operand("nil", tok.pos, "nil")
        elif k == DOT:
            op = Operand("dot", tok.pos, ".")
        elif k == FIELD:
            op = Operand("field", tok.pos, tok.value, fields=tuple(tok.value[1:].split(".")))
        elif k == VAR:
            if tok.value not in self.vars:
                raise self.error(tok.pos, f"undefined variable {tok.value!r}")
            op = Operand("var", tok.pos, tok.value, tok.value)
        elif k == IDENT:
            if tok.value in KEYWORDS:
                raise self.error(tok.pos, f"unexpected <{tok.value}> in command")
            if tok.value not in self.funcs:
                raise self.error(tok.pos, f'function "{tok.value}" not defined')
            op = Operand("func", tok.pos, tok.value, tok.value)
        elif k == LPAREN:
            pipe = self.pipeline("parenthesized pipeline", allow_decl=False, closer=RPAREN)
            op = Operand("pipe", tok.pos, f"({pipe.source})", pipe)
        else:
            raise self.error(tok.pos, f"unexpected {tok.value!r} in operand")
        # a field chain right after it: $x.A.B, (pipe).A
        nxt = self.peek()
        if k in (VAR, LPAREN) and nxt.kind == FIELD and nxt.pos == self.end_of(tok):
            self.next()
            op.fields = tuple(nxt.value[1:].split("."))
            op.source += nxt.value
        return op

    def end_of(self, tok: _Token) -> int:
        if tok.kind == VAR:
            return tok.pos + len(tok.value)
        return self.tokens[self.i - 1].pos + 1  # a closing paren

    def number(self, tok: _Token) -> int | float:
        text = tok.value.replace("_", "")
        try:
            if text.lower().lstrip("+-").startswith(("0x", "0o", "0b")):
                return int(text, 0)
            if any(c in text for c in ".eE"):
                return float(text)
            if len(text.lstrip("+-")) > 1 and text.lstrip("+-").startswith("0"):
                return int(text, 8)
            return int(text)
        except ValueError:
            raise self.error(tok.pos, f"bad number syntax: {tok.value!r}") from None


# -- execution -------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Template:
    """A parsed template; ``execute(data)`` returns the text (or raises TemplateError)."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.nodes = _Parser(name, text, FUNCS).parse()

    def execute(self, data: Any) -> str:
        run = _Run(self, data)
        try:
            run.walk(self.nodes, data)
        except (_Break, _Continue):
            raise TemplateError(f"template: {self.name}: break or continue outside range") from None
        return "".join(run.out)


class _Run:
    def __init__(self, tmpl: Template, data: Any) -> None:
        self.tmpl = tmpl
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", data)]

    def error(self, node: Node, source: str, message: str) -> TemplateError:
        text = self.tmpl.text[: node.pos]
        line = text.count("\n") + 1
        col = node.pos - (text.rfind("\n") + 1)
        return TemplateError(f'template: {self.tmpl.name}:{line}:{col}: executing '
                             f'"{self.tmpl.name}" at <{source}>: {message}')

    def walk(self, nodes: list[Node], dot: Any) -> None:
        mark = len(self.vars)
        try:
            for node in nodes:
                if isinstance(node, TextNode):
                    self.out.append(node.text)
                elif isinstance(node, ActionNode):
                    value = self.pipe(node.pipe, dot)
                    if not node.pipe.decl:
                        self.out.append(fmt_v(value))
                elif isinstance(node, Branch):
                    self.branch(node, dot)
                elif isinstance(node, LoopControl):
                    raise _Break() if node.word == "break" else _Continue()
        finally:
            del self.vars[mark:]

    def branch(self, node: Branch, dot: Any) -> None:
        mark = len(self.vars)
        try:
            if node.keyword == "range":
                self.range(node, dot)
                return
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.walk(node.body, value if node.keyword == "with" else dot)
            elif node.otherwise is not None:
                self.walk(node.otherwise, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: Branch, dot: Any) -> None:
        pipe = node.pipe
        decl = pipe.decl
        value = self.pipe(pipe, dot, declare=False)
        if isinstance(value, GoMap):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif value is None:
            items = []
        else:
            raise self.error(pipe, pipe.source, f"range can't iterate over {fmt_v(value)}")
        if not items:
            if node.otherwise is not None:
                self.walk(node.otherwise, dot)
            return
        mark = len(self.vars)
        for key, elem in items:
            del self.vars[mark:]
            if len(decl) == 1:
                self.vars.append((decl[0], elem))
            elif len(decl) == 2:
                self.vars.extend(((decl[0], key), (decl[1], elem)))
            try:
                self.walk(node.body, elem)
            except _Break:
                break
            except _Continue:
                continue

    def pipe(self, pipe: Pipe, dot: Any, *, declare: bool = True) -> Any:
        value: Any = _NO_ARG
        for cmd in pipe.cmds:
            value = self.command(cmd, dot, value)
        if pipe.decl and declare:
            if pipe.assign:
                for i in range(len(self.vars) - 1, -1, -1):
                    if self.vars[i][0] == pipe.decl[0]:
                        self.vars[i] = (pipe.decl[0], value)
                        break
            else:
                self.vars.append((pipe.decl[0], value))
        return value

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"template: {self.tmpl.name}: undefined variable: {name}")

    def command(self, cmd: list[Node], dot: Any, final: Any) -> Any:
        first = cmd[0]
        assert isinstance(first, Operand)
        args = cmd[1:]
        if first.kind == "func":
            return self.call(first, args, dot, final)
        if first.kind == "field":
            return self.fields(first, dot, first.fields, args, dot, final)
        if first.kind == "var":
            return self.fields(first, self.var(first.value), first.fields, args, dot, final)
        if first.kind == "pipe":
            value = self.pipe(first.value, dot)
            return self.fields(first, value, first.fields, args, dot, final)
        if args or final is not _NO_ARG:
            raise self.error(first, first.source, f"can't give argument to non-function {first.source}")
        if first.kind == "dot":
            return dot
        if first.kind == "nil":
            raise self.error(first, "nil", "nil is not a command")
        return first.value

    def arg(self, node: Node, dot: Any) -> Any:
        assert isinstance(node, Operand)
        k = node.kind
        if k == "literal":
            return node.value
        if k == "dot":
            return dot
        if k == "nil":
            return None
        if k == "field":
            return self.fields(node, dot, node.fields, [], dot, _NO_ARG)
        if k == "var":
            return self.fields(node, self.var(node.value), node.fields, [], dot, _NO_ARG)
        if k == "pipe":
            return self.fields(node, self.pipe(node.value, dot), node.fields, [], dot, _NO_ARG)
        # a function name as an argument: Go calls it with no arguments
        return self.call(node, [], dot, _NO_ARG)

    def fields(self, node: Operand, value: Any, names: tuple[str, ...], args: list[Node],
               dot: Any, final: Any) -> Any:
        """Walk ``.A.B.C`` from value; the last step gets the arguments, if it is a method."""
        for i, name in enumerate(names):
            last = i == len(names) - 1
            value = self.field(node, value, name, args if last else [], dot,
                               final if last else _NO_ARG)
        if not names and (args or final is not _NO_ARG):
            raise self.error(node, node.source, f"can't give argument to non-function {node.source}")
        return value

    def field(self, node: Operand, value: Any, name: str, args: list[Node], dot: Any,
              final: Any) -> Any:
        has_args = bool(args) or final is not _NO_ARG
        if isinstance(value, View) and name in value.fields:
            found = value.fields[name]
            if callable(found):
                call_args = [self.arg(a, dot) for a in args]
                if final is not _NO_ARG:
                    call_args.append(final)
                try:
                    return found(*call_args)
                except TypeError:
                    raise self.error(node, node.source,
                                     f"wrong number of args for {name}: got {len(call_args)}") from None
            if has_args:
                raise self.error(node, node.source,
                                 f"{name} is not a method but has arguments")
            return found
        if has_args:
            raise self.error(node, node.source,
                             f"{name} is not a method but has arguments")
        if isinstance(value, GoMap):
            return value.get(name, MISSING)
        if isinstance(value, dict):
            if name in value:
                return value[name]
            raise self.error(node, node.source, f"can't evaluate field {name} in type {kind(value)}")
        if value is None or value is MISSING:
            raise self.error(node, node.source, f"nil pointer evaluating {kind(value)}.{name}")
        raise self.error(node, node.source, f"can't evaluate field {name} in type {kind(value)}")

    def call(self, node: Operand, args: list[Node], dot: Any, final: Any) -> Any:
        name = node.value
        if name in ("and", "or"):  # evaluated lazily, left to right, as Go 1.18+ does
            nodes = list(args)
            if not nodes and final is _NO_ARG:
                raise self.error(node, name, f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for i, a in enumerate(nodes):
                value = self.arg(a, dot)
                if truth(value) != (name == "and") or (i == len(nodes) - 1 and final is _NO_ARG):
                    return value
            return final
        values = [self.arg(a, dot) for a in args]
        if final is not _NO_ARG:
            values.append(final)
        try:
            return FUNCS[name](*values)
        except _FuncError as e:
            raise self.error(node, name, f"error calling {name}: {e}") from None
        except TypeError:
            raise self.error(node, name, f"wrong number of args for {name}: got {len(values)}") from None


_NO_ARG = object()


# -- functions -------------------------------------------------------------------------------


class _FuncError(Exception):
    pass


def _need(v: Any, *types: type, what: str = "string") -> Any:
    if isinstance(v, bool) and bool not in types:
        raise _FuncError(f"wrong type for value; expected {what}; got bool")
    if not isinstance(v, types):
        raise _FuncError(f"wrong type for value; expected {what}; got {kind(v)}")
    return v


def _basic(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "nil"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise _FuncError("missing argument for comparison")
    for b in bs:
        ka, kb = _basic(a), _basic(b)
        if "other" in (ka, kb):
            raise _FuncError("incompatible types for comparison")
        if ka != kb and "nil" not in (ka, kb):
            raise _FuncError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = _basic(a), _basic(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return a, b


def _lt(a: Any, b: Any) -> bool:
    a, b = _ordered(a, b)
    return a < b


def _le(a: Any, b: Any) -> bool:
    a, b = _ordered(a, b)
    return a <= b


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, GoMap)):
        return len(v)
    if v is None:
        return 0
    raise _FuncError(f"len of type {kind(v)}")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, GoMap):
            _need(key, str)
            item = item.get(key, "")
        elif isinstance(item, (list, tuple, str)):
            _need(key, int, what="integer")
            if not 0 <= key < len(item):
                raise _FuncError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif item is None:
            raise _FuncError("index of untyped nil")
        else:
            raise _FuncError(f"can't index item of type {kind(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise _FuncError(f"can't slice item of type {kind(item)}")
    if len(idx) > 2:
        raise _FuncError("too many slice indexes")
    for i in idx:
        _need(i, int, what="integer")
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise _FuncError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(fmt_v(a))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(fmt_v(a) for a in args) + "\n"


def _title(s: str) -> str:
    _need(s, str)
    out, prev_sep = [], True
    for ch in s:
        out.append(ch.upper() if prev_sep and ch.isalpha() else ch)
        prev_sep = not (ch.isalnum() or ch == "_")
    return "".join(out)


def _split(s: str, sep: str) -> list[str]:
    _need(s, str)
    _need(sep, str)
    return list(s) if sep == "" else s.split(sep)


def _join(items: Any, sep: str) -> str:
    _need(sep, str)
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise _FuncError(f"wrong type for value; expected []string; got {kind(items)}")
    return sep.join(items)


def _truncate(s: str, length: int) -> str:
    _need(s, str)
    _need(length, int, what="int")
    return s if len(s) < length else s[:length]


def _pad(s: str, prefix: int, suffix: int) -> str:
    _need(s, str)
    _need(prefix, int, what="int")
    _need(suffix, int, what="int")
    return s if not s else " " * prefix + s + " " * suffix


def _html(*args: Any) -> str:
    text = _sprint(*args)
    for a, b in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"),
                 ("\0", "\ufffd")):
        text = text.replace(a, b)
    return text


def _js(*args: Any) -> str:
    out = []
    for ch in _sprint(*args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_sprint(*args))


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise _FuncError(f"non-function of type {kind(fn)}")
    return fn(*args)


def _printf(fmt: str, *args: Any) -> str:
    _need(fmt, str)
    from .goprintf import sprintf

    return sprintf(fmt, args)


def _upper(s: str) -> str:
    return _need(s, str).upper()


def _lower(s: str) -> str:
    return _need(s, str).lower()


FUNCS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a, "or": lambda *a: a,  # evaluated lazily in _Run.call
    "not": lambda v: not truth(v), "len": _len, "index": _index, "slice": _slice,
    "print": _sprint, "printf": _printf, "println": _sprintln,
    "eq": _eq, "ne": lambda a, b: not _eq(a, b), "lt": _lt, "le": _le,
    "gt": lambda a, b: not _le(a, b), "ge": lambda a, b: not _lt(a, b),
    "html": _html, "js": _js, "urlquery": _urlquery, "call": _call,
    # podman's (containers/common pkg/report)
    "json": to_json, "join": _join, "split": _split, "lower": _lower, "upper": _upper,
    "title": _title, "truncate": _truncate, "pad": _pad,
}


# -- podman's report formatter ---------------------------------------------------------------


def normalize(fmt: str) -> str:
    """podman's NormalizeFormat: ``\\t``/``\\n`` typed as two characters become the real ones,
    and a table's spaces become column breaks; the text ends with a newline."""
    if fmt.startswith("table "):
        text = fmt[len("table "):].replace("\\t", "\t").replace("\\n", "\n").replace(" ", "\t")
    else:
        text = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def _has_range(fmt: str) -> bool:
    """podman's EnforceRange test: the format has ``{{range .}}`` and, after it, ``{{end}}``."""
    actions = _actions(fmt)
    for i, action in enumerate(actions):
        if action.split() == ["range", "."] and not action.startswith(("-", " -")):
            return any(a.strip().rstrip("-").strip() == "end" for a in actions[i + 1:])
    return False


def _actions(text: str) -> list[str]:
    out, at = [], text.find("{{")
    while at >= 0:
        close = text.find("}}", at)
        if close < 0:
            break
        out.append(text[at + 2 : close])
        at = text.find("{{", close)
    return out


def parse_report(fmt: str, name: str) -> tuple[Template, bool]:
    """A user's --format as podman's report package reads it: (template, is it a table).

    The normalized text is tried first; when it does not parse, the text as given
    (podman does the same, for formats like ``{{printf "\\n"}}``).
    """
    table = fmt.startswith("table ")
    if table:
        first = "{{range .}}" + normalize(fmt) + "{{end -}}"
        second = "{{range .}}" + fmt[len("table "):] + "{{end -}}"
    else:
        norm = normalize(fmt)
        first = norm if _has_range(norm) else "{{range .}}" + norm + "{{end -}}"
        second = fmt if _has_range(fmt) else "{{range .}}" + fmt + "{{end -}}"
    try:
        return Template(name, first), table
    except TemplateError:
        if first == second:
            raise
    return Template(name, second), table


def camel_words(name: str) -> list[str]:
    """fatih/camelcase's Split, which podman's headers use: ``RunningFor`` -> Running, For;
    ``PDFLoader`` -> PDF, Loader."""
    runs: list[list[str]] = []
    last = ""
    for ch in name:
        cls = "l" if ch.islower() else "u" if ch.isupper() else "d" if ch.isdigit() else "o"
        if cls == last:
            runs[-1].append(ch)
        else:
            runs.append([ch])
        last = cls
    for i in range(len(runs) - 1):
        if runs[i] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


class Headers(GoMap):
    """The header row of a table: any field's header is its name split and upper-cased,
    unless the command overrides it (``ID`` -> CONTAINER ID)."""

    __slots__ = ("overrides",)

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        super().__init__()
        self.overrides = overrides or {}

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.overrides:
            return self.overrides[key].upper()
        return " ".join(camel_words(key)).upper()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)


def render(fmt: str, rows: list[Any], *, name: str, headers: dict[str, str] | None = None,
           noheading: bool = False) -> str:
    """Rows through a user's --format, as podman prints them: a ``table`` gets its header
    row and aligned columns (Go's tabwriter, as podman sets it up)."""
    tmpl, table = parse_report(fmt, name)
    text = tmpl.execute(rows)
    if not table:
        return text
    if not noheading:
        text = tmpl.execute([Headers(headers)]) + text
    from .common import tabwrite

    return tabwrite(text)


def render_one(fmt: str, value: Any, *, name: str) -> str:
    """One object through a template, without podman's range: ``info`` and ``version``."""
    return Template(name, normalize(fmt)).execute(value)


# Keys whose values are Go maps in podman's objects (the rest of a dict is a struct), and
# keys whose RFC 3339 texts are time.Time values there.
MAP_KEYS = frozenset(("Labels", "Annotations", "Sysctls", "Options", "Attributes", "DriverOpts",
                      "Namespaces"))
TIME_KEYS = frozenset(("Created", "CreatedAt", "StartedAt", "FinishedAt", "Time"))


def podman_shaped(obj: Any) -> Any:
    """An inspect object as podman's template sees it: maps as GoMaps, times as GoTimes,
    and ``.ID`` for ``Id`` (podman's inspectNormalize turns ``{{.Id}}`` into ``{{.ID}}``)."""
    out = _shaped(obj)
    if isinstance(out, dict) and "Id" in out and "ID" not in out:
        return View(out, {"ID": out["Id"]}, "define.InspectContainerData")
    return out


def _shaped(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        items = {k: _shaped(v, k) for k, v in value.items()}
        return GoMap(items) if key in MAP_KEYS else items
    if isinstance(value, list):
        return [_shaped(v) for v in value]
    if key in TIME_KEYS and isinstance(value, str) and "T" in value:
        from .common import CLIError

        try:
            return go_time(value)
        except CLIError:  # not a time after all: keep the text
            return value
    return value
