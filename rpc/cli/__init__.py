"""The ``varpod`` command line: a thin shell over the blocking client.

Start-up time is the CLI's main cost, so nothing here imports asyncio, anyio
or msgspec (the client runs with ``raw=True`` over a pure-Python msgpack
codec); the daemon is only imported by ``varpod serve``. argv is parsed by
``fastargs`` from the same declarations argparse gets; argparse itself (~10 ms
of imports) only sees what fastargs declines: help, errors and rare forms.

Commands live in modules by area (``containers``, ``system``, ...), each with a
``COMMANDS`` table of ``name -> (declare, run)``; ``SUBCOMMANDS`` below says
which module holds each, so a command imports only its own module. A name of
two words is a verb of a command group, as podman has them (``image prune``,
``container ls``); an alias is one more name for the same (declare, run).
"""

from __future__ import annotations

import os
import sys

from ...core.errors import VarpodError
from .. import fastargs
from ..client import Client
from .common import EXIT_ERROR, CLIError

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    # The declarations run against argparse (help, errors) or a fastargs.Recorder,
    # and either one's Namespace reaches the commands.
    Parser = argparse.ArgumentParser | fastargs.Recorder
    Args = argparse.Namespace | fastargs.Namespace

# command -> (help, the module under varpod.rpc.cli that declares and runs it)
SUBCOMMANDS = {
    "serve": ("run the daemon", "system"),
    "run": ("create and start a container", "containers"),
    "create": ("create a container", "containers"),
    "start": ("start containers", "lifecycle"),
    "stop": ("stop containers", "lifecycle"),
    "restart": ("restart containers", "lifecycle"),
    "update": ("change resource limits of containers", "containers"),
    "kill": ("signal containers", "lifecycle"),
    "pause": ("pause containers", "lifecycle"),
    "unpause": ("unpause containers", "lifecycle"),
    "wait": ("wait for containers to stop; print exit codes", "lifecycle"),
    "rm": ("remove containers", "lifecycle"),
    "ps": ("list containers", "ps"),
    "inspect": ("show objects as podman-shaped JSON or a Go template", "inspect"),
    "logs": ("print a container's output", "containers"),
    "attach": ("attach to a running container", "containers"),
    "exec": ("run a command in a running container", "containers"),
    "events": ("show events", "system"),
    "info": ("daemon, runtimes and native extension status", "system"),
    "version": ("client and daemon versions", "system"),
    "init": ("init containers", "lifecycle"),
    "sync": ("sync state with the runtime", "lifecycle"),
    "checkpoint": ("checkpoint containers with CRIU (probed)", "lifecycle"),
    "restore": ("restore checkpointed containers (probed)", "lifecycle"),
    "stats": ("show containers' resource usage", "stats"),
    "top": ("show a container's processes", "stats"),
    "pod create": ("create a pod", "pods"),
    "pod start": ("start pods", "pods"),
    "pod stop": ("stop pods", "pods"),
    "pod kill": ("signal the containers of pods", "pods"),
    "pod pause": ("pause pods", "pods"),
    "pod unpause": ("unpause pods", "pods"),
    "pod restart": ("restart pods", "pods"),
    "pod rm": ("remove pods", "pods"),
    "pod ps": ("list pods", "pods"),
    "pod inspect": ("show pods as podman-shaped JSON or a Go template", "pods"),
    "pod exists": ("exit 0 if the pod exists, 1 if not", "pods"),
    "pod stats": ("show the resource usage of pods' containers", "pods"),
    "pod top": ("show the processes of a pod", "pods"),
    "pull": ("pull an image from a registry", "images"),
    "login": ("log in to a registry (credentials go to your auth file)", "images"),
    "logout": ("forget a registry's credentials", "images"),
    "load": ("load images from an oci-archive or docker-archive", "images"),
    "save": ("save an image as a docker-archive or oci-archive", "images"),
    "import": ("import a root filesystem tar as an image", "images"),
    "images": ("list images", "images"),
    "tag": ("give an image more names", "images"),
    "untag": ("remove names from an image", "images"),
    "rmi": ("remove images", "images"),
    "image prune": ("remove images no container uses (untagged ones, or -a all)", "images"),
    "image inspect": ("show images as podman-shaped JSON or a Go template", "images"),
    "image exists": ("exit 0 if the image is here, 1 if not", "images"),
    "port": ("list a container's published ports", "networks"),
    "network create": ("create a bridge network", "networks"),
    "network ls": ("list networks", "networks"),
    "network inspect": ("show networks as podman-shaped JSON or a Go template", "networks"),
    "network rm": ("remove networks", "networks"),
    "network prune": ("remove every network no container uses", "networks"),
    "network connect": ("connect a container to a network", "networks"),
    "network disconnect": ("disconnect a container from a network", "networks"),
    "network reload": ("set containers' networks (and firewall rules) up again", "networks"),
    "network exists": ("exit 0 if a network exists, 1 if not", "networks"),
    "mount": ("mount containers' root filesystems on the host (none: list the mounted)", "fs"),
    "unmount": ("unmount containers' root filesystems", "fs"),
    "export": ("write a container's root filesystem as a tar", "fs"),
    "cp": ("copy files between a container and the host (or two containers)", "fs"),
    "diff": ("list what a container changed in its image (A, C, D)", "fs"),
    "commit": ("make an image of a container's changes", "fs"),
    "volume create": ("create a volume", "volumes"),
    "volume ls": ("list volumes", "volumes"),
    "volume inspect": ("show volumes as podman-shaped JSON or a Go template", "volumes"),
    "volume rm": ("remove volumes (-f: and the containers using them)", "volumes"),
    "volume prune": ("remove every volume no container uses", "volumes"),
    "volume exists": ("exit 0 if a volume exists, 1 if not", "volumes"),
}

CONTAINER_MODULES = ("containers", "lifecycle", "ps", "inspect", "fs")

# podman's command groups: group word -> help; its verbs are the SUBCOMMANDS "word verb"
GROUPS: dict[str, str] = {"container": "manage containers", "image": "manage images",
                          "network": "manage networks", "pod": "manage pods", "volume": "manage volumes"}
# More names for a command: `varpod container VERB` is each container command, ls and list ps.
ALIASES = {f"container {verb}": name for verb, name in (
    *((n, n) for n, (_, m) in SUBCOMMANDS.items() if m in CONTAINER_MODULES), ("ls", "ps"),
    ("list", "ps"))}
ALIASES.update({"umount": "unmount", "container umount": "unmount",
                "container stats": "stats", "container top": "top", "container port": "port",
                "pod ls": "pod ps", "pod list": "pod ps", "network list": "network ls",
                "network remove": "network rm", "volume list": "volume ls",
                "volume remove": "volume rm"})
# `varpod image VERB`, podman's names for the image commands.
ALIASES.update({f"image {verb}": name for verb, name in (
    ("ls", "images"), ("list", "images"), ("rm", "rmi"), ("pull", "pull"), ("tag", "tag"),
    ("untag", "untag"), ("save", "save"), ("load", "load"), ("import", "import"))})
SUBCOMMANDS.update({alias: SUBCOMMANDS[name] for alias, name in ALIASES.items()})

# Commands that run without a connection to the daemon (or open their own).
NO_CLIENT = ("serve", "version", "logout")  # logout only edits the user's auth file


def command(name: str) -> tuple[Callable[[Parser], None], Callable[[Any, Args], int]]:
    """(declare, run) of a command, importing only the module that holds it."""
    from importlib import import_module

    module = import_module(f"{__name__}.{SUBCOMMANDS[name][1]}")
    return module.COMMANDS[ALIASES.get(name, name)]


SOCKET_HELP = "daemon socket (default $VARPOD_SOCKET or /run/varpod/varpod.sock)"
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")


def _global_args(p: Parser, default: Any = None) -> None:
    """Taken before the command and after it: --socket and --log-level."""
    p.add_argument("--socket", default=default, help=SOCKET_HELP)
    p.add_argument("--log-level", default=default, choices=LOG_LEVELS,
                   help="the CLI's own log on stderr (default warn); for serve, the daemon's")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``only``) just the one command's: each costs start-up time.

    Its errors are podman's: ``Error: ...`` and a pointer to the help of the command that
    was being read (not the top level's), exit status 125.
    """
    import argparse

    from ... import __version__

    # A fixed help width: the default formatter imports shutil (~3 ms) on every start-up.
    width = int(os.environ.get("COLUMNS", "100"))

    def formatter(prog: str) -> argparse.HelpFormatter:
        return argparse.HelpFormatter(prog, width=width)

    commands: dict[str, argparse.ArgumentParser] = {}

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            self.print_usage(sys.stderr)
            sys.stderr.write(f"Error: {message}\nSee '{self.prog} --help'\n")
            raise SystemExit(EXIT_ERROR)

        def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
            ns, extras = self.parse_known_args(args, namespace)
            if extras:  # said by the command that was reading them, with its usage
                name = command_name(ns) if getattr(ns, "cmd", None) else None
                (commands.get(name or "") or self).error(
                    f"unrecognized arguments: {' '.join(extras)}")
            return ns

    # fastargs reads argv as argparse does with these parsers' defaults (prefix "-",
    # abbreviations allowed, no @file arguments): a setting changed here must be there too.
    parser = Parser(prog="varpod", description="varpod container engine",
                    formatter_class=formatter)
    _global_args(parser)
    parser.add_argument("-v", "--version", action="version", version=f"varpod version {__version__}")
    # --socket and --log-level are accepted after the command too (`varpod serve --socket PATH`).
    common = Parser(add_help=False, formatter_class=formatter)
    _global_args(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    groups: dict[str, Any] = {}
    for name, (text, _) in SUBCOMMANDS.items():
        word, _, verb = name.partition(" ")
        if only is not None and word != only:
            continue
        if verb and word not in groups:
            group = sub.add_parser(word, help=GROUPS[word], parents=[common],
                                   formatter_class=formatter)
            commands[word] = group
            groups[word] = group.add_subparsers(dest="subcmd", metavar="COMMAND",
                                                parser_class=Parser)
            groups[word].required = True
        place = groups[word] if verb else sub
        commands[name] = place.add_parser(verb or name, help=text, parents=[common],
                                          formatter_class=formatter)
        command(name)[0](commands[name])
    return parser


def _recorded_command(name: str) -> fastargs.Recorder | None:
    """The command's (or group's) declarations replayed for fastargs, as build_parser
    declares them."""
    if name in GROUPS:
        rec = fastargs.Recorder()
        _global_args(rec, fastargs.SUPPRESS)
        rec.add_commands("subcmd", lambda verb: _recorded_command(f"{name} {verb}")
                         if " " not in verb else None)
        return rec
    if name not in SUBCOMMANDS:
        return None
    rec = fastargs.Recorder()
    _global_args(rec, fastargs.SUPPRESS)
    command(name)[0](rec)
    return rec


def command_name(a: Args) -> str:
    """The SUBCOMMANDS name argv asked for: ``ps``, or ``image prune`` for a group's verb."""
    verb = getattr(a, "subcmd", None)
    return a.cmd if verb is None else f"{a.cmd} {verb}"


def recorded() -> fastargs.Recorder:
    """build_parser's declarations replayed for fastargs (each command's when it is met)."""
    top = fastargs.Recorder()
    _global_args(top)
    top.add_argument("-v", "--version", action="version")
    top.add_commands("cmd", _recorded_command)
    return top


def parse_args(argv: list[str]) -> Args:
    """argv -> Namespace. argparse (~10 ms to import) only for help, errors and rare forms."""
    try:
        return fastargs.parse(argv, recorded())
    except fastargs.Decline:
        pass  # argparse parses it after all, or prints its usual help or error
    return build_parser(_command_of(argv)).parse_args(argv)


def _command_of(argv: list[str]) -> str | None:
    """The command word, skipping leading global options; None if unclear."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("--socket", "--log-level"):
            i += 2
        elif word.startswith(("--socket=", "--log-level=")):
            i += 1
        else:
            return word if word in SUBCOMMANDS or word in GROUPS else None
    return None


def main(argv: list[str] | None = None) -> int:
    whole_process = argv is None  # the varpod script, not a caller that goes on after us
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    run = command(command_name(a))[1]
    log = None
    if a.log_level in ("trace", "debug", "info") and a.cmd != "serve":  # serve: the daemon's level
        from .clilog import Log

        log = Log(a.log_level)
        log.emit("info", f"varpod {' '.join(argv)}")
    try:
        rc = _run(run, a, log)
    except CLIError as e:
        sys.stderr.write(f"Error: {e.message}\n")
        rc = EXIT_ERROR
    except VarpodError as e:
        sys.stderr.write(f"Error: {e.message}\n")
        rc = EXIT_ERROR
    except KeyboardInterrupt:
        rc = 130
    except BrokenPipeError:
        _die_of_sigpipe()
    if log is not None:
        log.emit("info", f"exiting with status {rc}")
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _die_of_sigpipe()
    if whole_process and a.cmd != "serve" and isinstance(rc, int):
        # Nothing outlives the command but its output, flushed: the interpreter's teardown
        # of modules and objects cost every command ~4.5 ms (11 % of `ps`'s instructions).
        try:
            if sys.stderr is not None:  # None: started with fd 2 closed
                sys.stderr.flush()
        except OSError:  # nobody reads it any more: as at the interpreter's own exit
            pass
        os._exit(rc)
    return rc


def _run(run: Callable[[Any, Args], int], a: Args, log: Any) -> int:
    if a.cmd in NO_CLIENT:
        return run(None, a)
    if a.cmd in ("run", "create", "exec") and a.command and a.command[0] == "--":
        a.command = a.command[1:]
    if a.cmd == "exec":
        from .containers import preserved_fds

        # Looked at before the daemon's socket is opened: it could take one of those numbers.
        a.fds = preserved_fds(a.preserve_fds)
    client_class = Client
    if log is not None and log.enabled("debug"):
        from .clilog import traced

        client_class = traced(Client, log)
    with client_class(a.socket, raw=True) as client:
        if log is not None:
            log.emit("debug", f"connected to {client.path}")
        return run(client, a)


def _die_of_sigpipe() -> None:
    """The reader of our output went away (``varpod run ... | head -1``): end as any program
    killed by SIGPIPE does, quietly, with the status a shell expects of it."""
    import _signal

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    os.kill(os.getpid(), _signal.SIGPIPE)
