"""core/cgroups.py: hierarchies from mountinfo (v1, v2, hybrid, a cgroupns root), paths, removal."""

from __future__ import annotations

import os

import pytest

from varpod.core import cgroups
from varpod.core.errors import InvalidPodConfig

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 /inner /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,clone_children,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
22 1 0:5 / /proc rw - proc proc rw
"""


def test_v1_and_v2_hierarchies_from_mountinfo():
    found = {h.mountpoint: h for h in cgroups.parse_mountinfo(HYBRID)}
    assert set(found) == {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory",
                          "/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"}
    assert found["/sys/fs/cgroup/cpu,cpuacct"].controllers == {"cpu", "cpuacct"}
    assert found["/sys/fs/cgroup/pids"].controllers == {"pids"}  # clone_children is a flag
    assert found["/sys/fs/cgroup/systemd"].controllers == {"name=systemd"}
    assert found["/sys/fs/cgroup/unified"].v2 and not found["/sys/fs/cgroup/memory"].v2
    pids = found["/sys/fs/cgroup/pids"]  # mounted from a cgroup below the root
    assert pids.host_dir("/inner/varpod/x") == "/sys/fs/cgroup/pids/varpod/x"
    assert pids.host_dir("/elsewhere/x") is None


def test_controller_dirs_of_a_process_with_v1_winning_over_v2(tmp_path):
    mounts = [cgroups.Hierarchy(str(tmp_path / "memory"), "/", frozenset({"memory"}), False),
              cgroups.Hierarchy(str(tmp_path / "unified"), "/", frozenset({"memory", "pids"}), True)]
    with open("/proc/self/cgroup") as f:
        paths = cgroups.parse_proc_cgroup(f.read())
    dirs = cgroups.controller_dirs(os.getpid(), mounts)
    if "memory" in {c for key in paths for c in key.split(",")}:
        assert dirs["memory"].startswith(str(tmp_path / "memory"))
    assert dirs[""].startswith(str(tmp_path / "unified"))
    assert dirs["pids"] == dirs[""]


def test_this_machines_cgroups_of_this_process_exist():
    dirs = cgroups.controller_dirs(os.getpid())
    assert dirs and all(os.path.isdir(d) for d in dirs.values())


@pytest.mark.parametrize("path", ["/varpod-pods", "/a/b_c/d.e", "//a//b/"])
def test_good_cgroup_parents(path):
    assert cgroups.check_path(path).startswith("/")


@pytest.mark.parametrize("path", ["", "relative", "/a/../b", "/.", "/a b", "/a/\0", "/" + "x" * 2000])
def test_bad_cgroup_parents(path):
    with pytest.raises(InvalidPodConfig):
        cgroups.check_path(path)


def test_remove_takes_the_cgroup_and_empty_children_from_every_hierarchy(tmp_path):
    mounts = [cgroups.Hierarchy(str(tmp_path / c), "/", frozenset({c}), False) for c in ("a", "b")]
    for c in ("a", "b"):
        os.makedirs(tmp_path / c / "varpod" / "pod" / "left-over")
    assert len(cgroups.exists("/varpod/pod", mounts)) == 2
    assert cgroups.remove("/varpod/pod", mounts) == []
    assert cgroups.exists("/varpod/pod", mounts) == [] and (tmp_path / "a" / "varpod").is_dir()
    assert cgroups.remove("/varpod/pod", mounts) == []  # gone already: removed
