"""Sizes and CPU counts as typed on the command line (core/units.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from varpod.core.errors import InvalidConfig
from varpod.core.units import parse_cpus, parse_size

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize(("text", "size"), [
    ("0", 0), ("100", 100), ("100b", 100), ("100B", 100),
    ("512k", 512 * KiB), ("512K", 512 * KiB), ("512kb", 512 * KiB), ("512KiB", 512 * KiB),
    ("512ki", 512 * KiB),
    ("64m", 64 * MiB), ("64M", 64 * MiB), ("64mb", 64 * MiB), ("64MiB", 64 * MiB),
    ("64 m", 64 * MiB), (" 64m ", 64 * MiB),
    ("1g", GiB), ("1.5g", GiB + GiB // 2), ("0.5m", MiB // 2), ("2t", 2 << 40), ("1p", 1 << 50),
    ("007m", 7 * MiB),
])
def test_sizes_in_podmans_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", [
    "", " ", "m", "lots", "64x", "64mm", "64bb", "64ib", "64i", "1.5.2m", ".5m", "5.m", "5..m",
    "0x10", "1e6", "64 mb extra", "\uff16\uff14m", "²m", "64m\0", "--5", "+5m", "5m-",
])
def test_what_is_not_a_size_is_a_named_error(text):
    with pytest.raises(InvalidConfig) as info:
        parse_size(text)
    assert info.value.field == "memory"
    assert "is not a size" in info.value.message


@pytest.mark.parametrize("text", ["-1", "-64m", " -5k"])
def test_a_negative_size_says_so(text):
    with pytest.raises(InvalidConfig, match="is negative") as info:
        parse_size(text)
    assert info.value.field == "memory"


def test_the_field_is_the_callers():
    with pytest.raises(InvalidConfig) as info:
        parse_size("x", field="log_size_max")
    assert info.value.field == "log_size_max"


@given(st.integers(0, 1 << 40), st.sampled_from(["", "k", "m", "g"]))
def test_whole_numbers_scale_exactly(n, unit):
    scale = {"": 1, "k": KiB, "m": MiB, "g": GiB}[unit]
    assert parse_size(f"{n}{unit}") == n * scale
    assert parse_size(f"{n}{unit.upper()}") == n * scale


@pytest.mark.parametrize(("text", "cpus"), [("0.5", 0.5), ("2", 2.0), (" 1.25 ", 1.25), ("0", 0.0),
                                             ("-1", -1.0)])
def test_cpus_are_numbers_and_the_range_is_the_daemons(text, cpus):
    assert parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["", "half", "nan", "inf", "-inf", "1/2", "0.5cpu"])
def test_what_is_not_a_cpu_count_is_a_named_error(text):
    with pytest.raises(InvalidConfig) as info:
        parse_cpus(text)
    assert info.value.field == "cpus"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (120, "2 minutes"), (3600, "About an hour"), (5400, "2 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (100 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_durations_read_as_podmans(seconds, text):
    from varpod.core.units import human_duration

    assert human_duration(seconds) == text
