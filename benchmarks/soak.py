"""Soak: many clients churning containers for N seconds; prints leaks and RSS growth.

    python benchmarks/soak.py --seconds 300 --clients 50 [--rounds 3] [--json]

Each client loops: create, start, exec, logs, a follow that is abandoned half-way
(podman#14879 grew to GBs on repeated follows), stop, remove. Afterwards the
daemon must hold no more fds than before, runc no containers, the run root no
bundles, the cgroup trees nothing of ours; RSS is reported before, at its peak
and after. Exit status 1 on any leak or unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import build_rootfs, fd_count, log, peak_rss_kb, reset_peak_rss, rss_kb, start_daemon, tempdir

from varpod.core.errors import InvalidState, NoSuchContainer

REFUSALS = (InvalidState, NoSuchContainer)  # clients racing each other may be refused; that is fine


def churn(d, rootfs: str, deadline: float, ops: Counter, errors: list, ids: list) -> None:
    with d.client(timeout=120) as c:
        while time.monotonic() < deadline:
            try:
                cid = c.create(rootfs, ["/bin/sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); "
                                        "sleep 0.01; done"]).id
                ids.append(cid)
                c.start(cid)
                sid = c.exec_create(cid, ["/bin/sh", "-c", "echo hi; exit 3"])
                session = c.exec_start(sid, attach=True)
                out, _ = session.read()
                if (out, session.exit_code) != (b"hi\n", 3):
                    errors.append(f"exec gave {out!r} / {session.end}")
                follow = c.logs(cid, follow=True)
                for n, _rec in enumerate(follow):
                    if n >= 3:
                        break
                follow.close()  # abandoned half-way: the daemon must free the follower
                list(c.logs(cid, tail=5))
                c.stop(cid, timeout=0)
                c.remove(cid)
                ops["cycles"] += 1
            except REFUSALS:
                ops["refused"] += 1
            except Exception as e:  # any other failure is a finding
                errors.append(repr(e))
                return


def churn_round(d, rootfs: str, clients: int, seconds: float, ops: Counter, errors: list,
                ids: list) -> int:
    """``clients`` threads churning for ``seconds``; returns how many hung."""
    deadline = time.monotonic() + seconds
    workers = [threading.Thread(target=churn, args=(d, rootfs, deadline, ops, errors, ids), daemon=True)
               for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 300)
    return sum(w.is_alive() for w in workers)


def leftovers(d, ids: list[str]) -> dict[str, int]:
    bundles = os.path.join(d.run_root, "containers")
    return {
        "runtime_containers": len(d.runtime_containers()),
        "bundles": len(os.listdir(bundles)) if os.path.isdir(bundles) else 0,
        "cgroups": sum(1 for cid in set(ids) for _ in glob.glob(f"/sys/fs/cgroup/*/varpod/{cid}")),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3,
                    help="split the time into rounds; RSS growing after the first one is a leak")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        base = tempdir(stack, "varpod-soak-")
        rootfs = build_rootfs(base / "rootfs")
        d = start_daemon(stack, base / "daemon", problems)
        with d.client() as c:  # warm-up: the first run loads what every later one reuses
            cid = c.create(rootfs, ["/bin/true"]).id
            c.start(cid)
            c.wait(cid)
            c.remove(cid)
        fds0, rss0 = fd_count(d.pid), rss_kb(d.pid)
        reset_peak_rss(d.pid)
        ops: Counter = Counter()
        errors: list[str] = []
        ids: list[str] = []
        hung = 0
        rss_after_rounds: list[int] = []
        started = time.monotonic()
        for n in range(a.rounds):
            log(f"soak: round {n + 1}/{a.rounds}: {a.clients} clients for {a.seconds / a.rounds:.0f} s")
            hung += churn_round(d, rootfs, a.clients, a.seconds / a.rounds, ops, errors, ids)
            problems += d.remove_all()
            time.sleep(1.0)  # exits and cleanups in flight settle
            rss_after_rounds.append(rss_kb(d.pid))
        elapsed = time.monotonic() - started
        with d.client() as c:
            listed = len(c.list(all=True))
        result = {
            "clients": a.clients, "seconds": round(elapsed, 1), "cycles": ops["cycles"],
            "cycles_per_s": round(ops["cycles"] / elapsed, 1), "refused": ops["refused"],
            "errors": errors[:10], "error_count": len(errors), "hung_clients": hung,
            "fds_before": fds0, "fds_after": fd_count(d.pid),
            "rss_kb_before": rss0, "rss_kb_peak": peak_rss_kb(d.pid), "rss_kb_after": rss_kb(d.pid),
            "rss_kb_after_each_round": rss_after_rounds,
            "containers_listed_after": listed, **leftovers(d, ids),
        }
        result["rss_kb_growth"] = result["rss_kb_after"] - rss0
        # The first round takes the daemon to its working size (allocator arenas, caches, the
        # peak of 50 clients at once); a leak is what later rounds of the same work add on top.
        result["rss_kb_growth_after_first_round"] = rss_after_rounds[-1] - rss_after_rounds[0]
        leaks = {k: result[k] for k in ("containers_listed_after", "runtime_containers", "bundles", "cgroups")
                 if result[k]}
        if result["fds_after"] > fds0 + 2:
            leaks["fds"] = result["fds_after"] - fds0
        if a.rounds > 1 and result["rss_kb_growth_after_first_round"] > max(4096, rss_after_rounds[0] // 10):
            leaks["rss_kb"] = result["rss_kb_growth_after_first_round"]
        result["leaks"] = leaks
    result["problems"] = problems
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 1 if leaks or errors or hung or problems else 0


if __name__ == "__main__":
    sys.exit(main())
