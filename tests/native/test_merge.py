"""relay(merge=True): consecutive records of one stream go out as one entry, C and Python byte for byte.

A log written a line at a time holds one small record per read of the
container's pipe; merged, a replay carries a few large entries. Merging only
joins records that one pass of relay converts (one buffer's worth of log), so
the expected bytes come from a model of those passes, written from the spec
and ``encode_record``/``encode_frame``, never from either implementation.
"""

from __future__ import annotations

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
from varpod.core.logfile import OVERHEAD, encode_record
from varpod.native import MODE_FRAMES, MODE_RAW, MODE_RECORDS, _fallback, encode_frame

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = random.Random(2).randbytes(256 << 10)
MODES = (MODE_RECORDS, MODE_FRAMES, MODE_RAW)
STDOUT, STDERR, BOTH = 0b010, 0b100, 0b110
MAX_TIME = _fallback.MAX_TIME


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


# -- helpers -----------------------------------------------------------------------------------


def payload(i: int, n: int) -> bytes:
    start = (i * 7919) % (len(POOL) - n + 1)
    return POOL[start : start + n]


def make_log(specs: list[tuple[int, int, int]]) -> tuple[int, list[tuple[int, bytes, int]], list[int]]:
    """A memfd holding records for (stream, size, time) specs; returns it, the records, their offsets."""
    records = [(stream, payload(i, n), ts) for i, (stream, n, ts) in enumerate(specs)]
    fd = os.memfd_create("log", os.MFD_CLOEXEC)
    offsets = [0]
    for stream, data, ts in records:
        raw = encode_record(stream, data, ts)
        os.write(fd, raw)
        offsets.append(offsets[-1] + len(raw))
    return fd, records, offsets


def encode(mode: int, stream: int, data: bytes, ts: int) -> bytes:
    if mode == MODE_RECORDS:
        return encode_record(stream, data, ts)
    return encode_frame(stream, data) if mode == MODE_FRAMES else data


def is_big(n: int, window: int) -> bool:
    """A record relay sends from the file: a payload of SENDFILE_MIN bytes or more, or larger
    than the window."""
    return n >= _fallback.SENDFILE_MIN or n + OVERHEAD > window


def passes(records, offsets: list[int], ends: list[int], bufsize: int, until: int) -> Iterator[range]:
    """The records each pass of relay converts, following the log to each of ``ends`` in turn.

    A pass takes the whole small records in one window's worth of log from the
    cursor, up to the first big record, which goes alone in a pass of its own
    (nothing merges with it), and stops at the first record later than
    ``until``, which ends the stream.
    """
    i = 0
    for end in ends:
        while offsets[i] < end:
            if is_big(len(records[i][1]), bufsize):
                if records[i][2] > until:
                    return
                yield range(i, i + 1)
                i += 1
                continue
            avail = min(bufsize, end - offsets[i])
            j = i
            while (j < len(records) and offsets[j + 1] - offsets[i] <= avail
                   and not is_big(len(records[j][1]), bufsize)):
                j += 1
            stop = next((k for k in range(i, j) if records[k][2] > until), None)
            yield range(i, j if stop is None else stop)
            if stop is not None:
                return
            i = j


def expected(records, offsets, ends, bufsize, mode, mask, since, until, merge: bool) -> bytes:
    """What relay sends: with merge, runs of one stream within a pass joined, up to 16 MiB each."""
    out = []
    for batch in passes(records, offsets, ends, bufsize, until):
        groups: list[list] = []  # [stream, first time, payloads]
        for k in batch:
            stream, data, ts = records[k]
            if not (mask >> stream & 1 and ts >= since):
                continue
            last = groups[-1] if groups else None
            if (merge and mode != MODE_RAW and last and last[0] == stream
                    and sum(map(len, last[2])) + len(data) <= _fallback.MAX_PAYLOAD):
                last[2].append(data)
            else:
                groups.append([stream, ts, [data]])
        out.extend(encode(mode, stream, b"".join(parts), ts) for stream, ts, parts in groups)
    return b"".join(out)


def runs(buf: bytes, mode: int) -> list[tuple[int, bytes]]:
    """(stream, bytes) of each run of one stream's entries in buf, decoded with scan."""
    entries, used = _fallback.scan(buf, mode)
    assert used == len(buf)
    out: list[tuple[int, bytes]] = []
    for stream, at, n in entries:
        if out and out[-1][0] == stream:
            out[-1] = (stream, out[-1][1] + buf[at : at + n])
        else:
            out.append((stream, buf[at : at + n]))
    return out


@contextmanager
def destination(kind: str, room: int = 4096) -> Iterator[tuple[int, bytearray]]:
    """A non-blocking write end with little room, drained by a reader thread into the yielded bytearray."""
    got = bytearray()
    if kind == "socket":
        w, r = socket.socketpair()
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, room)
        w.setblocking(False)
        wfd, rfd = w.detach(), r.detach()
    else:
        rfd, wfd = os.pipe()
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, room)
        os.set_blocking(wfd, False)

    def drain() -> None:
        while data := os.read(rfd, 1 << 20):
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


def relay_all(mod, log_fd, ends, dst, mode, mask, since, until, bufsize, merge) -> int:
    """Relay up to each of ``ends`` in turn, as a follower would; returns bytes written."""
    cursor = mod.Cursor(bufsize=bufsize)
    total = 0
    for end in ends:
        while True:
            n, blocked = mod.relay(cursor, log_fd, end, dst, mode, mask, since, until, merge=merge)
            total += n
            if not blocked:
                break
            assert cursor.busy
            wait_writable(dst)
        assert not cursor.busy
    return total


# -- every mode, mask and window, merged and not, both implementations ----------------------------

sizes = st.one_of(st.integers(0, 300), st.integers(0, 3000), st.integers(0, 120_000))


@st.composite
def scenarios(draw):
    """Runs of one stream (what line-at-a-time output leaves), times that repeat and step back."""
    specs = []
    t = draw(st.integers(0, 1000))
    for stream, count in draw(st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(1, 6)), max_size=6)):
        for _ in range(count):
            t += draw(st.sampled_from([0, 1, 1, 2, -1]))
            specs.append((stream, draw(sizes), max(t, 0)))
    times = [ts for _, _, ts in specs]
    lo, hi = (min(times) - 1, max(times) + 1) if times else (0, 2)
    since = draw(st.one_of(st.just(0), st.integers(max(lo, 0), hi)))
    until = draw(st.one_of(st.just(MAX_TIME), st.integers(max(lo, 0), hi)))
    cuts = sorted(draw(st.sets(st.integers(0, len(specs)), max_size=3)))
    return specs, cuts, since, until


@SETTINGS
@given(scenarios(), st.sampled_from(MODES), st.sampled_from([STDOUT, STDERR, BOTH, 0]),
       st.sampled_from([64, 4096, _fallback.RELAY_WINDOW, 1 << 20]), st.sampled_from(["socket", "pipe"]))
def test_merged_and_unmerged_output_is_what_the_model_says(scenario, mode, mask, bufsize, kind):
    specs, cuts, since, until = scenario
    log_fd, records, offsets = make_log(specs)
    try:
        ends = [offsets[c] for c in cuts] + [offsets[-1]]  # the log grows while followed
        sent = {}
        for merge in (False, True):
            want = expected(records, offsets, ends, bufsize, mode, mask, since, until, merge)
            for mod in live_impls():
                with destination(kind) as (dst, got):
                    total = relay_all(mod, log_fd, ends, dst, mode, mask, since, until, bufsize, merge)
                assert total == len(got)
                assert bytes(got) == want, (mod.__name__, merge)
            sent[merge] = want
        if mode == MODE_RAW:
            assert sent[True] == sent[False]
        else:
            # Merging changes the entries, never the bytes each stream carries, nor their order.
            assert runs(sent[True], mode) == runs(sent[False], mode)
            assert len(_fallback.scan(sent[True], mode)[0]) <= len(_fallback.scan(sent[False], mode)[0])
    finally:
        os.close(log_fd)


# -- what a merged entry looks like ---------------------------------------------------------------


@pytest.mark.parametrize("mode", [MODE_RECORDS, MODE_FRAMES])
def test_a_run_of_one_stream_is_one_entry_with_its_first_time(impl, mode):
    specs = [(1, 0, 10), (1, 3, 11), (1, 4, 12), (2, 5, 13), (2, 0, 14), (1, 6, 15)]
    log_fd, records, offsets = make_log(specs)
    try:
        with destination("pipe") as (dst, got):
            relay_all(impl, log_fd, [offsets[-1]], dst, mode, BOTH, 0, MAX_TIME, 1 << 20, merge=True)
        out = records[1][1] + records[2][1]
        assert bytes(got) == (encode(mode, 1, out, 10) + encode(mode, 2, records[3][1], 13)
                              + encode(mode, 1, records[5][1], 15))
    finally:
        os.close(log_fd)


def test_records_of_an_unselected_stream_in_between_do_not_split_a_run(impl):
    log_fd, records, offsets = make_log([(1, 5, 1), (2, 5, 2), (1, 5, 3), (1, 5, 4)])
    try:
        with destination("socket") as (dst, got):
            relay_all(impl, log_fd, [offsets[-1]], dst, MODE_RECORDS, STDOUT, 0, MAX_TIME, 1 << 20, True)
        assert bytes(got) == encode_record(1, records[0][1] + records[2][1] + records[3][1], 1)
    finally:
        os.close(log_fd)


def test_a_merged_entry_stops_at_16_mib(impl):
    mib = 1 << 20
    small = _fallback.SENDFILE_MIN - 1  # the largest record that is converted, not sent from the file
    log_fd = os.memfd_create("log", os.MFD_CLOEXEC)
    chunk = bytes(range(256)) * (small // 256) + bytes(small % 256)
    count = 17 * mib // small + 1
    os.write(log_fd, b"".join(encode_record(1, chunk, i) for i in range(count)))
    end = os.fstat(log_fd).st_size
    try:
        with destination("pipe", room=mib) as (dst, got):
            relay_all(impl, log_fd, [end], dst, MODE_FRAMES, BOTH, 0, MAX_TIME, 32 * mib, merge=True)
        entries, used = _fallback.scan(got, MODE_FRAMES)
        assert used == len(got)
        per_entry = _fallback.MAX_PAYLOAD // small
        assert [(s, n) for s, _, n in entries] == [(1, per_entry * small), (1, (count - per_entry) * small)]
        assert bytes(got[8 : 8 + per_entry * small]) == chunk * per_entry
    finally:
        os.close(log_fd)


def test_a_big_record_is_never_merged(impl):
    # Its payload goes from the file: the small records around it merge among themselves only.
    big = _fallback.SENDFILE_MIN
    log_fd, records, offsets = make_log([(1, 5, 1), (1, 6, 2), (1, big, 3), (1, 7, 4), (1, 8, 5)])
    try:
        with destination("socket") as (dst, got):
            relay_all(impl, log_fd, [offsets[-1]], dst, MODE_RECORDS, BOTH, 0, MAX_TIME, 1 << 20, True)
        assert bytes(got) == (encode_record(1, records[0][1] + records[1][1], 1) + encode_record(*records[2])
                              + encode_record(1, records[3][1] + records[4][1], 4))
    finally:
        os.close(log_fd)


def test_output_pending_from_an_earlier_call_is_never_reopened(impl):
    # The first record waits in the cursor (nobody reads); the next, of the same stream, arrives
    # in the log meanwhile. It goes out as a record of its own, after the pending one.
    log_fd, records, offsets = make_log([(1, 100_000, 1), (1, 10, 2), (1, 20, 3)])
    w, r = socket.socketpair()
    try:
        w.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        w.setblocking(False)
        cursor = impl.Cursor()
        _, blocked = impl.relay(cursor, log_fd, offsets[1], w.fileno(), MODE_RECORDS, BOTH, merge=True)
        assert blocked
        assert cursor.busy
        got = bytearray()
        reader = threading.Thread(target=lambda: got.extend(b"".join(iter_recv(r))))
        reader.start()
        while impl.relay(cursor, log_fd, offsets[-1], w.fileno(), MODE_RECORDS, BOTH, merge=True)[1]:
            wait_writable(w.fileno())
        w.close()
        reader.join()
        assert bytes(got) == (encode_record(*records[0])
                              + encode_record(1, records[1][1] + records[2][1], 2))
    finally:
        w.close()
        r.close()
        os.close(log_fd)


def iter_recv(sock: socket.socket) -> Iterator[bytes]:
    while data := sock.recv(65536):
        yield data


def test_merge_is_off_by_default_and_raw_has_nothing_to_merge(impl):
    log_fd, records, offsets = make_log([(1, 5, 1), (1, 5, 2)])
    try:
        for mode, merge, want in [
            (MODE_RECORDS, False, encode_record(*records[0]) + encode_record(*records[1])),
            (MODE_RAW, True, records[0][1] + records[1][1]),
        ]:
            with destination("pipe") as (dst, got):
                cursor = impl.Cursor()
                if merge:
                    impl.relay(cursor, log_fd, offsets[-1], dst, mode, BOTH, merge=True)
                else:
                    impl.relay(cursor, log_fd, offsets[-1], dst, mode, BOTH)
            assert bytes(got) == want
    finally:
        os.close(log_fd)


@pytest.mark.parametrize("mode", MODES)
def test_a_corrupt_record_still_ends_a_merged_run_cleanly(impl, mode):
    good = encode_record(1, b"fine", 1) + encode_record(1, b"!", 2)
    log_fd = os.memfd_create("log", os.MFD_CLOEXEC)
    os.write(log_fd, good + encode_record(4, b"bad", 3))
    try:
        cursor = impl.Cursor()
        with destination("socket") as (dst, got), pytest.raises(ValueError, match=f"offset {len(good)}"):
            while impl.relay(cursor, log_fd, len(good) + 23, dst, mode, BOTH, merge=True)[1]:
                wait_writable(dst)
        assert bytes(got) == encode(mode, 1, b"fine!", 1)
    finally:
        os.close(log_fd)
