"""Unpacking one layer into a directory in overlayfs form.

A layer tar's whiteouts become what overlayfs reads: ``.wh.NAME`` a 0/0
character device ``NAME``, ``.wh..wh..opq`` the ``trusted.overlay.opaque=y``
xattr on its directory. Everything else keeps what the tar says: owners,
modes (setuid too), mtimes, xattrs (``security.capability`` is set after the
chown that would clear it), hard links, symlinks, devices and fifos.

Every path is walked from the layer's root one directory fd at a time with
``O_NOFOLLOW``, so no entry can reach outside the layer: absolute names and
``..`` are refused outright, and an entry whose parent is a symlink (made
earlier in the same archive) is refused rather than followed. The caller
unpacks into a fresh directory and deletes it on any error: a refused layer
leaves nothing behind.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import threading
from typing import BinaryIO

from ..errors import InvalidArchive
from .compression import Decompressed, Hashing
from .tarstream import (
    BLOCKDEV,
    CHAR,
    DIRECTORY,
    FIFO,
    HARDLINK,
    PATH_MAX,
    REGULAR,
    SYMLINK,
    TarEntry,
    TarReader,
)

log = logging.getLogger("varpod.images")

OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_META_PREFIX = ".wh..wh."  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): skipped, as docker does
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CACHE_MAX = 256


class Unpacked:
    """What unpacking a layer found: its uncompressed digest and size, and how it was compressed."""

    __slots__ = ("compression", "diff_id", "entries", "size")

    def __init__(self, diff_id: str, size: int, compression: str, entries: int) -> None:
        self.diff_id = diff_id
        self.size = size
        self.compression = compression
        self.entries = entries


def unpack_layer(f: BinaryIO, dest: str, *, what: str = "layer",
                 cancel: threading.Event | None = None) -> Unpacked:
    """Unpack the (compressed or plain) tar ``f`` into the empty directory ``dest``.

    The caller compares ``diff_id`` with the image config's and removes ``dest`` on failure.
    """
    stream = Decompressed(f, what)
    hashing = Hashing(stream.read)
    reader = TarReader(hashing.read)
    with Unpacker(dest, what, cancel) as unpacker:
        count = unpacker.run(reader)
    reader.drain()
    return Unpacked(hashing.digest, hashing.size, stream.kind, count)


class Unpacker:
    """Writes a tar's entries under ``root`` (a path, or a directory fd, which is dup'ed).

    ``whiteouts`` False: ``.wh.`` names are ordinary files (a copy, not a layer).
    ``owner``: every entry gets this (uid, gid) instead of the tar's.
    """

    whiteouts = True
    owner: tuple[int, int] | None = None

    def __init__(self, root: str | int, what: str, cancel: threading.Event | None) -> None:
        self.what = what
        self.cancel = cancel
        self.root_fd = os.open(root, _DIR_FLAGS) if isinstance(root, str) else os.dup(root)
        self._dirs: dict[tuple[str, ...], int] = {}  # open directory fds by path, below the root
        self._dir_times: list[tuple[tuple[str, ...], int]] = []

    def __enter__(self) -> Unpacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop_dirs()
        os.close(self.root_fd)

    def _refuse(self, entry: str, why: str) -> InvalidArchive:
        return InvalidArchive(f"{self.what}: entry {entry[:200]!r} {why}", entry=entry[:PATH_MAX])

    # -- paths ---------------------------------------------------------------------

    def _parts(self, name: str, entry: str) -> tuple[str, ...]:
        if name.startswith("/"):
            raise self._refuse(entry, "has an absolute path")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise self._refuse(entry, "has '..' in its path")
        if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
            raise self._refuse(entry, "has a path component longer than 255 bytes")
        return parts

    def _dir(self, parts: tuple[str, ...], entry: str, create: bool = True) -> int:
        """An fd of the directory ``parts`` inside the layer, made (0755) where missing."""
        if not parts:
            return self.root_fd
        fd = self._dirs.get(parts)
        if fd is not None:
            return fd
        parent = self._dir(parts[:-1], entry, create)
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise self._refuse(entry, f"refers to {'/'.join(parts)!r}, which is not in this layer") \
                    from None
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._refuse(entry, f"goes through {'/'.join(parts)!r}, which is a symlink or "
                                          "not a directory") from None
            raise
        if len(self._dirs) >= _CACHE_MAX:
            self._drop_dirs()
        self._dirs[parts] = fd
        return fd

    def _drop_dirs(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def _clear(self, parent: int, name: str, keep_dir: bool) -> bool:
        """Make way for a new entry: True if a directory is there and stays."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            self._drop_dirs()  # fds below it would outlive their directories
            shutil.rmtree(name, dir_fd=parent)
            return False
        os.unlink(name, dir_fd=parent)
        return False

    # -- entries -------------------------------------------------------------------

    def run(self, reader: TarReader) -> int:
        count = 0
        for entry in reader:
            if self.cancel is not None and self.cancel.is_set():
                raise InvalidArchive(f"{self.what}: unpacking was cancelled", entry="")
            count += 1
            try:
                self._entry(entry, reader)
            except InvalidArchive:
                raise
            except OSError as e:
                raise self._refuse(entry.name, f"cannot be unpacked: {e.strerror or e}") from None
        for parts, mtime in reversed(self._dir_times):
            try:
                fd = self._dir(parts, "/".join(parts), create=False)
            except InvalidArchive:
                continue  # replaced by a later entry of the same name
            os.utime(fd, ns=(mtime, mtime))
        return count

    def _entry(self, e: TarEntry, reader: TarReader) -> None:
        parts = self._parts(e.name, e.name)
        if not parts:
            if e.type != DIRECTORY:
                raise self._refuse(e.name, "is the layer's root but not a directory")
            self._meta_fd(self.root_fd, e)
            self._dir_times.append(((), e.mtime_ns))
            return
        base = parts[-1]
        if base.startswith(WHITEOUT) and self.whiteouts:
            self._whiteout(e, parts)
            return
        parent = self._dir(parts[:-1], e.name)
        if e.type == DIRECTORY:
            if not self._clear(parent, base, keep_dir=True):
                os.mkdir(base, 0o700, dir_fd=parent)
            self._meta_fd(self._dir(parts, e.name), e)
            self._dir_times.append((parts, e.mtime_ns))
        elif e.type == REGULAR:
            self._clear(parent, base, keep_dir=False)
            self._file(parent, base, e, reader)
        elif e.type == HARDLINK:
            self._hardlink(parent, base, e)
        elif e.type == SYMLINK:
            if not e.linkname:
                raise self._refuse(e.name, "is a symlink to nothing")
            self._clear(parent, base, keep_dir=False)
            os.symlink(e.linkname, base, dir_fd=parent)
            self._meta_path(parent, base, e)
        elif e.type in (CHAR, BLOCKDEV, FIFO):
            self._clear(parent, base, keep_dir=False)
            kind = {CHAR: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}[e.type]
            os.mknod(base, kind | 0o600, os.makedev(e.devmajor, e.devminor), dir_fd=parent)
            self._meta_path(parent, base, e)

    def _whiteout(self, e: TarEntry, parts: tuple[str, ...]) -> None:
        base = parts[-1]
        if base == OPAQUE:
            fd = self._dir(parts[:-1], e.name)
            os.setxattr(fd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(_META_PREFIX):
            log.debug("%s: skipping aufs metadata %s", self.what, e.name)
            return
        hidden = base[len(WHITEOUT):]
        if hidden in ("", ".", ".."):
            raise self._refuse(e.name, "is a whiteout of nothing")
        parent = self._dir(parts[:-1], e.name)
        self._clear(parent, hidden, keep_dir=False)
        os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=parent)  # overlayfs' whiteout: a 0/0 char device
        os.chown(hidden, e.uid, e.gid, dir_fd=parent, follow_symlinks=False)

    def _file(self, parent: int, base: str, e: TarEntry, reader: TarReader) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent)
        try:
            for chunk in reader.chunks():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self._meta_fd(fd, e)
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
        finally:
            os.close(fd)

    def _hardlink(self, parent: int, base: str, e: TarEntry) -> None:
        target = self._parts(e.linkname, e.name)
        if not target:
            raise self._refuse(e.name, "is a hard link to the layer's root")
        tparent = self._dir(target[:-1], e.name, create=False)
        if target == tuple(p for p in e.name.split("/") if p not in ("", ".")):
            return  # a link to itself: tar writers emit these for files listed twice
        self._clear(parent, base, keep_dir=False)
        try:
            os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise self._refuse(e.name, f"is a hard link to {e.linkname[:200]!r}, which is not in this "
                                       "layer") from None
        except PermissionError:
            raise self._refuse(e.name, f"is a hard link to {e.linkname[:200]!r}, a directory") from None

    # -- metadata -----------------------------------------------------------------

    def _ids(self, e: TarEntry) -> tuple[int, int]:
        return self.owner if self.owner is not None else (e.uid, e.gid)

    def _meta_fd(self, fd: int, e: TarEntry) -> None:
        os.fchown(fd, *self._ids(e))
        os.fchmod(fd, e.mode)
        for key, value in e.xattrs.items():
            self._xattr(fd, key, value, e.name)

    def _meta_path(self, parent: int, base: str, e: TarEntry) -> None:
        os.chown(base, *self._ids(e), dir_fd=parent, follow_symlinks=False)
        if e.type != SYMLINK:  # a symlink's mode means nothing on Linux
            os.chmod(base, e.mode, dir_fd=parent)  # a node just made here: no symlink to follow
        if e.xattrs:
            # setxattr has no dir_fd form; the fd's /proc link names the same, already checked, dir.
            path = f"/proc/self/fd/{parent}/{base}"
            for key, value in e.xattrs.items():
                self._xattr(path, key, value, e.name)
        os.utime(base, ns=(e.mtime_ns, e.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _xattr(self, target: int | str, key: str, value: bytes, name: str) -> None:
        if key.startswith("trusted.overlay."):
            raise self._refuse(name, f"sets {key!r}, which only overlayfs itself may set")
        try:
            if isinstance(target, int):
                os.setxattr(target, key, value)
            else:
                os.setxattr(target, key, value, follow_symlinks=False)
        except OSError as err:
            # As containers/storage: a filesystem or namespace that does not take the xattr
            # (user.* on a symlink) is a warning, not a failed pull.
            if err.errno in (errno.ENOTSUP, errno.EPERM):
                log.warning("%s: xattr %s on %s not set: %s", self.what, key, name[:200], err.strerror)
                return
            raise
