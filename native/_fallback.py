"""Pure-Python twins of the C functions: same inputs, same bytes out (tests check both).

The formats, constants and argument checks both share are in ``_common``; they
are importable from here too, as they always were.
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os
import select
import struct
import termios
import time

from ._common import (
    CONTROL,
    DEMUX_AHEAD,
    DEMUX_BUDGET,
    HEADER_SIZE,
    MAX_PAYLOAD,
    MAX_TIME,
    MODE_FRAMES,
    MODE_RAW,
    MODE_RECORDS,
    PUMP_BUFSIZE,
    RELAY_WINDOW,
    SENDFILE_MIN,
    STATUS_CONTROL,
    STATUS_EOF,
    STATUS_INTERRUPTED,
    TRAILER_SIZE,
    WakeupPipe,
    check_budget,
    check_fmt,
    check_relay_args,
    corrupt,
)
from ._common import HEADER as _HEADER
from ._common import encode_frame as encode_frame  # re-exported: this twin is also the reference

_TRAILER = struct.Struct(">QI")
_TIME = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")
IOV_MAX = os.sysconf("SC_IOV_MAX")


def pump(src: int, log_fd: int, offset: int, stream: int, budget: int, fifo: bool = False,
         bufsize: int = PUMP_BUFSIZE) -> tuple[int, bool]:
    """What is in the pipe now becomes one record (reads gathered while FIONREAD says more
    is there, up to ``bufsize``), written at ``offset`` on; ``fifo``: spliced, not read.

    The C loop splices through a staging pipe with vmsplice'd header and trailer,
    which Python lacks; here the header is written, the payload spliced after it
    and the trailer written after that: the same records.
    """
    total = 0
    eof = False
    while total < budget and not eof:
        if fifo:
            avail = _fionread(src)
            if avail > 0:
                n = min(avail, bufsize)
                ts = time.time_ns()
                try:
                    _splice_record(src, log_fd, offset, stream, n, ts)
                except OSError:
                    if total:
                        return total, eof  # kept; the error comes again on the next call
                    raise
                offset += n + 20
                total += n + 20
                continue
        parts: list[bytes] = []
        filled = 0
        ts = 0
        drained = False
        while filled < bufsize:
            want = bufsize - filled
            if filled:  # gather only what is already there: never block
                avail = _fionread(src)
                if avail <= 0:
                    break  # the next read says whether it is EAGAIN or EOF
                want = min(want, avail)
            try:
                data = os.read(src, want)
            except BlockingIOError:
                drained = True
                break
            except InterruptedError:
                continue
            except OSError:
                if not filled:
                    if total:
                        return total, eof
                    raise
                drained = True  # the error comes again on the next call, after this data is kept
                break
            if not data:
                eof = True
                break
            if not filled:
                ts = time.time_ns()
            parts.append(data)
            filled += len(data)
        if filled:
            try:
                record = [_HEADER.pack(stream, filled), *parts, _TRAILER.pack(ts, filled)]
                _pwritev_all(log_fd, record, offset)
            except OSError:
                if total:
                    return total, eof
                raise
            offset += filled + 20
            total += filled + 20
        if drained:
            break
    return total, eof


def _fionread(fd: int) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


def _splice_record(src: int, log_fd: int, offset: int, stream: int, n: int, ts: int) -> None:
    _pwritev_all(log_fd, [_HEADER.pack(stream, n)], offset)
    at, left = offset + HEADER_SIZE, n
    while left:
        k = os.splice(src, log_fd, left, offset_dst=at, flags=os.SPLICE_F_MOVE)
        if not k:
            raise OSError(errno.EIO, "the pipe emptied under the pump")
        at += k
        left -= k
    _pwritev_all(log_fd, [_TRAILER.pack(ts, n)], at)


def _pwritev_all(fd: int, parts: list, offset: int) -> None:
    views = [memoryview(p) for p in parts]
    i = 0
    while i < len(views):
        n = os.pwritev(fd, views[i:], offset)
        offset += n
        while i < len(views) and n >= len(views[i]):
            n -= len(views[i])
            i += 1
        if n:
            views[i] = views[i][n:]


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


_tls = _thread._local()


def _scratch(size: int) -> bytearray:
    """This thread's conversion buffer, shared by its cursors (as in C)."""
    buf = getattr(_tls, "scratch", None)
    if buf is None or len(buf) < size:
        buf = _tls.scratch = bytearray(size)
    return buf


class Cursor:
    """One follower's place in a log and the output it still owes its destination.

    Converted output not yet written is a bytes object of its own (at most a
    window); a payload still to come from the file is (position, bytes left),
    then the trailer that follows it.
    """

    __slots__ = ("_file_left", "_file_pos", "_out", "_owed", "_past_until", "_window", "offset")

    def __init__(self, offset: int = 0, bufsize: int = RELAY_WINDOW) -> None:
        if bufsize < 64:
            raise ValueError(f"a relay window of {bufsize} bytes is too small")
        self.offset = offset
        self._window = bufsize
        self._out = memoryview(b"")
        self._file_pos = self._file_left = 0
        self._owed = b""
        self._past_until = False

    @property
    def pending(self) -> bytes:
        return bytes(self._out)

    @property
    def busy(self) -> bool:
        return bool(self._out or self._file_left or self._owed)

    @property
    def past_until(self) -> bool:
        return self._past_until

    @property
    def bufsize(self) -> int:
        return self._window

    def __repr__(self) -> str:
        return (f"Cursor(offset={self.offset}, pending={len(self._out)}, from_file={self._file_left}, "
                f"past_until={self._past_until})")


class _Full(Exception):
    """dst took less than it was given: the rest waits in the cursor."""


def _write_out(cursor: Cursor, dst: int, data) -> int:
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            done += os.write(dst, view[done:])
        except BlockingIOError:
            cursor._out = memoryview(bytes(view[done:]))
            raise _Full(done) from None
    return done


def _pay_debts(cursor: Cursor, log_fd: int, dst: int) -> int:
    """Pending output, a payload from the file, its trailer; _Full(written) when dst fills."""
    total = 0
    while cursor._out:
        try:
            n = os.write(dst, cursor._out)
        except BlockingIOError:
            raise _Full(total) from None
        cursor._out = cursor._out[n:]
        total += n
    while cursor._file_left:
        try:
            n = os.sendfile(dst, log_fd, cursor._file_pos, min(cursor._file_left, 1 << 30))
        except BlockingIOError:
            raise _Full(total) from None
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            try:  # dst takes no sendfile
                total += _copy_from_file(cursor, log_fd, dst)
            except _Full as full:
                raise _Full(total + full.args[0]) from None
            continue
        if not n:
            raise OSError(errno.EIO, "the log is shorter than its records say")
        cursor._file_pos += n
        cursor._file_left -= n
        total += n
    while cursor._owed:
        try:
            n = os.write(dst, cursor._owed)
        except BlockingIOError:
            raise _Full(total) from None
        cursor._owed = cursor._owed[n:]
        total += n
    return total


def _copy_from_file(cursor: Cursor, log_fd: int, dst: int) -> int:
    data = os.pread(log_fd, min(cursor._file_left, cursor._window), cursor._file_pos)
    if not data:
        raise OSError(errno.EIO, "the log is shorter than its records say")
    cursor._file_pos += len(data)
    cursor._file_left -= len(data)
    return _write_out(cursor, dst, data)


def relay(cursor: Cursor, log_fd: int, end: int, dst: int, mode: int, mask: int,
          since: int = 0, until: int = MAX_TIME, merge: bool = False) -> tuple[int, bool]:
    check_relay_args(mode, since, until)
    convert = _convert_merged if merge and mode != MODE_RAW else _convert
    total = 0
    window = cursor._window
    try:
        while True:
            total += _pay_debts(cursor, log_fd, dst)
            if cursor._past_until or cursor.offset >= end:
                return total, False
            view = memoryview(_scratch(window))[: min(window, end - cursor.offset)]
            got = os.preadv(log_fd, [view], cursor.offset)
            parts, used, bad, big = convert(view[:got], window, mode, mask, since, until, cursor)
            if big and not cursor._past_until:
                taken = _take_big(cursor, view[used : used + HEADER_SIZE], cursor.offset + used, log_fd,
                                  mode, mask, since, until)
                if isinstance(taken, Exception):
                    if used == 0:
                        raise taken
                else:
                    size, head = taken
                    used += size
                    if head:
                        parts.append(head)
            elif used == 0 and not cursor._past_until:
                # Nothing whole at the start: corrupt, or a short read (the file shrank).
                if bad:
                    raise ValueError(f"corrupt log record at offset {cursor.offset}")
                return total, False
            cursor.offset += used
            total += _write_out(cursor, dst, b"".join(parts))
    except _Full as full:
        return total + full.args[0], True


def _take_big(cursor: Cursor, header, at: int, log_fd: int, mode: int, mask: int, since: int,
              until: int):
    """The record at ``at`` goes from the file: (its size, its output header), (0, b"") when
    it is past ``until``, or the exception for a corrupt or cut one."""
    stream, n = _HEADER.unpack(header)
    if stream > CONTROL or n > MAX_PAYLOAD:
        return ValueError(f"corrupt log record at offset {at}")
    raw = os.pread(log_fd, TRAILER_SIZE, at + HEADER_SIZE + n)
    if len(raw) < TRAILER_SIZE:
        return OSError(errno.EIO, "the log is shorter than its records say")
    ts, n2 = _TRAILER.unpack(raw)
    if n2 != n:
        return ValueError(f"corrupt log record at offset {at}")
    if ts > until:
        cursor._past_until = True
        return 0, b""
    head = b""
    if mask >> stream & 1 and ts >= since:
        if mode != MODE_RAW:
            head = _HEADER.pack(stream, n)
        cursor._file_pos, cursor._file_left = at + HEADER_SIZE, n
        if mode == MODE_RECORDS:
            cursor._owed = bytes(raw)
    return HEADER_SIZE + n + TRAILER_SIZE, head


def _starts_big(buf: memoryview, pos: int, window: int) -> bool:
    """A record sent from the file (SENDFILE_MIN payload bytes or more, or larger than the
    window) starts at pos, judged on its header alone (a corrupt one is _entry_at's)."""
    if len(buf) - pos < HEADER_SIZE:
        return False
    stream, n = _HEADER.unpack_from(buf, pos)
    if stream > CONTROL or n > MAX_PAYLOAD:
        return False
    return n >= SENDFILE_MIN or HEADER_SIZE + n + TRAILER_SIZE > window


def _convert(buf: memoryview, window: int, mode: int, mask: int, since: int, until: int,
             cursor: Cursor) -> tuple[list, int, bool, bool]:
    """Output pieces of the whole small records at the start of buf, input used, stopped at a
    corrupt one, stopped at a big one."""
    parts: list = []
    pos = run_start = run_end = 0  # a run of selected records, sliced once (RECORDS mode)
    big = False
    while True:
        if _starts_big(buf, pos, window):
            big = True
            break
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
    return parts, pos, not big and size < 0, big


def _convert_merged(buf: memoryview, window: int, mode: int, mask: int, since: int, until: int,
                    cursor: Cursor) -> tuple[list, int, bool, bool]:
    """_convert() merging consecutive selected small records of one stream into one entry.

    Only records converted together merge, as in C (where the comment says why
    merging happens on the read side); headers are written anew.
    """
    parts: list = []
    pos = 0
    entry: list = []  # the open entry: stream, first time, length, payload views
    big = False

    def close() -> None:
        stream, t, length, views = entry
        parts.append(_HEADER.pack(stream, length))
        parts.extend(views)
        if mode == MODE_RECORDS:
            parts.append(_TRAILER.pack(t, length))

    while True:
        if _starts_big(buf, pos, window):
            big = True
            break
        size, stream, n = _entry_at(buf, pos, MODE_RECORDS)
        if size <= 0:
            break
        t = _TIME.unpack_from(buf, pos + HEADER_SIZE + n)[0]
        if t > until:
            cursor._past_until = True
            break
        if mask >> stream & 1 and t >= since:
            payload = buf[pos + HEADER_SIZE : pos + HEADER_SIZE + n]
            if entry and entry[0] == stream and entry[2] + n <= MAX_PAYLOAD:
                entry[2] += n
                entry[3].append(payload)
            else:
                if entry:
                    close()
                entry = [stream, t, n, [payload]]
        pos += size
    if entry:
        close()
    return parts, pos, not big and size < 0, big


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


# -- demux_from ----------------------------------------------------------------------------

_PART_HEADER, _PART_PAYLOAD, _PART_TRAILER = 0, 1, 2


class _Stop(Exception):
    """Ends a demux_from call with a status; the Demuxer keeps its place."""

    def __init__(self, status: int) -> None:
        self.status = status


class Demuxer:
    """A reader's place in one record/frame stream between demux_from calls.

    The parts of the current entry read so far, payload read but not yet
    written, and the caller's bytes not yet consumed: an interrupted call
    loses nothing and the next one repeats nothing. One thread at a time.
    """

    __slots__ = ("_buf", "_control", "_done", "_entry", "_fmt", "_header", "_input", "_length", "_offset",
                 "_part", "_pending", "_pipes", "_trailer", "budget")

    def __init__(self, fmt: int, budget: int = DEMUX_BUDGET) -> None:
        check_fmt(fmt)
        check_budget(budget)
        self._fmt = fmt
        self.budget = budget
        self._offset = 0  # stream bytes consumed
        self._entry = 0  # stream offset of the current entry
        self._part = _PART_HEADER
        self._header = bytearray()
        self._trailer = bytearray()
        self._control = bytearray()
        self._length = 0
        self._done = 0  # payload bytes consumed (streams 0 to 2)
        self._buf = bytearray(DEMUX_AHEAD)  # payload read through it when out is not a pipe
        self._pending = memoryview(b"")  # read into _buf, not yet written
        self._input = memoryview(b"")
        self._pipes = [(-1, False), (-1, False)]  # (fd, is a pipe) for streams 1 and 2

    @property
    def fmt(self) -> int:
        return self._fmt

    @property
    def offset(self) -> int:
        """Stream bytes consumed (``initial`` ones included)."""
        return self._offset

    def __repr__(self) -> str:
        return f"Demuxer(fmt={self._fmt}, offset={self._offset})"

    def _step(self, src: int, out1: int, out2: int, watch: _SignalWatch) -> int | None:
        """One part of an entry; a status when a control entry is complete."""
        stream = self._header[0] if self._header else 0
        if self._part == _PART_HEADER:
            if not self._header:
                self._entry = self._offset
            self._take_exact(self._header, HEADER_SIZE, src, watch)
            stream, n = _HEADER.unpack(self._header)
            if stream > CONTROL or n > MAX_PAYLOAD or self._header[1:4] != bytes(3):
                raise corrupt(self._fmt, self._entry)
            self._length, self._done, self._part = n, 0, _PART_PAYLOAD
            return None
        if self._part == _PART_PAYLOAD:
            if stream == CONTROL:
                self._take_exact(self._control, self._length, src, watch)
            else:
                self._move_payload(src, stream, out1 if stream == 1 else out2 if stream == 2 else -1, watch)
            if self._fmt == MODE_RECORDS:
                self._part = _PART_TRAILER
                return None
        else:
            self._take_exact(self._trailer, TRAILER_SIZE, src, watch)
            if _LENGTH.unpack_from(self._trailer, 8)[0] != self._length:
                raise corrupt(self._fmt, self._entry)
        self._part = _PART_HEADER
        self._header.clear()
        self._trailer.clear()
        return STATUS_CONTROL if stream == CONTROL else None

    def _take(self, src: int, want: int, watch: _SignalWatch) -> bytes | memoryview:
        """Up to ``want`` bytes: the caller's first, then from src."""
        if self._input:
            data, self._input = self._input[:want], self._input[want:]
            return data
        watch.wait(src, select.POLLIN)
        data = os.read(src, want)
        if not data:
            raise _Stop(STATUS_EOF)
        return data

    def _take_exact(self, part: bytearray, want: int, src: int, watch: _SignalWatch) -> None:
        while len(part) < want:
            data = self._take(src, want - len(part), watch)
            part += data
            self._offset += len(data)

    def _is_pipe(self, slot: int, fd: int) -> bool:
        checked, pipe = self._pipes[slot]
        if checked != fd:
            try:
                pipe = (os.fstat(fd).st_mode & 0o170000) == 0o010000  # S_ISFIFO
            except OSError:
                pipe = False
            self._pipes[slot] = (fd, pipe)
        return pipe

    def _move_payload(self, src: int, stream: int, out: int, watch: _SignalWatch) -> None:
        """The current payload to out (-1 discards): spliced into a pipe, else through _buf."""
        while True:
            while self._pending:
                watch.wait(out, select.POLLOUT)
                self._pending = self._pending[os.write(out, self._pending) :]
            want = self._length - self._done
            if not want:
                return
            if self._input:
                chunk = self._input[:want]
                n = len(chunk)
                if out >= 0:
                    watch.wait(out, select.POLLOUT)
                    n = os.write(out, chunk)
                self._input = self._input[n:]
            elif out >= 0 and self._is_pipe(stream - 1, out):
                watch.wait(src, select.POLLIN)
                watch.wait(out, select.POLLOUT)
                try:
                    n = os.splice(src, out, want, flags=os.SPLICE_F_MOVE)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                    self._pipes[stream - 1] = (out, False)  # not spliceable after all
                    continue
                if not n:
                    raise _Stop(STATUS_EOF)
            else:
                watch.wait(src, select.POLLIN)
                n = os.readv(src, [memoryview(self._buf)[: min(want, len(self._buf))]])
                if not n:
                    raise _Stop(STATUS_EOF)
                if out >= 0:
                    self._pending = memoryview(self._buf)[:n]
            self._done += n
            self._offset += n


def demux_from(demuxer: Demuxer, src_fd: int, out1: int, out2: int,
               initial: bytes = b"") -> tuple[int, bytes | None]:
    """``initial``, then the blocking src_fd, to out1/out2 until control, EOF or a signal.

    (STATUS_CONTROL, its payload), (STATUS_EOF, None) or (STATUS_INTERRUPTED,
    None): call again with the same Demuxer to go on.
    """
    d = demuxer
    if initial:
        d._input = memoryview(bytes(d._input) + bytes(initial))
    start = d._offset
    with _SignalWatch() as watch:
        try:
            while d._offset - start < d.budget:
                if d._step(src_fd, out1, out2, watch) == STATUS_CONTROL:
                    payload = bytes(d._control)
                    d._control.clear()
                    return STATUS_CONTROL, payload
        except _Stop as stop:
            return stop.status, None
    return STATUS_INTERRUPTED, None


class _SignalWatch:
    """How the twin sees signals, which the C loop sees as EINTR or on its wakeup pipe.

    CPython retries a system call a signal interrupted once the handler ran
    (PEP 475), so Python code never sees EINTR; like the C loop, the twin polls
    the wakeup pipe (``_common.WakeupPipe``) along with each fd it is about to
    wait for.
    """

    def __enter__(self) -> _SignalWatch:
        self._wake = WakeupPipe().__enter__()
        if self._wake.fd >= 0:
            self._poller = select.poll()
            self._poller.register(self._wake.fd, select.POLLIN)
        return self

    def wait(self, fd: int, events: int) -> None:
        """Until fd is ready for ``events`` (or in error: the call will say); _Stop on a signal."""
        if self._wake.fd < 0:
            return
        self._poller.register(fd, events)
        try:
            ready = dict(self._poller.poll())
        finally:
            self._poller.unregister(fd)
        if self._wake.fd in ready:
            self._wake.forward()
            raise _Stop(STATUS_INTERRUPTED)

    def __exit__(self, *exc: object) -> None:
        self._wake.__exit__(*exc)
