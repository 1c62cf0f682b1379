"""The daemon's memory under stream churn: bounded while clients misbehave, given back after.

Issue 8: rounds of attach clients that were killed or stopped took the daemon
from 18 MB to 263 MB, and it stayed after they were gone; so did an 8 MiB
environment value. Here the same churn, through the client library: stopped
readers are sessions nobody reads (their sockets fill), killed ones are closed
mid-stream, followers are dropped after a record. What each stopped reader may
hold is bounded (a relay window and its bookkeeping), and once the sessions end
the daemon's anonymous memory comes back to where it was.
"""

from __future__ import annotations

import os
import time

from test_lifecycle import eventually

from varpod.core.memory import TRIM_DELAY

# Large writes (sent from the log file) and lines (converted, so a stopped reader's window fills).
CHATTY = ["/bin/sh", "-c", "while true; do head -c 1048576 /dev/zero; i=0; "
          "while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; sleep 0.02; done"]
ROUNDS, STOPPED, KILLED = 3, 10, 10
PER_STOPPED_KB = 192  # a 64 KiB relay window, its socket's bookkeeping, the session's objects
SLACK_KB = 4096


def rss_anon_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def churn_round(d, rootfs: str, held: list) -> None:
    """A chatty container; sessions stopped (kept, unread), killed, dropped; a huge env value."""
    with d.client() as c:
        cid = c.create(rootfs, CHATTY).id
        c.start(cid)
        big = c.create(rootfs, ["/bin/true"], env=["BIG=" + "x" * (8 << 20)]).id
        c.remove(big)
        sessions = [c.attach(cid) for _ in range(STOPPED + KILLED)]
        held.extend(sessions[:STOPPED])
        for s in sessions[STOPPED:]:
            next(iter(s))  # reading, then gone mid-stream
            s.close()
        for _ in range(KILLED):
            follow = c.logs(cid, follow=True)
            next(iter(follow))
            follow.close()
        time.sleep(0.5)  # the producer fills the stopped readers' sockets meanwhile
        c.remove(cid, force=True, timeout=0)


def test_stopped_and_killed_readers_cost_bounded_memory_given_back_when_they_go(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    pid = d.proc.pid
    held: list = []
    churn_round(d, rootfs, held)  # the first round brings what stays for good: arenas, caches
    for s in held:
        s.close()
    held.clear()
    fds0 = fds(pid) - 1  # our connection below is not a stream's
    with d.client() as c:
        eventually(lambda: fds(pid) <= fds0 + 1)
    time.sleep(TRIM_DELAY + 0.5)  # the trim after those sessions has run
    baseline = rss_anon_kb(pid)
    try:
        for _ in range(ROUNDS):
            churn_round(d, rootfs, held)
        with_stopped = rss_anon_kb(pid) - baseline
        assert with_stopped <= len(held) * PER_STOPPED_KB + SLACK_KB, (with_stopped, len(held))
    finally:
        for s in held:
            s.close()
    with d.client() as c:
        assert c.list(all=True) == []
        eventually(lambda: fds(pid) <= fds0 + 1)
    # The daemon trims its heap a second after the last session ends.
    eventually(lambda: rss_anon_kb(pid) <= baseline + SLACK_KB, timeout=15)
