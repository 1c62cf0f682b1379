"""The compiled pump and its pure-Python twin: the same bytes through real pipes, the same log records."""

from __future__ import annotations

import errno
import fcntl
import os
import random
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpod import native
from varpod.core.logfile import HEADER_SIZE, OVERHEAD, parse_records
from varpod.native import _fallback

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIG = 1 << 40


class Log:
    """A log file opened the way LogWriter opens it (not O_APPEND), and where the next record goes."""

    def __init__(self, directory: str, name: str) -> None:
        self.path = os.path.join(directory, name)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def close(self) -> None:
        os.close(self.fd)


class LogFd:
    """Any fd as a log (errors: one that cannot be written)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0


def vp_pump(src: int, log, stream: int, budget: int, bufsize: int,
            stage: tuple[int, int]) -> tuple[int, bool]:
    """The C function itself, with a buffer and a staging pipe of the caller's choosing."""
    if native._lib is None:
        pytest.fail(f"the compiled native module is missing: {native.IMPORT_ERROR}")
    buf = native._ffi.new("char[]", bufsize)
    eof = native._ffi.new("int *")
    off = native._ffi.new("long long *", log.size)
    n = native._lib.vp_pump(src, log.fd, off, stream, budget, buf, bufsize, *stage, eof)
    if n < 0:
        raise OSError(-n, os.strerror(-n))
    assert off[0] == log.size + n
    log.size += n
    return n, bool(eof[0])


def c_pump(src: int, log, stream: int, budget: int, bufsize: int | None = None, *,
           fifo: bool = False) -> tuple[int, bool]:
    if native._lib is None:
        pytest.fail(f"the compiled native module is missing: {native.IMPORT_ERROR}")
    if bufsize is None:
        n, eof = native._c_pump(src, log.fd, log.size, stream, budget, fifo)
        log.size += n
        return n, eof
    # The same C function with a small buffer, so that one call takes several records.
    return vp_pump(src, log, stream, budget, bufsize, native._staging() if fifo else (-1, -1))


def py_pump(src: int, log, stream: int, budget: int, bufsize: int | None = None, *,
            fifo: bool = False) -> tuple[int, bool]:
    n, eof = _fallback.pump(src, log.fd, log.size, stream, budget, fifo, bufsize or native.PUMP_BUFSIZE)
    log.size += n
    return n, eof


def c_splice(*args, **kw):
    return c_pump(*args, **kw, fifo=True)


def py_splice(*args, **kw):
    return py_pump(*args, **kw, fifo=True)


READ = {"c": c_pump, "python": py_pump}  # any fd: read, then written
IMPLS = {**READ, "c spliced": c_splice, "python spliced": py_splice}  # pipes: spliced too


def without_times(data: bytes) -> bytes:
    """The log with every record's timestamp zeroed: what C and Python must agree on byte for byte."""
    records, used = parse_records(data)
    assert used == len(data), "the log ends in a partial record"
    out = bytearray(data)
    for rec in records:
        at = rec.offset + HEADER_SIZE + len(rec.payload)
        out[at : at + 8] = bytes(8)
    return bytes(out)


def random_bytes(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def drain_rest(fd: int) -> bytes:
    out = b""
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


# -- which implementation is live --------------------------------------------------------------


def test_the_compiled_pump_is_live_in_ci():
    if os.environ.get("CI") == "true":
        assert native.IMPLEMENTATION == "c", native.IMPORT_ERROR
    if native.IMPLEMENTATION == "c":
        assert native.pump is native._c_pump
        assert native.IMPORT_ERROR == ""
    else:
        assert native.pump is _fallback.pump


# -- same input, same records ------------------------------------------------------------------------


def pump_chunks(impl, directory: str, chunks: list[bytes], stream: int) -> tuple[list, bytes]:
    """Write each chunk into a pipe and pump it out; then close the writer and pump the EOF."""
    log = Log(directory, f"{impl.__name__}-{len(os.listdir(directory))}.log")
    r, w = os.pipe()
    os.set_blocking(r, False)
    results = []
    try:
        for chunk in chunks:
            assert os.write(w, chunk) == len(chunk)  # <= 64 KiB into an empty pipe: never short
            results.append(impl(r, log, stream, BIG))
        os.close(w)
        w = -1
        results.append(impl(r, log, stream, BIG))
        return results, log.read()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        log.close()


@SETTINGS
@given(chunks=st.lists(st.binary(min_size=1, max_size=4096) | st.builds(random_bytes, st.integers(0, 1 << 32),
                                                                         st.integers(1, 60000)),
                       max_size=12),
       stream=st.integers(0, 3))
def test_c_and_python_write_the_same_records(chunks, stream):
    with tempfile.TemporaryDirectory() as d:
        before = time.time_ns()
        got = {name: pump_chunks(impl, d, chunks, stream) for name, impl in IMPLS.items()}
        after = time.time_ns()

    expected = [(len(c) + OVERHEAD, False) for c in chunks] + [(0, True)]
    assert {name: results for name, (results, _) in got.items()} == dict.fromkeys(IMPLS, expected)
    assert len({without_times(log) for _, log in got.values()}) == 1
    for _, data in got.values():
        records, _ = parse_records(data)
        assert [r.payload for r in records] == chunks  # one record per read, every byte kept
        assert {r.stream for r in records} <= {stream}
        # Wall-clock nanoseconds, as time.time_ns() gives: not a monotonic or coarse clock.
        assert all(before <= r.time <= after for r in records)


@SETTINGS
@given(seed=st.integers(0, 1 << 32), size=st.integers(0, 60000), bufsize=st.integers(1, 5000),
       budget=st.integers(-1, 70000), closed=st.booleans())
def test_budget_is_respected_read_by_read(seed, size, bufsize, budget, closed):
    data = random_bytes(seed, size)
    # The model: whole reads of up to bufsize until the budget is used up, EAGAIN or EOF.
    total, pos, pieces, eof = 0, 0, [], False
    while total < budget:
        if pos == len(data):
            eof = closed
            break
        piece = data[pos : pos + bufsize]
        pieces.append(piece)
        pos += len(piece)
        total += len(piece) + OVERHEAD

    for name, impl in IMPLS.items():
        with tempfile.TemporaryDirectory() as d:
            log = Log(d, "ctr.log")
            r, w = os.pipe()
            try:
                os.set_blocking(r, False)
                if data:
                    assert os.write(w, data) == len(data)
                if closed:
                    os.close(w)
                    w = -1
                assert impl(r, log, 1, budget, bufsize) == (total, eof), name
                assert drain_rest(r) == data[pos:], f"{name} read past its budget"
                records, _ = parse_records(log.read())
                assert [rec.payload for rec in records] == pieces, name
            finally:
                os.close(r)
                if w >= 0:
                    os.close(w)
                log.close()


# -- the public pump, its 1 MiB buffer and its budget -----------------------------------------------


@pytest.mark.parametrize("name", READ)
def test_a_small_budget_returns_before_everything_is_read(name, tmp_path):
    impl = READ[name]
    full = native.PUMP_BUFSIZE
    size = full * 5 // 2
    data = random_bytes(7, size)
    src_path = tmp_path / "src"
    src_path.write_bytes(data)  # a regular file: every read fills the whole buffer
    src = os.open(src_path, os.O_RDONLY)
    log = Log(str(tmp_path), "ctr.log")
    try:
        assert impl(src, log, 2, 1) == (full + OVERHEAD, False)
        assert os.lseek(src, 0, os.SEEK_CUR) == full  # the rest is still unread
        rest = size - full
        assert impl(src, log, 2, BIG) == (rest + 2 * OVERHEAD, True)
        records, _ = parse_records(log.read())
        assert [len(r.payload) for r in records] == [full, full, size - 2 * full]
        assert b"".join(r.payload for r in records) == data
        assert {r.stream for r in records} == {2}
    finally:
        os.close(src)
        log.close()


@pytest.mark.parametrize("name", IMPLS)
@pytest.mark.parametrize("budget", [0, -5])
def test_no_budget_reads_nothing(name, budget, tmp_path):
    log = Log(str(tmp_path), "ctr.log")
    r, w = os.pipe()
    try:
        os.write(w, b"waiting")
        assert IMPLS[name](r, log, 1, budget) == (0, False)
        assert log.read() == b""
        os.set_blocking(r, False)
        assert drain_rest(r) == b"waiting"
    finally:
        for fd in (r, w):
            os.close(fd)
        log.close()


@pytest.mark.parametrize("name", IMPLS)
def test_a_non_blocking_source_returns_at_eagain(name, tmp_path):
    impl = IMPLS[name]
    log = Log(str(tmp_path), "ctr.log")
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        assert impl(r, log, 1, BIG) == (0, False)  # nothing there, writer still open: not EOF
        assert log.read() == b""
        os.write(w, b"hello\n")
        assert impl(r, log, 1, BIG) == (6 + OVERHEAD, False)
        assert impl(r, log, 1, BIG) == (0, False)
        os.write(w, b"bye\n")
        os.close(w)
        w = -1
        assert impl(r, log, 1, BIG) == (4 + OVERHEAD, True)
        records, _ = parse_records(log.read())
        assert [(rec.stream, rec.payload) for rec in records] == [(1, b"hello\n"), (1, b"bye\n")]
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        log.close()


@pytest.mark.parametrize("name", IMPLS)
def test_eof_of_an_empty_pipe(name, tmp_path):
    log = Log(str(tmp_path), "ctr.log")
    r, w = os.pipe()
    os.close(w)
    try:
        assert IMPLS[name](r, log, 1, BIG) == (0, True)
        assert log.read() == b""
    finally:
        os.close(r)
        log.close()


# -- errors: both raise the same OSError -----------------------------------------------------------------


def errno_of(impl, src: int, log) -> int:
    with pytest.raises(OSError) as exc:
        impl(src, log, 1, BIG)
    return exc.value.errno


def test_a_bad_source_fd_is_the_same_oserror(tmp_path):
    log = Log(str(tmp_path), "ctr.log")
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    try:
        assert {name: errno_of(impl, r, log) for name, impl in IMPLS.items()} == dict.fromkeys(
            IMPLS, errno.EBADF)
    finally:
        log.close()


def test_an_unwritable_log_is_the_same_oserror(tmp_path):
    (tmp_path / "ro.log").write_bytes(b"")
    ro = os.open(tmp_path / "ro.log", os.O_RDONLY)
    try:
        got = {}
        for name, impl in IMPLS.items():
            r, w = os.pipe()
            try:
                os.write(w, b"data")
                got[name] = errno_of(impl, r, LogFd(ro))
            finally:
                os.close(r)
                os.close(w)
        assert got == dict.fromkeys(IMPLS, errno.EBADF)
    finally:
        os.close(ro)


def test_a_closed_pty_is_the_same_oserror(tmp_path):
    # A terminal's master reads EIO, not EOF, once the other side is gone: both say so alike.
    got, logs = {}, {}
    for name, impl in READ.items():
        log = Log(str(tmp_path), f"{name}.log")
        master, slave = os.openpty()
        try:
            os.write(slave, b"last line\n")
            os.close(slave)
            slave = -1
            # What was read is kept and counted; the error comes with the next call.
            assert impl(master, log, 1, BIG) == (len(b"last line\r\n") + OVERHEAD, False)
            got[name] = errno_of(impl, master, log)
            logs[name] = without_times(log.read())
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
            log.close()
    assert got == {"c": errno.EIO, "python": errno.EIO}
    assert logs["c"] == logs["python"]
    assert [r.payload for r in parse_records(logs["c"])[0]] == [b"last line\r\n"]


# -- spliced records ------------------------------------------------------------------------------------


def test_a_record_larger_than_the_staging_pipe_reaches_the_log_whole(tmp_path):
    # A staging pipe of one page: the header alone fills it, and the payload reaches the
    # log a page at a time, every part at its place, as one record; the pipe ends empty.
    data = random_bytes(11, 1 << 20)
    r, w = os.pipe()
    sr, sw = os.pipe()
    log = Log(str(tmp_path), "ctr.log")
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
        fcntl.fcntl(sw, fcntl.F_SETPIPE_SZ, 4096)
        for i in range(0, len(data), 4096):  # a buffer per write, as line-buffered output makes
            os.write(w, data[i : i + 4096])
        os.set_blocking(r, False)
        os.set_blocking(sr, False)
        assert vp_pump(r, log, 1, BIG, 2 << 20, (sr, sw)) == (len(data) + OVERHEAD, False)
        records, used = parse_records(log.read())
        assert used == log.size
        assert [rec.payload for rec in records] == [data]
        assert drain_rest(sr) == b""
    finally:
        for fd in (r, w, sr, sw):
            os.close(fd)
        log.close()


@pytest.mark.parametrize("name", ["c spliced", "python spliced"])
def test_records_go_where_the_log_ends_not_where_the_file_ends(name, tmp_path):
    # A torn record a crash left past the end is overwritten, not appended after.
    log = Log(str(tmp_path), "ctr.log")
    r, w = os.pipe()
    try:
        os.write(log.fd, b"torn record bytes")
        os.set_blocking(r, False)
        os.write(w, b"first")
        assert IMPLS[name](r, log, 1, BIG) == (5 + OVERHEAD, False)
        os.write(w, b"second")
        assert IMPLS[name](r, log, 2, BIG) == (6 + OVERHEAD, False)
        records, used = parse_records(log.read())
        assert [(rec.stream, rec.payload) for rec in records] == [(1, b"first"), (2, b"second")]
        assert used == log.size == len(log.read())
    finally:
        os.close(r)
        os.close(w)
        log.close()
