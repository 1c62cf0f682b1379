"""Handlers of io.varpod.Pod, and of io.varpod.Container's Stats and Top."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from typing import Any

import msgspec

from ..core.engine import Engine
from ..core.errors import ExpectedMore, InvalidParameter
from ..core.model import ContainerRecord
from ..core.pods import PodOptions, Pods, PodView
from ..core.runtime import RuntimeRegistry
from ..core.stats import STATS_STATES, ContainerStats, StatsReader, check_readable
from ..core.top import container_pids, descriptors, top
from ..core.top import table as top_table
from .interfaces import container as C
from .interfaces import pod as P
from .registry import Kind, Registry
from .service import rfc3339

DEFAULT_INTERVAL = 5.0  # seconds between streamed stats, podman's default
MAX_INTERVAL = 3600.0


class PodService:
    def __init__(self, pods: Pods, engine: Engine, runtimes: RuntimeRegistry) -> None:
        self.pods = pods
        self.engine = engine
        self.runtimes = runtimes

    def register(self, reg: Registry) -> None:
        add = reg.add
        pod = "io.varpod.Pod."
        add(pod + "Create", P.CreateParams, self.create, mutating=True)
        for name, params in (("Start", P.NameParams), ("Stop", P.StopParams),
                             ("Kill", P.KillParams), ("Pause", P.NameParams),
                             ("Unpause", P.NameParams), ("Restart", P.StopParams),
                             ("Remove", P.RemoveParams)):
            add(pod + name, params, getattr(self, name.lower()), mutating=True)
        add(pod + "Inspect", P.NameParams, self.inspect, Kind.SYNC)
        add(pod + "List", P.ListParams, self.list, Kind.SYNC)
        add(pod + "Stats", P.StatsParams, self.pod_stats, Kind.STREAM)
        add(pod + "Top", P.TopParams, self.pod_top)
        ctr = "io.varpod.Container."
        add(ctr + "Stats", C.StatsParams, self.container_stats, Kind.STREAM)
        add(ctr + "Top", C.TopParams, self.container_top)

    # -- lifecycle ------------------------------------------------------------------------

    async def create(self, p: P.CreateParams, ctx: Any) -> P.CreateReply:
        fields = {k: v for k, v in msgspec.structs.asdict(p.spec).items() if v is not None}
        rec = await self.pods.create(PodOptions(**fields))
        return P.CreateReply(id=rec.id, name=rec.name)

    async def start(self, p: P.NameParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=(await self.pods.start(p.name)).id)

    async def stop(self, p: P.StopParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=(await self.pods.stop(p.name, p.timeout)).id)

    async def kill(self, p: P.KillParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=(await self.pods.kill(p.name, p.signal or "SIGKILL")).id)

    async def pause(self, p: P.NameParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=(await self.pods.pause(p.name)).id)

    async def unpause(self, p: P.NameParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=(await self.pods.unpause(p.name)).id)

    async def restart(self, p: P.StopParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=(await self.pods.restart(p.name, p.timeout)).id)

    async def remove(self, p: P.RemoveParams, ctx: Any) -> P.IdReply:
        return P.IdReply(id=await self.pods.remove(p.name, bool(p.force), p.timeout))

    # -- queries --------------------------------------------------------------------------

    def inspect(self, p: P.NameParams, ctx: Any) -> P.InspectReply:
        return P.InspectReply(pod=_inspect(self.pods.view(p.name)))

    def list(self, p: P.ListParams, ctx: Any) -> P.ListReply:
        return P.ListReply(pods=[_summary(v) for v in self.pods.list()])

    async def pod_stats(self, p: P.StatsParams, ctx: Any):
        def targets() -> list[ContainerRecord]:
            views = [self.pods.view(n) for n in p.names] if p.names else self.pods.list()
            return [c for v in views for c in v.containers if c.state.state in STATS_STATES]

        async for reply in _stats_stream(p, ctx, targets):
            yield reply

    async def container_stats(self, p: C.StatsParams, ctx: Any):
        def targets() -> list[ContainerRecord]:
            if p.names:
                return [check_readable(self.engine.resolve(n)) for n in p.names]
            return [r for r in self.engine.list() if r.state.state in STATS_STATES]

        async for reply in _stats_stream(p, ctx, targets):
            yield reply

    async def container_top(self, p: C.TopParams, ctx: Any) -> C.TopReply:
        rec = self.engine.resolve(p.name)
        titles, rows = await top(rec, list(p.descriptors or ()), self.runtimes)
        return C.TopReply(titles=titles, processes=rows)

    async def pod_top(self, p: P.TopParams, ctx: Any) -> C.TopReply:
        view = self.pods.view(p.name)
        descs = descriptors(list(p.descriptors or ()))
        if descs is None:
            raise InvalidParameter(f"unknown top descriptor in {' '.join(p.descriptors or ())[:200]!r}"
                                   " (pod top takes psgo's descriptors only, as podman's)",
                                   parameter="descriptors")
        running = [c for c in view.containers if c.state.state in STATS_STATES and c.state.pid]
        host_pids = [pid for c in running for pid in container_pids(c.state.pid, c.id)]
        # One table: the rootfs of the first member names users (the infra has no passwd).
        rootfs = next((c.config.rootfs for c in running if not c.config.pod_infra), "")
        titles, rows = top_table(host_pids, rootfs, descs)
        return C.TopReply(titles=titles, processes=rows)


async def _stats_stream(p: C.StatsParams | P.StatsParams, ctx: Any, targets):
    stream = bool(p.stream)
    if stream and not ctx.more:
        raise ExpectedMore("Stats with stream sends a reply every interval; call it with more")
    interval = DEFAULT_INTERVAL if p.interval is None else p.interval
    if not (math.isfinite(interval) and 0 < interval <= MAX_INTERVAL):
        raise InvalidParameter(f"interval must be more than 0 and at most {MAX_INTERVAL:g} seconds",
                               parameter="interval")
    reader = StatsReader()
    while True:
        stats = reader.read(targets())
        yield C.StatsReply(stats=[_wire_stats(s) for s in stats]), stream
        if not stream:
            return
        await asyncio.sleep(interval)


def _wire_stats(s: ContainerStats) -> C.ContainerStats:
    return C.ContainerStats(
        ContainerID=s.id, Name=s.name, Pod=s.pod, CPU=s.cpu_percent, AvgCPU=s.avg_cpu_percent,
        CPUNano=s.cpu_ns, SystemNano=s.system_ns, UpTime=s.up_ns, MemUsage=s.mem_usage,
        MemLimit=s.mem_limit, MemPerc=s.mem_percent, PIDs=s.pids, BlockInput=s.block_read,
        BlockOutput=s.block_write, NetInput=s.net_input, NetOutput=s.net_output)


def _inspect(view: PodView) -> P.PodInspect:
    cfg = view.pod.config
    containers = view.containers
    return P.PodInspect(
        Id=cfg.id, Name=cfg.name, Created=rfc3339(cfg.created_at), State=view.status,
        Hostname=cfg.uts_hostname if cfg.shares.uts else "", Labels=dict(cfg.labels),
        CreateCgroup=cfg.pod_cgroup, CgroupParent=cfg.parent, CgroupPath=cfg.cgroup_path,
        CreateInfra=cfg.has_infra, InfraContainerID=view.infra.id if view.infra else "",
        SharedNamespaces=cfg.shares.names(), NumContainers=len(containers),
        Containers=[P.PodContainer(Id=c.id, Name=c.name, State=c.state.state.value)
                    for c in containers],
        InfraConfig=P.PodInfraConfig(Networks=list(cfg.networks), PortBindings=list(cfg.publish)))


def _summary(view: PodView) -> P.PodSummary:
    cfg = view.pod.config
    return P.PodSummary(
        Id=cfg.id, Name=cfg.name, Status=view.status, Created=rfc3339(cfg.created_at),
        InfraId=view.infra.id if view.infra else "", Cgroup=cfg.parent, Labels=dict(cfg.labels),
        Networks=list(cfg.networks), Containers=_containers(view.containers))


def _containers(recs: Iterable[ContainerRecord]) -> list[P.PodSummaryContainer]:
    return [P.PodSummaryContainer(Id=c.id, Names=c.name, Status=c.state.state.value) for c in recs]
