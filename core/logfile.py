"""The container log: binary records, cheap to append, replayable without parsing text.

A record is a wire frame followed by a trailer::

    u8 stream | 3 zero bytes | u32 BE length | payload | u64 BE time (ns) | u32 BE length

The first ``8 + length`` bytes are exactly the attach stream's multiplexed frame,
so replaying to an attached client is a copy, and the trailer's repeated length
lets ``--tail`` walk backwards from the end with bounded memory. One record
holds one read from the container's pipe, not one line.

Rotation renames the live file to ``<name>.<generation>`` and starts a new one;
readers that hold the old file finish it, then move on by generation number.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Callable, Iterator

HEADER = struct.Struct(">B3xI")
TRAILER = struct.Struct(">QI")
HEADER_SIZE = HEADER.size  # 8
TRAILER_SIZE = TRAILER.size  # 12
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
MAX_RECORD = 16 << 20

STDIN, STDOUT, STDERR = 0, 1, 2

# Space is allocated ahead of the write position (fallocate with KEEP_SIZE: the file's
# size, which every reader goes by, does not move). ext4's delayed allocation otherwise
# reserves and maps blocks on every write: 15 % of the daemon's CPU samples attaching a
# GiB, 3 % with the room there. The room ahead is as much as the log holds, from
# RESERVE_FROM up to RESERVE_MAX, so a log that stays small reserves nothing and a big
# one at most RESERVE_MAX more than it uses; it is given back when the run ends
# (``finish``), at rotation and at ``close``.
RESERVE_FROM = 1 << 20
RESERVE_MAX = 64 << 20
FALLOC_FL_KEEP_SIZE = 1
# Only where it was measured to pay. On tmpfs it would allocate and zero memory pages
# ahead of the writes that fill them.
RESERVE_FILESYSTEMS = frozenset({0xEF53})  # ext2/3/4 (statfs f_type)


# Rotation runs on the event loop, and a rotated-away file frees its page cache at its
# unlink (0.1 s per GiB here): one this large leaves the generations by a rename at once,
# and a thread unlinks it. A daemon that dies first leaves it for the log's next writer.
DISCARD_IN_THREAD = 8 << 20
DOOMED = ".doomed"


def encode_record(stream: int, payload: bytes, ts: int | None = None) -> bytes:
    ts = time.time_ns() if ts is None else ts
    n = len(payload)
    return HEADER.pack(stream, n) + payload + TRAILER.pack(ts, n)


class Record:
    __slots__ = ("offset", "payload", "stream", "time")

    def __init__(self, stream: int, time: int, payload: bytes, offset: int) -> None:
        self.stream = stream
        self.time = time
        self.payload = payload
        self.offset = offset

    def __repr__(self) -> str:
        return f"Record(stream={self.stream}, time={self.time}, payload={self.payload[:40]!r})"


def parse_records(buf: bytes | memoryview, base: int = 0) -> tuple[list[Record], int]:
    """Complete records at the start of ``buf``; returns them and the bytes consumed."""
    out: list[Record] = []
    pos = 0
    end = len(buf)
    while end - pos >= OVERHEAD:
        stream, n = HEADER.unpack_from(buf, pos)
        total = n + OVERHEAD
        if end - pos < total:
            break
        ts, n2 = TRAILER.unpack_from(buf, pos + HEADER_SIZE + n)
        if n2 != n or stream > 3:
            raise ValueError(f"corrupt log record at offset {base + pos}")
        out.append(Record(stream, ts, bytes(buf[pos + HEADER_SIZE : pos + HEADER_SIZE + n]), base + pos))
        pos += total
    return out, pos


def iter_file(fd: int, start: int = 0, stop: int | None = None, block: int = 1 << 20) -> Iterator[Record]:
    """Records of an open log file from ``start`` up to ``stop`` (default: its current end)."""
    if stop is None:
        stop = os.fstat(fd).st_size
    pos = start
    pending = b""
    while pos < stop:
        chunk = os.pread(fd, min(block, stop - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        buf = pending + chunk if pending else chunk
        records, used = parse_records(buf, pos - len(buf))
        yield from records
        pending = buf[used:]
        if len(pending) > MAX_RECORD + OVERHEAD:
            raise ValueError("corrupt log: record larger than the maximum")


def iter_backwards(fd: int, end: int | None = None) -> Iterator[Record]:
    """Records from the end towards the start, reading one record at a time."""
    pos = os.fstat(fd).st_size if end is None else end
    while pos >= OVERHEAD:
        ts, n = TRAILER.unpack(os.pread(fd, TRAILER_SIZE, pos - TRAILER_SIZE))
        start = pos - TRAILER_SIZE - n - HEADER_SIZE
        if start < 0 or n > MAX_RECORD:
            raise ValueError(f"corrupt log record ending at offset {pos}")
        raw = os.pread(fd, HEADER_SIZE + n, start)
        stream, n1 = HEADER.unpack_from(raw)
        if n1 != n:
            raise ValueError(f"corrupt log record at offset {start}")
        yield Record(stream, ts, raw[HEADER_SIZE:], start)
        pos = start


def valid_length(fd: int) -> int:
    """Offset just after the last whole record (a crash may leave a torn tail)."""
    size = os.fstat(fd).st_size
    pos = 0
    while pos + OVERHEAD <= size:
        stream, n = HEADER.unpack(os.pread(fd, HEADER_SIZE, pos))
        end = pos + n + OVERHEAD
        if end > size or stream > 2 or n > MAX_RECORD:
            break
        _, n2 = TRAILER.unpack(os.pread(fd, TRAILER_SIZE, end - TRAILER_SIZE))
        if n2 != n:
            break
        pos = end
    return pos


class LogWriter:
    """Appends records for one container; followers are told after every batch.

    Only the event-loop thread calls it. ``finished`` becomes true once the
    container's output is drained after exit: followers then stop at the end.
    """

    def __init__(self, path: str, *, size_max: int = 0, keep: int = 2, verify: bool = True) -> None:
        self.path = path
        self.size_max = size_max
        # At least the file just rotated stays: generations are numbered from what is on disk.
        self.keep = max(1, keep)
        doomed: list[str] = []  # what a daemon that died left of its rotated files
        gens = _generations(path, doomed)
        self.generation = (gens[-1] if gens else 0) + 1
        for leftover in doomed:
            _unlink_quietly(leftover)
        # Not O_APPEND: records go at self.size (splice into an appending file is refused).
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        # A crash mid-append (a fatal signal cuts a large write short) leaves a torn
        # record: cut it so readers stay in step. After a clean shutdown the tail
        # check suffices; otherwise (``verify``) every header is walked, because a
        # torn record's payload may itself look like a record.
        size = os.fstat(self.fd).st_size
        good = _valid_length_of(path, verify) if size else 0
        if good != size:
            os.truncate(path, good)
        self.size = good
        self.finished = False
        # Space allocated past the end: up to _reserved by us, or left by a daemon that
        # was killed (blocks past the end stay until a truncate): given back by _release.
        self._reserved = good
        self._beyond_end = _blocks_beyond_end(self.fd, good)
        # Looked up once the log reaches RESERVE_FROM: most logs (an exec's) never do.
        self._reserve: Callable[[int, int, int], None] | None = None
        self._reserve_known = False
        self._followers: set[Callable[[], None]] = set()
        from .. import native  # here, not at import: log readers (the CLI) never need it

        self._pump = native.pump

    def append(self, stream: int, payload: bytes, ts: int | None = None) -> None:
        if not payload:
            return  # an empty record says nothing and would confuse line counting
        if self.size_max and self.size >= self.size_max:
            self.rotate()
        self._reserve_ahead()
        record = encode_record(stream, payload, ts)
        view = memoryview(record)
        while view:
            n = os.pwrite(self.fd, view, self.size)
            self.size += n
            view = view[n:]

    def pump_from(self, src: int, stream: int, budget: int, fifo: bool = False) -> bool:
        """Move what ``src`` has into the log (the C loop when built); True at EOF.

        ``fifo``: src is a pipe, whose bytes are spliced into the log.
        """
        if self.size_max:
            if self.size >= self.size_max:
                self.rotate()
            budget = max(1, min(budget, self.size_max - self.size))
        self._reserve_ahead()
        n, eof = self._pump(src, self.fd, self.size, stream, budget, fifo)
        self.size += n
        return eof

    def _reserve_ahead(self) -> None:
        """Allocate room ahead once less than half the room the log's size calls for is left."""
        size = self.size
        if size < RESERVE_FROM:
            return
        if not self._reserve_known:
            self._reserve, self._reserve_known = _reserver(self.fd), True
        if self._reserve is None:
            return
        ahead = min(size, RESERVE_MAX)
        if self.size_max:
            ahead = min(ahead, self.size_max - size)  # the rest goes to the next file
        if self._reserved - size >= ahead // 2:
            return
        start = max(size, self._reserved)
        try:
            self._reserve(self.fd, start, size + ahead - start)
        except OSError:  # ENOSPC: the writes say so if it comes to that; EOPNOTSUPP: never mind
            return
        self._reserved = size + ahead
        self._beyond_end = True

    def _release(self) -> None:
        """Give back the space allocated past the end (truncating to the same size does)."""
        if self._beyond_end and self.fd >= 0:
            self._beyond_end = False
            self._reserved = self.size
            os.ftruncate(self.fd, self.size)

    def rotate(self) -> None:
        self._release()
        os.rename(self.path, f"{self.path}.{self.generation}")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        self.size = self._reserved = 0
        self.generation += 1
        for gen in _generations(self.path)[: -self.keep or None]:
            _discard(f"{self.path}.{gen}")

    def notify(self) -> None:
        for wake in list(self._followers):
            wake()

    def follow(self, wake: Callable[[], None]) -> None:
        self._followers.add(wake)

    def unfollow(self, wake: Callable[[], None]) -> None:
        self._followers.discard(wake)

    def finish(self) -> None:
        self._release()  # before the followers look: they go by the size, which stays
        self.finished = True
        self.notify()

    def close(self) -> None:
        if self.fd >= 0:
            self._release()
            os.close(self.fd)
            self.fd = -1


def _discard(path: str) -> None:
    try:
        if os.stat(path).st_size < DISCARD_IN_THREAD:
            os.unlink(path)
            return
        os.rename(path, path + DOOMED)
    except FileNotFoundError:
        return
    import threading  # here: only the daemon rotates logs

    threading.Thread(target=_unlink_quietly, args=(path + DOOMED,), name="log-discard", daemon=True).start()


def close_reader(fd: int) -> None:
    """Close a reader's hold on a log file; off the caller's thread when it may be the last
    hold on a big file already unlinked (rotated away behind a lagging follower, or its
    container removed): that close frees the file's page cache, as its unlink would have."""
    try:
        st = os.fstat(fd)
    except OSError:
        st = None
    if st is None or st.st_nlink or st.st_size < DISCARD_IN_THREAD:
        os.close(fd)
        return
    import threading

    threading.Thread(target=os.close, args=(fd,), name="log-discard", daemon=True).start()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _blocks_beyond_end(fd: int, size: int) -> bool:
    st = os.fstat(fd)
    return st.st_blocks * 512 > -(-size // st.st_blksize) * st.st_blksize


_libc = None


def _reserver(fd: int) -> Callable[[int, int, int], None] | None:
    """``reserve(fd, offset, length)``: fallocate with KEEP_SIZE, on a filesystem where it
    pays (that of ``fd``); else None."""
    global _libc
    import ctypes  # here: only the daemon writes logs

    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    buf = ctypes.create_string_buffer(256)  # struct statfs: f_type is its first field, a long
    if _libc.fstatfs(fd, buf) != 0 or ctypes.c_long.from_buffer(buf).value not in RESERVE_FILESYSTEMS:
        return None
    fallocate = _libc.fallocate

    def reserve(fd: int, offset: int, length: int) -> None:
        if fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return reserve


def _generations(path: str, doomed: list[str] | None = None) -> list[int]:
    """The rotated files' generation numbers, oldest first; ``doomed`` (when given) gets the
    paths of rotated files left to discard (``DOOMED``)."""
    d, base = os.path.split(path)
    gens = []
    try:
        names = os.listdir(d or ".")
    except FileNotFoundError:
        return gens
    for name in names:
        if name.startswith(base + "."):
            suffix = name[len(base) + 1 :]
            if suffix.isdigit():
                gens.append(int(suffix))
            elif doomed is not None and suffix.endswith(DOOMED):
                doomed.append(os.path.join(d, name))
    return sorted(gens)


def _latest_generation(path: str) -> int:
    gens = _generations(path)
    return gens[-1] if gens else 0


def _valid_length_of(path: str, verify: bool) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if not verify and _tail_is_whole(fd):
            return os.fstat(fd).st_size
        return valid_length(fd)
    finally:
        os.close(fd)


def _tail_is_whole(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size < OVERHEAD:
        return False
    _, n = TRAILER.unpack(os.pread(fd, TRAILER_SIZE, size - TRAILER_SIZE))
    start = size - OVERHEAD - n
    if start < 0:
        return False
    stream, n1 = HEADER.unpack(os.pread(fd, HEADER_SIZE, start))
    return n1 == n and stream <= 2


def log_files(path: str) -> list[tuple[int, str]]:
    """(generation, path) of every retained file, oldest first; the live one last."""
    files = [(g, f"{path}.{g}") for g in _generations(path)]
    files.append((_latest_generation(path) + 1, path))
    return files
