"""Paths inside a container, resolved as if its root were ``/`` (as ``docker cp`` does).

The walk holds a directory fd per component and opens the next one relative to it
with ``O_PATH|O_NOFOLLOW``; a symlink is read from the fd just opened and its target
walked from the container's root (absolute) or the directory it sits in; ``..`` pops
the walk's own stack and never passes the root. Nothing is ever looked up by a host
path string below the root, so a process in a running container that swaps a
directory for a symlink mid-walk gets at most a different file of its own container,
never one outside it.

Which root: a container whose process lives is walked from ``/proc/PID/root``, which
the kernel resolves in the container's mount namespace: its volumes, bind mounts,
tmpfs and /etc/hosts are there as it sees them. A stopped container is walked from
its rootfs, and where the walk reaches a volume's or bind mount's destination it steps
into that host directory (podman's resolvePath); a tmpfs of a stopped container has no
content, so there the rootfs underneath is what is found.
"""

from __future__ import annotations

import os
import stat

from ..errors import InvalidParameter, NoSuchPath

_WALK = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
MAX_LINKS = 40
PATH_MAX = 4096


class Root:
    """A container's tree to resolve paths in: a root directory fd (owned), and for a stopped
    container its mounts, destination -> (host directory, writable)."""

    def __init__(self, root_fd: int, mounts: dict[str, tuple[str, bool]] | None = None,
                 read_only: bool = False) -> None:
        self.fd = root_fd
        self.mounts = mounts or {}
        self.read_only = read_only

    @classmethod
    def open(cls, path: str, mounts: dict[str, tuple[str, bool]] | None = None,
             read_only: bool = False) -> Root:
        return cls(os.open(path, _DIR), mounts, read_only)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Resolved:
    """Where a path led: the object (``fd``, when it exists) and the directory it is in."""

    def __init__(self, path: str, names: list[str], fds: list[int], ro: list[bool],
                 exists: bool) -> None:
        self.path = path  # canonical, inside the container ("/" for the root)
        self._fds = fds  # a directory fd per level, the object's last when it exists
        self.exists = exists
        self.name = names[-1] if names else ""
        self.read_only = ro[-1]
        self.st = os.fstat(fds[-1]) if exists else None

    @property
    def fd(self) -> int:
        if not self.exists:
            raise NoSuchPath(f"{self.path} does not exist", path=self.path)
        return self._fds[-1]

    @property
    def parent_fd(self) -> int:
        """The directory the object is (or would be) in; for the root, the root itself."""
        if not self.exists:
            return self._fds[-1]
        return self._fds[-2] if len(self._fds) > 1 else self._fds[0]

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def check_path(path: object) -> str:
    if not isinstance(path, str) or "\0" in path or len(path.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise InvalidParameter(f"invalid path {str(path)[:100]!r}", parameter="path")
    return path


def resolve(root: Root, path: str, *, follow: bool = True) -> Resolved:
    """Walk ``path`` from ``root``; the last component is followed when it is a symlink
    (``follow``). A missing last component gives an unresolved ``Resolved`` (its parent
    exists); a missing directory on the way is ``NoSuchPath``."""
    check_path(path)
    names: list[str] = []
    fds = [os.dup(root.fd)]
    ro = [root.read_only]
    parts = split(path)
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == "..":
                if names:
                    names.pop()
                    os.close(fds.pop())
                    ro.pop()
                continue
            canonical = "/" + "/".join([*names, part])
            mount = root.mounts.get(canonical)
            if mount is not None and os.path.exists(mount[0]):
                # A host path the user (a bind) or the daemon (a volume) chose: taken as it is.
                fd = os.open(mount[0], os.O_PATH | os.O_CLOEXEC)
                if parts and not stat.S_ISDIR(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise NoSuchPath(f"{canonical} is not a directory (resolving {path[:200]})",
                                     path=path[:PATH_MAX])
                fds.append(fd)
                names.append(part)
                ro.append(not mount[1])
                continue
            try:
                fd = os.open(part, _WALK, dir_fd=fds[-1])
            except FileNotFoundError:
                if parts:
                    raise NoSuchPath(f"{canonical} does not exist (resolving {path[:200]})",
                                     path=path[:PATH_MAX]) from None
                names.append(part)
                return Resolved(canonical, names, fds, ro, exists=False)
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (parts or follow):
                links += 1
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                if links > MAX_LINKS:
                    raise NoSuchPath(f"too many levels of symbolic links resolving {path[:200]}",
                                     path=path[:PATH_MAX])
                if target.startswith("/"):
                    while names:
                        names.pop()
                        os.close(fds.pop())
                        ro.pop()
                parts = split(target) + parts
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise NoSuchPath(f"{canonical} is not a directory (resolving {path[:200]})",
                                 path=path[:PATH_MAX])
            fds.append(fd)
            names.append(part)
            ro.append(ro[-1])
        return Resolved("/" + "/".join(names), names, fds, ro, exists=True)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def reopen_dir(fd: int) -> int:
    """A readable fd (listing, fchown, utimes) of the directory an O_PATH fd names."""
    return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
