"""demux() and scan(): records or frames back to payloads, C and pure Python on the same inputs.

The expected results come from ``encode_frame``/``encode_record`` and the
spec, never from either implementation.
"""

from __future__ import annotations

import os
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpod import native
from varpod.core.logfile import encode_record
from varpod.native import MODE_FRAMES, MODE_RAW, MODE_RECORDS, _fallback, encode_frame

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POOL = random.Random(1).randbytes(256 << 10)
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


def payload(i: int, n: int) -> bytes:
    start = (i * 7919) % (len(POOL) - n + 1)
    return POOL[start : start + n]


def encode(fmt: int, stream: int, data: bytes, ts: int = 0) -> bytes:
    return encode_record(stream, data, ts) if fmt == MODE_RECORDS else encode_frame(stream, data)


def memfd() -> int:
    return os.memfd_create("out", os.MFD_CLOEXEC)


def contents(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def demux_to_files(mod, buf, fmt: int) -> tuple[tuple[int, int], bytes, bytes]:
    out1, out2 = memfd(), memfd()
    try:
        result = mod.demux(buf, fmt, out1, out2)
        return result, contents(out1), contents(out2)
    finally:
        os.close(out1)
        os.close(out2)


# -- the reference --------------------------------------------------------------------------------


def test_encode_frame_is_a_record_without_its_trailer():
    assert encode_frame(2, b"hello") == b"\x02\x00\x00\x00\x00\x00\x00\x05hello"
    assert encode_frame(1, b"") == b"\x01" + bytes(7)
    record = encode_record(1, b"xyz", 42)
    assert encode_frame(1, b"xyz") == record[: len(record) - 12]
    assert encode_frame(0, memoryview(b"ab")) == b"\x00\x00\x00\x00\x00\x00\x00\x02ab"


# -- generated streams ---------------------------------------------------------------------------

sizes = st.one_of(st.integers(0, 300), st.integers(0, 200_000))


@st.composite
def streams(draw):
    """(fmt, buffer, entries, cut) where entries are (stream, payload, offset) of every whole entry."""
    fmt = draw(st.sampled_from([MODE_RECORDS, MODE_FRAMES]))
    specs = draw(st.lists(st.tuples(st.sampled_from([0, 1, 1, 2, 2, CONTROL]), sizes), max_size=12))
    parts, entries = [], []
    pos = 0
    for i, (stream, n) in enumerate(specs):
        data = b'{"exit_code": 0}' if stream == CONTROL else payload(i, n)
        raw = encode(fmt, stream, data, ts=i)
        entries.append((stream, data, pos))
        parts.append(raw)
        pos += len(raw)
    buf = b"".join(parts)
    # A read from a socket ends anywhere: cut the buffer at a random point.
    cut = draw(st.one_of(st.just(len(buf)), st.integers(0, len(buf))))
    return fmt, buf[:cut], entries


def whole(entries, fmt: int, size: int):
    """The entries that fit entirely in the first ``size`` bytes."""
    out = []
    for stream, data, pos in entries:
        if pos + len(encode(fmt, stream, data)) > size:
            break
        out.append((stream, data, pos))
    return out


@SETTINGS
@given(streams())
def test_demux_writes_each_payload_to_its_stream_and_stops_at_control(case):
    fmt, buf, entries = case
    fitting = whole(entries, fmt, len(buf))
    before = []
    for entry in fitting:
        if entry[0] == CONTROL:
            break
        before.append(entry)
    control = len(before) < len(fitting)
    if control:
        consumed = fitting[len(before)][2]
    elif fitting:
        last_stream, last_data, last_pos = fitting[-1]
        consumed = last_pos + len(encode(fmt, last_stream, last_data))
    else:
        consumed = 0
    want = (
        (consumed, consumed if control else -1),
        b"".join(d for s, d, _ in before if s == 1),
        b"".join(d for s, d, _ in before if s == 2),
    )
    for mod in live_impls():
        assert demux_to_files(mod, buf, fmt) == want, mod.__name__


@SETTINGS
@given(streams())
def test_scan_lists_every_whole_entry(case):
    fmt, buf, entries = case
    fitting = whole(entries, fmt, len(buf))
    triples = [(s, pos + 8, len(d)) for s, d, pos in fitting]
    used = fitting[-1][2] + len(encode(fmt, fitting[-1][0], fitting[-1][1])) if fitting else 0
    for mod in live_impls():
        assert mod.scan(buf, fmt) == (triples, used), mod.__name__


# -- batching and interleaving --------------------------------------------------------------------


def test_more_entries_than_one_writev_takes(impl):
    n = _fallback.IOV_MAX * 3 + 7
    frames = [encode_frame(1, b"%d," % i) for i in range(n)]
    buf = bytearray(b"".join(frames))  # any bytes-like will do
    (consumed, control_at), out1, out2 = demux_to_files(impl, buf, MODE_FRAMES)
    assert (consumed, control_at) == (len(buf), -1)
    assert out1 == b"".join(b"%d," % i for i in range(n))
    assert out2 == b""


def test_scan_past_many_chunks(impl):
    buf = b"".join(encode_record(1 + i % 2, b"x" * (i % 5), i) for i in range(10_000))
    triples, used = impl.scan(memoryview(buf)[: len(buf) - 3], MODE_RECORDS)
    assert len(triples) == 9_999
    assert used == len(buf) - len(encode_record(2, b"x" * 4, 0))
    pos = 0
    for i, (stream, offset, length) in enumerate(triples):
        assert (stream, offset, length) == (1 + i % 2, pos + 8, i % 5)
        pos += 20 + length


def test_stdout_and_stderr_to_one_pipe_keep_their_order(impl):
    pieces = [(1 + (i // 3) % 2, payload(i, 20_000 + i)) for i in range(40)]
    buf = b"".join(encode_frame(s, d) for s, d in pieces) + encode_frame(CONTROL, b"{}")
    r, w = os.pipe()
    got = bytearray()

    def drain() -> None:
        while data := os.read(r, 65536):
            got.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        consumed, control_at = impl.demux(buf, MODE_FRAMES, w, w)
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    assert consumed == control_at == len(buf) - 10
    assert bytes(got) == b"".join(d for _, d in pieces)


def test_minus_one_and_stdin_discard(impl):
    buf = encode_frame(0, b"in") + encode_frame(1, b"out") + encode_frame(2, b"err") + encode_frame(1, b"!")
    out = memfd()
    try:
        assert impl.demux(buf, MODE_FRAMES, -1, out) == (len(buf), -1)
        assert contents(out) == b"err"
    finally:
        os.close(out)


def test_an_incomplete_control_entry_is_not_reported(impl):
    buf = encode_frame(1, b"a") + encode_frame(CONTROL, b'{"end": "eof"}')[:-1]
    (consumed, control_at), out1, _ = demux_to_files(impl, buf, MODE_FRAMES)
    assert (consumed, control_at, out1) == (9, -1, b"a")


# -- errors ----------------------------------------------------------------------------------------


def corrupt_inputs(fmt: int) -> dict[str, bytes]:
    good = encode(fmt, 1, b"good")
    cases = {
        "stream": good + encode(fmt, 4, b"x"),
        "length": good + b"\x02\x00\x00\x00" + ((16 << 20) + 1).to_bytes(4, "big"),
    }
    if fmt == MODE_RECORDS:
        bad = bytearray(encode_record(2, b"abc", 2))
        bad[-1] = 9
        cases["trailer length"] = good + bytes(bad)
    return cases


CORRUPT = [(fmt, what) for fmt in (MODE_RECORDS, MODE_FRAMES) for what in corrupt_inputs(fmt)]


@pytest.mark.parametrize(("fmt", "what"), CORRUPT)
def test_corrupt_input_raises_after_the_good_payloads(impl, fmt, what):
    buf = corrupt_inputs(fmt)[what]
    offset = len(encode(fmt, 1, b"good"))
    out1, out2 = memfd(), memfd()
    try:
        with pytest.raises(ValueError, match=f"at offset {offset}$"):
            impl.demux(buf, fmt, out1, out2)
        assert contents(out1) == b"good"
    finally:
        os.close(out1)
        os.close(out2)
    with pytest.raises(ValueError, match=f"at offset {offset}$"):
        impl.scan(buf, fmt)


def test_raw_is_not_a_format_to_read(impl):
    with pytest.raises(ValueError):
        impl.demux(b"", MODE_RAW, -1, -1)
    with pytest.raises(ValueError):
        impl.scan(b"", MODE_RAW)


def test_a_closed_reader_is_a_broken_pipe(impl):
    r, w = os.pipe()
    os.close(r)
    try:
        with pytest.raises(BrokenPipeError):
            impl.demux(encode_frame(2, b"lost"), MODE_FRAMES, -1, w)
    finally:
        os.close(w)


def test_empty_input(impl):
    assert impl.demux(b"", MODE_FRAMES, -1, -1) == (0, -1)
    assert impl.scan(b"", MODE_RECORDS) == ([], 0)
