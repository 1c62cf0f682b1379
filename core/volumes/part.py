"""VolumePart: mounts in a container's life (see ``core/parts.py``).

    create    -v/--mount/--tmpfs parsed and checked (a bind's host path must exist); a
              named volume that does not exist is made, as podman does; the image's
              VOLUMEs become anonymous volumes (or tmpfs, or nothing: --image-volume)
              where the user mounted nothing; the mounts are kept in the config
    prepare   each mount becomes an OCI mount; a volume's first container fills it from
              the image's content at its path and gives it that directory's owner and mode
    discard   the container no longer uses its volumes; its anonymous ones go with it on
              ``rm -v`` and ``--rm`` (otherwise they stay, dangling, as podman's do)
    recover   who uses which volume, from the records; what a crash left is collected

Mounts come after the runtime's defaults and replace one at the same destination
(``--tmpfs /dev/shm``, ``-v ./hosts:/etc/hosts``), parents before children.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Sequence

import msgspec

from ..errors import InvalidMount, MountSourceNotFound, NoSuchContainer, NoSuchVolume, RuntimeFailed
from ..model import ContainerConfig, ContainerRecord, CreateOptions
from ..monitor import Monitor
from ..parts import Launch, Part
from ..paths import resolve_in_root
from ..spec import resolve_user
from ..store import Store
from . import specs
from .model import BIND, TMPFS, VOLUME, Mount
from .volumes import Volumes

log = logging.getLogger("varpod.volumes")

IMAGE_VOLUME_MODES = ("bind", "tmpfs", "ignore")
COPY_UP_TIMEOUT = 3600.0
CP = shutil.which("cp") or "/bin/cp"  # posix_spawn does not search PATH


class VolumePart(Part):
    name = "volumes"

    def __init__(self, volumes: Volumes, containers: Store, monitor: Monitor) -> None:
        self.volumes = volumes
        self._containers = containers
        self._monitor = monitor

    # -- create -----------------------------------------------------------------------------

    async def create(self, opts: CreateOptions, config: ContainerConfig) -> ContainerConfig:
        mounts = [self._checked(m) for m in specs.parse_all(opts.volumes, opts.mounts, opts.tmpfs)]
        mounts += self._image_volumes(opts.image_volume, config.volumes,
                                      {m.destination for m in mounts})
        made: list[str] = []
        out: list[Mount] = []
        try:
            for m in mounts:
                if m.type == VOLUME:
                    if m.anonymous:
                        vol = self.volumes.create(anonymous=True, owner=config.id)
                        made.append(vol.name)
                        m = msgspec.structs.replace(m, source=vol.name)
                    elif not self.volumes.exists(m.source):
                        self.volumes.create(m.source)  # as podman: -v NAME:/path makes NAME
                    else:
                        m = msgspec.structs.replace(m, source=self.volumes.get(m.source).name)
                out.append(m)
        except BaseException:
            for name in made:
                self.volumes.remove(name)
            raise
        for m in out:
            if m.type == VOLUME:
                self.volumes.add_user(m.source, config.id)
        return msgspec.structs.replace(config, mounts=specs.ordered(out))

    @staticmethod
    def _checked(m: Mount) -> Mount:
        """A bind mount's host path exists (podman does not create it); its filesystem's
        nosuid/nodev/noexec carry over unless the user said otherwise."""
        if m.type != BIND:
            return m
        if not os.path.lexists(m.source):
            raise MountSourceNotFound(f"{m.spec[:200]!r}: the host path {m.source[:200]} does not exist: "
                                      "no such file or directory", field="volume", spec=m.spec,
                                      path=m.source[:4096])
        if not os.path.exists(m.source):
            raise MountSourceNotFound(f"{m.spec[:200]!r}: the host path {m.source[:200]} is a dangling "
                                      "symlink", field="volume", spec=m.spec, path=m.source[:4096])
        given = {o.removeprefix("no") for o in m.options}
        extra = [f for f in specs.bind_flags_of(m.source) if f[2:] not in given]
        return msgspec.structs.replace(m, options=[*m.options, *extra]) if extra else m

    @staticmethod
    def _image_volumes(mode: str, paths: list[str], taken: set[str]) -> list[Mount]:
        if mode not in ("", *IMAGE_VOLUME_MODES):
            raise InvalidMount(f"--image-volume {mode[:40]!r}: choose bind, tmpfs or ignore",
                               field="image_volume", spec=mode[:100])
        out = []
        for path in paths:
            dest = specs.clean_destination(path)
            if not dest or dest == "/" or any(specs.under(dest, t) for t in taken) or mode == "ignore":
                continue
            if mode == "tmpfs":
                out.append(specs.tmpfs_mount(dest, [], f"image volume {dest}", "image_volume"))
            else:
                out.append(Mount(type=VOLUME, destination=dest, options=["rbind", "rprivate", "nosuid",
                                                                          "nodev"],
                                 propagation="rprivate", anonymous=True, spec=f"image volume {dest}"))
            taken.add(dest)
        return out

    # -- discard ----------------------------------------------------------------------------

    async def discard(self, config: ContainerConfig, *, volumes: bool = False) -> None:
        try:
            self._containers.get(config.id)
            persisted = True
        except NoSuchContainer:
            persisted = False  # its create failed: what it made for itself goes
        drop = volumes or config.auto_remove or not persisted
        for m in config.mounts:
            if m.type != VOLUME:
                continue
            self.volumes.drop_user(m.source, config.id)
            if not m.anonymous or not self.volumes.exists(m.source):
                continue
            if drop and not self.volumes.users_of(m.source):
                self.volumes.remove(m.source)
            else:
                self.volumes.set_owner(m.source, "")  # dangling now, as podman keeps it
        await self.volumes.delete_gone()

    # -- prepare ----------------------------------------------------------------------------

    async def prepare(self, rec: ContainerRecord, launch: Launch) -> None:
        cfg = rec.config
        if not cfg.mounts:
            return
        added = []
        for m in cfg.mounts:
            if m.type == TMPFS:
                added.append({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                              "options": list(m.options)})
                continue
            if m.type == VOLUME:
                source = await self._volume_source(rec, m)
            else:
                source = m.source
                if not os.path.exists(source):
                    raise MountSourceNotFound(f"container {cfg.name}: the host path {source[:200]} of "
                                              f"{m.spec[:200]!r} no longer exists", field="volume",
                                              spec=m.spec, path=source[:4096])
            added.append({"destination": m.destination, "type": "bind", "source": source,
                          "options": list(m.options)})
        launch.mounts.extend(added)
        launch.edits.append(_replace_defaults({m.destination for m in cfg.mounts}, added))

    async def _volume_source(self, rec: ContainerRecord, m: Mount) -> str:
        try:
            vol = self.volumes.get(m.source)
        except NoSuchVolume:
            raise NoSuchVolume(f"container {rec.name} mounts volume {m.source[:200]}, which no longer "
                               "exists", name=m.source) from None
        data = self.volumes.mountpoint(vol.name)
        if not os.path.isdir(data):
            os.makedirs(data, mode=0o755, exist_ok=True)
        if vol.needs_chown or (vol.needs_copy_up and m.copy_up):
            async with self.volumes.first_use_lock(vol.name):
                vol = self.volumes.get(vol.name)
                await self._first_use(rec, m, vol.needs_chown, vol.needs_copy_up and m.copy_up, data)
        return data

    async def _first_use(self, rec: ContainerRecord, m: Mount, chown: bool, copy: bool, data: str) -> None:
        """podman's copy-up: an empty volume gets what the image has at its path (owners, modes,
        links and xattrs kept: ``cp -a``), and that directory's owner and mode."""
        cfg = rec.config
        # Resolved within the rootfs: a symlink in an image cannot point the copy elsewhere.
        # Nothing runs in the container yet, so nothing can change the path meanwhile.
        src = resolve_in_root(cfg.rootfs, m.destination)
        is_dir = os.path.isdir(src) and not os.path.islink(src)
        if chown:
            if is_dir:
                st = os.stat(src)
                os.chown(data, st.st_uid, st.st_gid)
                os.chmod(data, st.st_mode & 0o7777)
            else:
                uid, gid, _ = resolve_user(cfg.rootfs, cfg.user)
                os.chown(data, uid, gid)
        if copy and is_dir and not os.listdir(data) and os.listdir(src):
            done = await self._monitor.run([CP, "-a", "--", src + "/.", data + "/"],
                                           timeout=COPY_UP_TIMEOUT)
            if not done.ok:
                raise RuntimeFailed(f"copying the image's {m.destination} into volume {m.source[:12]} "
                                    f"failed: {done.stderr.decode(errors='replace').strip()[-500:]}",
                                    runtime="cp")
        # Once looked at, never again (podman's NeedsCopyUp): a volume the user emptied stays empty.
        self.volumes.mark_used(m.source, copied=copy, chowned=chown)

    # -- daemon start -----------------------------------------------------------------------

    async def recover(self, records: Sequence[ContainerRecord], alive: Collection[str]) -> None:
        used = {r.id: [m.source for m in r.config.mounts if m.type == VOLUME] for r in records}
        self.volumes.recover(used, {r.id for r in records})
        await self.volumes.delete_gone()


def _replace_defaults(destinations: set[str], ours: list[dict]):
    """A spec edit: a user's mount replaces the default one at its destination (/dev/shm ...)."""
    mine = {id(m) for m in ours}

    def edit(spec: dict) -> None:
        spec["mounts"] = [m for m in spec["mounts"]
                          if id(m) in mine or m.get("destination") not in destinations]

    return edit
