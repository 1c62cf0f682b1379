"""Paths resolved inside a container's root: symlinks and .. never leave it; mounts are stepped into."""

from __future__ import annotations

import os

import pytest

from varpod.core.containerfs.paths import Root, resolve
from varpod.core.errors import InvalidParameter, NoSuchPath


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    for d in ("etc", "usr/bin", "data"):
        (root / d).mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (root / "bin").symlink_to("usr/bin")
    (root / "abs").symlink_to("/etc")
    (root / "up").symlink_to("../../../../../../etc")
    (root / "loop").symlink_to("loop")
    (root / "file").write_text("f")
    (tmp_path / "outside").write_text("secret\n")
    (root / "host").symlink_to(str(tmp_path))
    return tmp_path


def test_symlinks_resolve_within_the_root(tree):
    with Root.open(str(tree / "root")) as root:
        for path in ("/abs/passwd", "up/passwd", "/etc/../../../etc/passwd", "bin/../../etc/passwd"):
            with resolve(root, path) as r:
                assert r.exists and r.path == "/etc/passwd", path
                with open(f"/proc/self/fd/{r.fd}") as f:
                    assert f.read() == "inside\n"
        with resolve(root, "/bin") as r:
            assert r.path == "/usr/bin" and r.is_dir
        with resolve(root, "/bin", follow=False) as r:
            assert r.path == "/bin" and not r.is_dir
        # The host path the symlink names is a path in the container, where it does not exist.
        with pytest.raises(NoSuchPath):
            resolve(root, "/host/outside")
        with resolve(root, "/abs/newfile") as r:
            assert not r.exists and r.path == "/etc/newfile" and r.name == "newfile"
            assert os.readlink(f"/proc/self/fd/{r.parent_fd}") == str(tree / "root" / "etc")


def test_errors_are_named(tree):
    with Root.open(str(tree / "root")) as root:
        with pytest.raises(NoSuchPath, match="symbolic links"):
            resolve(root, "/loop/x")
        with pytest.raises(NoSuchPath, match="not a directory"):
            resolve(root, "/file/x")
        with pytest.raises(NoSuchPath, match="does not exist"):
            resolve(root, "/nope/x")
        with pytest.raises(InvalidParameter):
            resolve(root, "/a\0b")
        with resolve(root, "/") as r:
            assert r.exists and r.path == "/" and r.is_dir


def test_mounts_of_a_stopped_container_are_stepped_into(tree):
    vol = tree / "vol"
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "v").write_text("volume\n")
    with Root.open(str(tree / "root"), {"/data": (str(vol), False)}) as root:
        with resolve(root, "/data/sub/v") as r:
            assert r.exists and r.read_only and r.path == "/data/sub/v"
        with resolve(root, "/data/sub/../../etc/passwd") as r:
            assert r.path == "/etc/passwd" and not r.read_only
