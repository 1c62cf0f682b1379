"""podman's CLI surface as scripts use it: bulk and idempotent verbs, ps, inspect, events,
version, templates, exit codes. Every form runs the CLI against the session's daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def sleeper(client, rootfs, name, **kw):
    c = client.create(rootfs, ["/bin/sleep", "1000"], name=name, **kw)
    client.start(c.id)
    return c.id


def lines(r) -> list[str]:
    return r.stdout.decode().splitlines()


# -- bulk and idempotent forms -----------------------------------------------------------------


def test_the_cleanup_idiom_of_podman_scripts(varpod, client, rootfs):
    ids = [sleeper(client, rootfs, f"bulk{i}") for i in range(3)]
    client.create(rootfs, ["/bin/true"], name="never")
    r = varpod("ps", "--all", "--format", "{{.ID}} {{.Names}}")
    assert sorted(lines(r)) == sorted([f"{i[:12]} bulk{n}" for n, i in enumerate(ids)] +
                                      [f"{client.inspect('never').Id[:12]} never"])
    r = varpod("rm", "-t", "0", "--all", "--force", "--ignore")
    assert r.returncode == 0 and len(lines(r)) == 4 and all(len(x) == 64 for x in lines(r))
    assert client.list(all=True) == []
    assert varpod("rm", "-t", "0", "--all", "--force", "--ignore").returncode == 0  # nothing left


def test_several_names_act_side_by_side(daemon, client, rootfs):
    # PID 1 ignores SIGTERM: each stop waits its full timeout. While one CLI stops five
    # containers, all five are seen stopping at once.
    names = [f"par{i}" for i in range(5)]
    for n in names:
        sleeper(client, rootfs, n)
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "stop", "-t", "2", *names],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen_together = False
    while proc.poll() is None and not seen_together:
        states = [c.State for c in client.list(all=True)]
        seen_together = states.count("stopping") == 5
    out, err = proc.communicate(timeout=30)
    assert seen_together, "the stops did not overlap"
    assert (proc.returncode, out.decode().split(), err) == (0, names, b"")


def test_idempotent_verbs_and_what_podman_calls_errors(varpod, client, rootfs):
    sleeper(client, rootfs, "idem")
    assert varpod("start", "idem").stdout == b""  # already running: done, nothing to say
    assert varpod("stop", "-t", "0", "idem", "idem").stdout == b"idem\nidem\n"
    assert varpod("stop", "idem").stdout == b"idem\n"  # already stopped: done
    r = varpod("stop", "idem", "ghost")
    assert (r.returncode, r.stdout) == (125, b"idem\n") and b"Error: no container" in r.stderr
    assert varpod("stop", "--ignore", "ghost", "idem").returncode == 0
    assert varpod("kill", "idem").returncode == 125  # podman: can only kill running containers
    assert varpod("start", "idem").stdout == b"idem\n"
    assert varpod("pause", "idem").returncode == 0
    assert varpod("pause", "idem").returncode == 125  # already paused
    assert varpod("unpause", "idem").returncode == 0
    # podman-rm(1)'s exit codes: 1 for a missing container, 2 for a running one
    assert varpod("rm", "ghost").returncode == 1
    assert varpod("rm", "idem").returncode == 2
    assert varpod("rm", "--ignore", "ghost").returncode == 0
    r = varpod("rm", "-f", "-t", "0", "-i", "idem", "ghost")
    assert (r.returncode, r.stdout) == (0, b"idem\n")


def test_all_latest_filter_and_cidfile_pick_containers(varpod, client, rootfs, tmp_path):
    a = sleeper(client, rootfs, "pick-a", labels={"tier": "db"})
    b = sleeper(client, rootfs, "pick-b")
    client.create(rootfs, ["/bin/true"], name="pick-c")
    assert sorted(lines(varpod("pause", "--all"))) == sorted([a, b])  # running ones only
    assert sorted(lines(varpod("unpause", "-a"))) == sorted([a, b])
    assert lines(varpod("kill", "-l")) == []  # the latest (pick-c) is not running: no kill
    assert varpod("stop", "-l").stdout.decode().strip() == client.inspect("pick-c").Id
    assert lines(varpod("stop", "-t", "0", "--filter", "label=tier=db")) == [a]
    assert client.inspect("pick-a").State.Status == "exited"
    r = varpod("restart", "-t", "0", "--all", "--running")
    assert lines(r) == [b]
    cidfile = tmp_path / "cid"
    cidfile.write_text(b + "\n")
    assert lines(varpod("rm", "-f", "-t", "0", "--cidfile", str(cidfile))) == [b]
    for argv, message in ((["stop", "--all", "pick-a"], "no arguments are needed"),
                          (["stop", "-a", "-l"], "cannot be used together"),
                          (["stop"], "at least one name"), (["restart", "--running"], "--all"),
                          (["rm", "--filter", "bogus=1"], "bogus is an invalid filter")):
        r = varpod(*argv)
        assert r.returncode == 125 and message in r.stderr.decode(), argv


def test_wait_several_latest_and_ignore(varpod, client, rootfs):
    for name, code in (("w1", 3), ("w2", 4)):
        c = client.create(rootfs, ["/bin/sh", "-c", f"sleep 0.3; exit {code}"], name=name)
        client.start(c.id)
    assert lines(varpod("wait", "w1", "w2")) == ["3", "4"]
    assert lines(varpod("wait", "--latest")) == ["4"]
    r = varpod("wait", "--ignore", "ghost", "w1")
    assert (r.returncode, lines(r)) == (0, ["-1", "3"])
    assert varpod("wait", "--interval", "soon", "w1").returncode == 125


def test_start_attach_runs_it_in_this_terminal(varpod, client, rootfs):
    client.create(rootfs, ["/bin/sh", "-c", "echo attached; exit 6"], name="sa")
    r = varpod("start", "--attach", "sa")
    assert (r.returncode, r.stdout) == (6, b"attached\n")


# -- ps --------------------------------------------------------------------------------------------


def test_ps_table_is_podmans(varpod, client, rootfs):
    cid = sleeper(client, rootfs, "table-ps")
    r = varpod("ps")
    header, row = lines(r)
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS",
                              "NAMES"]
    assert row.startswith(f"{cid[:12]}  ") and row.endswith("  table-ps")
    assert header.index("IMAGE") == 14 and header.index("COMMAND") == 26  # min width 12, pad 2
    assert "/bin/sleep 1000" in row and "ago" in row and "Up " in row
    r = varpod("ps", "--size", "--pod", "--no-trunc", "--noheading")
    (row,) = lines(r)
    assert row.startswith(cid) and "MB (virtual 0B)" in row
    assert lines(varpod("ps", "-q")) == [cid[:12]]


def test_ps_filters_sorts_and_picks(varpod, client, rootfs):
    ids = {}
    for name, labels in (("fa", {"env": "prod"}), ("fb", {"env": "dev"}), ("fc", {})):
        ids[name] = client.create(rootfs, ["/bin/sh", "-c", "exit 3"], name=name, labels=labels).id
        time.sleep(0.01)
    client.start(ids["fb"])
    client.wait(ids["fb"])
    sleeper(client, rootfs, "fd")

    def names(*argv: str) -> list[str]:
        r = varpod("ps", *argv, "--format", "{{.Names}}")
        assert r.returncode == 0, r.stderr
        return lines(r)

    assert names() == ["fd"]
    assert names("-a") == ["fa", "fb", "fc", "fd"]  # oldest first, as podman's default sort
    assert names("-a", "--sort", "names", "-f", "name=f[bc]") == ["fb", "fc"]
    assert names("-a", "--filter", "label=env") == ["fa", "fb"]
    assert names("-a", "--filter", "label=env=prod") == ["fa"]
    assert names("-a", "--filter", "label!=env") == ["fc", "fd"]
    assert names("--filter", "status=exited") == ["fb"]  # a status filter sees every state
    assert names("--filter", "status=created") == ["fa", "fc"]  # podman calls configured "created"
    assert names("-a", "--filter", "exited=3") == ["fb"]
    assert names("-a", "--filter", f"id={ids['fa'][:6]}") == ["fa"]
    assert names("-a", "--filter", "since=fb") == ["fc", "fd"]
    assert names("-a", "--filter", "before=fb") == ["fa"]
    assert names("-a", "--filter", "status=running", "--filter", "status=exited") == ["fb", "fd"]
    assert names("-a", "--filter", "ancestor=alpine", "--filter", "network=podman") == []
    assert names("-a", "--filter", "pod=mypod") == []
    assert names("-n", "2") == ["fc", "fd"]
    assert names("--latest") == ["fd"]
    for bad, message in (("bogus=1", "bogus is an invalid filter"),
                         ("status=zz", "unknown container state"), ("name", 'invalid filter "name"'),
                         ("since=ghost", 'no container with name or ID "ghost"')):
        r = varpod("ps", "-a", "--filter", bad)
        assert r.returncode == 125 and message in r.stderr.decode(), bad


def test_ps_templates(varpod, client, rootfs):
    cid = sleeper(client, rootfs, "tmpl", labels={"tier": "web"})
    r = varpod("ps", "--format", "{{.ID}}|{{.Names}}|{{.Labels}}|{{.Label \"tier\"}}|{{.State}}|"
                                 "{{.Command}}|{{len .Labels}}|{{.Status | printf \"%.2s\"}}")
    assert r.stdout.decode() == f"{cid[:12]}|tmpl|map[tier:web]|web|running|/bin/sleep 1000|1|Up\n"
    r = varpod("ps", "--format", "table {{.ID}}\t{{.Names}}")
    assert lines(r) == ["CONTAINER ID  NAMES", f"{cid[:12]}  tmpl"]
    r = varpod("ps", "--format", "json")
    assert [c["Names"] for c in json.loads(r.stdout)] == [["tmpl"]]
    r = varpod("ps", "--format", "{{.Nope}}")
    assert r.returncode == 125 and r.stdout == b""
    assert r.stderr.startswith(b'Error: template: ps:1:13: executing "ps" at <.Nope>: '
                               b"can't evaluate field Nope")
    r = varpod("ps", "--format", "{{.ID")
    assert r.returncode == 125 and r.stderr.startswith(b"Error: template: ps:1: ")


# -- inspect ---------------------------------------------------------------------------------------


def test_inspect_formats_types_and_missing_ones(varpod, client, rootfs):
    cid = sleeper(client, rootfs, "insp", labels={"a": "1"})
    client.create(rootfs, ["/bin/true"], name="insp2")
    assert varpod("inspect", "--format", "{{.State.Status}}", "insp").stdout == b"running\n"
    r = varpod("inspect", "-f", "{{.Name}} {{.ID}} {{.Config.Labels}} {{.State.Running}}", "insp", "insp2")
    assert lines(r) == [f"insp {cid} map[a:1] true", f"insp2 {client.inspect('insp2').Id} map[] false"]
    r = varpod("container", "inspect", "--format", "{{json .Config.Labels}}", "insp")
    assert r.stdout == b'{"a":"1"}\n'
    r = varpod("inspect", "insp", "ghost")
    assert r.returncode == 125 and [d["Name"] for d in json.loads(r.stdout)] == ["insp"]
    assert r.stderr == b'Error: no such object: "ghost"\n'
    r = varpod("inspect", "--type", "container", "ghost")
    assert r.returncode == 125 and b"no container" in r.stderr and json.loads(r.stdout) == []
    r = varpod("inspect", "--type", "image", "insp")
    assert r.returncode == 125 and b"insp: image not known" in r.stderr
    r = varpod("inspect", "--type", "volume", "insp")
    assert r.returncode == 125 and b"no volume with name 'insp' found" in r.stderr
    doc = json.loads(varpod("inspect", "--size", "insp").stdout)[0]
    assert doc["SizeRw"] > 0 and doc["SizeRootFs"] == 0
    assert varpod("inspect", "-l", "-f", "{{.Name}}").stdout == b"insp2\n"
    r = varpod("inspect", "-f", "{{.State.StartedAt}}", "insp")
    assert r.stdout.decode().endswith(" UTC\n") or " +" in r.stdout.decode()  # a Go time.Time


# -- events, info, version, log level ----------------------------------------------------------------


def test_events_filters_and_formats(varpod, client, rootfs):
    c = client.create(rootfs, ["/bin/true"], name="evt")
    client.start(c.id)
    client.wait(c.id)
    base = ["events", "--stream=false", "--filter", "container=evt"]
    r = varpod(*base, "--format", "{{.Status}} {{.Name}} {{.Type}}")
    statuses = [line.split()[0] for line in lines(r)]
    assert statuses[:3] == ["create", "init", "start"] and "died" in statuses
    assert lines(varpod(*base, "--filter", "event=create", "--format", "{{.ID}}")) == [c.id]
    line = lines(varpod(*base, "--filter", "event=start"))[0]
    assert f" container start {c.id} (image=, name=evt)" in line and line[:4].isdigit()
    (ev,) = [json.loads(x) for x in lines(varpod(*base, "--filter", "status=died", "--format", "json"))]
    assert (ev["Status"], ev["Name"], ev["ContainerExitCode"]) == ("died", "evt", 0)
    assert lines(varpod(*base, "--filter", "type=image")) == []
    assert varpod("events", "--stream=false", "--filter", "bogus=x").returncode == 125


def test_info_version_and_the_log_level(varpod, daemon, tmp_path):
    assert varpod("info", "--format", "{{.version}} {{.default_runtime}}").stdout.decode().endswith(" runc\n")
    r = varpod("version")
    assert r.stdout.decode().startswith("Client:") and "Server:" in r.stdout.decode()
    from varpod import __version__

    assert varpod("version", "--format", "{{.Client.Version}} {{.Server.Version}}").stdout == \
        f"{__version__} {__version__}\n".encode()
    assert varpod("--version").stdout == f"varpod version {__version__}\n".encode()
    r = varpod("--socket", str(tmp_path / "none.sock"), "version")
    assert r.returncode == 125 and b"Client:" in r.stdout and b"Server:" not in r.stdout
    r = varpod("--log-level", "debug", "ps")
    assert b"level=debug" in r.stderr and b"io.varpod.Container.List" in r.stderr
    assert varpod("ps", "--log-level", "error").stderr == b""
