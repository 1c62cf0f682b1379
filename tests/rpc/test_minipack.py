"""minipack against msgspec: the same bytes out, the same values back, only DecodeError on garbage."""

from __future__ import annotations

import math
import struct

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpod.rpc import minipack

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
# Lengths straddle every msgpack size class (fix/8/16-bit) of str, bin, array and map.
# Long values are a short one repeated: drawing 300 characters one by one is slow.
LONG = st.integers(min_value=250, max_value=300)


def _repeat(seed, n: int):
    return (seed * n)[:n]


TEXT = st.one_of(st.text(max_size=20), st.builds(_repeat, st.text(min_size=1, max_size=3), LONG))
BINARY = st.one_of(st.binary(max_size=20), st.builds(_repeat, st.binary(min_size=1, max_size=3), LONG))


def scalars(allow_nan: bool):
    return st.one_of(st.none(), st.booleans(), INT64, st.floats(allow_nan=allow_nan), TEXT, BINARY)


def values(allow_nan: bool = True):
    return st.recursive(
        scalars(allow_nan),
        lambda kids: st.one_of(st.lists(kids, max_size=20), st.dictionaries(st.text(max_size=10), kids,
                                                                           max_size=20)),
        max_leaves=25,
    )


@pytest.mark.parametrize("value", [
    0, 127, 128, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32, (1 << 64) - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(1 << 31), -(1 << 31) - 1, -(1 << 63),
    "", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "a" * 65535, "a" * 65536,
    b"", b"x" * 255, b"x" * 256, b"x" * 65536,
    list(range(15)), list(range(16)), list(range(65536)),
    {str(i): i for i in range(15)}, {str(i): i for i in range(16)},
    {str(i): None for i in range(65536)},
    0.0, -0.0, 1.5, math.inf, -math.inf, 1e300, 5e-324,
])
def test_size_class_boundaries_match_msgspec(value):
    assert minipack.packb(value) == msgspec.msgpack.encode(value)
    assert minipack.unpackb(msgspec.msgpack.encode(value)) == value


def test_floats_are_always_float64_like_msgspec():
    # msgspec never narrows to float32, so neither may minipack (the bytes must match).
    assert msgspec.msgpack.encode(1.5)[0] == 0xCB
    assert minipack.packb(1.5)[0] == 0xCB


def test_float32_input_decodes():
    assert minipack.unpackb(b"\xca" + struct.pack(">f", 1.5)) == 1.5


def has_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list):
        return any(has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(has_nan(v) for v in value.values())
    return False


@SETTINGS
@given(values())
def test_same_bytes_as_msgspec_both_ways(value):
    data = msgspec.msgpack.encode(value)
    assert minipack.packb(value) == data
    back = minipack.unpackb(data)
    # NaN != NaN, so compare by re-encoding too: sign, NaN payload and -0.0 all survive.
    assert msgspec.msgpack.encode(back) == data
    if not has_nan(value):
        assert back == value


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(data):
    try:
        minipack.unpackb(data)
    except minipack.DecodeError:
        pass


@SETTINGS
@given(values(), st.data())
def test_damaged_encodings_raise_only_decode_error(value, data):
    encoded = bytearray(msgspec.msgpack.encode(value))
    if encoded:
        cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
        for i in data.draw(st.lists(st.integers(0, len(encoded) - 1), max_size=4), label="flips"):
            encoded[i] ^= data.draw(st.integers(1, 255), label="xor")
        for damaged in (bytes(encoded[:cut]), bytes(encoded)):
            try:
                minipack.unpackb(damaged)
            except minipack.DecodeError:
                pass
    with pytest.raises(minipack.DecodeError):
        minipack.unpackb(msgspec.msgpack.encode(value) + b"\xc0")  # trailing bytes


def test_decode_error_is_a_value_error():
    assert issubclass(minipack.DecodeError, ValueError)


@pytest.mark.parametrize("data", [
    b"", b"\xc1", b"\xd9", b"\xd9\x05abc", b"\xa2\xff\xfe", b"\xdd\xff\xff\xff\xff",
    b"\x81\x91\xc0\xc0", b"\x81\x81\xc0\xc0\xc0", b"\xc7\x01\x00\x00", b"\xd4\x00\x00",
])
def test_known_garbage_is_refused(data):
    with pytest.raises(minipack.DecodeError):
        minipack.unpackb(data)


@pytest.mark.parametrize("opener", [b"\x91", b"\x81\xa1k", b"\xdc\x00\x01", b"\xde\x00\x01\xa0"])
def test_deep_nesting_is_refused(opener):
    with pytest.raises(minipack.DecodeError, match="deep"):
        minipack.unpackb(opener * 5000 + b"\xc0")


def test_moderate_nesting_is_fine():
    value: object = None
    for _ in range(200):
        value = [value]
    assert minipack.unpackb(msgspec.msgpack.encode(value)) == value
    assert minipack.packb(value) == msgspec.msgpack.encode(value)


def test_integers_outside_64_bits_are_refused():
    with pytest.raises(OverflowError):
        minipack.packb(1 << 64)
    with pytest.raises(OverflowError):
        minipack.packb(-(1 << 63) - 1)


def test_unknown_types_are_refused():
    with pytest.raises(TypeError):
        minipack.packb(object())
