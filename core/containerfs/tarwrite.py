"""Trees out as a tar stream, written straight into a file descriptor (a client's file or pipe).

Walked one directory fd at a time, never following a symlink and never looking up a
host path below the starting directory (as ``paths.py`` resolves), so a process
swapping directories for symlinks in a running container cannot make the walk leave
it. File data goes out with ``sendfile`` (page cache to the client's fd, no copy
through Python); nothing is staged in memory or on disk.

Entries keep what the filesystem says: owners (numeric), modes, mtimes (whole
seconds), xattrs (but overlayfs' own and SELinux labels), hard links (the second
name is a link entry), symlinks, devices and fifos; sockets are skipped, as tar does.
A file that shrinks while it is read is padded with zeros to the size its header
announced (a tar entry's size is fixed once written); one that grows is cut there.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from collections.abc import Callable, Iterator

from ..errors import InvalidParameter, StreamBroken, StreamClosed, Unsupported
from .clientfd import ClientFd

log = logging.getLogger("varpod.containerfs")

BLOCK = 512
CHUNK = 1 << 20
MAX_DEPTH = 512
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_SKIP_XATTRS = ("trusted.overlay.", "security.selinux")
_KINDS = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE, stat.S_IFIFO: tarfile.FIFOTYPE}


class TarWriter:
    """Writes entries to ``out`` (the client's fd, as its transfer thread holds it), or hands
    the bytes to ``sink`` (a blob being hashed); ``close()`` writes the end marker."""

    def __init__(self, out: ClientFd | None = None, sink: Callable[[bytes], object] | None = None) -> None:
        self._out = out
        self._sink = sink
        self.bytes = 0
        self.entries = 0
        self._links: dict[tuple[int, int], str] = {}  # (dev, ino) -> the first name written
        self._sendfile = sink is None

    def _write(self, data: bytes | memoryview) -> None:
        if self._sink is not None:
            self._sink(bytes(data))
            self.bytes += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                n = self._out.write(view)
            except (StreamBroken, StreamClosed):
                raise
            except OSError as e:
                raise _not_writable(e) from None
            view = view[n:]
            self.bytes += n

    def header(self, name: str, st: os.stat_result, *, kind: bytes, size: int = 0, linkname: str = "",
               xattrs: dict[str, bytes] | None = None) -> None:
        if self._out is not None:
            self._out.check()  # a cancel is seen between entries too
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        info.size = size
        info.linkname = linkname
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if xattrs:
            info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self.entries += 1

    def data(self, src: int, size: int) -> None:
        """``size`` bytes of ``src`` from its start, padded to the block."""
        sent = 0
        if self._sendfile:
            try:
                while sent < size:
                    n = self._out.sendfile(src, sent, min(size - sent, CHUNK))
                    if n == 0:
                        break
                    sent += n
                    self.bytes += n
            except OSError as e:
                if e.errno == errno.EBADF:
                    raise _not_writable(e) from None
                if e.errno not in (errno.EINVAL, errno.ENOSYS) or sent:
                    raise
                self._sendfile = False  # this fd does not take it: plain writes from now on
        while sent < size:
            chunk = os.pread(src, min(CHUNK, size - sent), sent)
            if not chunk:
                break
            self._write(chunk)
            sent += len(chunk)
        left = size - sent
        if left:
            log.warning("a file shrank while it was copied: padded with %d zero bytes", left)
        while left:
            n = min(left, CHUNK)
            self._write(bytes(n))
            left -= n
        pad = -size % BLOCK
        if pad:
            self._write(bytes(pad))

    def close(self) -> None:
        self._write(bytes(2 * BLOCK))

    # -- one entry of a directory --------------------------------------------------------------

    def add(self, parent: int, name: str, arcname: str, st: os.stat_result | None = None,
            dir_fd_out: list[int] | None = None) -> os.stat_result | None:
        """Write ``name`` (in directory fd ``parent``) as ``arcname``. For a directory, its
        readable fd is appended to ``dir_fd_out`` (the caller lists and closes it). Returns
        the entry's stat, or None when it is skipped (a socket, or gone)."""
        try:
            if st is None:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                fd = os.open(name, _OPEN_DIR, dir_fd=parent)
                st = os.fstat(fd)
                self.header(arcname, st, kind=tarfile.DIRTYPE, xattrs=_xattrs(fd))
                if dir_fd_out is not None:
                    dir_fd_out.append(fd)
                else:
                    os.close(fd)
                return st
            if stat.S_ISREG(mode):
                return self._file(parent, name, arcname)
            if stat.S_ISLNK(mode):
                self.header(arcname, st, kind=tarfile.SYMTYPE, linkname=os.readlink(name, dir_fd=parent))
                return st
            kind = _KINDS.get(stat.S_IFMT(mode))
            if kind is None:
                return None  # a socket: tar skips them too
            self.header(arcname, st, kind=kind)
            return st
        except (FileNotFoundError, NotADirectoryError):
            return None  # removed (or replaced) while we walked: as tar, go on without it
        except OSError as e:
            if e.errno == errno.ELOOP:  # turned into a symlink under us: not followed
                return None
            raise

    def _file(self, parent: int, name: str, arcname: str) -> os.stat_result | None:
        fd = os.open(name, _OPEN_FILE, dir_fd=parent)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None  # swapped for something else under us
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self._links.get(key)
                if first is not None:
                    self.header(arcname, st, kind=tarfile.LNKTYPE, linkname=first)
                    return st
                self._links[key] = arcname
            self.header(arcname, st, kind=tarfile.REGTYPE, size=st.st_size, xattrs=_xattrs(fd))
            self.data(fd, st.st_size)
            return st
        finally:
            os.close(fd)


def _not_writable(e: OSError) -> Exception:
    if e.errno in (errno.EBADF, errno.EINVAL, errno.EISDIR):  # the client's fd takes no writes
        return InvalidParameter(f"the file descriptor given for the tar cannot be written: {e.strerror}",
                                parameter="fd")
    return e


def _xattrs(fd: int) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    out = {}
    for key in names:
        if key.startswith(_SKIP_XATTRS):
            continue
        try:
            out[key] = os.getxattr(fd, key)
        except OSError:
            continue
    return out


class Walk:
    """A directory tree into a TarWriter, depth first, names sorted.

    ``enter(canonical)`` may give the fd of a host directory to descend into instead of
    the one found (a stopped container's volume); ``descend(st)`` False writes a
    directory's entry but not its content (a running container's /proc).
    """

    def __init__(self, writer: TarWriter, *, enter: Callable[[str], int | None] | None = None,
                 descend: Callable[[os.stat_result], bool] | None = None) -> None:
        self.writer = writer
        self._enter = enter
        self._descend = descend

    def tree(self, dir_fd: int, arcname: str, canonical: str, *, include_top: bool) -> None:
        """The directory ``dir_fd`` (readable; not closed) as ``arcname`` (its children as
        ``arcname/child``, or as ``child`` when ``arcname`` is "")."""
        if include_top:
            st = os.fstat(dir_fd)
            self.writer.header(arcname, st, kind=tarfile.DIRTYPE, xattrs=_xattrs(dir_fd))
        stack: list[tuple[int, Iterator[str], str, str, bool]] = [
            (dir_fd, iter(_names(dir_fd)), arcname, canonical, False)]
        try:
            while stack:
                fd, names, arc, canon, owned = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if owned:
                        os.close(fd)
                    continue
                child_arc = f"{arc}/{name}" if arc else name
                child_canon = canon.rstrip("/") + "/" + name
                opened: list[int] = []
                st = self.writer.add(fd, name, child_arc, dir_fd_out=opened)
                if not opened:
                    continue
                child = opened[0]
                if self._enter is not None:
                    other = self._enter(child_canon)
                    if other is not None:
                        os.close(child)
                        child = other
                if (self._descend is not None and st is not None and not self._descend(st)):
                    os.close(child)
                    continue
                if len(stack) >= MAX_DEPTH:
                    os.close(child)
                    raise Unsupported(f"{child_canon[:200]}...: directories nested more than {MAX_DEPTH} "
                                      "deep are not copied", feature="depth")
                stack.append((child, iter(_names(child)), child_arc, child_canon, True))
        finally:
            for fd, _, _, _, owned in stack:
                if owned:
                    os.close(fd)


def _names(fd: int) -> list[str]:
    with os.scandir(fd) as it:
        return sorted(e.name for e in it)
