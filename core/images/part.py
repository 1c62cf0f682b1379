"""The images capability in a container's life (core/parts.py).

create   resolve ``opts.image``, map its config into the container's as podman does, and
         point ``config.rootfs`` at the container's overlay mount point
prepare  mount the overlay (lower: the image's layers; upper/work: the container's own)
release  unmount it
discard  delete the container's upper and work dirs
recover  re-adopt the mounts of containers that survived the daemon, unmount and delete
         what no container owns, and collect what interrupted transfers left

Image config -> container (podman's rules): the entrypoint is ``--entrypoint`` (``""``
clears it) else the image's; the command is the user's, else, when no entrypoint was
given, the image's Cmd. Env is the image's with the user's after it (the user's
win). WorkingDir, User and StopSignal apply unless the user gave one; the user is
resolved in the image's /etc/passwd when the container starts (on its mounted
rootfs), as podman does. Labels merge, the user's winning. ExposedPorts and
Volumes are recorded for the network and filesystem capabilities.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import msgspec

from ..errors import InvalidConfig, NoSuchImage
from ..model import parse_signal
from ..parts import Launch, Part
from .images import Images
from .model import RunConfig

if TYPE_CHECKING:
    from ..model import ContainerConfig, ContainerRecord, CreateOptions

log = logging.getLogger("varpod.images")


def make_command(entrypoint: list[str] | None, command: list[str],
                 image: RunConfig) -> tuple[list[str], list[str]]:
    """(entrypoint, full argv) from the user's options and the image's config."""
    chosen = entrypoint if entrypoint is not None else list(image.Entrypoint or [])
    ep = [] if chosen == [""] else list(chosen)
    cmd = list(command)
    if not cmd and not entrypoint:
        cmd = list(image.Cmd or [])
    return ep, ep + cmd


def merge_env(image_env: list[str], user_env: list[str]) -> list[str]:
    """The image's environment with the user's entries after it; one entry per key."""
    merged: dict[str, str] = {}
    for item in (*image_env, *user_env):
        key = item.partition("=")[0]
        merged.pop(key, None)
        merged[key] = item
    return list(merged.values())


class ImagePart(Part):
    name = "images"

    def __init__(self, images: Images) -> None:
        self.images = images

    async def create(self, opts: CreateOptions, config: ContainerConfig) -> ContainerConfig:
        if not opts.image:
            if opts.entrypoint is not None:
                ep, command = make_command(opts.entrypoint, list(opts.command), RunConfig())
                return msgspec.structs.replace(config, command=command, entrypoint=ep)
            return config
        if opts.rootfs:
            raise InvalidConfig("give an image or a root filesystem directory, not both", field="image")
        images = self.images
        rec = images.find(opts.image)
        run = images.config(rec).config
        ep, command = make_command(opts.entrypoint, list(opts.command), run)
        if not command:
            raise InvalidConfig(f"no command or entrypoint provided, and no CMD or ENTRYPOINT from image "
                                f"{opts.image}", field="command")
        workdir = opts.workdir or run.WorkingDir or "/"
        if not workdir.startswith("/"):
            workdir = "/" + workdir
        names = images.names_of(rec.id)
        image_name = images.name_in(opts.image, names) or (names[0] if names else "")
        config = msgspec.structs.replace(
            config, rootfs=images.rootfs.merged(config.id), command=command, entrypoint=ep,
            env=merge_env(list(run.Env or []), list(opts.env)), workdir=workdir,
            user=opts.user or run.User or "0:0",
            stop_signal=parse_signal(opts.stop_signal or run.StopSignal or "SIGTERM"),
            labels={**(run.Labels or {}), **opts.labels}, image=rec.id, image_name=image_name,
            exposed_ports=sorted(run.ExposedPorts or {}), volumes=sorted(run.Volumes or {}))
        images.users.setdefault(rec.id, set()).add(config.id)
        images.rootfs.create(config.id)
        return config

    async def discard(self, config: ContainerConfig, *, volumes: bool = False) -> None:
        if not config.image:
            return
        users = self.images.users.get(config.image)
        if users is not None:
            users.discard(config.id)
            if not users:
                del self.images.users[config.image]
        # The upper dir holds everything the container wrote: possibly large, so off the loop.
        await asyncio.to_thread(self.images.rootfs.remove, config.id)

    async def prepare(self, rec: ContainerRecord, launch: Launch) -> None:
        cfg = rec.config
        if not cfg.image:
            return
        image = self.images.store.images.get(cfg.image)
        if image is None:
            raise NoSuchImage(f"the image of container {cfg.name} ({cfg.image[:12]}) is gone",
                              name=cfg.image)
        self.images.rootfs.mount(cfg.id, image.layers)

    async def release(self, rec: ContainerRecord) -> None:
        if rec.config.image:
            self.images.rootfs.release(rec.id)

    async def recover(self, records: Sequence[ContainerRecord], alive: Collection[str]) -> None:
        rootfs = self.images.rootfs
        self.images.users.clear()
        mine = {r.id for r in records if r.config.image}
        for r in records:
            if not r.config.image:
                continue
            self.images.users.setdefault(r.config.image, set()).add(r.id)
            if r.id in alive:
                if not rootfs.adopt(r.id):
                    log.error("container %s runs, but its rootfs %s is not mounted", r.name,
                              rootfs.merged(r.id))
                rootfs.adopt_user(r.id)
            elif not rootfs.adopt_user(r.id):  # `varpod mount` keeps it mounted
                rootfs.release(r.id)  # a mount of a container that is no longer running
        for cid in rootfs.on_disk():
            if cid not in mine:
                log.info("removing the rootfs of container %s, which no record owns", cid[:12])
                await asyncio.to_thread(rootfs.remove, cid)
        self.images.collect()
