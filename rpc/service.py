"""Handlers: each RPC method bound to an engine operation, records turned into wire Structs."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from .. import __version__, native
from ..core import events as core_events
from ..core.engine import CreateOptions, Engine
from ..core.errors import (
    EventsOverflow,
    ExpectedMore,
    InterfaceNotFound,
    InvalidParameter,
    InvalidState,
    VarpodError,
)
from ..core.logread import Position, Selection, start_position
from ..core.model import CPU_PERIOD_US, ContainerRecord
from ..core.states import Action, State
from ..core.units import human_duration
from .interfaces import INTERFACES, idl
from .interfaces import container as C
from .interfaces import service as V
from .interfaces import system as S
from .mountviews import host_config_mounts, inspect_mounts, summary_mounts
from .registry import Kind, Registry
from .streams import (
    MODE_FRAMES,
    MODE_RAW,
    AttachSession,
    LogFollower,
    RawChannel,
    parse_detach_keys,
    receive_fds,
    serve_logs,
)

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int) -> str:
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 10**9)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _ago(ns: int, now: int) -> str:
    return human_duration(max(0, now - ns) / 1e9)


def status_text(rec: ContainerRecord, now: int) -> str:
    st = rec.state
    match st.state:
        case State.RUNNING:
            return f"Up {_ago(st.started_at, now)}"
        case State.PAUSED:
            return f"Up {_ago(st.started_at, now)} (paused)"
        case State.STOPPING:
            return "Stopping"
        case State.STOPPED | State.EXITED:
            code = st.exit_code if st.exit_code_known else "unknown"
            return f"Exited ({code}) {_ago(st.finished_at, now)} ago"
        case State.CREATED:
            return "Created"
        case State.CONFIGURED:
            return "Configured"
        case _:
            return st.state.value.capitalize()


class Service:
    def __init__(self, engine: Engine, bus: core_events.EventBus, info: dict[str, Any],
                 events_queue: int = 4096) -> None:
        self.engine = engine
        self.bus = bus
        self.events_queue = events_queue
        self.static_info = info  # filled at start-up: runtimes, paths, loop
        self.server: Any = None  # set once the server exists (for connection counts)
        # ContainerRecord -> C.NetworkSettings, set by the daemon (rpc/service_networks.py)
        self.network_settings: Any = None
        self.pod_name: Any = None  # pod ID -> name, set once pods exist (ps shows PodName)
        # List is polled (ps, dashboards): its encoded reply is reused until a record
        # changes or the second ticks (Status says "Up 5 seconds").
        self._list_cache: dict[tuple[bool, bool], tuple[tuple[int, int], Any]] = {}
        self._summaries: dict[str, tuple[ContainerRecord, C.ContainerSummary]] = {}

    def register(self, reg: Registry) -> None:
        add = reg.add
        add("org.varlink.service.GetInfo", V.GetInfoParams, self.get_info, Kind.SYNC)
        add("org.varlink.service.GetInterfaceDescription", V.GetInterfaceDescriptionParams,
            self.get_interface_description, Kind.SYNC)
        add("io.varpod.System.Ping", S.PingParams, self.ping, Kind.SYNC)
        add("io.varpod.System.Info", S.InfoParams, self.info, Kind.SYNC)
        add("io.varpod.System.Events", S.EventsParams, self.events, Kind.STREAM)
        ctr = "io.varpod.Container."
        add(ctr + "Create", C.CreateParams, self.create, mutating=True)
        for name, params in (("Init", C.NameParams), ("Start", C.NameParams),
                             ("Stop", C.StopParams), ("Kill", C.KillParams),
                             ("Pause", C.NameParams), ("Unpause", C.NameParams),
                             ("Restart", C.StopParams), ("Sync", C.NameParams),
                             ("Update", C.UpdateParams)):
            add(ctr + name, params, getattr(self, name.lower()), mutating=True)
        add(ctr + "Wait", C.WaitParams, self.wait, Kind.STREAM, long=True)
        add(ctr + "Remove", C.RemoveParams, self.remove, mutating=True)
        add(ctr + "Checkpoint", C.CheckpointParams, self.checkpoint, mutating=True)
        add(ctr + "Restore", C.RestoreParams, self.restore, mutating=True)
        add(ctr + "Logs", C.LogsParams, self.logs, Kind.UPGRADE)
        add(ctr + "Attach", C.AttachParams, self.attach, Kind.UPGRADE, mutating=True)
        add(ctr + "Resize", C.ResizeParams, self.resize)
        add(ctr + "ExecCreate", C.ExecCreateParams, self.exec_create, Kind.SYNC, mutating=True)
        add(ctr + "ExecStart", C.ExecStartParams, self.exec_start, Kind.UPGRADE, mutating=True)
        add(ctr + "ExecResize", C.ExecResizeParams, self.exec_resize, Kind.SYNC)
        add(ctr + "ExecInspect", C.ExecIdParams, self.exec_inspect, Kind.SYNC)
        add(ctr + "ExecStop", C.ExecStopParams, self.exec_stop, mutating=True)
        add(ctr + "ExecRemove", C.ExecRemoveParams, self.exec_remove, Kind.SYNC, mutating=True)
        add(ctr + "ExecList", C.NameParams, self.exec_list, Kind.SYNC)
        add(ctr + "Inspect", C.NameParams, self.inspect, Kind.SYNC)
        add(ctr + "List", C.ListParams, self.list, Kind.SYNC)
        add(ctr + "DiskUsage", C.NameParams, self.disk_usage)

    # -- org.varlink.service ---------------------------------------------------------

    def get_info(self, p: V.GetInfoParams, ctx: Any) -> V.GetInfoReply:
        return V.GetInfoReply(vendor="varpod", product="varpod", version=__version__,
                              url="https://github.com/varpod/varpod", interfaces=list(INTERFACES))

    def get_interface_description(self, p: V.GetInterfaceDescriptionParams, ctx: Any):
        try:
            return V.GetInterfaceDescriptionReply(description=idl(p.interface))
        except KeyError:
            raise InterfaceNotFound(f"interface {p.interface[:200]!r} is not served here",
                                    interface=p.interface[:200]) from None

    # -- io.varpod.System --------------------------------------------------------------

    def ping(self, p: S.PingParams, ctx: Any) -> S.PingReply:
        return S.PingReply(pong=p.ping if p.ping is not None else "pong")

    def info(self, p: S.InfoParams, ctx: Any) -> S.InfoReply:
        recs = list(self.engine.list(all=True))
        running = sum(1 for r in recs if r.state.state is State.RUNNING)
        connections = len(self.server.connections) if self.server is not None else 0
        return S.InfoReply(info=S.DaemonInfo(
            **self.static_info, version=__version__, pid=os.getpid(),
            native=native.IMPLEMENTATION, native_error=native.IMPORT_ERROR,
            containers=len(recs), running=running, connections=connections))

    async def events(self, p: S.EventsParams, ctx: Any):
        if not ctx.more:
            raise ExpectedMore("Events streams its replies; call it with more")
        wake = asyncio.Event()
        sub = self.bus.subscribe(wake.set, self.events_queue) if p.stream else None
        filters = p.filters or {}
        try:
            last = 0
            if p.since_seq is not None or p.since is not None:
                for ev in self.bus.history(p.since_seq or 0):
                    last = ev.seq
                    if _matches(ev, p, filters):
                        yield S.EventsReply(event=_wire_event(ev)), True
            if sub is None:
                yield S.EventsReply(), False
                return
            while True:
                while sub.queue:
                    ev = sub.queue.popleft()
                    if ev.seq <= last:
                        continue
                    if p.until is not None and ev.time > p.until:
                        yield S.EventsReply(), False
                        return
                    if _matches(ev, p, filters):
                        yield S.EventsReply(event=_wire_event(ev)), True
                if sub.overflowed:
                    raise EventsOverflow(
                        f"the reader fell more than {sub.limit} events behind; "
                        f"resume with since_seq={last}")
                wake.clear()
                await wake.wait()
        finally:
            if sub is not None:
                sub.close()

    # -- io.varpod.Container -------------------------------------------------------------

    async def create(self, p: C.CreateParams, ctx: Any) -> C.CreateReply:
        fields = {k: v for k, v in msgspec.structs.asdict(p.spec).items() if v is not None}
        rec = await self.engine.create(CreateOptions(**fields))
        return C.CreateReply(id=rec.id, name=rec.name)

    async def init(self, p: C.NameParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.init(p.name))

    async def start(self, p: C.NameParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.start(p.name))

    async def stop(self, p: C.StopParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.stop(p.name, p.timeout))

    async def kill(self, p: C.KillParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.kill(p.name, p.signal or "SIGKILL"))

    async def pause(self, p: C.NameParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.pause(p.name))

    async def unpause(self, p: C.NameParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.unpause(p.name))

    async def restart(self, p: C.StopParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.restart(p.name, p.timeout))

    async def update(self, p: C.UpdateParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.update(p.name, memory=p.memory, cpus=p.cpus,
                                               pids_limit=p.pids_limit, cpu_shares=p.cpu_shares))

    async def sync(self, p: C.NameParams, ctx: Any) -> C.StateReply:
        return _state(await self.engine.sync(p.name))

    async def wait(self, p: C.WaitParams, ctx: Any):
        rec = self.engine.resolve(p.name)
        waiting = asyncio.ensure_future(self.engine.wait(rec.id, p.conditions or ()))
        try:
            if ctx.more and not waiting.done():
                # Tell the client the wait is registered: it may now start the container.
                await asyncio.sleep(0)
                yield C.WaitReply(id=rec.id, state="", exit_code=0, exit_code_known=True), True
            rec = await waiting
        finally:
            waiting.cancel()
        st = rec.state
        if rec.config.auto_remove and st.state in (State.STOPPED, State.EXITED):
            st = await self.engine.exit_handled(rec.id) or st  # answered once it is removed
        yield C.WaitReply(id=rec.id, state=st.state.value, exit_code=st.exit_code,
                          exit_code_known=st.exit_code_known), False

    async def remove(self, p: C.RemoveParams, ctx: Any) -> C.RemoveReply:
        return C.RemoveReply(id=await self.engine.remove(p.name, bool(p.force), p.timeout,
                                                         volumes=bool(p.volumes)))

    async def logs(self, p: C.LogsParams, ctx: Any):
        if not ctx.upgrade:
            raise InvalidParameter("Logs streams raw records after its reply; call it with upgrade",
                                   parameter="upgrade")
        if p.tail is not None and p.tail < 0:
            raise InvalidParameter("tail must be >= 0", parameter="tail")
        rec = self.engine.resolve(p.name)
        if rec.config.log_driver == "none":
            raise InvalidState(f"container {rec.name} uses the none log driver: its output is "
                               "not kept, so there are no logs to read", id=rec.id,
                               state=rec.state.state.value)
        sel = Selection(stdout=p.stdout is not False, stderr=p.stderr is not False,
                        tail=p.tail, since=p.since, until=p.until)
        if not (sel.stdout or sel.stderr):
            raise InvalidParameter("select at least one of stdout and stderr", parameter="stdout")
        path = self.engine.log_path(rec.id)
        # Following a container that has not run yet must see its first run.
        writer = self.engine.log_writer(rec) if p.follow else self.engine.current_log(rec.id)
        pos = start_position(path, sel)

        async def takeover(conn: Any) -> None:
            chan = await RawChannel.detach(conn)
            await serve_logs(chan, path, writer, pos, sel, bool(p.follow), bool(p.timestamps))

        return C.LogsReply(id=rec.id, tty=rec.config.tty), takeover

    async def checkpoint(self, p: C.CheckpointParams, ctx: Any) -> C.IdReply:
        await self.engine.checkpoint_support(p.name, Action.CHECKPOINT)
        return C.IdReply(id=self.engine.resolve(p.name).id)  # not reached: see checkpoint_support

    async def restore(self, p: C.RestoreParams, ctx: Any) -> C.IdReply:
        await self.engine.checkpoint_support(p.name, Action.RESTORE)
        return C.IdReply(id=self.engine.resolve(p.name).id)

    # -- attach and exec --------------------------------------------------------------------

    async def attach(self, p: C.AttachParams, ctx: Any):
        if not ctx.upgrade:
            raise InvalidParameter("Attach streams after its reply; call it with upgrade",
                                   parameter="upgrade")
        engine = self.engine
        start = bool(p.start)
        rec = engine.check_attach(p.name, start=start)
        keys = parse_detach_keys(p.detach_keys)
        stream, replay = p.stream is not False, bool(p.logs)
        if not (stream or replay):
            raise InvalidParameter("ask for at least one of logs and stream", parameter="stream")
        sel = Selection(stdout=p.stdout is not False, stderr=p.stderr is not False)
        want_stdin = bool(p.stdin)
        if not (want_stdin or sel.stdout or sel.stderr):
            raise InvalidParameter("attach to at least one of stdin, stdout, stderr",
                                   parameter="stdin")
        if want_stdin and not rec.config.stdin:
            raise InvalidParameter(f"container {rec.name} was created without stdin (-i)",
                                   parameter="stdin")
        size = (p.height or 0, p.width or 0)
        writer = engine.log_writer(rec)
        path = engine.log_path(rec.id)
        # The session's place in the output is fixed here, before any start: nothing is lost.
        pos = start_position(path, Selection()) if replay else Position(writer.generation, writer.size)
        if start:
            rec = await engine.start(rec.id, tty_size=size)
        elif rec.config.tty and all(size):
            await engine.resize(rec.id, *size)
        cid, tty = rec.id, rec.config.tty
        self.bus.emit("container", "attach", cid, rec.name)

        async def takeover(conn: Any) -> None:
            chan = await RawChannel.detach(conn)
            follower = LogFollower(chan, path, writer, sel, stream, MODE_RAW if tty else MODE_FRAMES)
            session = AttachSession(chan, follower,
                                    (lambda: engine.stdin_of(cid)) if want_stdin else None, keys,
                                    lambda: self._container_exit(cid), close_stdin_on_eof=not tty)
            if tty and not start:
                await engine.signal_winch(cid)  # programs redraw for the newcomer
            await session.run(pos)

        return C.AttachReply(id=cid, tty=tty), takeover

    async def _container_exit(self, cid: str) -> dict[str, Any]:
        st = await self.engine.exit_handled(cid)
        if st is None or st.state not in (State.STOPPED, State.EXITED):
            return {}
        return {"exit_code": st.exit_code, "exit_code_known": st.exit_code_known}

    async def resize(self, p: C.ResizeParams, ctx: Any) -> C.Empty:
        await self.engine.resize(p.name, p.height, p.width)
        return C.Empty()

    def exec_create(self, p: C.ExecCreateParams, ctx: Any) -> C.IdReply:
        s = p.spec
        rec = self.engine.execs.create(
            p.name, command=s.command, env=s.env or (), workdir=s.workdir or "", user=s.user or "",
            tty=bool(s.tty), stdin=bool(s.stdin), privileged=bool(s.privileged),
            cap_add=s.cap_add or (), detach_keys=s.detach_keys, preserve_fds=s.preserve_fds or 0)
        parse_detach_keys(s.detach_keys)  # bad keys are refused at create, not mid-stream
        return C.IdReply(id=rec.id)

    async def exec_start(self, p: C.ExecStartParams, ctx: Any):
        execs = self.engine.execs
        rec = execs.get(p.id)
        attach = bool(p.attach)
        if attach and not ctx.upgrade:
            raise InvalidParameter("an attached ExecStart streams after its reply; call it with "
                                   "upgrade", parameter="upgrade")
        if rec.config.preserve_fds and not attach:
            raise InvalidParameter("preserve_fds travel over the attached stream; start with attach",
                                   parameter="attach")
        size = (p.height or 0, p.width or 0)
        sid, tty = rec.id, rec.config.tty
        if not attach:
            await execs.start(sid, tty_size=size)
            return C.AttachReply(id=sid, tty=tty), None
        keys = parse_detach_keys(rec.config.detach_keys)
        writer = execs.log_writer(sid)
        path = writer.path
        pos = Position(writer.generation, 0)
        if not rec.config.preserve_fds:
            await execs.start(sid, tty_size=size)  # errors here are ordinary RPC errors

        async def takeover(conn: Any) -> None:
            chan = await RawChannel.detach(conn)
            mode = MODE_RAW if tty else MODE_FRAMES
            if rec.config.preserve_fds:
                try:
                    fds = await receive_fds(chan, rec.config.preserve_fds)
                    try:
                        await execs.start(sid, tty_size=size, fds=fds)
                    finally:
                        for fd in fds:
                            os.close(fd)
                except VarpodError as e:
                    await chan.end({"error": e.rpc_name, "message": e.message}, mode)
                    chan.close()
                    return
            follower = LogFollower(chan, path, writer, Selection(), True, mode)
            session = AttachSession(chan, follower,
                                    (lambda: execs.stdin_of(sid)) if rec.config.stdin else None,
                                    keys, lambda: self._exec_exit(sid), close_stdin_on_eof=not tty)
            await session.run(pos)

        return C.AttachReply(id=sid, tty=tty), takeover

    async def _exec_exit(self, sid: str) -> dict[str, Any]:
        try:
            st = self.engine.execs.get(sid).state
        except VarpodError:
            return {}
        if st.state != "exited":
            return {}
        return {"exit_code": st.exit_code, "exit_code_known": st.exit_code_known}

    def exec_resize(self, p: C.ExecResizeParams, ctx: Any) -> C.Empty:
        self.engine.execs.resize(p.id, p.height, p.width)
        return C.Empty()

    def exec_inspect(self, p: C.ExecIdParams, ctx: Any) -> C.ExecInspectReply:
        return C.ExecInspectReply(exec=_exec_inspect(self.engine.execs.get(p.id)))

    async def exec_stop(self, p: C.ExecStopParams, ctx: Any) -> C.ExecInspectReply:
        timeout = 10 if p.timeout is None else p.timeout
        if timeout < 0:
            raise InvalidParameter("timeout must be >= 0", parameter="timeout")
        return C.ExecInspectReply(exec=_exec_inspect(await self.engine.execs.stop(p.id, timeout)))

    def exec_remove(self, p: C.ExecRemoveParams, ctx: Any) -> C.IdReply:
        self.engine.execs.remove(p.id, bool(p.force))
        return C.IdReply(id=p.id)

    def exec_list(self, p: C.NameParams, ctx: Any) -> C.ExecListReply:
        rec = self.engine.resolve(p.name)
        sessions = sorted(self.engine.execs.of_container(rec.id), key=lambda r: r.state.created_at)
        return C.ExecListReply(sessions=[_exec_inspect(r) for r in sessions])

    def inspect(self, p: C.NameParams, ctx: Any) -> C.InspectReply:
        return C.InspectReply(container=self.to_inspect(self.engine.inspect(p.name)))

    async def disk_usage(self, p: C.NameParams, ctx: Any) -> C.DiskUsageReply:
        from ..core.usage import disk_usage

        rec = self.engine.resolve(p.name)
        # A walk of the whole tree: off the event loop.
        rw = await asyncio.to_thread(disk_usage, rec.config.rootfs)
        return C.DiskUsageReply(id=rec.id, rw=rw, rootfs=0)

    def list(self, p: C.ListParams, ctx: Any) -> C.ListReply | msgspec.Raw:
        codec = ctx.connection.proto.codec
        key = (bool(p.all), codec.json)
        now = time.time_ns()
        stamp = (self.engine.version, now // 10**9)
        hit = self._list_cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        recs = self.engine.list(bool(p.all))
        reply = codec.encode_value(C.ListReply(containers=[self._summary(r, now) for r in recs]))
        self._list_cache[key] = (stamp, reply)
        if p.all and len(self._summaries) > len(recs) + 64:  # forget removed containers
            ids = {r.id for r in recs}
            self._summaries = {k: v for k, v in self._summaries.items() if k in ids}
        return reply

    def _summary(self, rec: ContainerRecord, now: int) -> C.ContainerSummary:
        hit = self._summaries.get(rec.id)
        if hit is None or hit[0] is not rec:  # records are replaced, never changed, on save
            summary = _summary(rec, now)
            if rec.config.pod and self.pod_name is not None:
                summary = msgspec.structs.replace(summary, PodName=self.pod_name(rec.config.pod))
            self._summaries[rec.id] = (rec, summary)
            return summary
        summary = hit[1]
        status = status_text(rec, now)
        return summary if summary.Status == status else msgspec.structs.replace(summary, Status=status)

    def to_inspect(self, rec: ContainerRecord) -> C.ContainerInspect:
        cfg, st, res = rec.config, rec.state, rec.config.resources
        return C.ContainerInspect(
            Id=rec.id, Created=rfc3339(cfg.created_at),
            Path=cfg.command[0] if cfg.command else "", Args=list(cfg.command[1:]),
            State=C.ContainerState(
                OciVersion="1.0.2-dev", Status=st.state.value,
                Running=st.state in (State.RUNNING, State.PAUSED, State.STOPPING),
                Paused=st.state is State.PAUSED, Restarting=False, OOMKilled=False,
                Dead=False, Pid=st.pid, ExitCode=st.exit_code, ExitCodeKnown=st.exit_code_known,
                Error=st.error, StartedAt=rfc3339(st.started_at),
                FinishedAt=rfc3339(st.finished_at), StoppedByUser=st.stopped_by_user),
            Image=cfg.image, Rootfs="" if cfg.image else cfg.rootfs, Name=cfg.name,
            RestartCount=st.restart_count, Driver="overlay" if cfg.image else "", OCIRuntime=cfg.runtime,
            LogPath=self.engine.log_path(rec.id),
            BundlePath=self.engine.bundle_dir(rec.id),
            Config=C.ContainerConfig(
                Hostname=cfg.hostname or cfg.id[:12], User=cfg.user, Env=list(cfg.env),
                Cmd=list(cfg.command[len(cfg.entrypoint):]), WorkingDir=cfg.workdir,
                Labels=dict(cfg.labels), StopSignal=cfg.stop_signal, StopTimeout=cfg.stop_timeout,
                Tty=cfg.tty, OpenStdin=cfg.stdin, CreateCommand=[], Entrypoint=list(cfg.entrypoint),
                Image=cfg.image_name, Annotations=dict(cfg.annotations)),
            HostConfig=C.HostConfig(
                RestartPolicy=C.RestartPolicy(Name=cfg.restart.name,
                                              MaximumRetryCount=cfg.restart.max_retries),
                NetworkMode=cfg.network, ReadonlyRootfs=cfg.read_only,
                AutoRemove=cfg.auto_remove, LogSizeMax=cfg.log_size_max,
                Memory=res.memory, NanoCpus=res.nano_cpus,
                CpuPeriod=CPU_PERIOD_US if res.nano_cpus else 0, CpuQuota=res.cpu_quota,
                CpuShares=res.cpu_shares, PidsLimit=res.pids_limit, **_host_config(cfg),
                LogConfig=C.LogConfig(Type=cfg.log_driver, Path=self.engine.log_path(rec.id)),
                **host_config_mounts(cfg)),
            Pod=cfg.pod, IsInfra=cfg.pod_infra, ImageName=cfg.image_name,
            NetworkSettings=(self.network_settings(rec) if self.network_settings is not None
                             else C.NetworkSettings()),
            Mounts=inspect_mounts(self.engine.config.root, cfg))


def _host_config(cfg: Any) -> dict[str, Any]:
    """podman's HostConfig fields for what core/hostconfig.py keeps."""
    devices = []
    for item in cfg.devices:
        host, target, perms = item.split(":")
        devices.append(C.Device(PathOnHost=host, PathInContainer=target, CgroupPermissions=perms))
    return dict(
        CapAdd=list(cfg.cap_add), CapDrop=list(cfg.cap_drop), Privileged=cfg.privileged,
        SecurityOpt=["no-new-privileges"] if cfg.no_new_privileges else [],
        Ulimits=[C.Ulimit(Name=k, Soft=v[0], Hard=v[1]) for k, v in cfg.ulimits.items()],
        Sysctls=dict(cfg.sysctls), Devices=devices, ShmSize=cfg.shm_size, Init=cfg.init,
        UsernsMode=cfg.userns)


def _exec_inspect(rec: Any) -> C.ExecSession:
    cfg, st = rec.config, rec.state
    return C.ExecSession(
        ID=rec.id, ContainerID=cfg.container_id, Running=st.state == "running",
        ExitCode=st.exit_code, ExitCodeKnown=st.exit_code_known, Pid=st.pid,
        OpenStdin=cfg.stdin, DetachKeys=cfg.detach_keys if cfg.detach_keys is not None else "",
        CanRemove=st.state != "running", CreatedAt=rfc3339(st.created_at),
        StartedAt=rfc3339(st.started_at), FinishedAt=rfc3339(st.finished_at),
        ProcessConfig=C.ExecProcessConfig(entrypoint=cfg.command[0], arguments=cfg.command[1:],
                                          tty=cfg.tty, user=cfg.user, privileged=cfg.privileged))


def _state(rec: ContainerRecord) -> C.StateReply:
    return C.StateReply(id=rec.id, state=rec.state.state.value)


def _summary(rec: ContainerRecord, now: int) -> C.ContainerSummary:
    cfg, st = rec.config, rec.state
    exited = st.state in (State.STOPPED, State.EXITED)
    return C.ContainerSummary(
        Id=rec.id, Names=[cfg.name], Image=cfg.image_name, ImageID=cfg.image, Command=list(cfg.command),
        Created=cfg.created_at // 10**9, CreatedAt=rfc3339(cfg.created_at),
        State=st.state.value, Status=status_text(rec, now), ExitCode=st.exit_code,
        Exited=exited, ExitedAt=st.finished_at // 10**9 if st.finished_at else 0,
        StartedAt=st.started_at // 10**9 if st.started_at else 0, Pid=st.pid,
        Labels=dict(cfg.labels), AutoRemove=cfg.auto_remove, Pod=cfg.pod, IsInfra=cfg.pod_infra,
        Ports=[C.PortSummary(host_ip=p.host_ip, container_port=p.container_port, host_port=p.host_port,
                             range=1, protocol=p.protocol) for p in cfg.net.ports],
        Networks=list(cfg.net.networks), **summary_mounts(cfg))


def _wire_event(ev: core_events.Event) -> S.Event:
    return S.Event(seq=ev.seq, time=ev.time, type=ev.type, action=ev.action, id=ev.id,
                   name=ev.name, attributes=dict(ev.attributes))


def _matches(ev: core_events.Event, p: S.EventsParams, filters: dict[str, str]) -> bool:
    if p.since is not None and ev.time < p.since:
        return False
    if p.until is not None and ev.time > p.until:
        return False
    for key, want in filters.items():
        if key == "container":
            if want not in (ev.name, ev.id) and not (len(want) >= 3 and ev.id.startswith(want)):
                return False
        elif key in ("type", "action", "id", "name"):
            if getattr(ev, key) != want:
                return False
        elif ev.attributes.get(key) != want:
            return False
    return True
