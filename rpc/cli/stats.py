"""``stats`` and ``top`` (containers; ``pod stats``/``pod top`` print through here too)."""

from __future__ import annotations

import sys

from ..fastargs import REMAINDER
from .common import field_cell, is_json, out, render, to_json

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ..client import Client
    from . import Args, Parser

CLEAR = "\033[2J\033[H"  # a refreshed table replaces the last one on a terminal


def stats_flags(p: Parser, what: str) -> None:
    p.add_argument("--no-stream", action="store_true", help="print once instead of refreshing")
    p.add_argument("-i", "--interval", help="seconds between refreshes (default 5)")
    p.add_argument("--format", help="table (default), json, or a Go template such as "
                                    "'table {{.Name}} {{.CPUPerc}} {{.MemUsage}}'")
    p.add_argument("--no-trunc", action="store_true", help="full IDs")
    # Optional names, and the flags above may follow them, as podman allows: see stats_args().
    p.add_argument("names", nargs=REMAINDER, metavar=what, help="default: all")


def _stats_args(p: Parser) -> None:
    stats_flags(p, "CONTAINER")


_FLAGS = {"--no-stream": "no_stream", "--no-trunc": "no_trunc"}
_VALUED = {"--format": "format", "-i": "interval", "--interval": "interval"}


def stats_args(a: Args) -> tuple[list[str], float | None]:
    """The names, with any flag written after them taken out (a positional list that may be
    empty is not one the CLI's fast parser reads); and the interval as a number."""
    names, words = [], list(a.names)
    while words:
        word = words.pop(0)
        key, eq, value = word.partition("=")
        if word in _FLAGS:
            setattr(a, _FLAGS[word], True)
        elif key in _VALUED and (eq or words):
            setattr(a, _VALUED[key], value if eq else words.pop(0))
        elif word.startswith("-") and word != "-":
            raise SystemExit(f"Error: unknown flag {word!r}")
        else:
            names.append(word)
    interval = None
    if a.interval is not None:
        try:
            interval = float(a.interval)
        except ValueError:
            raise SystemExit(f"Error: --interval {a.interval!r} is not a number of seconds") from None
    return names, interval


def _top_args(p: Parser) -> None:
    p.add_argument("name")
    p.add_argument("descriptors", nargs=REMAINDER,
                   help="podman's descriptors (user,pid,ppid,pcpu,etime,tty,time,args ...) or "
                        "ps(1) options, run inside the container")


# -- sizes and durations as podman prints them (go-units, Go's time.Duration) -------------


def human_size(n: float, base: int = 1000) -> str:
    """go-units' HumanSize (``487.4kB``) or, with base 1024, BytesSize (``476KiB``)."""
    units = (["B", "kB", "MB", "GB", "TB", "PB", "EB"] if base == 1000 else
             ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.4g}{units[i]}"


def go_duration(ns: int) -> str:
    from ...core.top import go_duration as fmt

    return fmt(ns)


def _percent(value: float) -> str:
    return f"{value:.2f}%"


def _columns(s: dict, trunc: bool) -> dict[str, str]:
    ident = s["ContainerID"] if not trunc else s["ContainerID"][:12]
    return {
        "id": ident, "name": s["Name"], "cpu": _percent(s["CPU"]),
        "mem": f"{human_size(s['MemUsage'])} / {human_size(s['MemLimit'])}",
        "mem_bytes": f"{human_size(s['MemUsage'], 1024)} / {human_size(s['MemLimit'], 1024)}",
        "mem_percent": _percent(s["MemPerc"]),
        "net": f"{human_size(s['NetInput'])} / {human_size(s['NetOutput'])}",
        "block": f"{human_size(s['BlockInput'])} / {human_size(s['BlockOutput'])}",
        "pids": str(s["PIDs"]), "cpu_time": go_duration(s["CPUNano"]),
        "avg_cpu": _percent(s["AvgCPU"]),
        "pod": s["Pod"] if not trunc else s["Pod"][:12],
    }


def table(rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, two spaces apart, as podman's tabwriter."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
                     for r in rows)


# podman's stats headers (containers/stats.go) for the fields whose name does not say it
HEADERS = {"ID": "ID", "UpTime": "CPU TIME", "CPUPerc": "CPU %", "AVGCPU": "Avg CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemUsageBytes": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
           "NetIO": "NET IO", "BlockIO": "BLOCK IO", "PIDS": "PIDS"}
# podman's pod stats headers (pods/stats.go): its override for MEM % names a field "MEM" the
# report does not have, so {{.Mem}} heads its column "MEM" there, and here
POD_HEADERS = {"CPU": "CPU %", "MemUsage": "MEM USAGE/ LIMIT", "MemUsageBytes": "MEM USAGE/ LIMIT",
               "BlockIO": "BLOCK IO"}

# define.ContainerStats' fields the daemon's report carries, under the same names
_RAW = ("AvgCPU", "ContainerID", "Name", "CPU", "CPUNano", "SystemNano", "MemUsage", "MemLimit",
        "MemPerc", "NetInput", "NetOutput", "BlockInput", "BlockOutput", "PIDs")


def container_view(s: dict, trunc: bool) -> Any:
    """A container's stats as podman's stats templates see them: define.ContainerStats' fields
    and containerStats' methods (``.CPUPerc``, ``.MemUsage`` as text, ``.ID`` truncated)."""
    from .govalues import View  # not the template engine: the default table

    raw = {k: s[k] for k in _RAW}
    # podman's UpTime (and Duration) is the CPU time the container used, not its wall time
    raw["UpTime"] = raw["Duration"] = s["CPUNano"]
    c = _columns(s, trunc)
    return View(raw, {
        "ID": c["id"], "CPUPerc": c["cpu"], "AVGCPU": c["avg_cpu"], "Up": c["cpu_time"],
        "UpTime": c["cpu_time"], "MemPerc": c["mem_percent"], "NetIO": c["net"],
        "BlockIO": c["block"], "PIDS": c["pids"], "MemUsage": c["mem"],
        "MemUsageBytes": c["mem_bytes"], "ContainerStats": raw,
    }, "containers.containerStats")


# podman's default tables: (header, field)
CONTAINER_TABLE = (("ID", "ID"), ("NAME", "Name"), ("CPU %", "CPUPerc"),
                   ("MEM USAGE / LIMIT", "MemUsage"), ("MEM %", "MemPerc"), ("NET IO", "NetIO"),
                   ("BLOCK IO", "BlockIO"), ("PIDS", "PIDS"), ("CPU TIME", "UpTime"),
                   ("AVG CPU %", "AVGCPU"))
POD_TABLE = (("POD", "Pod"), ("CID", "CID"), ("NAME", "Name"), ("CPU %", "CPU"),
             ("MEM USAGE/ LIMIT", "MemUsage"), ("MEM %", "Mem"), ("NET IO", "NetIO"),
             ("BLOCK IO", "BlockIO"), ("PIDS", "PIDS"))


def container_json(stats: list[dict], trunc: bool) -> str:
    out_ = []
    for s in stats:
        c = _columns(s, trunc)
        out_.append({"id": c["id"], "name": c["name"], "cpu_time": c["cpu_time"],
                     "cpu_percent": c["cpu"], "avg_cpu": c["avg_cpu"], "mem_usage": c["mem"],
                     "mem_percent": c["mem_percent"], "net_io": c["net"], "block_io": c["block"],
                     "pids": c["pids"]})
    return to_json(out_)


def pod_rows(stats: list[dict], trunc: bool) -> list[dict]:
    """podman's PodStatsReports: every field already text."""
    out_ = []
    for s in stats:
        c = _columns(s, trunc)
        out_.append({"CPU": c["cpu"], "MemUsage": c["mem"], "MemUsageBytes": c["mem_bytes"],
                     "Mem": c["mem_percent"], "NetIO": c["net"], "BlockIO": c["block"],
                     "PIDS": c["pids"], "Pod": c["pod"], "CID": c["id"], "Name": c["name"]})
    return out_


def _wants_json(a: Args) -> bool:
    return a.format is not None and is_json(a.format)


def _captured(show: Callable[[], None]) -> str:
    """What render() prints, as text: a refreshed screen is cleared only once all of it
    rendered (a template that fails prints nothing)."""
    import io

    real, sys.stdout = sys.stdout, io.StringIO()
    try:
        show()
        return sys.stdout.getvalue()
    finally:
        sys.stdout = real


def container_text(a: Args) -> Callable[[list[dict]], str]:
    trunc = not a.no_trunc

    def text(stats: list[dict]) -> str:
        if _wants_json(a):
            return container_json(stats, trunc) + "\n"
        views = [container_view(s, trunc) for s in stats]
        columns = [(header, field_cell(name)) for header, name in CONTAINER_TABLE]
        return _captured(lambda: render(a.format, views, columns, headers=HEADERS, name="stats"))

    return text


def pod_text(a: Args) -> Callable[[list[dict]], str]:
    trunc = not a.no_trunc

    def text(stats: list[dict]) -> str:
        rows = pod_rows(stats, trunc)
        if _wants_json(a):
            return to_json(rows) + "\n"
        columns = [(header, field_cell(name)) for header, name in POD_TABLE]
        if a.format is None or a.format.strip() in ("", "table"):
            # podman's default pod stats table says "--" in every column when nothing runs
            rows = rows or [dict.fromkeys((name for _, name in POD_TABLE), "--")]
            return _captured(lambda: render(None, rows, columns))
        if not rows:
            return ""  # podman's user templates print nothing, not even their headers
        from .govalues import View

        views = [View(r, {}, "entities.PodStatsReport") for r in rows]
        return _captured(lambda: render(a.format, views, columns, headers=POD_HEADERS,
                                        name="pod stats"))

    return text


def print_stats(reports: Iterable[list[dict]], a: Args, text: Callable[[list[dict]], str]) -> int:
    """One report (--no-stream), or each one as it comes, the last replaced on a terminal."""
    refresh = not a.no_stream and not _wants_json(a) and sys.stdout.isatty()
    try:
        for stats in reports:
            shown = text(stats)
            sys.stdout.write((CLEAR if refresh else "") + shown)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return 0


def reports(fetch: Callable[..., Any], a: Args, name: str) -> Iterable[list[dict]]:
    names, interval = stats_args(a)
    if a.format is not None and not is_json(a.format) and a.format.strip() not in ("", "table"):
        from .template import parse_report

        parse_report(a.format, name)  # a template that does not parse fails before any stats
    if a.no_stream:
        return [fetch(names or None, interval=interval)]
    return fetch(names or None, stream=True, interval=interval)


def cmd_stats(client: Client, a: Args) -> int:
    return print_stats(reports(client.stats, a, "stats"), a, container_text(a))


def print_top(reply: dict) -> int:
    rows = [tuple(reply["titles"])] + [tuple(r) for r in reply["processes"]]
    width = len(rows[0])
    rows = [r + ("",) * (width - len(r)) if len(r) < width else r[:width] for r in rows]
    if rows[0]:
        out(table(rows))
    return 0


def cmd_top(client: Client, a: Args) -> int:
    return print_top(client.top(a.name, a.descriptors or None))


COMMANDS = {
    "stats": (_stats_args, cmd_stats),
    "top": (_top_args, cmd_top),
}
