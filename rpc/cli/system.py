"""Daemon-wide commands: serve, events, info, version."""

from __future__ import annotations

import os
import sys

from .common import CLIError, compact_json, go_time_text, is_json, out, parse_time, to_json, yamlish

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser


def _serve_args(p: Parser) -> None:
    p.add_argument("--root", help="state directory (default /var/lib/varpod)")
    p.add_argument("--run-root", help="runtime directory (default /run/varpod)")
    p.add_argument("--config", help="TOML configuration file")


def _events_args(p: Parser) -> None:
    p.add_argument("--since", help="RFC 3339 time, unix seconds, or a duration like 10m")
    p.add_argument("--until", help="RFC 3339 time, unix seconds, or a duration like 10m")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="container, event, image, label, pod, type, volume, network")
    p.add_argument("--format", help="json, or a Go template")
    p.add_argument("--stream", default="true", choices=["true", "false"],
                   help="keep streaming new events (default true)")
    p.add_argument("--no-trunc", default="true", choices=["true", "false"],
                   help="full IDs (default true)")


def _format_args(p: Parser) -> None:
    p.add_argument("-f", "--format", help="json, or a Go template")


# -- events ----------------------------------------------------------------------------------

EVENT_FILTERS = ("container", "event", "image", "label", "pod", "type", "volume", "network")


def event_filters(items: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f'invalid filter "{item}": give KEY=VALUE')
        if key == "status":
            key = "event"
        if key not in EVENT_FILTERS:
            raise CLIError(f"{key} is an invalid filter: use one of {', '.join(EVENT_FILTERS)}")
        found.setdefault(key, []).append(value)
    return found


def event_matches(ev: dict, filters: dict[str, list[str]]) -> bool:
    """podman's events filters: any value of a key, and every key."""
    return all(any(_event_match(ev, key, v) for v in values) for key, values in filters.items())


def _event_match(ev: dict, key: str, value: str) -> bool:
    attrs = ev.get("attributes") or {}
    if key == "container":
        return ev["type"] == "container" and (value == ev["name"] or ev["id"].startswith(value))
    if key == "event":
        return ev["action"] == value
    if key == "type":
        return ev["type"] == value
    if key == "label":
        k, sep, v = value.partition("=")
        return k in attrs and (not sep or attrs[k] == v)
    if key == "image":
        if ev["type"] == "image":
            return value == ev["name"] or ev["id"].startswith(value)
        return value == attrs.get("image")
    # pod, volume, network: events of that type about that object
    return ev["type"] == key and (value == ev["name"] or ev["id"].startswith(value))


def podman_event(ev: dict) -> dict[str, Any]:
    """The event as podman's JSON has it (ID, Image, Name, Status, Time, Type, Attributes)."""
    from .common import rfc3339

    attrs = dict(ev.get("attributes") or {})
    out_ = {"ID": ev["id"], "Image": attrs.get("image", ""), "Name": ev["name"],
            "Status": ev["action"], "Time": rfc3339(ev["time"]), "Type": ev["type"],
            "Attributes": attrs}
    code = attrs.get("exitCode")
    if ev["action"] == "died" and code is not None and str(code).lstrip("-").isdigit():
        out_["ContainerExitCode"] = int(code)
    if not out_["Image"]:
        del out_["Image"]
    return out_


def event_text(ev: dict, no_trunc: bool) -> str:
    """podman's line: ``<time> container start <id> (image=, name=web, ...)``."""
    attrs = dict(ev.get("attributes") or {})
    image = attrs.pop("image", "")
    shown = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
    ident = ev["id"] if no_trunc else ev["id"][:12]
    return (f"{go_time_text(ev['time'])} {ev['type']} {ev['action']} {ident} "
            f"(image={image}, name={ev['name']}{', ' + shown if shown else ''})")


def cmd_events(client: Client, a: Args) -> int:
    since = parse_time(a.since)
    until = parse_time(a.until)
    stream = a.stream == "true"
    filters = event_filters(a.filter)
    fmt = a.format
    tmpl = None
    if fmt is not None and not is_json(fmt):
        from .template import Template, normalize

        tmpl = Template("events", normalize(fmt))
    events = client.events(since=since, since_seq=0 if since is None and not stream else None,
                           until=until, stream=stream)
    try:
        for ev in events:
            if not event_matches(ev, filters):
                continue
            if tmpl is not None:
                sys.stdout.write(tmpl.execute(_event_view(ev)))
            elif fmt is not None:
                out(compact_json(podman_event(ev)))
            else:
                out(event_text(ev, a.no_trunc == "true"))
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def _event_view(ev: dict) -> Any:
    from .template import GoMap, GoTime, View

    data = podman_event(ev)
    data["Attributes"] = GoMap(data["Attributes"])
    data.setdefault("Image", "")
    return View(data, {"Time": GoTime(ev["time"]), "TimeNano": ev["time"]}, "events.Event")


# -- info and version --------------------------------------------------------------------------


def cmd_info(client: Client, a: Args) -> int:
    info = client.info()
    if a.format is None:
        out(yamlish(info))
    elif is_json(a.format):
        out(to_json(info))
    else:
        from .template import podman_shaped, render_one

        sys.stdout.write(render_one(a.format, podman_shaped(info), name="info"))
    return 0


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine,
                                                                                       machine)


def version_info(server: dict | None) -> dict[str, Any]:
    from ... import __version__

    client = {"APIVersion": __version__, "Version": __version__,
              "PythonVersion": sys.version.split()[0], "OsArch": f"linux/{_arch()}", "Os": "linux"}
    data: dict[str, Any] = {"Client": client}
    if server is not None:
        data["Server"] = {"APIVersion": server["version"], "Version": server["version"],
                          "OsArch": f"linux/{_arch()}", "Os": "linux", "Pid": server["pid"],
                          "Runtime": server["default_runtime"]}
    return data


def cmd_version(client: None, a: Args) -> int:
    """Client and daemon versions; the client's alone (and exit 125) when no daemon answers."""
    from ...core.errors import VarpodError
    from ..client import Client

    server, problem = None, None
    try:
        with Client(a.socket, raw=True) as c:
            server = c.info()
    except VarpodError as e:
        problem = e.message
    data = version_info(server)
    if a.format is None:
        _print_version(data)
    elif is_json(a.format):
        out(to_json(data))
    else:
        from .template import render_one

        sys.stdout.write(render_one(a.format, data, name="version"))
    if problem is not None:
        raise CLIError(problem)
    return 0


def _print_version(data: dict[str, Any]) -> None:
    c = data["Client"]
    rows = [("Client:", "varpod"), ("Version:", c["Version"]), ("API Version:", c["APIVersion"]),
            ("Python Version:", c["PythonVersion"]), ("OS/Arch:", c["OsArch"])]
    s = data.get("Server")
    if s is not None:
        rows += [("", ""), ("Server:", "varpod daemon"), ("Version:", s["Version"]),
                 ("API Version:", s["APIVersion"]), ("OS/Arch:", s["OsArch"]),
                 ("Runtime:", s["Runtime"])]
    for label, value in rows:
        out(f"{label:<16}{value}".rstrip())


def cmd_serve(client: None, a: Args) -> int:
    from ..daemon import load_config, serve

    cfg = load_config(a.config)
    level = {"trace": "debug", "warn": "warning", "fatal": "critical", "panic": "critical"}.get(
        a.log_level or "", a.log_level)
    overrides = {k: v for k, v in (("root", a.root), ("run_root", a.run_root),
                                   ("socket", a.socket), ("log_level", level)) if v}
    if overrides:
        import msgspec

        cfg = msgspec.structs.replace(cfg, **overrides)
    return serve(cfg)


# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "serve": (_serve_args, cmd_serve),
    "events": (_events_args, cmd_events),
    "info": (_format_args, cmd_info),
    "version": (_format_args, cmd_version),
}
