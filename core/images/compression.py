"""Layer streams: compression told by magic bytes, decompressed as read, digests on the way.

Media types say what a layer should be, but archives (docker-archive above all)
carry layers compressed or not whatever their names say; containers/image goes
by the bytes, and so does this module.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from ..errors import InvalidArchive

GZIP, ZSTD, XZ, BZIP2, NONE = "gzip", "zstd", "xz", "bzip2", ""
_MAGIC = ((b"\x1f\x8b", GZIP), (b"\x28\xb5\x2f\xfd", ZSTD), (b"\xfd7zXZ\x00", XZ), (b"BZh", BZIP2))


def detect(head: bytes) -> str:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return NONE


class _Peeked:
    """A file object whose first bytes were read to detect compression, given back."""

    def __init__(self, f: BinaryIO, head: bytes) -> None:
        self._f = f
        self._head = head

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                out, self._head = self._head + self._f.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._f.read(n)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # for BufferedReader users (gzip, bz2)
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        pass


class Decompressed:
    """``read(n)`` of the uncompressed stream of ``f``; ``kind`` is what was detected."""

    def __init__(self, f: BinaryIO, what: str = "layer") -> None:
        head = f.read(6)
        self.kind = detect(head)
        self.what = what
        src = _Peeked(f, head)
        if self.kind == GZIP:
            import gzip

            self._stream = gzip.GzipFile(fileobj=src, mode="rb")
        elif self.kind == ZSTD:
            import zstandard

            self._stream = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True,
                                                                      closefd=False)
        elif self.kind == XZ:
            import lzma

            self._stream = lzma.LZMAFile(src)  # noqa: SIM115 (closed with the blob file)
        elif self.kind == BZIP2:
            import bz2

            self._stream = bz2.BZ2File(src)
        else:
            self._stream = src

    def read(self, n: int) -> bytes:
        try:
            return self._stream.read(n)
        except Exception as e:  # zlib.error, gzip's OSError, EOFError, zstandard.ZstdError...
            raise InvalidArchive(f"{self.what}: corrupt {self.kind or 'tar'} data: {e}",
                                 entry=self.what) from None


class Hashing:
    """Wraps ``read(n)``: a sha256 and a byte count of everything read through it."""

    def __init__(self, read) -> None:
        self._read = read
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int) -> bytes:
        data = self._read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()
