"""Host paths in mount specs are the client's: made absolute here, in the client, before the
daemon (whose working directory means nothing to the user) reads them.

Plain string work: the CLI imports this on ``run``/``create``.
"""

from __future__ import annotations

import os


def absolute_volume(spec: str) -> str:
    """``-v ./dir:/data:ro`` -> ``-v /cwd/dir:/data:ro``; names and anonymous volumes unchanged."""
    source, sep, rest = spec.partition(":")
    if sep and source.startswith("."):
        return os.path.abspath(source) + sep + rest
    return spec


def absolute_mount(spec: str) -> str:
    """``--mount type=bind,src=./dir,...`` with the source made absolute."""
    items = spec.split(",")
    if "type=bind" not in (i.strip() for i in items):
        return spec
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if eq and key.strip() in ("src", "source") and value and not value.startswith("/"):
            item = f"{key}={os.path.abspath(value)}"
        out.append(item)
    return ",".join(out)
