"""Crashes and restarts of the daemon: nothing killed, nothing forgotten, nothing invented."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest
from test_daemon_restart import alive
from test_lifecycle import eventually, output

from varpod.core.errors import VarpodError


def config(tmp_path, **kw) -> str:
    lines = [f"{k} = {json.dumps(v)}" for k, v in kw.items() if not isinstance(v, dict)]
    for section, values in kw.items():
        if isinstance(values, dict):
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path = tmp_path / "varpod.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def accounting_daemon(fresh_daemon, tmp_path):
    fresh_daemon.config = config(tmp_path, exit_accounting=True)
    yield fresh_daemon
    subprocess.run(["python3", "-c", "import ctypes; ctypes.CDLL(None).acct(None)"], check=False)


def runtime_view(d) -> dict[str, str]:
    root = os.path.join(d.run_root, "runtime", "runc")
    out = subprocess.run(["runc", "--root", root, "list", "--format", "json"], capture_output=True,
                         check=True).stdout
    return {e["id"]: e["status"] for e in json.loads(out or b"null") or []}


def test_kill_9_leaves_containers_running_and_loses_no_output(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    script = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.02; done"
    with d.client() as c:
        cid = c.create(rootfs, ["/bin/sh", "-c", script]).id
        c.start(cid)
        pid = c.inspect(cid).State.Pid
        eventually(lambda: b"line5\n" in output(c, cid)[0])
    d.stop(signal.SIGKILL)
    time.sleep(0.5)  # the container keeps writing; the FIFO holds it
    assert alive(pid)
    d.start()
    with d.client() as c:
        assert c.inspect(cid).State.Status == "running"
        before = output(c, cid)[0].count(b"\n")
        eventually(lambda: output(c, cid)[0].count(b"\n") > before + 10)
        lines = output(c, cid)[0].splitlines()
        assert lines == [f"line{i}".encode() for i in range(len(lines))]
        # attach and exec work on the adopted container
        sid = c.exec_create(cid, ["/bin/sh", "-c", "echo from-exec"])
        assert c.exec_start(sid, attach=True).read() == (b"from-exec\n", b"")
        c.stop(cid, timeout=0)
        assert not alive(pid)


def test_exit_while_down_is_unknown_never_invented(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        cid = c.create(rootfs, ["/bin/sh", "-c", "sleep 1; exit 7"]).id
        c.start(cid)
        pid = c.inspect(cid).State.Pid
    d.stop(signal.SIGKILL)
    eventually(lambda: not alive(pid))
    d.start()
    with d.client() as c:
        st = c.inspect(cid).State
        assert st.Status == "exited"
        assert (st.ExitCodeKnown, st.ExitCode) == (False, -1)
        assert [e.attributes["exitCode"] for e in c.events(since_seq=0, stream=False)
                if e.action == "died" and e.id == cid] == ["unknown"]


def test_exit_accounting_recovers_exit_codes(accounting_daemon, rootfs):
    d = accounting_daemon.start()
    with d.client() as c:
        assert c.info().runtimes  # the daemon is up with accounting on
        down = c.create(rootfs, ["/bin/sh", "-c", "sleep 1; exit 7"]).id
        later = c.create(rootfs, ["/bin/sleep", "1000"]).id
        c.start(down)
        c.start(later)
        down_pid = c.inspect(down).State.Pid
    d.stop(signal.SIGKILL)
    eventually(lambda: not alive(down_pid))
    d.start()
    with d.client() as c:
        st = c.inspect(down).State
        assert (st.Status, st.ExitCode, st.ExitCodeKnown) == ("exited", 7, True)
        # adopted, no longer our child: its exit is read from the ledger too
        assert c.inspect(later).State.Status == "running"
        c.kill(later, "KILL")
        waited = c.wait(later)
        assert (waited.exit_code, waited.exit_code_known) == (137, True)


def test_a_crash_during_stop_is_reconciled(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        cid = c.create(rootfs, ["/bin/sleep", "1000"], stop_timeout=1).id
        c.start(cid)
    threading.Thread(target=lambda: _quiet(lambda: d.client().stop(cid, timeout=600)),
                     daemon=True).start()
    with d.client() as c:
        eventually(lambda: c.inspect(cid).State.Status == "stopping")
    d.stop(signal.SIGKILL)
    d.start()
    with d.client() as c:
        # podman#19629 left such containers stuck; the stop the user asked for is finished
        eventually(lambda: c.inspect(cid).State.Status == "exited", timeout=30)
        assert c.inspect(cid).State.StoppedByUser


def _quiet(fn):
    try:
        fn()
    except (VarpodError, OSError):
        pass


def test_leftovers_of_unknown_containers_are_collected(fresh_daemon, rootfs, tmp_path):
    d = fresh_daemon.start()
    d.stop()
    root = os.path.join(d.run_root, "runtime", "runc")
    bundle = tmp_path / "orphan"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": rootfs, "readonly": True}
    spec["process"].update(args=["/bin/sleep", "1000"], terminal=False)
    (bundle / "config.json").write_text(json.dumps(spec))
    orphan = "f" * 64
    subprocess.run(["runc", "--root", root, "run", "--detach", "--bundle", str(bundle), orphan],
                   check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    stale = os.path.join(d.run_root, "containers", "e" * 64)
    os.makedirs(stale)
    open(os.path.join(stale, "pid"), "w").close()
    d.start()
    assert orphan not in runtime_view(d)
    assert not os.path.exists(stale)


def test_store_and_runtime_agree_after_crashes_mid_operation(fresh_daemon, rootfs):
    d = fresh_daemon
    rng = random.Random(7)
    for _round in range(6):
        d.start()
        stop = threading.Event()

        def churn(stop=stop):
            while not stop.is_set():
                try:
                    with d.client() as c:
                        cid = c.create(rootfs, ["/bin/sleep", "1000"]).id
                        c.start(cid)
                        if rng.random() < 0.5:
                            c.stop(cid, timeout=0)
                        c.remove(cid, force=True)
                except (VarpodError, OSError):
                    pass

        workers = [threading.Thread(target=churn, daemon=True) for _ in range(3)]
        for w in workers:
            w.start()
        time.sleep(rng.uniform(0.3, 1.5))
        d.stop(signal.SIGKILL)  # in the middle of whatever it was doing
        stop.set()
        for w in workers:
            w.join(10)
        d.start()
        with d.client() as c:
            listed = {x.Id: x.State for x in c.list(all=True)}
        view = runtime_view(d)
        for cid, status in view.items():
            assert cid in listed, f"runtime container {cid} has no record"
            assert listed[cid] in ("running", "created", "paused", "stopping"), (cid, status)
        for cid, state in listed.items():
            if state in ("running", "created", "paused", "stopping"):
                assert cid in view, f"{cid} is {state} but the runtime does not have it"
            else:
                assert cid not in view or view[cid] == "stopped"
        d.remove_all()
        d.stop()


def test_exec_sessions_survive_a_restart(accounting_daemon, rootfs):
    d = accounting_daemon.start()
    with d.client() as c:
        cid = c.create(rootfs, ["/bin/sleep", "1000"]).id
        c.start(cid)
        sid = c.exec_create(cid, ["/bin/sh", "-c", "sleep 1.5; exit 5"])
        c.exec_start(sid)
    d.stop(signal.SIGKILL)
    d.start()
    with d.client() as c:
        assert c.exec_inspect(sid).Running
        info = eventually(lambda: None if (i := c.exec_inspect(sid)).Running else i)
        assert (info.ExitCode, info.ExitCodeKnown) == (5, True)
        c.stop(cid, timeout=0)
