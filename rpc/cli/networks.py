"""Network commands (`network create|ls|inspect|rm|prune|connect|disconnect|reload|exists`,
`port`) and the run/create flags of networking."""

from __future__ import annotations

import sys

from ...core.errors import VarpodError
from ..fastargs import REMAINDER
from .common import EXIT_ERROR, each, inspect_args, is_json, out, pairs, render, to_json

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser


# -- run / create flags (declared by containers.py's flag declaration) -------------------------


def network_flags(p: Parser) -> None:
    p.add_argument("--network", "--net", help="private (default: loopback only), none, host, "
                   "container:CTR, bridge (the default network) or network names, comma-separated")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[[IP:]HOST:]CTR[/PROTO]",
                   help="publish a container port on the host (implies bridge without --network)")
    p.add_argument("-P", "--publish-all", action="store_true",
                   help="publish every --expose'd port on a random host port")
    p.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    p.add_argument("--ip", help="the container's IPv4 address on its (one) network")
    p.add_argument("--mac-address", help="the container's MAC address on its (one) network")
    p.add_argument("--network-alias", action="append", default=[], metavar="NAME",
                   help="one more name the network's DNS answers for the container")
    p.add_argument("--dns", action="append", default=[], metavar="IP", help="nameserver")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN")
    p.add_argument("--dns-option", action="append", default=[], metavar="OPTION")
    p.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                   help="an entry of the container's /etc/hosts")


def network_options(a: Args) -> dict[str, Any]:
    """client.create's keyword arguments from the flags above (None: not given)."""
    return {
        "network": a.network, "ports": a.publish or None, "publish_all": a.publish_all or None,
        "expose": a.expose or None, "ip": a.ip, "mac_address": a.mac_address,
        "network_aliases": a.network_alias or None, "dns": a.dns or None,
        "dns_search": a.dns_search or None, "dns_option": a.dns_option or None,
        "add_hosts": a.add_host or None,
    }


# -- network commands --------------------------------------------------------------------------


def _create_args(p: Parser) -> None:
    p.add_argument("--subnet", help="IPv4 subnet in CIDR form (default: a free /24)")
    p.add_argument("--gateway", help="the subnet's gateway (default: its first address)")
    p.add_argument("--internal", action="store_true", help="no route out of the network, no NAT")
    p.add_argument("--disable-dns", action="store_true", help="no name resolution between containers")
    p.add_argument("-d", "--driver", help="bridge (the only one)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("name")


def cmd_create(client: Client, a: Args) -> int:
    net = client.network_create(a.name, subnet=a.subnet, gateway=a.gateway, internal=a.internal,
                                labels=pairs(a.label, "label") or None, disable_dns=a.disable_dns,
                                driver=a.driver)
    out(net["name"])
    return 0


def _ls_args(p: Parser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.add_argument("--no-trunc", action="store_true", help="full network IDs")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="name, id, driver or label")
    p.add_argument("--format", help="table (default), json, or a Go template such as "
                                    "'{{.Name}} {{.Driver}} {{.Subnets}}'")
    p.add_argument("-n", "--noheading", action="store_true", help="no header row")


# podman's network ls header for .ID (the rest: the field's name split, upper-cased)
LS_HEADERS = {"ID": "NETWORK ID"}


def cmd_ls(client: Client, a: Args) -> int:
    # by name, as podman lists them, whatever the daemon's order
    nets = sorted(client.network_list(filters=pairs(a.filter, "filter") or None),
                  key=lambda n: n["name"])
    if a.quiet:
        if nets:
            out("\n".join(n["name"] for n in nets))
        return 0
    if a.format is not None and is_json(a.format):
        out(to_json(nets))
        return 0
    views = [network_view(n, a.no_trunc) for n in nets]
    columns = [("NETWORK ID", lambda v: v.fields["ID"]), ("NAME", lambda v: v["name"]),
               ("DRIVER", lambda v: v["driver"])]
    render(a.format, views, columns, headers=LS_HEADERS, name="network ls", noheading=a.noheading)
    return 0


def network_inspect_view(n: dict) -> Any:
    """A network as podman's network inspect templates see it: types.Network itself (the
    full ID, labels as a map)."""
    from .govalues import GoMap, View

    ls = network_view(n, True)
    return View(n, {**ls.fields, "Labels": GoMap(n["labels"])}, "types.Network")


def network_view(n: dict, no_trunc: bool) -> Any:
    """A network as podman's network ls templates see it: types.Network's fields by their Go
    names, and ListPrintReports' ``.ID`` (truncated) and ``.Labels`` (``k=v,...``)."""
    from .common import parse_time
    from .govalues import GoMap, GoTime, View  # not the template engine: the default table

    subnets = [View(s, {"Subnet": s["subnet"], "Gateway": s["gateway"], "LeaseRange": None},
                    "types.Subnet") for s in n["subnets"]]
    return View(n, {
        "Name": n["name"], "ID": n["id"] if no_trunc else n["id"][:12], "Driver": n["driver"],
        "NetworkInterface": n["network_interface"],
        "Created": GoTime(parse_time(n["created"]) or 0) if n["created"] else GoTime(0),
        "Subnets": subnets, "IPv6Enabled": n["ipv6_enabled"], "Internal": n["internal"],
        "DNSEnabled": n["dns_enabled"],
        # Go ranges over the map in no order; sorted, the same network prints the same
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(n["labels"].items())),
        "Options": GoMap(n["options"]), "IPAMOptions": GoMap(n["ipam_options"]),
    }, "network.ListPrintReports")


def _names_args(p: Parser) -> None:
    p.add_argument("names", nargs="+")


def cmd_inspect(client: Client, a: Args) -> int:
    from .inspect import inspect_objects

    return inspect_objects(client, a.names, "network", a.format)


def _rm_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="remove its containers first")
    p.add_argument("-t", "--time", type=int, help="seconds to stop containers before SIGKILL")
    _names_args(p)


def cmd_rm(client: Client, a: Args) -> int:
    return each(client, a.names, lambda n: client.network_remove(n, force=a.force, timeout=a.time))


def _prune_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")


def cmd_prune(client: Client, a: Args) -> int:
    if not a.force:
        sys.stdout.write("WARNING! This will remove all networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    for name in client.network_prune():
        out(name)
    return 0


def _connect_args(p: Parser) -> None:
    p.add_argument("--ip", help="IPv4 address on the network")
    p.add_argument("--mac-address")
    p.add_argument("--alias", action="append", default=[], metavar="NAME")
    p.add_argument("network")
    p.add_argument("container")


def cmd_connect(client: Client, a: Args) -> int:
    client.network_connect(a.network, a.container, ip=a.ip, mac_address=a.mac_address,
                           aliases=a.alias or None)
    return 0


def _disconnect_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")


def cmd_disconnect(client: Client, a: Args) -> int:
    client.network_disconnect(a.network, a.container, force=a.force)
    return 0


# Optional positionals are declared as REMAINDER (what fastargs follows, as argparse reads
# them) and counted by the command.
def _reload_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="every running container")
    p.add_argument("names", nargs=REMAINDER, metavar="CONTAINER")


def cmd_reload(client: Client, a: Args) -> int:
    if a.all == bool(a.names):
        print("Error: give containers or --all", file=sys.stderr)
        return EXIT_ERROR
    if a.all:
        for cid in client.network_reload(all=True):
            out(cid)
        return 0
    rc = 0
    for name in a.names:
        try:
            for cid in client.network_reload(name):
                out(cid)
        except VarpodError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc


def _exists_args(p: Parser) -> None:
    p.add_argument("name")


def cmd_exists(client: Client, a: Args) -> int:
    return 0 if client.network_exists(a.name) else 1


def _port_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="every container's ports")
    p.add_argument("args", nargs=REMAINDER, metavar="CONTAINER [PORT[/PROTO]]")


def cmd_port(client: Client, a: Args) -> int:
    if a.all == bool(a.args) or len(a.args) > 2:
        print("Error: give a container (and maybe one of its ports), or --all", file=sys.stderr)
        return EXIT_ERROR
    a.container, a.port = [*a.args, None][:2] if a.args else (None, None)
    if a.all:
        for c in client.list():
            ports = client.port(c["Id"])
            if ports:
                out(f"{c['Id'][:12]}\t{', '.join(_mapping(p) for p in ports)}")
        return 0
    ports = client.port(a.container)
    if a.port:
        number, _, proto = a.port.partition("/")
        found = [p for p in ports if str(p["container_port"]) == number
                 and p["protocol"] == (proto or "tcp")]
        if not found:
            print(f"Error: failed to find published port {a.port!r}", file=sys.stderr)
            return EXIT_ERROR
        for p in found:
            out(f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}")
        return 0
    for p in ports:
        out(_mapping(p))
    return 0


def _mapping(p: dict) -> str:
    host = f"{p['host_ip'] or '0.0.0.0'}:{p['host_port'] or ''}"
    return f"{p['container_port']}/{p['protocol']} -> {host}"


# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "network create": (_create_args, cmd_create),
    "network ls": (_ls_args, cmd_ls),
    "network inspect": (inspect_args("NETWORK", "{{.Subnets}}"), cmd_inspect),
    "network rm": (_rm_args, cmd_rm),
    "network prune": (_prune_args, cmd_prune),
    "network connect": (_connect_args, cmd_connect),
    "network disconnect": (_disconnect_args, cmd_disconnect),
    "network reload": (_reload_args, cmd_reload),
    "network exists": (_exists_args, cmd_exists),
    "port": (_port_args, cmd_port),
}
