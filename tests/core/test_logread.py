"""Where a log replay starts: --tail by lines (per stream, across rotations) and --since."""

from __future__ import annotations

import os
import re
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpod.core.logfile import STDERR, STDOUT, LogWriter, iter_file, log_files
from varpod.core.logread import Position, Selection, start_position

BOTH = Selection()
OUT = Selection(stderr=False)
ERR = Selection(stdout=False)


def write_log(path: str, records, *, size_max: int = 0, keep: int = 100) -> None:
    """records: (stream, payload) or (stream, payload, ts); ts defaults to 1000 * (index + 1)."""
    w = LogWriter(path, size_max=size_max, keep=keep)
    try:
        for i, rec in enumerate(records):
            stream, payload, *ts = rec
            w.append(stream, payload, ts=ts[0] if ts else 1000 * (i + 1))
    finally:
        w.close()


def replay(path: str, pos: Position, sel: Selection = BOTH) -> bytes:
    """What a reader sends from ``pos``: the first record less ``skip`` bytes, then the rest."""
    out = []
    for gen, fpath in log_files(path):
        if gen < pos.generation:
            continue
        try:
            fd = os.open(fpath, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            first = gen == pos.generation
            for i, rec in enumerate(iter_file(fd, pos.offset if first else 0)):
                payload = rec.payload[pos.skip :] if first and i == 0 else rec.payload
                if sel.wants(rec.stream):
                    out.append(payload)
        finally:
            os.close(fd)
    return b"".join(out)


def records_of(path: str) -> list:
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(iter_file(fd))
    finally:
        os.close(fd)


def last_lines(text: bytes, n: int) -> bytes:
    """The reference: a line ends at a newline; a final unterminated piece is a line too."""
    lines = re.findall(rb"[^\n]*\n|[^\n]+\Z", text)
    return b"".join(lines[-n:]) if n > 0 else b""


def tail(path: str, n: int, sel: Selection = BOTH) -> bytes:
    pos = start_position(path, Selection(stdout=sel.stdout, stderr=sel.stderr, tail=n))
    return replay(path, pos, sel)


@pytest.fixture
def log(tmp_path) -> str:
    return str(tmp_path / "ctr.log")


# -- tail ---------------------------------------------------------------------------------------


def test_no_tail_no_since_starts_at_the_oldest_file(log):
    write_log(log, [(STDOUT, b"a\n")] * 10, size_max=40, keep=2)
    first_gen = log_files(log)[0][0]
    assert first_gen > 1  # older generations were rotated away
    assert start_position(log, BOTH) == Position(first_gen, 0)


def test_tail_zero_is_the_end_of_the_live_file(log):
    write_log(log, [(STDOUT, b"a\n"), (STDOUT, b"b\n")])
    pos = start_position(log, Selection(tail=0))
    assert pos == Position(1, os.path.getsize(log))
    assert replay(log, pos) == b""


@pytest.mark.parametrize(
    ("n", "want"),
    [(1, b"c\n"), (2, b"b\nc\n"), (3, b"a\nb\nc\n"), (4, b"a\nb\nc\n"), (100, b"a\nb\nc\n")],
)
def test_tail_whole_line_records(log, n, want):
    write_log(log, [(STDOUT, b"a\n"), (STDOUT, b"b\n"), (STDOUT, b"c\n")])
    assert tail(log, n) == want


def test_tail_more_lines_than_exist_starts_at_the_start(log):
    write_log(log, [(STDOUT, b"a\n"), (STDOUT, b"b\n")])
    assert start_position(log, Selection(tail=3)) == Position(1, 0)


def test_tail_without_trailing_newline(log):
    write_log(log, [(STDOUT, b"a\n"), (STDOUT, b"b\n"), (STDOUT, b"partial")])
    assert tail(log, 1) == b"partial"
    assert tail(log, 2) == b"b\npartial"
    assert tail(log, 3) == b"a\nb\npartial"


def test_tail_inside_one_multi_line_record(log):
    write_log(log, [(STDOUT, b"l1\nl2\nl3\n")])
    assert start_position(log, Selection(tail=1)) == Position(1, 0, 6)
    assert start_position(log, Selection(tail=2)) == Position(1, 0, 3)
    assert start_position(log, Selection(tail=3)) == Position(1, 0)
    assert tail(log, 1) == b"l3\n"
    assert tail(log, 2) == b"l2\nl3\n"
    assert tail(log, 3) == b"l1\nl2\nl3\n"


def test_tail_where_the_nth_newline_is_mid_record(log):
    # one read from the pipe holds several lines; a line can also span two reads
    write_log(log, [(STDOUT, b"x\ny\nz"), (STDOUT, b"1\nw2\nv"), (STDOUT, b"3\n")])
    second = len(b"x\ny\nz") + 20
    assert start_position(log, Selection(tail=2)) == Position(1, second, 2)
    assert tail(log, 1) == b"v3\n"
    assert tail(log, 2) == b"w2\nv3\n"
    assert tail(log, 3) == b"z1\nw2\nv3\n"
    assert tail(log, 4) == b"y\nz1\nw2\nv3\n"
    assert tail(log, 5) == b"x\ny\nz1\nw2\nv3\n"


def test_tail_lines_of_blank_lines(log):
    write_log(log, [(STDOUT, b"\n\n"), (STDOUT, b"\n")])
    assert tail(log, 1) == b"\n"
    assert tail(log, 2) == b"\n\n"
    assert tail(log, 3) == b"\n\n\n"


def test_tail_per_stream(log):
    write_log(
        log,
        [
            (STDOUT, b"o1\n"),
            (STDERR, b"e1\n"),
            (STDOUT, b"o2\no3\n"),
            (STDERR, b"e2\n"),
            (STDERR, b"e-partial"),
        ],
    )
    assert tail(log, 1, OUT) == b"o3\n"
    assert tail(log, 2, OUT) == b"o2\no3\n"
    assert tail(log, 3, OUT) == b"o1\no2\no3\n"
    assert tail(log, 1, ERR) == b"e-partial"  # an unterminated last line is a line
    assert tail(log, 2, ERR) == b"e2\ne-partial"
    assert tail(log, 3, ERR) == b"e1\ne2\ne-partial"
    assert tail(log, 1, BOTH) == b"e-partial"
    assert tail(log, 3, BOTH) == b"o3\ne2\ne-partial"
    # the other stream's records before the start are never replayed
    assert b"e1" not in tail(log, 2, OUT)


def test_tail_per_stream_ignores_the_other_streams_trailing_newline(log):
    write_log(log, [(STDOUT, b"o1\no2"), (STDERR, b"e1\n")])
    assert tail(log, 1, OUT) == b"o2"
    assert tail(log, 1, ERR) == b"e1\n"


def test_tail_across_rotated_files(log):
    lines = [b"%03d\n" % i for i in range(20)]
    write_log(log, [(STDOUT, line) for line in lines], size_max=3 * 24, keep=100)
    assert len(log_files(log)) >= 6
    for n in range(1, 22):
        assert tail(log, n) == b"".join(lines[-n:]), n
    # the position names the rotated generation the tail starts in
    pos = start_position(log, Selection(tail=10))
    assert pos.generation < log_files(log)[-1][0]


def test_tail_when_the_live_file_was_just_rotated(log):
    write_log(log, [(STDOUT, b"a\n"), (STDOUT, b"b\n")], size_max=1, keep=100)
    w = LogWriter(log, size_max=1, keep=100)
    w.rotate()  # the live file is empty; the last line ended in the previous generation
    w.close()
    assert os.path.getsize(log) == 0
    assert tail(log, 1) == b"b\n"
    assert tail(log, 2) == b"a\nb\n"


def test_tail_counts_only_retained_files(log):
    lines = [b"%03d\n" % i for i in range(20)]
    write_log(log, [(STDOUT, line) for line in lines], size_max=2 * 24, keep=2)
    retained = b"".join(rec.payload for _, f in log_files(log) for rec in records_of(f))
    assert len(retained) < len(b"".join(lines))
    assert tail(log, 100) == retained
    assert tail(log, 2) == b"".join(lines[-2:])


def test_no_log_file_yet(tmp_path):
    path = str(tmp_path / "never-written.log")
    assert start_position(path, Selection(tail=5)) == Position(1, 0)
    assert start_position(path, Selection(tail=0)) == Position(1, 0)
    assert start_position(path, Selection(since=5)) == Position(1, 0)
    assert start_position(path, BOTH) == Position(1, 0)


def test_tail_ignores_empty_records(log):
    write_log(log, [(STDOUT, b"a\n"), (STDOUT, b"b\n"), (STDOUT, b"")])
    assert tail(log, 1) == b"b\n"


@settings(max_examples=80, deadline=None)
@given(
    records=st.lists(
        st.tuples(st.sampled_from([STDOUT, STDERR]), st.text("ab\n", min_size=1, max_size=12)),
        max_size=25,
    ),
    n=st.integers(0, 12),
    streams=st.sampled_from([(True, True), (True, False), (False, True)]),
    size_max=st.sampled_from([0, 30, 60, 200]),
)
def test_tail_matches_the_last_n_lines(records, n, streams, size_max):
    sel = Selection(stdout=streams[0], stderr=streams[1])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ctr.log")
        write_log(path, [(s, p.encode()) for s, p in records], size_max=size_max)
        text = b"".join(p.encode() for s, p in records if sel.wants(s))
        assert tail(path, n, sel) == last_lines(text, n)


# -- since ---------------------------------------------------------------------------------------


def test_since_positions(log):
    write_log(log, [(STDOUT, b"a\n", 100), (STDERR, b"b\n", 200), (STDOUT, b"c\n", 300)])
    offsets = [0, 22, 44]
    assert start_position(log, Selection(since=0)) == Position(1, 0)
    assert start_position(log, Selection(since=100)) == Position(1, 0)
    assert start_position(log, Selection(since=101)) == Position(1, offsets[1])
    assert start_position(log, Selection(since=200)) == Position(1, offsets[1])
    assert start_position(log, Selection(since=300)) == Position(1, offsets[2])
    end = start_position(log, Selection(since=301))
    assert end == Position(1, os.path.getsize(log))
    assert replay(log, end) == b""
    assert replay(log, start_position(log, Selection(since=150))) == b"b\nc\n"


def test_since_across_rotated_files(log):
    records = [(STDOUT, b"%03d\n" % i, 1000 + i) for i in range(20)]
    write_log(log, records, size_max=3 * 24, keep=100)
    files = log_files(log)
    assert len(files) >= 6
    for i in range(20):
        pos = start_position(log, Selection(since=1000 + i))
        assert replay(log, pos) == b"".join(p for _, p, _ in records[i:]), i
    # whole older files are skipped: the position names the file and offset holding the record
    for i in range(20):
        pos = start_position(log, Selection(since=1000 + i))
        fpath = dict(files)[pos.generation]
        (first, *_) = [r for r in records_of(fpath) if r.offset == pos.offset]
        assert first.time == 1000 + i
    after_all = start_position(log, Selection(since=5000))
    assert after_all == Position(files[-1][0], os.path.getsize(log))


def test_since_with_old_files_rotated_away(log):
    records = [(STDOUT, b"%03d\n" % i, 1000 + i) for i in range(20)]
    write_log(log, records, size_max=2 * 24, keep=2)
    first_gen = log_files(log)[0][0]
    # older than anything retained: start at the oldest retained file
    assert start_position(log, Selection(since=0)) == Position(first_gen, 0)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 5), min_size=1, max_size=20),
    since=st.integers(0, 120),
    size_max=st.sampled_from([0, 25, 60]),
)
def test_since_replays_exactly_the_records_at_or_after(gaps, since, size_max):
    times = []
    t = 0
    for g in gaps:
        t += g
        times.append(t)
    records = [(STDOUT if i % 2 else STDERR, b"r%d\n" % i, ts) for i, ts in enumerate(times)]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ctr.log")
        write_log(path, records, size_max=size_max)
        pos = start_position(path, Selection(since=since))
        assert replay(path, pos) == b"".join(p for _, p, ts in records if ts >= since)
        assert pos.skip == 0
