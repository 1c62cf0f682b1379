"""Sizes and CPU counts as people type them (``64m``, ``0.5``), for the CLI and the client.

Plain string work on purpose: the CLI imports this, and ``re`` alone would add
to every start-up. Ranges are the daemon's to check (core/model.py); this only
turns text into numbers, naming the field when the text is not one.
"""

from __future__ import annotations

from .errors import InvalidConfig

# podman's (go-units RAMInBytes) suffixes: binary, case-insensitive, an optional "i" and "b".
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, field: str = "memory") -> int:
    """``64m``, ``1.5g``, ``512KiB``, ``100`` (bytes) -> bytes."""
    s = text.strip().lower()
    size = _size(s[1:] if s.startswith("-") else s)
    if size is None:
        raise InvalidConfig(f"{field} {text[:40]!r} is not a size (like 512k, 64m or 1.5g)",
                            field=field)
    if s.startswith("-"):
        raise InvalidConfig(f"{field} {text[:40]!r} is negative", field=field)
    return size


def _size(s: str) -> int | None:
    end = 0
    while end < len(s) and s[end] in "0123456789.":
        end += 1
    number, suffix = s[:end], s[end:].lstrip(" ")
    unit = suffix[:1] if suffix[:1] in "kmgtp" else ""
    tail = suffix[len(unit):]
    if not _is_decimal(number) or tail not in (("", "b", "i", "ib") if unit else ("", "b")):
        return None
    scale = _UNITS[unit]
    if "." in number:
        return int(float(number) * scale)
    return int(number) * scale


def _is_decimal(number: str) -> bool:
    whole, _, frac = number.partition(".")
    return whole.isdigit() and (frac == "" or frac.isdigit()) and not number.endswith(".")


def parse_cpus(text: str) -> float:
    """``0.5``, ``2`` -> a number of CPUs (finite; the daemon checks the range)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidConfig(f"cpus {text[:40]!r} is not a number of CPUs (like 0.5 or 2)",
                            field="cpus")
    return value


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration, as podman says how long ago: "About a minute", "3 hours"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
