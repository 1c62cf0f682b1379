"""The binary container log: record codec, forward/backward readers, the writer, rotation, torn tails."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpod import native
from varpod.core.logfile import (
    HEADER,
    HEADER_SIZE,
    OVERHEAD,
    RESERVE_FROM,
    TRAILER,
    TRAILER_SIZE,
    LogWriter,
    encode_record,
    iter_backwards,
    iter_file,
    log_files,
    parse_records,
    valid_length,
)
from varpod.native import _fallback

records_st = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.binary(max_size=200),
        st.integers(0, 2**64 - 1),
    ),
    max_size=20,
)


def encode_all(items) -> bytes:
    return b"".join(encode_record(s, p, ts) for s, p, ts in items)


def as_tuples(records) -> list[tuple[int, bytes, int]]:
    return [(r.stream, r.payload, r.time) for r in records]


def memfd(data: bytes) -> int:
    fd = os.memfd_create("log", os.MFD_CLOEXEC)
    os.write(fd, data)
    return fd


def read_all(path: str) -> list[tuple[int, bytes, int]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return as_tuples(iter_file(fd))
    finally:
        os.close(fd)


# -- codec -------------------------------------------------------------------------------------


def test_encode_record_layout():
    raw = encode_record(2, b"hello", ts=0x0102030405060708)
    assert raw == b"\x02\x00\x00\x00\x00\x00\x00\x05" + b"hello" + bytes(range(1, 9)) + b"\x00\x00\x00\x05"
    assert len(raw) == 5 + OVERHEAD
    # the first 8 + length bytes are the attach stream's multiplexed frame
    assert raw[:HEADER_SIZE] == bytes([2, 0, 0, 0]) + (5).to_bytes(4, "big")


def test_encode_record_stamps_the_wall_clock_by_default():
    before = time.time_ns()
    raw = encode_record(1, b"x")
    after = time.time_ns()
    (rec,), _ = parse_records(raw)
    assert before <= rec.time <= after


@given(records_st, st.integers(0, 1 << 40))
def test_parse_records_round_trip(items, base):
    buf = encode_all(items)
    records, used = parse_records(buf, base)
    assert used == len(buf)
    assert as_tuples(records) == items
    offset = base
    for rec, (_, payload, _) in zip(records, items, strict=True):
        assert rec.offset == offset
        offset += len(payload) + OVERHEAD
    # memoryview input gives the same records
    assert as_tuples(parse_records(memoryview(buf), base)[0]) == items


@given(records_st, st.data())
def test_parse_records_partial_buffer_stops_at_the_last_whole_record(items, data):
    buf = encode_all(items)
    cut = data.draw(st.integers(0, len(buf)))
    records, used = parse_records(buf[:cut])
    ends = [0]
    for _, payload, _ in items:
        ends.append(ends[-1] + len(payload) + OVERHEAD)
    whole = max(i for i, end in enumerate(ends) if end <= cut)
    assert used == ends[whole]
    assert as_tuples(records) == items[:whole]
    # feeding the rest continues exactly where it stopped
    rest, used2 = parse_records(buf[used:], used)
    assert as_tuples(records + rest) == items
    assert used + used2 == len(buf)


def test_parse_records_rejects_a_mismatched_trailer():
    good = encode_record(1, b"abc", ts=1)
    bad = good[:-4] + (4).to_bytes(4, "big")
    with pytest.raises(ValueError, match="corrupt"):
        parse_records(good + bad)


def test_parse_records_rejects_an_unknown_stream():
    raw = bytearray(encode_record(1, b"abc", ts=1))
    raw[0] = 200
    with pytest.raises(ValueError, match="corrupt"):
        parse_records(bytes(raw))


# -- forward and backward readers ---------------------------------------------------------------


@settings(max_examples=60)
@given(records_st, st.integers(1, 64))
def test_iter_file_and_iter_backwards_agree(items, block):
    fd = memfd(encode_all(items))
    try:
        forward = list(iter_file(fd))
        small_blocks = list(iter_file(fd, block=block))
        backward = list(iter_backwards(fd))
    finally:
        os.close(fd)
    assert as_tuples(forward) == items
    assert as_tuples(small_blocks) == items
    assert as_tuples(reversed(backward)) == items
    assert [r.offset for r in forward] == [r.offset for r in reversed(backward)]
    assert [r.offset for r in small_blocks] == [r.offset for r in forward]


def test_iter_file_and_iter_backwards_bounds():
    items = [(1, b"one\n", 1), (2, b"two\n", 2), (1, b"three\n", 3)]
    fd = memfd(encode_all(items))
    try:
        offsets = [r.offset for r in iter_file(fd)]
        assert as_tuples(iter_file(fd, start=offsets[1])) == items[1:]
        assert as_tuples(iter_file(fd, stop=offsets[2])) == items[:2]
        assert as_tuples(iter_file(fd, start=offsets[1], stop=offsets[2])) == items[1:2]
        assert as_tuples(iter_backwards(fd, end=offsets[2])) == items[1::-1]
        assert list(iter_backwards(fd, end=0)) == []
    finally:
        os.close(fd)


def test_iter_backwards_detects_corruption():
    raw = bytearray(encode_record(1, b"abc", ts=1) + encode_record(1, b"defg", ts=2))
    raw[-1] = 0xFF  # trailer length now points before the start of the file
    fd = memfd(bytes(raw))
    try:
        with pytest.raises(ValueError, match="corrupt"):
            list(iter_backwards(fd))
    finally:
        os.close(fd)


def test_empty_file_has_no_records():
    fd = memfd(b"")
    try:
        assert list(iter_file(fd)) == []
        assert list(iter_backwards(fd)) == []
        assert valid_length(fd) == 0
    finally:
        os.close(fd)


# -- valid_length -------------------------------------------------------------------------------


def test_valid_length_of_whole_and_torn_logs():
    items = [(1, b"hello\n", 1), (2, b"oops\n", 2), (1, b"bye\n", 3)]
    whole = encode_all(items)
    last_start = len(encode_all(items[:2]))
    for cut in range(last_start, len(whole)):
        fd = memfd(whole[:cut])
        try:
            assert valid_length(fd) == last_start, cut
        finally:
            os.close(fd)
    fd = memfd(whole)
    try:
        assert valid_length(fd) == len(whole)
    finally:
        os.close(fd)


def test_valid_length_stops_at_garbage():
    good = encode_record(1, b"ok\n", ts=1)
    garbage = bytearray(encode_record(1, b"bad\n", ts=2))
    garbage[-1] ^= 0x01  # trailer length disagrees with the header
    fd = memfd(good + bytes(garbage) + encode_record(1, b"more\n", ts=3))
    try:
        assert valid_length(fd) == len(good)
    finally:
        os.close(fd)


# -- LogWriter ------------------------------------------------------------------------------------


def test_log_writer_appends_records(tmp_path):
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path)
    try:
        w.append(1, b"out\n", ts=10)
        w.append(2, b"err\n", ts=20)
        w.append(1, b"", ts=30)  # says nothing: not written
        assert w.size == os.path.getsize(path)
    finally:
        w.close()
    assert read_all(path) == [(1, b"out\n", 10), (2, b"err\n", 20)]
    # reopening appends after what is there
    w = LogWriter(path)
    try:
        assert w.size == os.path.getsize(path)
        w.append(1, b"again\n", ts=40)
    finally:
        w.close()
    assert read_all(path)[-1] == (1, b"again\n", 40)
    assert len(read_all(path)) == 3


@pytest.fixture(params=["c", "python"])
def pump_impl(request, monkeypatch):
    """Run pump_from through the compiled C loop and through the Python fallback."""
    if request.param == "c":
        if native._lib is None:
            pytest.fail(f"compiled native module missing: {native.IMPORT_ERROR}")
        return native._c_pump
    return _fallback.pump


def _writer(path: str, impl, **kw) -> LogWriter:
    w = LogWriter(path, **kw)
    w._pump = impl  # the function LogWriter would call; both must behave the same
    return w


def pump_through_a_pipe(w: LogWriter, data: bytes, stream: int = 1, *, fifo: bool = True) -> None:
    """``data`` written into a pipe by a thread, 64 KiB at a time, pumped into ``w`` to EOF."""
    r, wr = os.pipe()

    def produce():
        view = memoryview(data)
        while view:
            n = os.write(wr, view[: 1 << 16])
            view = view[n:]
        os.close(wr)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        rounds = 0
        while not w.pump_from(r, stream, 1 << 20, fifo=fifo):
            rounds += 1
            assert rounds < 100_000
        producer.join()
    finally:
        os.close(r)


def test_pump_from_a_pipe_keeps_every_byte(tmp_path, pump_impl):
    path = str(tmp_path / "ctr.log")
    w = _writer(path, pump_impl)
    data = os.urandom(3 << 20) + b"tail without newline"
    before = time.time_ns()
    try:
        pump_through_a_pipe(w, data, 2, fifo=False)
    finally:
        w.close()
    after = time.time_ns()
    records = read_all(path)
    assert b"".join(p for _, p, _ in records) == data
    assert all(s == 2 for s, _, _ in records)
    assert all(p for _, p, _ in records)  # one record per read, never an empty one
    assert all(before <= ts <= after for _, _, ts in records)
    assert w.size == os.path.getsize(path)


def test_pump_from_a_nonblocking_pipe_returns_when_drained(tmp_path, pump_impl):
    path = str(tmp_path / "ctr.log")
    w = _writer(path, pump_impl)
    r, wr = os.pipe()
    os.set_blocking(r, False)
    try:
        assert w.pump_from(r, 1, 1 << 20) is False  # nothing there yet, not EOF
        assert os.path.getsize(path) == 0
        os.write(wr, b"first\n")
        assert w.pump_from(r, 1, 1 << 20) is False
        os.write(wr, b"second\n")
        os.close(wr)
        assert w.pump_from(r, 1, 1 << 20) is True
    finally:
        os.close(r)
        w.close()
    assert [(s, p) for s, p, _ in read_all(path)] == [(1, b"first\n"), (1, b"second\n")]


def test_pump_from_rotates(tmp_path, pump_impl):
    path = str(tmp_path / "ctr.log")
    w = _writer(path, pump_impl, size_max=64, keep=10)
    r, wr = os.pipe()
    os.set_blocking(r, False)
    chunks = [f"line {i}\n".encode() * 5 for i in range(6)]
    try:
        for chunk in chunks:
            os.write(wr, chunk)
            w.pump_from(r, 1, 1 << 20)
        os.close(wr)
        assert w.pump_from(r, 1, 1 << 20) is True
    finally:
        os.close(r)
        w.close()
    files = log_files(path)
    assert [g for g, _ in files] == list(range(1, len(files) + 1))
    assert len(files) > 1
    payload = b"".join(p for _, f in files for _, p, _ in read_all(f))
    assert payload == b"".join(chunks)


# -- rotation --------------------------------------------------------------------------------------


def test_rotation_renames_and_keeps_only_keep_files(tmp_path):
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path, size_max=100, keep=2)
    payloads = [b"%029d\n" % i for i in range(10)]  # 30 bytes -> 50-byte records
    try:
        for i, p in enumerate(payloads):
            w.append(1, p, ts=i)
        # rotations happened before appends 3, 5, 7 and 9: generations 1..4, 3 and 4 kept
        assert sorted(os.listdir(tmp_path)) == ["ctr.log", "ctr.log.3", "ctr.log.4"]
        assert w.generation == 5
        files = log_files(path)
        assert files == [(3, path + ".3"), (4, path + ".4"), (5, path)]
        assert w.size == os.path.getsize(path) == 100
    finally:
        w.close()
    kept = [rec for _, f in files for rec in read_all(f)]
    assert kept == [(1, p, i) for i, p in enumerate(payloads)][4:]
    assert read_all(path + ".3") == [(1, payloads[4], 4), (1, payloads[5], 5)]


def test_rotation_with_keep_zero_still_keeps_the_file_just_rotated(tmp_path):
    # Rotation never truncates: keep is at least 1, so the generation numbering survives.
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path, size_max=40, keep=0)
    try:
        for i in range(5):
            w.append(1, b"%019d\n" % i, ts=i)  # 40-byte records: rotate before every append
    finally:
        w.close()
    assert sorted(os.listdir(tmp_path)) == ["ctr.log", "ctr.log.4"]
    assert read_all(path) == [(1, b"%019d\n" % 4, 4)]
    assert read_all(path + ".4") == [(1, b"%019d\n" % 3, 3)]


@pytest.mark.parametrize(
    "keep",
    [
        0,
        1,
        2,
    ],
)
def test_log_files_live_generation_matches_the_writer(tmp_path, keep):
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path, size_max=40, keep=keep)
    try:
        for i in range(4):
            w.append(1, b"%019d\n" % i, ts=i)
            assert log_files(path)[-1] == (w.generation, path)
    finally:
        w.close()


def test_reopened_writer_continues_the_generations(tmp_path):
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path, size_max=40, keep=5)
    for i in range(3):
        w.append(1, b"%019d\n" % i, ts=i)
    w.close()
    assert [g for g, _ in log_files(path)] == [1, 2, 3]
    w = LogWriter(path, size_max=40, keep=5)
    try:
        assert w.generation == 3
        w.append(1, b"%019d\n" % 3, ts=3)
    finally:
        w.close()
    assert [g for g, _ in log_files(path)] == [1, 2, 3, 4]
    assert read_all(path + ".3") == [(1, b"%019d\n" % 2, 2)]
    assert [p for _, f in log_files(path) for _, p, _ in read_all(f)] == [b"%019d\n" % i for i in range(4)]


def test_log_files_ignores_unrelated_names(tmp_path):
    path = str(tmp_path / "ctr.log")
    for name in ("ctr.log.1", "ctr.log.x", "ctr.log.2.bak", "ctr.logs.3", "other.log.4"):
        (tmp_path / name).write_bytes(b"")
    assert log_files(path) == [(1, path + ".1"), (2, path)]
    assert log_files(str(tmp_path / "missing-dir" / "ctr.log")) == [
        (1, str(tmp_path / "missing-dir" / "ctr.log"))
    ]


# -- torn tails ----------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_bytes", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 3, -TRAILER_SIZE, -1])
def test_torn_tail_is_cut_on_reopen(tmp_path, keep_bytes):
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path)
    w.append(1, b"complete line\n", ts=1)
    w.append(2, b"another\n", ts=2)
    w.close()
    good = os.path.getsize(path)
    torn = encode_record(1, b"half of this record\n", ts=3)
    with open(path, "ab") as f:
        f.write(torn[:keep_bytes])
    assert os.path.getsize(path) > good

    w = LogWriter(path)
    try:
        assert os.path.getsize(path) == good
        assert w.size == good
        w.append(1, b"after the crash\n", ts=4)
    finally:
        w.close()
    expected = [(1, b"complete line\n", 1), (2, b"another\n", 2), (1, b"after the crash\n", 4)]
    assert read_all(path) == expected
    fd = os.open(path, os.O_RDONLY)
    try:
        assert as_tuples(reversed(list(iter_backwards(fd)))) == expected
        assert valid_length(fd) == os.path.getsize(path)
    finally:
        os.close(fd)


def test_torn_first_record_leaves_an_empty_log(tmp_path):
    path = str(tmp_path / "ctr.log")
    with open(path, "wb") as f:
        f.write(encode_record(1, b"never finished", ts=1)[:10])
    w = LogWriter(path)
    try:
        assert w.size == 0
        assert os.path.getsize(path) == 0
    finally:
        w.close()


def test_torn_tail_ending_in_log_like_payload_is_cut(tmp_path):
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path)
    w.append(1, b"hello\n", ts=1)
    w.close()
    good = os.path.getsize(path)
    inner = encode_record(1, b"x", ts=5)  # the container printed bytes that look like a record
    torn = encode_record(1, b"AAAA" + inner + b"BBBB", ts=2)
    with open(path, "ab") as f:
        f.write(torn[: HEADER_SIZE + 4 + len(inner)])  # the crash cut right after the inner one
    w = LogWriter(path)
    try:
        assert w.size == good
    finally:
        w.close()


def test_header_and_trailer_sizes():
    assert (HEADER.size, TRAILER.size, OVERHEAD) == (8, 12, 20)


# -- space reserved ahead (fallocate KEEP_SIZE) ---------------------------------------------------

SLACK = 64 << 10  # what a file may hold past its end without a reservation (an extent block)


def beyond_end(path: str) -> int:
    """Bytes allocated past the file's size (delayed allocations count, as in st_blocks)."""
    st = os.stat(path)
    return st.st_blocks * 512 - st.st_size


@pytest.fixture
def ext4_dir(tmp_path):
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(tmp_path)], capture_output=True, text=True).stdout
    if kind.strip() != "ext2/ext3":  # what stat calls ext4 too
        pytest.skip(f"log space is reserved on ext4 only; {tmp_path} is {kind.strip()}")
    return tmp_path


def test_reserved_space_leaves_the_size_alone_and_goes_at_finish(ext4_dir, pump_impl):
    path = str(ext4_dir / "ctr.log")
    w = _writer(path, pump_impl)
    data = os.urandom(6 << 20)
    try:
        pump_through_a_pipe(w, data)
        w.append(2, b"last line\n", ts=7)
        # Room is allocated past the end, and every reader goes by the size: it is the
        # records' bytes, no more.
        assert beyond_end(path) > 1 << 20
        records = read_all(path)
        assert os.path.getsize(path) == w.size == sum(len(p) + OVERHEAD for _, p, _ in records)
        assert b"".join(p for s, p, _ in records if s == 1) == data
        fd = os.open(path, os.O_RDONLY)
        try:
            assert valid_length(fd) == w.size
            assert next(iter_backwards(fd)).payload == b"last line\n"
        finally:
            os.close(fd)
        size = w.size
        w.finish()  # the run ended: the room goes back
        assert beyond_end(path) < SLACK
        assert os.path.getsize(path) == size
        assert read_all(path) == records
    finally:
        w.close()


def test_a_small_log_reserves_nothing(ext4_dir):
    path = str(ext4_dir / "ctr.log")
    w = LogWriter(path)
    try:
        for i in range(RESERVE_FROM // 4096 - 1):
            w.append(1, b"x" * (4096 - OVERHEAD), ts=i)
        assert w.size < RESERVE_FROM
        assert beyond_end(path) < SLACK
        w.append(1, b"x" * 8192, ts=0)  # past RESERVE_FROM: the next write reserves
        w.append(1, b"y", ts=0)
        assert beyond_end(path) > RESERVE_FROM // 2
    finally:
        w.close()
    assert beyond_end(path) < SLACK  # close gives it back too


def test_reserved_space_stops_at_size_max_and_goes_at_rotation(ext4_dir):
    path = str(ext4_dir / "ctr.log")
    size_max = 3 << 20
    w = LogWriter(path, size_max=size_max, keep=10)
    try:
        for i in range(160):  # 10 MiB
            w.append(1, os.urandom(64 << 10), ts=i)
            assert os.stat(path).st_blocks * 512 <= size_max + SLACK
    finally:
        w.close()
    files = log_files(path)
    assert len(files) == 4
    for _, f in files:
        assert beyond_end(f) < SLACK
        assert os.path.getsize(f) == sum(len(p) + OVERHEAD for _, p, _ in read_all(f))


def test_space_a_killed_writer_left_goes_at_the_next_finish(ext4_dir):
    path = str(ext4_dir / "ctr.log")
    w = LogWriter(path)
    for i in range(64):
        w.append(1, os.urandom(64 << 10), ts=i)
    os.close(w.fd)  # as a daemon killed with SIGKILL: nothing given back
    w.fd = -1
    assert beyond_end(path) > 1 << 20
    size = os.path.getsize(path)
    w = LogWriter(path)
    try:
        assert w.size == size
        w.append(2, b"after the restart\n", ts=99)
        w.finish()
        assert beyond_end(path) < SLACK
    finally:
        w.close()
    assert read_all(path)[-1] == (2, b"after the restart\n", 99)
    assert len(read_all(path)) == 65


def test_no_space_is_reserved_on_tmpfs():
    # fallocate on tmpfs zeroes pages the writes would overwrite: nothing to gain there.
    d = tempfile.mkdtemp(dir="/dev/shm")
    path = os.path.join(d, "ctr.log")
    try:
        kind = subprocess.run(["stat", "-f", "-c", "%T", d], capture_output=True, text=True).stdout
        assert kind.strip() == "tmpfs"
        w = LogWriter(path)
        try:
            for i in range(64):
                w.append(1, b"z" * (64 << 10), ts=i)
            assert beyond_end(path) < SLACK
        finally:
            w.close()
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


def test_rotation_discards_a_big_file_by_rename_and_a_thread(tmp_path, monkeypatch):
    """A rotated-away file whose unlink would free much page cache leaves the generations at
    once, and is unlinked off the caller's thread."""

    from varpod.core import logfile

    monkeypatch.setattr(logfile, "DISCARD_IN_THREAD", 0)
    unlinked_on = []
    real_unlink = os.unlink

    def recording(path, *args, **kwargs):
        if str(path).endswith(logfile.DOOMED):
            unlinked_on.append(threading.get_ident())
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", recording)
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path, size_max=40, keep=1)
    try:
        for i in range(4):
            w.append(1, b"%019d\n" % i, ts=i)  # 40-byte records: rotate before every append
            assert [g for g, _ in log_files(path)] == ([i, i + 1] if i else [1])
    finally:
        w.close()
    deadline = time.monotonic() + 5
    while len(unlinked_on) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(os.listdir(tmp_path)) == ["ctr.log", "ctr.log.3"]
    assert len(unlinked_on) == 2 and threading.get_ident() not in unlinked_on
    assert read_all(path + ".3") == [(1, b"%019d\n" % 2, 2)]


def test_a_new_writer_removes_what_a_dead_daemon_left_to_discard(tmp_path):
    from varpod.core.logfile import DOOMED

    path = str(tmp_path / "ctr.log")
    (tmp_path / ("ctr.log.7" + DOOMED)).write_bytes(b"x")
    (tmp_path / "other.log.7.doomed").write_bytes(b"x")  # another log's: not ours to touch
    LogWriter(path).close()
    assert sorted(os.listdir(tmp_path)) == ["ctr.log", "other.log.7.doomed"]


def test_a_reader_closes_its_last_hold_on_a_big_unlinked_file_off_its_thread(tmp_path, monkeypatch):
    """A follower that lagged behind a rotation holds the only link left to a discarded file:
    its close frees the file's page cache, so for a big file it is not the caller's to wait."""

    from varpod.core import logfile

    monkeypatch.setattr(logfile, "DISCARD_IN_THREAD", 4096)
    closed_on: dict[int, int] = {}
    real_close = os.close

    def opened(name: str, size: int, unlink: bool) -> int:
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        fd = os.open(path, os.O_RDONLY)
        if unlink:
            path.unlink()
        return fd

    cases = {"small-unlinked": opened("a", 100, True), "big-linked": opened("b", 8192, False),
             "big-unlinked": opened("c", 8192, True)}
    mine = set(cases.values())

    def recording(fd):
        if fd in mine:
            closed_on[fd] = threading.get_ident()
        return real_close(fd)

    monkeypatch.setattr(os, "close", recording)
    for fd in cases.values():
        logfile.close_reader(fd)
    deadline = time.monotonic() + 5
    while len(closed_on) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    me = threading.get_ident()
    assert closed_on[cases["small-unlinked"]] == me
    assert closed_on[cases["big-linked"]] == me
    assert closed_on[cases["big-unlinked"]] != me
