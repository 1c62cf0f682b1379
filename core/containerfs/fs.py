"""The filesystem operations on a container: mount, unmount, export, stat, copy out and in,
diff, commit, artifacts. Each takes the container's lock for its checks (the state table's
``mount`` action: anything but ``removing``) and what it holds; a transfer then runs
without the lock (a thread, writing into the client's fd), holding a mount of the rootfs
instead, so stop, inspect and the rest go on meanwhile (podman's copy does the same).

Which tree a copy sees is in ``paths.py``. A ``--rootfs DIR`` container has nothing to
mount (``mount`` gives DIR) and no image below it: ``diff`` and ``commit`` are refused
with ``NoImageRootfs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import secrets
import signal
import stat
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import (
    ContainerStopped,
    ExecSessionActive,
    InvalidCopy,
    InvalidState,
    NoImageRootfs,
    NoSuchImage,
    NoSuchPath,
    ReadOnlyPath,
    Unsupported,
)
from ..model import ContainerRecord
from ..spec import resolve_user
from ..states import Action, State, next_state
from ..volumes.model import BIND, VOLUME
from . import changes
from .artifacts import Artifacts
from .clientfd import ClientFd
from .copyin import copy_in
from .paths import Resolved, Root, reopen_dir, resolve, split
from .tarwrite import TarWriter, Walk

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import EventBus
    from ..images.images import Images
    from ..volumes.volumes import Volumes

log = logging.getLogger("varpod.containerfs")

# States whose container has a process to see its mounts through (/proc/PID/root).
_LIVE = (State.CREATED, State.RUNNING, State.PAUSED, State.STOPPING)
TRANSFERS = 16  # exports and copies running at once; more wait for a thread
# Pseudo filesystems a copy out of a running container does not descend into.
_PSEUDO = ("/proc", "/sys", "/dev/pts", "/dev/mqueue")


class PathStat(msgspec.Struct, frozen=True):
    name: str
    path: str  # where it resolved to, inside the container
    size: int
    mode: int  # st_mode of what the path leads to
    mtime: int  # ns
    link_target: str  # the path itself is a symlink to this ("" when it is not one)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class ContainerFS:
    def __init__(self, engine: Engine, images: Images, volumes: Volumes, events: EventBus) -> None:
        self.engine = engine
        self.images = images
        self.volumes = volumes
        self._events = events
        # Transfers have threads of their own: a client that stops reading holds one of these,
        # never one of the loop's default executor (image unpacking, volume removal ...).
        self._pool = ThreadPoolExecutor(max_workers=TRANSFERS, thread_name_prefix="varpod-fs")

    def close(self) -> None:
        """Daemon shutdown: transfers were cancelled with their connections; idle threads go."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _transfer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args, cancel)`` in a transfer thread; a cancel of the caller (the daemon stopping)
        reaches the thread, and the caller returns only once the thread is done with its fds."""
        cancel = threading.Event()
        fut = asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, cancel))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait([fut])
            raise

    def _emit(self, rec: ContainerRecord, action: str, **attributes: object) -> None:
        self._events.emit("container", action, rec.id, rec.name, **attributes)

    @staticmethod
    def check(rec: ContainerRecord) -> None:
        try:
            next_state(rec.state.state, Action.MOUNT, who=f"container {rec.name}")
        except InvalidState as e:
            e.id = rec.id
            raise

    def _layers(self, rec: ContainerRecord) -> list[str]:
        image = self.images.store.images.get(rec.config.image)
        if image is None:
            raise NoSuchImage(f"the image of container {rec.name} ({rec.config.image[:12]}) is gone",
                              name=rec.config.image)
        return list(image.layers)

    # -- mount / unmount -------------------------------------------------------------------------

    async def mount(self, ref: str) -> str:
        """Mount the rootfs on the host (one more user mount); its path."""
        async with self.engine.locked(ref) as rec:
            self.check(rec)
            if rec.config.image:
                path = self.images.rootfs.mount_user(rec.id, self._layers(rec))
            else:
                path = rec.config.rootfs  # a directory: nothing to mount
            self._emit(rec, "mount")
        return path

    async def unmount(self, ref: str, force: bool = False) -> bool:
        """One user mount fewer (``force``: all of them); True if the rootfs stays mounted.

        The last mount of a running or paused container, or of one with exec sessions, is
        its own and is refused (seed 002's rule)."""
        async with self.engine.locked(ref) as rec:
            self.check(rec)
            rootfs = self.images.rootfs
            count = rootfs.user_count(rec.id) if rec.config.image else 0
            if count == 0:
                if rec.state.state in (State.RUNNING, State.PAUSED):
                    raise InvalidState(f"cannot unmount storage for container {rec.name} as it is "
                                       f"{rec.state.state.value}", id=rec.id, state=rec.state.state.value)
                if self.engine.execs.active(rec.id):
                    raise ExecSessionActive(f"container {rec.name} has active exec sessions, refusing to "
                                            "unmount", id=rec.id, state=rec.state.state.value)
            else:
                rootfs.unmount_user(rec.id, everything=force)
            self._emit(rec, "unmount")
            return bool(rec.config.image) and os.path.ismount(rootfs.merged(rec.id))

    def mounted(self) -> list[tuple[ContainerRecord, str]]:
        """Containers whose rootfs is mounted on the host (by their run, a user or a copy)."""
        rootfs = self.images.rootfs
        return [(rec, rootfs.merged(rec.id)) for rec in self.engine.list(all=True)
                if rec.config.image and os.path.ismount(rootfs.merged(rec.id))]

    # -- holding the rootfs while a transfer runs ------------------------------------------------

    def _hold(self, rec: ContainerRecord) -> tuple[str, Callable[[], None]]:
        """The rootfs on the host, mounted until the returned release is called (under the lock)."""
        if not rec.config.image:
            return rec.config.rootfs, lambda: None
        holder = "op-" + secrets.token_hex(4)
        rootfs = self.images.rootfs
        path = rootfs.mount(rec.id, self._layers(rec), holder=holder)

        def release() -> None:
            try:
                rootfs.release(rec.id, holder)
            except OSError as e:
                log.error("unmounting the rootfs of %s after a copy failed: %s", rec.name, e)

        return path, release

    @contextlib.asynccontextmanager
    async def _session(self, ref: str, *, live: bool) -> AsyncIterator[tuple[ContainerRecord, str, Root]]:
        """The container's record, its rootfs on the host and the Root to resolve paths in
        (``live``: through its process when it has one). Checked and set up under the lock,
        used without it."""
        async with self.engine.locked(ref) as rec:
            self.check(rec)
            path, release = self._hold(rec)
            try:
                root = self._root(rec, path) if live else Root.open(path)
            except BaseException:
                release()
                raise
        try:
            yield rec, path, root
        finally:
            root.close()
            release()

    def _root(self, rec: ContainerRecord, rootfs: str) -> Root:
        if rec.state.state in _LIVE and rec.state.pid:
            fd = _process_root(rec.id, rec.state.pid)
            if fd is not None:
                return Root(fd)
        mounts: dict[str, tuple[str, bool]] = {}
        for m in rec.config.mounts:
            if m.type == VOLUME:
                mounts[m.destination] = (self.volumes.mountpoint(m.source), m.rw)
            elif m.type == BIND:
                mounts[m.destination] = (m.source, m.rw)
        return Root.open(rootfs, mounts, read_only=rec.config.read_only)

    # -- export -------------------------------------------------------------------------------------

    async def export(self, ref: str, fd: int) -> ContainerRecord:
        """The rootfs (as mounted, without volumes: podman's export) as a tar into ``fd``."""
        async with self._session(ref, live=False) as (rec, _, root):
            # seed 002: Export announces itself with a mount event
            self._emit(rec, "mount")
            await self._transfer(_export, root, fd)
        return rec

    # -- stat / copy out / copy in -------------------------------------------------------------------

    async def stat(self, ref: str, path: str) -> PathStat:
        async with self._session(ref, live=True) as (_, _, root):
            return await asyncio.to_thread(_stat, root, path)

    async def copy_out(self, ref: str, path: str, fd: int, *, name: str = "",
                       contents: bool = False) -> PathStat:
        """``path`` as a tar into ``fd``: its top entry named ``name`` (default: its own), or
        (``contents``, a directory) its children only."""
        if name and (name in (".", "..") or "/" in name or "\0" in name):
            raise InvalidCopy(f"invalid name {name[:100]!r} for the copied entry", path=name[:4096])
        async with self._session(ref, live=True) as (_, _, root):
            return await self._transfer(_copy_out, root, path, fd, name, contents)

    async def copy_in(self, ref: str, path: str, fd: int, *, name: str = "", target: str = "",
                      directory: bool = False, contents: bool = False, chown: bool = True,
                      overwrite: bool = False) -> None:
        """Unpack the tar read from ``fd`` at ``path``, as podman's cp: ``name`` is the
        archive's top entry (the source's base name, or "." for an archive of a directory's
        entries; "" for a tar stream to unpack into the directory ``path``), ``target`` the
        name it gets inside an existing directory (default: ``name``), ``directory`` whether
        it is a directory, ``contents`` to copy what it holds rather than itself (``cp src/.
        ctr:/dir``)."""
        if (name and (name == ".." or "/" in name or "\0" in name)) or \
                (target and (target in (".", "..") or "/" in target or "\0" in target)):
            raise InvalidCopy(f"invalid source name {(name + ' ' + target)[:100]!r}", path=path[:4096])
        async with self._session(ref, live=True) as (rec, rootfs, root):
            owner = None
            if chown:
                uid, gid, _ = resolve_user(rootfs, rec.config.user)
                owner = (uid, gid)
            await self._transfer(_copy_in, root, path, fd, name, target or name, directory, contents,
                                 owner, overwrite)

    # -- diff / commit --------------------------------------------------------------------------------

    def _overlay(self, rec: ContainerRecord) -> tuple[str, list[str]]:
        if not rec.config.image:
            raise NoImageRootfs(f"container {rec.name} runs from the directory {rec.config.rootfs}, not an "
                                "image: it has no image layers to compare with or commit onto", id=rec.id)
        upper = self.images.rootfs.paths(rec.id)[0]
        return upper, [self.images.layers.diff(c) for c in reversed(self._layers(rec))]

    async def diff(self, ref: str) -> list[tuple[str, str]]:
        async with self.engine.locked(ref) as rec:
            self.check(rec)
            upper, lowers = self._overlay(rec)
        return await asyncio.to_thread(changes.diff, upper, lowers)

    async def commit(self, ref: str, *, name: str = "", author: str = "", message: str = "",
                     changes_: list[str] | None = None, pause: bool = True, fmt: str = "") -> Any:
        """A new image: the container's image with its changes as one more layer (see commit.py)."""
        from .commit import check, commit

        check(name, changes_ or [])  # a bad name or change is refused before anything is paused
        if fmt not in ("", "oci"):
            raise Unsupported(f"commit format {fmt[:40]!r}: varpod writes oci images only", feature="format")
        rec = self.engine.resolve(ref)
        self.check(rec)
        self._overlay(rec)  # refused before anything is paused
        paused = False
        if pause and rec.state.state is State.RUNNING:
            try:
                await self.engine.pause(rec.id)
                paused = True
            except (InvalidState, ContainerStopped):
                pass  # it stopped or paused meanwhile: nothing to freeze, or frozen already
        try:
            async with self.engine.locked(rec.id) as rec:
                self.check(rec)
                self._overlay(rec)
                merged, release = self._hold(rec)
            try:
                image = await commit(self.images, rec, merged, name=name, author=author, message=message,
                                     changes=changes_ or [])
            finally:
                release()
        finally:
            if paused:
                try:
                    await self.engine.unpause(rec.id)
                except InvalidState as e:
                    log.warning("container %s was not unpaused after its commit: %s", rec.name, e.message)
        self._emit(rec, "commit", image=image.id)
        return image

    # -- artifacts --------------------------------------------------------------------------------------

    def artifacts(self, rec: ContainerRecord) -> Artifacts:
        return Artifacts(self.engine.data_dir(rec.id))

    async def artifact_add(self, ref: str, name: str, data: bytes) -> None:
        async with self.engine.locked(ref) as rec:
            self.check(rec)
            self.artifacts(rec).add(name, data)

    def artifact_get(self, ref: str, name: str) -> bytes:
        rec = self.engine.resolve(ref)
        self.check(rec)
        return self.artifacts(rec).get(name)

    async def artifact_remove(self, ref: str, name: str) -> None:
        async with self.engine.locked(ref) as rec:
            self.check(rec)
            self.artifacts(rec).remove(name)

    def artifact_list(self, ref: str) -> list[tuple[str, int]]:
        rec = self.engine.resolve(ref)
        self.check(rec)
        return self.artifacts(rec).list()


# -- what runs in threads ---------------------------------------------------------------------------


def _process_root(cid: str, pid: int) -> int | None:
    """An fd of ``/proc/PID/root`` if PID is still a process of container ``cid``: the pidfd
    pins the process, its cgroup names the container, and it is alive after both were read,
    so a PID reused by another process is never taken for the container's."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    fd = -1
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        with open(f"/proc/{pid}/cgroup") as f:
            cgroups = f.read()
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        if fd >= 0:
            os.close(fd)
        return None
    finally:
        os.close(pidfd)
    if cid not in cgroups:
        os.close(fd)
        return None
    return fd


def _export(root: Root, fd: int, cancel: threading.Event) -> None:
    with ClientFd(fd, write=True, cancel=cancel) as out:
        writer = TarWriter(out)
        top = reopen_dir(root.fd)
        try:
            Walk(writer).tree(top, "", "/", include_top=False)
        finally:
            os.close(top)
        writer.close()


def _stat(root: Root, path: str) -> PathStat:
    with resolve(root, path, follow=False) as own:
        if not own.exists:
            raise NoSuchPath(f"{path[:200]}: no such file or directory in the container", path=path[:4096])
        if not stat.S_ISLNK(own.st.st_mode):
            return _path_stat(own, path, "")
    with resolve(root, path) as target:
        if not target.exists:
            raise NoSuchPath(f"{path[:200]} is a symlink to {target.path[:200]}, which does not exist",
                             path=path[:4096])
        return _path_stat(target, path, target.path)


def _path_stat(r: Resolved, given: str, link: str) -> PathStat:
    st = r.st
    name = split(given)[-1] if split(given) else "/"
    return PathStat(name=name, path=r.path, size=st.st_size, mode=st.st_mode, mtime=st.st_mtime_ns,
                    link_target=link)


def _descend_filter(root: Root) -> Callable[[os.stat_result], bool] | None:
    """A running container's /proc, /sys, /dev/pts ... are not copied into (their entries are)."""
    if root.mounts:
        return None
    top = os.fstat(root.fd).st_dev
    skip = set()
    for p in _PSEUDO:
        try:
            with resolve(root, p) as r:
                if r.exists and r.st.st_dev != top:
                    skip.add(r.st.st_dev)
        except (NoSuchPath, OSError):
            continue
    return (lambda st: st.st_dev not in skip) if skip else None


def _enter(root: Root) -> Callable[[str], int | None] | None:
    """A stopped container's volumes and bind mounts, stepped into where the walk reaches them."""
    if not root.mounts:
        return None

    def enter(canonical: str) -> int | None:
        found = root.mounts.get(canonical)
        if found is None or not os.path.isdir(found[0]):
            return None
        return os.open(found[0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    return enter


def _copy_out(root: Root, path: str, fd: int, name: str, contents: bool, cancel: threading.Event) -> PathStat:
    info = _stat(root, path)
    with ClientFd(fd, write=True, cancel=cancel) as out, resolve(root, path) as r:
        writer = TarWriter(out)
        if not r.exists:
            raise NoSuchPath(f"{path[:200]} went away", path=path[:4096])
        arc = name or (info.name if info.name != "/" else "")
        if r.is_dir:
            top = reopen_dir(r.fd)
            try:
                walk = Walk(writer, enter=_enter(root), descend=_descend_filter(root))
                if contents or not arc:
                    walk.tree(top, "", r.path, include_top=False)
                else:
                    walk.tree(top, arc, r.path, include_top=True)
            finally:
                os.close(top)
        else:
            if contents:
                raise InvalidCopy(f"{path[:200]} is not a directory: there are no contents to copy",
                                  path=path[:4096])
            if writer.add(r.parent_fd, r.name, arc or r.name) is None:
                raise NoSuchPath(f"{path[:200]} cannot be copied (a socket, or gone)", path=path[:4096])
        writer.close()
    return info


def _copy_in(root: Root, path: str, fd: int, name: str, as_name: str, directory: bool, contents: bool,
             owner: tuple[int, int] | None, overwrite: bool, cancel: threading.Event) -> None:
    with resolve(root, path) as dest:
        rename: tuple[str, str] | None = None
        if dest.exists and dest.is_dir:
            target = dest.fd
            if name == "." and not contents and as_name == ".":
                raise InvalidCopy("an archive of a directory's entries needs the name it is copied as "
                                  "(target_name)", path=path[:4096])
            if name:
                rename = (name, "" if contents else as_name)
        elif dest.exists:
            if not name:
                raise InvalidCopy(f"{path[:200]} is not a directory: a tar stream is unpacked into a "
                                  "directory", path=path[:4096])
            if directory and not overwrite:
                raise InvalidCopy(f"cannot copy a directory onto the file {path[:200]}", path=path[:4096])
            target, rename = dest.parent_fd, (name, dest.name)
        else:
            if not name:
                raise NoSuchPath(f"{path[:200]}: no such directory in the container", path=path[:4096])
            if path.endswith("/") and not directory:
                raise NoSuchPath(f"{path[:200]}: no such directory in the container", path=path[:4096])
            target, rename = dest.parent_fd, (name, dest.name)
        if dest.read_only:
            raise ReadOnlyPath(f"{path[:200]} is on a read-only file system of the container",
                               path=path[:4096])
        with ClientFd(fd, write=False, cancel=cancel) as raw, io.BufferedReader(raw, 1 << 20) as src:
            copy_in(src, target, rename=rename, owner=owner, overwrite=overwrite, where=path[:4096])

