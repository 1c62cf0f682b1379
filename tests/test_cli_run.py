"""`run`/`create` as podman scripts use them: the everyday flags, the environment from the
client, --rm as the daemon's, paths of the client, pipes that close early, exit codes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest


def out(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_environment_from_the_client(varpod, rootfs, tmp_path):
    env_file = tmp_path / "e.env"
    env_file.write_text("# a comment\n\nA=1\n  B=two words\nFROM_CLIENT\nUNSET_HERE\n")
    script = 'echo "$A|$B|$FROM_CLIENT|${UNSET_HERE-unset}|$PICKED|$X1$X2|$LATE"'
    r = varpod("run", "--rm", "--env-file", str(env_file), "-e", "PICKED", "-e", "X*",
               "-e", "LATE=-e wins", "-e", "A=from -e", "--rootfs", rootfs, "/bin/sh", "-c", script,
               env_extra={"FROM_CLIENT": "fc", "PICKED": "p", "X1": "x", "X2": "y", "LATE": "no"})
    assert out(r) == "from -e|two words|fc|unset|p|xy|-e wins\n"
    r = varpod("run", "--rm", "--env-host", "--rootfs", rootfs, "/bin/sh", "-c", "echo $HOSTONLY",
               env_extra={"HOSTONLY": "here"})
    assert out(r) == "here\n"
    missing = str(tmp_path / "none")
    for bad, message in ((["-e", "=x"], "has no name"), (["--env-file", missing], "--env-file")):
        r = varpod("run", "--rm", *bad, "--rootfs", rootfs, "/bin/true")
        assert r.returncode == 125 and message in r.stderr.decode()


def test_capabilities_privileges_and_limits(varpod, rootfs):
    def status(*flags: str, field: str) -> str:
        r = varpod("run", "--rm", *flags, "--rootfs", rootfs, "/bin/sh", "-c",
                   f"grep ^{field}: /proc/self/status")
        return out(r).split()[1]

    assert status("--cap-drop", "all", "--cap-add", "kill", field="CapEff") == f"{1 << 5:016x}"
    assert int(status("--privileged", field="CapEff"), 16) > int(status(field="CapEff"), 16)
    assert status("--security-opt", "no-new-privileges", field="NoNewPrivs") == "1"
    assert status(field="NoNewPrivs") == "0"
    r = varpod("run", "--rm", "--ulimit", "nofile=100:200", "--rootfs", rootfs, "/bin/sh", "-c",
               "ulimit -n; ulimit -Hn")
    assert out(r) == "100\n200\n"
    r = varpod("run", "--rm", "--sysctl", "kernel.shmmax=123456", "--shm-size", "2m", "--rootfs", rootfs,
               "/bin/sh", "-c", "cat /proc/sys/kernel/shmmax; df -k /dev/shm | tail -1")
    shmmax, df = out(r).splitlines()
    assert shmmax == "123456" and df.split()[1] == "2048"
    r = varpod("run", "--rm", "--device", "/dev/null:/dev/also-null:rw", "--rootfs", rootfs, "/bin/sh",
               "-c", "echo x > /dev/also-null && echo written")
    assert out(r) == "written\n"


@pytest.mark.parametrize(("flags", "message"), [
    (["--ulimit", "nofile=4294967296"], "above the daemon's own hard limit"),
    (["--sysctl", "vm.swappiness=1"], "sysctl 'vm.swappiness' is not allowed"),
    (["--security-opt", "label=disable"], "--security-opt 'label=disable' is not supported by varpod"),
    (["--device", "/etc/passwd"], "not a device"),
    (["--cap-add", "nope"], "unknown capability"),
    (["--log-driver", "journald"], "log driver 'journald' is not supported"),
    (["--userns", "keep-id"], "--userns 'keep-id' is not supported by varpod"),
    (["--cpuset-cpus", "0"], "--cpuset-cpus is not supported by varpod"),
    (["--oom-kill-disable"], "--oom-kill-disable is not supported by varpod"),
    (["--replace"], "without --name"),
])
def test_what_varpod_refuses_is_named(varpod, client, rootfs, flags, message):
    r = varpod("run", "--rm", *flags, "--rootfs", rootfs, "/bin/true")
    assert r.returncode == 125 and message in r.stderr.decode(), r.stderr
    assert r.stderr.startswith(b"Error: ")
    assert client.list(all=True) == []


def test_init_cidfile_replace_annotations_and_the_none_log_driver(varpod, client, rootfs, tmp_path):
    r = varpod("run", "--rm", "--init", "--rootfs", rootfs, "/bin/sh", "-c",
               "tr '\\0' ' ' < /proc/1/cmdline; echo")
    assert out(r) == "/dev/init -- /bin/sh -c tr '\\0' ' ' < /proc/1/cmdline; echo \n"
    cidfile = tmp_path / "cid"
    cid = out(varpod("run", "-d", "--name", "rep", "--cidfile", str(cidfile), "--annotation", "a.b=c",
                     "--log-driver", "none", "--rootfs", rootfs, "/bin/sh", "-c", "echo lost; sleep 1000"))
    assert cidfile.read_text() == cid.strip()
    r = varpod("run", "-d", "--cidfile", str(cidfile), "--rootfs", rootfs, "/bin/true")
    assert r.returncode == 125 and b"exists" in r.stderr
    doc = json.loads(varpod("inspect", "rep").stdout)[0]
    assert doc["Config"]["Annotations"] == {"a.b": "c"} and doc["HostConfig"]["LogConfig"]["Type"] == "none"
    r = varpod("logs", "rep")
    assert r.returncode == 125 and b"none log driver" in r.stderr
    new = out(varpod("run", "-d", "--replace", "--name", "rep", "--rootfs", rootfs, "/bin/sleep", "1000"))
    assert new != cid and [c.Id for c in client.list(all=True)] == [new.strip()]


def test_rootfs_and_files_are_the_clients_paths(varpod, rootfs, tmp_path):
    os.symlink(rootfs, tmp_path / "rootfs")
    (tmp_path / "e.env").write_text("WHERE=client\n")
    r = varpod("run", "--rm", "--rootfs", "./rootfs", "--env-file", "e.env", "/bin/sh", "-c", "echo $WHERE",
               cwd=tmp_path)
    assert out(r) == "client\n"


def test_run_rm_is_the_daemons(varpod, daemon, client, rootfs):
    # The client goes away (SIGKILL): the container runs on, and is removed when it exits.
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "run", "--rm", "--name", "orphan",
                             "--rootfs", rootfs, "/bin/sh", "-c", "echo up; exec sleep 1000"],
                            env=env, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    proc.kill()
    proc.wait()
    assert client.inspect("orphan").State.Status == "running"
    client.kill("orphan", "KILL")  # its end, whenever it comes, removes it
    deadline = time.monotonic() + 20
    while client.list(all=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.list(all=True) == []
    # -d --rm: the same, and the exit code of a foreground --rm run still arrives
    r = varpod("run", "-d", "--rm", "--rootfs", rootfs, "/bin/true")
    assert r.returncode == 0
    assert varpod("run", "--rm", "--rootfs", rootfs, "/bin/sh", "-c", "exit 9").returncode == 9
    assert varpod("run", "--rm", "-t", "--rootfs", rootfs, "/bin/sh", "-c", "exit 8").returncode == 8


def test_a_closed_output_ends_the_command_quietly(daemon, client, rootfs):
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    cli = f"{sys.executable} -m varpod.rpc.cli"
    script = (f"{cli} run --rm --rootfs {rootfs} /bin/sh -c 'yes line | head -200000' | head -1; "
              "echo \"status ${PIPESTATUS[0]}\"")
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=60)
    assert (r.stdout, r.stderr) == (b"line\nstatus 141\n", b"")  # died of SIGPIPE, as `yes` does
    c = client.create(rootfs, ["/bin/sh", "-c", "while :; do echo tick; sleep 0.01; done"], name="ticker")
    client.start(c.id)
    r = subprocess.run(["bash", "-c", f"{cli} attach ticker | head -2; echo \"status ${{PIPESTATUS[0]}}\""],
                       env=env, capture_output=True, timeout=60)
    assert (r.stdout, r.stderr) == (b"tick\ntick\nstatus 141\n", b"")
    assert client.inspect("ticker").State.Status == "running"


def test_a_long_stream_grows_the_output_pipes_and_keeps_every_byte(daemon, rootfs):
    """Output into pipes: the CLI grows them to 1 MiB (1 GiB of attach: ~2x the rate here);
    stdout and stderr stay apart and whole."""
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    script = "head -c 3000000 /dev/zero; head -c 5000 /dev/zero >&2"
    with subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "run", "--rm", "--rootfs", rootfs,
                           "/bin/sh", "-c", script],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        got = 0
        while chunk := os.read(proc.stdout.fileno(), 1 << 16):
            assert chunk.count(0) == len(chunk)
            got += len(chunk)
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
        sizes = [fcntl.fcntl(f, fcntl.F_GETPIPE_SZ) for f in (proc.stdout, proc.stderr)]
    assert (sizes, got, err) == ([1 << 20, 1 << 20], 3000000, b"\0" * 5000)


def test_exit_codes_are_podmans(varpod, client, rootfs):
    r = varpod("run", "--rm", "--rootfs", rootfs, "/etc/passwd")
    assert r.returncode == 126 and r.stderr.startswith(b"Error: ")
    r = varpod("run", "-d", "--rm", "--rootfs", rootfs, "/nope")
    assert r.returncode == 127 and client.list(all=True) == []
    assert varpod("run", "--rm", "--rootfs", rootfs, "/bin/sh", "-c", "exit 42").returncode == 42
    r = varpod("run", "--rm", "--rootfs", "/nonexistent", "/bin/true")
    assert r.returncode == 125 and b"Error: rootfs" in r.stderr


def test_attach_without_sig_proxy_leaves_on_ctrl_c(daemon, client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], name="nosig")
    client.start(c.id)
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "attach", "--sig-proxy=false",
                             "nosig"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            e.action == "attach" and e.name == "nosig" for e in client.events(since_seq=0, stream=False)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 130
    assert client.inspect("nosig").State.Status == "running"


def test_exec_takes_the_clients_environment_too(varpod, client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], name="exenv")
    client.start(c.id)
    r = varpod("exec", "-e", "FROM_CLIENT", "-e", "SET=1", "exenv", "/bin/sh", "-c", "echo $FROM_CLIENT$SET",
               env_extra={"FROM_CLIENT": "fc"})
    assert out(r) == "fc1\n"
