"""Many clients at once and operations that race: defined answers, nothing hangs, nothing leaks."""

from __future__ import annotations

import glob
import os
import threading
import time

import pytest
from test_lifecycle import eventually
from test_survival import config

from varpod.core.errors import EventsOverflow, InvalidState, NoSuchContainer

EXPECTED = (InvalidState, NoSuchContainer)  # races between clients may legitimately refuse


def daemon_fds(d) -> int:
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def cgroup_leftovers(ids: list[str]) -> list[str]:
    return [p for cid in ids for p in glob.glob(f"/sys/fs/cgroup/*/varpod/{cid}")]


def lifecycle_loop(d, rootfs: str, stop: threading.Event, errors: list, counts: list) -> None:
    with d.client() as c:
        while not stop.is_set():
            try:
                cid = c.create(rootfs, ["/bin/sh", "-c", "echo up; sleep 1000"]).id
                c.start(cid)
                sid = c.exec_create(cid, ["/bin/sh", "-c", "echo in-exec"])
                out, _ = c.exec_start(sid, attach=True).read()
                assert out == b"in-exec\n", out
                c.stop(cid, timeout=0)
                logged = b"".join(r.payload for r in c.logs(cid))
                assert logged == b"up\n", logged  # drained before the stop returned
                c.remove(cid)
                counts.append(cid)
            except EXPECTED:
                pass
            except Exception as e:  # collected: the test fails on any of these
                errors.append(repr(e))
                return


@pytest.mark.slow
def test_fifty_clients_churning_leave_nothing_behind(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:  # warm up, so what follows measures steady state
        cid = c.create(rootfs, ["/bin/true"]).id
        c.start(cid)
        c.wait(cid)
        c.remove(cid)
    fds_before = daemon_fds(d)
    stop, errors, counts = threading.Event(), [], []
    workers = [threading.Thread(target=lifecycle_loop, args=(d, rootfs, stop, errors, counts))
               for _ in range(50)]
    for w in workers:
        w.start()
    time.sleep(10)
    stop.set()
    for w in workers:
        w.join(120)
    assert not any(w.is_alive() for w in workers), "a client hung"
    assert not errors, errors[:5]
    assert len(counts) > 50  # the daemon kept up under load
    with d.client() as c:
        assert c.list(all=True) == []
        assert c.ping() == "pong"
    assert d.runtime_containers() == []
    assert os.listdir(os.path.join(d.run_root, "containers")) == []
    assert not cgroup_leftovers(counts)
    eventually(lambda: daemon_fds(d) <= fds_before + 2)


def test_remove_during_attach_ends_the_stream(daemon, client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "echo hello; sleep 1000"])
    session = client.attach(c.id, start=True)
    it = iter(session)
    assert next(it) == (1, b"hello\n")
    done = []
    t = threading.Thread(target=lambda: done.append(list(it)))
    t.start()
    assert client.remove(c.id, force=True) == c.id
    t.join(30)
    assert not t.is_alive()
    assert done == [[]]
    assert session.end.get("end") == "exit" and session.end.get("exit_code") == 137


def test_exec_during_stop_gets_a_defined_answer(daemon, client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], stop_timeout=30)
    client.start(c.id)
    t = threading.Thread(target=lambda: daemon.client().stop(c.id))
    t.start()
    eventually(lambda: client.inspect(c.id).State.Status == "stopping")
    with pytest.raises(InvalidState) as e:
        client.exec_create(c.id, ["/bin/true"])
    assert e.value.state == "stopping"
    client.kill(c.id)
    t.join(30)
    assert not t.is_alive()


def test_a_reader_that_falls_behind_on_events_is_cut_off(fresh_daemon, tmp_path, rootfs):
    fresh_daemon.config = config(tmp_path, limits={"events_queue": 16})
    d = fresh_daemon.start()
    stalled = d.client().events()  # subscribed; nobody reads it
    with d.client() as c:
        time.sleep(0.2)
        for i in range(400):  # far more than a socket buffer plus the queue holds
            c.remove(c.create(rootfs, ["/bin/true"], name=f"ev{i}").id)
        assert c.ping() == "pong"
    with pytest.raises(EventsOverflow) as e:
        for _ in stalled:
            pass
    assert "resume with since_seq=" in e.value.message


def test_garbage_on_many_connections_at_once(daemon):
    import socket

    def garbage():
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(daemon.socket)
                s.sendall(os.urandom(64))
                s.recv(4096)
            except OSError:
                pass
            finally:
                s.close()

    threads = [threading.Thread(target=garbage) for _ in range(10)]
    for t in threads:
        t.start()
    with daemon.client() as c:
        for _ in range(50):
            assert c.ping() == "pong"
    for t in threads:
        t.join(30)
    with daemon.client() as c:
        assert c.ping() == "pong"
