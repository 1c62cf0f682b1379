"""Named network namespaces: a file under the daemon's run root with the namespace bind-mounted on it.

Python 3.11 has no ``os.unshare``: libc's ``unshare(CLONE_NEWNET)`` runs on a thread
started for the purpose, which only that thread's namespace changes (network namespaces
are per thread); the thread bind-mounts its namespace onto the file, brings loopback up
(as runc does for a namespace it creates itself) and ends. The event loop's thread never
leaves the daemon's namespace, and no pooled thread is ever reused inside another one.

The directory is made a shared mount, as ``ip netns`` does with /run/netns: a mount
namespace copied while a file is mounted (any process's ``unshare -m``) then sees the
unmount too, instead of keeping the namespace (and its interfaces) alive for ever.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str, target: str, flags: int) -> None:
    _check(_libc.mount(src.encode(), target.encode(), None, flags, None), f"mount {target}")


def _umount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo", "rb") as f:
        want = os.fsencode(os.path.realpath(path))
        for line in f:
            fields = line.split(b" ")
            if len(fields) > 4 and _unescape(fields[4]) == want:
                return True
    return False


def _unescape(field: bytes) -> bytes:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if b"\\" not in field:
        return field
    out, i = bytearray(), 0
    while i < len(field):
        if field[i:i + 1] == b"\\" and field[i + 1:i + 4].isdigit():
            out.append(int(field[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


class NetnsDir:
    """The directory of named namespaces (``<run_root>/netns``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ready = False

    def path_of(self, cid: str) -> str:
        return os.path.join(self.path, cid)

    def _prepare(self) -> None:
        if self._ready:
            return
        os.makedirs(self.path, mode=0o755, exist_ok=True)
        if not is_mountpoint(self.path):
            _mount(self.path, self.path, MS_BIND | MS_REC)
        _mount("none", self.path, MS_SHARED | MS_REC)
        self._ready = True

    async def create(self, cid: str) -> str:
        """A new namespace with loopback up, mounted at ``path_of(cid)`` (replacing a stale one)."""
        self._prepare()
        target = self.path_of(cid)
        self.remove(cid)
        fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def work() -> None:
            try:
                _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
                _mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", target, MS_BIND)
                _loopback_up()
            except BaseException as e:
                loop.call_soon_threadsafe(_settle, done, e)
            else:
                loop.call_soon_threadsafe(_settle, done, None)

        threading.Thread(target=work, name="netns", daemon=True).start()
        try:
            await asyncio.shield(done)
        except BaseException:
            await _wait(done)
            self.remove(cid)
            raise
        return target

    def remove(self, cid: str) -> None:
        """Unmount and delete; absent counts as removed."""
        target = self.path_of(cid)
        try:
            _umount(target)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
        try:
            os.unlink(target)
        except FileNotFoundError:
            pass

    def names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []

    def close(self) -> None:
        """Unmount the directory itself once no namespace is left in it (daemon stop)."""
        if os.path.isdir(self.path) and not self.names() and is_mountpoint(self.path):
            try:
                _umount(self.path)
            except OSError:
                pass
            self._ready = False


def _loopback_up() -> None:
    _set_up(b"lo", True)


def link_down(name: str) -> None:
    """Take an interface of the calling thread's namespace down; absent counts as down."""
    try:
        _set_up(os.fsencode(name), False)
    except OSError as e:
        if e.errno != errno.ENODEV:
            raise


def _set_up(name: bytes, up: bool) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        req = struct.pack("16sH14x", name, 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        flags = flags | IFF_UP if up else flags & ~IFF_UP
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", name, flags))


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


async def _wait(fut: asyncio.Future[None]) -> None:
    try:
        await fut
    except BaseException:
        pass
