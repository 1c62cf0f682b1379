"""Daemon-wide commands: serve, events, info."""

from __future__ import annotations

import sys

from .common import out, pairs, parse_time, rfc3339, to_json, yamlish

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from ..client import Client
    from . import Args, Parser


def _serve_args(p: Parser) -> None:
    p.add_argument("--root", help="state directory (default /var/lib/varpod)")
    p.add_argument("--run-root", help="runtime directory (default /run/varpod)")
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--log-level", help="debug, info, warning, error")


def _events_args(p: Parser) -> None:
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--stream", default="true", choices=["true", "false"],
                   help="keep streaming new events (default true)")


def _format_args(p: Parser) -> None:
    p.add_argument("--format", choices=["text", "json"], default="text")


def cmd_events(client: Client, a: Args) -> int:
    since = parse_time(a.since)
    stream = a.stream == "true"
    events = client.events(since=since, since_seq=0 if since is None and not stream else None,
                           until=parse_time(a.until), stream=stream,
                           filters=pairs(a.filter, "filter") or None)
    try:
        for ev in events:
            if a.format == "json":
                out(to_json(ev).replace("\n", "").replace("    ", " "))
            else:
                attrs = ", ".join(f"{k}={v}" for k, v in sorted({"name": ev["name"],
                                                                 **ev["attributes"]}.items()))
                out(f"{rfc3339(ev['time'])} {ev['type']} {ev['action']} {ev['id']} ({attrs})")
            sys.stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    return 0


def cmd_info(client: Client, a: Args) -> int:
    info = client.info()
    if a.format == "json":
        out(to_json(info))
        return 0
    out(yamlish(info))
    return 0


def cmd_serve(client: None, a: Args) -> int:
    from ..daemon import load_config, serve

    cfg = load_config(a.config)
    overrides = {k: v for k, v in (("root", a.root), ("run_root", a.run_root),
                                   ("socket", a.socket), ("log_level", a.log_level)) if v}
    if overrides:
        import msgspec

        cfg = msgspec.structs.replace(cfg, **overrides)
    return serve(cfg)




# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "serve": (_serve_args, cmd_serve),
    "events": (_events_args, cmd_events),
    "info": (_format_args, cmd_info),
}
