"""relay(): log records to a socket or pipe, C and pure Python on the same inputs, byte for byte.

The destinations are real and small (a socketpair with a tiny SO_SNDBUF, a
one-page pipe), so writes come up short and hit EAGAIN, and output waits in
the cursor between calls; every byte must still arrive once, in order.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpod import native
from varpod.core.logfile import encode_record
from varpod.native import MODE_FRAMES, MODE_RAW, MODE_RECORDS, _fallback, encode_frame

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = random.Random(0).randbytes(256 << 10)
MODES = (MODE_RECORDS, MODE_FRAMES, MODE_RAW)
STDOUT, STDERR, BOTH = 0b010, 0b100, 0b110


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


def test_ci_runs_the_compiled_module():
    if os.environ.get("CI") == "true":
        assert native.IMPLEMENTATION == "c", native.IMPORT_ERROR


def test_the_live_implementation_is_exported():
    if native.IMPLEMENTATION == "c":
        assert (native.Cursor, native.relay, native.demux, native.scan) == (
            native._CCursor, native._c_relay, native._c_demux, native._c_scan)
    else:
        assert (native.Cursor, native.relay, native.demux, native.scan) == (
            _fallback.Cursor, _fallback.relay, _fallback.demux, _fallback.scan)
    assert (native.MODE_RECORDS, native.MODE_FRAMES, native.MODE_RAW) == (0, 1, 2)


# -- helpers -----------------------------------------------------------------------------------


def payload(i: int, n: int) -> bytes:
    start = (i * 7919) % (len(POOL) - n + 1)
    return POOL[start : start + n]


def make_log(specs: list[tuple[int, int, int]]) -> tuple[int, list[tuple[int, bytes, int]], list[int]]:
    """A memfd holding records for (stream, size, time) specs; returns it, the records, their offsets."""
    records = [(stream, payload(i, n), ts) for i, (stream, n, ts) in enumerate(specs)]
    fd = os.memfd_create("log", os.MFD_CLOEXEC)
    offsets = []
    pos = 0
    for stream, data, ts in records:
        offsets.append(pos)
        raw = encode_record(stream, data, ts)
        os.write(fd, raw)
        pos += len(raw)
    offsets.append(pos)
    return fd, records, offsets


def expected(records, mode: int, mask: int, since: int, until: int) -> bytes:
    """What the spec says relay sends, computed without either implementation."""
    out = []
    for stream, data, ts in records:
        if ts > until:
            break
        if mask >> stream & 1 and ts >= since:
            if mode == MODE_RECORDS:
                out.append(encode_record(stream, data, ts))
            else:
                out.append(encode_frame(stream, data) if mode == MODE_FRAMES else data)
    return b"".join(out)


@contextmanager
def destination(kind: str) -> Iterator[tuple[int, bytearray]]:
    """A non-blocking write end with little room, drained by a reader thread into the yielded bytearray."""
    got = bytearray()
    if kind == "socket":
        w, r = socket.socketpair()
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        w.setblocking(False)
        wfd, rfd = w.detach(), r.detach()
    else:
        rfd, wfd = os.pipe()
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, 4096)
        os.set_blocking(wfd, False)

    def drain() -> None:
        while data := os.read(rfd, 65536):
            got.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        yield wfd, got
    finally:
        os.close(wfd)
        reader.join()
        os.close(rfd)


def wait_writable(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll()


def relay_all(mod, log_fd: int, ends: list[int], dst: int, mode: int, mask: int, since: int, until: int,
              bufsize: int) -> tuple[int, int, bool]:
    """Relay up to each of ``ends`` in turn, as a follower would.

    Returns bytes written, the final offset and past_until.
    """
    cursor = mod.Cursor(bufsize=bufsize)
    total = 0
    for end in ends:
        while True:
            n, blocked = mod.relay(cursor, log_fd, end, dst, mode, mask, since, until)
            total += n
            if not blocked:
                break
            assert cursor.busy
            wait_writable(dst)
        assert not cursor.busy
        assert cursor.offset == end or cursor.past_until
    return total, cursor.offset, cursor.past_until


# -- every mode, mask and window, both implementations -------------------------------------------

sizes = st.one_of(st.integers(0, 300), st.integers(0, 200_000), st.integers(100_000, 200_000))


@st.composite
def scenarios(draw):
    n = draw(st.integers(0, 16))
    times = []
    t = draw(st.integers(0, 1000))
    for _ in range(n):
        t += draw(st.integers(0, 3))  # equal times happen: several reads in one clock tick
        times.append(t)
    specs = [(draw(st.sampled_from([1, 2])), draw(sizes), ts) for ts in times]
    lo, hi = (times[0] - 1, times[-1] + 1) if times else (0, 2)
    since = draw(st.one_of(st.just(0), st.integers(max(lo, 0), hi)))
    until = draw(st.one_of(st.just(_fallback.MAX_TIME), st.integers(max(lo, 0), hi)))
    cuts = sorted(draw(st.sets(st.integers(0, n), max_size=3)))
    return specs, cuts, since, until


@SETTINGS
@given(scenarios(), st.sampled_from(MODES), st.sampled_from([STDOUT, STDERR, BOTH, 0]),
       st.sampled_from([64, 4096, _fallback.RELAY_WINDOW, 1 << 20]), st.sampled_from(["socket", "pipe"]))
def test_both_implementations_send_what_the_spec_says(scenario, mode, mask, bufsize, kind):
    specs, cuts, since, until = scenario
    log_fd, records, offsets = make_log(specs)
    try:
        ends = [offsets[c] for c in cuts] + [offsets[-1]]  # the log grows while followed
        want = expected(records, mode, mask, since, until)
        results = {}
        for name in ("c", "python") if native.IMPLEMENTATION == "c" else ("python",):
            mod = native if name == "c" else _fallback
            with destination(kind) as (dst, got):
                total, offset, past = relay_all(mod, log_fd, ends, dst, mode, mask, since, until, bufsize)
            assert total == len(got)
            assert bytes(got) == want, name
            results[name] = (offset, past)
        stop = next((i for i, (_, _, ts) in enumerate(records) if ts > until), None)
        assert set(results.values()) == {(offsets[-1], False) if stop is None else (offsets[stop], True)}
    finally:
        os.close(log_fd)


# -- cursor state -------------------------------------------------------------------------------


def test_output_waits_in_the_cursor_while_the_destination_is_full(impl):
    log_fd, records, offsets = make_log([(1 + i % 2, 50_000, i) for i in range(10)])
    w, r = socket.socketpair()
    try:
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        w.setblocking(False)
        r.setblocking(False)
        cursor = impl.Cursor()
        got = bytearray()
        calls = 0
        while True:
            _, blocked = impl.relay(cursor, log_fd, offsets[-1], w.fileno(), MODE_FRAMES, BOTH)
            calls += 1
            if not blocked:
                break
            # Nobody reads: the socket is full, so the rest waits in the cursor, already past the log.
            assert cursor.busy
            assert cursor.offset > 0
            before = len(got)
            while len(got) - before < 3000:  # drain a little at a time
                try:
                    got.extend(r.recv(1000))
                except BlockingIOError:
                    break
        while True:
            try:
                got.extend(r.recv(65536))
            except BlockingIOError:
                break
        assert calls > 10
        assert bytes(got) == expected(records, MODE_FRAMES, BOTH, 0, _fallback.MAX_TIME)
        assert cursor.offset == offsets[-1]
        assert not cursor.busy
    finally:
        w.close()
        r.close()
        os.close(log_fd)


@pytest.mark.parametrize("mode", MODES)
def test_a_follower_nobody_reads_holds_at_most_a_window(impl, mode):
    # A stopped client: its socket is full. The cursor keeps what it converted and could
    # not write, which is never more than one window of log, whatever the log holds.
    window = 8192
    log_fd, _, offsets = make_log([(1 + i % 2, 100 + i % 300, i) for i in range(3000)])
    w, r = socket.socketpair()
    try:
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        w.setblocking(False)
        cursor = impl.Cursor(bufsize=window)
        for _ in range(3):  # the follower is woken again and again: nothing more piles up
            _, blocked = impl.relay(cursor, log_fd, offsets[-1], w.fileno(), mode, BOTH, merge=True)
            assert blocked
            assert 0 < len(cursor.pending) <= window
            assert cursor.offset < offsets[-1] // 4
    finally:
        w.close()
        r.close()
        os.close(log_fd)


def test_a_record_larger_than_the_window_goes_from_the_file(impl):
    log_fd, records, offsets = make_log([(1, 10, 1), (2, 200_000, 2), (1, 5, 3), (2, 3000, 4)])
    try:
        cursor = impl.Cursor(bufsize=2048)  # the 3000-byte record is small, but not for this window
        with destination("socket") as (dst, got):
            relay_until_done(impl, cursor, log_fd, offsets[-1], dst, MODE_RECORDS, BOTH)
        assert bytes(got) == expected(records, MODE_RECORDS, BOTH, 0, _fallback.MAX_TIME)
        assert cursor.bufsize == 2048
    finally:
        os.close(log_fd)


def test_a_destination_that_refuses_sendfile_gets_the_payload_copied(impl, tmp_path):
    # The kernel refuses to splice into a file opened O_APPEND (EINVAL): the payload then
    # goes through the window, a window at a time.
    log_fd, records, offsets = make_log([(1, 10, 1), (2, 100_000, 2), (1, 5, 3)])
    out = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        relay_until_done(impl, impl.Cursor(), log_fd, offsets[-1], out, MODE_FRAMES, BOTH)
        assert os.pread(out, 1 << 20, 0) == expected(records, MODE_FRAMES, BOTH, 0, _fallback.MAX_TIME)
    finally:
        os.close(out)
        os.close(log_fd)


def relay_until_done(impl, cursor, log_fd, end, dst, mode, mask, since=0, until=_fallback.MAX_TIME) -> int:
    total = 0
    while True:
        n, blocked = impl.relay(cursor, log_fd, end, dst, mode, mask, since, until)
        total += n
        if not blocked:
            return total
        wait_writable(dst)


def test_until_stops_at_the_first_later_record(impl):
    # Clocks step back; the first record past --until ends the stream regardless.
    log_fd, records, offsets = make_log([(1, 3, 1), (2, 3, 2), (1, 3, 3), (2, 3, 10), (1, 3, 4)])
    try:
        cursor = impl.Cursor()
        with destination("pipe") as (dst, got):
            relay_until_done(impl, cursor, log_fd, offsets[-1], dst, MODE_RAW, BOTH, until=3)
            assert cursor.past_until
            assert cursor.offset == offsets[3]
            assert impl.relay(cursor, log_fd, offsets[-1], dst, MODE_RAW, BOTH, until=3) == (0, False)
        assert bytes(got) == b"".join(data for _, data, _ in records[:3])
    finally:
        os.close(log_fd)


def test_since_skips_earlier_records_and_the_mask_other_streams(impl):
    log_fd, records, offsets = make_log([(1, 4, 1), (2, 4, 5), (1, 4, 5), (2, 4, 6), (1, 4, 9)])
    try:
        with destination("socket") as (dst, got):
            relay_until_done(impl, impl.Cursor(), log_fd, offsets[-1], dst, MODE_FRAMES, STDOUT, since=5)
        assert bytes(got) == encode_frame(1, records[2][1]) + encode_frame(1, records[4][1])
    finally:
        os.close(log_fd)


def test_the_offset_is_settable(impl):
    log_fd, records, offsets = make_log([(1, 100, i) for i in range(5)])
    try:
        cursor = impl.Cursor()
        cursor.offset = offsets[3]
        with destination("pipe") as (dst, got):
            relay_until_done(impl, cursor, log_fd, offsets[-1], dst, MODE_RECORDS, BOTH)
        assert bytes(got) == expected(records[3:], MODE_RECORDS, BOTH, 0, _fallback.MAX_TIME)
        assert cursor.offset == offsets[-1]
    finally:
        os.close(log_fd)


def test_nothing_to_do_at_the_end(impl):
    log_fd, _, offsets = make_log([(1, 10, 1)])
    try:
        cursor = impl.Cursor(offset=offsets[-1])
        with destination("socket") as (dst, got):
            assert impl.relay(cursor, log_fd, offsets[-1], dst, MODE_RECORDS, BOTH) == (0, False)
        assert got == b""
    finally:
        os.close(log_fd)


def test_many_cursors_at_once_share_nothing():
    mod = impl_module("c")
    log_fd, records, offsets = make_log([(1 + i % 2, (i * 3001) % 70_000, i) for i in range(60)])
    results: dict[int, bytes] = {}

    def follow(k: int) -> None:
        mode, mask = MODES[k % 3], (STDOUT, STDERR, BOTH)[k % 3 - 1]
        with destination("socket") as (dst, got):
            relay_until_done(mod, mod.Cursor(bufsize=64 << 10), log_fd, offsets[-1], dst, mode, mask, since=k)
        results[k] = bytes(got) == expected(records, mode, mask, k, _fallback.MAX_TIME)

    try:
        threads = [threading.Thread(target=follow, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == dict.fromkeys(range(8), True)
    finally:
        os.close(log_fd)


# -- errors ----------------------------------------------------------------------------------------


def corrupt_logs() -> dict[str, bytes]:
    good = encode_record(1, b"fine", 1)
    bad_trailer = bytearray(encode_record(2, b"abc", 2))
    bad_trailer[-1] = 4
    return {
        "trailer length": good + bytes(bad_trailer) + good,
        "stream": good + encode_record(4, b"abc", 2) + good,
        "length": good + b"\x01\x00\x00\x00" + ((16 << 20) + 1).to_bytes(4, "big") + bytes(64),
    }


@pytest.mark.parametrize("what", sorted(corrupt_logs()))
@pytest.mark.parametrize("mode", MODES)
def test_a_corrupt_record_raises_after_the_good_ones_went_out(impl, what, mode):
    raw = corrupt_logs()[what]
    log_fd = os.memfd_create("log", os.MFD_CLOEXEC)
    os.write(log_fd, raw)
    try:
        cursor = impl.Cursor()
        with destination("socket") as (dst, got), pytest.raises(ValueError, match="offset 24"):
            relay_until_done(impl, cursor, log_fd, len(raw), dst, mode, BOTH)
        assert bytes(got) == expected([(1, b"fine", 1)], mode, BOTH, 0, _fallback.MAX_TIME)
        assert cursor.offset == len(encode_record(1, b"fine", 1))
    finally:
        os.close(log_fd)


def test_a_reader_gone_away_is_a_broken_pipe(impl):
    log_fd, _, offsets = make_log([(1, 10, 1)])
    r, w = os.pipe()
    os.close(r)
    try:
        with pytest.raises(BrokenPipeError):
            impl.relay(impl.Cursor(), log_fd, offsets[-1], w, MODE_RAW, BOTH)
    finally:
        os.close(w)
        os.close(log_fd)


def test_a_bad_log_fd_is_an_os_error(impl):
    with destination("pipe") as (dst, _), pytest.raises(OSError) as e:
        impl.relay(impl.Cursor(), 9999, 100, dst, MODE_RAW, BOTH)
    assert e.value.errno == errno.EBADF


@pytest.mark.parametrize("args", [(7, 0, 0), (MODE_RAW, -1, 0), (MODE_RAW, 0, 1 << 64)])
def test_bad_arguments_are_value_errors(impl, args):
    mode, since, until = args
    with pytest.raises(ValueError):
        impl.relay(impl.Cursor(), 0, 100, 1, mode, BOTH, since, until)
