"""Pods end to end against real runc: shared namespaces through the infra container, the pod
cgroup, lifecycle, what removal leaves behind, hostile input."""

from __future__ import annotations

import os
import threading
import time

import pytest

from varpod.core import cgroups
from varpod.core.errors import (
    InfraContainerInUse,
    InvalidPodConfig,
    NameInUse,
    NoSuchContainer,
    NoSuchPod,
    PodExists,
    PodHasContainers,
    PodNamespaceConflict,
    PodRemoving,
    Unsupported,
)

SLEEP = ["/bin/sleep", "1000"]


def eventually(predicate, timeout: float = 15.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached")


def ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def member(client, rootfs, pod: str, command=SLEEP, **kw) -> tuple[str, int]:
    """A running member: (id, host pid)."""
    cid = client.create(rootfs, command, pod=pod, **kw).id
    client.start(cid)
    return cid, client.inspect(cid).State.Pid


def run_in(client, cid: str, command: list[str]) -> bytes:
    out, _ = client.exec_start(client.exec_create(cid, command), attach=True).read()
    return out


def leftovers(daemon, pod_id: str, cids: list[str], pids: list[int]) -> list[str]:
    """Whatever of a removed pod is still there: records, runtime state, cgroups, processes,
    mounts, bundles."""
    found = [f"runtime container {c[:12]}" for c in daemon.runtime_containers() if c in cids]
    found += [f"cgroup {d}" for d in cgroups.exists(f"/varpod/{pod_id}")]
    found += [f"cgroup {d}" for c in cids for d in cgroups.exists(f"/varpod/{c}")]
    found += [f"process {pid}" for pid in pids if _alive(pid)]
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    found += [f"mount of {c[:12]}" for c in cids if c in mounts]
    found += [f"bundle {c[:12]}" for c in cids
              if os.path.exists(os.path.join(daemon.run_root, "containers", c))]
    return found


def test_net_uts_members_share_network_and_hostname_but_not_pid_or_cgroup(client, rootfs):
    pod = client.pod_create("netuts", share="net,uts", hostname="podhost")
    a, pa = member(client, rootfs, "netuts")
    b, pb = member(client, rootfs, "netuts")
    info = client.pod_inspect("netuts")
    infra_pid = client.inspect(info.InfraContainerID).State.Pid
    assert ns(pa, "net") == ns(pb, "net") == ns(infra_pid, "net")
    assert ns(pa, "uts") == ns(pb, "uts") == ns(infra_pid, "uts")
    assert ns(pa, "pid") != ns(pb, "pid") and ns(pa, "ipc") != ns(pb, "ipc")
    # Each member has a cgroup namespace of its own: neither the infra's nor the host's
    # (sharing the pod's cgroup is not sharing its cgroup namespace, podman#6149).
    others = {ns(infra_pid, "cgroup"), ns(os.getpid(), "cgroup")}
    assert ns(pa, "cgroup") != ns(pb, "cgroup")
    assert ns(pa, "cgroup") not in others and ns(pb, "cgroup") not in others
    assert run_in(client, a, ["hostname"]) == run_in(client, b, ["hostname"]) == b"podhost\n"
    # Their cgroups are under the pod's.
    for cid, pid in ((a, pa), (b, pb)):
        with open(f"/proc/{pid}/cgroup") as f:
            assert f"/varpod/{pod.id}/{cid}" in f.read()
    assert info.SharedNamespaces == ["net", "uts"]
    assert info.CreateCgroup and info.CgroupPath == f"/varpod/{pod.id}"
    assert info.State == "Running" and info.NumContainers == 3


def test_members_of_a_pid_sharing_pod_see_each_others_processes(client, rootfs):
    client.pod_create("pids", share="pid")
    _a, pa = member(client, rootfs, "pids", ["/bin/sleep", "4242"])
    b, pb = member(client, rootfs, "pids", ["/bin/sleep", "4343"])
    assert ns(pa, "pid") == ns(pb, "pid")
    seen = run_in(client, b, ["ps", "-o", "pid,args"]).decode()
    assert "sleep 4242" in seen and "sleep 4343" in seen
    assert "catatonit -P" in seen  # the infra's pause process is their pid 1
    # Not shared here: the network namespace.
    assert ns(pa, "net") != ns(pb, "net")


def test_sharing_the_cgroup_namespace_is_its_own_flag(client, rootfs):
    client.pod_create("cgns", share="cgroup")
    _a, pa = member(client, rootfs, "cgns")
    _b, pb = member(client, rootfs, "cgns")
    infra_pid = client.inspect(client.pod_inspect("cgns").InfraContainerID).State.Pid
    assert ns(pa, "cgroup") == ns(pb, "cgroup") == ns(infra_pid, "cgroup")
    assert client.pod_inspect("cgns").SharedNamespaces == ["cgroup"]
    # And a pod cgroup without sharing the namespace:
    client.pod_create("cgonly", share="ipc")
    _c, pc = member(client, rootfs, "cgonly")
    assert client.pod_inspect("cgonly").CreateCgroup
    assert ns(pc, "cgroup") != ns(client.inspect(client.pod_inspect("cgonly").InfraContainerID).State.Pid,
                                  "cgroup")


def test_a_pod_that_shares_nothing_has_no_infra_container(client, rootfs):
    pod = client.pod_create("lonely", share="none")
    info = client.pod_inspect("lonely")
    assert info.InfraContainerID == "" and not info.CreateInfra and info.NumContainers == 0
    assert info.State == "Created" and info.SharedNamespaces == []
    a, pa = member(client, rootfs, "lonely")
    assert client.pod_inspect("lonely").NumContainers == 1
    assert not any(c.IsInfra for c in client.list(all=True))
    with open(f"/proc/{pa}/cgroup") as f:
        assert f"/varpod/{pod.id}/{a}" in f.read()  # still in the pod cgroup
    client.pod_remove("lonely", force=True)
    assert cgroups.exists(f"/varpod/{pod.id}") == []


def test_no_pod_cgroup_puts_members_under_the_parent(client, rootfs):
    client.pod_create("flat", share="net", pod_cgroup=False)
    a, pa = member(client, rootfs, "flat")
    info = client.pod_inspect("flat")
    assert not info.CreateCgroup and info.CgroupPath == ""
    with open(f"/proc/{pa}/cgroup") as f:
        assert f"/varpod/{a}" in f.read()


def test_a_custom_cgroup_parent(client, rootfs):
    pod = client.pod_create("parented", share="net", cgroup_parent="/varpod-test-pods")
    try:
        a, pa = member(client, rootfs, "parented")
        with open(f"/proc/{pa}/cgroup") as f:
            assert f"/varpod-test-pods/{pod.id}/{a}" in f.read()
        client.pod_remove("parented", force=True)
        assert cgroups.exists(f"/varpod-test-pods/{pod.id}") == []
    finally:
        cgroups.remove("/varpod-test-pods")


def test_lifecycle_status_and_parallel_stop(client, rootfs):
    client.pod_create("life", share="net")
    trap = ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]
    members = [client.create(rootfs, trap, pod="life").id for _ in range(3)]
    assert client.pod_inspect("life").State == "Created"
    client.pod_start("life")
    assert client.pod_inspect("life").State == "Running"
    client.stop(members[0], timeout=0)
    assert client.pod_inspect("life").State == "Degraded"
    client.pod_pause("life")
    # the stopped member stays stopped, the others (and the infra) are paused
    assert {c.State for c in client.pod_inspect("life").Containers} == {"paused", "exited"}
    client.pod_unpause("life")
    client.pod_start("life")
    # Members stop in parallel: all of them wait out the (long) timeout at once, which one
    # by one they could not; then they are killed, and the pod's stop is done.
    stopper = threading.Thread(target=client.pod_stop, args=("life",), kwargs={"timeout": 60})
    with client.__class__(client.path) as watcher:
        stopper.start()
        eventually(lambda: all(watcher.inspect(m).State.Status == "stopping" for m in members))
        for m in members:
            watcher.kill(m)
    stopper.join()
    info = client.pod_inspect("life")
    assert info.State == "Exited" and {c.State for c in info.Containers} == {"exited"}
    client.pod_restart("life")
    assert client.pod_inspect("life").State == "Running"
    client.pod_kill("life")
    eventually(lambda: client.pod_inspect("life").State == "Exited")


@pytest.mark.parametrize("how", ["stop", "kill", "rm -f"])
def test_pod_teardown_leaves_nothing_behind(daemon, client, rootfs, how):
    pod = client.pod_create(f"gone-{how[:2]}", share="net,pid,ipc,uts")
    cids, pids = [], []
    for _ in range(2):
        cid, pid = member(client, rootfs, pod.id)
        cids.append(cid)
        pids.append(pid)
    infra = client.pod_inspect(pod.id).InfraContainerID
    cids.append(infra)
    pids.append(client.inspect(infra).State.Pid)
    netns = ns(pids[-1], "net")
    if how == "stop":
        client.pod_stop(pod.id)
    elif how == "kill":
        client.pod_kill(pod.id)
        eventually(lambda: {c.State for c in client.pod_inspect(pod.id).Containers} == {"exited"})
    if how != "rm -f":  # stopped: nothing runs, no runtime state, the netns went with them
        assert [p for p in pids if _alive(p)] == []
        assert not set(cids) & set(daemon.runtime_containers())
    client.pod_remove(pod.id, force=True)
    assert leftovers(daemon, pod.id, cids, pids) == []
    assert not any(netns == _netns(p) for p in _all_pids())
    with pytest.raises(NoSuchPod):
        client.pod_inspect(pod.id)
    for cid in cids:
        with pytest.raises(NoSuchContainer):
            client.inspect(cid)


def _alive(pid: int) -> bool:
    """Running, not a zombie: a container re-adopted after a daemon restart is not our child,
    and whoever its parent is now reaps it in its own time."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _netns(pid: int) -> str:
    try:
        return ns(pid, "net")
    except OSError:
        return ""


def test_the_infra_container_goes_only_with_its_pod(client, rootfs):
    client.pod_create("guarded", share="net")
    a, _ = member(client, rootfs, "guarded")
    infra = client.pod_inspect("guarded").InfraContainerID
    for attempt in (lambda: client.stop(infra), lambda: client.kill(infra),
                    lambda: client.restart(infra), lambda: client.remove(infra, force=True)):
        with pytest.raises(InfraContainerInUse):
            attempt()
    assert client.inspect(infra).State.Status == "running"
    client.stop(a, timeout=0)
    client.stop(infra)  # no member uses it now
    client.start(a)  # starting a member starts the infra first
    assert client.inspect(infra).State.Status == "running"
    with pytest.raises(InfraContainerInUse):
        client.remove(infra, force=True)  # never alone, even unused


def test_pod_rm_refuses_members_unless_forced(client, rootfs):
    client.pod_create("full", share="net")
    cid = client.create(rootfs, SLEEP, pod="full").id
    with pytest.raises(PodHasContainers):
        client.pod_remove("full")
    client.remove(cid)  # members may leave on their own
    client.pod_remove("full")  # then the pod goes without force
    with pytest.raises(NoSuchPod):
        client.pod_inspect("full")


def test_hostile_input_gets_named_errors(client, rootfs):
    with pytest.raises(NoSuchPod):
        client.create(rootfs, SLEEP, pod="no-such-pod")
    for op in (client.pod_start, client.pod_stop, client.pod_kill, client.pod_pause,
               client.pod_remove, client.pod_inspect, client.pod_top):
        with pytest.raises(NoSuchPod):
            op("no-such-pod")
    client.pod_create("dup", share="net,uts")
    with pytest.raises(PodExists):
        client.pod_create("dup")
    client.create(rootfs, SLEEP, name="ctrname")
    with pytest.raises(PodExists):
        client.pod_create("ctrname")  # pods and containers share their names, as in podman
    with pytest.raises(NameInUse):
        client.create(rootfs, SLEEP, name="dup")
    with pytest.raises(PodNamespaceConflict):
        client.create(rootfs, SLEEP, pod="dup", network="host")
    with pytest.raises(PodNamespaceConflict):
        client.create(rootfs, SLEEP, pod="dup", hostname="mine")
    with pytest.raises(InvalidPodConfig):
        client.pod_create(share="mnt")
    with pytest.raises(Unsupported):
        client.pod_create(share="user")
    with pytest.raises(InvalidPodConfig):
        client.pod_create(share="bogus")
    with pytest.raises(InvalidPodConfig):
        client.pod_create(share="net", infra=False)
    with pytest.raises(InvalidPodConfig):
        client.pod_create(cgroup_parent="../escape")
    with pytest.raises(InvalidPodConfig):
        client.pod_create("bad/name")
    with pytest.raises(InvalidPodConfig, match="--share net"):
        client.pod_create(publish=["8080:80"], share="uts")
    with pytest.raises(InvalidPodConfig, match="--share net"):
        client.pod_create(networks=["n1"], infra=False)
    with pytest.raises(PodNamespaceConflict, match="-p"):
        client.create(rootfs, SLEEP, pod="dup", ports=["8080:80"])
    assert client.ping() == "pong" and [p.Name for p in client.pod_list()] == ["dup"]


def test_joining_or_starting_in_a_pod_being_removed_is_refused(client, rootfs):
    client.pod_create("leaving", share="net")
    stubborn = ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]
    holdout, _ = member(client, rootfs, "leaving", stubborn)
    waiting = client.create(rootfs, SLEEP, pod="leaving").id
    # The removal waits on the member that ignores SIGTERM until the test kills it.
    remover = threading.Thread(target=client.pod_remove, args=("leaving",),
                               kwargs={"force": True, "timeout": 60})
    with client.__class__(client.path) as other:
        remover.start()

        def refused() -> bool:
            try:
                other.remove(other.create(rootfs, SLEEP, pod="leaving").id)
            except PodRemoving:
                return True
            except NoSuchContainer:
                pass  # created just before the removal began, which took it too
            return False

        eventually(refused)
        with pytest.raises((PodRemoving, NoSuchContainer)):
            other.start(waiting)  # being removed, or removed already
        other.kill(holdout)
    remover.join()
    with pytest.raises(NoSuchPod):
        client.pod_inspect("leaving")
    assert not [c for c in client.list(all=True)]


def test_pod_events_for_every_transition(daemon, client, rootfs):
    seq = client.events(stream=False, since_seq=0)
    last = max((e.seq for e in seq), default=0)
    pod = client.pod_create("evented", share="net")
    client.create(rootfs, SLEEP, pod="evented")
    for op in (client.pod_start, client.pod_pause, client.pod_unpause,
               lambda p: client.pod_restart(p, timeout=0), lambda p: client.pod_stop(p, timeout=0),
               client.pod_kill):
        op("evented")
    client.pod_remove("evented", force=True)
    got = [e.action for e in client.events(stream=False, since_seq=last)
           if e.type == "pod" and e.id == pod.id]
    assert got == ["create", "start", "pause", "unpause", "restart", "stop", "kill", "remove"]
