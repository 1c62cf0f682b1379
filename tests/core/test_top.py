"""core/top.py: podman's descriptors over /proc, Go's duration format, ps output."""

from __future__ import annotations

import os

import pytest

from varpod.core import top


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (999, "999ns"), (1_500, "1.5µs"), (595_792_725, "595.792725ms"),
    (2_721_639_812, "2.721639812s"), (60 * 10**9, "1m0s"), (3_723_500_000_000, "1h2m3.5s"),
])
def test_go_durations(ns, text):
    assert top.go_duration(ns) == text


def test_descriptors_by_name_code_and_comma_lists():
    found = top.descriptors(["pid,%C", "args"])
    assert [d[2] for d in found] == ["PID", "%CPU", "COMMAND"]
    assert [d[1] for d in top.descriptors([])] == top.DEFAULT_DESCRIPTORS
    assert top.descriptors(["-o", "pid"]) is None and top.descriptors(["pid", "bogus"]) is None


def test_every_descriptor_reads_this_process():
    titles, rows = top.table([os.getpid()], "", top.DESCRIPTORS)
    assert len(titles) == len(top.DESCRIPTORS) and len(rows) == 1
    row = dict(zip([d[1] for d in top.DESCRIPTORS], rows[0], strict=True))
    assert row["hpid"] == row["pid"] == str(os.getpid())
    assert row["comm"].startswith("python") and "pytest" in row["args"]
    assert row["huser"] == "root" and row["user"] == "0"  # no passwd in an empty rootfs
    assert row["state"] in "RS" and row["capeff"] not in ("", "none")


def test_ps_output_without_the_ps_line():
    output = "PID   COMMAND\n    1 sleep 1000\n   7 ps -o pid,args\n"
    assert top.parse_ps(output, ["-o", "pid,args"]) == (["PID", "COMMAND"], [["1", "sleep 1000"]])
