"""A streaming tar reader that never trusts the archive.

``tarfile`` reads a pax header or a GNU long name whole into memory, however
large the archive says it is; image layers come from anywhere, so this reader
parses ustar, GNU and pax headers itself with limits on every header, hands
file contents out in chunks, and keeps xattrs as raw bytes. It reads from any
``read(n) -> bytes`` callable (a decompressor, a socket file), front to back.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

from ..errors import InvalidArchive

BLOCK = 512
CHUNK = 1 << 20
HEADER_MAX = 1 << 20  # a pax header or GNU long name larger than this is refused
PATH_MAX = 4096

REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = "0", "1", "2", "3", "4", "5", "6"
_REGULAR_TYPES = {"0", "\0", "7"}
_PAX_NUMERIC = ("uid", "gid", "size")


class TarEntry:
    """One member. ``name`` and ``linkname`` are as stored (str, surrogate-escaped bytes)."""

    __slots__ = ("devmajor", "devminor", "gid", "linkname", "mode", "mtime_ns", "name", "size",
                 "type", "uid", "xattrs")

    def __init__(self) -> None:
        self.name = ""
        self.linkname = ""
        self.type = REGULAR
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0
        self.mtime_ns = 0
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: dict[str, bytes] = {}

    @property
    def is_file(self) -> bool:
        return self.type == REGULAR

    def __repr__(self) -> str:
        return f"TarEntry({self.name!r}, type={self.type!r}, size={self.size})"


class TarReader:
    """``for entry in TarReader(read): ...``; a file's data comes from ``chunks()`` or is skipped."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buf = b""
        self._data_left = 0  # unread data bytes of the current entry
        self._pad = 0  # padding after them
        self.offset = 0  # bytes consumed from the stream
        self._global: dict[str, bytes] = {}
        self.ended = False

    # -- reading -----------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        """Up to ``n`` bytes: what is buffered, else one read."""
        if self._buf:
            out, self._buf = self._buf[:n], self._buf[n:]
        else:
            out = self._read(n)
        self.offset += len(out)
        return out

    def _exact(self, n: int, what: str) -> bytes:
        parts = []
        left = n
        while left:
            data = self._take(left)
            if not data:
                raise InvalidArchive(f"the archive ends in the middle of {what}", entry=what)
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def _skip(self, n: int, what: str) -> None:
        while n:
            data = self._take(min(n, CHUNK))
            if not data:
                raise InvalidArchive(f"the archive ends in the middle of {what}", entry=what)
            n -= len(data)

    def chunks(self) -> Iterator[bytes]:
        """The current entry's data, in pieces of at most CHUNK bytes."""
        while self._data_left:
            data = self._take(min(self._data_left, CHUNK))
            if not data:
                raise InvalidArchive("the archive ends in the middle of a file", entry="")
            self._data_left -= len(data)
            yield data
        if self._pad:
            self._skip(self._pad, "padding")
            self._pad = 0

    def _finish_entry(self, name: str) -> None:
        if self._data_left or self._pad:
            self._skip(self._data_left + self._pad, name)
            self._data_left = self._pad = 0

    def drain(self) -> int:
        """Read the stream to its end (what follows the end marker counts for its digest)."""
        total = 0
        while data := self._take(CHUNK):
            total += len(data)
        return total

    # -- headers -------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarEntry]:
        return self

    def __next__(self) -> TarEntry:
        if self.ended:
            raise StopIteration
        self._finish_entry("an entry")
        pax: dict[str, bytes] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            header = self._take_header()
            if header is None:
                self.ended = True
                raise StopIteration
            kind = chr(header[156])
            size = _number(header[124:136], "size")
            if kind in ("x", "g", "L", "K"):
                if size > HEADER_MAX:
                    raise InvalidArchive(f"a {_KIND_NAMES[kind]} of {size} bytes is over the "
                                         f"{HEADER_MAX}-byte limit", entry=_field(header[:100]))
                body = self._exact(size, _KIND_NAMES[kind])
                self._skip(-size % BLOCK, "padding")
                if kind == "x":
                    pax.update(_pax_records(body))
                elif kind == "g":
                    self._global.update(_pax_records(body))
                elif kind == "L":
                    long_name = _field(body)
                else:
                    long_link = _field(body)
                continue
            entry = self._entry(header, kind, size, {**self._global, **pax}, long_name, long_link)
            if not entry.is_file:
                # Links, devices, dirs and fifos have no data section whatever their size
                # field says (as Go's archive/tar and Python's tarfile read them).
                entry.size = 0
            self._data_left = entry.size
            self._pad = -entry.size % BLOCK
            return entry

    def _take_header(self) -> bytes | None:
        first = self._take(BLOCK)
        if not first:
            return None  # no end marker at all: accepted, as tar does
        header = first if len(first) == BLOCK else first + self._exact(BLOCK - len(first), "a header")
        if header == bytes(BLOCK):
            return None  # the end marker (its second block, and any padding, drain() reads)
        stored = _number(header[148:156], "checksum")
        blanked = header[:148] + b" " * 8 + header[156:]
        unsigned = sum(blanked)
        signed = sum(b - 256 if b > 127 else b for b in blanked)
        if stored not in (unsigned, signed):
            raise InvalidArchive(f"tar header checksum mismatch at byte {self.offset - BLOCK} "
                                 "(not a tar archive, or a corrupt one)", entry=_field(header[:100]))
        return header

    def _entry(self, h: bytes, kind: str, size: int, pax: dict[str, bytes],
               long_name: str | None, long_link: str | None) -> TarEntry:
        e = TarEntry()
        name = _field(h[0:100])
        if h[257:263] == b"ustar\0":  # POSIX ustar: a prefix field (GNU uses those bytes otherwise)
            prefix = _field(h[345:500])
            if prefix:
                name = prefix + "/" + name
        e.name = _text(pax["path"]) if "path" in pax else (long_name if long_name is not None else name)
        link = _field(h[157:257])
        e.linkname = _text(pax["linkpath"]) if "linkpath" in pax else (
            long_link if long_link is not None else link)
        if kind in _REGULAR_TYPES:
            kind = REGULAR
        elif kind not in (HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO):
            what = {"S": "GNU sparse file", "M": "multi-volume continuation", "V": "volume label",
                    "D": "GNU dump directory"}.get(kind, f"entry of type {kind!r}")
            raise InvalidArchive(f"{e.name[:200]!r} is a {what}, which varpod does not unpack",
                                 entry=e.name[:PATH_MAX])
        if any(k.startswith("GNU.sparse.") for k in pax):
            raise InvalidArchive(f"{e.name[:200]!r} is a sparse file, which varpod does not unpack",
                                 entry=e.name[:PATH_MAX])
        e.type = kind
        e.mode = _number(h[100:108], "mode") & 0o7777
        e.uid = _number(h[108:116], "uid")
        e.gid = _number(h[116:124], "gid")
        e.size = size
        e.mtime_ns = _number(h[136:148], "mtime") * 10**9
        e.devmajor = _number(h[329:337], "devmajor") if kind in (CHAR, BLOCKDEV) else 0
        e.devminor = _number(h[337:345], "devminor") if kind in (CHAR, BLOCKDEV) else 0
        for key in _PAX_NUMERIC:
            if key in pax:
                setattr(e, key, _pax_int(pax[key], key, e.name))
        if "mtime" in pax:
            e.mtime_ns = _pax_time(pax["mtime"], e.name)
        for key, value in pax.items():
            if key.startswith("SCHILY.xattr."):
                e.xattrs[key[13:]] = value
            elif key.startswith("LIBARCHIVE.xattr."):
                try:
                    e.xattrs[_unpercent(key[17:])] = base64.b64decode(value + b"=" * (-len(value) % 4))
                except ValueError:
                    raise InvalidArchive(f"bad xattr record {key[:100]!r} on {e.name[:200]!r}",
                                         entry=e.name[:PATH_MAX]) from None
        if len(e.name) > PATH_MAX or len(e.linkname) > PATH_MAX:
            raise InvalidArchive(f"entry name longer than {PATH_MAX} bytes: {e.name[:100]!r}...",
                                 entry=e.name[:PATH_MAX])
        if e.size < 0 or e.uid < 0 or e.gid < 0:
            raise InvalidArchive(f"negative size or owner on {e.name[:200]!r}", entry=e.name[:PATH_MAX])
        return e


_KIND_NAMES = {"x": "pax header", "g": "pax global header", "L": "GNU long name",
               "K": "GNU long link name"}


def _field(raw: bytes) -> str:
    end = raw.find(b"\0")
    return _text(raw if end < 0 else raw[:end])


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _number(raw: bytes, what: str) -> int:
    if raw and raw[0] & 0x80:  # base-256 (GNU): big-endian, 0xff first for negative numbers
        value = int.from_bytes(raw[1:], "big")
        if raw[0] == 0xFF:
            value -= 1 << (8 * (len(raw) - 1))
        else:
            value += (raw[0] & 0x7F) << (8 * (len(raw) - 1))
        return value
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArchive(f"invalid {what} field {raw[:20]!r} in a tar header "
                             "(not a tar archive, or a corrupt one)", entry="") from None


def _pax_records(body: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(body):
        if body[pos] == 0:  # some writers pad the header with NULs
            break
        space = body.find(b" ", pos)
        try:
            length = int(body[pos:space]) if space > pos else -1
        except ValueError:
            length = -1
        end = pos + length
        if length <= 0 or end > len(body) or body[end - 1:end] != b"\n":
            raise InvalidArchive("malformed pax header record", entry="")
        key, eq, value = body[space + 1:end - 1].partition(b"=")
        if not eq:
            raise InvalidArchive("malformed pax header record", entry="")
        out[key.decode("utf-8", "surrogateescape")] = value
        pos = end
    return out


def _pax_int(raw: bytes, key: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidArchive(f"pax {key} {raw[:30]!r} of {name[:200]!r} is not a number",
                             entry=name[:PATH_MAX]) from None


def _pax_time(raw: bytes, name: str) -> int:
    text = raw.decode("ascii", "replace")
    whole, _, frac = text.partition(".")
    try:
        sign = -1 if whole.startswith("-") else 1
        ns = int(whole) * 10**9 + sign * int((frac + "000000000")[:9] or 0)
    except ValueError:
        raise InvalidArchive(f"pax mtime {text[:40]!r} of {name[:200]!r} is not a time",
                             entry=name[:PATH_MAX]) from None
    return ns


def _unpercent(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)
