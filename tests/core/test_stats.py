"""core/stats.py: the files read (cgroup v1 and v2, net/dev) and the arithmetic of CPU %."""

from __future__ import annotations

import os

from varpod.core import cgroups, stats
from varpod.core.model import ContainerConfig, ContainerRecord, ContainerState
from varpod.core.states import State

NET_DEV = "\n".join([  # /proc/PID/net/dev, spaces squeezed
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...",
    "    lo: 9999 10 0 0 0 0 0 0 9999 10 0 0 0 0 0 0",
    "  eth0: 1500 12 0 0 0 0 0 0 700 7 0 0 0 0 0 0",
    "  eth1:  500  2 0 0 0 0 0 0 300 3 0 0 0 0 0 0",
])


def test_network_bytes_leave_loopback_out():
    assert stats.parse_net_dev(NET_DEV) == (2000, 1000)


def test_block_io_v1_and_v2():
    v1 = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:16 Read 4\n8:16 Write 0\nTotal 12292\n"
    assert stats.parse_blkio_v1(v1) == (4100, 8192)
    v2 = "8:0 rbytes=100 wbytes=200 rios=1 wios=2\n8:16 rbytes=1 wbytes=2 dbytes=0\n"
    assert stats.parse_io_stat_v2(v2) == (101, 202)


def _own_cgroup_tree(tmp_path, files: dict[str, dict[str, str]], v2: bool):
    """Hierarchies under tmp_path holding this process's cgroup paths, with ``files`` in them."""
    with open("/proc/self/cgroup") as f:
        paths = cgroups.parse_proc_cgroup(f.read())
    mounts = []
    for controller, content in files.items():
        key = "" if v2 else next((k for k in paths if controller in k.split(",")), None)
        if key is None:
            continue
        where = tmp_path / (controller or "unified") / paths[key].lstrip("/")
        os.makedirs(where, exist_ok=True)
        for name, text in content.items():
            (where / name).write_text(text)
        names = frozenset({"cpu", "memory", "pids", "io"} if v2 else {controller})
        mounts.append(cgroups.Hierarchy(str(tmp_path / (controller or "unified")), "/", names, v2))
    return mounts


def test_a_v2_cgroup_is_read(tmp_path):
    mounts = _own_cgroup_tree(tmp_path, {"": {
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\n", "memory.current": "10485760\n",
        "memory.max": "max\n", "memory.stat": "anon 1\ninactive_file 4194304\n",
        "pids.current": "3\n", "io.stat": "8:0 rbytes=7 wbytes=9\n"}}, v2=True)
    s = stats.read_sample(os.getpid(), mounts=mounts, now=1)
    assert (s.cpu_ns, s.mem_usage, s.pids, s.block_read, s.block_write) == (2_500_000, 6 << 20, 3, 7, 9)
    assert s.mem_limit == stats.host_memory()  # "max" is capped at the host's memory


def test_a_v1_cgroup_is_read(tmp_path):
    mounts = _own_cgroup_tree(tmp_path, {
        "cpuacct": {"cpuacct.usage": "123456789\n"},
        "memory": {"memory.usage_in_bytes": "2097152\n", "memory.limit_in_bytes": "1048576000\n",
                   "memory.stat": "cache 5\ntotal_inactive_file 1048576\n"},
        "pids": {"pids.current": "2\n"},
        "blkio": {"blkio.throttle.io_service_bytes_recursive": "8:0 Read 10\n8:0 Write 20\n"}},
        v2=False)
    s = stats.read_sample(os.getpid(), mounts=mounts, now=1)
    assert (s.cpu_ns, s.mem_usage, s.mem_limit, s.pids, s.block_read, s.block_write) == (
        123456789, 1 << 20, 1048576000, 2, 10, 20)


def _rec(launched: int, started: int) -> ContainerRecord:
    return ContainerRecord(ContainerConfig(id="c" * 64, name="c", rootfs="/", command=["x"], pod="p"),
                           ContainerState(state=State.RUNNING, pid=1, launched_at=launched,
                                          started_at=started))


def test_cpu_percent_from_the_start_then_between_samples():
    rec = _rec(launched=1, started=10**8)  # CPU % counts from the launch, uptime from the start
    first = stats.Sample(time=10**9, cpu_ns=5 * 10**8, mem_usage=50, mem_limit=200)
    s = stats.compute(rec, first, None)
    assert s.cpu_percent == 50.0 and s.avg_cpu_percent == 50.0 and s.mem_percent == 25.0
    assert s.up_ns == 9 * 10**8 and s.pod == "p"
    second = stats.Sample(time=2 * 10**9, cpu_ns=5 * 10**8 + 2 * 10**9, mem_usage=0, mem_limit=0)
    s = stats.compute(rec, second, first)
    assert s.cpu_percent == 200.0  # two CPUs' worth
    assert s.avg_cpu_percent == 125.0 and s.mem_percent == 0.0


def test_the_reader_leaves_out_containers_that_are_not_running():
    stopped = ContainerRecord(_rec(0, 0).config, ContainerState(state=State.EXITED))
    assert stats.StatsReader().read([stopped]) == []
