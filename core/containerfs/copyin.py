"""A tar stream into a container's directory: ``cp`` in, with the image layer unpacker's
safety (core/images/layers.py) and podman's copy rules.

What the unpacker refuses stays refused: absolute names, ``..``, an entry under a
symlink (made by the archive or already in the container), hard links out of the
archive, overlay-private xattrs, oversized headers. On top of it: ``.wh.`` names are
plain files (a copy is not a layer), the archive's top directory may be renamed (``cp
src ctr:/new``) or dropped (``cp src/. ctr:/dir``), every entry may be given the
container user's owner (``--archive``, podman's default), and a directory replacing a
non-directory (or the reverse) is refused unless ``overwrite``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from ..errors import InvalidCopy, InvalidParameter, ReadOnlyPath
from ..images.compression import Decompressed
from ..images.layers import Unpacker
from ..images.tarstream import HARDLINK, TarEntry, TarReader


class CopyIn(Unpacker):
    whiteouts = False

    def __init__(self, dest_fd: int, what: str, *, rename: tuple[str, str] | None = None,
                 owner: tuple[int, int] | None = None, overwrite: bool = False, where: str = "") -> None:
        super().__init__(dest_fd, what, None)
        # (the archive's top entry, its name here): "" drops the top and keeps what is in it;
        # a top of "." is an archive of a directory's entries (tar -C dir .), put under the name.
        self.rename = rename
        self.owner = owner
        self.overwrite = overwrite
        self.where = where  # the destination, for messages

    def _renamed(self, name: str) -> str | None:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if self.rename is not None:
            top, new = self.rename
            if top == ".":
                parts = ([new] if new else []) + parts
            elif parts and parts[0] == top:
                parts = ([new] if new else []) + parts[1:]
        return "/".join(parts) if parts else None

    def _entry(self, e: TarEntry, reader: TarReader) -> None:
        if not e.name.startswith("/"):  # an absolute name is refused below, as it is
            name = self._renamed(e.name)
            if name is None:
                return  # the archive's root (or the top dropped): the destination keeps its own
            e.name = name
            if e.type == HARDLINK and not e.linkname.startswith("/"):
                e.linkname = self._renamed(e.linkname) or e.linkname
        try:
            super()._entry(e, reader)
        except OSError as err:
            if err.errno == errno.EROFS:
                raise ReadOnlyPath(f"{self.where or 'the destination'} is on a read-only file system",
                                   path=self.where) from None
            raise

    def _clear(self, parent: int, name: str, keep_dir: bool) -> bool:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir != keep_dir and not self.overwrite:
            what = ("directory", "non-directory") if is_dir else ("non-directory", "directory")
            raise InvalidCopy(f"cannot overwrite {what[0]} {name!r} with {what[1]} (use overwrite)",
                              path=name)
        return super()._clear(parent, name, keep_dir)


def copy_in(src: BinaryIO, dest_fd: int, **kw: object) -> int:
    """Unpack the (plain or compressed) tar ``src`` into the directory ``dest_fd``; entries done."""
    try:
        reader = TarReader(Decompressed(src, "the copied archive").read)
        with CopyIn(dest_fd, "the copied archive", **kw) as unpacker:
            count = unpacker.run(reader)
        reader.drain()
    except OSError as e:
        if e.errno in (errno.EBADF, errno.EINVAL, errno.EISDIR):  # the client's fd, not a readable stream
            raise InvalidParameter(f"the file descriptor given for the archive cannot be read: "
                                   f"{e.strerror}", parameter="fd") from None
        raise
    return count
