"""The functions Go's templates have (``and or not len index slice print printf println
eq ne lt le gt ge html js urlquery call``) and podman's (``json join split lower upper title
truncate pad``), with Go's argument checks and error texts."""

from __future__ import annotations

from .govalues import GoMap, fmt_v, kind, to_json, truth

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class FuncError(Exception):
    pass


def _need(v: Any, *types: type, what: str = "string") -> Any:
    if isinstance(v, bool) and bool not in types:
        raise FuncError(f"wrong type for value; expected {what}; got bool")
    if not isinstance(v, types):
        raise FuncError(f"wrong type for value; expected {what}; got {kind(v)}")
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
        raise FuncError("missing argument for comparison")
    for b in bs:
        ka, kb = _basic(a), _basic(b)
        if "other" in (ka, kb):
            raise FuncError("incompatible types for comparison")
        if ka != kb and "nil" not in (ka, kb):
            raise FuncError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = _basic(a), _basic(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
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
    raise FuncError(f"len of type {kind(v)}")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, GoMap):
            _need(key, str)
            item = item.get(key, "")
        elif isinstance(item, (list, tuple, str)):
            _need(key, int, what="integer")
            if not 0 <= key < len(item):
                raise FuncError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif item is None:
            raise FuncError("index of untyped nil")
        else:
            raise FuncError(f"can't index item of type {kind(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise FuncError(f"can't slice item of type {kind(item)}")
    if len(idx) > 2:
        raise FuncError("too many slice indexes")
    for i in idx:
        _need(i, int, what="integer")
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise FuncError(f"index out of range: {hi if hi > len(item) else lo}")
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
        raise FuncError(f"wrong type for value; expected []string; got {kind(items)}")
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
        raise FuncError(f"non-function of type {kind(fn)}")
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
