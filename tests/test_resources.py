"""Resource limits (--memory, --cpus, --pids-limit, --cpu-shares) and `update`, read back
from the container's own cgroup (v1 hierarchy) against real runc."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from varpod.core.errors import InvalidConfig, InvalidState, NoSuchContainer, RuntimeFailed

SLEEP = ["/bin/sleep", "1000"]
MiB = 1 << 20
NO_MEMORY_LIMIT = 1 << 62  # v1 reports "no limit" as about 2**63; anything above this is none


def cgroup_value(pid: int, controller: str, name: str) -> str:
    """A file of the cgroup ``pid`` is in, found through /proc/PID/cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(os.path.join("/sys/fs/cgroup", controller, path.lstrip("/"), name)) as g:
                    return g.read().strip()
    raise AssertionError(f"process {pid} is in no {controller} cgroup")


def limits(pid: int) -> dict[str, int | str]:
    return {
        "memory": int(cgroup_value(pid, "memory", "memory.limit_in_bytes")),
        "quota": int(cgroup_value(pid, "cpu", "cpu.cfs_quota_us")),
        "period": int(cgroup_value(pid, "cpu", "cpu.cfs_period_us")),
        "shares": int(cgroup_value(pid, "cpu", "cpu.shares")),
        "pids": cgroup_value(pid, "pids", "pids.max"),
    }


def host_config(client, ref: str) -> tuple[int, ...]:
    hc = client.inspect(ref).HostConfig
    return hc.Memory, hc.NanoCpus, hc.CpuQuota, hc.CpuPeriod, hc.CpuShares, hc.PidsLimit


def running(client, rootfs, command=SLEEP, **limits_: object) -> tuple[str, int]:
    c = client.create(rootfs, command, **limits_)
    client.start(c.id)
    return c.id, client.inspect(c.id).State.Pid


def test_limits_given_at_create_are_in_the_cgroup(client, rootfs):
    cid, pid = running(client, rootfs, memory="64m", cpus=0.5, pids_limit=100, cpu_shares=512)
    assert limits(pid) == {"memory": 64 * MiB, "quota": 50_000, "period": 100_000,
                           "shares": 512, "pids": "100"}
    assert host_config(client, cid) == (64 * MiB, 500_000_000, 50_000, 100_000, 512, 100)


def test_without_limits_the_cgroup_has_none(client, rootfs):
    cid, pid = running(client, rootfs)
    got = limits(pid)
    assert got["memory"] > NO_MEMORY_LIMIT and got["quota"] == -1 and got["pids"] == "max"
    assert got["shares"] == 1024
    assert host_config(client, cid) == (0, 0, 0, 0, 0, 0)


def test_update_changes_a_running_containers_cgroup(client, rootfs):
    cid, pid = running(client, rootfs)
    reply = client.update(cid, memory="128m", cpus=1.5, pids_limit=50, cpu_shares=256)
    assert reply.state == "running"
    assert limits(pid) == {"memory": 128 * MiB, "quota": 150_000, "period": 100_000,
                           "shares": 256, "pids": "50"}
    assert host_config(client, cid) == (128 * MiB, 1_500_000_000, 150_000, 100_000, 256, 50)
    # A limit not given stays; -1 and 0 lift one.
    client.update(cid, pids_limit=-1)
    assert limits(pid) == {"memory": 128 * MiB, "quota": 150_000, "period": 100_000,
                           "shares": 256, "pids": "max"}
    client.update(cid, memory=0, cpu_shares=0)
    got = limits(pid)
    assert got["memory"] > NO_MEMORY_LIMIT and got["shares"] == 1024 and got["quota"] == 150_000
    assert host_config(client, cid) == (0, 1_500_000_000, 150_000, 100_000, 0, 0)
    events = list(client.events(since_seq=0, stream=False,
                                filters={"container": cid, "action": "update"}))
    assert [e.attributes for e in events] == [
        {"memory": str(128 * MiB), "cpus": "1.5", "pidsLimit": "50", "cpuShares": "256"},
        {"pidsLimit": "-1"},
        {"memory": "0", "cpuShares": "0"},
    ]


def test_update_of_a_paused_and_of_a_created_container(client, rootfs):
    cid, pid = running(client, rootfs)
    client.pause(cid)
    assert client.update(cid, pids_limit=20).state == "paused"
    assert cgroup_value(pid, "pids", "pids.max") == "20"
    client.unpause(cid)

    created = client.create(rootfs, SLEEP).id
    client.init(created)
    assert client.update(created, memory="48m").state == "created"
    assert int(cgroup_value(client.inspect(created).State.Pid, "memory",
                            "memory.limit_in_bytes")) == 48 * MiB
    client.start(created)
    assert int(cgroup_value(client.inspect(created).State.Pid, "memory",
                            "memory.limit_in_bytes")) == 48 * MiB


@pytest.mark.parametrize("how", ["configured", "exited"])
def test_update_without_a_cgroup_is_saved_for_the_next_start(client, rootfs, how):
    cid = client.create(rootfs, SLEEP, memory="64m", pids_limit=10).id
    if how == "exited":
        client.start(cid)
        client.stop(cid, timeout=0)
    assert client.update(cid, memory="96m", cpus=0.25).state == how
    assert host_config(client, cid) == (96 * MiB, 250_000_000, 25_000, 100_000, 0, 10)
    client.start(cid)
    pid = client.inspect(cid).State.Pid
    assert limits(pid) == {"memory": 96 * MiB, "quota": 25_000, "period": 100_000,
                           "shares": 1024, "pids": "10"}


def test_update_is_refused_while_stopping(daemon, client, rootfs):
    # The init shell ignores SIGTERM, so the stop waits in `stopping` until the kill below.
    cid, _ = running(client, rootfs, ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"])

    def stop() -> None:
        with daemon.client() as other:  # a call of its own: this one waits
            other.stop(cid, timeout=60)

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        _wait_for(lambda: client.inspect(cid).State.Status == "stopping")
        with pytest.raises(InvalidState) as info:
            client.update(cid, memory="64m")
        assert info.value.state == "stopping"
    finally:
        client.kill(cid)
        stopper.join(30)
    assert client.inspect(cid).HostConfig.Memory == 0


def _wait_for(check, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


BAD = [
    ({"memory": -1}, "memory"),
    ({"memory": 4096}, "memory"),  # below the 6m minimum
    ({"memory": "lots"}, "memory"),  # refused by the client library before sending
    ({"memory": "-5m"}, "memory"),
    ({"cpus": 0}, "cpus"),
    ({"cpus": -0.5}, "cpus"),
    ({"cpus": 1000.0}, "cpus"),  # more than this machine has
    ({"cpus": float("nan")}, "cpus"),
    ({"pids_limit": -2}, "pids_limit"),
    ({"cpu_shares": 1}, "cpu_shares"),
    ({"cpu_shares": -1}, "cpu_shares"),
    ({"cpu_shares": 10**6}, "cpu_shares"),
]


@pytest.mark.parametrize(("bad", "field"), BAD, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_bad_limits_at_create_are_named_errors(client, rootfs, bad, field):
    with pytest.raises(InvalidConfig) as info:
        client.create(rootfs, SLEEP, **bad)
    assert info.value.field == field
    assert client.list(all=True) == []


def test_bad_limits_in_update_are_named_errors_and_change_nothing(client, rootfs):
    cid, pid = running(client, rootfs, memory="64m", pids_limit=30)
    before = limits(pid)
    for bad, field in BAD:
        with pytest.raises(InvalidConfig) as info:
            client.update(cid, **bad)
        assert info.value.field == field, bad
    assert limits(pid) == before
    assert host_config(client, cid) == (64 * MiB, 0, 0, 0, 0, 30)


def test_update_of_an_unknown_container_is_no_such_container(client):
    with pytest.raises(NoSuchContainer):
        client.update("ghost", memory="64m")


def test_a_runtime_refusal_is_runtime_failed_and_saves_nothing(client, rootfs):
    # 20 MiB in tmpfs is charged to the container and, without swap, cannot be reclaimed:
    # the kernel refuses a 6 MiB limit, and runc says so.
    if _has_swap():
        pytest.skip("with swap the kernel may reclaim the tmpfs pages instead of refusing")
    script = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=20 2>/dev/null; echo full; sleep 1000"
    cid, pid = running(client, rootfs, ["/bin/sh", "-c", script], memory="64m")
    _wait_for(lambda: b"full" in b"".join(r.payload for r in client.logs(cid)))
    with pytest.raises(RuntimeFailed) as info:
        client.update(cid, memory="6m")
    assert info.value.message.startswith("OCI runtime update failed: ")
    assert "memory" in info.value.message
    assert client.inspect(cid).HostConfig.Memory == 64 * MiB
    assert limits(pid)["memory"] == 64 * MiB


def _has_swap() -> bool:
    with open("/proc/swaps") as f:
        return len(f.read().splitlines()) > 1


def test_updated_limits_survive_a_daemon_restart(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        cid, pid = running(c, rootfs, memory="64m")
        c.update(cid, memory="80m", pids_limit=12)
    d.stop()
    d.start()
    with d.client() as c:
        assert host_config(c, cid) == (80 * MiB, 0, 0, 0, 0, 12)
        assert limits(pid)["memory"] == 80 * MiB  # the re-adopted container kept its cgroup
        c.stop(cid, timeout=0)  # the next start is built from the saved config
        c.start(cid)
        assert limits(c.inspect(cid).State.Pid)["pids"] == "12"


# -- the command line ----------------------------------------------------------------------------


def test_cli_limits_and_update(varpod, client, rootfs):
    r = varpod("run", "-d", "--name", "lim", "--memory", "64m", "--cpus", "0.5", "--pids-limit",
               "30", "--cpu-shares", "512", "--rootfs", rootfs, *SLEEP)
    assert r.returncode == 0, r.stderr
    pid = client.inspect("lim").State.Pid
    assert limits(pid) == {"memory": 64 * MiB, "quota": 50_000, "period": 100_000,
                           "shares": 512, "pids": "30"}
    r = varpod("update", "-m", "128m", "--cpus", "1", "--pids-limit", "-1", "lim")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"lim\n", b"")
    assert limits(pid) == {"memory": 128 * MiB, "quota": 100_000, "period": 100_000,
                           "shares": 512, "pids": "max"}
    doc = json.loads(varpod("inspect", "lim").stdout)[0]["HostConfig"]
    assert (doc["Memory"], doc["NanoCpus"], doc["CpuShares"], doc["PidsLimit"]) == (
        128 * MiB, 1_000_000_000, 512, 0)


@pytest.mark.parametrize(("argv", "message"), [
    (["update", "--memory", "lots", "lim"], b"Error: memory 'lots' is not a size"),
    (["update", "--memory=-64m", "lim"], b"Error: memory '-64m' is negative"),
    (["update", "--cpus", "half", "lim"], b"Error: cpus 'half' is not a number"),
    (["update", "--cpus", "0", "lim"], b"Error: cpus 0.0 is out of range"),
    (["update", "--cpu-shares", "1", "lim"], b"Error: cpu shares 1 are out of range"),
    (["update", "lim"], b"Error: nothing to update"),
    (["update", "--memory", "64m", "ghost"], b"Error: no container"),
])
def test_cli_update_errors(varpod, client, rootfs, argv, message):
    client.create(rootfs, SLEEP, name="lim")
    r = varpod(*argv)
    assert r.returncode == 125 and r.stderr.startswith(message), r.stderr
    assert client.inspect("lim").HostConfig.Memory == 0


def test_cli_create_refuses_a_bad_limit(varpod, client, rootfs):
    r = varpod("create", "--memory", "1k", "--rootfs", rootfs, *SLEEP)
    assert r.returncode == 125 and b"below the minimum" in r.stderr
    r = varpod("run", "--rm", "--pids-limit=-7", "--rootfs", rootfs, *SLEEP)
    assert r.returncode == 125 and b"pids limit -7" in r.stderr
    assert client.list(all=True) == []
