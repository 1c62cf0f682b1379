"""Volume commands (`volume create|ls|inspect|rm|prune|exists`) and the mount flags of
run/create (`-v`, `--mount`, `--tmpfs`, `--image-volume`)."""

from __future__ import annotations

import sys

from ...core.errors import NoSuchVolume, VarpodError, VolumeInUse
from ..fastargs import REMAINDER
from .common import EXIT_ERROR, CLIError, error, out, pairs, render

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser


# -- run / create flags (declared by containers.py's flag declaration) -------------------------


def mount_flags(p: Parser) -> None:
    p.add_argument("-v", "--volume", action="append", default=[], metavar="[SRC:]DEST[:OPTS]",
                   help="bind mount a host path (relative to this directory), or mount a named "
                        "volume (made if missing); DEST alone: an anonymous volume")
    p.add_argument("--mount", action="append", default=[], metavar="type=TYPE,...",
                   help="type=bind|volume|tmpfs,src=...,dst=...[,ro][,...] as podman's --mount")
    p.add_argument("--tmpfs", action="append", default=[], metavar="DEST[:OPTS]",
                   help="a tmpfs (rw,noexec,nosuid,nodev unless said; size=64m, mode=1777 ...)")
    p.add_argument("--image-volume", choices=("bind", "tmpfs", "ignore"),
                   help="what the image's VOLUMEs become: bind (default: anonymous volumes), "
                        "tmpfs or ignore")


def mount_options(a: Args) -> dict[str, Any]:
    """client.create's keyword arguments from the flags above (None: not given); relative
    host paths are resolved by the client against this directory."""
    return {"volumes": a.volume or None, "mounts": a.mount or None, "tmpfs": a.tmpfs or None,
            "image_volume": a.image_volume}


# -- volume commands ---------------------------------------------------------------------------


def _create_args(p: Parser) -> None:
    p.add_argument("-d", "--driver", help="local (the only one)")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="driver options (refused: the local driver has none in varpod)")
    p.add_argument("--ignore", action="store_true", help="an existing volume of that name is no error")
    # an optional positional is declared as REMAINDER (what fastargs follows) and counted here
    p.add_argument("name", nargs=REMAINDER, metavar="[NAME]", help="default: a random name")


def cmd_create(client: Client, a: Args) -> int:
    if len(a.name) > 1:
        raise CLIError("volume create takes at most one name")
    vol = client.volume_create(a.name[0] if a.name else None, driver=a.driver,
                               labels=pairs(a.label, "label") or None,
                               options=pairs(a.opt, "--opt") or None, ignore=a.ignore)
    out(vol["Name"])
    return 0


HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Mountpoint": "MOUNTPOINT",
           "CreatedAt": "CREATED AT", "MountCount": "MOUNT COUNT", "Anonymous": "ANONYMOUS"}


def _filters(items: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid filter {item!r}: give KEY=VALUE")
        found.setdefault(key, []).append(value)
    return found


def _ls_args(p: Parser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="name, label, driver, dangling, anonymous")
    p.add_argument("--format", help="table (default), json, or a Go template")
    p.add_argument("-n", "--noheading", action="store_true", help="no header row")


def cmd_ls(client: Client, a: Args) -> int:
    vols = client.volume_list(filters=_filters(a.filter) or None)
    if a.quiet:
        for v in vols:
            out(v["Name"])
        return 0
    render(a.format, vols, [("DRIVER", lambda v: v["Driver"]), ("VOLUME NAME", lambda v: v["Name"])],
           view=_view, headers=HEADERS, name="volume ls", noheading=a.noheading)
    return 0


def _view(v: dict) -> Any:
    from .template import podman_shaped

    return podman_shaped(v)


def _inspect_args(p: Parser) -> None:
    p.add_argument("-f", "--format", help="json (default) or a Go template")
    p.add_argument("-a", "--all", action="store_true", help="every volume")
    p.add_argument("names", nargs="*", default=[], metavar="VOLUME")


def cmd_inspect(client: Client, a: Args) -> int:
    from .inspect import inspect_objects

    names = list(a.names)
    if a.all:
        if names:
            raise CLIError("--all and names cannot be used together")
        names = [v["Name"] for v in client.volume_list()]
        if not names:
            out("[]")
            return 0
    if not names:
        raise CLIError("volume inspect needs a volume name (or --all)")
    return inspect_objects(client, names, "volume", a.format)


def _rm_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="remove the containers using it first")
    p.add_argument("-a", "--all", action="store_true", help="every volume")
    p.add_argument("-t", "--time", type=int, help="seconds to stop those containers before SIGKILL")
    p.add_argument("names", nargs="*", default=[], metavar="VOLUME")


def cmd_rm(client: Client, a: Args) -> int:
    names = list(a.names)
    if a.all == bool(names):
        raise CLIError("give volume names or --all")
    if a.all:
        names = [v["Name"] for v in client.volume_list()]
    errors: list[VarpodError] = []
    for name in names:
        try:
            client.volume_remove(name, force=a.force, timeout=a.time)
            out(name)
        except VarpodError as e:
            error(e.message)
            errors.append(e)
    # podman-volume-rm(1): 1 when a volume did not exist, 2 when one is in use
    if not errors:
        return 0
    if all(isinstance(e, NoSuchVolume) for e in errors):
        return 1
    if all(isinstance(e, (NoSuchVolume, VolumeInUse)) for e in errors):
        return 2
    return EXIT_ERROR


def _prune_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="label, name, anonymous")


def cmd_prune(client: Client, a: Args) -> int:
    if not a.force:
        sys.stdout.write("WARNING! This will remove all volumes not used by at least one container. "
                         "The following volumes will be removed:\n")
        for v in client.volume_list(filters={"dangling": ["true"], **_filters(a.filter)}):
            sys.stdout.write(v["Name"] + "\n")
        sys.stdout.write("Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    for name in client.volume_prune(filters=_filters(a.filter) or None):
        out(name)
    return 0


def _exists_args(p: Parser) -> None:
    p.add_argument("name")


def cmd_exists(client: Client, a: Args) -> int:
    return 0 if client.volume_exists(a.name) else 1


# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "volume create": (_create_args, cmd_create),
    "volume ls": (_ls_args, cmd_ls),
    "volume inspect": (_inspect_args, cmd_inspect),
    "volume rm": (_rm_args, cmd_rm),
    "volume prune": (_prune_args, cmd_prune),
    "volume exists": (_exists_args, cmd_exists),
}
