"""Container commands that run something: run, create, exec, attach, logs, update.

The lifecycle verbs (start, stop, rm ...) are in lifecycle.py, ps in ps.py, inspect in
inspect.py; what run/create take besides the command is read by runflags.py.
"""

from __future__ import annotations

import os
import sys

from ...core.errors import InvalidConfig, NoSuchContainer, RuntimeFailed, StreamBroken, VarpodError, from_wire
from ..fastargs import REMAINDER
from .common import (
    EXIT_CANNOT_INVOKE,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    CLIError,
    each,
    error,
    out,
    pairs,
    parse_time,
    rfc3339,
    terminal_size,
)
from .images import ensure_image, entrypoint, image_flags
from .networks import network_flags, network_options
from .pods import pod_flag
from .volumes import mount_flags, mount_options

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

    from ..client import Client
    from . import Args, Parser


def _container_flags(p: Parser) -> None:
    from . import runflags

    p.add_argument("--name", help="container name (default: generated)")
    p.add_argument("--rootfs", help="run from this root filesystem directory, relative to this "
                                    "directory (then there is no IMAGE: every word after the "
                                    "options is the command)")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="KEY alone takes this client's value; KEY* every variable so named")
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
    mount_flags(p)
    p.add_argument("--read-only", action="store_true", help="mount the rootfs read-only")
    p.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--log-size-max", type=int, help="rotate the log at this many bytes")
    _limit_flags(p)
    pod_flag(p)
    runflags.declare(p)
    p.add_argument("--detach-keys", help="detach sequence (default ctrl-p,ctrl-q; '' disables)")
    image_flags(p)
    p.add_argument("command", nargs=REMAINDER, help="IMAGE [COMMAND [ARG...]], or with --rootfs "
                                                     "COMMAND [ARG...]")


def _limit_flags(p: Parser) -> None:
    # Sizes and CPU counts are plain strings here, turned into numbers by core/units.py.
    p.add_argument("-m", "--memory", help="memory limit: bytes or 512k, 64m, 1g (0: none)")
    p.add_argument("--cpus", help="CPU limit, a number of CPUs like 0.5")
    p.add_argument("--pids-limit", type=int, help="most processes at once (-1 or 0: no limit)")
    p.add_argument("--cpu-shares", type=int, help="relative CPU weight (default 1024)")


def _update_args(p: Parser) -> None:
    _limit_flags(p)
    p.add_argument("names", nargs="+")


def _run_args(p: Parser) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="print the ID and return")
    p.add_argument("--sig-proxy", choices=["true", "false"], default="true",
                   help="pass SIGINT/SIGTERM on to the container (default true)")
    _container_flags(p)


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
    p.add_argument("--sig-proxy", choices=["true", "false"], default="true",
                   help="pass SIGINT/SIGTERM on to the container (default true); false: they "
                        "end the attach, and the container runs on")
    p.add_argument("-l", "--latest", action="store_true", help="the latest created container")
    p.add_argument("name", nargs="*", default=[], metavar="CONTAINER")


def _exec_args(p: Parser) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY[=VALUE]",
                   help="KEY alone takes this client's value")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--privileged", action="store_true", help="all capabilities")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--detach-keys")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N",
                   help="pass this command's fds 3 .. 3+N-1 on to the process")
    p.add_argument("name")
    p.add_argument("command", nargs=REMAINDER)



def _create(client: Client, a: Args, auto_remove: bool = False) -> dict:
    from . import runflags

    runflags.refuse_unsupported(a)
    rootfs, image, command = runflags.client_path(a.rootfs), None, a.command
    if rootfs:
        if not command:
            raise CLIError("a command is required (after the options)")
    else:
        if not command:
            raise CLIError("an image is required (or --rootfs DIR and a command)")
        image, command = command[0], command[1:]
    if a.replace and not a.name:
        raise CLIError("cannot replace a container without --name being set")
    cidfile = runflags.client_path(a.cidfile)
    if cidfile is not None and os.path.exists(cidfile):
        raise CLIError(f"container id file {a.cidfile} exists: ensure another container is "
                       "not using it, or delete it")
    from ...core.units import parse_size

    labels = {**runflags.labels_from_files([runflags.client_path(f) for f in a.label_file]),
              **pairs(a.label, "label")}
    env = runflags.environment(a.env_host, [runflags.client_path(f) for f in a.env_file], a.env)
    spec = dict(
        image=image, entrypoint=entrypoint(a.entrypoint),
        name=a.name, env=env or None, workdir=a.workdir, user=a.user, hostname=a.hostname,
        tty=a.tty or None, stdin=a.interactive or None, runtime=a.runtime,
        restart_policy=a.restart, stop_signal=a.stop_signal, stop_timeout=a.stop_timeout,
        read_only=a.read_only or None, labels=labels or None, **network_options(a), **mount_options(a),
        auto_remove=auto_remove or None, log_size_max=a.log_size_max, pod=a.pod, **_limits(a),
        cap_add=a.cap_add or None, cap_drop=a.cap_drop or None, privileged=a.privileged or None,
        no_new_privileges=runflags.no_new_privileges(a.security_opt) or None,
        ulimits=a.ulimit or None, sysctls=runflags.keyvalues(a.sysctl, "--sysctl") or None,
        devices=[_device_path(d) for d in a.device] or None,
        shm_size=None if a.shm_size is None else parse_size(a.shm_size, "shm_size"),
        init=a.init or None, log_driver=a.log_driver,
        annotations=runflags.keyvalues(a.annotation, "--annotation") or None, userns=a.userns)
    if image is not None:
        ensure_image(client, image, a)
    if a.replace:
        try:
            client.remove(a.name, force=True)
        except NoSuchContainer:
            pass
    created = client.create(rootfs, command, **spec)
    if cidfile is not None:
        _write_cidfile(client, cidfile, created["id"])
    return created


def _device_path(item: str) -> str:
    host, sep, rest = item.partition(":")
    return os.path.abspath(host) + sep + rest


def _write_cidfile(client: Client, path: str, cid: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(cid)
    except OSError as e:
        client.remove(cid, force=True)
        raise CLIError(f"writing the container ID to {path}: {e.strerror}") from None


def _limits(a: Args) -> dict[str, Any]:
    from ...core.units import parse_cpus, parse_size

    return {"memory": None if a.memory is None else parse_size(a.memory),
            "cpus": None if a.cpus is None else parse_cpus(a.cpus),
            "pids_limit": a.pids_limit, "cpu_shares": a.cpu_shares}


def cmd_create(client: Client, a: Args) -> int:
    out(_create(client, a, auto_remove=a.rm)["id"])
    return 0


def cmd_run(client: Client, a: Args) -> int:
    # --rm is the daemon's: it removes the container when it exits, whether or not this
    # client is still there to see it (podman leaves a container to its own life too).
    created = _create(client, a, auto_remove=a.rm)
    cid = created["id"]
    if a.detach:
        try:
            client.start(cid)
        except RuntimeFailed as e:
            return _start_failed(client, cid, e, a.rm)
        out(cid)
        return 0
    # For a TTY, whose stream does not say how it ended, the exit code comes from a wait
    # registered before the start: an --rm container may be gone by the time we ask.
    waiter = client.wait_stream(cid) if a.tty else None
    try:
        if waiter is not None:
            next(waiter)  # registered
        # One server-side step: attached first, then started, so no output is lost.
        session = client.attach(cid, stdin=a.interactive, start=True, detach_keys=a.detach_keys,
                                size=terminal_size() if a.tty else None)
    except RuntimeFailed as e:
        return _start_failed(client, cid, e, a.rm)
    try:
        code = relay(client, session, cid, send_stdin=a.interactive,
                     sig_proxy=a.sig_proxy == "true", detach_keys=a.detach_keys, waiter=waiter)
    finally:
        if waiter is not None:
            waiter.close()
    return 0 if code is None else code


def _start_failed(client: Client, cid: str, e: RuntimeFailed, rm: bool) -> int:
    """podman's exit code for a command that could not run (126, 127, or 125)."""
    error(e.message)
    if rm:  # it never ran, so it never exits: its --rm is ours to do
        try:
            client.remove(cid, force=True)
        except VarpodError as gone:
            error(f"removing {cid[:12]}: {gone.message}")
    return _runtime_exit_code(e)


def attached_start(client: Client, ref: str, *, stdin: bool, detach_keys: str | None,
                   sig_proxy: bool) -> int:
    """``start --attach``: the container started with this terminal attached, as ``run``."""
    info = client.inspect(ref)
    stdin = stdin and info["Config"]["OpenStdin"]
    tty = info["Config"]["Tty"]
    waiter = client.wait_stream(info["Id"]) if tty else None
    try:
        if waiter is not None:
            next(waiter)
        try:
            session = client.attach(info["Id"], stdin=stdin, start=True, detach_keys=detach_keys,
                                    size=terminal_size() if tty else None)
        except RuntimeFailed as e:
            error(e.message)
            return _runtime_exit_code(e)
        code = relay(client, session, info["Id"], send_stdin=stdin, sig_proxy=sig_proxy,
                     detach_keys=detach_keys, waiter=waiter)
    finally:
        if waiter is not None:
            waiter.close()
    return 0 if code is None else code


def relay(client: Client, session: Any, name: str, *, send_stdin: bool, is_exec: bool = False,
          sig_proxy: bool = True, detach_keys: str | None = None, waiter: Any = None) -> int | None:
    """Run an attached session in this terminal; its exit code, or None when detached."""
    from ..minipack import MiniCodec
    from ..terminal import SessionRelay, cbreak_terminal, raw_terminal, stdin_is_tty

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

    # Without stdin for the container, this terminal's keys are still watched for the
    # detach sequence (the daemon only sees keys on stdin).
    keys = b""
    if not send_stdin and stdin_is_tty():
        from ..detachkeys import parse_detach_keys

        keys = parse_detach_keys(detach_keys)
    try:
        if not session.tty and not send_stdin and not keys:
            end = _output_only(session, forward if sig_proxy else None)
        else:
            relay = SessionRelay(session.fileno(), session.take_buffered(), tty=session.tty,
                                 send_stdin=send_stdin, decode_control=codec.decode_control,
                                 on_resize=resize, on_signal=forward, detach_keys=keys,
                                 proxy_signals=sig_proxy)
            mode = raw_terminal if session.tty and send_stdin else cbreak_terminal if keys else None
            if mode is not None:
                with mode(0):
                    end = relay.run()
            else:
                end = relay.run()
    finally:
        session.close()
    return _ending(client, session, end, name, is_exec, waiter)


def _ending(client: Client, session: Any, end: dict, name: str, is_exec: bool,
            waiter: Any) -> int | None:
    """The exit code a finished session reports, None when it was detached."""
    if "error" in end:
        error(str(end.get("message", end["error"])))
        return EXIT_ERROR
    if end.get("end") == "detached":
        return None
    if "exit_code" in end:
        return end["exit_code"] if end.get("exit_code_known", True) else EXIT_ERROR
    # A TTY stream ends without saying how: ask whether the process is done.
    if is_exec:
        info = client.exec_inspect(session.ref)
        return None if info["Running"] else info["ExitCode"]
    try:
        status = client.inspect(name)["State"]["Status"]
    except NoSuchContainer:  # removed on exit (--rm): the wait registered before has its code
        status = "removed"
    if status in ("running", "paused", "created"):
        return None
    waited = next(waiter) if waiter is not None else client.wait(name)
    return waited["exit_code"] if waited["exit_code_known"] else EXIT_ERROR


def _output_only(session: Any, forward: Any) -> dict:
    """No input to relay: the whole stream in C; SIGINT/SIGTERM passed to the container
    (``forward``), or (None) left to end this process."""
    from ..terminal import pump_stream

    if forward is None:
        end = pump_stream(session.fileno(), session.take_buffered(), records=False)
    else:
        import _signal as signal  # the C module: `signal` imports enum (~5 ms of CLI start-up)

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
    if a.latest == bool(a.name) or len(a.name) > 1:
        raise CLIError("attach needs one container: a name or ID, or --latest")
    ref = a.name[0] if a.name else _latest(client)
    info = client.inspect(ref)
    stdin = info["Config"]["OpenStdin"] and not a.no_stdin
    tty = info["Config"]["Tty"]
    # A TTY stream does not say how it ended: a wait registered first will (even if the
    # container is removed on exit meanwhile).
    waiter = client.wait_stream(info["Id"]) if tty else None
    try:
        if waiter is not None:
            next(waiter)
        session = client.attach(info["Id"], stdin=stdin, detach_keys=a.detach_keys,
                                size=terminal_size() if tty else None)
        code = relay(client, session, info["Id"], send_stdin=stdin,
                     sig_proxy=a.sig_proxy == "true", detach_keys=a.detach_keys, waiter=waiter)
    finally:
        if waiter is not None:
            waiter.close()
    return 0 if code is None else code


def _latest(client: Client) -> str:
    ctrs = client.list(all=True)
    if not ctrs:
        raise CLIError("no containers to attach to")
    return max(ctrs, key=lambda c: c["CreatedAt"])["Id"]


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
        raise CLIError("exec needs a command")
    if a.detach and a.preserve_fds:
        error("--preserve-fds needs an attached exec (the fds travel over its stream); drop -d")
        return EXIT_ERROR
    from .runflags import environment

    env = environment(False, [], a.env)  # -e VAR takes this client's value, as for run
    sid = client.exec_create(a.name, a.command, env=env or None, workdir=a.workdir, user=a.user,
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
        error(e.message)
        return _runtime_exit_code(e)
    code = relay(client, session, a.name, send_stdin=a.interactive, is_exec=True)
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



def cmd_update(client: Client, a: Args) -> int:
    limits = _limits(a)
    if all(v is None for v in limits.values()):
        print("Error: nothing to update: give --memory, --cpus, --pids-limit or --cpu-shares",
              file=sys.stderr)
        return EXIT_ERROR
    return each(client, a.names, lambda n: client.update(n, **limits))


def cmd_logs(client: Client, a: Args) -> int:
    opts = {"follow": a.follow, "tail": a.tail, "since": parse_time(a.since),
            "until": parse_time(a.until)}
    if a.timestamps:
        _write_records(client.logs(a.name, timestamps=True, **opts), timestamps=True)
    else:
        _demux_logs(client, a.name, opts)
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
    "update": (_update_args, cmd_update),
    "logs": (_logs_args, cmd_logs),
    "attach": (_attach_args, cmd_attach),
    "exec": (_exec_args, cmd_exec),
}
