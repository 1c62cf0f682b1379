"""Go's fmt.Sprintf for the templates' ``printf``: its verbs, flags and error forms.

Verbs: %v %s %q %d %t %x %X %o %O %b %c %U %e %E %f %F %g %G %%, with the flags
``+ - # space 0``, a width and a precision. Explicit argument indexes (``%[1]d``)
and ``*`` widths are refused; a verb used on the wrong type prints as Go prints it
(``%!d(string=x)``), as do missing and extra arguments.
"""

from __future__ import annotations

from .gofuncs import FuncError
from .govalues import GoMap, fmt_v, go_float, kind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FLAGS = "+-# 0"


class _Spec:
    __slots__ = ("minus", "plus", "precision", "sharp", "space", "verb", "width", "zero")

    def __init__(self) -> None:
        self.plus = self.minus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.precision: int | None = None
        self.verb = ""


def sprintf(fmt: str, args: tuple[Any, ...]) -> str:
    out: list[str] = []
    i, n, used = 0, len(fmt), 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in _FLAGS:
            c = fmt[i]
            spec.plus |= c == "+"
            spec.minus |= c == "-"
            spec.sharp |= c == "#"
            spec.space |= c == " "
            spec.zero |= c == "0"
            i += 1
        if i < n and fmt[i] in "[*":
            raise FuncError("printf: argument indexes and '*' widths are not supported by varpod")
        i, spec.width = _digits(fmt, i)
        if i < n and fmt[i] == ".":
            i, spec.precision = _digits(fmt, i + 1)
            if spec.precision is None:
                spec.precision = 0
            if i < n and fmt[i] in "[*":
                raise FuncError("printf: argument indexes and '*' precisions are not supported "
                                 "by varpod")
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec.verb = fmt[i]
        i += 1
        if spec.verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{spec.verb}(MISSING)")
            continue
        out.append(_one(spec, args[used]))
        used += 1
    if used < len(args):
        extra = ", ".join(f"{kind(a)}={fmt_v(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _digits(fmt: str, i: int) -> tuple[int, int | None]:
    j = i
    while j < len(fmt) and fmt[j].isdigit():
        j += 1
    return j, (int(fmt[i:j]) if j > i else None)


def _bad(spec: _Spec, value: Any) -> str:
    return f"%!{spec.verb}({kind(value)}={fmt_v(value)})"


def _one(spec: _Spec, value: Any) -> str:
    v = spec.verb
    if isinstance(value, (list, tuple)) and v not in "vT":
        return _pad(spec, "[" + " ".join(_one(_inner(spec), x) for x in value) + "]")
    if isinstance(value, GoMap) and v != "v":
        inner = _inner(spec)
        return _pad(spec, "map[" + " ".join(f"{_one(inner, k)}:{_one(inner, value[k])}"
                                            for k in sorted(value)) + "]")
    if v == "v":
        if spec.sharp:
            raise FuncError("printf: %#v (Go syntax) is not supported by varpod")
        if isinstance(value, float):
            return _number(spec, go_float(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return _integer(spec, value, 10)
        if spec.plus and isinstance(value, dict) and not isinstance(value, GoMap):
            return _pad(spec, "{" + " ".join(f"{k}:{fmt_v(x)}" for k, x in value.items()) + "}")
        return _pad(spec, fmt_v(value))
    if v == "T":
        return _pad(spec, kind(value))
    if v == "s":
        if isinstance(value, (str, bytes)) or not isinstance(value, (int, float, bool)):
            text = fmt_v(value) if not isinstance(value, str) else value
            if value is None:
                return _bad(spec, value)
            return _pad(spec, text if spec.precision is None else text[: spec.precision])
        return _bad(spec, value)
    if v == "q":
        if isinstance(value, str):
            text = value if spec.precision is None else value[: spec.precision]
            return _pad(spec, _quote(text, spec.plus))
        if isinstance(value, int) and not isinstance(value, bool):
            return _pad(spec, "'" + _quote(chr(value), spec.plus)[1:-1].replace("'", "\\'")
                        .replace('\\"', '"') + "'")
        return _bad(spec, value)
    if v == "t":
        return _pad(spec, fmt_v(value)) if isinstance(value, bool) else _bad(spec, value)
    if isinstance(value, bool):
        return _bad(spec, value)
    if isinstance(value, int):
        base = {"d": 10, "x": 16, "X": 16, "o": 8, "O": 8, "b": 2}.get(v)
        if base is not None:
            return _integer(spec, value, base)
        if v == "c":
            return _pad(spec, chr(value))
        if v == "U":
            return _pad(spec, f"U+{value:04X}")
        return _bad(spec, value)
    if isinstance(value, float):
        if v in "eEfFgG":
            return _number(spec, _float(spec, value))
        return _bad(spec, value)
    if isinstance(value, str) and v in "xX":
        text = value.encode().hex()
        return _pad(spec, text.upper() if v == "X" else text)
    return _bad(spec, value)


def _inner(spec: _Spec) -> _Spec:
    inner = _Spec()
    inner.verb = spec.verb
    inner.plus, inner.sharp, inner.space, inner.precision = spec.plus, spec.sharp, spec.space, \
        spec.precision
    return inner


def _integer(spec: _Spec, value: int, base: int) -> str:
    digits = {10: str, 16: lambda x: format(x, "x"), 8: lambda x: format(x, "o"),
              2: lambda x: format(x, "b")}[base](abs(value))
    if spec.verb == "X":
        digits = digits.upper()
    if spec.precision is not None:
        digits = "" if spec.precision == 0 and value == 0 else digits.rjust(spec.precision, "0")
    if spec.sharp or spec.verb == "O":
        digits = {16: "0x" if spec.verb == "x" else "0X", 8: "0" if spec.verb == "o" else "0o",
                  2: "0b", 10: ""}[base] + digits
    sign = "-" if value < 0 else "+" if spec.plus else " " if spec.space else ""
    return _number(spec, sign + digits, zero_ok=spec.precision is None)


def _float(spec: _Spec, value: float) -> str:
    v = spec.verb
    if v in "gG" and spec.precision is None:
        text = go_float(value)
        if v == "G":
            text = text.upper()
    else:
        precision = 6 if spec.precision is None else spec.precision
        text = f"%.{precision}{v}" % value
        if text in ("inf", "-inf", "nan", "INF", "-INF", "NAN"):
            text = go_float(value)
    if spec.plus and not text.startswith("-"):
        text = "+" + text
    elif spec.space and not text.startswith("-"):
        text = " " + text
    return text


def _number(spec: _Spec, text: str, zero_ok: bool = True) -> str:
    """Width padding for numbers: zeros go after the sign, and never with '-'."""
    width = spec.width or 0
    if len(text) >= width:
        return text
    if spec.minus:
        return text.ljust(width)
    if spec.zero and zero_ok:
        sign = text[0] if text[0] in "+- " else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)


def _pad(spec: _Spec, text: str) -> str:
    width = spec.width or 0
    if len(text) >= width:
        return text
    if spec.minus:
        return text.ljust(width)
    return text.rjust(width, "0" if spec.zero else " ")


_QUOTE = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
          "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _quote(text: str, ascii_only: bool) -> str:
    """strconv.Quote (QuoteToASCII with ``+``)."""
    out = ['"']
    for ch in text:
        if ch in _QUOTE:
            out.append(_QUOTE[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) > 0x7E and (ascii_only or not ch.isprintable()):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
