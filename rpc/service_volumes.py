"""Handlers of io.varpod.Volume, and the mount fields of a container's inspect and ps summary."""

from __future__ import annotations

from typing import Any

from ..core.engine import Engine
from ..core.errors import InvalidParameter
from ..core.states import LIVE_STATES
from ..core.volumes.model import VolumeRecord
from ..core.volumes.volumes import Volumes
from .interfaces import volume as V
from .registry import Kind, Registry
from .service import rfc3339

VOL = "io.varpod.Volume."
FILTERS = ("name", "label", "driver", "dangling", "anonymous")


class VolumeService:
    def __init__(self, volumes: Volumes, engine: Engine) -> None:
        self.volumes = volumes
        self.engine = engine

    def register(self, reg: Registry) -> None:
        add = reg.add
        add(VOL + "Create", V.CreateParams, self.create, Kind.SYNC, mutating=True)
        add(VOL + "Inspect", V.NameParams, self.inspect, Kind.SYNC)
        add(VOL + "List", V.ListParams, self.list, Kind.SYNC)
        add(VOL + "Exists", V.NameParams, self.exists, Kind.SYNC)
        add(VOL + "Remove", V.RemoveParams, self.remove, mutating=True)
        add(VOL + "Prune", V.PruneParams, self.prune, mutating=True)

    def info(self, rec: VolumeRecord) -> V.VolumeInfo:
        users = self.volumes.users_of(rec.name)
        running = 0
        for cid in users:
            try:
                running += self.engine.resolve(cid).state.state in LIVE_STATES
            except Exception:  # removed meanwhile
                continue
        return V.VolumeInfo(
            Name=rec.name, Driver=rec.driver, Mountpoint=self.volumes.mountpoint(rec.name),
            CreatedAt=rfc3339(rec.created_at), Labels=dict(rec.labels), Scope="local",
            Options=dict(rec.options), MountCount=running, NeedsCopyUp=rec.needs_copy_up,
            NeedsChown=rec.needs_chown, Anonymous=rec.anonymous, Containers=users)

    def create(self, p: V.CreateParams, ctx: Any) -> V.VolumeReply:
        rec = self.volumes.create(p.name or "", driver=p.driver or "", labels=p.labels, options=p.options,
                                  ignore=bool(p.ignore))
        return V.VolumeReply(volume=self.info(rec))

    def inspect(self, p: V.NameParams, ctx: Any) -> V.VolumeReply:
        return V.VolumeReply(volume=self.info(self.volumes.get(p.name)))

    def list(self, p: V.ListParams, ctx: Any) -> V.ListReply:
        keep = _matcher(p.filters or {}, self.volumes)
        return V.ListReply(volumes=[self.info(r) for r in self.volumes.list() if keep(r)])

    def exists(self, p: V.NameParams, ctx: Any) -> V.ExistsReply:
        return V.ExistsReply(exists=self.volumes.exists(p.name))

    async def remove(self, p: V.RemoveParams, ctx: Any) -> V.RemoveReply:
        rec = self.volumes.get(p.name)
        removed: list[str] = []
        if p.force:
            # As podman's volume rm -f: the containers using it go first.
            for cid in self.volumes.users_of(rec.name):
                await self.engine.remove(cid, force=True, timeout=10 if p.timeout is None else p.timeout)
                removed.append(cid)
        name = self.volumes.remove(rec.name)
        await self.volumes.delete_gone()
        return V.RemoveReply(name=name, containers=removed)

    async def prune(self, p: V.PruneParams, ctx: Any) -> V.PruneReply:
        filters = dict(p.filters or {})
        if "dangling" in filters:
            raise InvalidParameter("volume prune takes no dangling filter: it removes dangling volumes",
                                   parameter="filters")
        keep = _matcher(filters, self.volumes)
        names = self.volumes.prune(lambda r: not keep(r))
        await self.volumes.delete_gone()
        return V.PruneReply(names=names)


def _matcher(filters: dict[str, list[str]], volumes: Volumes):
    for key in filters:
        if key not in FILTERS:
            raise InvalidParameter(f"invalid volume filter {key[:40]!r}: varpod filters by "
                                   f"{', '.join(FILTERS)}", parameter="filters")
    tests = []
    for key, values in filters.items():
        if key == "name":
            tests.append(lambda r, v=values: any(r.name.startswith(x) for x in v))
        elif key == "driver":
            tests.append(lambda r, v=values: r.driver in v)
        elif key == "label":
            tests.append(lambda r, v=values: any(_label(r.labels, x) for x in v))
        else:
            wanted = {_truth(x, key) for x in values}
            if key == "dangling":
                tests.append(lambda r, w=wanted: (not volumes.users_of(r.name)) in w)
            else:
                tests.append(lambda r, w=wanted: r.anonymous in w)
    return lambda r: all(t(r) for t in tests)


def _truth(text: str, key: str) -> bool:
    if text.lower() in ("true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise InvalidParameter(f"filter {key}={text[:40]!r}: give true or false", parameter="filters")


def _label(labels: dict[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    return key in labels and (not sep or labels[key] == value)
