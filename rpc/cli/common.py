"""What the CLI's command modules share: output, parsing of times and pairs, exit codes."""

from __future__ import annotations

import sys
import time

from ...core.errors import VarpodError

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client

EXIT_ERROR = 125  # podman's: the command itself failed
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


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
            raise SystemExit(f"Error: {what} {item!r} is not KEY=VALUE")
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
                raise SystemExit(f"Error: invalid duration {text!r}")
        return int((now - total) * 1e9)
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    from datetime import datetime

    try:
        stamp = text.replace("Z", "+00:00")
        if "." in stamp:  # fromisoformat takes at most microseconds
            head, _, rest = stamp.partition(".")
            digits = "".join(c for c in rest if c.isdigit())
            tz = rest[len(digits):]
            stamp = f"{head}.{digits[:6]}{tz}"
        return int(datetime.fromisoformat(stamp).timestamp() * 1e9)
    except ValueError:
        raise SystemExit(f"Error: invalid time {text!r}") from None


def rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def ago(seconds: float) -> str:
    s = int(max(0, seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "Less than a second ago" if s < 1 else f"{s} second{'s' if s != 1 else ''} ago"


def to_json(value: Any) -> str:
    import json

    return json.dumps(value, indent=4)


def each(client: Client, names: list[str], op: Any) -> int:
    rc = 0
    for name in names:
        try:
            op(name)
            out(name)
        except VarpodError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc



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

