"""Pod operations: lock the pod, load, check, act on its containers through the engine's
public operations, save, emit.

Members start, stop, pause and are removed in parallel (as podman does), the infra
container before them on the way up and after them on the way down. Membership is
not stored twice: a container's config names its pod.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import msgspec

from .. import cgroups
from ..errors import (
    ContainerStopped,
    InvalidPodConfig,
    InvalidState,
    NoSuchContainer,
    NoSuchPod,
    PodExists,
    PodHasContainers,
    PodPartiallyFailed,
    PodRemoving,
    VarpodError,
)
from ..events import EventBus
from ..locks import Locks
from ..model import NAME_MAX, NAME_RE, ContainerRecord, new_id, parse_signal, random_name
from ..states import LIVE_STATES, State
from .infra import ensure_rootfs, infra_options
from .model import PodConfig, PodRecord, PodState, SharedNamespaces, derive_pod_status
from .part import PodPart
from .store import PodStore

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger("varpod.pods")

HOSTNAME_MAX = 64


class PodOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller may set at ``pod create``."""

    name: str | None = None  # None: generate one
    labels: dict[str, str] = {}
    hostname: str = ""
    cgroup_parent: str = ""
    pod_cgroup: bool = True
    share: list[str] | None = None  # None: podman's default (ipc, net, uts); []: none
    infra: bool = True
    # The pod's network, which belongs to its infra container (members join its namespace).
    publish: list[str] = []
    networks: list[str] = []


class PodView(msgspec.Struct, frozen=True):
    """A pod with its containers as they are now."""

    pod: PodRecord
    infra: ContainerRecord | None
    members: list[ContainerRecord]

    @property
    def containers(self) -> list[ContainerRecord]:
        return ([self.infra] if self.infra is not None else []) + self.members

    @property
    def status(self) -> str:
        return derive_pod_status(c.state.state for c in self.containers)


class Pods:
    def __init__(self, store: PodStore, events: EventBus, root: str) -> None:
        self._store = store
        self._events = events
        self._root = root
        self._engine: Engine | None = None
        # Pod operations on one pod run one at a time (start, stop, rm ...).
        self._locks = Locks()
        # Separate, so that members started by a pod operation holding the pod's lock can
        # still make sure the infra runs: guards creating and starting the infra container.
        self._infra_locks = Locks()
        # Pods whose every container is being stopped, killed or removed together: only
        # then may the infra container go while members use its namespaces. An entry is
        # added and discarded only under that pod's lock (self._locks).
        self._whole: set[str] = set()
        self.part = PodPart(self)

    def bind(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Pods used before bind(engine)")
        return self._engine

    # -- lookups (also for the part) --------------------------------------------------------

    def find(self, ref: str) -> PodRecord:
        return self._store.find(ref)

    def get(self, pid: str) -> PodRecord:
        return self._store.get(pid)

    def name_of(self, pid: str) -> str:
        """The pod's name ("" once it is gone)."""
        pod = self.get_or_none(pid)
        return pod.name if pod is not None else ""

    def get_or_none(self, pid: str) -> PodRecord | None:
        try:
            return self._store.get(pid)
        except NoSuchPod:
            return None

    def has_name(self, name: str) -> bool:
        return self._store.has_name(name)

    def whole_pod_busy(self, pid: str) -> bool:
        return pid in self._whole

    def _containers(self, pid: str) -> list[ContainerRecord]:
        return [r for r in self.engine.list(all=True) if r.config.pod == pid]

    def members(self, pid: str) -> list[ContainerRecord]:
        return [r for r in self._containers(pid) if not r.config.pod_infra]

    def infra_of(self, pid: str) -> ContainerRecord | None:
        return next((r for r in self._containers(pid) if r.config.pod_infra), None)

    def infra_id(self, pod: PodRecord) -> str:
        """The ID of the pod's infra container, which must exist."""
        infra = self.infra_of(pod.id)
        if infra is None:
            raise InvalidState(f"pod {pod.name} has no infra container yet (the daemon makes a new "
                               "one when it starts); try again", id=pod.id, state="")
        return infra.id

    def view(self, ref: str) -> PodView:
        return self._view(self.find(ref))

    def _view(self, pod: PodRecord) -> PodView:
        infra, members = None, []
        for rec in self._containers(pod.id):
            if rec.config.pod_infra:
                infra = rec
            else:
                members.append(rec)
        members.sort(key=lambda r: r.config.created_at)
        return PodView(pod, infra, members)

    def list(self) -> list[PodView]:
        by_pod: dict[str, list[ContainerRecord]] = {}
        for rec in self.engine.list(all=True):
            if rec.config.pod:
                by_pod.setdefault(rec.config.pod, []).append(rec)
        views = []
        for pod in sorted(self._store.all(), key=lambda p: p.config.created_at):
            recs = sorted(by_pod.get(pod.id, ()), key=lambda r: r.config.created_at)
            infra = next((r for r in recs if r.config.pod_infra), None)
            views.append(PodView(pod, infra, [r for r in recs if not r.config.pod_infra]))
        return views

    # -- create ------------------------------------------------------------------------------

    async def create(self, opts: PodOptions) -> PodRecord:
        name = self.unused_name() if opts.name is None else self._check_name(opts.name)
        shares = SharedNamespaces.parse(opts.share)
        if (opts.publish or opts.networks) and not (opts.infra and shares.net):
            raise InvalidPodConfig(f"pod {name}'s ports and networks belong to its infra container, "
                                   "which needs the network namespace shared (--share net)",
                                   field="network")
        if not opts.infra and shares.any():
            if opts.share is not None:
                raise InvalidPodConfig(f"pod {name} cannot share namespaces ({', '.join(shares.names())}) "
                                       "without an infra container to hold them", field="infra")
            shares = SharedNamespaces()  # --infra=false alone: podman shares nothing then
        hostname = opts.hostname
        if hostname:
            if not shares.uts:
                raise InvalidPodConfig("a pod hostname needs the UTS namespace shared (--share uts)",
                                       field="hostname")
            _check_hostname(hostname)
        elif shares.uts and len(name) > HOSTNAME_MAX:
            raise InvalidPodConfig(f"pod name {name[:80]!r} is too long for the shared hostname "
                                   f"(at most {HOSTNAME_MAX} characters): give --hostname",
                                   field="hostname")
        config = PodConfig(
            id=new_id(), name=name, labels=dict(opts.labels), hostname=hostname,
            cgroup_parent=cgroups.check_path(opts.cgroup_parent) if opts.cgroup_parent else "",
            pod_cgroup=opts.pod_cgroup, shares=shares, infra=opts.infra,
            created_at=time.time_ns(), publish=list(opts.publish), networks=list(opts.networks))
        rootfs = ensure_rootfs(self._root) if config.has_infra else ""
        pod = PodRecord(config, PodState())
        self._store.add(pod)
        if config.has_infra:
            try:
                async with self._infra_locks.hold(pod.id):
                    await self.engine.create(infra_options(config, rootfs))
            except BaseException:
                self._store.delete(pod.id)
                raise
        self._emit(pod, "create")
        return pod

    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not name or len(name) > NAME_MAX or not NAME_RE.match(name):
            raise InvalidPodConfig(f"invalid pod name {str(name)[:80]!r}: names are 1-{NAME_MAX} "
                                   "characters of [a-zA-Z0-9_.-] and start with a letter or digit",
                                   field="name")
        if self._store.has_name(name):
            raise PodExists(f"a pod named {name!r} already exists", name=name)
        if any(r.name == name for r in self.engine.list(all=True)):
            raise PodExists(f"the name {name!r} is already in use by a container", name=name)
        return name

    def unused_name(self) -> str:
        """A generated name no pod or container has (they draw from the same words)."""
        taken = {r.name for r in self.engine.list(all=True)}
        for _ in range(100):
            name = random_name()
            if not self._store.has_name(name) and name not in taken:
                return name
        return "pod_" + new_id()[:12]

    # -- the infra container -----------------------------------------------------------------

    async def ensure_infra_running(self, pid: str) -> int:
        """The infra container's pid, after starting it (and creating it, should it be
        missing after a crash) if it does not run."""
        async with self._infra_locks.hold(pid):
            pod = self._store.get(pid)
            infra = self.infra_of(pid)
            if infra is None:
                rootfs = ensure_rootfs(self._root)
                log.warning("pod %s had no infra container; creating one", pod.name)
                infra = await self.engine.create(infra_options(pod.config, rootfs))
            state = infra.state.state
            if state in (State.RUNNING, State.PAUSED) and infra.state.pid:
                return infra.state.pid
            if state is State.STOPPING:
                raise InvalidState(f"the infra container of pod {pod.name} is stopping; start "
                                   "the pod again once it has stopped", id=infra.id,
                                   state=state.value)
            rec = await self.engine.start(infra.id)
            return rec.state.pid

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, ref: str) -> PodRecord:
        pod = self.find(ref)
        async with self._locks.hold(pod.id):
            pod = self._live_pod(pod.id, "start")
            await self._start_locked(pod)
        self._emit(pod, "start")
        return pod

    async def _start_locked(self, pod: PodRecord) -> None:
        view = self._view(pod)
        if pod.config.has_infra:
            try:
                await self.ensure_infra_running(pod.id)
            except VarpodError as e:
                raise self._failed(pod, "start", {view.infra.id if view.infra else pod.id:
                                                  f"infra container: {e.message}"},
                                   len(view.containers)) from e
        todo = [m for m in view.members if m.state.state not in (State.RUNNING, State.PAUSED)]
        errors = await self._each(todo, lambda r: self.engine.start(r.id))
        if errors:
            raise self._failed(pod, "start", errors, len(view.members))

    async def stop(self, ref: str, timeout: int | None = None) -> PodRecord:
        if timeout is not None and timeout < 0:
            raise InvalidPodConfig("stop timeout must be >= 0", field="timeout")
        pod = self.find(ref)
        async with self._locks.hold(pod.id):
            pod = self._store.get(pod.id)
            await self._stop_locked(pod, timeout)
        self._emit(pod, "stop")
        return pod

    async def _stop_locked(self, pod: PodRecord, timeout: int | None) -> None:
        self._whole.add(pod.id)
        try:
            view = self._view(pod)
            errors = await self._each([m for m in view.members if m.state.state in LIVE_STATES],
                                      lambda r: self._stop_one(r, timeout))
            if view.infra is not None and view.infra.state.state in LIVE_STATES:
                errors.update(await self._each([view.infra], lambda r: self._stop_one(r, timeout)))
        finally:
            self._whole.discard(pod.id)
        if errors:
            raise self._failed(pod, "stop", errors, len(view.containers))

    async def _stop_one(self, rec: ContainerRecord, timeout: int | None) -> None:
        try:
            if rec.state.state is State.PAUSED:
                await self.engine.unpause(rec.id)  # a frozen process cannot act on its signal
            await self.engine.stop(rec.id, timeout)
        except (ContainerStopped, NoSuchContainer):
            pass  # it ended (or was auto-removed) on its own meanwhile

    async def kill(self, ref: str, signal: int | str = "SIGKILL") -> PodRecord:
        number = parse_signal(signal)
        pod = self.find(ref)
        async with self._locks.hold(pod.id):
            pod = self._store.get(pod.id)
            self._whole.add(pod.id)
            try:
                view = self._view(pod)
                todo = [c for c in view.containers if c.state.state in (State.RUNNING, State.STOPPING)]
                errors = await self._each(todo, lambda r: self._ignore_gone(self.engine.kill(r.id, number)))
            finally:
                self._whole.discard(pod.id)
            if errors:
                raise self._failed(pod, "kill", errors, len(view.containers))
        self._emit(pod, "kill", signal=number)
        return pod

    async def pause(self, ref: str) -> PodRecord:
        return await self._each_state(ref, "pause", State.RUNNING,
                                      lambda r: self.engine.pause(r.id))

    async def unpause(self, ref: str) -> PodRecord:
        return await self._each_state(ref, "unpause", State.PAUSED,
                                      lambda r: self.engine.unpause(r.id))

    async def _each_state(self, ref: str, verb: str, state: State,
                          op: Callable[[ContainerRecord], Awaitable[object]]) -> PodRecord:
        pod = self.find(ref)
        async with self._locks.hold(pod.id):
            pod = self._store.get(pod.id)
            view = self._view(pod)
            errors = await self._each([c for c in view.containers if c.state.state is state], op)
            if errors:
                raise self._failed(pod, verb, errors, len(view.containers))
        self._emit(pod, verb)
        return pod

    async def restart(self, ref: str, timeout: int | None = None) -> PodRecord:
        pod = self.find(ref)
        async with self._locks.hold(pod.id):
            pod = self._live_pod(pod.id, "restart")
            await self._stop_locked(pod, timeout)
            await self._start_locked(pod)
        self._emit(pod, "restart")
        return pod

    async def remove(self, ref: str, force: bool = False, timeout: int | None = None) -> str:
        pod = self.find(ref)
        async with self._locks.hold(pod.id):
            pod = self._store.get(pod.id)
            members = self.members(pod.id)
            if members and not force:
                names = ", ".join(m.name for m in members[:5]) + (" ..." if len(members) > 5 else "")
                raise PodHasContainers(f"pod {pod.name} has {len(members)} container"
                                       f"{'s' if len(members) != 1 else ''} ({names}); remove "
                                       "them first or remove the pod with force", id=pod.id)
            # Saved first: nothing joins or starts from now on, and a daemon that dies
            # half-way through finishes the removal when it starts again (recover()).
            pod = self._store.save(PodRecord(pod.config, PodState(removing=True)))
            await self._remove_locked(pod, timeout)
        self._locks.drop(pod.id)
        self._infra_locks.drop(pod.id)
        self._emit(pod, "remove")
        return pod.id

    async def _remove_locked(self, pod: PodRecord, timeout: int | None) -> None:
        self._whole.add(pod.id)
        try:
            errors: dict[str, str] = {}
            for _ in range(3):  # again for any member that was joining while the first round ran
                members = self.members(pod.id)
                if not members:
                    break
                errors = await self._each(members, lambda r: self._ignore_gone(
                    self.engine.remove(r.id, force=True, timeout=timeout)))
                if errors:
                    raise self._failed(pod, "remove", errors, len(members))
            infra = self.infra_of(pod.id)
            if infra is not None:
                await self._ignore_gone(self.engine.remove(infra.id, force=True, timeout=timeout))
        finally:
            self._whole.discard(pod.id)
        if pod.config.cgroup_path:
            left = cgroups.remove(pod.config.cgroup_path)
            if left:
                raise self._failed(pod, "remove", {pod.id: f"cgroups still in use: {', '.join(left)}"}, 1)
        self._store.delete(pod.id)

    # -- daemon start ------------------------------------------------------------------------

    async def recover(self) -> None:
        """After the engine re-adopted containers: finish removals a crash cut short, give a
        pod whose infra container went missing a new one, and drop orphaned infra containers."""
        for pod in self._store.all():
            try:
                if pod.state.removing:
                    log.info("finishing the removal of pod %s", pod.name)
                    async with self._locks.hold(pod.id):
                        await self._remove_locked(pod, 0)
                    self._emit(pod, "remove")
                elif pod.config.has_infra and self.infra_of(pod.id) is None:
                    log.warning("pod %s lost its infra container; creating a new one", pod.name)
                    await self.engine.create(infra_options(pod.config, ensure_rootfs(self._root)))
            except Exception:
                log.exception("recovering pod %s failed", pod.name)
        pods = {p.id for p in self._store.all()}
        for rec in self.engine.list(all=True):
            if rec.config.pod and rec.config.pod not in pods:
                if rec.config.pod_infra:
                    log.warning("removing infra container %s of a pod that no longer exists", rec.name)
                    await self._ignore_gone(self.engine.remove(rec.id, force=True))
                else:
                    log.warning("container %s belongs to pod %s, which no longer exists", rec.name,
                                rec.config.pod[:12])

    # -- helpers ----------------------------------------------------------------------------

    def _live_pod(self, pid: str, verb: str) -> PodRecord:
        pod = self._store.get(pid)
        if pod.state.removing:
            raise PodRemoving(f"pod {pod.name} is being removed; cannot {verb} it", id=pod.id)
        return pod

    @staticmethod
    async def _each(recs: Iterable[ContainerRecord],
                    op: Callable[[ContainerRecord], Awaitable[object]]) -> dict[str, str]:
        """Run ``op`` on every container at once; {ID: message} of those that failed."""
        recs = list(recs)
        results = await asyncio.gather(*(op(r) for r in recs), return_exceptions=True)
        errors = {}
        for rec, result in zip(recs, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, VarpodError):
                errors[rec.id] = f"{rec.name}: {result.message}"
            elif isinstance(result, BaseException):
                log.error("pod operation on %s failed", rec.name, exc_info=result)
                errors[rec.id] = f"{rec.name}: internal error: {result!r}"
        return errors

    @staticmethod
    async def _ignore_gone(coro: Awaitable[object]) -> None:
        try:
            await coro
        except NoSuchContainer:
            pass

    @staticmethod
    def _failed(pod: PodRecord, verb: str, errors: dict[str, str], total: int) -> PodPartiallyFailed:
        details = "; ".join(errors.values())
        return PodPartiallyFailed(f"{verb} pod {pod.name}: {len(errors)} of {total} failed: {details}",
                                  id=pod.id, errors=errors)

    def _emit(self, pod: PodRecord, action: str, **attributes: object) -> None:
        self._events.emit("pod", action, pod.id, pod.name, **attributes)


def _check_hostname(name: str) -> None:
    if len(name) > HOSTNAME_MAX or "/" in name or "\0" in name:
        raise InvalidPodConfig(f"invalid hostname {name[:80]!r}: at most {HOSTNAME_MAX} characters, "
                               "no / or NUL", field="hostname")
