"""Layers unpacked in overlayfs form, and hostile layers refused with nothing left behind."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile

import imagetools as it
import pytest

from varpod.core.errors import DigestMismatch, InvalidArchive
from varpod.core.images.layers import OPAQUE_XATTR
from varpod.core.images.layerstore import LayerStore


def digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def store(tmp_path):
    return LayerStore(str(tmp_path / "images"))


def unpack(store: LayerStore, tmp_path, raw: bytes, how: str = "gzip", diff_id: str | None = None):
    data, _ = it.compress(raw, how)
    blob = tmp_path / f"blob-{os.urandom(4).hex()}"
    blob.write_bytes(data)
    chain = (diff_id or digest(raw))
    result, hexid = store.unpack(str(blob), chain, diff_id or digest(raw), "test layer")
    return result, store.diff(hexid)


@pytest.mark.parametrize("how", ["gzip", "zstd", "plain"])
def test_compressions_give_the_same_layer(store, tmp_path, how):
    raw = it.top_layer()
    result, diff = unpack(store, tmp_path, raw, how)
    assert result.diff_id == digest(raw) and result.size == len(raw)
    assert result.compression == {"plain": ""}.get(how, how)
    assert read(os.path.join(diff, "opq", "c")) == "c\n"


def test_overlay_form_and_metadata(store, tmp_path):
    _, base = unpack(store, tmp_path, it.base_layer())
    _, top = unpack(store, tmp_path, it.top_layer())
    gone = os.lstat(os.path.join(top, "gone"))  # a whiteout: a 0/0 character device
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(os.path.join(top, "opq"), OPAQUE_XATTR) == b"y"
    assert not os.path.exists(os.path.join(top, "opq", ".wh..wh..opq"))
    assert os.getxattr(os.path.join(top, "bin", "capped"), "security.capability") == it.CAP_NET_RAW
    h1, h2 = os.lstat(os.path.join(top, "data2/h1")), os.lstat(os.path.join(top, "data2/h2"))
    assert h1.st_ino == h2.st_ino and h1.st_nlink == 2 and (h1.st_uid, h1.st_gid) == (1000, 1000)
    keep = os.lstat(os.path.join(base, "keep/file"))
    assert (stat.S_IMODE(keep.st_mode), keep.st_uid, keep.st_gid, keep.st_mtime) == (0o640, 1000, 1000,
                                                                                      1_234_567_890)
    assert stat.S_IMODE(os.lstat(os.path.join(base, "bin/suid")).st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(os.path.join(base, "tmp")).st_mode) == 0o1777
    null = os.lstat(os.path.join(base, "dev/null"))
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(os.lstat(os.path.join(base, "dev/loopx")).st_mode)
    assert stat.S_ISFIFO(os.lstat(os.path.join(base, "data/pipe")).st_mode)
    assert os.readlink(os.path.join(base, "abs")) == "/etc/motd"
    assert os.lstat(os.path.join(base, "opq")).st_mtime == 1_600_000_000  # dirs last, after their files


def _tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            data = extra.pop("data", None)
            for k, v in extra.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


OVERLAY_REDIRECT = "SCHILY.xattr.trusted.overlay.redirect"
F, D, L, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
HOSTILE = {  # case -> the tar, given a directory outside the layer it must not touch
    "absolute path": lambda v: _tar(("ok", F, {"data": b"1"}), ("/abs-escape", F, {"data": b"x"})),
    "dot-dot": lambda v: _tar(("ok", F, {"data": b"1"}), ("../escape", F, {"data": b"x"})),
    "nested dot-dot": lambda v: _tar(("a/b/../../../escape", F, {"data": b"x"})),
    "write through a symlink": lambda v: _tar(("link", L, {"linkname": v}),
                                              ("link/planted", F, {"data": b"x"})),
    "write through a relative symlink": lambda v: _tar(("up", L, {"linkname": "../../../.."}),
                                                       ("up/planted", F, {"data": b"x"})),
    "hard link outside": lambda v: _tar(("h", H, {"linkname": "../../etc/passwd"})),
    "hard link absolute": lambda v: _tar(("h", H, {"linkname": "/etc/passwd"})),
    "hard link to nothing": lambda v: _tar(("h", H, {"linkname": "missing"})),
    "hard link through a symlink": lambda v: _tar(("s", L, {"linkname": v}), ("h", H, {"linkname": "s/x"})),
    "overlay xattr": lambda v: _tar(("d", D, {"pax_headers": {OVERLAY_REDIRECT: "/x"}})),
    "sparse file": lambda v: _tar(("s", F, {"data": b"x", "pax_headers": {"GNU.sparse.major": "1"}})),
    "root not a directory": lambda v: _tar(("./", F, {"data": b"x"})),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_are_refused_and_leave_nothing(store, tmp_path, case):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "x").write_text("mine")
    with pytest.raises(InvalidArchive) as e:
        unpack(store, tmp_path, HOSTILE[case](str(victim)))
    assert e.value.rpc_name == "io.varpod.Image.InvalidArchive"
    assert os.listdir(store.tmp) == [] and store.on_disk() == []
    assert os.listdir(victim) == ["x"] and os.stat(victim / "x").st_nlink == 1
    assert not os.path.exists(tmp_path / "escape") and not os.path.exists("/abs-escape")


def test_an_oversized_header_is_refused(store, tmp_path):
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 64 << 20
    with pytest.raises(InvalidArchive, match="over the"):
        unpack(store, tmp_path, info.tobuf(format=tarfile.USTAR_FORMAT) + bytes(1024))
    assert os.listdir(store.tmp) == []


def test_a_wrong_diff_id_is_a_digest_mismatch(store, tmp_path):
    with pytest.raises(DigestMismatch):
        unpack(store, tmp_path, it.top_layer(), diff_id="sha256:" + "0" * 64)
    assert os.listdir(store.tmp) == [] and store.on_disk() == []


def test_corrupt_compression_is_refused(store, tmp_path):
    data, _ = it.compress(it.top_layer(), "gzip")
    blob = tmp_path / "blob"
    blob.write_bytes(data[: len(data) // 2] + b"\0" * 100)
    with pytest.raises(InvalidArchive):
        store.unpack(str(blob), "sha256:" + "1" * 64, "sha256:" + "2" * 64, "test layer")
    assert os.listdir(store.tmp) == []


def test_a_later_entry_replaces_an_earlier_one(store, tmp_path):
    raw = _tar(("x", D, {}), ("x/inner", F, {"data": b"1"}), ("x", F, {"data": b"file now"}),
               ("y", F, {"data": b"1"}), ("y", F, {"data": b"2"}))
    _, diff = unpack(store, tmp_path, raw)
    assert read(os.path.join(diff, "x")) == "file now"
    assert read(os.path.join(diff, "y")) == "2"
