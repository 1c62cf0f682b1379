"""The compiled pump and its pure-Python twin: the same bytes through real pipes, the same log records."""

from __future__ import annotations

import errno
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


def c_pump(src: int, log_fd: int, stream: int, budget: int, bufsize: int | None = None) -> tuple[int, bool]:
    if native._lib is None:
        pytest.fail(f"the compiled native module is missing: {native.IMPORT_ERROR}")
    if bufsize is None:
        return native._c_pump(src, log_fd, stream, budget)
    # The same C function with a small buffer, so that one call takes several reads.
    buf = native._ffi.new("char[]", bufsize)
    eof = native._ffi.new("int *")
    n = native._lib.vp_pump(src, log_fd, stream, budget, buf, bufsize, eof)
    if n < 0:
        raise OSError(-n, os.strerror(-n))
    return n, bool(eof[0])


def py_pump(src: int, log_fd: int, stream: int, budget: int, bufsize: int | None = None) -> tuple[int, bool]:
    if bufsize is None:
        return _fallback.pump(src, log_fd, stream, budget)
    return _fallback.pump(src, log_fd, stream, budget, bufsize)


IMPLS = {"c": c_pump, "python": py_pump}


class Log:
    """A log file opened the way LogWriter opens it."""

    def __init__(self, directory: str, name: str) -> None:
        self.path = os.path.join(directory, name)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def close(self) -> None:
        os.close(self.fd)


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
    log = Log(directory, f"{impl.__name__}.log")
    r, w = os.pipe()
    os.set_blocking(r, False)
    results = []
    try:
        for chunk in chunks:
            assert os.write(w, chunk) == len(chunk)  # <= 64 KiB into an empty pipe: never short
            results.append(impl(r, log.fd, stream, BIG))
        os.close(w)
        w = -1
        results.append(impl(r, log.fd, stream, BIG))
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
        c_results, c_log = pump_chunks(c_pump, d, chunks, stream)
        py_results, py_log = pump_chunks(py_pump, d, chunks, stream)
        after = time.time_ns()

    expected = [(len(c) + OVERHEAD, False) for c in chunks] + [(0, True)]
    assert c_results == expected
    assert py_results == expected
    assert without_times(c_log) == without_times(py_log)
    for data in (c_log, py_log):
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
                assert impl(r, log.fd, 1, budget, bufsize) == (total, eof), name
                assert drain_rest(r) == data[pos:], f"{name} read past its budget"
                records, _ = parse_records(log.read())
                assert [rec.payload for rec in records] == pieces, name
            finally:
                os.close(r)
                if w >= 0:
                    os.close(w)
                log.close()


# -- the public pump, its 1 MiB buffer and its budget -----------------------------------------------


@pytest.mark.parametrize("name", IMPLS)
def test_a_small_budget_returns_before_everything_is_read(name, tmp_path):
    impl = IMPLS[name]
    size = native.BUFSIZE * 5 // 2
    data = random_bytes(7, size)
    src_path = tmp_path / "src"
    src_path.write_bytes(data)  # a regular file: every read fills the whole buffer
    src = os.open(src_path, os.O_RDONLY)
    log = Log(str(tmp_path), "ctr.log")
    try:
        assert impl(src, log.fd, 2, 1) == (native.BUFSIZE + OVERHEAD, False)
        assert os.lseek(src, 0, os.SEEK_CUR) == native.BUFSIZE  # the rest is still unread
        rest = size - native.BUFSIZE
        assert impl(src, log.fd, 2, BIG) == (rest + 2 * OVERHEAD, True)
        records, _ = parse_records(log.read())
        full = native.BUFSIZE
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
        assert IMPLS[name](r, log.fd, 1, budget) == (0, False)
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
        assert impl(r, log.fd, 1, BIG) == (0, False)  # nothing there, writer still open: not EOF
        assert log.read() == b""
        os.write(w, b"hello\n")
        assert impl(r, log.fd, 1, BIG) == (6 + OVERHEAD, False)
        assert impl(r, log.fd, 1, BIG) == (0, False)
        os.write(w, b"bye\n")
        os.close(w)
        w = -1
        assert impl(r, log.fd, 1, BIG) == (4 + OVERHEAD, True)
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
        assert IMPLS[name](r, log.fd, 1, BIG) == (0, True)
        assert log.read() == b""
    finally:
        os.close(r)
        log.close()


# -- errors: both raise the same OSError -----------------------------------------------------------------


def errno_of(impl, src: int, log_fd: int) -> int:
    with pytest.raises(OSError) as exc:
        impl(src, log_fd, 1, BIG)
    return exc.value.errno


def test_a_bad_source_fd_is_the_same_oserror(tmp_path):
    log = Log(str(tmp_path), "ctr.log")
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    try:
        assert {name: errno_of(impl, r, log.fd) for name, impl in IMPLS.items()} == {
            "c": errno.EBADF, "python": errno.EBADF}
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
                got[name] = errno_of(impl, r, ro)
            finally:
                os.close(r)
                os.close(w)
        assert got == {"c": errno.EBADF, "python": errno.EBADF}
    finally:
        os.close(ro)


def test_a_closed_pty_is_the_same_oserror(tmp_path):
    # A terminal's master reads EIO, not EOF, once the other side is gone: both say so alike.
    got, logs = {}, {}
    for name, impl in IMPLS.items():
        log = Log(str(tmp_path), f"{name}.log")
        master, slave = os.openpty()
        try:
            os.write(slave, b"last line\n")
            os.close(slave)
            slave = -1
            got[name] = errno_of(impl, master, log.fd)
            logs[name] = without_times(log.read())
        finally:
            os.close(master)
            if slave >= 0:
                os.close(slave)
            log.close()
    assert got == {"c": errno.EIO, "python": errno.EIO}
    assert logs["c"] == logs["python"]
    assert [r.payload for r in parse_records(logs["c"])[0]] == [b"last line\r\n"]
