"""Capabilities that take part in a container's life: images, volumes, networks, pods.

The engine owns the lifecycle (lock, load, check, act, save, emit); a ``Part``
owns one capability's resources and is called at fixed points of that life,
always under the container's lock. The engine holds no image, network or pod
logic itself: it calls every part, in the order the daemon composed them.

    create    before the container is persisted: check the options that concern the
              part, take what it needs (a volume, an image reference), fill in the config
    prepare   before the runtime creates the container: mount, set up, and say through
              ``Launch`` what the OCI spec needs (mounts, namespaces to join, edits) and
              what may run while the runtime creates it (gated work, see core/gates.py)
    exited    the container's init has died and the runtime is deleting the container
              meanwhile: give back what needs no more than that (a network namespace's
              endpoints), so the two overlap; ``release`` follows once the runtime is done
    release   the runtime's container is gone (its exit was cleaned up, a launch failed,
              or it is being removed): give back what ``prepare`` took
    discard   the container is gone for good (or its create failed): give back what
              ``create`` took
    recover   daemon start, before containers are settled: re-adopt what the running
              ones hold, collect what no container owns
    check     before the engine stops, kills, restarts or removes a container: a part
              may refuse (a pod's infra container holds namespaces members still use)

Every hook must be idempotent: after a crash the engine may call ``release`` or
``discard`` for work that was only half done, or done already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING

from .gates import Gate

if TYPE_CHECKING:
    from .model import ContainerConfig, ContainerRecord, CreateOptions
    from .states import Action

log = logging.getLogger("varpod.parts")


class Launch:
    """What the parts add to one start of a container before its OCI spec is written."""

    def __init__(self, bundle: str) -> None:
        self.bundle = bundle
        self.mounts: list[dict] = []  # OCI mounts, after the default ones
        self.namespaces: dict[str, str] = {}  # OCI namespace type -> path of one to join
        self.annotations: dict[str, str] = {}
        # Last word on the spec, for what has no field above; applied in order.
        self.edits: list[Callable[[dict], None]] = []
        self._gated: list[tuple[Gate, Callable[[], Awaitable[None]]]] = []

    def gate(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` while the runtime creates the container, which waits for it to
        succeed before starting the container's process (see core/gates.py)."""
        self._gated.append((Gate(), work))

    async def create(self, create: Callable[[], Awaitable[None]]) -> None:
        """The runtime's ``create`` with the gated work beside it. When both fail, the
        work's error is the one raised: the runtime's says only that a hook said no."""
        try:
            tasks = [asyncio.ensure_future(_through(gate, work)) for gate, work in self._gated]
            try:
                await create()
            except Exception as e:
                failed = await _settle(tasks)
                if isinstance(failed, Exception):
                    raise failed from e
                raise
            except BaseException:
                await _settle(tasks)
                raise
            failed = await _settle(tasks)
            if failed is not None:
                raise failed
        finally:
            self.close()

    def close(self) -> None:
        """Give the gates back (``create`` does; for a launch that fails before it)."""
        for gate, _ in self._gated:
            gate.close()

    def apply(self, spec: dict) -> dict:
        spec["mounts"].extend(self.mounts)
        if self.namespaces:
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] in self.namespaces:
                    ns["path"] = self.namespaces[ns["type"]]
            have = {ns["type"] for ns in spec["linux"]["namespaces"]}
            spec["linux"]["namespaces"].extend(
                {"type": t, "path": p} for t, p in self.namespaces.items() if t not in have)
        spec["annotations"].update(self.annotations)
        if self._gated:
            hooks = spec.setdefault("hooks", {}).setdefault("createRuntime", [])
            hooks.extend(gate.hook() for gate, _ in self._gated)
        for edit in self.edits:
            edit(spec)
        return spec


class Part:
    """A capability's hooks; each default does nothing, so a part defines only its own."""

    name = "part"

    async def create(self, opts: CreateOptions, config: ContainerConfig) -> ContainerConfig:
        return config

    async def discard(self, config: ContainerConfig, *, volumes: bool = False) -> None:
        """``volumes``: the user asked to remove the container's anonymous volumes too."""

    async def prepare(self, rec: ContainerRecord, launch: Launch) -> None:
        pass

    async def exited(self, rec: ContainerRecord) -> None:
        pass

    async def release(self, rec: ContainerRecord) -> None:
        pass

    async def recover(self, records: Sequence[ContainerRecord], alive: Collection[str]) -> None:
        """``alive``: IDs of the containers whose processes survived the last daemon."""

    def check(self, rec: ContainerRecord, action: Action) -> None:
        """Raise to refuse ``action`` on the container; called under its lock, before acting."""


class Parts:
    """The daemon's parts in order; each hook runs them in turn (release and discard in reverse)."""

    def __init__(self, parts: Sequence[Part] = ()) -> None:
        self.parts = list(parts)

    async def create(self, opts: CreateOptions, config: ContainerConfig) -> ContainerConfig:
        done: list[Part] = []
        try:
            for part in self.parts:
                config = await part.create(opts, config)
                done.append(part)
        except BaseException:
            for part in reversed(done):
                await _quietly(part.discard(config), part, config.id)
            raise
        return config

    async def discard(self, config: ContainerConfig, *, volumes: bool = False) -> None:
        for part in reversed(self.parts):
            await _quietly(part.discard(config, volumes=volumes), part, config.id)

    async def prepare(self, rec: ContainerRecord, launch: Launch) -> None:
        done: list[Part] = []
        try:
            for part in self.parts:
                await part.prepare(rec, launch)
                done.append(part)
        except BaseException:
            for part in reversed(done):
                await _quietly(part.release(rec), part, rec.id)
            raise

    async def exited(self, rec: ContainerRecord) -> None:
        for part in reversed(self.parts):
            await _quietly(part.exited(rec), part, rec.id)

    async def release(self, rec: ContainerRecord) -> None:
        for part in reversed(self.parts):
            await _quietly(part.release(rec), part, rec.id)

    def check(self, rec: ContainerRecord, action: Action) -> None:
        for part in self.parts:
            part.check(rec, action)

    async def recover(self, records: Sequence[ContainerRecord], alive: Collection[str]) -> None:
        for part in self.parts:
            try:
                await part.recover(records, alive)
            except Exception:
                log.exception("recovering part %s failed", part.name)


async def _through(gate: Gate, work: Callable[[], Awaitable[None]]) -> None:
    try:
        await work()
    except BaseException:
        gate.open(False)
        raise
    gate.open(True)


async def _settle(tasks: list[asyncio.Future[None]]) -> BaseException | None:
    """Wait for every task, even through a cancellation (what they hold is given back only
    after them); the first one's error."""
    if not tasks:
        return None
    done = asyncio.gather(*tasks, return_exceptions=True)
    try:
        results = await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait([done])
        raise
    return next((r for r in results if isinstance(r, BaseException)), None)


async def _quietly(coro, part: Part, cid: str) -> None:
    # Giving back is best effort on a path that already failed or is tearing down:
    # one part's failure must not keep the others from giving back theirs.
    try:
        await coro
    except Exception:
        log.exception("part %s failed to give back what %s held", part.name, cid[:12])
