"""Artifacts: small named files stored with a container (podman's AddArtifact, GetArtifact,
RemoveArtifact), in ``<container data dir>/artifacts``: they go when the container does.

Names are checked before they become file names; a write lands whole or not at all
(a temporary file renamed into place); sizes and counts have limits, so a client cannot
fill the daemon's disk through them.
"""

from __future__ import annotations

import os

from ..errors import InvalidArtifact, NoSuchArtifact

NAME_MAX = 128
SIZE_MAX = 1 << 20  # bytes per artifact
COUNT_MAX = 64  # artifacts per container
_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_CHARS = _FIRST | frozenset("_.-")
DIR = "artifacts"


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or name[0] not in _FIRST \
            or not set(name) <= _CHARS:
        raise InvalidArtifact(f"invalid artifact name {str(name)[:80]!r}: names are 1-{NAME_MAX} characters "
                              "of [a-zA-Z0-9_.-] and start with a letter or digit", name=str(name)[:NAME_MAX])
    return name


class Artifacts:
    def __init__(self, data_dir: str) -> None:
        self.dir = os.path.join(data_dir, DIR)

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.dir) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def list(self) -> list[tuple[str, int]]:
        out = []
        for name in self.names():
            try:
                out.append((name, os.stat(os.path.join(self.dir, name)).st_size))
            except FileNotFoundError:
                continue
        return out

    def add(self, name: str, data: bytes) -> None:
        check_name(name)
        if len(data) > SIZE_MAX:
            raise InvalidArtifact(f"artifact {name} is {len(data)} bytes, over the limit of {SIZE_MAX}",
                                  name=name)
        existing = self.names()
        if name not in existing and len(existing) >= COUNT_MAX:
            raise InvalidArtifact(f"the container has {COUNT_MAX} artifacts already, the most it may have",
                                  name=name)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.dir, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(self.dir, name))

    def get(self, name: str) -> bytes:
        check_name(name)
        try:
            fd = os.open(os.path.join(self.dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NoSuchArtifact(f"the container has no artifact {name}", name=name) from None
        try:
            return os.read(fd, SIZE_MAX + 1)[:SIZE_MAX]
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        check_name(name)
        try:
            os.unlink(os.path.join(self.dir, name))
        except FileNotFoundError:
            raise NoSuchArtifact(f"the container has no artifact {name}", name=name) from None
