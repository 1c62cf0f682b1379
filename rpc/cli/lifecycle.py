"""Container lifecycle verbs in podman's bulk and idempotent forms: start, stop, restart, kill,
pause, unpause, wait, rm, init (and sync, checkpoint, restore by name).

Names come from the arguments, ``--all``, ``--latest``, ``--filter`` or ``--cidfile``; the
calls for several containers go out side by side (``Client.concurrently``: a connection
each), so five stops of 2 s take 2 s. Each result is reported as podman reports it: the
name (or, for ``--all``/``--latest``/``--filter``, the full ID) on stdout, or ``Error: ...``
on stderr; a verb whose goal is already reached (stopping a stopped container, starting a
running one) succeeds.
"""

from __future__ import annotations

import sys

from ...core.errors import ContainerStopped, InvalidState, NoSuchContainer, VarpodError
from .common import CALLS, EXIT_ERROR, CLIError, call_all, error, out

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser


# -- declarations ----------------------------------------------------------------------------


def _names(p: Parser) -> None:
    p.add_argument("names", nargs="*", default=[], metavar="CONTAINER")


def _selectors(p: Parser, *, all_short: bool = True, cidfile: bool = True,
               filters: bool = True, filter_short: bool = True) -> None:
    """--all, --latest (and --cidfile, --filter): the ways podman picks containers besides names."""
    if all_short:
        p.add_argument("-a", "--all", action="store_true", help="all containers")
    else:
        p.add_argument("--all", action="store_true", help="all containers")
    p.add_argument("-l", "--latest", action="store_true", help="the latest created container")
    if cidfile:
        p.add_argument("--cidfile", action="append", default=[], metavar="FILE",
                       help="read the container ID from FILE")
    if filters:
        flags = ("-f", "--filter") if filter_short else ("--filter",)
        p.add_argument(*flags, action="append", default=[], metavar="KEY=VALUE",
                       help="containers matching a ps filter")


def _start_args(p: Parser) -> None:
    _selectors(p, all_short=False)
    p.add_argument("-a", "--attach", action="store_true", help="attach to the container's output")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin too")
    p.add_argument("--detach-keys", help="detach sequence (default ctrl-p,ctrl-q; '' disables)")
    p.add_argument("--sig-proxy", choices=["true", "false"], default="true",
                   help="pass signals to the container when attached (default true)")
    _names(p)


def _stop_args(p: Parser) -> None:
    _selectors(p)
    p.add_argument("-i", "--ignore", action="store_true", help="a missing container is no error")
    p.add_argument("-t", "--time", type=int, help="seconds before SIGKILL")
    _names(p)


def _restart_args(p: Parser) -> None:
    _selectors(p)
    p.add_argument("--running", action="store_true", help="with --all: only running containers")
    p.add_argument("-t", "--time", type=int, help="seconds before SIGKILL")
    _names(p)


def _kill_args(p: Parser) -> None:
    _selectors(p, filters=False)
    p.add_argument("-s", "--signal", default="KILL")
    _names(p)


def _pause_args(p: Parser) -> None:
    _selectors(p)
    _names(p)


def _init_args(p: Parser) -> None:
    _selectors(p, cidfile=False, filters=False)
    _names(p)


def _rm_args(p: Parser) -> None:
    _selectors(p, filter_short=False)
    p.add_argument("-f", "--force", action="store_true", help="stop running containers first")
    p.add_argument("-i", "--ignore", action="store_true", help="a missing container is no error")
    p.add_argument("-t", "--time", type=int, help="stop timeout with --force (default 0)")
    p.add_argument("-v", "--volumes", action="store_true",
                   help="remove the containers' anonymous volumes too (named ones stay)")
    _names(p)


def _wait_args(p: Parser) -> None:
    p.add_argument("--condition", action="append", default=[], metavar="STATE")
    p.add_argument("-i", "--interval", metavar="DURATION",
                   help="accepted for podman's scripts: varpod is told of changes, it never polls")
    p.add_argument("--ignore", action="store_true", help="a missing container waits as -1")
    p.add_argument("-l", "--latest", action="store_true", help="the latest created container")
    _names(p)


def _by_name(p: Parser) -> None:
    p.add_argument("names", nargs="+", metavar="CONTAINER")


# -- picking the containers ---------------------------------------------------------------------


class Target:
    """One container a verb acts on, and how to report it (as given, or its full ID)."""

    __slots__ = ("label", "ref")

    def __init__(self, ref: str, label: str | None = None) -> None:
        self.ref = ref
        self.label = ref if label is None else label


def targets(client: Client, a: Args, *, states: tuple[str, ...] | None = None) -> list[Target]:
    """The containers named on the command line or picked by --all, --latest, --filter or
    --cidfile. ``states``: what ``--all`` takes (default: every container)."""
    names = list(a.names)
    use_all = getattr(a, "all", False)
    latest = getattr(a, "latest", False)
    filters = getattr(a, "filter", None) or []
    cidfiles = getattr(a, "cidfile", None) or []
    if use_all and latest:
        raise CLIError("--all and --latest cannot be used together")
    if (use_all or latest) and (names or cidfiles):
        raise CLIError("no arguments are needed with --all or --latest")
    if not (names or use_all or latest or filters or cidfiles):
        raise CLIError("you must provide at least one name or id")
    found = [Target(n) for n in names]
    for path in cidfiles:
        found.append(Target(_read_cidfile(path)))
    if use_all or latest or filters:
        ctrs = client.list(all=True)
        if filters:
            from .filters import matching

            ctrs = matching(ctrs, filters)
        if latest:
            ctrs = sorted(ctrs, key=lambda c: c["CreatedAt"])[-1:]
        elif states is not None and not filters:
            ctrs = [c for c in ctrs if c["State"] in states]
        found += [Target(c["Id"]) for c in ctrs]
    return found


def _read_cidfile(path: str) -> str:
    try:
        with open(path) as f:
            cid = f.read().strip()
    except OSError as e:
        raise CLIError(f"reading CIDFile {path}: {e.strerror}") from None
    if not cid:
        raise CLIError(f"CIDFile {path} is empty")
    return cid


def run_all(client: Client, found: list[Target], call: Any, *, ok: Any = None,
            ignore_missing: bool = False, quiet: Any = None) -> list[VarpodError]:
    """Each target's call side by side; its label printed on success (in order), its error
    on stderr. ``ok(error)`` says which errors are success after all (the goal was already
    reached), ``quiet(error)`` which of those print nothing. Returns the errors."""
    replies = call_all(client, [call(t.ref) for t in found])
    errors: list[VarpodError] = []
    for t, reply in zip(found, replies, strict=True):
        if isinstance(reply, VarpodError):
            if ignore_missing and isinstance(reply, NoSuchContainer):
                continue
            if ok is not None and ok(reply):
                if quiet is None or not quiet(reply):
                    out(t.label)
                continue
            error(reply.message)
            errors.append(reply)
            continue
        out(t.label)
    sys.stdout.flush()
    return errors


def _exit(errors: list[VarpodError]) -> int:
    return EXIT_ERROR if errors else 0


# -- the verbs ----------------------------------------------------------------------------------


def cmd_start(client: Client, a: Args) -> int:
    if a.attach or a.interactive:
        return _start_attached(client, a)
    found = targets(client, a)
    # Already running: podman's start succeeds and prints nothing.
    errors = run_all(client, found, CALLS.start, ok=_is_running, quiet=_is_running)
    return _exit(errors)


def _is_running(e: VarpodError) -> bool:
    return isinstance(e, InvalidState) and getattr(e, "state", "") == "running"


def _start_attached(client: Client, a: Args) -> int:
    from .containers import attached_start

    found = targets(client, a)
    if len(found) != 1:
        raise CLIError("you cannot start and attach multiple containers at once")
    return attached_start(client, found[0].ref, stdin=a.interactive, detach_keys=a.detach_keys,
                          sig_proxy=a.sig_proxy == "true")


def _is_stopped(e: VarpodError) -> bool:
    return isinstance(e, ContainerStopped) or (isinstance(e, InvalidState) and
                                               getattr(e, "state", "") == "configured")


def cmd_stop(client: Client, a: Args) -> int:
    found = targets(client, a)
    errors = run_all(client, found, lambda ref: CALLS.stop(ref, a.time), ok=_is_stopped,
                     ignore_missing=a.ignore)
    return _exit(errors)


def cmd_restart(client: Client, a: Args) -> int:
    if a.running and not a.all:
        raise CLIError("--running needs --all")
    found = targets(client, a, states=("running",) if a.running else None)
    return _exit(run_all(client, found, lambda ref: CALLS.restart(ref, a.time)))


def cmd_kill(client: Client, a: Args) -> int:
    found = targets(client, a, states=("running",))
    return _exit(run_all(client, found, lambda ref: CALLS.kill(ref, a.signal)))


def cmd_pause(client: Client, a: Args) -> int:
    found = targets(client, a, states=("running",))
    return _exit(run_all(client, found, CALLS.pause))


def cmd_unpause(client: Client, a: Args) -> int:
    found = targets(client, a, states=("paused",))
    return _exit(run_all(client, found, CALLS.unpause))


def cmd_init(client: Client, a: Args) -> int:
    found = targets(client, a, states=("configured", "stopped", "exited"))
    return _exit(run_all(client, found, CALLS.init))


def cmd_rm(client: Client, a: Args) -> int:
    found = targets(client, a)
    errors = run_all(client, found, lambda ref: CALLS.remove(ref, force=a.force, timeout=a.time,
                                                              volumes=a.volumes),
                     ignore_missing=a.ignore)
    return _rm_exit(errors)


def _rm_exit(errors: list[VarpodError]) -> int:
    """podman-rm(1): 1 when only missing containers failed, 2 when one is running or paused."""
    if not errors:
        return 0
    if all(isinstance(e, NoSuchContainer) for e in errors):
        return 1
    if all(isinstance(e, (NoSuchContainer, InvalidState)) for e in errors) and any(
            getattr(e, "state", "") in ("running", "paused") for e in errors):
        return 2
    return EXIT_ERROR


def cmd_wait(client: Client, a: Args) -> int:
    if a.interval is not None:
        from .common import parse_duration

        parse_duration(a.interval, "--interval")
    found = targets(client, a)
    replies = call_all(client, [CALLS.wait(t.ref, a.condition or None) for t in found])
    rc = 0
    for reply in replies:
        if isinstance(reply, VarpodError):
            if a.ignore and isinstance(reply, NoSuchContainer):
                out("-1")
                continue
            error(reply.message)
            rc = EXIT_ERROR
            continue
        out(str(reply["exit_code"] if reply["exit_code_known"] else -1))
    return rc


def cmd_by_name(verb: str) -> Any:
    def run(client: Client, a: Args) -> int:
        found = [Target(n) for n in a.names]
        return _exit(run_all(client, found, getattr(CALLS, verb)))

    return run


# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "start": (_start_args, cmd_start),
    "stop": (_stop_args, cmd_stop),
    "restart": (_restart_args, cmd_restart),
    "kill": (_kill_args, cmd_kill),
    "pause": (_pause_args, cmd_pause),
    "unpause": (_pause_args, cmd_unpause),
    "wait": (_wait_args, cmd_wait),
    "rm": (_rm_args, cmd_rm),
    "init": (_init_args, cmd_init),
    "sync": (_by_name, cmd_by_name("sync")),
    "checkpoint": (_by_name, cmd_by_name("checkpoint")),
    "restore": (_by_name, cmd_by_name("restore")),
}
