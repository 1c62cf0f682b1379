"""Go's values as the templates see them, and how Go prints them (fmt's %v, encoding/json).

A plain dict is a Go *struct* (an unknown field is an error, as in podman), a ``GoMap``
a Go map (a missing key prints ``<no value>``, printing is ``map[k:v]`` with sorted keys,
as is JSON), a ``View`` a struct with computed fields beside its JSON ones (podman's
``psReporter`` methods: ``.ID`` truncated, ``.Names`` the first name), and a ``GoTime``
prints as Go prints a time.Time but is RFC 3339 in JSON.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
