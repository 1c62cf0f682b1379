"""Soak: clients churning containers and streams; prints leaks and the daemon's memory.

    python benchmarks/soak.py [--phases churn,attach] [--seconds 60] [--clients 50] [--rounds 3]
                              [--attach-rounds 15] [--attach-clients 20] [--json]

Two phases, each against the same private daemon:

* churn: ``--clients`` threads loop for ``--seconds`` (in ``--rounds`` rounds):
  create, start, exec, logs, a follow abandoned half-way (podman#14879 grew to
  GBs on repeated follows), stop, remove.
* attach (issue 8): ``--attach-rounds`` rounds, each with a container writing
  256 KiB every 20 ms, ``--attach-clients`` CLI ``varpod attach`` clients of
  which half are killed (SIGKILL) and half stopped (SIGSTOP: their sockets fill
  and the daemon holds what they have not read) after a second, library attach
  sessions closed without reading, ``logs -f`` followers dropped after one
  record, and a container with a ``--env-mib`` environment value created and
  removed. The stopped clients stay stopped until the phase ends, then are
  killed.

Memory is the daemon's anonymous RSS (RssAnon: its heap, not its mapped
libraries), read once it has settled: every stream closed (its fd count back
to the baseline), then the smallest of samples taken over ``--settle`` seconds
(the daemon gives freed heap pages back a second after sessions end). The
baseline is taken after a warm-up round of the same work, so that what the
first round brings for good (allocator arenas, SQLite's page cache, imports)
is not counted. A leak is growth over that baseline, after all sessions have
ended, of more than 4 MiB or 10 %. Also printed: the peak, and what each
stopped reader costs while it is stopped.

Afterwards the daemon must hold no more fds than before, runc no containers,
the run root no bundles, the cgroup trees nothing of ours. Exit status 1 on
any leak, hang or unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import build_rootfs, fd_count, log, peak_rss_kb, reset_peak_rss, rss_kb, start_daemon, tempdir

from varpod.core.errors import InvalidState, NoSuchContainer, VarpodError

REFUSALS = (InvalidState, NoSuchContainer)  # clients racing each other may be refused; that is fine
CHATTY = ["/bin/sh", "-c", "while true; do head -c 262144 /dev/zero; sleep 0.02; done"]
PHASES = ("churn", "attach")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default=",".join(PHASES),
                    help=f"comma-separated subset of {','.join(PHASES)}")
    ap.add_argument("--seconds", type=float, default=60.0, help="churn: seconds of churn in all")
    ap.add_argument("--clients", type=int, default=50, help="churn: client threads")
    ap.add_argument("--rounds", type=int, default=3, help="churn: rounds the seconds are split into")
    ap.add_argument("--attach-rounds", type=int, default=15)
    ap.add_argument("--attach-clients", type=int, default=20, help="CLI attach clients per round")
    ap.add_argument("--library-sessions", type=int, default=60,
                    help="attach sessions closed unread, and logs -f followers dropped, per round")
    ap.add_argument("--env-mib", type=int, default=8, help="size of the environment value (0: none)")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of RSS samples once streams closed")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    a.phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    unknown = set(a.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return a


def rss_anon_kb(pid: int) -> int:
    return rss_kb(pid, "RssAnon")


def settled_rss_kb(d, fds0: int, seconds: float) -> int:
    """RssAnon once every stream has closed, the smallest of samples over ``seconds``."""
    deadline = time.monotonic() + 60
    while fd_count(d.pid) > fds0 + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    samples = []
    end = time.monotonic() + seconds
    while True:
        samples.append(rss_anon_kb(d.pid))
        if time.monotonic() >= end:
            return min(samples)
        time.sleep(0.25)


# -- churn -----------------------------------------------------------------------------------------


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


def churn_phase(d, rootfs: str, a: argparse.Namespace, fds0: int, problems: list) -> dict:
    ops: Counter = Counter()
    errors: list[str] = []
    ids: list[str] = []
    hung = 0
    settled: list[int] = []
    reset_peak_rss(d.pid)
    started = time.monotonic()
    for n in range(a.rounds):
        log(f"soak churn: round {n + 1}/{a.rounds}: {a.clients} clients for {a.seconds / a.rounds:.0f} s")
        hung += churn_round(d, rootfs, a.clients, a.seconds / a.rounds, ops, errors, ids)
        problems += d.remove_all()
        settled.append(settled_rss_kb(d, fds0, a.settle))
    elapsed = time.monotonic() - started
    result = {
        "clients": a.clients, "seconds": round(elapsed, 1), "cycles": ops["cycles"],
        "cycles_per_s": round(ops["cycles"] / elapsed, 1), "refused": ops["refused"],
        "errors": errors[:10], "error_count": len(errors), "hung_clients": hung,
        "rss_anon_kb_settled_after_each_round": settled, "rss_kb_peak": peak_rss_kb(d.pid),
        "ids": ids,
    }
    # The first round takes the daemon to its working size (allocator arenas, caches, the
    # peak of 50 clients at once); a leak is what later rounds of the same work add on top.
    result["rss_anon_kb_growth_after_first_round"] = settled[-1] - settled[0]
    return result


# -- attach ----------------------------------------------------------------------------------------


def cli_argv() -> list[str]:
    script = Path(sys.executable).with_name("varpod")
    return [str(script)] if script.exists() else [sys.executable, "-m", "varpod.rpc.cli"]


def attach_round(d, rootfs: str, a: argparse.Namespace, r: int, stopped: list, ops: Counter,
                 errors: list) -> None:
    """One round: chatty container, CLI clients killed and stopped, library sessions dropped."""
    env = {**os.environ, "VARPOD_SOCKET": d.socket}
    with d.client(timeout=60) as c:
        cid = c.create(rootfs, CHATTY, name=f"soak-attach-{r}").id
        c.start(cid)
        if a.env_mib:  # the request, the record and the OCI config each hold it once
            big = c.create(rootfs, ["/bin/true"], env=[f"BIG={'x' * (a.env_mib << 20)}"]).id
            c.remove(big)
            ops["env_containers"] += 1
    procs = [subprocess.Popen([*cli_argv(), "attach", "--no-stdin", cid], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for _ in range(a.attach_clients)]
    with d.client(timeout=60) as c:
        for _ in range(a.library_sessions):
            c.attach(cid).close()  # attached and gone without reading a byte
            follow = c.logs(cid, follow=True)
            next(iter(follow), None)
            follow.close()
            ops["library_sessions"] += 2
    time.sleep(1.0)  # the CLI clients read for a while
    for i, p in enumerate(procs):
        if p.poll() is not None:
            errors.append(f"varpod attach exited {p.returncode} before it was stopped or killed")
        if i % 2:
            p.send_signal(signal.SIGSTOP)  # its socket fills; the daemon waits for it for good
            stopped.append(p)
        else:
            p.kill()
            p.wait()
        ops["cli_sessions"] += 1
    time.sleep(0.5)
    with d.client(timeout=60) as c:
        c.remove(cid, force=True, timeout=0)


def attach_phase(d, rootfs: str, a: argparse.Namespace, fds0: int) -> dict:
    ops: Counter = Counter()
    errors: list[str] = []
    stopped: list[subprocess.Popen] = []

    def kill_stopped() -> None:
        for p in stopped:
            p.kill()
            p.wait()
        stopped.clear()

    try:
        log("soak attach: warm-up round")
        attach_round(d, rootfs, a, 0, stopped, Counter(), errors)
        kill_stopped()
        baseline = settled_rss_kb(d, fds0, a.settle)
        reset_peak_rss(d.pid)
        during: list[int] = []
        for r in range(1, a.attach_rounds + 1):
            log(f"soak attach: round {r}/{a.attach_rounds}: {a.attach_clients} CLI clients, "
                f"{len(stopped)} stopped so far")
            try:
                attach_round(d, rootfs, a, r, stopped, ops, errors)
            except VarpodError as e:
                errors.append(repr(e))
            during.append(rss_anon_kb(d.pid))
        held = rss_anon_kb(d.pid)
        n_stopped = len(stopped)
    finally:
        kill_stopped()
    after = settled_rss_kb(d, fds0, a.settle)
    return {
        "rounds": a.attach_rounds, **ops, "errors": errors[:10], "error_count": len(errors),
        "rss_anon_kb_baseline": baseline, "rss_anon_kb_after_each_round": during,
        "rss_kb_peak": peak_rss_kb(d.pid), "stopped_readers": n_stopped,
        "rss_anon_kb_with_stopped_readers": held,
        "kb_per_stopped_reader": round((held - baseline) / max(n_stopped, 1), 1),
        "rss_anon_kb_after": after, "rss_anon_kb_growth": after - baseline,
    }


# -- the run ----------------------------------------------------------------------------------------


def leftovers(d, ids: list[str]) -> dict[str, int]:
    bundles = os.path.join(d.run_root, "containers")
    return {
        "runtime_containers": len(d.runtime_containers()),
        "bundles": len(os.listdir(bundles)) if os.path.isdir(bundles) else 0,
        "cgroups": sum(1 for cid in set(ids) for _ in glob.glob(f"/sys/fs/cgroup/*/varpod/{cid}")),
    }


def too_much(growth_kb: int, baseline_kb: int) -> bool:
    return growth_kb > max(4096, baseline_kb // 10)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    problems: list[str] = []
    result: dict = {"phases": a.phases}
    leaks: dict = {}
    with contextlib.ExitStack() as stack:
        base = tempdir(stack, "varpod-soak-")
        rootfs = build_rootfs(base / "rootfs")
        d = start_daemon(stack, base / "daemon", problems)
        with d.client() as c:  # warm-up: the first run loads what every later one reuses
            cid = c.create(rootfs, ["/bin/true"]).id
            c.start(cid)
            c.wait(cid)
            c.remove(cid)
        fds0 = fd_count(d.pid)
        result["rss_anon_kb_start"] = rss_anon_kb(d.pid)
        ids: list[str] = []
        if "churn" in a.phases:
            churn = churn_phase(d, rootfs, a, fds0, problems)
            ids = churn.pop("ids")
            result["churn"] = churn
            growth = churn["rss_anon_kb_growth_after_first_round"]
            if a.rounds > 1 and too_much(growth, churn["rss_anon_kb_settled_after_each_round"][0]):
                leaks["churn_rss_anon_kb"] = growth
        if "attach" in a.phases:
            attach = attach_phase(d, rootfs, a, fds0)
            result["attach"] = attach
            if too_much(attach["rss_anon_kb_growth"], attach["rss_anon_kb_baseline"]):
                leaks["attach_rss_anon_kb"] = attach["rss_anon_kb_growth"]
        with d.client() as c:
            result["containers_listed_after"] = len(c.list(all=True))
        result.update(fds_before=fds0, fds_after=fd_count(d.pid), **leftovers(d, ids))
        leaks.update({k: result[k] for k in ("containers_listed_after", "runtime_containers", "bundles",
                                             "cgroups") if result[k]})
        if result["fds_after"] > fds0 + 2:
            leaks["fds"] = result["fds_after"] - fds0
        result["leaks"] = leaks
    result["problems"] = problems
    errors = sum(result.get(p, {}).get("error_count", 0) for p in PHASES)
    hung = result.get("churn", {}).get("hung_clients", 0)
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if isinstance(v, dict):
                print(f"{k}:")
                for k2, v2 in v.items():
                    print(f"{k2:>40}: {v2}")
            else:
                print(f"{k:>40}: {v}")
    return 1 if leaks or errors or hung or problems else 0


if __name__ == "__main__":
    sys.exit(main())
