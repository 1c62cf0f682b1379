"""What the CLI's command modules share: output, parsing of times and pairs, exit codes."""

from __future__ import annotations

import sys
import time

from ...core.errors import VarpodError
from ..api import API

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..client import Client

EXIT_ERROR = 125  # podman's: the command itself failed
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


class CLIError(Exception):
    """A usage the CLI refuses before or without asking the daemon: ``Error: ...``, exit 125."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def terminal_size() -> tuple[int, int] | None:
    from ..terminal import terminal_size as size

    return size()


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


def pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"{what} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def parse_time(text: str | None, now: float | None = None) -> int | None:
    """RFC 3339, unix seconds, or a duration before now (``10m``, ``2h30m``) -> ns."""
    if text is None:
        return None
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[0].isdigit():
        total, num = 0.0, ""
        for ch in text:
            if ch.isdigit() or ch == ".":
                num += ch
            elif ch in units and num:
                total += float(num) * units[ch]
                num = ""
            else:
                raise CLIError(f"invalid duration {text!r}")
        return int((now - total) * 1e9)
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    from datetime import datetime

    try:
        stamp = text.replace("Z", "+00:00")
        nanos = 0
        if "." in stamp:  # fromisoformat takes at most microseconds: the fraction is ours
            head, _, rest = stamp.partition(".")
            digits = ""
            while len(digits) < len(rest) and rest[len(digits)].isdigit():
                digits += rest[len(digits)]
            if not digits:
                raise ValueError(text)
            nanos = int(digits[:9].ljust(9, "0"))
            stamp = head + rest[len(digits):]
        return int(datetime.fromisoformat(stamp).timestamp()) * 10**9 + nanos
    except ValueError:
        raise CLIError(f"invalid time {text!r}") from None


def parse_duration(text: str, flag: str) -> float:
    """A Go duration (``300ms``, ``1.5s``, ``2h45m``) in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    rest, total = text, 0.0
    if rest in ("0", "+0", "-0"):
        return 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        j = i
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        try:
            total += float(rest[:i]) * units[rest[i:j]]
        except (ValueError, KeyError):
            raise CLIError(f"invalid duration {text!r} for {flag}: give a number with a unit "
                           "(ns, us, ms, s, m, h), like 250ms") from None
        rest = rest[j:]
    return total


def rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def go_time_text(ns: int) -> str:
    """A time as Go prints a time.Time (local zone): ``2024-05-01 10:00:00.123456789 +0000 UTC``."""
    if not ns:
        return "0001-01-01 00:00:00 +0000 UTC"
    secs, frac = divmod(ns, 10**9)
    t = time.localtime(secs)
    off = t.tm_gmtoff or 0
    sign = "-" if off < 0 else "+"
    hh, mm = divmod(abs(off) // 60, 60)
    nanos = f".{frac:09d}".rstrip("0").rstrip(".")
    zone = t.tm_zone or f"{sign}{hh:02d}{mm:02d}"
    return time.strftime("%Y-%m-%d %H:%M:%S", t) + nanos + f" {sign}{hh:02d}{mm:02d} {zone}"


def to_json(value: Any) -> str:
    import json

    return json.dumps(value, indent=4)


def compact_json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Calls(API):
    """The API's methods, giving back (method, parameters) instead of calling."""

    def _call(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        return method, params


CALLS = _Calls()  # CALLS.stop("web", 5) -> ("io.varpod.Container.Stop", {...})


def call_all(client: Client, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Each call's reply (a dict) or its error, in order: one on this connection, several
    side by side (``Client.concurrently``)."""
    if len(calls) != 1:
        return client.concurrently(calls)
    try:
        return [client.call(*calls[0])]
    except VarpodError as e:
        return [e]


def each(client: Client, names: list[str], op: Any) -> int:
    rc = 0
    for name in names:
        try:
            op(name)
            out(name)
        except VarpodError as e:
            error(e.message)
            rc = EXIT_ERROR
    return rc


def error(message: str) -> None:
    sys.stderr.write(f"Error: {message}\n")


# -- podman's human forms (docker/go-units) ----------------------------------------------------


def ago(seconds: float) -> str:
    """How long ago, as podman's CREATED columns say it: "About a minute ago"."""
    from ...core.units import human_duration

    return human_duration(seconds) + " ago"


def human_size(size: float) -> str:
    """go-units' HumanSizeWithPrecision(size, 3): ``1.98MB``, ``0B``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    while size >= 1000.0 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


# -- output: tables, JSON, templates ---------------------------------------------------------------


def tabwrite(text: str, minwidth: int = 12, padding: int = 2) -> str:
    """Go's text/tabwriter as podman sets it up (min width 12, padding 2, spaces): cells end
    at tabs, and each column block of consecutive lines is as wide as its widest cell."""
    rows = [line.split("\t") for line in text.split("\n")]
    trailing = rows.pop() if rows and rows[-1] == [""] else None
    out: list[str] = []
    widths: list[int] = []

    def write(lo: int, hi: int) -> None:
        for cells in rows[lo:hi]:
            out.append("".join(c + " " * (widths[j] - len(c)) if j < len(widths) else c
                               for j, c in enumerate(cells)))

    def block(lo: int, hi: int) -> None:
        column = len(widths)
        this = lo
        while this < hi:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            write(lo, this)
            lo = this
            width = minwidth
            while this < hi and column < len(rows[this]) - 1:
                width = max(width, len(rows[this][column]) + padding)
                this += 1
            widths.append(width)
            block(lo, this)
            widths.pop()
            lo = this
        write(lo, hi)

    block(0, len(rows))
    return "\n".join(out) + ("\n" if trailing is not None else "")


def is_json(fmt: str) -> bool:
    """podman's IsJSON: ``json``, ``{{json}}``, ``{{json .}}`` (the whole list as JSON)."""
    text = fmt.strip()
    if text == "json":
        return True
    return text.startswith("{{") and text.endswith("}}") and \
        "".join(text[2:-2].split()) in ("json", "json.")


def render(fmt: str | None, rows: list[Any], columns: list[tuple[str, Any]], *,
           view: Any = None, headers: dict[str, str] | None = None, name: str = "",
           noheading: bool = False) -> None:
    """Print rows as podman prints a listing.

    ``fmt`` None (or "table"): the default table, ``columns`` of (header, row -> text),
    aligned as podman aligns it, without importing the template engine. ``json``: the
    rows as a JSON list. Anything else is a Go template (``rpc/cli/template.py``), run
    on ``view(row)`` when given (computed fields such as a truncated ``.ID``) and with
    ``headers`` (field -> header) for a ``table`` template's header row; ``name`` names
    the template in errors. A bad template raises TemplateError before anything prints.
    """
    if fmt is None or fmt.strip() in ("", "table"):
        lines = [] if noheading else ["\t".join(h for h, _ in columns)]
        lines += ["\t".join(str(get(r)) for _, get in columns) for r in rows]
        if lines:
            sys.stdout.write(tabwrite("\n".join(lines) + "\n"))
        return
    if is_json(fmt):
        out(to_json(rows))
        return
    from .template import render as render_template

    views = [view(r) for r in rows] if view is not None else rows
    sys.stdout.write(render_template(fmt, views, name=name, headers=headers, noheading=noheading))


def inspect_args(metavar: str, example: str) -> Callable[[Any], None]:
    """The declaration of ``KIND inspect [-f FORMAT] NAME...`` (images, networks, pods)."""
    def declare(p: Any) -> None:
        p.add_argument("-f", "--format", help=f"json (default) or a Go template such as '{example}'")
        p.add_argument("names", nargs="+", metavar=metavar)

    return declare


def field_cell(name: str) -> Callable[[Any], str]:
    """A default table's cell built from the row's template view: the field a template
    names, a view's computed one first (the table and ``{{.Name}}`` show the same text)."""
    def cell(v: Any) -> str:
        fields = getattr(v, "fields", {})
        return str(fields[name] if name in fields else v[name])

    return cell


def yamlish(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(yamlish(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {v if v not in ({}, []) else ''}".rstrip())
    else:
        for item in value:
            if isinstance(item, dict):
                body = yamlish(item, indent + 1).lstrip()
                lines.append(f"{pad}- {body}")
            else:
                lines.append(f"{pad}- {item}")
    return "\n".join(lines)

