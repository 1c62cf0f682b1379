"""Detach key sequences (``ctrl-p,ctrl-q``): parsed by the daemon's streams and by the CLI,
which matches them itself when it attaches without stdin."""

from __future__ import annotations

from ..core.errors import InvalidParameter

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_CTRL_PUNCT = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str | None) -> bytes:
    """``ctrl-p,ctrl-q`` (docker's syntax) -> bytes; ``""`` disables detaching."""
    if spec is None:
        spec = DEFAULT_DETACH_KEYS
    if spec == "":
        return b""
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if k.startswith("ctrl-") and len(k) == 6:
            c = k[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            if c in _CTRL_PUNCT:
                out.append(_CTRL_PUNCT[c])
                continue
        elif len(key) == 1 and key.isascii():
            out.append(ord(key))
            continue
        raise InvalidParameter(f"invalid detach key {key[:20]!r}: use ctrl-<a-z@[\\]^_> or one "
                               "character, comma separated", parameter="detach_keys")
    return bytes(out)
