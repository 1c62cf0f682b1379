"""The C wrappers of varpod.native: loaded (with the cffi module) on first use, see __init__."""

from __future__ import annotations

import _thread  # threading.local is _thread._local; threading itself is ~1 ms more to import
import errno
import os

from . import _common
from ._common import (
    DEMUX_AHEAD,
    DEMUX_BUDGET,
    DEMUX_BUFSIZE,
    MAX_TIME,
    PUMP_BUFSIZE,
    RELAY_WINDOW,
    STATUS_CONTROL,
)
from ._streamio import ffi as _ffi
from ._streamio import lib as _lib

_tls = _thread._local()


def _pump_buffer():
    bufs = getattr(_tls, "pump", None)
    if bufs is None:
        raw = bytearray(PUMP_BUFSIZE)
        bufs = _tls.pump = (raw, _ffi.from_buffer(raw), _ffi.new("int *"), _ffi.new("long long *"))
    return bufs


def _staging() -> tuple[int, int]:
    """This thread's staging pipe for spliced records: empty between calls, sized like a FIFO."""
    pipe = getattr(_tls, "staging", None)
    if pipe is None:
        import fcntl  # the daemon only: the CLI never pumps

        r, w = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(r, False)
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PUMP_BUFSIZE)
        except OSError:
            pass  # a smaller pipe works too: a record then reaches the log in more splices
        pipe = _tls.staging = (r, w)
    return pipe


def _c_pump(src: int, log_fd: int, offset: int, stream: int, budget: int,
            fifo: bool = False) -> tuple[int, bool]:
    _, cbuf, eof, off = _pump_buffer()
    stage_r, stage_w = _staging() if fifo else (-1, -1)
    off[0] = offset
    n = _lib.vp_pump(src, log_fd, off, stream, budget, cbuf, PUMP_BUFSIZE, stage_r, stage_w, eof)
    if n < 0:
        raise OSError(-n, os.strerror(-n))
    return n, bool(eof[0])


def _raise(rc: int) -> None:
    raise OSError(-rc, os.strerror(-rc))


def _scratch(size: int):
    """This thread's conversion buffer for relay, shared by its cursors (one call at a time)."""
    held = getattr(_tls, "scratch", None)
    if held is None or len(held[0]) < size:
        raw = bytearray(size)
        held = _tls.scratch = (raw, _ffi.from_buffer(raw))
    return held[1]


class _CCursor:
    """One follower's place in a log, and the output it still owes its destination.

    The state lives in a cffi struct; output the destination did not take is
    held by C (malloc'd, at most a window) and freed once written or when the
    cursor goes. One thread at a time per cursor; separate cursors share nothing
    but their thread's conversion buffer.
    """

    __slots__ = ("_c", "_window")

    def __init__(self, offset: int = 0, bufsize: int = RELAY_WINDOW) -> None:
        if bufsize < 64:
            raise ValueError(f"a relay window of {bufsize} bytes is too small")
        self._c = _ffi.gc(_ffi.new("struct vp_cursor *"), _lib.vp_cursor_release)
        self._c.offset = offset
        self._window = bufsize

    @property
    def offset(self) -> int:
        return self._c.offset

    @offset.setter
    def offset(self, value: int) -> None:
        self._c.offset = value

    @property
    def pending(self) -> bytes:
        """Converted output not yet written."""
        c = self._c
        return _ffi.buffer(c.pending + c.head, c.tail - c.head)[:] if c.pending else b""

    @property
    def busy(self) -> bool:
        """Output is owed: converted bytes, a payload from the file, or its trailer."""
        c = self._c
        return c.head < c.tail or c.file_left > 0 or c.owed_pos < c.owed_len

    @property
    def past_until(self) -> bool:
        return bool(self._c.past_until)

    @property
    def bufsize(self) -> int:
        return self._window

    def __repr__(self) -> str:
        c = self._c
        return (f"Cursor(offset={c.offset}, pending={c.tail - c.head}, from_file={c.file_left}, "
                f"past_until={self.past_until})")


def _c_relay(cursor: _CCursor, log_fd: int, end: int, dst: int, mode: int, mask: int,
             since: int = 0, until: int = MAX_TIME, merge: bool = False) -> tuple[int, bool]:
    _common.check_relay_args(mode, since, until)
    c = cursor._c
    end = min(end, (1 << 63) - 1)  # a long long in C
    n = _lib.vp_relay(c, _scratch(cursor._window), cursor._window, log_fd, end, dst, mode, mask & 0xF,
                      since, until, 1 if merge else 0)
    if n == -errno.EBADMSG:
        raise ValueError(f"corrupt log record at offset {c.offset}")
    if n < 0:
        _raise(n)
    return n, bool(c.blocked)


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


