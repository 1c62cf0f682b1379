"""``ps``: podman's container listing, its filters, sorts, columns and templates."""

from __future__ import annotations

import time

from .common import CALLS, CLIError, ago, call_all, human_size, out, render

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser

SORTS = ("command", "created", "id", "image", "names", "runningfor", "size", "status", "pod")

# Headers of fields whose name does not say it, as podman's ps has them (for `table` templates).
HEADERS = {"ID": "container id", "CreatedHuman": "created", "RunningFor": "created",
           "Pod": "pod id", "PodName": "podname", "Networks": "networks", "ImageID": "image id"}


def _ps_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="every container, not only running ones")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="id, name, label, label!, status, exited, ancestor, before, since, "
                        "until, pod, network, volume, health, command")
    p.add_argument("--format", help="json, table, or a Go template")
    p.add_argument("-n", "--last", type=int, help="the N last created containers (all states)")
    p.add_argument("-l", "--latest", action="store_true", help="the latest created container")
    p.add_argument("--no-trunc", action="store_true", help="full IDs and commands")
    p.add_argument("--noheading", action="store_true", help="no header row")
    p.add_argument("-p", "--pod", action="store_true", help="add the POD ID and PODNAME columns")
    p.add_argument("-q", "--quiet", action="store_true", help="IDs only")
    p.add_argument("-s", "--size", action="store_true", help="add the SIZE column")
    p.add_argument("--sort", choices=SORTS, default="created")
    p.add_argument("--sync", action="store_true", help="sync each container with the runtime first")
    p.add_argument("--external", action="store_true",
                   help="also containers varpod does not manage: there are none (it shares "
                        "no storage with other tools)")


def cmd_ps(client: Client, a: Args) -> int:
    if a.last is not None and a.last >= 0 and a.latest:
        raise CLIError("last and latest are mutually exclusive")
    if a.quiet and a.size:
        raise CLIError("quiet conflicts with size and namespace")
    fmt = a.format
    every = a.all or a.latest or (a.last is not None and a.last >= 0)
    if a.filter:
        from .filters import parse, wants_all

        parse(a.filter)  # a bad filter is refused before anything is listed
        every = every or wants_all(a.filter)
    ctrs = client.list(all=every)
    if a.sync and ctrs:
        call_all(client, [CALLS.sync(c["Id"]) for c in ctrs])
        ctrs = client.list(all=every)
    if a.filter:
        from .filters import matching

        ctrs = matching(ctrs, a.filter)
    ctrs = select(ctrs, a.latest, a.last)
    sizes = a.size or (fmt is not None and ".Size" in fmt) or a.sort == "size"
    if sizes:
        add_sizes(client, ctrs)
    ctrs = sort(ctrs, a.sort)
    if a.quiet and (fmt is None or fmt.strip() in ("", "table")):
        for c in ctrs:
            out(c["Id"] if a.no_trunc else c["Id"][:12])
        return 0
    pods = a.pod or (fmt is not None and ".PodName" in fmt)
    render(fmt, ctrs, columns(a.no_trunc, pods, a.size), view=viewer(a.no_trunc), headers=HEADERS,
           name="ps", noheading=a.noheading)
    return 0


def select(ctrs: list[dict], latest: bool, last: int | None) -> list[dict]:
    """--latest: the newest container; --last N: the N newest."""
    if latest:
        last = 1
    if last is None or last < 0:
        return ctrs
    newest = sorted(ctrs, key=lambda c: c["CreatedAt"], reverse=True)[:last]
    return newest


def sort(ctrs: list[dict], by: str) -> list[dict]:
    keys: dict[str, Any] = {
        "created": lambda c: c["CreatedAt"], "id": lambda c: c["Id"],
        "image": lambda c: c.get("Image") or "", "command": lambda c: " ".join(c["Command"]),
        "names": lambda c: c["Names"][0], "runningfor": lambda c: c.get("StartedAt") or 0,
        "status": lambda c: c["State"], "pod": lambda c: c.get("Pod") or "",
        "size": lambda c: (c.get("Size") or {}).get("rootFsSize", 0),
    }
    return sorted(ctrs, key=keys[by])


def add_sizes(client: Client, ctrs: list[dict]) -> None:
    """Each container's disk use (podman's Size: rw and rootfs bytes), asked side by side."""
    replies = call_all(client, [CALLS.disk_usage(c["Id"]) for c in ctrs])
    for c, reply in zip(ctrs, replies, strict=True):
        if isinstance(reply, Exception):
            c["Size"] = None
        else:
            c["Size"] = {"rootFsSize": reply["rootfs"], "rwSize": reply["rw"]}


def created_ns(c: dict) -> int:
    """When it was created, in ns: the summary's seconds and its RFC 3339 text's fraction
    (read here without datetime, which a template over many rows would otherwise import)."""
    frac = c.get("CreatedAt", "").partition(".")[2].rstrip("Z")
    return c["Created"] * 10**9 + (int(frac[:9].ljust(9, "0")) if frac.isdigit() else 0)


def size_text(c: dict) -> str:
    size = c.get("Size")
    if not size:
        return ""
    return f"{human_size(size['rwSize'])} (virtual {human_size(size['rootFsSize'])})"


def command_text(c: dict, no_trunc: bool) -> str:
    cmd = " ".join(c["Command"])
    return cmd if no_trunc or len(cmd) <= 17 else cmd[:17] + "..."


def created_text(c: dict, now: float | None = None) -> str:
    return ago((now or time.time()) - c["Created"])


def ports_text(c: dict) -> str:
    """podman's ps form of the summary's Ports: ``0.0.0.0:8080->80/tcp, ...``."""
    ports = c.get("Ports")
    if not ports:
        return ""
    if isinstance(ports, str):
        return ports
    parts = []
    for p in ports:
        host_ip = p.get("host_ip") or "0.0.0.0"
        proto = p.get("protocol") or "tcp"
        span = p.get("range") or 1
        hp, cp = p.get("host_port", 0), p.get("container_port", 0)
        if span > 1:
            parts.append(f"{host_ip}:{hp}-{hp + span - 1}->{cp}-{cp + span - 1}/{proto}")
        else:
            parts.append(f"{host_ip}:{hp}->{cp}/{proto}")
    return ", ".join(parts)


def columns(no_trunc: bool, pods: bool, sizes: bool) -> list[tuple[str, Any]]:
    """podman's default ps table: its headers, in its order."""
    now = time.time()
    cols: list[tuple[str, Any]] = [
        ("CONTAINER ID", (lambda c: c["Id"]) if no_trunc else (lambda c: c["Id"][:12])),
        ("IMAGE", lambda c: c.get("Image") or ""),
        ("COMMAND", lambda c: command_text(c, no_trunc)),
        ("CREATED", lambda c: created_text(c, now)),
        ("STATUS", lambda c: c["Status"]),
        ("PORTS", ports_text),
        ("NAMES", lambda c: c["Names"][0]),
    ]
    if pods:
        cols += [("POD ID", lambda c: (c.get("Pod") or "") if no_trunc else (c.get("Pod") or "")[:12]),
                 ("PODNAME", lambda c: c.get("PodName") or "")]
    if sizes:
        cols.append(("SIZE", size_text))
    return cols


def viewer(no_trunc: bool) -> Any:
    """A summary as podman's ps templates see it: its JSON fields, and psReporter's."""
    now = time.time()

    def view(c: dict) -> Any:
        from .template import GoMap, GoTime, View

        labels = GoMap(c.get("Labels") or {})
        created = GoTime(created_ns(c))
        data = dict(c)
        data["Labels"] = labels

        def size() -> str:
            if c.get("Size") is None:
                raise CLIError("the {{.Size}} of a container needs ps --size")
            return size_text(c)

        return View(data, {
            "ID": c["Id"] if no_trunc else c["Id"][:12],
            "Image": c.get("Image") or "",
            "ImageID": (c.get("ImageID") or "") if no_trunc else (c.get("ImageID") or "")[:12],
            "Command": command_text(c, no_trunc),
            "CreatedAt": created, "Created": created,
            "CreatedHuman": created_text(c, now), "RunningFor": created_text(c, now),
            "Names": c["Names"][0],
            "Networks": ",".join(c.get("Networks") or ()),
            "Ports": ports_text(c),
            "Pod": (c.get("Pod") or "") if no_trunc else (c.get("Pod") or "")[:12],
            "PodName": c.get("PodName") or "",
            "Mounts": list(c.get("Mounts") or ()),
            "Size": size,
            "Label": lambda name: labels.get(name, ""),
            "Restarts": str(c.get("Restarts", 0)),
            "IsInfra": bool(c.get("IsInfra", False)),
        }, "ps.psReporter")

    return view


COMMANDS = {"ps": (_ps_args, cmd_ps)}
