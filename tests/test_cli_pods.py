"""`varpod pod ...`, `run --pod`, `stats` and `top` as a user types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def out(r) -> str:
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_a_pod_from_the_command_line(varpod, client, rootfs):
    pid = out(varpod("pod", "create", "--name", "cli", "--share", "net,uts", "--label", "a=b",
                     "--hostname", "clihost")).strip()
    assert len(pid) == 64
    cid = out(varpod("run", "-d", "--pod", "cli", "--name", "m1", "--rootfs", rootfs,
                     "/bin/sh", "-c", "hostname; exec sleep 1000")).strip()
    assert client.inspect(cid).Pod == pid
    table = out(varpod("pod", "ps")).splitlines()
    assert table[0].split() == ["POD", "ID", "NAME", "STATUS", "CREATED", "INFRA", "ID", "#", "OF",
                                "CONTAINERS"]
    assert table[1].split()[:3] == [pid[:12], "cli", "Running"] and table[1].split()[-1] == "2"
    listed = json.loads(out(varpod("pod", "ls", "--format", "json")))
    assert listed[0]["Name"] == "cli" and listed[0]["Labels"] == {"a": "b"}
    assert {c["Names"] for c in listed[0]["Containers"]} == {"m1", f"{pid[:12]}-infra"}
    info = json.loads(out(varpod("pod", "inspect", "cli")))
    assert info["SharedNamespaces"] == ["net", "uts"] and info["Hostname"] == "clihost"
    assert info["CgroupPath"] == f"/varpod/{pid}" and info["InfraContainerID"]
    assert varpod("pod", "exists", "cli").returncode == 0
    assert varpod("pod", "exists", "nope").returncode == 1
    assert out(varpod("logs", "m1")) == "clihost\n"
    rows = out(varpod("ps", "-a", "--filter", "pod=cli", "--format", "{{.Names}} {{.PodName}}"))
    assert sorted(rows.splitlines()) == [f"{pid[:12]}-infra cli", "m1 cli"]
    assert out(varpod("pod", "stop", "-t", "0", "cli")).strip() == pid
    assert json.loads(out(varpod("pod", "inspect", "cli")))["State"] == "Exited"
    assert out(varpod("pod", "start", "cli")).strip() == pid
    r = varpod("pod", "rm", "cli")
    assert r.returncode == 125 and b"has 1 container" in r.stderr
    assert out(varpod("pod", "rm", "-f", "cli")).strip() == pid
    assert client.pod_list() == [] and client.list(all=True) == []


def test_stats_and_top_from_the_command_line(varpod, client, rootfs):
    varpod("pod", "create", "--name", "busy", "--share", "pid")
    cid = out(varpod("run", "-d", "--pod", "busy", "--name", "spinner", "--rootfs", rootfs,
                     "/bin/sh", "-c", "while :; do :; done")).strip()
    # Until the runtime's init has become the command.
    deadline = time.monotonic() + 15
    while client.top(cid, ["args"]).processes != [["/bin/sh -c while :; do :; done"]]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lines = out(varpod("stats", "--no-stream")).splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "CPU", "%"]
    assert any(line.split()[:2] == [cid[:12], "spinner"] for line in lines[1:])
    # Flags may follow the names, as podman allows.
    stats = json.loads(out(varpod("stats", "spinner", "--no-stream", "--format", "json")))
    assert [s["name"] for s in stats] == ["spinner"] and stats[0]["pids"] == "1"
    assert stats[0]["cpu_percent"].endswith("%") and " / " in stats[0]["mem_usage"]
    pod_stats = json.loads(out(varpod("pod", "stats", "--no-stream", "--format", "json", "busy")))
    assert {s["Name"] for s in pod_stats} == {"spinner", pod_stats[0]["Pod"] + "-infra"}
    top = out(varpod("top", "spinner", "pid,args")).splitlines()
    assert top[0].split() == ["PID", "COMMAND"] and "while :; do :; done" in top[1]
    assert out(varpod("top", "spinner", "-o", "pid,comm")).splitlines()[0].split() == ["PID",
                                                                                       "COMMAND"]
    pod_top = out(varpod("pod", "top", "busy")).splitlines()
    assert pod_top[0].split()[:2] == ["USER", "PID"] and len(pod_top) == 3
    r = varpod("stats", "--no-stream", "nope")
    assert r.returncode == 125 and b"Error:" in r.stderr


def test_stats_keep_coming_until_interrupted(daemon, client, rootfs):
    cid = client.create(rootfs, ["/bin/sleep", "1000"], name="streamed").id
    client.start(cid)
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "stats", "-i", "0.2",
                             "streamed"], stdout=subprocess.PIPE, env=env)
    try:
        headers = 0
        while headers < 3:
            line = proc.stdout.readline()
            assert line, "stats ended by itself"
            headers += line.startswith(b"ID ")
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_pod_create_refuses_what_it_cannot_do(varpod, client):
    for args, text in ((["-p", "8080:80", "--share", "uts"], b"--share net"),
                       (["--network", "n1"], b"no network with name or ID 'n1'"),
                       (["--share", "mnt"], b"mount namespace"),
                       (["--infra=false", "--share", "net"], b"without an infra container")):
        r = varpod("pod", "create", *args)
        assert r.returncode == 125 and text in r.stderr, r.stderr
    assert client.pod_list() == []
