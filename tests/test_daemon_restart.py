"""Stopping or restarting the daemon never stops or forgets a container."""

from __future__ import annotations

import signal
import time

from test_lifecycle import eventually, output


def alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever adopted it is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_leaves_containers_running_and_a_new_daemon_adopts_them(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    script = "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done"
    with d.client() as c:
        cid = c.create(rootfs, ["/bin/sh", "-c", script], name="survivor").id
        c.start(cid)
        pid = c.inspect(cid).State.Pid
        eventually(lambda: b"tick2\n" in output(c, cid)[0])
    assert d.stop(signal.SIGTERM) == 0
    assert "shutting down: containers keep running" in d.log()
    assert alive(pid)
    time.sleep(0.3)  # output written while no daemon runs waits in the FIFO
    d.start()
    with d.client() as c:
        info = c.inspect("survivor")
        assert info.State.Status == "running" and info.State.Pid == pid
        before = output(c, cid)[0].count(b"\n")
        eventually(lambda: output(c, cid)[0].count(b"\n") > before + 3)
        lines = output(c, cid)[0].splitlines()
        assert lines == [f"tick{i}".encode() for i in range(len(lines))]  # nothing lost
        c.stop(cid, timeout=0)
        assert c.inspect(cid).State.Status == "exited"
        assert not alive(pid)


def test_sigterm_ends_open_streams_clearly(fresh_daemon, rootfs):
    from varpod.core.errors import ShuttingDown

    d = fresh_daemon.start()
    with d.client() as c:
        cid = c.create(rootfs, ["/bin/sleep", "1000"]).id
        c.start(cid)
        events = c.events()
        logs = c.logs(cid, follow=True)
        time.sleep(0.2)
        d.proc.send_signal(signal.SIGTERM)
        got = []
        try:
            for ev in events:
                got.append(ev)
        except ShuttingDown:
            got.append("shutdown")
        assert got[-1] == "shutdown"
        try:
            list(logs)
            ended = "eof"
        except ShuttingDown:
            ended = "shutdown"
        assert ended == "shutdown"
    d.proc.wait(20)
    d.proc = None
