"""Pure-Python twins of the C functions: same inputs, same bytes out (tests check both).

Also the reference for the formats (``encode_frame``), shared by the C
wrappers for what needs no speed: argument checks and error messages.
"""

from __future__ import annotations

import os
import struct
import time

_HEADER = struct.Struct(">B3xI")
_TRAILER = struct.Struct(">QI")
_TIME = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")
HEADER_SIZE, TRAILER_SIZE = 8, 12
MAX_PAYLOAD = 16 << 20
MAX_TIME = (1 << 63) - 1
CONTROL = 3

MODE_RECORDS, MODE_FRAMES, MODE_RAW = 0, 1, 2
RELAY_BUFSIZE = 2 << 20
IOV_MAX = os.sysconf("SC_IOV_MAX")


def encode_frame(stream: int, payload: bytes) -> bytes:
    """The wire frame: u8 stream, 3 zero bytes, u32 BE length, payload."""
    return _HEADER.pack(stream, len(payload)) + bytes(payload)


def pump(src: int, log_fd: int, stream: int, budget: int, bufsize: int = 1 << 20) -> tuple[int, bool]:
    total = 0
    while total < budget:
        try:
            data = os.read(src, bufsize)
        except BlockingIOError:
            return total, False
        except InterruptedError:
            continue
        if not data:
            return total, True
        n = len(data)
        _writev_all(log_fd, [_HEADER.pack(stream, n), data, _TRAILER.pack(time.time_ns(), n)])
        total += n + 20
    return total, False


def _writev_all(fd: int, parts: list) -> None:
    views = [memoryview(p) for p in parts]
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i:])
        while i < len(views) and n >= len(views[i]):
            n -= len(views[i])
            i += 1
        if n:
            views[i] = views[i][n:]


# -- checks and messages shared with the C wrappers ----------------------------------------


def check_relay_args(mode: int, since: int, until: int) -> None:
    if mode not in (MODE_RECORDS, MODE_FRAMES, MODE_RAW):
        raise ValueError(f"unknown relay mode {mode!r}")
    if not (0 <= since < 1 << 64 and 0 <= until < 1 << 64):
        raise ValueError(f"since and until must be u64 nanoseconds, not {since!r} and {until!r}")


def check_fmt(fmt: int) -> None:
    if fmt not in (MODE_RECORDS, MODE_FRAMES):
        raise ValueError(f"demux and scan read records or frames, not mode {fmt!r}")


def corrupt(fmt: int, offset: int) -> ValueError:
    return ValueError(f"corrupt {'record' if fmt == MODE_RECORDS else 'frame'} at offset {offset}")


def grown_size(need: int) -> int:
    """A buffer for a record of ``need`` bytes, rounded up to 64 KiB."""
    return (need + 0xFFFF) & ~0xFFFF


def _entry_at(buf: memoryview, pos: int, fmt: int) -> tuple[int, int, int]:
    """(size, stream, payload length) of the entry at pos: size 0 if incomplete, -1 if corrupt.

    The header is judged as soon as it is there, like the C one.
    """
    avail = len(buf) - pos
    if avail < HEADER_SIZE:
        return 0, 0, 0
    stream, n = _HEADER.unpack_from(buf, pos)
    if stream > CONTROL or n > MAX_PAYLOAD:
        return -1, stream, n
    size = HEADER_SIZE + n + (TRAILER_SIZE if fmt == MODE_RECORDS else 0)
    if avail < size:
        return 0, stream, n
    if fmt == MODE_RECORDS and _LENGTH.unpack_from(buf, pos + HEADER_SIZE + n + 8)[0] != n:
        return -1, stream, n
    return size, stream, n


# -- relay ---------------------------------------------------------------------------------


class Cursor:
    """One follower's place in a log and its output not yet written.

    The C twin keeps pending output in its buffer; here it is a bytes object
    of its own, since Python has no memmove within one bytearray.
    """

    __slots__ = ("_buf", "_out", "_past_until", "offset")

    def __init__(self, offset: int = 0, bufsize: int = RELAY_BUFSIZE) -> None:
        self.offset = offset
        self._buf = bytearray(bufsize)
        self._out = memoryview(b"")
        self._past_until = False

    @property
    def pending(self) -> bytes:
        return bytes(self._out)

    @property
    def past_until(self) -> bool:
        return self._past_until

    @property
    def bufsize(self) -> int:
        return len(self._buf)

    def __repr__(self) -> str:
        return f"Cursor(offset={self.offset}, pending={len(self._out)}, past_until={self._past_until})"


def relay(cursor: Cursor, log_fd: int, end: int, dst: int, mode: int, mask: int,
          since: int = 0, until: int = MAX_TIME) -> tuple[int, bool]:
    check_relay_args(mode, since, until)
    total = 0
    while True:
        out = cursor._out
        while out:
            try:
                n = os.write(dst, out)
            except BlockingIOError:
                cursor._out = out
                return total, True
            out = out[n:]
            total += n
        cursor._out = out
        if cursor._past_until or cursor.offset >= end:
            return total, False
        view = memoryview(cursor._buf)[: min(len(cursor._buf), end - cursor.offset)]
        got = os.preadv(log_fd, [view], cursor.offset)
        parts, used, bad = _convert(view[:got], mode, mask, since, until, cursor)
        if used == 0 and not cursor._past_until:
            # Nothing whole at the start: corrupt, larger than the buffer, or a short read.
            if bad:
                raise ValueError(f"corrupt log record at offset {cursor.offset}")
            if got >= HEADER_SIZE:
                size = HEADER_SIZE + _LENGTH.unpack_from(view, 4)[0] + TRAILER_SIZE
                if size > len(cursor._buf):
                    cursor._buf = bytearray(grown_size(size))
                    continue
            return total, False
        cursor.offset += used
        cursor._out = memoryview(b"".join(parts))


def _convert(buf: memoryview, mode: int, mask: int, since: int, until: int,
             cursor: Cursor) -> tuple[list[memoryview], int, bool]:
    """Output pieces of the whole records at the start of buf, input used, stopped at a corrupt one."""
    parts: list[memoryview] = []
    pos = run_start = run_end = 0  # a run of selected records, sliced once (RECORDS mode)
    while True:
        size, stream, n = _entry_at(buf, pos, MODE_RECORDS)
        if size <= 0:
            break
        t = _TIME.unpack_from(buf, pos + HEADER_SIZE + n)[0]
        if t > until:
            cursor._past_until = True
            break
        if mask >> stream & 1 and t >= since:
            if mode == MODE_RECORDS:
                if pos != run_end:
                    if run_end > run_start:
                        parts.append(buf[run_start:run_end])
                    run_start = pos
                run_end = pos + size
            elif mode == MODE_FRAMES:
                parts.append(buf[pos : pos + HEADER_SIZE + n])
            elif n:
                parts.append(buf[pos + HEADER_SIZE : pos + HEADER_SIZE + n])
        pos += size
    if run_end > run_start:
        parts.append(buf[run_start:run_end])
    return parts, pos, size < 0


# -- demux and scan ------------------------------------------------------------------------


def demux(buf, fmt: int, out1: int, out2: int) -> tuple[int, int]:
    """Write payloads to out1/out2 up to a control entry; (consumed, control offset or -1)."""
    check_fmt(fmt)
    view = memoryview(buf).cast("B")
    batch: list[memoryview] = []
    batch_fd = -1
    pos = 0
    control_at = -1
    while True:
        size, stream, n = _entry_at(view, pos, fmt)
        if size <= 0:
            break
        if stream == CONTROL:
            control_at = pos
            break
        fd = out1 if stream == 1 else out2 if stream == 2 else -1
        if fd >= 0 and n:
            if len(batch) == IOV_MAX or (batch and fd != batch_fd):
                _writev_all(batch_fd, batch)
                batch = []
            batch_fd = fd
            batch.append(view[pos + HEADER_SIZE : pos + HEADER_SIZE + n])
        pos += size
    if batch:
        _writev_all(batch_fd, batch)
    if size < 0:
        raise corrupt(fmt, pos)
    return pos, control_at


def scan(buf, fmt: int) -> tuple[list[tuple[int, int, int]], int]:
    """(stream, payload offset, payload length) of each whole entry at the start of buf, and bytes used."""
    check_fmt(fmt)
    view = memoryview(buf).cast("B")
    out = []
    pos = 0
    while True:
        size, stream, n = _entry_at(view, pos, fmt)
        if size < 0:
            raise corrupt(fmt, pos)
        if size == 0:
            return out, pos
        out.append((stream, pos + HEADER_SIZE, n))
        pos += size
