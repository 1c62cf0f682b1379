"""Container commands: create, run, start, stop, exec, attach, logs, ps, inspect ..."""

from __future__ import annotations

import os
import sys
import time

from ...core.errors import InvalidConfig, RuntimeFailed, StreamBroken, VarpodError, from_wire
from ..fastargs import REMAINDER
from .common import (
    EXIT_CANNOT_INVOKE,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    ago,
    each,
    out,
    pairs,
    parse_time,
    rfc3339,
    terminal_size,
    to_json,
)
from .networks import network_flags, network_options

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser


def _container_flags(p: Parser) -> None:
    p.add_argument("--name", help="container name (default: generated)")
    p.add_argument("--rootfs", required=True, help="root filesystem directory to run from")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="uid[:gid] or name[:group]")
    p.add_argument("--hostname")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("--runtime", help="OCI runtime name (default: the daemon's)")
    p.add_argument("--restart", default=None, help="no, always, on-failure[:N], unless-stopped")
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    network_flags(p)
    p.add_argument("--read-only", action="store_true", help="mount the rootfs read-only")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--log-size-max", type=int, help="rotate the log at this many bytes")
    _limit_flags(p)
    p.add_argument("--detach-keys", help="detach sequence (default ctrl-p,ctrl-q; '' disables)")
    p.add_argument("command", nargs=REMAINDER)


def _limit_flags(p: Parser) -> None:
    # Sizes and CPU counts are plain strings here, turned into numbers by core/units.py.
    p.add_argument("-m", "--memory", help="memory limit: bytes or 512k, 64m, 1g (0: none)")
    p.add_argument("--cpus", help="CPU limit, a number of CPUs like 0.5")
    p.add_argument("--pids-limit", type=int, help="most processes at once (-1 or 0: no limit)")
    p.add_argument("--cpu-shares", type=int, help="relative CPU weight (default 1024)")


def _update_args(p: Parser) -> None:
    _limit_flags(p)
    _names(p)


def _names(p: Parser) -> None:
    p.add_argument("names", nargs="+")


def _run_args(p: Parser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="print the ID and return")
    _container_flags(p)


def _stop_args(p: Parser) -> None:
    p.add_argument("-t", "--time", type=int, help="seconds before SIGKILL")
    _names(p)


def _kill_args(p: Parser) -> None:
    p.add_argument("-s", "--signal", default="KILL")
    _names(p)


def _wait_args(p: Parser) -> None:
    p.add_argument("--condition", action="append", default=[])
    _names(p)


def _rm_args(p: Parser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="stop running containers first")
    p.add_argument("-t", "--time", type=int, help="stop timeout with --force (default 0)")
    _names(p)


def _ps_args(p: Parser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", choices=["table", "json"], default="table")


def _logs_args(p: Parser) -> None:
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--tail", type=int, help="only the last N lines")
    p.add_argument("--since", help="RFC 3339 time, unix seconds, or a duration like 10m")
    p.add_argument("--until", help="RFC 3339 time, unix seconds, or a duration like 10m")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("name")


def _attach_args(p: Parser) -> None:
    p.add_argument("--no-stdin", action="store_true", help="do not send stdin")
    p.add_argument("--detach-keys", help="detach sequence (default ctrl-p,ctrl-q; '' disables)")
    p.add_argument("name")


def _exec_args(p: Parser) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--privileged", action="store_true", help="all capabilities")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--detach-keys")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="pass this command's fds 3 .. 3+N-1 on to the process")
    p.add_argument("name")
    p.add_argument("command", nargs=REMAINDER)



def _create(client: Client, a: Args) -> dict:
    if not a.command:
        raise SystemExit("Error: a command is required (after the options)")
    return client.create(
        a.rootfs, a.command, name=a.name, env=a.env or None, workdir=a.workdir, user=a.user,
        hostname=a.hostname, tty=a.tty or None, stdin=a.interactive or None,
        runtime=a.runtime, restart_policy=a.restart, stop_signal=a.stop_signal,
        stop_timeout=a.stop_timeout, read_only=a.read_only or None,
        labels=pairs(a.label, "label") or None, auto_remove=a.rm or None,
        log_size_max=a.log_size_max, **_limits(a), **network_options(a))


def _limits(a: Args) -> dict[str, Any]:
    from ...core.units import parse_cpus, parse_size

    return {"memory": None if a.memory is None else parse_size(a.memory),
            "cpus": None if a.cpus is None else parse_cpus(a.cpus),
            "pids_limit": a.pids_limit, "cpu_shares": a.cpu_shares}


def cmd_create(client: Client, a: Args) -> int:
    out(_create(client, a)["id"])
    return 0


def cmd_run(client: Client, a: Args) -> int:
    if a.detach:
        created = _create(client, a)
        client.start(created["id"])
        out(created["id"])
        return 0
    # --rm is done here, after the exit code is read, not by the daemon on exit.
    rm = a.rm
    a.rm = False
    created = _create(client, a)
    cid = created["id"]
    code = EXIT_ERROR
    try:
        # One server-side step: attached first, then started, so no output is lost.
        session = client.attach(cid, stdin=a.interactive, start=True, detach_keys=a.detach_keys,
                                size=terminal_size() if a.tty else None)
        code = _relay(client, session, cid, send_stdin=a.interactive)
    except RuntimeFailed as e:
        code = _runtime_exit_code(e)
        print(f"Error: {e.message}", file=sys.stderr)
    finally:
        if rm and code is not None:
            try:
                client.remove(cid, force=True)
            except VarpodError as e:
                print(f"Error: removing {cid[:12]}: {e.message}", file=sys.stderr)
    return 0 if code is None else code


def _relay(client: Client, session: Any, name: str, *, send_stdin: bool,
           is_exec: bool = False) -> int | None:
    """Run an attached session in this terminal; its exit code, or None when detached."""
    from ..minipack import MiniCodec
    from ..terminal import SessionRelay, raw_terminal

    codec = MiniCodec()

    def resize(rows: int, cols: int) -> None:
        try:
            client.call(session.resize_method, session.resize_params(rows, cols))
        except VarpodError:
            pass  # the process may be gone already

    def forward(sig: int) -> None:
        try:
            client.kill(name, str(sig))
        except VarpodError:
            pass

    try:
        if not session.tty and not send_stdin:
            end = _output_only(session, forward)
        else:
            relay = SessionRelay(session.fileno(), session.take_buffered(), tty=session.tty,
                                 send_stdin=send_stdin, decode_control=codec.decode_control,
                                 on_resize=resize, on_signal=forward)
            if session.tty and send_stdin:
                with raw_terminal(0):
                    end = relay.run()
            else:
                end = relay.run()
    finally:
        session.close()
    if "error" in end:
        print(f"Error: {end.get('message', end['error'])}", file=sys.stderr)
        return EXIT_ERROR
    if end.get("end") == "detached":
        return None
    if "exit_code" in end:
        return end["exit_code"] if end.get("exit_code_known", True) else EXIT_ERROR
    # A TTY stream ends without saying how: ask whether the container is done.
    if is_exec:
        info = client.exec_inspect(session.ref)
        return None if info["Running"] else info["ExitCode"]
    st = client.inspect(name)["State"]
    if st["Status"] in ("running", "paused", "created"):
        return None
    waited = client.wait(name)
    return waited["exit_code"] if waited["exit_code_known"] else EXIT_ERROR


def _output_only(session: Any, forward: Any) -> dict:
    """No input to relay: the whole stream in C, SIGINT/SIGTERM passed to the container."""
    import _signal as signal  # the C module: `signal` imports enum (~5 ms of CLI start-up)

    from ..terminal import pump_stream

    caught: list[int] = []
    handlers = {s: signal.signal(s, lambda sig, _f: caught.append(sig))
                for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal() -> None:
        while caught:
            forward(caught.pop(0))

    try:
        end = pump_stream(session.fileno(), session.take_buffered(), records=False,
                          on_signal=on_signal)
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    if end is None:
        return {"error": "io.varpod.Stream.StreamBroken",
                "message": "the daemon closed the stream without saying how it ended"}
    return end


def cmd_attach(client: Client, a: Args) -> int:
    info = client.inspect(a.name)
    stdin = info["Config"]["OpenStdin"] and not a.no_stdin
    session = client.attach(a.name, stdin=stdin, detach_keys=a.detach_keys,
                            size=terminal_size() if info["Config"]["Tty"] else None)
    code = _relay(client, session, info["Id"], send_stdin=stdin)
    return 0 if code is None else code


def preserved_fds(count: int) -> tuple[int, ...]:
    """This process's fds 3 .. 3+count-1 (runc's --preserve-fds numbering), each open."""
    if count < 0:
        raise InvalidConfig(f"--preserve-fds {count} is negative", field="preserve_fds")
    for fd in range(3, 3 + count):  # stops at the first closed one, however large count is
        try:
            os.fstat(fd)
        except OSError:
            raise InvalidConfig(f"--preserve-fds {count}: fd {fd} is not open in this process",
                                field="preserve_fds") from None
    return tuple(range(3, 3 + count))


def cmd_exec(client: Client, a: Args) -> int:
    if not a.command:
        raise SystemExit("Error: exec needs a command")
    if a.detach and a.preserve_fds:
        print("Error: --preserve-fds needs an attached exec (the fds travel over its stream); "
              "drop -d", file=sys.stderr)
        return EXIT_ERROR
    sid = client.exec_create(a.name, a.command, env=a.env or None, workdir=a.workdir, user=a.user,
                             tty=a.tty, stdin=a.interactive, privileged=a.privileged,
                             cap_add=a.cap_add or None, detach_keys=a.detach_keys,
                             preserve_fds=a.preserve_fds)
    if a.detach:
        client.exec_start(sid)
        out(sid)
        return 0
    try:
        session = client.exec_start(sid, attach=True, size=terminal_size() if a.tty else None,
                                    fds=a.fds)
    except RuntimeFailed as e:
        print(f"Error: {e.message}", file=sys.stderr)
        return _runtime_exit_code(e)
    code = _relay(client, session, a.name, send_stdin=a.interactive, is_exec=True)
    return 0 if code is None else code


def _runtime_exit_code(e: RuntimeFailed) -> int:
    text = e.message.lower()
    if "no such file or directory" in text or "executable file not found" in text:
        return EXIT_NOT_FOUND
    if "permission denied" in text:
        return EXIT_CANNOT_INVOKE
    return EXIT_ERROR


def _write_records(records: Any, timestamps: bool) -> None:
    out = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    at_line_start = {1: True, 2: True}
    for rec in records:
        f = out.get(rec.stream)
        if f is None:
            continue
        data = rec.payload
        if timestamps:
            data = _stamp(data, rfc3339(rec.time).encode(), at_line_start, rec.stream)
        f.write(data)
        if rec.stream == 2 or (f is out[1] and not timestamps and b"\n" in data[-1:]):
            f.flush()
    for f in out.values():
        f.flush()


def _stamp(data: bytes, stamp: bytes, at_line_start: dict[int, bool], stream: int) -> bytes:
    lines = data.split(b"\n")
    parts = []
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if last and not line:
            break
        if i > 0 or at_line_start[stream]:
            parts.append(stamp + b" " + line)
        else:
            parts.append(line)
    at_line_start[stream] = data.endswith(b"\n")
    return b"\n".join(parts) + (b"\n" if data.endswith(b"\n") else b"")



def cmd_simple(client: Client, a: Args) -> int:
    return each(client, a.names, getattr(client, a.cmd))


def cmd_stop(client: Client, a: Args) -> int:
    return each(client, a.names, lambda n: client.stop(n, a.time))


def cmd_restart(client: Client, a: Args) -> int:
    return each(client, a.names, lambda n: client.restart(n, a.time))


def cmd_update(client: Client, a: Args) -> int:
    limits = _limits(a)
    if all(v is None for v in limits.values()):
        print("Error: nothing to update: give --memory, --cpus, --pids-limit or --cpu-shares",
              file=sys.stderr)
        return EXIT_ERROR
    return each(client, a.names, lambda n: client.update(n, **limits))


def cmd_kill(client: Client, a: Args) -> int:
    return each(client, a.names, lambda n: client.kill(n, a.signal))


def cmd_rm(client: Client, a: Args) -> int:
    return each(client, a.names, lambda n: client.remove(n, force=a.force, timeout=a.time))


def cmd_wait(client: Client, a: Args) -> int:
    rc = 0
    for name in a.names:
        try:
            r = client.wait(name, a.condition or None)
            out(str(r["exit_code"] if r["exit_code_known"] else -1))
        except VarpodError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
    return rc


def cmd_ps(client: Client, a: Args) -> int:
    ctrs = client.list(all=a.all)
    if a.quiet:
        out("\n".join(c["Id"] if a.no_trunc else c["Id"][:12] for c in ctrs)) if ctrs else None
        return 0
    if a.format == "json":
        out(to_json(ctrs))
        return 0
    now = time.time()
    rows = [("CONTAINER ID", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for c in ctrs:
        cmd = " ".join(c["Command"])
        if not a.no_trunc and len(cmd) > 20:
            cmd = cmd[:17] + "..."
        rows.append((c["Id"] if a.no_trunc else c["Id"][:12], cmd, ago(now - c["Created"]),
                     c["Status"], ",".join(c["Names"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out("\n".join("  ".join(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
                   for r in rows))
    return 0


def cmd_inspect(client: Client, a: Args) -> int:
    found, rc = [], 0
    for name in a.names:
        try:
            found.append(client.inspect(name))
        except VarpodError as e:
            print(f"Error: {e.message}", file=sys.stderr)
            rc = EXIT_ERROR
    out(to_json(found))
    return rc


def cmd_logs(client: Client, a: Args) -> int:
    opts = {"follow": a.follow, "tail": a.tail, "since": parse_time(a.since),
            "until": parse_time(a.until)}
    try:
        if a.timestamps:
            _write_records(client.logs(a.name, timestamps=True, **opts), timestamps=True)
        else:
            _demux_logs(client, a.name, opts)
    except BrokenPipeError:
        pass
    return 0


def _demux_logs(client: Client, name: str, opts: dict) -> None:
    """Records straight to stdout/stderr by the C demultiplexer: no object per record."""
    sys.stdout.flush()
    params = {"name": name, **{k: v for k, v in opts.items() if v is not None and v is not False}}
    from ..terminal import pump_stream

    conn = client.open_stream("io.varpod.Container.Logs", params)
    try:
        end = pump_stream(conn.fileno(), conn.take_buffered(), records=True)
    finally:
        conn.close()
    if end is None:
        raise StreamBroken("the log stream ended without its end record")
    _raise_stream_error(end)


def _raise_stream_error(end: dict) -> None:
    if "error" in end:
        raise from_wire(str(end["error"]), {"message": end.get("message", "")})



# command -> (how its arguments are declared, what runs it)
COMMANDS = {
    "run": (_run_args, cmd_run),
    "create": (_container_flags, cmd_create),
    "start": (_names, cmd_simple),
    "stop": (_stop_args, cmd_stop),
    "restart": (_stop_args, cmd_restart),
    "update": (_update_args, cmd_update),
    "kill": (_kill_args, cmd_kill),
    "pause": (_names, cmd_simple),
    "unpause": (_names, cmd_simple),
    "wait": (_wait_args, cmd_wait),
    "rm": (_rm_args, cmd_rm),
    "ps": (_ps_args, cmd_ps),
    "inspect": (_names, cmd_inspect),
    "logs": (_logs_args, cmd_logs),
    "attach": (_attach_args, cmd_attach),
    "exec": (_exec_args, cmd_exec),
    "init": (_names, cmd_simple),
    "sync": (_names, cmd_simple),
    "checkpoint": (_names, cmd_simple),
    "restore": (_names, cmd_simple),
}
