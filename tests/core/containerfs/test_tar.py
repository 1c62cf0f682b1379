"""Trees out as tar, tars in as trees: what is kept, and hostile archives refused with nothing
written outside the destination."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from varpod.core.containerfs.clientfd import ClientFd
from varpod.core.containerfs.copyin import copy_in
from varpod.core.containerfs.tarwrite import TarWriter, Walk
from varpod.core.errors import InvalidArchive, InvalidCopy


def _tree(base):
    src = base / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 70000)
    os.chown(src / "d" / "f", 1234, 5678)
    os.chmod(src / "d" / "f", 0o640)
    os.link(src / "d" / "f", src / "d" / "g")
    (src / "l").symlink_to("/etc/passwd")
    os.mkfifo(src / "p")
    os.setxattr(src / "d" / "f", "user.k", b"v\xff")
    return src


def _tar_of(src, arcname="src"):
    buf = io.BytesIO()
    r, w = os.pipe()
    out = ClientFd(w, write=True)
    writer = TarWriter(out)
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    import threading

    def drain():
        while chunk := os.read(r, 1 << 16):
            buf.write(chunk)

    t = threading.Thread(target=drain)
    t.start()
    try:
        Walk(writer).tree(fd, arcname, "/", include_top=bool(arcname))
        writer.close()
    finally:
        os.close(fd)
        out.close()
        os.close(w)
        t.join()
        os.close(r)
    return buf.getvalue()


def test_a_tree_round_trips(tmp_path):
    src = _tree(tmp_path)
    data = _tar_of(src)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
    assert sorted(members) == ["src", "src/d", "src/d/e", "src/d/f", "src/d/g", "src/l", "src/p"]
    f = members["src/d/f"]
    assert (f.size, f.uid, f.gid, f.mode) == (70000, 1234, 5678, 0o640)
    assert f.pax_headers["SCHILY.xattr.user.k"].encode("utf-8", "surrogateescape") == b"v\xff"
    assert members["src/d/g"].islnk() and members["src/d/g"].linkname == "src/d/f"
    assert members["src/l"].issym() and members["src/l"].linkname == "/etc/passwd"
    assert members["src/p"].isfifo()
    dest = tmp_path / "dest"
    dest.mkdir()
    fd = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        copy_in(io.BytesIO(data), fd, rename=("src", "copy"))
    finally:
        os.close(fd)
    st = os.stat(dest / "copy" / "d" / "f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_nlink) == (1234, 5678, 0o640, 2)
    assert os.getxattr(dest / "copy" / "d" / "f", "user.k") == b"v\xff"
    assert os.readlink(dest / "copy" / "l") == "/etc/passwd"


def _hostile(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            data = b""
            if kind == tarfile.REGTYPE:
                data = b"evil"
                info.size = 4
            for k, v in extra.items():
                setattr(info, k, v)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("entries", [
    [("../evil", tarfile.REGTYPE, {})],
    [("/evil", tarfile.REGTYPE, {})],
    [("a/../../evil", tarfile.REGTYPE, {})],
    [("lnk", tarfile.SYMTYPE, {"linkname": "/"}), ("lnk/evil", tarfile.REGTYPE, {})],
    [("up", tarfile.SYMTYPE, {"linkname": "../.."}), ("up/evil", tarfile.REGTYPE, {})],
    [("hl", tarfile.LNKTYPE, {"linkname": "../outside"})],
    [("hl", tarfile.LNKTYPE, {"linkname": "/etc/passwd"})],
], ids=["dotdot", "absolute", "inner-dotdot", "through-symlink", "through-relative-symlink",
        "hardlink-out", "hardlink-absolute"])
def test_hostile_archives_write_nothing_outside(tmp_path, entries):
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    (tmp_path / "outside").write_text("keep\n")
    before = sorted(p for p in os.listdir(tmp_path))
    fd = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(InvalidArchive):
            copy_in(io.BytesIO(_hostile(*entries)), fd)
    finally:
        os.close(fd)
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "outside").read_text() == "keep\n"
    assert not os.path.exists("/evil") and not os.path.exists(tmp_path / "a" / "evil")


def test_a_symlink_already_in_the_destination_is_not_followed(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "esc").symlink_to(str(tmp_path))
    fd = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(InvalidArchive, match="symlink"):
            copy_in(io.BytesIO(_hostile(("esc/evil", tarfile.REGTYPE, {}))), fd)
    finally:
        os.close(fd)
    assert not (tmp_path / "evil").exists()


def test_overwrite_rules_and_owner(tmp_path):
    dest = tmp_path / "dest"
    (dest / "d").mkdir(parents=True)
    (dest / "f").write_text("old")
    fd = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(InvalidCopy, match="directory"):
            copy_in(io.BytesIO(_hostile(("d", tarfile.REGTYPE, {}))), fd)
        with pytest.raises(InvalidCopy, match="non-directory"):
            copy_in(io.BytesIO(_hostile(("f", tarfile.DIRTYPE, {}))), fd)
        copy_in(io.BytesIO(_hostile(("d", tarfile.REGTYPE, {}))), fd, overwrite=True)
        copy_in(io.BytesIO(_hostile((".wh.x", tarfile.REGTYPE, {"uid": 9}))), fd, owner=(7, 8))
    finally:
        os.close(fd)
    assert (dest / "d").read_bytes() == b"evil"
    st = os.stat(dest / ".wh.x")  # an ordinary file in a copy: not a whiteout
    assert (st.st_uid, st.st_gid) == (7, 8)


def test_a_stalled_reader_does_not_hold_the_writer_past_a_cancel(tmp_path):
    import threading

    from varpod.core.errors import StreamClosed

    (tmp_path / "big").write_bytes(os.urandom(1 << 20))
    r, w = os.pipe()  # nobody reads r: the pipe fills, and the writer waits
    cancel = threading.Event()
    failed: list[BaseException] = []

    def write() -> None:
        with ClientFd(w, write=True, cancel=cancel) as out:
            fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                Walk(TarWriter(out)).tree(fd, "x", "/", include_top=True)
            except BaseException as e:
                failed.append(e)
            finally:
                os.close(fd)

    t = threading.Thread(target=write)
    t.start()
    t.join(0.5)
    assert t.is_alive()  # waiting for the reader
    cancel.set()
    t.join(5)
    assert not t.is_alive() and isinstance(failed[0], StreamClosed)
    assert os.get_blocking(w)  # the client's own description was left as it was
    os.close(r)
    os.close(w)

