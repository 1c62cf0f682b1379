"""Go's text/template: lexed, parsed and run as Go does, on the values of govalues.py.

Field paths (``.State.Status``), variables, pipelines, parenthesised pipelines,
``if``/``else if``/``else``, ``range`` (with ``break``/``continue``), ``with``, comments
and trim markers. ``define``, ``template`` and ``block`` are refused by name; so is
anything else this engine does not know: a template is evaluated as Go would, or
refused with an error in Go's words, never approximated.
"""

from __future__ import annotations

from .common import CLIError
from .gofuncs import FUNCS, FuncError
from .govalues import MISSING, GoMap, View, fmt_v, kind, truth

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(CLIError):
    """A template that cannot be parsed or run; the message is Go's shape of it."""


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
        except FuncError as e:
            raise self.error(node, name, f"error calling {name}: {e}") from None
        except TypeError:
            raise self.error(node, name, f"wrong number of args for {name}: got {len(values)}") from None


_NO_ARG = object()
