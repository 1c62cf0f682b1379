"""diff and the committed layer, from a hand-made overlay upper directory over two layers."""

from __future__ import annotations

import io
import os
import stat
import tarfile

from varpod.core.containerfs.changes import diff, write_layer
from varpod.core.containerfs.tarwrite import TarWriter


def _whiteout(path):
    os.mknod(path, stat.S_IFCHR | 0o000, 0)


def _layers(tmp_path):
    base, top, upper = tmp_path / "base", tmp_path / "top", tmp_path / "upper"
    for d in ("etc", "opq", "keep", "data", "gone"):
        (base / d).mkdir(parents=True)
    (base / "etc" / "motd").write_text("base")
    (base / "opq" / "a").write_text("a")
    (base / "opq" / "b").write_text("b")
    (base / "keep" / "file").write_text("k")
    (base / "data" / "old").write_text("o")
    (base / "escape").symlink_to("/etc")
    top.mkdir()
    (top / "etc").mkdir()
    (top / "etc" / "issue").write_text("top")
    _whiteout(top / "data")  # the image itself deleted /data
    # the container: changed motd, added /new, removed /keep/file, re-made /opq, wrote /data
    for d in ("etc", "keep", "opq", "data"):
        (upper / d).mkdir(parents=True)
    (upper / "etc" / "motd").write_text("changed")
    (upper / "new").write_text("n")
    _whiteout(upper / "keep" / "file")
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq" / "c").write_text("c")
    (upper / "data" / "fresh").write_text("f")
    _whiteout(upper / "escape")
    return str(upper), [str(top), str(base)]


def test_diff_reads_whiteouts_opaque_dirs_and_the_layers_below(tmp_path):
    upper, lowers = _layers(tmp_path)
    assert diff(upper, lowers) == [
        ("A", "/data"),  # whited out by the top layer: new again
        ("A", "/data/fresh"),
        ("D", "/escape"),
        ("C", "/etc"),
        ("C", "/etc/motd"),
        ("C", "/keep"),
        ("D", "/keep/file"),
        ("A", "/new"),
        ("C", "/opq"),
        ("D", "/opq/a"),
        ("D", "/opq/b"),
        ("A", "/opq/c"),
    ]


def test_the_layer_has_oci_whiteouts(tmp_path):
    upper, _ = _layers(tmp_path)
    chunks: list[bytes] = []
    write_layer(TarWriter(sink=chunks.append), upper, upper)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        names = t.getnames()
        assert t.extractfile("etc/motd").read() == b"changed"
    assert names == ["data", "data/fresh", ".wh.escape", "etc", "etc/motd", "keep", "keep/.wh.file",
                     "new", "opq", "opq/.wh..wh..opq", "opq/c"]
