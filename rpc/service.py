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
from ..core.errors import EventsOverflow, ExpectedMore, InterfaceNotFound, InvalidParameter
from ..core.logread import Selection, start_position
from ..core.model import ContainerRecord
from ..core.states import State
from .interfaces import INTERFACES, idl
from .interfaces import container as C
from .interfaces import service as V
from .interfaces import system as S
from .registry import Kind, Registry
from .streams import RawChannel, serve_logs

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int) -> str:
    if not ns:
        return ZERO_TIME
    secs, frac = divmod(ns, 10**9)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _ago(ns: int, now: int) -> str:
    secs = max(0, (now - ns) // 10**9)
    if secs < 1:
        return "Less than a second"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            n = secs // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{secs} second{'s' if secs != 1 else ''}"


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
    def __init__(self, engine: Engine, bus: core_events.EventBus, info: dict[str, Any]) -> None:
        self.engine = engine
        self.bus = bus
        self.static_info = info  # filled at start-up: runtimes, paths, loop
        self.server: Any = None  # set once the server exists (for connection counts)

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
                             ("Restart", C.StopParams), ("Sync", C.NameParams)):
            add(ctr + name, params, getattr(self, name.lower()), mutating=True)
        add(ctr + "Wait", C.WaitParams, self.wait, Kind.STREAM, long=True)
        add(ctr + "Remove", C.RemoveParams, self.remove, mutating=True)
        add(ctr + "Logs", C.LogsParams, self.logs, Kind.UPGRADE)
        add(ctr + "Inspect", C.NameParams, self.inspect, Kind.SYNC)
        add(ctr + "List", C.ListParams, self.list, Kind.SYNC)

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
        sub = self.bus.subscribe(wake.set) if p.stream else None
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
        yield C.WaitReply(id=rec.id, state=st.state.value, exit_code=st.exit_code,
                          exit_code_known=st.exit_code_known), False

    async def remove(self, p: C.RemoveParams, ctx: Any) -> C.RemoveReply:
        return C.RemoveReply(id=await self.engine.remove(p.name, bool(p.force), p.timeout))

    async def logs(self, p: C.LogsParams, ctx: Any):
        if not ctx.upgrade:
            raise InvalidParameter("Logs streams raw records after its reply; call it with upgrade",
                                   parameter="upgrade")
        if p.tail is not None and p.tail < 0:
            raise InvalidParameter("tail must be >= 0", parameter="tail")
        rec = self.engine.resolve(p.name)
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
            await serve_logs(chan, path, writer, pos, sel, bool(p.follow))

        return C.LogsReply(id=rec.id, tty=rec.config.tty), takeover

    def inspect(self, p: C.NameParams, ctx: Any) -> C.InspectReply:
        return C.InspectReply(container=self.to_inspect(self.engine.inspect(p.name)))

    def list(self, p: C.ListParams, ctx: Any) -> C.ListReply:
        now = time.time_ns()
        return C.ListReply(containers=[_summary(r, now) for r in self.engine.list(bool(p.all))])

    def to_inspect(self, rec: ContainerRecord) -> C.ContainerInspect:
        cfg, st = rec.config, rec.state
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
            Image="", Rootfs=cfg.rootfs, Name=cfg.name, RestartCount=st.restart_count,
            Driver="", OCIRuntime=cfg.runtime, LogPath=self.engine.log_path(rec.id),
            BundlePath=self.engine.bundle_dir(rec.id),
            Config=C.ContainerConfig(
                Hostname=cfg.hostname or cfg.id[:12], User=cfg.user, Env=list(cfg.env),
                Cmd=list(cfg.command), WorkingDir=cfg.workdir, Labels=dict(cfg.labels),
                StopSignal=cfg.stop_signal, StopTimeout=cfg.stop_timeout, Tty=cfg.tty,
                OpenStdin=cfg.stdin, CreateCommand=[]),
            HostConfig=C.HostConfig(
                RestartPolicy=C.RestartPolicy(Name=cfg.restart.name,
                                              MaximumRetryCount=cfg.restart.max_retries),
                NetworkMode=cfg.network, ReadonlyRootfs=cfg.read_only,
                AutoRemove=cfg.auto_remove, LogSizeMax=cfg.log_size_max))


def _state(rec: ContainerRecord) -> C.StateReply:
    return C.StateReply(id=rec.id, state=rec.state.state.value)


def _summary(rec: ContainerRecord, now: int) -> C.ContainerSummary:
    cfg, st = rec.config, rec.state
    exited = st.state in (State.STOPPED, State.EXITED)
    return C.ContainerSummary(
        Id=rec.id, Names=[cfg.name], Image="", Command=list(cfg.command),
        Created=cfg.created_at // 10**9, CreatedAt=rfc3339(cfg.created_at),
        State=st.state.value, Status=status_text(rec, now), ExitCode=st.exit_code,
        Exited=exited, ExitedAt=st.finished_at // 10**9 if st.finished_at else 0,
        StartedAt=st.started_at // 10**9 if st.started_at else 0, Pid=st.pid,
        Labels=dict(cfg.labels), AutoRemove=cfg.auto_remove)


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
