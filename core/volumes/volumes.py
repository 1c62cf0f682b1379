"""Named and anonymous volumes on the embedded ``local`` driver: ``<root>/volumes/NAME/_data``.

A volume is a row in SQLite and a directory, made together; it outlives the containers
that use it (an anonymous one goes with its container on ``rm -v`` or ``--rm``). Who
uses which volume (``users``) is rebuilt from the containers' configs at daemon start;
``remove`` refuses while any container, running or not, uses the volume.

A directory is deleted by renaming it aside first (``.gone-*``), on the loop, then
removing the tree off it: a volume of the same name made meanwhile starts empty, and a
crash mid-delete leaves a ``.gone-*`` that the next start removes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Collection, Iterable

import msgspec

from ..errors import InvalidVolumeConfig, NoSuchVolume, VolumeExists, VolumeInUse
from .model import LOCAL, VolumeRecord
from .specs import volume_name_problem
from .store import VolumeStore

log = logging.getLogger("varpod.volumes")

GONE = ".gone-"
LABELS_MAX = 256


def data_dir(root: str, name: str) -> str:
    """Where the volume ``name`` of a daemon with root ``root`` keeps its files."""
    return os.path.join(root, "volumes", name, "_data")


def _no_events(*args: object, **kw: object) -> None:
    pass


class Volumes:
    def __init__(self, root: str, db_path: str, emit: Callable[..., object] | None = None) -> None:
        self.dir = os.path.join(root, "volumes")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.store = VolumeStore(db_path)
        self._emit = emit or _no_events
        self.users: dict[str, set[str]] = {}  # volume name -> IDs of the containers that mount it
        self._first_use: dict[str, asyncio.Lock] = {}  # copy-up of a volume, one container at a time

    def close(self) -> None:
        self.store.close()

    # -- paths and lookups ------------------------------------------------------------------

    def path(self, name: str) -> str:
        if volume_name_problem(name):  # names reach the filesystem: only checked ones
            raise NoSuchVolume(f"no volume with name {name[:200]!r} found", name=name[:253])
        return os.path.join(self.dir, name)

    def mountpoint(self, name: str) -> str:
        self.path(name)  # checked
        return data_dir(os.path.dirname(self.dir), name)

    def get(self, ref: str) -> VolumeRecord:
        """A volume by name, or by a unique prefix of one (as podman looks volumes up)."""
        if not isinstance(ref, str) or not ref:
            raise NoSuchVolume("a volume name cannot be empty", name="")
        vols = self.store.volumes
        found = vols.get(ref)
        if found is not None:
            return found
        matches = [n for n in vols if n.startswith(ref)]
        if len(matches) == 1:
            return vols[matches[0]]
        if matches:
            raise NoSuchVolume(f"more than one volume matches {ref[:200]!r}: give the whole name",
                               name=ref[:253])
        raise NoSuchVolume(f"no volume with name {ref[:200]!r} found: no such volume", name=ref[:253])

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
        except NoSuchVolume:
            return False
        return True

    def list(self) -> list[VolumeRecord]:
        return sorted(self.store.volumes.values(), key=lambda v: v.created_at)

    def users_of(self, name: str) -> list[str]:
        return sorted(self.users.get(name, ()))

    # -- create -----------------------------------------------------------------------------

    def create(self, name: str = "", *, driver: str = "", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, anonymous: bool = False, owner: str = "",
               ignore: bool = False) -> VolumeRecord:
        """A new volume (a random 64-hex name when none is given); ``ignore``: an existing one
        of that name is returned instead of refused."""
        name = name or secrets.token_hex(32)
        problem = volume_name_problem(name)
        if problem:
            raise InvalidVolumeConfig(f"invalid volume name {name[:100]!r}: {problem}", field="name")
        if driver not in ("", LOCAL):
            raise InvalidVolumeConfig(f"volume driver {driver[:60]!r} is not supported: varpod has the "
                                      f"{LOCAL} driver only", field="driver")
        if options:
            raise InvalidVolumeConfig(f"volume options ({', '.join(sorted(options))[:100]}) are not "
                                      "supported: varpod's local driver keeps a plain directory and "
                                      "mounts nothing", field="options")
        labels = dict(labels or {})
        if len(labels) > LABELS_MAX or any(not k or "\0" in k + v or len(k) + len(v) > 4096
                                           for k, v in labels.items()):
            raise InvalidVolumeConfig("invalid volume labels", field="labels")
        existing = self.store.volumes.get(name)
        if existing is not None:
            if ignore:
                return existing
            raise VolumeExists(f"volume with name {name} already exists: volume already exists", name=name)
        data = os.path.join(self.path(name), "_data")
        os.makedirs(data, mode=0o755, exist_ok=True)
        os.chmod(self.path(name), 0o700)
        rec = VolumeRecord(name=name, created_at=time.time_ns(), labels=labels, anonymous=anonymous,
                           owner=owner)
        try:
            self.store.put(rec)
        except BaseException:
            shutil.rmtree(self.path(name), ignore_errors=True)
            raise
        self._emit("volume", "create", name, name)
        return rec

    def set_owner(self, name: str, owner: str) -> None:
        rec = self.store.volumes.get(name)
        if rec is not None and rec.owner != owner:
            self.store.put(msgspec.structs.replace(rec, owner=owner))

    def first_use_lock(self, name: str) -> asyncio.Lock:
        lock = self._first_use.get(name)
        if lock is None:
            lock = self._first_use[name] = asyncio.Lock()
        return lock

    def mark_used(self, name: str, *, copied: bool, chowned: bool) -> None:
        rec = self.store.volumes.get(name)
        if rec is None:
            return
        changes = {}
        if copied and rec.needs_copy_up:
            changes["needs_copy_up"] = False
        if chowned and rec.needs_chown:
            changes["needs_chown"] = False
        if changes:
            self.store.put(msgspec.structs.replace(rec, **changes))

    # -- use --------------------------------------------------------------------------------

    def add_user(self, name: str, cid: str) -> None:
        self.users.setdefault(name, set()).add(cid)

    def drop_user(self, name: str, cid: str) -> None:
        users = self.users.get(name)
        if users is not None:
            users.discard(cid)
            if not users:
                del self.users[name]

    # -- removal ----------------------------------------------------------------------------

    def remove(self, ref: str) -> str:
        """Forget a volume and move its directory aside (``delete_gone`` removes it); refused
        while containers use it. Returns its name."""
        rec = self.get(ref)
        users = self.users_of(rec.name)
        if users:
            raise VolumeInUse(f"volume {rec.name} is being used by the following container(s): "
                              f"{', '.join(u[:12] for u in users)}: volume is being used",
                              name=rec.name, containers=users)
        self.store.delete(rec.name)
        self._first_use.pop(rec.name, None)
        self._move_aside(rec.name)
        self._emit("volume", "remove", rec.name, rec.name)
        return rec.name

    def _move_aside(self, name: str) -> None:
        try:
            os.rename(self.path(name), os.path.join(self.dir, GONE + secrets.token_hex(8)))
        except FileNotFoundError:
            pass

    def prune(self, keep: Callable[[VolumeRecord], bool] | None = None) -> list[str]:
        """Remove every volume no container uses (and ``keep`` does not keep); their names."""
        gone = []
        for rec in self.list():
            if self.users.get(rec.name) or (keep is not None and keep(rec)):
                continue
            gone.append(self.remove(rec.name))
        return gone

    async def delete_gone(self) -> None:
        """Remove the directories ``remove`` moved aside (a volume may be large: off the loop)."""
        doomed = [os.path.join(self.dir, n) for n in os.listdir(self.dir) if n.startswith(GONE)]
        if doomed:
            await asyncio.to_thread(_rmtrees, doomed)

    # -- daemon start -----------------------------------------------------------------------

    def recover(self, mounts_by_container: dict[str, Iterable[str]], known: Collection[str]) -> list[str]:
        """Rebuild ``users``; drop what a crash left: directories without a row, and anonymous
        volumes whose container never got (or lost) its record. Returns the names dropped."""
        self.users.clear()
        for cid, names in mounts_by_container.items():
            for name in names:
                self.add_user(name, cid)
        dropped = []
        for rec in list(self.store.volumes.values()):
            if rec.anonymous and rec.owner and rec.owner not in known and not self.users.get(rec.name):
                log.info("removing anonymous volume %s of container %s, which no record owns",
                         rec.name[:12], rec.owner[:12])
                dropped.append(self.remove(rec.name))
            elif not os.path.isdir(self.mountpoint(rec.name)):
                log.warning("volume %s lost its directory; it starts empty again", rec.name)
                os.makedirs(self.mountpoint(rec.name), mode=0o755, exist_ok=True)
        for name in os.listdir(self.dir):
            if not name.startswith(GONE) and name not in self.store.volumes:
                log.info("removing volume directory %s, which no record owns", name)
                os.rename(os.path.join(self.dir, name), os.path.join(self.dir, GONE + secrets.token_hex(8)))
        return dropped


def _rmtrees(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
