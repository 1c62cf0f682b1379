"""podman's container filters (``ps --filter``, and ``stop``/``rm``/... ``--filter``), applied to
the daemon's container summaries.

Filters with the same key match if any value does (labels: if all do); filters with
different keys must all match. Keys about images, pods, networks and volumes match
the summary's ``Image``/``ImageID``, ``Pod``/``PodName``, ``Networks`` and ``Mounts`` with
``MountSources``.
"""

from __future__ import annotations

from .common import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# podman's container states (define.StringToContainerStatus), and which of varpod's each means
STATES = {
    "created": ("configured", "created"), "configured": ("configured",), "running": ("running",),
    "paused": ("paused",), "exited": ("exited", "stopped"), "stopped": ("exited", "stopped"),
    "stopping": ("stopping",), "removing": ("removing",), "unknown": ("unknown",),
}
KEYS = ("id", "name", "label", "label!", "status", "exited", "ancestor", "before", "since",
        "until", "pod", "network", "volume", "health", "command")


FilterError = CLIError  # a --filter the CLI cannot apply: exit 125, the message as podman's


def parse(filters: list[str]) -> dict[str, list[str]]:
    """``KEY=VALUE`` words grouped by key; an unknown key or a word without ``=`` is an error."""
    out: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise FilterError(f'invalid filter "{item}"')
        if key not in KEYS:
            raise FilterError(f"{key} is an invalid filter")
        out.setdefault(key, []).append(value)
    return out


def wants_all(filters: list[str]) -> bool:
    """A status filter looks at containers in every state, as podman's does."""
    return any(f.partition("=")[0] == "status" for f in filters)


def matching(ctrs: list[dict], filters: list[str]) -> list[dict]:
    """The containers every filter matches."""
    tests = [_test(key, values, ctrs) for key, values in parse(filters).items()]
    return [c for c in ctrs if all(t(c) for t in tests)]


def _test(key: str, values: list[str], ctrs: list[dict]) -> Callable[[dict], bool]:
    if key == "id":
        import re

        pats = [_regex(v, re) for v in values]
        return lambda c: any(p.match(c["Id"]) for p in pats)
    if key == "name":
        import re

        pats = [_regex(v.replace("/", ""), re) for v in values]
        return lambda c: any(p.search(n) for p in pats for n in c["Names"])
    if key == "command":
        import re

        pats = [_regex(v, re) for v in values]
        return lambda c: bool(c["Command"]) and any(p.search(c["Command"][0]) for p in pats)
    if key == "label":
        return lambda c: all(_label(c.get("Labels") or {}, v) for v in values)
    if key == "label!":
        return lambda c: not any(_label(c.get("Labels") or {}, v) for v in values)
    if key == "status":
        states = set()
        for v in values:
            if v not in STATES:
                raise FilterError(f"unknown container state: {v}: invalid argument")
            states.update(STATES[v])
        return lambda c: c["State"] in states
    if key == "exited":
        codes = set()
        for v in values:
            try:
                codes.add(int(v))
            except ValueError:
                raise FilterError(f"exited code out of range {v!r}: not an integer") from None
        return lambda c: bool(c["Exited"]) and c["ExitCode"] in codes
    if key in ("before", "since"):
        when = min(_created(_lookup(ctrs, v)) for v in values)
        if key == "before":
            return lambda c: _created(c) < when
        return lambda c: _created(c) > when
    if key == "until":
        from .common import parse_time

        limit = max(parse_time(v) or 0 for v in values)
        return lambda c: _created(c) < limit
    if key == "ancestor":
        return lambda c: any(v and (v in (c.get("Image") or "") or v in (c.get("ImageID") or ""))
                             for v in values)
    if key == "pod":
        return lambda c: bool(c.get("Pod")) and any(
            v in (c.get("PodName"), c.get("Pod")) or (len(v) >= 3 and c["Pod"].startswith(v))
            for v in values)
    if key == "network":
        return lambda c: any(v in (c.get("Networks") or ()) for v in values)
    if key == "volume":
        return lambda c: any(_mounts(c, v) for v in values)
    # health: varpod has no health checks, so no container has a health status to match
    return lambda c: any(v == c.get("Health") for v in values)


def _regex(text: str, re: Any) -> Any:
    try:
        return re.compile(text)
    except re.error as e:
        raise FilterError(f"invalid regular expression {text!r}: {e}") from None


def _mounts(c: dict, want: str) -> bool:
    """volume=NAME|SOURCE|DEST, or SOURCE:DEST: a volume's name or a bind's host path (the
    summary's ``MountSources``), with where it is mounted (``Mounts``) when given."""
    source, sep, dest = want.partition(":")
    pairs = zip(c.get("MountSources") or (), c.get("Mounts") or (), strict=False)
    if sep:
        return any(s == source and d == dest for s, d in pairs)
    return any(want in (s, d) for s, d in pairs)


def _label(labels: dict[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value


def _created(c: dict) -> int:
    from .common import parse_time

    return parse_time(c["CreatedAt"]) or c["Created"] * 10**9


def _lookup(ctrs: list[dict], ref: str) -> dict:
    for c in ctrs:
        if ref in c["Names"] or c["Id"] == ref:
            return c
    found = [c for c in ctrs if c["Id"].startswith(ref)] if ref else []
    if len(found) == 1:
        return found[0]
    raise FilterError(f'no container with name or ID "{ref}" found: no such container')
