"""Container and pod stats and top against real runc: numbers read from the cgroup move
when a container works, stopped containers are left out, top shows the container's view."""

from __future__ import annotations

import os
import time

import pytest

from varpod.core.errors import InvalidParameter, InvalidState, NoSuchContainer

SLEEP = ["/bin/sleep", "1000"]
BURN = ["/bin/sh", "-c", "while :; do :; done"]
MiB = 1 << 20


def eventually(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached")


def started(client, rootfs, command, **kw) -> str:
    cid = client.create(rootfs, command, **kw).id
    client.start(cid)
    return cid


def run_in(client, cid: str, command: list[str]) -> bytes:
    out, _ = client.exec_start(client.exec_create(cid, command), attach=True).read()
    return out


def one(stats, cid: str):
    found = [s for s in stats if s.ContainerID == cid]
    assert len(found) == 1, [s.Name for s in stats]
    return found[0]


def test_cpu_time_grows_while_a_container_burns_cpu(client, rootfs):
    cid = started(client, rootfs, BURN)
    first = one(client.stats([cid]), cid)
    reports = client.stats([cid], stream=True, interval=0.3)
    try:
        next(reports)
        later = one(next(reports), cid)
    finally:
        reports.close()
    assert later.CPUNano > first.CPUNano
    assert later.CPU > 0  # between the two streamed samples
    assert later.AvgCPU > 0 and later.PIDs == 1 and later.UpTime > first.UpTime


def test_memory_and_pids_grow_with_what_the_container_holds(client, rootfs):
    cid = started(client, rootfs, SLEEP)
    before = one(client.stats([cid]), cid)
    # tmpfs pages are charged to the container's memory cgroup and stay while the file does.
    run_in(client, cid, ["/bin/sh", "-c", "head -c 40000000 /dev/zero > /dev/shm/fill"])
    run_in(client, cid, ["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 & sleep 300 >/dev/null 2>&1 &"])
    after = one(client.stats([cid]), cid)
    assert after.MemUsage - before.MemUsage > 30 * MiB
    assert after.PIDs == before.PIDs + 2
    assert 0 < after.MemPerc <= 100 and after.MemLimit >= after.MemUsage


def test_a_memory_limit_is_the_stats_limit(client, rootfs):
    cid = started(client, rootfs, SLEEP, memory="64m")
    assert one(client.stats([cid]), cid).MemLimit == 64 * MiB


def test_stopped_containers_are_left_out_unless_named(client, rootfs):
    running = started(client, rootfs, SLEEP)
    stopped = started(client, rootfs, SLEEP)
    client.stop(stopped, timeout=0)
    ids = {s.ContainerID for s in client.stats()}
    assert running in ids and stopped not in ids
    with pytest.raises(InvalidState):
        client.stats([stopped])
    with pytest.raises(NoSuchContainer):
        client.stats(["no-such-container"])
    with pytest.raises(InvalidParameter):
        client.stats(interval=0)


def test_pod_stats_cover_running_members_and_the_infra(client, rootfs):
    pod = client.pod_create("measured", share="net")
    burn = started(client, rootfs, BURN, pod="measured")
    idle = started(client, rootfs, SLEEP, pod="measured")
    client.stop(idle, timeout=0)  # left out, no error
    infra = client.pod_inspect("measured").InfraContainerID
    stats = client.pod_stats(["measured"])
    assert {s.ContainerID for s in stats} == {burn, infra}
    assert {s.Pod for s in stats} == {pod.id}
    first = one(stats, burn).CPUNano
    # All pods this time; and the burning member's CPU time moves.
    eventually(lambda: one(client.pod_stats(), burn).CPUNano > first)


def test_top_shows_the_containers_processes_as_it_sees_them(client, rootfs):
    cid = started(client, rootfs, ["/bin/sh", "-c", "sleep 777 & exec sleep 888"])
    host_pid = client.inspect(cid).State.Pid
    # Until the shell has started the one and become the other.
    eventually(lambda: {r[-1] for r in client.top(cid).processes} == {"sleep 777", "sleep 888"})
    reply = client.top(cid)
    assert reply.titles == ["USER", "PID", "PPID", "%CPU", "ELAPSED", "TTY", "TIME", "COMMAND"]
    rows = {r[-1]: r for r in reply.processes}
    assert rows["sleep 888"][:3] == ["root", "1", "0"] and rows["sleep 777"][2] == "1"
    reply = client.top(cid, ["pid,hpid,huser", "comm"])
    assert reply.titles == ["PID", "HPID", "HUSER", "COMMAND"]
    assert ["1", str(host_pid), "root", "sleep"] in reply.processes
    # Not psgo's descriptors: ps(1) runs inside the container.
    reply = client.top(cid, ["-o", "pid,args"])
    assert reply.titles == ["PID", "COMMAND"] and ["1", "sleep 888"] in reply.processes
    client.pause(cid)
    assert ["1", "sleep"] in client.top(cid, ["pid", "comm"]).processes  # read from /proc
    with pytest.raises(InvalidState):
        client.top(cid, ["-o", "pid"])  # ps would freeze in the paused cgroup
    client.unpause(cid)
    client.stop(cid, timeout=0)
    with pytest.raises(InvalidState):
        client.top(cid)


def test_pod_top_lists_every_running_container(client, rootfs):
    client.pod_create("topped", share="pid")
    started(client, rootfs, ["/bin/sleep", "991"], pod="topped")
    started(client, rootfs, ["/bin/sleep", "992"], pod="topped")
    want = ["/bin/sleep 991", "/bin/sleep 992", "/catatonit -P"]
    # Right after a start the runtime's init may not have become the command yet.
    eventually(lambda: sorted(r[1] for r in client.pod_top("topped", ["pid", "args"]).processes) == want)
    reply = client.pod_top("topped", ["pid", "args"])
    pids = {r[1]: r[0] for r in reply.processes}
    assert pids["/catatonit -P"] == "1" and len(set(pids.values())) == 3  # one pid namespace
    with pytest.raises(InvalidParameter):
        client.pod_top("topped", ["-o", "pid"])


def test_the_stats_of_a_pid_reused_by_another_process_are_not_read(client, rootfs):
    from varpod.core.stats import read_sample

    cid = started(client, rootfs, SLEEP)
    pid = client.inspect(cid).State.Pid
    assert read_sample(pid, cid).pids == 1
    with pytest.raises(ProcessLookupError):
        read_sample(os.getpid(), cid)  # a process outside that cgroup
