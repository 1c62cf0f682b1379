"""Pods across daemon crashes and restarts: re-adopted as containers are, and a removal or an
infra container a crash cut short is finished or replaced when the daemon starts again."""

from __future__ import annotations

import os
import signal
import sqlite3

from test_pods import leftovers, member, ns

from varpod.core import cgroups


def test_pods_and_their_infra_are_readopted_after_kill_9(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        pod = c.pod_create("survivor", share="net,pid")
        a, pa = member(c, rootfs, "survivor")
        b, pb = member(c, rootfs, "survivor")
        before = c.pod_inspect("survivor")
        infra_pid = c.inspect(before.InfraContainerID).State.Pid
    d.stop(signal.SIGKILL)
    d.start()
    with d.client() as c:
        after = c.pod_inspect("survivor")
        assert after.InfraContainerID == before.InfraContainerID and after.State == "Running"
        assert [(x.Id, x.State) for x in after.Containers] == [(x.Id, "running")
                                                                for x in before.Containers]
        assert c.inspect(a).State.Pid == pa and c.inspect(before.InfraContainerID).State.Pid == infra_pid
        # A newcomer joins the same namespaces: the infra was re-adopted, not replaced.
        new, pn = member(c, rootfs, "survivor")
        assert ns(pn, "net") == ns(pa, "net") == ns(infra_pid, "net")
        c.pod_stop("survivor", timeout=0)
        assert c.pod_inspect("survivor").State == "Exited"
        c.pod_remove("survivor", force=True)
        assert leftovers(d, pod.id, [a, b, new, before.InfraContainerID], [pa, pb, pn, infra_pid]) == []


def test_a_pod_removal_cut_short_is_finished_when_the_daemon_starts(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        pod = c.pod_create("halfgone", share="net")
        a, pa = member(c, rootfs, "halfgone")
        infra = c.pod_inspect("halfgone").InfraContainerID
        infra_pid = c.inspect(infra).State.Pid
    d.stop()  # containers keep running
    # What a crash right after `pod rm -f` saved its intent leaves behind.
    with sqlite3.connect(os.path.join(d.root, "varpod.db")) as db:
        db.execute("UPDATE pods SET state = ? WHERE id = ?", ('{"removing":true}', pod.id))
    d.start()
    with d.client() as c:
        assert c.pod_list() == [] and c.list(all=True) == []
    assert leftovers(d, pod.id, [a, infra], [pa, infra_pid]) == []
    assert cgroups.exists(f"/varpod/{pod.id}") == []


def test_a_pod_that_lost_its_infra_container_gets_a_new_one(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        c.pod_create("orphaned", share="net,uts")
        lost = c.pod_inspect("orphaned").InfraContainerID
    d.stop()
    with sqlite3.connect(os.path.join(d.root, "varpod.db")) as db:
        db.execute("DELETE FROM containers WHERE id = ?", (lost,))
    d.start()
    with d.client() as c:
        infra = c.pod_inspect("orphaned").InfraContainerID
        assert infra and infra != lost
        _a, pa = member(c, rootfs, "orphaned")
        assert ns(pa, "net") == ns(c.inspect(infra).State.Pid, "net")
