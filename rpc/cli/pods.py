"""``varpod pod ...``: create, start, stop, kill, pause, unpause, restart, rm, ps, inspect,
stats, top, exists; and ``--pod`` for run/create."""

from __future__ import annotations

import sys
import time

from ...core.errors import NoSuchPod, VarpodError
from ..fastargs import REMAINDER
from .common import EXIT_ERROR, CLIError, ago, field_cell, inspect_args, is_json, out, pairs, render, to_json

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..client import Client
    from . import Args, Parser


def pod_flag(p: Parser) -> None:
    """``--pod`` of run and create."""
    p.add_argument("--pod", help="join this pod's namespaces and cgroup (name or ID)")


def _create_args(p: Parser) -> None:
    p.add_argument("--name", help="pod name (default: generated)")
    p.add_argument("--share", action="append", default=None, metavar="NS",
                   help="namespaces members share: cgroup, ipc, net, pid, uts (comma-separated; "
                        "default ipc,net,uts; +pid adds to the default; none)")
    p.add_argument("--hostname", help="hostname of the shared UTS namespace (default: the name)")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--cgroup-parent", help="cgroup the pod's cgroup goes under (default /varpod)")
    p.add_argument("--no-pod-cgroup", action="store_true",
                   help="members' cgroups do not go under a cgroup of the pod's")
    p.add_argument("--share-parent", choices=["true", "false"], default="true",
                   help="podman's name for the pod cgroup (false = --no-pod-cgroup)")
    p.add_argument("--infra", choices=["true", "false"], default="true",
                   help="an infra container holds the shared namespaces (default true)")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[[IP:]HOST:]CTR[/PROTO]",
                   help="publish a port of the pod's (its infra container's) network")
    p.add_argument("--network", "--net", action="append", default=[], metavar="NAME",
                   help="networks of the pod (default: the daemon's default mode; -p alone: bridge)")


def _names(p: Parser) -> None:
    p.add_argument("names", nargs="+", metavar="POD")


def _stop_args(p: Parser) -> None:
    p.add_argument("-t", "--time", type=int, help="seconds before SIGKILL (default: each container's)")
    _names(p)


def _kill_args(p: Parser) -> None:
    p.add_argument("-s", "--signal", default="KILL")
    _names(p)


def _rm_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true",
                   help="stop and remove the pod's containers too")
    p.add_argument("-t", "--time", type=int, help="stop timeout with --force (default 0)")
    _names(p)


def _ps_args(p: Parser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="pod IDs only")
    p.add_argument("--no-trunc", action="store_true", help="full pod and container IDs")
    p.add_argument("--format", help="table (default), json, or a Go template such as "
                                    "'{{.Name}} {{.Status}} {{.NumberOfContainers}}'")
    p.add_argument("-n", "--noheading", action="store_true", help="no header row")
    p.add_argument("--ctr-ids", action="store_true", help="add the IDS column: the containers' IDs")
    p.add_argument("--ctr-names", action="store_true", help="add the NAMES column")
    p.add_argument("--ctr-status", action="store_true", help="add the containers' STATUS column")


def _one(p: Parser) -> None:
    p.add_argument("name", metavar="POD")


def _stats_args(p: Parser) -> None:
    from .stats import stats_flags

    stats_flags(p, "POD")


def _top_args(p: Parser) -> None:
    p.add_argument("name", metavar="POD")
    p.add_argument("descriptors", nargs=REMAINDER, help="podman's descriptors (default "
                   "user,pid,ppid,pcpu,etime,tty,time,args)")


def cmd_create(client: Client, a: Args) -> int:
    share = a.share if a.share is not None else None
    reply = client.pod_create(
        a.name, labels=pairs(a.label, "label") or None, hostname=a.hostname,
        cgroup_parent=a.cgroup_parent,
        pod_cgroup=False if a.no_pod_cgroup or a.share_parent == "false" else None,
        share=share, infra=a.infra == "true", publish=a.publish or None,
        networks=a.network or None)
    out(reply["id"])
    return 0


def _each(names: list[str], op: Callable[[str], Any]) -> int:
    rc = 0
    for name in names:
        try:
            out(op(name))
        except VarpodError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc


def cmd_verb(client: Client, a: Args) -> int:
    return _each(a.names, getattr(client, f"pod_{a.subcmd}"))


def cmd_stop(client: Client, a: Args) -> int:
    return _each(a.names, lambda n: client.pod_stop(n, a.time))


def cmd_restart(client: Client, a: Args) -> int:
    return _each(a.names, lambda n: client.pod_restart(n, a.time))


def cmd_kill(client: Client, a: Args) -> int:
    return _each(a.names, lambda n: client.pod_kill(n, a.signal))


def cmd_rm(client: Client, a: Args) -> int:
    return _each(a.names, lambda n: client.pod_remove(n, force=a.force, timeout=a.time))


def cmd_ps(client: Client, a: Args) -> int:
    if a.quiet and a.format:
        raise CLIError("quiet and format cannot be used together")
    pods = client.pod_list()
    if a.quiet:
        if pods:
            out("\n".join(p["Id"] if a.no_trunc else p["Id"][:12] for p in pods))
        return 0
    if a.format is not None and is_json(a.format):
        out(to_json(pods))
        return 0
    # The default table's cells are the template's fields: the views serve both.
    now = time.time()
    views = [pod_view(p, a.no_trunc, now=now) for p in pods]

    columns = [("POD ID", field_cell("ID")), ("NAME", field_cell("Name")), ("STATUS", field_cell("Status")),
               ("CREATED", field_cell("Created")), ("INFRA ID", field_cell("InfraID"))]
    # podman's default row: the containers' columns asked for, else their number
    asked = [(flag, header, name) for flag, header, name in (
        (a.ctr_ids, "IDS", "ContainerIds"), (a.ctr_names, "NAMES", "ContainerNames"),
        (a.ctr_status, "STATUS", "ContainerStatuses")) if flag]
    columns += [(header, field_cell(name)) for _, header, name in asked] or \
        [("# OF CONTAINERS", field_cell("NumberOfContainers"))]
    render(a.format, views, columns, headers=PS_HEADERS, name="pod ps", noheading=a.noheading)
    return 0


# podman's pod ps headers, for fields whose name does not say it (the rest: the name split)
PS_HEADERS = {"ID": "POD ID", "Id": "POD ID", "InfraID": "INFRA ID", "InfraId": "INFRA ID",
              "NumberOfContainers": "# OF CONTAINERS", "ContainerIds": "IDS",
              "ContainerNames": "NAMES", "ContainerStatuses": "STATUS"}


def pod_view(p: dict, no_trunc: bool, *, now: float) -> Any:
    """A pod summary as podman's pod ps templates see it: its JSON fields, and
    ListPodReporter's (``.ID`` truncated, ``.Created`` how long ago, ``.Networks`` joined)."""
    from .common import parse_time
    from .govalues import GoMap, GoTime, View  # not the template engine: the default table

    short = (lambda i: i) if no_trunc else (lambda i: i[:12])
    created = parse_time(p["Created"]) or 0
    labels = GoMap(p["Labels"] or {})
    ctrs = p["Containers"]
    ident, infra = short(p["Id"]), short(p["InfraId"])
    return View({**p, "Created": GoTime(created), "Labels": labels}, {
        "ID": ident, "Id": ident, "InfraID": infra, "InfraId": infra,
        "Created": ago(now - created / 1e9),
        "Labels": labels, "Label": lambda name: labels.get(name, ""),
        "Networks": ",".join(p["Networks"]),
        "NumberOfContainers": len(ctrs),
        "ContainerIds": ",".join(short(c["Id"]) for c in ctrs),
        "ContainerNames": ",".join(c["Names"] for c in ctrs),
        "ContainerStatuses": ",".join(c["Status"] for c in ctrs),
    }, "pods.ListPodReporter")


def cmd_inspect(client: Client, a: Args) -> int:
    if a.format is not None and a.format.strip() and not is_json(a.format):
        from .inspect import inspect_objects

        return inspect_objects(client, a.names, "pod", a.format)
    found, rc = [], 0
    for name in a.names:
        try:
            found.append(client.pod_inspect(name))
        except VarpodError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
    if found:
        out(to_json(found[0] if len(a.names) == 1 else found))  # one pod: an object, as podman 4
    return rc


def cmd_exists(client: Client, a: Args) -> int:
    try:
        client.pod_inspect(a.name)
    except NoSuchPod:
        return 1
    return 0


def cmd_stats(client: Client, a: Args) -> int:
    from .stats import pod_text, print_stats, reports

    return print_stats(reports(client.pod_stats, a, "pod stats"), a, pod_text(a))


def cmd_top(client: Client, a: Args) -> int:
    from .stats import print_top

    return print_top(client.pod_top(a.name, a.descriptors or None))


COMMANDS = {
    "pod create": (_create_args, cmd_create),
    "pod start": (_names, cmd_verb),
    "pod stop": (_stop_args, cmd_stop),
    "pod kill": (_kill_args, cmd_kill),
    "pod pause": (_names, cmd_verb),
    "pod unpause": (_names, cmd_verb),
    "pod restart": (_stop_args, cmd_restart),
    "pod rm": (_rm_args, cmd_rm),
    "pod ps": (_ps_args, cmd_ps),
    "pod inspect": (inspect_args("POD", "{{.Name}}"), cmd_inspect),
    "pod exists": (_one, cmd_exists),
    "pod stats": (_stats_args, cmd_stats),
    "pod top": (_top_args, cmd_top),
}
