"""``inspect`` (and ``container inspect``): podman-shaped JSON, or a Go template, of containers
and, by ``--type``, of the other objects once their interfaces are served.

Each type is inspected through a client method (``INSPECTORS``); the images, pods,
networks and volumes areas add theirs (``image_inspect(name)`` ...) to the client API,
and ``inspect --type image`` works from then on. Until a type's method exists, asking
for it is an error naming the type. Those areas' own ``image inspect`` etc. can call
``inspect_objects`` with their type.
"""

from __future__ import annotations

import sys

from ...core.errors import VarpodError
from .common import CALLS, EXIT_ERROR, CLIError, call_all, error, is_json, out, to_json

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser

# type -> the client method that inspects one object of it; "all" tries them in this order
INSPECTORS = {"container": "inspect", "image": "image_inspect", "volume": "volume_inspect",
              "pod": "pod_inspect", "network": "network_inspect"}


def _inspect_args(p: Parser) -> None:
    p.add_argument("-f", "--format", help="json (default) or a Go template")
    p.add_argument("-s", "--size", action="store_true", help="add SizeRw and SizeRootFs (containers)")
    p.add_argument("-t", "--type", choices=[*INSPECTORS, "all"],
                   help="what the names are (default: all, tried in turn)")
    p.add_argument("-l", "--latest", action="store_true", help="the latest created container")
    p.add_argument("names", nargs="*", default=[], metavar="NAME")


def cmd_inspect(client: Client, a: Args) -> int:
    kind = a.type or ("container" if a.cmd == "container" else "all")
    names = list(a.names)
    if a.latest:
        if names:
            raise CLIError("--latest and names cannot be used together")
        ctrs = client.list(all=True)
        if not ctrs:
            raise CLIError("no containers to inspect")
        names = [max(ctrs, key=lambda c: c["CreatedAt"])["Id"]]
        kind = "container"
    if not names:
        raise CLIError("inspect needs at least one name or ID (or --latest)")
    return inspect_objects(client, names, kind, a.format, size=a.size)


def inspect_objects(client: Client, names: list[str], kind: str, fmt: str | None, *,
                    size: bool = False) -> int:
    """Print the objects as podman's inspect does: found ones first (JSON or the template),
    then an ``Error:`` line for each missing one; 125 if any was."""
    results: dict[int, tuple[str, Any]] = {}  # name's index -> (type, object), or ("", message)
    pending = list(range(len(names)))
    for k, make in _methods(kind):
        replies = call_all(client, [make(names[i]) for i in pending])
        missing = []
        for i, reply in zip(pending, replies, strict=True):
            if not isinstance(reply, VarpodError):
                results[i] = (k, _unwrap(reply))
            elif kind == "all" and type(reply).__name__.startswith("NoSuch"):
                missing.append(i)
            else:
                results[i] = ("", reply.message)
        pending = missing
    for i in pending:
        results[i] = ("", f'no such object: "{names[i]}"')
    found = [results[i] for i in range(len(names)) if results[i][0]]
    if size:
        _add_sizes(client, [obj for k, obj in found if k == "container"])
    rc = 0
    objects = [obj for _, obj in found]
    if fmt is None or fmt.strip() == "" or is_json(fmt):
        out(to_json(objects))
    else:
        from .template import parse_report, podman_shaped

        tmpl, _ = parse_report(fmt, "inspect")
        sys.stdout.write(tmpl.execute([_template_value(k, obj, podman_shaped) for k, obj in found]))
    for i in range(len(names)):
        if not results[i][0]:
            error(results[i][1])
            rc = EXIT_ERROR
    return rc


def _template_value(kind: str, obj: Any, shaped: Any) -> Any:
    """What a template sees: podman's inspect JSON by its Go names, except a network's,
    whose JSON keys (``name``, ``subnets``) are json tags of types.Network's Go fields."""
    if kind == "network":
        from .networks import network_inspect_view

        return network_inspect_view(obj)
    return shaped(obj)


def _methods(kind: str) -> list[tuple[str, Any]]:
    """(type, name -> (method, parameters)) for each type to try."""
    kinds = list(INSPECTORS) if kind == "all" else [kind]
    found: list[tuple[str, Any]] = []
    for k in kinds:
        make = getattr(CALLS, INSPECTORS[k], None)
        if make is None:
            if kind != "all":
                raise CLIError(f"inspecting {k}s is not supported by this varpod: it has no "
                               f"{k} support yet")
            continue
        found.append((k, make))
    return found


def _unwrap(reply: dict) -> Any:
    """An inspect reply holds one object under one key (``container``, ``image`` ...)."""
    return next(iter(reply.values())) if len(reply) == 1 else reply


def _add_sizes(client: Client, ctrs: list[dict]) -> None:
    replies = call_all(client, [CALLS.disk_usage(c["Id"]) for c in ctrs])
    for c, reply in zip(ctrs, replies, strict=True):
        if not isinstance(reply, VarpodError):
            c["SizeRw"], c["SizeRootFs"] = reply["rw"], reply["rootfs"]


COMMANDS = {"inspect": (_inspect_args, cmd_inspect)}
