"""core/network/netns.py: a named network namespace, made on a thread, gone on removal."""

from __future__ import annotations

import os
import subprocess

import pytest

from varpod.core.network.netns import NetnsDir, is_mountpoint

pytestmark = pytest.mark.anyio


async def test_a_namespace_with_loopback_up_that_removal_takes_away(tmp_path):
    d = NetnsDir(str(tmp_path / "netns"))
    mine = os.readlink("/proc/self/ns/net")
    path = await d.create("c1")
    try:
        assert os.readlink("/proc/self/ns/net") == mine  # the daemon never moved
        links = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        assert len(links) == 1 and "lo:" in links[0] and "UP" in links[0]
        assert is_mountpoint(path) and is_mountpoint(d.path) and d.names() == ["c1"]
        again = await d.create("c1")  # a stale one is replaced
        assert again == path
    finally:
        d.remove("c1")
        d.remove("c1")  # twice: idempotent
    assert not os.path.exists(path) and d.names() == []
    d.close()
    assert not is_mountpoint(d.path)
