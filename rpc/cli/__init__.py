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
from .common import EXIT_ERROR

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
    "start": ("start containers", "containers"),
    "stop": ("stop containers", "containers"),
    "restart": ("restart containers", "containers"),
    "update": ("change resource limits of containers", "containers"),
    "kill": ("signal containers", "containers"),
    "pause": ("pause containers", "containers"),
    "unpause": ("unpause containers", "containers"),
    "wait": ("wait for containers to stop; print exit codes", "containers"),
    "rm": ("remove containers", "containers"),
    "ps": ("list containers", "containers"),
    "inspect": ("show containers as podman-shaped JSON", "containers"),
    "logs": ("print a container's output", "containers"),
    "attach": ("attach to a running container", "containers"),
    "exec": ("run a command in a running container", "containers"),
    "events": ("show events", "system"),
    "info": ("daemon, runtimes and native extension status", "system"),
    "init": ("init containers", "containers"),
    "sync": ("sync state with the runtime", "containers"),
    "checkpoint": ("checkpoint containers with CRIU (probed)", "containers"),
    "restore": ("restore checkpointed containers (probed)", "containers"),
    "port": ("list a container's published ports", "networks"),
    "network create": ("create a bridge network", "networks"),
    "network ls": ("list networks", "networks"),
    "network inspect": ("show networks as podman-shaped JSON", "networks"),
    "network rm": ("remove networks", "networks"),
    "network prune": ("remove every network no container uses", "networks"),
    "network connect": ("connect a container to a network", "networks"),
    "network disconnect": ("disconnect a container from a network", "networks"),
    "network reload": ("set containers' networks (and firewall rules) up again", "networks"),
    "network exists": ("exit 0 if a network exists, 1 if not", "networks"),
}


# podman's command groups: group word -> help; its verbs are the SUBCOMMANDS "word verb"
GROUPS: dict[str, str] = {"container": "manage containers", "network": "manage networks"}

# More names for a command: `varpod container VERB` is each container command, ls and list ps.
ALIASES = {f"container {verb}": name for verb, name in (
    *((n, n) for n, (_, m) in SUBCOMMANDS.items() if m == "containers"), ("ls", "ps"), ("list", "ps"))}
ALIASES.update({"container port": "port", "network list": "network ls", "network remove": "network rm"})
SUBCOMMANDS.update({alias: SUBCOMMANDS[name] for alias, name in ALIASES.items()})


def command(name: str) -> tuple[Callable[[Parser], None], Callable[[Any, Args], int]]:
    """(declare, run) of a command, importing only the module that holds it."""
    from importlib import import_module

    module = import_module(f"{__name__}.{SUBCOMMANDS[name][1]}")
    return module.COMMANDS[ALIASES.get(name, name)]


SOCKET_HELP = "daemon socket (default $VARPOD_SOCKET or /run/varpod/varpod.sock)"


def _socket_arg(p: Parser, default: Any = None) -> None:
    p.add_argument("--socket", default=default, help=SOCKET_HELP)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (``only``) just the one command's: each costs start-up time."""
    import argparse

    # A fixed help width: the default formatter imports shutil (~3 ms) on every start-up.
    width = int(os.environ.get("COLUMNS", "100"))

    def formatter(prog: str) -> argparse.HelpFormatter:
        return argparse.HelpFormatter(prog, width=width)

    # fastargs reads argv as argparse does with these parsers' defaults (prefix "-",
    # abbreviations allowed, no @file arguments): a setting changed here must be there too.
    parser = argparse.ArgumentParser(prog="varpod", description="varpod container engine",
                                     formatter_class=formatter)
    _socket_arg(parser)
    # --socket is accepted after the command too (`varpod serve --socket PATH`).
    common = argparse.ArgumentParser(add_help=False, formatter_class=formatter)
    _socket_arg(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")
    sub.required = True
    groups: dict[str, Any] = {}
    for name, (text, _) in SUBCOMMANDS.items():
        word, _, verb = name.partition(" ")
        if only is not None and word != only:
            continue
        if verb and word not in groups:
            group = sub.add_parser(word, help=GROUPS[word], parents=[common],
                                   formatter_class=formatter)
            groups[word] = group.add_subparsers(dest="subcmd", metavar="COMMAND")
            groups[word].required = True
        place = groups[word] if verb else sub
        command(name)[0](place.add_parser(verb or name, help=text, parents=[common],
                                          formatter_class=formatter))
    return parser


def _recorded_command(name: str) -> fastargs.Recorder | None:
    """The command's (or group's) declarations replayed for fastargs, as build_parser
    declares them."""
    if name in GROUPS:
        rec = fastargs.Recorder()
        _socket_arg(rec, fastargs.SUPPRESS)
        rec.add_commands("subcmd", lambda verb: _recorded_command(f"{name} {verb}")
                         if " " not in verb else None)
        return rec
    if name not in SUBCOMMANDS:
        return None
    rec = fastargs.Recorder()
    _socket_arg(rec, fastargs.SUPPRESS)
    command(name)[0](rec)
    return rec


def command_name(a: Args) -> str:
    """The SUBCOMMANDS name argv asked for: ``ps``, or ``image prune`` for a group's verb."""
    verb = getattr(a, "subcmd", None)
    return a.cmd if verb is None else f"{a.cmd} {verb}"


def recorded() -> fastargs.Recorder:
    """build_parser's declarations replayed for fastargs (each command's when it is met)."""
    top = fastargs.Recorder()
    _socket_arg(top)
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
    """The command word, skipping a leading ``--socket PATH``; None if unclear."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--socket":
            i += 2
        elif word.startswith("--socket="):
            i += 1
        else:
            return word if word in SUBCOMMANDS or word in GROUPS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    run = command(command_name(a))[1]
    if a.cmd == "serve":
        return run(None, a)
    if a.cmd in ("run", "create", "exec") and a.command and a.command[0] == "--":
        a.command = a.command[1:]
    try:
        if a.cmd == "exec":
            from .containers import preserved_fds

            # Looked at before the daemon's socket is opened: it could take one of those numbers.
            a.fds = preserved_fds(a.preserve_fds)
        with Client(a.socket, raw=True) as client:
            return run(client, a)
    except VarpodError as e:
        print(f"Error: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
