"""Each image container's root: an overlay mount of the image's layers under its own upper dir.

    <root>/containers/<id>/upper   the container's changes
    <root>/containers/<id>/work    overlayfs' work dir
    <root>/containers/<id>/merged  the mount point: the container's rootfs

100 containers of one image cost 100 small upper dirs, not 100 copies.

**The mount-option limit.** mount(2) takes its options in one page (4096 bytes),
and a lowerdir of absolute layer paths outgrows it at some 40 layers. As
containers/storage does, every layer has a short link ``<root>/l/<16 hex>``;
when the absolute form does not fit, a forked child ``chdir``s to ``<root>``
and mounts with ``lowerdir=l/…:l/…`` (overlayfs resolves relative paths
against the mounting process's cwd), which fits some 200 layers. The fork
keeps the daemon's own cwd untouched (a chdir there would race its threads).

Who holds a mount is kept per container (``holders``): the container's own run,
``varpod mount`` (``user``: counted, and the count kept on disk, so a restarted daemon
re-adopts it), a copy or export in flight; the overlay goes when the last lets go.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil

from ..errors import Unsupported
from .layerstore import LayerStore

log = logging.getLogger("varpod.images.rootfs")

PAGE = 4096
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def _index_off() -> str:
    # podman's choice: without it, one lower dir shared by many mounts can be refused.
    return ",index=off" if os.path.exists("/sys/module/overlay/parameters/index") else ""


def mount_overlay(data: str, target: str) -> None:
    if _libc.mount(b"overlay", target.encode(), b"overlay", 0, data.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mounting overlay on {target}: {os.strerror(e)}")


def mount_overlay_from(cwd: str, data: str, target: str) -> None:
    """mount(2) from a child whose cwd is ``cwd``, for relative paths in ``data``."""
    pid = os.fork()
    if pid == 0:  # the child: two system calls, then out
        code = 0
        try:
            os.chdir(cwd)
            if _libc.mount(b"overlay", target.encode(), b"overlay", 0, data.encode()) != 0:
                code = ctypes.get_errno() or errno.EIO
        except BaseException:
            code = errno.EIO
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, f"mounting overlay on {target}: {os.strerror(code)}")


def unmount(target: str) -> None:
    if _libc.umount2(target.encode(), 0) == 0:
        return
    e = ctypes.get_errno()
    if e == errno.EINVAL:  # not a mount point (any more)
        return
    if e == errno.ENOENT:
        return
    if e == errno.EBUSY:
        log.warning("%s is busy; detaching it lazily", target)
        if _libc.umount2(target.encode(), MNT_DETACH) == 0:
            return
        e = ctypes.get_errno()
    raise OSError(e, f"unmounting {target}: {os.strerror(e)}")


def mount_points() -> set[str]:
    out = set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" ", 5)
            if len(fields) > 4:
                out.add(_unescape(fields[4]))
    return out


def _unescape(raw: bytes) -> str:
    text = raw.decode("utf-8", "surrogateescape")
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class Rootfs:
    def __init__(self, root: str, layers: LayerStore) -> None:
        if any(c in root for c in ",:\\"):
            raise Unsupported(f"the image store {root!r} has ',', ':' or '\\' in its path, which "
                              "overlayfs mount options cannot carry", feature="overlay")
        self.root = root
        self.dir = os.path.join(root, "containers")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self._layers = layers
        self._index = _index_off()
        self.holders: dict[str, set[str]] = {}  # container ID -> who holds its mount

    def paths(self, cid: str) -> tuple[str, str, str]:
        base = os.path.join(self.dir, cid)
        return os.path.join(base, "upper"), os.path.join(base, "work"), os.path.join(base, "merged")

    def merged(self, cid: str) -> str:
        return self.paths(cid)[2]

    def create(self, cid: str) -> None:
        base = os.path.join(self.dir, cid)
        os.makedirs(base, mode=0o700, exist_ok=True)
        upper, work, merged = self.paths(cid)
        for d in (upper, work, merged):
            os.makedirs(d, mode=0o755, exist_ok=True)

    def mount(self, cid: str, chain_ids: list[str], holder: str = "run") -> str:
        """Mount (if nothing holds it yet) and record ``holder``; returns the merged dir."""
        upper, work, merged = self.paths(cid)
        held = self.holders.setdefault(cid, set())
        if not held and not os.path.ismount(merged):
            self.create(cid)
            self._mount(chain_ids, upper, work, merged)
        held.add(holder)
        return merged

    def _mount(self, chain_ids: list[str], upper: str, work: str, merged: str) -> None:
        top_first = list(reversed(chain_ids))
        lowers = [self._layers.diff(c) for c in top_first] or [self._layers.empty]
        data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}{self._index}"
        if len(data) < PAGE:
            mount_overlay(data, merged)
            return
        short = [self._layers.short_link(c) for c in top_first]
        rel = os.path.relpath
        data = (f"lowerdir={':'.join(short)},upperdir={rel(upper, self.root)},"
                f"workdir={rel(work, self.root)}{self._index}")
        if len(data) >= PAGE:
            raise Unsupported(f"an image of {len(chain_ids)} layers is more than an overlay mount can "
                              "stack here", feature="overlay")
        for c in chain_ids:
            self._layers.link(c)  # idempotent: links of layers from before they existed
        mount_overlay_from(self.root, data, merged)

    def release(self, cid: str, holder: str = "run") -> None:
        held = self.holders.get(cid)
        if held is not None:
            held.discard(holder)
            if held:
                return
            del self.holders[cid]
        unmount(self.merged(cid))

    def remove(self, cid: str) -> None:
        """Unmount whatever holds it and delete the container's upper, work and mount point."""
        self.holders.pop(cid, None)
        base = os.path.join(self.dir, cid)
        merged = self.merged(cid)
        if os.path.ismount(merged):
            unmount(merged)
        if os.path.isdir(base):
            # Never through a mount: rmtree must delete the container's own files only.
            if os.path.ismount(merged):
                raise OSError(errno.EBUSY, f"{merged} is still mounted")
            shutil.rmtree(base)

    # -- user mounts (varpod mount / unmount), counted as podman counts them ------------------

    def _count_path(self, cid: str) -> str:
        return os.path.join(self.dir, cid, "user-mounts")

    def user_count(self, cid: str) -> int:
        try:
            with open(self._count_path(cid)) as f:
                return max(0, int(f.read().strip() or 0))
        except (OSError, ValueError):
            return 0

    def _set_user_count(self, cid: str, count: int) -> None:
        path = self._count_path(cid)
        if count <= 0:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(count))
        os.replace(tmp, path)

    def mount_user(self, cid: str, chain_ids: list[str]) -> str:
        merged = self.mount(cid, chain_ids, holder="user")
        self._set_user_count(cid, self.user_count(cid) + 1)
        return merged

    def unmount_user(self, cid: str, everything: bool = False) -> int:
        """One user mount fewer (``everything``: none left); returns how many remain."""
        count = 0 if everything else max(0, self.user_count(cid) - 1)
        self._set_user_count(cid, count)
        if count == 0:
            self.release(cid, "user")
        return count

    def adopt_user(self, cid: str) -> bool:
        """After a daemon restart: re-adopt a container's user mounts. False when there are
        none, or when its overlay is no longer mounted (a reboot): the count goes then."""
        if not self.user_count(cid):
            return False
        if self.adopt(cid, "user"):
            return True
        log.warning("container %s was mounted by a user, but its rootfs is no longer mounted", cid[:12])
        self._set_user_count(cid, 0)
        return False

    def adopt(self, cid: str, holder: str = "run") -> bool:
        """After a daemon restart: record a surviving container's mount. False if not mounted."""
        if not os.path.ismount(self.merged(cid)):
            return False
        self.holders.setdefault(cid, set()).add(holder)
        return True

    def on_disk(self) -> list[str]:
        return os.listdir(self.dir)
