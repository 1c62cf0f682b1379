"""The streaming tar reader: what tar writers produce, and limits on what they may claim."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpod.core.errors import InvalidArchive
from varpod.core.images.tarstream import HEADER_MAX, TarReader


def read_all(data: bytes) -> list[tuple]:
    out = []
    reader = TarReader(io.BytesIO(data).read)
    for e in reader:
        body = b"".join(reader.chunks()) if e.is_file else b""
        out.append((e.name, e.type, e.linkname, e.mode, e.uid, e.gid, e.mtime_ns, body, e.xattrs,
                    e.devmajor, e.devminor))
    return out


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reads_what_tarfile_writes(fmt):
    buf = io.BytesIO()
    long = "d/" + "n" * 140 + "/" + "f" * 90  # over 100: a ustar prefix, a GNU or pax long name
    target = "target" if fmt == tarfile.USTAR_FORMAT else "t" * 120
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, extra in (("dir", tarfile.DIRTYPE, {}), (long, tarfile.REGTYPE, {"size": 3}),
                                  ("ln", tarfile.SYMTYPE, {"linkname": target}),
                                  ("hl", tarfile.LNKTYPE, {"linkname": "dir"}),
                                  ("dev", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3})):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode, info.uid, info.gid, info.mtime = 0o4751, 1000, 2000, 1_700_000_000
            for k, v in extra.items():
                setattr(info, k, v)
            t.addfile(info, io.BytesIO(b"abc") if kind == tarfile.REGTYPE else None)
    entries = read_all(buf.getvalue())
    assert [e[0].rstrip("/") for e in entries] == ["dir", long, "ln", "hl", "dev"]
    assert entries[1][7] == b"abc" and entries[1][3] == 0o4751 and entries[1][4:7] == (1000, 2000,
                                                                                      1_700_000_000 * 10**9)
    assert entries[4][9:] == (1, 3)


def test_pax_xattrs_are_raw_bytes_and_mtime_keeps_nanoseconds():
    value = bytes(range(256))
    info = tarfile.TarInfo("f")
    info.pax_headers = {"SCHILY.xattr.security.capability": value.decode("utf-8", "surrogateescape"),
                        "mtime": "1700000000.123456789"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(info)
    (entry,) = read_all(buf.getvalue())
    assert entry[8] == {"security.capability": value}
    assert entry[6] == 1_700_000_000_123_456_789


def test_base_256_numbers():
    info = tarfile.TarInfo("big")
    info.uid = 1 << 40  # too large for octal: GNU writes base-256
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        t.addfile(info)
    assert read_all(buf.getvalue())[0][4] == 1 << 40


def test_an_oversized_pax_header_is_refused_before_it_is_read():
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = HEADER_MAX + 1
    data = info.tobuf(format=tarfile.USTAR_FORMAT)  # no body follows: it must not be needed
    with pytest.raises(InvalidArchive, match="over the"):
        read_all(data)


def test_sparse_and_unknown_types_are_refused():
    for kind in (tarfile.GNUTYPE_SPARSE, b"V", b"Z"):
        info = tarfile.TarInfo("s")
        info.type = kind
        buf = info.tobuf(format=tarfile.GNU_FORMAT) + bytes(1024)
        with pytest.raises(InvalidArchive):
            read_all(buf)


def test_checksum_and_truncation():
    with pytest.raises(InvalidArchive, match="checksum"):
        read_all(os.urandom(512))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("f")
        info.size = 5000
        t.addfile(info, io.BytesIO(b"x" * 5000))
    with pytest.raises(InvalidArchive, match="ends in the middle"):
        read_all(buf.getvalue()[:2048])
    assert read_all(b"") == []  # no end marker at all: an empty archive, as tar reads it


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_garbage_is_refused_or_read_never_crashes(data):
    try:
        read_all(data)
    except InvalidArchive:
        pass
