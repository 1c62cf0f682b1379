"""Many at once: containers and execs per second with N concurrent clients, and 100 followed logs.

    .venv/bin/python benchmarks/bench_concurrency.py [--clients 8,32,128] [--ops N]
        [--containers 100] [--log-mib 16] [--runs 3] [--no-podman] [--quick] [--json]

Measured in one run, ratios taken within it (medians of ``--runs`` interleaved runs):

* run: N threads, each with a Client of its own, each doing ``run --rm /bin/true``
  from a ``--rootfs`` (create, start, wait, remove), ``--ops`` in all; against N
  threads each running ``runc run`` of a bundle whose config.json is the
  daemon's own (its floor), and N threads of ``podman run --rm --network=none``.
* exec: the same with ``exec /bin/true`` into one running container (client:
  exec_create, exec_start attached, read to the end) against ``runc exec`` and
  ``podman exec``.
* logs: ``--containers`` containers, each writing ``--log-mib`` MiB of 100-byte
  lines while a ``logs -f`` follower of its own (opened before the start, so it
  misses nothing) reads it: aggregate MB/s from the first start to the last
  follower's end, every byte counted.

For every varpod case the daemon's CPU seconds are read, and its share of one
CPU over the case's wall time: near 100 % the single daemon thread is the
bottleneck, not runc or the clients. Run as root (it drives runc). A failed
case, lost bytes or anything left behind makes the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

from varpod.rpc.client import Client

LINE = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default="8,32,128", help="concurrency levels (default 8,32,128)")
    p.add_argument("--ops", type=int, help="operations per case (default 256; 64 with --quick)")
    p.add_argument("--containers", type=int, help="logging containers (default 100; 20 with --quick)")
    p.add_argument("--log-mib", type=int,
                   help="MiB each logging container writes (default 16; 2 with --quick)")
    p.add_argument("--runs", type=int, help="interleaved runs per case (default 3; 1 with --quick)")
    p.add_argument("--no-podman", action="store_true", help="skip podman even when it is installed")
    p.add_argument("--quick", action="store_true", help="a fast smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    a.levels = [int(x) for x in a.clients.split(",") if x.strip()]
    a.ops = a.ops or (64 if a.quick else 256)
    a.containers = a.containers or (20 if a.quick else 100)
    a.log_mib = a.log_mib or (2 if a.quick else 16)
    a.runs = a.runs or (1 if a.quick else 3)
    return a


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_threads(n: int, ops: int, make: Callable[[], Callable[[int], None]]) -> tuple[float, list[str]]:
    """``ops`` operations over ``n`` threads (each with what ``make`` gives it); (seconds, errors)."""
    workers = [make() for _ in range(n)]
    counter = iter(range(ops))
    lock = threading.Lock()
    errors: list[str] = []
    start = threading.Barrier(n + 1)

    def run(fn: Callable[[int], None]) -> None:
        start.wait()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                fn(i)
            except Exception as e:  # collected: the case fails
                errors.append(f"{type(e).__name__}: {e}")
                return

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors


class Bench(C.Phases):
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        super().__init__(args, stack)
        self.results: dict[str, list[float]] = {}
        self.daemon_share: dict[str, list[float]] = {}
        self.daemon_cpu_per_op: dict[str, list[float]] = {}
        self.settled: list[dict[str, Any]] = []
        path = None if args.no_podman else C.podman_path()
        self.podman = C.Podman(path) if path else None
        if self.podman is not None:
            stack.callback(lambda: self.problems.extend(self.podman.cleanup()))
        self._n = 0

    def unique(self) -> int:
        self._n += 1
        return self._n

    def setup(self) -> None:
        C.log(f"temp dir {self.base}")
        self.rootfs = C.build_rootfs(self.base / "rootfs")
        self.daemon = C.start_daemon(self.stack, self.base / "daemon", self.problems)
        self.runc_root = str(self.base / "runc-root")
        self.stack.callback(lambda: self.problems.extend(C.runc_cleanup(self.runc_root)))
        self.pid = self.daemon.pid

    def measure(self, key: str, n: int, make: Callable[[], Callable[[int], None]], varpod: bool) -> None:
        self.settled.append({"before": key, **C.settle_memory()})
        C.log(f"   {key}")
        with contextlib.ExitStack() as self.case:  # the clients' connections, closed after the case
            c0 = cpu_seconds(self.pid)
            seconds, errors = in_threads(n, self.args.ops, make)
            daemon = cpu_seconds(self.pid) - c0
        if errors:
            self.problems.append(f"{key}: {len(errors)} clients failed, first: {errors[0]}")
            return
        self.results.setdefault(key, []).append(self.args.ops / seconds)
        if varpod:
            self.daemon_share.setdefault(key, []).append(daemon / seconds)
            self.daemon_cpu_per_op.setdefault(key, []).append(daemon / self.args.ops * 1e3)

    # -- run --rm and exec at N clients -------------------------------------------------------

    def client(self) -> Client:
        return self.case.enter_context(self.daemon.client(timeout=300))

    def run_cases(self, n: int) -> dict[str, Callable[[], None]]:
        def varpod() -> Callable[[int], None]:
            c = self.client()

            def once(_: int) -> None:
                cid = c.create(self.rootfs, ["/bin/true"]).id
                c.start(cid)
                waited = c.wait(cid)
                c.remove(cid)
                if waited.exit_code != 0:
                    raise RuntimeError(f"/bin/true exited {waited.exit_code}")
            return once

        def runc() -> Callable[[int], None]:
            # A bundle per client: its config.json names a cgroup of its own, which runc
            # containers running at once must not share (as the daemon's never do).
            bundle = C.runc_bundle(self.base / f"bundle-{self.unique()}", self.rootfs, ["/bin/true"])
            return lambda _: C.run(["runc", "--root", self.runc_root, "run", "--bundle", bundle,
                                    f"bench-{self.unique()}"])

        cases = {f"run_varpod_{n}": lambda: self.measure(f"run_varpod_{n}", n, varpod, True),
                 f"run_runc_{n}": lambda: self.measure(f"run_runc_{n}", n, runc, False)}
        if self.podman is not None:
            def podman() -> Callable[[int], None]:
                return lambda _: C.run(self.podman.argv("run", "--rm", "--network=none", "--rootfs",
                                                        self.rootfs, "/bin/true"))
            cases[f"run_podman_{n}"] = lambda: self.measure(f"run_podman_{n}", n, podman, False)
        return cases

    def exec_cases(self, n: int, cid: str, pname: str | None) -> dict[str, Callable[[], None]]:
        def varpod() -> Callable[[int], None]:
            c = self.client()

            def once(_: int) -> None:
                session = c.exec_start(c.exec_create(cid, ["/bin/true"]), attach=True)
                session.read()
                if session.exit_code != 0:
                    raise RuntimeError(f"exec ended {session.end}")
            return once

        runc_argv = ["runc", "--root", self.daemon.runtime_root(), "exec", cid, "/bin/true"]
        def runc() -> Callable[[int], None]:
            return lambda _: C.run(runc_argv)

        cases = {f"exec_varpod_{n}": lambda: self.measure(f"exec_varpod_{n}", n, varpod, True),
                 f"exec_runc_{n}": lambda: self.measure(f"exec_runc_{n}", n, runc, False)}
        if pname is not None:
            argv = self.podman.argv("exec", pname, "/bin/true")
            cases[f"exec_podman_{n}"] = lambda: self.measure(f"exec_podman_{n}", n,
                                                             lambda: lambda _: C.run(argv), False)
        return cases

    def many(self) -> None:
        with self.daemon.client() as c:
            cid = c.create(self.rootfs, ["sleep", "100000"], name="bench-exec").id
            c.start(cid)
        pname = None
        if self.podman is not None:
            pname = self.podman.name()
            C.run(self.podman.argv("run", "-d", "--name", pname, "--network=none", "--rootfs", self.rootfs,
                                   "sleep", "100000"))
        try:
            for i in range(self.args.runs):
                for n in self.args.levels:
                    for fn in {**self.run_cases(n), **self.exec_cases(n, cid, pname)}.values():
                        C.log(f"  run {i + 1}/{self.args.runs}, {n} clients")
                        fn()
        finally:
            with self.daemon.client() as c:
                c.remove(cid, force=True, timeout=0)

    # -- 100 logging containers, each followed --------------------------------------------------

    def logs(self) -> None:
        a = self.args
        size = a.log_mib << 20
        lines = size // LINE
        producer = ["/bin/sh", "-c", f"yes $(printf %099d 0) | head -n {lines}"]
        for i in range(a.runs):
            C.log(f"   logs run {i + 1}/{a.runs}: {a.containers} containers x {a.log_mib} MiB")
            self.settled.append({"before": f"logs {i + 1}", **C.settle_memory()})
            ids = []
            with self.daemon.client(timeout=300) as c:
                for _ in range(a.containers):
                    ids.append(c.create(self.rootfs, producer).id)
            streams = [self.follow(cid) for cid in ids]
            got = [0] * len(ids)
            ended = [False] * len(ids)

            def read(k: int, sock: socket.socket, initial: bytes, got: list = got,
                     ended: list = ended) -> None:
                buf = bytearray(1 << 16)
                total = len(initial)
                while n := sock.recv_into(buf):
                    total += n
                got[k] = total
                ended[k] = True
                sock.close()

            readers = [threading.Thread(target=read, args=(k, *s), daemon=True)
                       for k, s in enumerate(streams)]
            for t in readers:
                t.start()
            c0 = cpu_seconds(self.pid)
            me0 = time.process_time()
            t0 = time.perf_counter()
            with self.daemon.client(timeout=300) as c:
                for cid in ids:
                    c.start(cid)
            for t in readers:
                t.join(600)
            seconds = time.perf_counter() - t0
            daemon = cpu_seconds(self.pid) - c0
            self.daemon_share.setdefault("logs_followers", []).append((time.process_time() - me0) / seconds)
            # Each follower receives records: the payload plus 20 bytes each, and the end record.
            short = [k for k, total in enumerate(got) if not ended[k] or total < size]
            if short:
                self.problems.append(f"logs: {len(short)} followers ended early or short "
                                     f"(first got {got[short[0]]:,} of {size:,} bytes)")
            self.results.setdefault("logs_aggregate_bytes_s", []).append(a.containers * size / seconds)
            self.daemon_share.setdefault("logs", []).append(daemon / seconds)
            self.daemon_cpu_per_op.setdefault("logs_daemon_cpu_s_per_gib", []).append(
                daemon / (a.containers * size / (1 << 30)))
            with self.daemon.client(timeout=300) as c:
                for cid in ids:
                    c.remove(cid, force=True, timeout=0)

    def follow(self, cid: str) -> tuple[socket.socket, bytes]:
        """An upgraded Logs connection, following from the first record; its socket and buffered bytes."""
        conn = Client(self.daemon.socket, raw=True, timeout=600).open_stream(
            "io.varpod.Container.Logs", {"name": cid, "follow": True})
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        initial = conn.take_buffered()
        conn.close()
        sock.settimeout(600)
        return sock, initial

    # -- report --------------------------------------------------------------------------------------

    def report(self) -> tuple[dict[str, Any], C.Table]:
        a = self.args
        med = {k: statistics.median(v) for k, v in self.results.items()}
        share = {k: statistics.median(v) for k, v in self.daemon_share.items()}
        per_op = {k: statistics.median(v) for k, v in self.daemon_cpu_per_op.items()}
        tab = C.Table(f"varpod with many clients at once: medians of {a.runs} runs, {a.ops} operations per "
                      f"case; {os.cpu_count()} CPUs")
        for what in ("run", "exec"):
            for n in a.levels:
                ours = med.get(f"{what}_varpod_{n}")
                label = "run --rm /bin/true" if what == "run" else "exec /bin/true"
                podman = f"{n} x podman {what}" if self.podman else "podman: not installed"
                for base, name in (("runc", f"{n} x runc {what}"), ("podman", podman)):
                    theirs = med.get(f"{what}_{base}_{n}")
                    first = base == "runc"
                    tab.row(f"{label}, {n} clients" if first else "", C.fmt_rate(ours) if first else "", name,
                            "" if theirs is None else C.fmt_rate(theirs), C.ratio(ours, theirs))
                key = f"{what}_varpod_{n}"
                if key in share:
                    tab.row(f"  daemon: {share[key]:.0%} of a CPU, {per_op[key]:.1f} ms CPU per {what}", "")
        logs = med.get("logs_aggregate_bytes_s")
        tab.row(f"{a.containers} containers x {a.log_mib} MiB of lines, each followed",
                "—" if logs is None else f"{logs / 1e6:,.0f} MB/s")
        if "logs" in share:
            tab.row(f"  daemon: {share['logs']:.0%} of a CPU, "
                    f"{per_op['logs_daemon_cpu_s_per_gib']:.2f} s CPU per GiB logged and followed", "")
            followers = share["logs_followers"]
            tab.row(f"  the followers (threads of this benchmark): {followers:.0%} of a CPU", "")
        tab.note("ratios", "operations per second, ours / theirs (higher is better)")
        tab.note("daemon", "its CPU seconds over the case's wall time: near 100% the one daemon thread "
                           "is what limits the rate")
        self.note_problems(tab)
        report = {
            "benchmark": "concurrency",
            "machine": {**self.machine_report(), "memory_settled": self.settled},
            "parameters": {"levels": a.levels, "ops": a.ops, "containers": a.containers, "log_mib": a.log_mib,
                           "runs": a.runs, "podman": self.podman is not None},
            "medians": {k: C.rounded(v) for k, v in med.items()},
            "daemon_cpu_share": {k: C.rounded(v) for k, v in share.items()},
            "daemon_cpu_ms_per_op": {k: C.rounded(v) for k, v in per_op.items()},
            "samples": {k: [C.rounded(x) for x in v] for k, v in self.results.items()},
            "problems": self.problems,
        }
        return report, tab


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_concurrency drives runc: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            with bench.phase("run --rm and exec with many clients"):
                bench.many()
            with bench.phase("logging containers, each followed"):
                bench.logs()
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
