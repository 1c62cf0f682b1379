"""Pod benchmark: create and start a pod of 10 members, then tear it down; varpod against podman.

    .venv/bin/python benchmarks/bench_pods.py [--iterations N] [--members N] [--quick] [--json]

One iteration of each case, interleaved round-robin, fixed counts, medians:

* ``podman``: ``podman pod create --network=none`` + N x ``podman run -d --pod P --rootfs R sleep`` +
  ``podman pod rm -f -t 0 P`` (podman's default sharing: ipc, net, uts, an infra container).
* ``varpod CLI``: the same commands with ``varpod``.
* ``client, one by one``: the client library doing what the CLI does (pod_create, N x
  create + start, pod_remove(force)).
* ``client, pod start``: pod_create, N x create, one pod_start (members start in parallel),
  pod_remove(force).

Besides wall time, the CPU time each case costs the machine (user + system): the
daemon's own and its reaped children's (runc, the containers) plus this process's
children (the CLI, podman, conmon: this process is their subreaper) and, for the
client cases, this process itself. CPU time holds better than wall time while
other work shares the machine; the lead reruns final figures on a quiet one.

Run as root. The target (varpod CLI >= 3x faster than podman) is reported, never
asserted; a failed phase or anything left behind makes the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

PR_SET_CHILD_SUBREAPER = 36
CLK_TCK = os.sysconf("SC_CLK_TCK")
MEMBER = ["/bin/sleep", "1000"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, help="runs per case (default 7; 2 with --quick)")
    p.add_argument("--members", type=int, default=10, help="containers per pod (default 10)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    a.iterations = a.iterations or (2 if a.quick else 7)
    return a


def _proc_cpu(pid: int) -> float:
    """Seconds of CPU of a process and of the children it has reaped."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _reap_orphans() -> None:
    """Orphans that became ours as their subreaper (podman's conmon): reaped, so their CPU
    time counts in RUSAGE_CHILDREN."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class Bench(C.Phases):
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        super().__init__(args, stack)
        self.medians: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        podman = C.podman_path()
        self.podman = C.Podman(podman) if podman else None
        self.podman_pods: list[str] = []
        self.cli = C.cli_argv()

    def setup(self) -> None:
        C.log(f"temp dir {self.base}")
        C.log(C.cli_bytecode_cache(self.base / "pycache"))
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.rootfs = C.build_rootfs(self.base / "rootfs")
        self.daemon = C.start_daemon(self.stack, self.base / "daemon", self.problems)
        # Runs before the daemon's own clean-up: a pod's infra container goes only with its pod.
        self.stack.callback(self._remove_pods)
        if self.podman is not None:
            self.stack.callback(self._remove_podman_pods)

    def _remove_pods(self) -> None:
        with self.daemon.client(timeout=120) as c:
            for pod in c.pod_list():
                try:
                    c.pod_remove(pod.Id, force=True, timeout=0)
                    self.problems.append(f"pod {pod.Name} was left behind by a case")
                except Exception as e:
                    self.problems.append(f"removing pod {pod.Name}: {e}")

    def _remove_podman_pods(self) -> None:
        assert self.podman is not None
        left = subprocess.run(self.podman.argv("pod", "ps", "-q", "--filter", "name=varpod-bench-pod-"),
                              capture_output=True, text=True, check=False).stdout.split()
        if left:
            self.problems.append(f"podman pods left behind by a case: {len(left)}")
            subprocess.run(self.podman.argv("pod", "rm", "-f", "-t", "0", *left), capture_output=True,
                           check=False)

    # -- the cases --------------------------------------------------------------------------

    def cases(self) -> dict[str, Callable[[], None]]:
        n, rootfs, sock = self.args.members, self.rootfs, self.daemon.socket
        client = self.stack.enter_context(self.daemon.client(timeout=120))
        cli = [*self.cli, "--socket", sock]

        def name() -> str:
            return f"varpod-bench-pod-{secrets.token_hex(4)}"

        def varpod_cli() -> None:
            pod = name()
            C.run([*cli, "pod", "create", "--name", pod])
            for _ in range(n):
                C.run([*cli, "run", "-d", "--pod", pod, "--rootfs", rootfs, *MEMBER])
            C.run([*cli, "pod", "rm", "-f", "-t", "0", pod])

        def client_one_by_one() -> None:
            pod = client.pod_create(name()).id
            for _ in range(n):
                client.start(client.create(rootfs, MEMBER, pod=pod).id)
            client.pod_remove(pod, force=True, timeout=0)

        def client_pod_start() -> None:
            pod = client.pod_create(name()).id
            for _ in range(n):
                client.create(rootfs, MEMBER, pod=pod)
            client.pod_start(pod)
            client.pod_remove(pod, force=True, timeout=0)

        cases = {"varpod_cli": varpod_cli, "client_one_by_one": client_one_by_one,
                 "client_pod_start": client_pod_start}
        if self.podman is not None:
            podman = self.podman

            def podman_pods() -> None:
                pod = name()
                # varpod's default is a private network (loopback only), podman's a bridge: like
                # for like, and no bridge or firewall rule left on the host
                C.run(podman.argv("pod", "create", "--name", pod, "--network=none"))
                for _ in range(n):
                    C.run(podman.argv("run", "-d", "--pod", pod, "--rootfs", rootfs, *MEMBER))
                C.run(podman.argv("pod", "rm", "-f", "-t", "0", pod))

            cases["podman"] = podman_pods
        return cases

    def measure(self) -> None:
        cases = self.cases()
        in_process = {"client_one_by_one", "client_pod_start"}
        wall: dict[str, C.Samples] = {k: C.Samples() for k in cases}
        cpu: dict[str, C.Samples] = {k: C.Samples() for k in cases}
        daemon_pid = self.daemon.pid

        def once(key: str, fn: Callable[[], None]) -> None:
            _reap_orphans()
            c0, d0, s0 = _children_cpu(), _proc_cpu(daemon_pid), _self_cpu()
            t0 = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - t0
            time.sleep(0.2)  # let conmon & co. exit, then reap them
            _reap_orphans()
            used = (_children_cpu() - c0) + (_proc_cpu(daemon_pid) - d0)
            if key in in_process:
                used += _self_cpu() - s0
            wall[key].add(elapsed)
            cpu[key].add(used)

        for fn in cases.values():  # warm-up: podman builds its pause image on first use
            fn()
        for i in range(self.args.iterations):
            C.log(f"   iteration {i + 1}/{self.args.iterations}")
            for key, fn in cases.items():
                once(key, fn)
        for key in cases:
            self.samples[f"{key}_wall"] = wall[key].summary()
            self.samples[f"{key}_cpu"] = cpu[key].summary()
            self.medians[f"{key}_ms"] = wall[key].median_ms
            self.medians[f"{key}_cpu_ms"] = cpu[key].median_ms

    # -- report ------------------------------------------------------------------------------

    def ratios(self) -> dict[str, float | None]:
        g = self.medians.get
        out = {}
        for key in ("varpod_cli", "client_one_by_one", "client_pod_start"):
            out[f"podman_vs_{key}"] = C.ratio(g("podman_ms"), g(f"{key}_ms"))
            out[f"podman_vs_{key}_cpu"] = C.ratio(g("podman_cpu_ms"), g(f"{key}_cpu_ms"))
        return out

    def targets(self, r: dict[str, float | None]) -> dict[str, C.Target]:
        return {t.name: t for t in (
            C.Target("cli_speedup", "pod of 10 via the CLI >= 3x faster than podman (wall)",
                     r["podman_vs_varpod_cli"], ">=", 3.0),
        )}

    def table(self, r: dict[str, float | None], t: dict[str, C.Target]) -> C.Table:
        g, n = self.medians.get, self.args.members
        tab = C.Table(f"varpod pods: pod create + {n} members started + pod rm -f; medians of "
                      f"{self.args.iterations} runs per case; {os.cpu_count()} CPUs. vs. = podman's "
                      "figure / varpod's (how many times faster)")
        podman = "podman: not installed" if self.podman is None else "podman, same commands"
        rows = (("varpod CLI", "varpod_cli", "cli_speedup"),
                ("client library, one by one", "client_one_by_one", None),
                ("client library, members then pod start", "client_pod_start", None))
        for what, key, tkey in rows:
            tab.row(f"{what}, wall", C.fmt_ms(g(f"{key}_ms")), podman,
                    "" if self.podman is None else C.fmt_ms(g("podman_ms")), r[f"podman_vs_{key}"],
                    t[tkey] if tkey else None)
            tab.row(f"{what}, CPU time", C.fmt_ms(g(f"{key}_cpu_ms")), podman,
                    "" if self.podman is None else C.fmt_ms(g("podman_cpu_ms")),
                    r[f"podman_vs_{key}_cpu"])
        tab.note("CPU time", "user + system of the daemon and the children it reaped (runc, containers), "
                 "of this process's children (CLI, podman, conmon as their subreaper) and, for the client "
                 "cases, of this process")
        self.note_problems(tab)
        return tab

    def report(self) -> tuple[dict[str, Any], C.Table]:
        r = self.ratios()
        t = self.targets(r)
        report = {
            "benchmark": "pods",
            "machine": self.machine_report(),
            "parameters": {"iterations": self.args.iterations, "members": self.args.members,
                           "quick": self.args.quick, "member_command": MEMBER},
            "medians": {k: C.rounded(v) for k, v in self.medians.items()},
            "ratios": {k: C.rounded(v) for k, v in r.items()},
            "targets": {k: v.as_json() for k, v in t.items()},
            "samples": self.samples,
            "problems": self.problems,
        }
        return report, self.table(r, t)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_pods drives runc: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            with bench.phase(f"pod with {args.members} members: varpod CLI, client"
                             + (", podman" if bench.podman else "")):
                bench.measure()
        except KeyboardInterrupt:
            C.log("interrupted: cleaning up")
            stack.close()
            return 130
        C.log("-- cleaning up")
    report, table = bench.report()
    C.emit(report, table, args.json)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())
