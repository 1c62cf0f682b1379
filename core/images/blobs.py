"""Content-addressed blobs on disk: ``<root>/blobs/sha256/<hex>``, each verified before it lands.

A blob is written to a temporary file while its sha256 is computed; only a
blob whose digest (and size, when known) matches is renamed into place, so
the store never holds a blob that is not what its name says. A crash leaves
at most a temporary file, which ``collect()`` removes at the next start.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator

from ..errors import DigestMismatch, InvalidImage, Unsupported
from .reference import HEX64


def check_digest(digest: object, what: str = "digest") -> str:
    """A ``sha256:<64 hex>`` digest, or a named error: digests become file names."""
    if isinstance(digest, str) and digest.startswith("sha256:") and HEX64.match(digest[7:]):
        return digest
    text = str(digest)[:120]
    if isinstance(digest, str) and ":" in digest and not digest.startswith("sha256:"):
        raise Unsupported(f"{what} {text!r}: only sha256 digests are supported", feature="digest")
    raise InvalidImage(f"invalid {what} {text!r}", digest=text)


class BlobWriter:
    """Receives a blob's bytes; ``commit()`` checks them and moves the file into the store."""

    def __init__(self, store: BlobStore, expected: str | None, size: int | None, what: str) -> None:
        self._store = store
        self.expected = expected
        self.size_limit = size
        self.what = what
        self.path = store.temp_path("blob")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._sha = hashlib.sha256()
        self.written = 0
        self.digest = ""

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.size_limit is not None and self.written > self.size_limit:
            raise DigestMismatch(f"{self.what}: more than the {self.size_limit} bytes its descriptor "
                                 "announced", expected=self.expected or "", actual="")
        self._sha.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def commit(self) -> str:
        """Verify and move into place; returns the digest. The writer is closed either way."""
        os.close(self._fd)
        self._fd = -1
        self.digest = "sha256:" + self._sha.hexdigest()
        try:
            if self.expected is not None and self.digest != self.expected:
                raise DigestMismatch(f"{self.what}: content has digest {self.digest}, expected "
                                     f"{self.expected}", expected=self.expected, actual=self.digest)
            if self.size_limit is not None and self.written != self.size_limit:
                raise DigestMismatch(f"{self.what}: {self.written} bytes, its descriptor says "
                                     f"{self.size_limit}", expected=self.expected or "", actual=self.digest)
            os.rename(self.path, self._store.path(self.digest))
        except BaseException:
            self.abort()
            raise
        return self.digest

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class BlobStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = os.path.join(root, "blobs", "sha256")
        self.tmp = os.path.join(root, "tmp")
        for d in (self.dir, self.tmp):
            os.makedirs(d, mode=0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, check_digest(digest)[7:])

    def has(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def temp_path(self, kind: str) -> str:
        return os.path.join(self.tmp, f"{kind}-{secrets.token_hex(8)}")

    def writer(self, expected: str | None = None, size: int | None = None,
               what: str = "blob") -> BlobWriter:
        if expected is not None:
            check_digest(expected)
        return BlobWriter(self, expected, size, what)

    def put(self, data: bytes, expected: str | None = None, what: str = "blob") -> str:
        w = self.writer(expected, None, what)
        try:
            w.write(data)
        except BaseException:
            w.abort()
            raise
        return w.commit()

    def read(self, digest: str, limit: int = 4 << 20) -> bytes:
        with open(self.path(digest), "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidImage(f"blob {digest} is over the {limit}-byte limit for JSON", digest=digest)
        return data

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def all(self) -> Iterator[str]:
        for name in os.listdir(self.dir):
            if HEX64.match(name):
                yield "sha256:" + name

    def collect_temp(self) -> None:
        """Temporary files of transfers a crash cut short."""
        import shutil

        for name in os.listdir(self.tmp):
            path = os.path.join(self.tmp, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
