"""What a container changed, read from its overlay's upper directory: ``diff`` and the layer
``commit`` makes of it.

In the upper directory, overlayfs writes a deleted path as a 0/0 character device (a
whiteout) and a directory that replaced a lower one as ``trusted.overlay.opaque=y``;
everything else there is new or changed. Whether a path existed below is asked of the
image's layers (top first), walked one directory fd at a time without following
symlinks: a whiteout or a non-directory on the way, or an opaque directory above,
hides what is further down.

diff reports, as podman diff does, ``A`` (added) for paths only the container has, ``C``
for paths that existed below (directories on the way to a change included), ``D`` for
whiteouts. An opaque directory is ``C`` and the lower entries it hides are ``D`` each
(podman reports the directory as deleted and its new content as added).

commit writes the upper directory as an OCI layer: whiteouts become ``.wh.NAME``, an
opaque directory gets ``.wh..wh..opq``; file data is read through the merged mount
when overlayfs kept only metadata in the upper directory (metacopy).
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator

from ..errors import Unsupported
from .tarwrite import MAX_DEPTH, TarWriter

OPAQUE_XATTR = "trusted.overlay.opaque"
REDIRECT_XATTR = "trusted.overlay.redirect"
METACOPY_XATTR = "trusted.overlay.metacopy"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _xattr(fd: int, key: str) -> bytes | None:
    try:
        return os.getxattr(fd, key)
    except OSError:
        return None


def _opaque(fd: int) -> bool:
    # A redirected directory (redirect_dir=on) is taken whole, as an opaque one.
    return _xattr(fd, OPAQUE_XATTR) == b"y" or _xattr(fd, REDIRECT_XATTR) is not None


class Lower:
    """The image's layers below a container, top first, as overlayfs stacks them."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers

    def _in_layer(self, layer: str, parts: list[str]) -> tuple[str, bool]:
        """("present" | "deleted" | "absent", does this layer hide the ones below)."""
        fd = os.open(layer, _DIR)
        hides = False
        try:
            for i, part in enumerate(parts):
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return "absent", hides
                if is_whiteout(st):
                    return "deleted", True
                if i == len(parts) - 1:
                    return "present", True
                if not stat.S_ISDIR(st.st_mode):
                    return "deleted", True  # a file where a directory was: nothing under it
                child = os.open(part, _DIR, dir_fd=fd)
                os.close(fd)
                fd = child
                hides = hides or _opaque(fd)
            return "present", True
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return True
        for layer in self.layers:
            found, hides = self._in_layer(layer, parts)
            if found == "present":
                return True
            if found == "deleted" or hides:
                return False
        return False

    def children(self, path: str) -> set[str]:
        names: set[str] = set()
        for layer in self.layers:
            try:
                fd = os.open(os.path.join(layer, path.lstrip("/")) or layer, _DIR)
            except OSError:
                continue
            try:
                names.update(os.listdir(fd))
            finally:
                os.close(fd)
        base = path.rstrip("/")
        return {n for n in names if self.exists(f"{base}/{n}")}


def _walk(upper: str) -> Iterator[tuple[int, str, str, os.stat_result]]:
    """(directory fd, name, path in the container, lstat) of every entry of ``upper``, parents
    first, names sorted. A directory's fd is readable while its children are yielded."""
    root = os.open(upper, _DIR)
    stack: list[tuple[int, Iterator[str], str]] = [(root, iter(sorted(os.listdir(root))), "")]
    try:
        while stack:
            fd, names, base = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            path = f"{base}/{name}"
            yield fd, name, path, st
            if stat.S_ISDIR(st.st_mode):
                if len(stack) >= MAX_DEPTH:
                    raise Unsupported(f"{path[:200]}...: directories nested more than {MAX_DEPTH} deep",
                                      feature="depth")
                child = os.open(name, _DIR, dir_fd=fd)
                stack.append((child, iter(sorted(os.listdir(child))), path))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def diff(upper: str, lowers: list[str]) -> list[tuple[str, str]]:
    """[(kind, path)] of the container's changes, sorted by path."""
    lower = Lower(lowers)
    out: list[tuple[str, str]] = []
    for fd, name, path, st in _walk(upper):
        if is_whiteout(st):
            out.append(("D", path))
            continue
        below = lower.exists(path)
        out.append(("C" if below else "A", path))
        if below and stat.S_ISDIR(st.st_mode):
            dfd = os.open(name, _DIR, dir_fd=fd)
            try:
                if _opaque(dfd):
                    mine = set(os.listdir(dfd))
                    out += [("D", f"{path}/{n}") for n in lower.children(path) if n not in mine]
            finally:
                os.close(dfd)
    out.sort(key=lambda change: change[1])
    return out


def write_layer(writer: TarWriter, upper: str, merged: str) -> None:
    """The upper directory as an OCI layer tar (names without a leading ``/``)."""
    merged_fd = os.open(merged, _DIR)
    try:
        for fd, name, path, st in _walk(upper):
            arc = path[1:]
            if is_whiteout(st):
                head, _, base = arc.rpartition("/")
                writer.header(f"{head}/.wh.{base}" if head else f".wh.{base}", st, kind=tarfile.REGTYPE)
                continue
            if stat.S_ISREG(st.st_mode) and _metacopy(fd, name):
                writer.add(merged_fd, arc, arc)  # the data lives below: read it through the mount
                continue
            writer.add(fd, name, arc, st)
            if stat.S_ISDIR(st.st_mode):
                dfd = os.open(name, _DIR, dir_fd=fd)
                try:
                    if _opaque(dfd):
                        writer.header(f"{arc}/.wh..wh..opq", os.fstat(dfd), kind=tarfile.REGTYPE)
                finally:
                    os.close(dfd)
    finally:
        os.close(merged_fd)
    writer.close()


def _metacopy(dir_fd: int, name: str) -> bool:
    try:
        return METACOPY_XATTR in os.listxattr(f"/proc/self/fd/{dir_fd}/{name}", follow_symlinks=False)
    except OSError:
        return False
