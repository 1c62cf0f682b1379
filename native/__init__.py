"""The hot stream loops in C (cffi), with a pure-Python fallback of the same functions.

``IMPLEMENTATION`` says which one is live; ``varpod info`` reports it and CI
asserts the compiled one. ``VARPOD_NATIVE=python`` forces the fallback.

* ``pump(src, log_fd, stream, budget) -> (appended, eof)``: a container pipe into its log.
* ``relay(cursor, log_fd, end, dst, mode, mask, since=0, until=MAX_TIME, merge=False)
  -> (written, blocked)``:
  log records from ``cursor.offset`` up to ``end`` to a non-blocking dst, as
  ``MODE_RECORDS`` (as stored), ``MODE_FRAMES`` (trailer dropped) or ``MODE_RAW``
  (payloads); ``mask`` bit ``1 << stream`` selects streams, records before
  ``since`` are skipped and the first one after ``until`` ends the stream
  (``cursor.past_until``). Output dst will not take yet stays in the cursor.
  ``merge``: consecutive selected records of one stream that one pass converts
  go out as one record (the first one's time) or frame, of at most 16 MiB.
* ``demux(buf, fmt, out1, out2) -> (consumed, control_at)``: payloads of whole
  records/frames to blocking fds, up to a control entry (stream 3).
* ``Demuxer(fmt)`` and ``demux_from(demuxer, src_fd, out1, out2, initial=b"") -> (status, control)``:
  ``initial`` (bytes the caller read from src first: given once, before the
  demuxer reads src itself), then what src_fd sends, to blocking out1/out2 (a
  pipe gets large payloads by splice; the C loop reads src ahead, and keeps
  what it has not consumed for the next call) until ``STATUS_CONTROL`` (with the
  control payload), ``STATUS_EOF``, or ``STATUS_INTERRUPTED``: a signal arrived
  (or ``demuxer.budget`` bytes went by, so handlers of signals that interrupted
  no system call run too); call again with the same Demuxer.
* ``scan(buf, fmt) -> ([(stream, payload_offset, length)], consumed)``.
* ``encode_frame(stream, payload)``: the reference encoder for frames.

Corrupt input raises ValueError; a failed system call, OSError.
"""

from __future__ import annotations

import _thread  # threading.local is _thread._local; threading itself is ~1 ms more to import
import errno
import os

# Only what the C wrappers share with the twin: _fallback (threading, signal and
# so enum, termios...) is imported when it is the live path, or when asked for.
from . import _common
from ._common import (
    DEMUX_AHEAD,
    DEMUX_BUDGET,
    DEMUX_BUFSIZE,
    MAX_TIME,
    MODE_FRAMES,
    MODE_RAW,
    MODE_RECORDS,
    RELAY_BUFSIZE,
    STATUS_CONTROL,
    STATUS_EOF,
    STATUS_INTERRUPTED,
    encode_frame,
)

try:
    from ._streamio import ffi as _ffi
    from ._streamio import lib as _lib
except ImportError as _e:  # not built: say why, keep working
    _lib = None
    IMPLEMENTATION = "python"
    IMPORT_ERROR = str(_e)
else:
    IMPLEMENTATION = "c"
    IMPORT_ERROR = ""

BUFSIZE = 1 << 20
_tls = _thread._local()


def _buffers():
    bufs = getattr(_tls, "bufs", None)
    if bufs is None:
        raw = bytearray(BUFSIZE)
        bufs = _tls.bufs = (raw, _ffi.from_buffer(raw), _ffi.new("int *"))
    return bufs


def _c_pump(src: int, log_fd: int, stream: int, budget: int) -> tuple[int, bool]:
    _, cbuf, eof = _buffers()
    n = _lib.vp_pump(src, log_fd, stream, budget, cbuf, BUFSIZE, eof)
    if n < 0:
        raise OSError(-n, os.strerror(-n))
    return n, bool(eof[0])


def _raise(rc: int) -> None:
    raise OSError(-rc, os.strerror(-rc))


class _CCursor:
    """One follower's place in a log, and output converted but not yet written.

    The C loop keeps that output in the buffer between calls, so the state
    lives in a cffi struct next to a bytearray C writes into directly. One
    thread at a time per cursor; separate cursors share nothing.
    """

    __slots__ = ("_buf", "_c", "_cbuf")

    def __init__(self, offset: int = 0, bufsize: int = RELAY_BUFSIZE) -> None:
        self._c = _ffi.new("struct vp_cursor *")
        self._c.offset = offset
        self._set_buffer(bytearray(bufsize))

    def _set_buffer(self, buf: bytearray) -> None:
        self._buf = buf
        self._cbuf = _ffi.from_buffer(buf)

    @property
    def offset(self) -> int:
        return self._c.offset

    @offset.setter
    def offset(self, value: int) -> None:
        self._c.offset = value

    @property
    def pending(self) -> bytes:
        return bytes(self._buf[self._c.head : self._c.tail])

    @property
    def past_until(self) -> bool:
        return bool(self._c.past_until)

    @property
    def bufsize(self) -> int:
        return len(self._buf)

    def __repr__(self) -> str:
        pending = self._c.tail - self._c.head
        return f"Cursor(offset={self.offset}, pending={pending}, past_until={self.past_until})"


def _c_relay(cursor: _CCursor, log_fd: int, end: int, dst: int, mode: int, mask: int,
             since: int = 0, until: int = MAX_TIME, merge: bool = False) -> tuple[int, bool]:
    _common.check_relay_args(mode, since, until)
    c = cursor._c
    end = min(end, (1 << 63) - 1)  # a long long in C
    merge = 1 if merge else 0
    total = 0
    while True:
        n = _lib.vp_relay(c, cursor._cbuf, len(cursor._buf), log_fd, end, dst, mode, mask & 0xF, since, until,
                          merge)
        if n == -errno.EBADMSG:
            raise ValueError(f"corrupt log record at offset {c.offset}")
        if n < 0:
            _raise(n)
        total += n
        if not c.need:
            return total, bool(c.blocked)
        # Only with nothing pending: the record at c.offset is larger than the buffer.
        cursor._set_buffer(bytearray(_common.grown_size(c.need)))


def _c_demux(buf, fmt: int, out1: int, out2: int) -> tuple[int, int]:
    _common.check_fmt(fmt)
    cbuf = _ffi.from_buffer(buf)
    consumed = _ffi.new("size_t *")
    control = _ffi.new("int *")
    rc = _lib.vp_demux(cbuf, len(cbuf), fmt, out1, out2, consumed, control)
    if rc == -errno.EBADMSG:
        raise _common.corrupt(fmt, consumed[0])
    if rc < 0:
        _raise(rc)
    return consumed[0], consumed[0] if control[0] else -1


class _CDemuxer:
    """A reader's place in one record/frame stream between demux_from calls.

    The C state (which part of which entry, what was read ahead from src and
    not yet consumed) lives in a cffi struct next to its buffers; the caller's
    bytes not yet consumed stay here. One thread at a time.
    """

    __slots__ = ("_ahead", "_buf", "_c", "_cahead", "_cbuf", "_input", "_used", "budget")

    def __init__(self, fmt: int, budget: int = DEMUX_BUDGET) -> None:
        _common.check_fmt(fmt)
        _common.check_budget(budget)
        self._c = _ffi.new("struct vp_demuxer *")
        _lib.vp_demuxer_init(self._c, fmt)
        self._used = _ffi.new("size_t *")
        self._input = memoryview(b"")
        self.budget = budget
        self._ahead = bytearray(DEMUX_AHEAD)
        self._cahead = _ffi.from_buffer(self._ahead)
        self._set_buffer(bytearray(DEMUX_BUFSIZE))

    def _set_buffer(self, buf: bytearray) -> None:
        self._buf = buf
        self._cbuf = _ffi.from_buffer(buf)

    @property
    def fmt(self) -> int:
        return self._c.fmt

    @property
    def offset(self) -> int:
        """Stream bytes consumed (``initial`` ones included)."""
        return self._c.offset

    def __repr__(self) -> str:
        return f"Demuxer(fmt={self.fmt}, offset={self.offset})"


def _c_demux_from(demuxer: _CDemuxer, src_fd: int, out1: int, out2: int,
                  initial: bytes = b"") -> tuple[int, bytes | None]:
    d = demuxer
    c = d._c
    if initial:
        if c.ahead_pos < c.ahead_len:  # they would go out after bytes src sent later
            raise ValueError("initial bytes come before what demux_from has read from src")
        d._input = memoryview(bytes(d._input) + bytes(initial))
    while True:
        inp = d._input
        with _common.WakeupPipe() as wake, _common.NonBlocking(src_fd):
            rc = _lib.vp_demux_from(c, d._cbuf, len(d._buf), d._cahead, len(d._ahead),
                                    _ffi.from_buffer(inp) if inp else _ffi.NULL, len(inp), d._used,
                                    src_fd, out1, out2, d.budget, wake.fd)
        if d._used[0]:
            d._input = inp[d._used[0] :]
        if rc == _lib.VP_NEED_BUFFER:  # a control payload larger than the buffer
            d._set_buffer(bytearray(_common.grown_size(c.need)))
            continue
        if rc == -errno.EBADMSG:
            raise _common.corrupt(c.fmt, c.entry)
        if rc < 0:
            _raise(rc)
        if rc == STATUS_CONTROL:
            return rc, bytes(d._buf[: c.length])
        return rc, None


_SCAN_CHUNK = 4096  # entries per C call


def _c_scan(buf, fmt: int) -> tuple[list[tuple[int, int, int]], int]:
    _common.check_fmt(fmt)
    cbuf = _ffi.from_buffer(buf)
    size = len(cbuf)
    chunk = min(_SCAN_CHUNK, size // _common.HEADER_SIZE + 1)
    triples = _ffi.new("uint32_t[]", 3 * chunk)
    stop = _ffi.new("size_t *")
    out: list[tuple[int, int, int]] = []
    start = 0
    while True:
        k = _lib.vp_scan(cbuf, size, start, fmt, triples, chunk, stop)
        if k == -errno.EBADMSG:
            raise _common.corrupt(fmt, stop[0])
        if k < 0:
            _raise(k)
        if k == 0:
            return out, start
        vals = _ffi.unpack(triples, 3 * k)
        out.extend(zip(vals[0::3], map(start.__add__, vals[1::3]), vals[2::3], strict=True))
        start = stop[0]


if _lib is not None and os.environ.get("VARPOD_NATIVE", "") != "python":
    pump = _c_pump
    Cursor = _CCursor
    relay = _c_relay
    demux = _c_demux
    Demuxer = _CDemuxer
    demux_from = _c_demux_from
    scan = _c_scan
else:
    from . import _fallback

    IMPLEMENTATION = "python"
    pump = _fallback.pump
    Cursor = _fallback.Cursor
    relay = _fallback.relay
    demux = _fallback.demux
    Demuxer = _fallback.Demuxer
    demux_from = _fallback.demux_from
    scan = _fallback.scan


def __getattr__(name: str):
    # native._fallback while the C path is live: tests and benchmarks run both on the same inputs.
    if name == "_fallback":
        from importlib import import_module  # not `from . import`: that asks this hook again

        return import_module("._fallback", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IMPLEMENTATION",
    "IMPORT_ERROR",
    "MAX_TIME",
    "MODE_FRAMES",
    "MODE_RAW",
    "MODE_RECORDS",
    "STATUS_CONTROL",
    "STATUS_EOF",
    "STATUS_INTERRUPTED",
    "Cursor",
    "Demuxer",
    "demux",
    "demux_from",
    "encode_frame",
    "pump",
    "relay",
    "scan",
]
