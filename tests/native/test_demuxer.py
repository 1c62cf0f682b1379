"""Demuxer and demux_from(): a record/frame stream read from a socket as it arrives, C and pure Python.

A writer thread feeds one end of a socketpair in random pieces (splitting
headers, payloads and trailers); stdout goes to a pipe (the splice path) drained
by a reader thread, stderr to a regular file (read and write). The expected
bytes come from ``encode_frame``/``encode_record``, never from either
implementation. Signals come from ``setitimer`` with a no-op handler; helper
threads block SIGALRM, so it interrupts the call under test.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpod import native
from varpod.core.logfile import encode_record
from varpod.native import (
    MODE_FRAMES,
    MODE_RAW,
    MODE_RECORDS,
    STATUS_CONTROL,
    STATUS_EOF,
    STATUS_INTERRUPTED,
    _fallback,
    encode_frame,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = random.Random(3).randbytes(1 << 20)  # larger than any drawn payload
CONTROL = 3


def impl_module(name: str):
    """The module-level functions for "c" (only live when compiled), native._fallback for "python"."""
    if name == "python":
        return _fallback
    if native.IMPLEMENTATION != "c":
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the compiled module, but it is not live: {native.IMPORT_ERROR}")
        pytest.skip(f"compiled module not live: {native.IMPORT_ERROR or 'VARPOD_NATIVE=python'}")
    return native


@pytest.fixture(params=["c", "python"])
def impl(request):
    return impl_module(request.param)


def live_impls():
    return [native, _fallback] if native.IMPLEMENTATION == "c" else [_fallback]


def test_ci_runs_the_compiled_module():
    if os.environ.get("CI") == "true":
        assert native.IMPLEMENTATION == "c", native.IMPORT_ERROR


def test_the_live_implementation_is_exported():
    if native.IMPLEMENTATION == "c":
        assert (native.Demuxer, native.demux_from) == (native._CDemuxer, native._c_demux_from)
    else:
        assert (native.Demuxer, native.demux_from) == (_fallback.Demuxer, _fallback.demux_from)
    assert (STATUS_CONTROL, STATUS_EOF, STATUS_INTERRUPTED) == (0, 1, 2)


# -- helpers -------------------------------------------------------------------------------------


def payload(i: int, n: int) -> bytes:
    start = (i * 7919) % (len(POOL) - n + 1)
    return POOL[start : start + n]


def encode(fmt: int, stream: int, data: bytes, ts: int = 0) -> bytes:
    return encode_record(stream, data, ts) if fmt == MODE_RECORDS else encode_frame(stream, data)


def quiet_thread(target, *args) -> threading.Thread:
    """A started helper thread that never takes SIGALRM: the signal is for the call under test."""

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        target(*args)

    t = threading.Thread(target=run)
    t.start()
    return t


class PipeSink:
    """A pipe whose read end a thread drains into ``got`` once started."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self.got = bytearray()
        self._thread: threading.Thread | None = None

    def start(self) -> PipeSink:
        self._thread = quiet_thread(self._drain)
        return self

    def _drain(self) -> None:
        while data := os.read(self.r, 1 << 20):
            self.got.extend(data)

    def close(self) -> bytes:
        os.close(self.w)
        if self._thread is not None:
            self._thread.join()
        os.close(self.r)
        return bytes(self.got)


class FileSink:
    def __init__(self) -> None:
        self.w = os.memfd_create("out", os.MFD_CLOEXEC)

    def close(self) -> bytes:
        size = os.fstat(self.w).st_size
        data = os.pread(self.w, size, 0) if size else b""
        os.close(self.w)
        return data


def send_pieces(sock: socket.socket, data: bytes, cuts: list[int]) -> None:
    """Send data cut at ``cuts``, then close: the reader sees EOF after the last piece."""
    try:
        pos = 0
        for cut in [*cuts, len(data)]:
            sock.sendall(data[pos:cut])
            pos = cut
    except BrokenPipeError:  # the reader stopped early (a test of errors)
        pass
    finally:
        sock.close()


def run_to_eof(mod, demuxer, src: int, out1: int, out2: int, initial: bytes = b"") -> list[bytes]:
    """Call demux_from until EOF; returns the control payloads met on the way."""
    controls = []
    while True:
        status, control = mod.demux_from(demuxer, src, out1, out2, initial)
        initial = b""
        if status == STATUS_EOF:
            return controls
        if status == STATUS_CONTROL:
            controls.append(control)
        else:
            assert (status, control) == (STATUS_INTERRUPTED, None)


@contextlib.contextmanager
def alarm(every: float = 0.05) -> Iterator[list[int]]:
    """SIGALRM every ``every`` seconds with a handler that only counts: system calls see EINTR."""
    fired: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, every, every)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- generated streams through a socket ---------------------------------------------------------

sizes = st.one_of(st.integers(0, 40), st.integers(0, 3000), st.integers(100_000, 300_000))


@st.composite
def streams(draw):
    """(fmt, entries, data): entries of streams 0-3 (a few controls), encoded."""
    fmt = draw(st.sampled_from([MODE_RECORDS, MODE_FRAMES]))
    specs = draw(st.lists(st.tuples(st.sampled_from([0, 1, 1, 1, 2, 2, CONTROL]), sizes), max_size=10))
    entries = [(s, b'{"end": "eof"}'[: n % 15] if s == CONTROL else payload(i, n))
               for i, (s, n) in enumerate(specs)]
    return fmt, entries, b"".join(encode(fmt, s, d, ts=i) for i, (s, d) in enumerate(entries))


@st.composite
def cuts(draw, size: int) -> list[int]:
    """Where the writer splits the stream: anywhere, often a byte or two apart."""
    points = draw(st.lists(st.integers(0, size), max_size=12))
    near = [p + d for p in points for d in draw(st.sets(st.integers(1, 13), max_size=2)) if p + d < size]
    return sorted({*points, *near})


OUTPUTS = ["pipe+file", "file+pipe", "one pipe", "discard+pipe"]


@SETTINGS
@given(streams(), st.data(), st.sampled_from(OUTPUTS), st.sampled_from([1, 100, _fallback.DEMUX_BUDGET]))
def test_every_payload_reaches_its_output_and_every_control_is_returned(stream, data, outputs, budget):
    fmt, entries, raw = stream
    split = data.draw(cuts(len(raw)))
    initial = raw[: data.draw(st.integers(0, min(len(raw), 100)))]  # what came with the upgrade reply
    want1 = b"".join(d for s, d in entries if s == 1)
    want2 = b"".join(d for s, d in entries if s == 2)
    for mod in live_impls():
        a, b = socket.socketpair()
        writer = quiet_thread(send_pieces, b, raw[len(initial) :], [c - len(initial) for c in split
                                                                   if c > len(initial)])
        pipe = PipeSink().start()
        file = FileSink()
        out1, out2 = {"pipe+file": (pipe.w, file.w), "file+pipe": (file.w, pipe.w),
                      "one pipe": (pipe.w, pipe.w), "discard+pipe": (-1, pipe.w)}[outputs]
        try:
            demuxer = mod.Demuxer(fmt, budget=budget)
            controls = run_to_eof(mod, demuxer, a.fileno(), out1, out2, initial)
            assert demuxer.offset == len(raw)
        finally:
            writer.join()
            a.close()
            got = {"pipe": pipe.close(), "file": file.close()}
        assert controls == [d for s, d in entries if s == CONTROL], mod.__name__
        if outputs == "one pipe":
            assert got["pipe"] == b"".join(d for s, d in entries if s in (1, 2)), mod.__name__
        else:
            first, second = outputs.split("+")
            if first != "discard":
                assert got[first] == want1, mod.__name__
            assert got[second] == want2, mod.__name__


# -- control, EOF, initial bytes -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", [MODE_RECORDS, MODE_FRAMES])
def test_a_control_entry_ends_the_call_and_the_next_call_goes_on(impl, fmt):
    raw = (encode(fmt, 1, b"one") + encode(fmt, CONTROL, b"first") + encode(fmt, 2, b"two")
           + encode(fmt, CONTROL, b""))
    a, b = socket.socketpair()
    out1, out2 = FileSink(), FileSink()
    try:
        b.sendall(raw[10:])
        b.close()
        d = impl.Demuxer(fmt)
        assert impl.demux_from(d, a.fileno(), out1.w, out2.w, initial=raw[:10]) == (STATUS_CONTROL, b"first")
        assert d.offset == len(encode(fmt, 1, b"one") + encode(fmt, CONTROL, b"first"))
        assert impl.demux_from(d, a.fileno(), out1.w, out2.w) == (STATUS_CONTROL, b"")
        assert impl.demux_from(d, a.fileno(), out1.w, out2.w) == (STATUS_EOF, None)
        assert impl.demux_from(d, a.fileno(), out1.w, out2.w) == (STATUS_EOF, None)
    finally:
        a.close()
        assert (out1.close(), out2.close()) == (b"one", b"two")


def test_initial_bytes_alone_can_hold_the_whole_stream(impl):
    # Nothing is ever sent: a read would block, so the control must come from initial alone.
    raw = encode_frame(1, b"out") + encode_frame(CONTROL, b"end") + encode_frame(2, b"late")
    a, b = socket.socketpair()
    out = FileSink()
    try:
        d = impl.Demuxer(MODE_FRAMES)
        assert impl.demux_from(d, a.fileno(), out.w, out.w, initial=raw) == (STATUS_CONTROL, b"end")
        b.close()
        assert impl.demux_from(d, a.fileno(), out.w, out.w) == (STATUS_EOF, None)  # "late" was kept
    finally:
        a.close()
        assert out.close() == b"outlate"


def test_a_control_payload_larger_than_the_buffer(impl):
    big = payload(5, 200_000) * 6  # 1.2 MB: more than the 1 MiB buffer
    raw = encode_record(1, b"x", 1) + encode_record(CONTROL, big, 2)
    a, b = socket.socketpair()
    writer = quiet_thread(send_pieces, b, raw, [5000])
    try:
        assert impl.demux_from(impl.Demuxer(MODE_RECORDS), a.fileno(), -1, -1) == (STATUS_CONTROL, big)
    finally:
        writer.join()
        a.close()


def test_eof_inside_an_entry_is_eof(impl):
    a, b = socket.socketpair()
    b.sendall(encode_frame(1, b"complete") + encode_frame(2, b"cut short")[:12])
    b.close()
    out = FileSink()
    try:
        assert impl.demux_from(impl.Demuxer(MODE_FRAMES), a.fileno(), out.w, out.w) == (STATUS_EOF, None)
    finally:
        a.close()
        assert out.close() == b"complete" + b"cut "


# -- signals ---------------------------------------------------------------------------------------

RECORD = encode_record(1, b"0123456789", 7) + encode_record(2, b"abc", 8) + encode_record(CONTROL, b"{}", 9)


@pytest.mark.parametrize("where", [0, 3, 8, 12, 18, 28, 34, 40, len(RECORD) - 1])
def test_a_signal_interrupts_a_call_waiting_for_input_and_nothing_is_lost(impl, where):
    # Blocked mid-header, mid-payload (a splice into the pipe), mid-trailer: the next call goes on.
    a, b = socket.socketpair()
    pipe, file = PipeSink().start(), FileSink()
    try:
        b.sendall(RECORD[:where])
        d = impl.Demuxer(MODE_RECORDS)
        with alarm() as fired:
            assert impl.demux_from(d, a.fileno(), pipe.w, file.w) == (STATUS_INTERRUPTED, None)
        assert fired
        assert d.offset == where
        b.sendall(RECORD[where:])
        assert impl.demux_from(d, a.fileno(), pipe.w, file.w) == (STATUS_CONTROL, b"{}")
    finally:
        a.close()
        b.close()
        assert (pipe.close(), file.close()) == (b"0123456789", b"abc")


@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_a_signal_interrupts_a_call_waiting_for_its_output(impl, kind):
    # Nobody reads the output yet: the pipe (splice) or the socket (read, then write) fills up.
    big = payload(1, 200_000) * 3
    raw = encode_frame(1, big) + encode_frame(CONTROL, b"done")
    a, b = socket.socketpair()
    writer = quiet_thread(send_pieces, b, raw, [])
    got = bytearray()
    if kind == "pipe":
        sink_r, sink_w = os.pipe()
    else:
        w, r = socket.socketpair()
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sink_w, sink_r = w.detach(), r.detach()
    try:
        d = impl.Demuxer(MODE_FRAMES)
        with alarm():
            assert impl.demux_from(d, a.fileno(), sink_w, -1) == (STATUS_INTERRUPTED, None)
        reader = quiet_thread(lambda: got.extend(b"".join(iter(lambda: os.read(sink_r, 1 << 20), b""))))
        assert impl.demux_from(d, a.fileno(), sink_w, -1) == (STATUS_CONTROL, b"done")
        os.close(sink_w)
        sink_w = -1
        reader.join()
    finally:
        writer.join()
        a.close()
        if sink_w >= 0:
            os.close(sink_w)
        os.close(sink_r)
    assert bytes(got) == big


def test_the_budget_returns_between_system_calls_too(impl):
    raw = b"".join(encode_frame(1 + i % 2, payload(i, 1000)) for i in range(50)) + encode_frame(CONTROL, b"")
    a, b = socket.socketpair()
    writer = quiet_thread(send_pieces, b, raw, [])
    out = FileSink()
    try:
        d = impl.Demuxer(MODE_FRAMES, budget=10_000)
        statuses = []
        while True:
            status, _ = impl.demux_from(d, a.fileno(), out.w, out.w)
            statuses.append(status)
            if status != STATUS_INTERRUPTED:
                break
            assert d.offset < len(raw)
        assert statuses[-1] == STATUS_CONTROL
        assert len(statuses) > 4
    finally:
        writer.join()
        a.close()
        assert out.close() == b"".join(payload(i, 1000) for i in range(50))


def test_a_signal_handler_that_raises_propagates(impl):
    a, b = socket.socketpair()

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(KeyboardInterrupt):
            while True:  # the C call returns STATUS_INTERRUPTED; the handler raises right after
                impl.demux_from(impl.Demuxer(MODE_FRAMES), a.fileno(), -1, -1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        a.close()
        b.close()


def _feed_then_wait(sock: socket.socket, data: bytes, quiet: threading.Event) -> None:
    """Send data, then nothing until ``quiet`` is set; then the end, if anyone still reads."""
    with contextlib.suppress(OSError):
        sock.sendall(data)
        quiet.wait(10)
        sock.sendall(encode_frame(CONTROL, b""))


def _drain_and_signal(fd: int, threshold: int, thread: int) -> None:
    """Read fd to EOF; SIGALRM to ``thread`` once ``threshold`` bytes went by."""
    got = 0
    poked = False
    while chunk := os.read(fd, 1 << 16):
        got += len(chunk)
        if not poked and got >= threshold:  # the loop under test is busy copying now
            signal.pthread_kill(thread, signal.SIGALRM)
            poked = True


def test_a_signal_that_interrupts_no_system_call_still_stops_the_loop(impl):
    """A signal that lands while the loop copies (in user space, or in a call that does
    not block) interrupts nothing; the loop must still stop, not go on to block in a read
    that more data may never end. The CLI's SIGINT to the container depended on it."""
    burst = b"".join(encode_frame(1, payload(i, 512)) for i in range(2000))
    old = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    rng = random.Random(7)
    try:
        for _ in range(20):
            a, b = socket.socketpair()
            sink_r, sink_w = os.pipe()
            quiet = threading.Event()
            threads = [quiet_thread(_feed_then_wait, b, burst, quiet),
                       quiet_thread(_drain_and_signal, sink_r, rng.randrange(1, len(burst) // 2),
                                    threading.get_ident())]
            try:
                status, _ = impl.demux_from(impl.Demuxer(MODE_FRAMES), a.fileno(), sink_w, -1)
                stopped_by_the_signal = not quiet.is_set()
            finally:
                quiet.set()
                a.close()  # the feeder's sendall fails instead of waiting for a reader
                os.close(sink_w)
                for t in threads:
                    t.join()
                os.close(sink_r)
                b.close()
            assert status == STATUS_INTERRUPTED and stopped_by_the_signal
    finally:
        signal.signal(signal.SIGALRM, old)


def test_the_python_twin_passes_signals_on_to_the_callers_wakeup_fd():
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(w)
    a, b = socket.socketpair()
    try:
        with alarm():
            status, _ = _fallback.demux_from(_fallback.Demuxer(MODE_FRAMES), a.fileno(), -1, -1)
        assert status == STATUS_INTERRUPTED
        assert signal.SIGALRM in os.read(r, 64)
        assert signal.set_wakeup_fd(old_wakeup) == w
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


# -- errors ----------------------------------------------------------------------------------------


def corrupt_streams(fmt: int) -> dict[str, bytes]:
    cases = {
        "stream": encode(fmt, 4, b"x"),
        "reserved": b"\x01\x00\x01\x00" + (1).to_bytes(4, "big") + b"x" + bytes(12),
        "length": b"\x02\x00\x00\x00" + ((16 << 20) + 1).to_bytes(4, "big"),
    }
    if fmt == MODE_RECORDS:
        bad = bytearray(encode_record(2, b"abc", 2))
        bad[-1] = 9
        cases["trailer length"] = bytes(bad)
    return cases


CORRUPT = [(fmt, what) for fmt in (MODE_RECORDS, MODE_FRAMES) for what in corrupt_streams(fmt)]


@pytest.mark.parametrize(("fmt", "what"), CORRUPT)
def test_corrupt_input_raises_after_the_good_payloads_and_stays_corrupt(impl, fmt, what):
    good = encode(fmt, 1, b"good")
    raw = good + corrupt_streams(fmt)[what]
    a, b = socket.socketpair()
    writer = quiet_thread(send_pieces, b, raw, [3, len(good) + 5])
    out = FileSink()
    try:
        d = impl.Demuxer(fmt)
        for _ in range(2):
            with pytest.raises(ValueError, match=f"at offset {len(good)}$"):
                impl.demux_from(d, a.fileno(), out.w, out.w)
    finally:
        writer.join()
        a.close()
        # A payload streams out as it arrives: a record's trailer can only disown it afterwards.
        assert out.close() == (b"goodabc" if what == "trailer length" else b"good")


@pytest.mark.parametrize("via", ["splice", "write"])
def test_a_closed_reader_is_a_broken_pipe(impl, via):
    a, b = socket.socketpair()
    r, w = os.pipe()
    os.close(r)
    try:
        with pytest.raises(BrokenPipeError):
            if via == "splice":  # the payload comes from the socket
                b.sendall(encode_frame(2, b"lost" * 1000))
                impl.demux_from(impl.Demuxer(MODE_FRAMES), a.fileno(), -1, w)
            else:  # the caller's bytes go out with write()
                impl.demux_from(impl.Demuxer(MODE_FRAMES), a.fileno(), -1, w, encode_frame(2, b"lost"))
    finally:
        os.close(w)
        a.close()
        b.close()


def test_a_bad_source_is_an_os_error(impl):
    with pytest.raises(OSError) as e:
        impl.demux_from(impl.Demuxer(MODE_FRAMES), 9999, -1, -1)
    assert e.value.errno == errno.EBADF


def test_raw_is_not_a_format_to_demux(impl):
    with pytest.raises(ValueError):
        impl.Demuxer(MODE_RAW)
    with pytest.raises(ValueError):
        impl.Demuxer(MODE_FRAMES, budget=0)


def test_the_python_twin_falls_back_to_read_and_write_when_splice_refuses(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EINVAL, "not spliceable")

    monkeypatch.setattr(os, "splice", refuse)
    a, b = socket.socketpair()
    b.sendall(encode_frame(1, b"spliced?") + encode_frame(CONTROL, b""))
    pipe = PipeSink().start()
    try:
        assert _fallback.demux_from(_fallback.Demuxer(MODE_FRAMES), a.fileno(), pipe.w, -1) == (
            STATUS_CONTROL, b"")
    finally:
        a.close()
        b.close()
        assert pipe.close() == b"spliced?"


def test_initial_bytes_after_a_read_ahead_are_refused():
    """The C loop reads src ahead: bytes handed in after that would go out of order."""
    a, b = socket.socketpair()
    try:
        b.sendall(encode_frame(1, b"x") + encode_frame(CONTROL, b"end") + encode_frame(1, b"later"))
        d = native.Demuxer(MODE_FRAMES)
        out = FileSink()
        try:
            assert native.demux_from(d, a.fileno(), out.w, -1) == (STATUS_CONTROL, b"end")
        finally:
            assert out.close() == b"x"
        if native.IMPLEMENTATION == "c":  # the twin reads exactly what it needs: nothing ahead
            with pytest.raises(ValueError, match="initial bytes"):
                native.demux_from(d, a.fileno(), -1, -1, encode_frame(1, b"late"))
    finally:
        a.close()
        b.close()
