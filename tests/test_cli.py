"""The `varpod` command line, run as a separate process like a user would."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys

import pytest


def test_run_rm_prints_and_exits(varpod, client, rootfs):
    r = varpod("run", "--rm", "--rootfs", rootfs, "/bin/echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hi\n", b"")
    assert client.list(all=True) == []


def test_exit_code_propagates(varpod, rootfs):
    r = varpod("run", "--rm", "--rootfs", rootfs, "/bin/sh", "-c", "echo out; echo err >&2; exit 7")
    assert r.returncode == 7
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_missing_executable_exits_127(varpod, client, rootfs):
    r = varpod("run", "--rm", "--rootfs", rootfs, "/nope")
    assert r.returncode == 127
    assert b"Error:" in r.stderr
    assert client.list(all=True) == []


def test_detached_run_and_the_lifecycle_verbs(varpod, client, rootfs):
    r = varpod("run", "-d", "--name", "svc", "--rootfs", rootfs, "/bin/sleep", "1000")
    assert r.returncode == 0
    cid = r.stdout.decode().strip()
    assert len(cid) == 64 and client.inspect("svc").State.Status == "running"
    assert varpod("ps", "-q").stdout.decode().split() == [cid[:12]]
    table = varpod("ps").stdout.decode().splitlines()
    assert table[0].split()[:2] == ["CONTAINER", "ID"] and "svc" in table[1]
    for verb, state in (("pause", "paused"), ("unpause", "running")):
        assert varpod(verb, "svc").returncode == 0
        assert client.inspect("svc").State.Status == state
    assert varpod("stop", "-t", "0", "svc").stdout == b"svc\n"
    assert client.inspect("svc").State.Status == "exited"
    assert varpod("stop", "svc").stdout == b"svc\n"  # already stopped: done, as podman says
    assert varpod("start", "svc").returncode == 0
    assert varpod("restart", "-t", "0", "svc").returncode == 0
    assert varpod("kill", "-s", "KILL", "svc").returncode == 0
    assert varpod("wait", "svc").stdout == b"137\n"
    assert varpod("rm", "svc").returncode == 0
    assert client.list(all=True) == []


def test_create_then_start(varpod, client, rootfs):
    r = varpod("create", "--name", "later", "--restart", "on-failure:3", "--rootfs", rootfs,
               "/bin/sh", "-c", "exit 0")
    assert r.returncode == 0
    assert client.inspect("later").HostConfig.RestartPolicy.MaximumRetryCount == 3
    assert varpod("start", "later").returncode == 0
    assert varpod("wait", "later").stdout == b"0\n"


def test_inspect_is_podman_shaped(varpod, client, rootfs):
    client.create(rootfs, ["/bin/true"], name="shape")
    data = json.loads(varpod("inspect", "shape").stdout)
    assert isinstance(data, list) and len(data) == 1
    doc = data[0]
    for key in ("Id", "Name", "Created", "Path", "Args", "State", "Config", "HostConfig"):
        assert key in doc
    for key in ("Status", "ExitCode", "Pid", "StartedAt", "FinishedAt", "Running", "Paused"):
        assert key in doc["State"]
    assert doc["Name"] == "shape" and doc["State"]["Status"] == "configured"


def test_ps_json_and_all(varpod, client, rootfs):
    client.create(rootfs, ["/bin/true"], name="listed")
    assert json.loads(varpod("ps", "--format", "json").stdout) == []
    rows = json.loads(varpod("ps", "-a", "--format", "json").stdout)
    assert [r["Names"] for r in rows] == [["listed"]] and rows[0]["State"] == "configured"


def test_errors_exit_125_with_a_message(varpod):
    r = varpod("stop", "ghost")
    assert r.returncode == 125
    assert r.stderr.startswith(b"Error: no container")


def test_unreachable_daemon_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "varpod.rpc.cli", "--socket", str(tmp_path / "none.sock"),
                        "ps"], capture_output=True, check=False)
    assert r.returncode == 125 and b"cannot reach the varpod daemon" in r.stderr


def test_logs_and_timestamps(varpod, client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "echo one; echo two"], name="chatty")
    client.start(c.id)
    client.wait(c.id)
    assert varpod("logs", "chatty").stdout == b"one\ntwo\n"
    assert varpod("logs", "--tail", "1", "chatty").stdout == b"two\n"
    stamped = varpod("logs", "-t", "chatty").stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two"]
    assert all(line.split(" ", 1)[0].endswith("Z") and "T" in line for line in stamped)


def test_events_history(varpod, client, rootfs):
    client.create(rootfs, ["/bin/true"], name="evcli")
    r = varpod("events", "--stream", "false", "--filter", "container=evcli", "--format", "json")
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert [e["Status"] for e in events] == ["create"]  # podman's JSON event


def test_info_reports_runtimes_and_native(varpod):
    info = json.loads(varpod("info", "--format", "json").stdout)
    assert info["runtimes"][0]["name"] == "runc" and info["runtimes"][0]["version"]
    assert "checkpoint" in info["runtimes"][0]["features"]
    if os.environ.get("CI") == "true":
        assert info["native"] == "c"
    assert info["store_path"].endswith("varpod.db")
    text = varpod("info").stdout.decode()
    assert "runtimes:" in text and "native:" in text


@pytest.mark.parametrize("flags", [[], ["-i"]], ids=["output-only", "stdin"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_to_the_cli_reach_the_container(daemon, rootfs, flags, sig):
    # podman's --sig-proxy: the CLI passes SIGINT/SIGTERM on instead of dying of them.
    script = ("trap 'echo got INT; exit 3' INT; trap 'echo got TERM; exit 4' TERM; echo ready; "
              "while :; do sleep 0.05; done")
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "run", "--rm", *flags, "--rootfs",
                             rootfs, "/bin/sh", "-c", script], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # A bounded wait: a first line held back (it came with the reply) fails here, not at the timeout.
        assert select.select([proc.stdout], [], [], 30)[0], "the container's first line never printed"
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    name = signal.Signals(sig).name[3:]
    assert (proc.returncode, out, err) == (3 if name == "INT" else 4, f"got {name}\n".encode(), b"")


# -- exec --preserve-fds --------------------------------------------------------------------------


def _as_fds_3_and_up(*fds: int):
    """A preexec_fn giving the CLI ``fds`` as its fds 3, 4, ... (first moved out of the way)."""
    import fcntl

    def move() -> None:
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
        for target, fd in enumerate(high, start=3):
            os.dup2(fd, target)

    return move


def test_exec_preserve_fds_hands_the_clis_fds_to_the_process(varpod, client, rootfs):
    cid = client.create(rootfs, ["/bin/sleep", "1000"]).id
    client.start(cid)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(in_w, b"read from fd 3\n")
    os.close(in_w)
    try:
        r = varpod("exec", "--preserve-fds", "2", cid, "/bin/sh", "-c", "cat <&3 >&4; echo done",
                   pass_fds=(3, 4), preexec_fn=_as_fds_3_and_up(in_r, out_w))
    finally:
        os.close(in_r)
        os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        written = f.read()
    assert (r.returncode, r.stdout, r.stderr) == (0, b"done\n", b"")
    assert written == b"read from fd 3\n"


def test_exec_preserve_fds_refuses_an_fd_that_is_not_open(varpod, client, rootfs):
    cid = client.create(rootfs, ["/bin/sleep", "1000"]).id
    client.start(cid)
    r = varpod("exec", "--preserve-fds", "1", cid, "/bin/true")  # the CLI gets no fd 3
    assert r.returncode == 125
    assert r.stderr == b"Error: --preserve-fds 1: fd 3 is not open in this process\n"
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        r = varpod("exec", "-d", "--preserve-fds", "1", cid, "/bin/true", pass_fds=(3,),
                   preexec_fn=_as_fds_3_and_up(devnull))
    finally:
        os.close(devnull)
    assert r.returncode == 125 and r.stderr.endswith(b"drop -d\n")
    assert client.exec_list(cid) == []
