"""The client's stream decoder: whole entries out, however the bytes arrive."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpod.core.errors import ProtocolError, StreamBroken
from varpod.core.logfile import encode_record
from varpod.rpc.framing import MODE_FRAMES, MODE_RECORDS, READ_SIZE, StreamDecoder, encode_frame
from varpod.rpc.minipack import MiniCodec, packb

FUZZ = settings(max_examples=int(os.environ.get("VARPOD_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CODEC = MiniCodec()
END = {"end": "exit", "exit_code": 3}

entries_st = st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=3000),
                                st.integers(0, 2**63 - 1)), max_size=12)


def encode(entries, fmt, end=END):
    if fmt == MODE_FRAMES:
        body = b"".join(encode_frame(s, p) for s, p, _ in entries)
        return body + encode_frame(3, packb(end))
    body = b"".join(encode_record(s, p, t) for s, p, t in entries)
    return body + encode_record(3, packb(end), 0)


def expected(entries, fmt):
    return [(s, p, t if fmt == MODE_RECORDS else 0) for s, p, t in entries]


def cut(data, sizes):
    """``data`` in pieces of the given sizes (cycled), as reads deliver it."""
    pieces, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        pieces.append(data[pos : pos + n])
        pos += n
        i += 1
    return pieces


def drain(dec, pieces, use_buffer):
    out = []
    for piece in pieces:
        if use_buffer:
            view = dec.get_buffer()
            assert len(view) >= len(piece)
            view[: len(piece)] = piece
            dec.buffer_updated(len(piece))
        else:
            dec.feed(piece)
        out += dec.entries()
        if dec.ended:
            break
    return out


@FUZZ
@given(entries=entries_st, fmt=st.sampled_from([MODE_FRAMES, MODE_RECORDS]),
       sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=6), use_buffer=st.booleans())
def test_any_cutting_gives_the_same_entries(entries, fmt, sizes, use_buffer):
    dec = StreamDecoder(CODEC, fmt, bufsize=64)  # small: growing and moving are exercised
    out = drain(dec, cut(encode(entries, fmt), sizes), use_buffer)
    assert out == expected(entries, fmt)
    assert dec.ended and dec.end == END
    assert all(type(p) is bytes for _, p, _ in out)


def test_an_entry_larger_than_the_buffer_is_completed_in_one_buffer():
    big = os.urandom(3 * READ_SIZE + 17)
    dec = StreamDecoder(CODEC, MODE_FRAMES, bufsize=1024)
    data = encode([(1, big, 0)], MODE_FRAMES)
    pos = 0
    while not dec.ended:
        view = dec.get_buffer()
        n = min(len(view), len(data) - pos)
        view[:n] = data[pos : pos + n]
        dec.buffer_updated(n)
        pos += n
        got = dec.entries()
        if got:
            assert got == [(1, big, 0)]
    # Once the header was in, the buffer offered room for the whole rest of the entry.
    assert pos == len(data)


def test_bytes_after_the_end_stay_buffered():
    dec = StreamDecoder(CODEC, MODE_FRAMES)
    dec.feed(encode([(1, b"x", 0)], MODE_FRAMES) + b"after")
    assert dec.entries() == [(1, b"x", 0)]
    assert dec.ended and dec.take() == b"after"
    assert dec.take() == b""


def test_an_error_end_is_raised_by_check():
    dec = StreamDecoder(CODEC, MODE_RECORDS)
    dec.feed(encode([], MODE_RECORDS, end={"error": "io.varpod.Stream.StreamBroken", "message": "gone"}))
    assert dec.entries() == []
    with pytest.raises(StreamBroken, match="gone"):
        dec.check()


@pytest.mark.parametrize("header", [struct.pack(">B3xI", 9, 1), struct.pack(">B3xI", 1, (16 << 20) + 1)])
def test_a_corrupt_header_is_refused_before_its_payload(header):
    dec = StreamDecoder(CODEC, MODE_FRAMES)
    dec.feed(header)
    assert len(dec.get_buffer()) >= READ_SIZE  # a huge bogus length does not size the buffer
    with pytest.raises(ProtocolError):
        dec.entries()


def test_a_record_with_a_wrong_trailer_is_refused():
    rec = bytearray(encode_record(1, b"abc", 5))
    rec[-1] ^= 1
    dec = StreamDecoder(CODEC, MODE_RECORDS)
    dec.feed(bytes(rec))
    with pytest.raises(ProtocolError):
        dec.entries()
