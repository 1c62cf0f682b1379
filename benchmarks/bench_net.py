"""Networking benchmark: varpod's bridge network against its private default and podman's bridge.

    .venv/bin/python benchmarks/bench_net.py [--iterations N] [--quick] [--json]

Measured in one run, every ratio taken within it:

* ``run --rm --rootfs R /bin/true`` through each one's CLI, round-robin, fixed counts,
  medians: varpod's private default (loopback only), varpod ``--network bridge`` (CNI
  bridge + host-local + firewall, the bridge up), ``podman run --rm`` on its default
  bridge network (netavark) with nothing holding the bridge (podman then makes and
  deletes it on every run, as a lone ``podman run --rm`` does), and then, in a second
  round-robin against varpod's bridge runs, with the bridge kept up by a sleeping podman
  container, as varpod's always is (the target's baseline).
* CPU per run: the daemon's own CPU time and its reaped children's (runc, the CNI
  plugins, iptables), per bridge run and per private run. CPU time holds under load
  where wall time does not.
* TCP throughput through a published port: an HTTP GET of a 256 MiB file from busybox
  httpd (which sends it with sendfile) in a container, from the daemon's namespace to
  ``127.0.0.1:PORT`` (portmap's DNAT, the veth, the bridge), against the same GET over
  the container's own loopback (the limit on this machine).

Nothing touches the host's network: varpod's daemon runs in a network namespace made
here, and podman runs in another one (``nsenter``), so neither's bridges, veths and
firewall rules outlive the run; both namespaces are removed at the end. Run as root.
A missed target does not change the exit status; a failed phase or anything left behind
makes it 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

BLOB_MB = 256
HTTP_PORT = 18080

# A GET with a plain socket: read into one buffer, count bytes, print MB/s.
HTTP_CLIENT = r"""
import socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 10
while True:
    try:
        s = socket.create_connection((host, port))
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.02)
t = time.perf_counter()
s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
buf = bytearray(1 << 20)
total = 0
while True:
    n = s.recv_into(buf)
    if not n:
        break
    total += n
elapsed = time.perf_counter() - t
print(total, total / elapsed / 1e6)
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, help="runs per case (default 15; 4 with --quick)")
    p.add_argument("--transfers", type=int, help="GETs per path (default 5; 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    a.iterations = a.iterations or (4 if a.quick else 15)
    a.transfers = a.transfers or (2 if a.quick else 5)
    return a


class Netns:
    """A network namespace of the benchmark's own, loopback up; removed at the end."""

    def __init__(self, stack: contextlib.ExitStack, path: Path) -> None:
        self.path = str(path)
        path.touch()
        subprocess.run(["unshare", f"--net={self.path}", "true"], check=True)
        stack.callback(self.destroy)
        self.run("ip", "link", "set", "lo", "up")

    def enter(self) -> list[str]:
        return ["nsenter", f"--net={self.path}"]

    def run(self, *argv: str) -> str:
        return subprocess.run([*self.enter(), *argv], capture_output=True, text=True, check=True).stdout

    def destroy(self) -> None:
        subprocess.run(["umount", self.path], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class NsPodman(C.Podman):
    """podman inside a namespace: netavark's bridge and rules are made (and die) there."""

    def __init__(self, path: str, netns: Netns) -> None:
        super().__init__(path)
        self.netns = netns

    def argv(self, *args: str) -> list[str]:
        return [*self.netns.enter(), self.path, *args]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of its reaped children (runc, CNI plugins, iptables)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class Bench(C.Phases):
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        super().__init__(args, stack)
        self.medians: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        self.health: dict[str, Any] = {}
        self.cli = C.cli_argv()
        self.podman: NsPodman | None = None

    def setup(self) -> None:
        C.log(f"temp dir {self.base}")
        self.rootfs = C.build_rootfs(self.base / "rootfs")
        blob = Path(self.rootfs) / "srv" / "blob"
        blob.parent.mkdir(exist_ok=True)
        with open(blob, "wb") as f:  # sparse: read from the page cache, never the disk
            f.truncate(BLOB_MB << 20)
        self.netns = Netns(self.stack, self.base / "netns-varpod")
        self.daemon = C.Daemon(self.base / "daemon")
        self.daemon.prefix = self.netns.enter()
        self.stack.callback(self._stop_daemon)
        self.daemon.start()
        C.cli_bytecode_cache(self.base / "pycache")
        if C.podman_path():
            pns = Netns(self.stack, self.base / "netns-podman")
            self.podman = NsPodman(C.podman_path(), pns)
            self.stack.callback(lambda: self.problems.extend(self.podman.cleanup()))

    def _stop_daemon(self) -> None:
        d = self.daemon
        if d.proc is not None and d.proc.poll() is None:
            try:
                with d.client(timeout=60) as c:
                    for ctr in c.list(all=True):
                        c.remove(ctr.Id, force=True, timeout=0)
                    left = self.leftovers()
                    if any(left.values()):
                        self.problems.append(f"left behind after removing every container: {left}")
            except Exception as e:
                self.problems.append(f"clean-up: {e}")
        self.problems.extend(d.stop())

    def leftovers(self) -> dict[str, Any]:
        links = [x for x in self.netns.run("ip", "-o", "link").splitlines() if "veth" in x]
        netns = os.listdir(os.path.join(self.daemon.run_root, "netns")) \
            if os.path.isdir(os.path.join(self.daemon.run_root, "netns")) else []
        return {"veths": len(links), "netns": len(netns)}

    # -- run --rm ---------------------------------------------------------------------------

    def runs(self) -> None:
        sock = ["--socket", self.daemon.socket]
        true = ["--rootfs", self.rootfs, "/bin/true"]
        cases = {
            "private": lambda: C.run([*self.cli, *sock, "run", "--rm", *true]),
            "bridge": lambda: C.run([*self.cli, *sock, "run", "--rm", "--network", "bridge", *true]),
        }
        if self.podman is not None:
            p = self.podman
            cases["podman_bridge_created"] = lambda: C.run(p.argv("run", "--rm", *true))
            cases["podman_none"] = lambda: C.run(p.argv("run", "--rm", "--network=none", *true))
        out = C.interleaved(cases, self.args.iterations)
        if self.podman is not None:
            # The bridge held up by a sleeper, as varpod's always is.
            name = self.podman.name()
            C.run(self.podman.argv("run", "-d", "--name", name, "--rootfs", self.rootfs, "sleep", "1000"))
            held = {"podman_bridge_up": lambda: C.run(self.podman.argv("run", "--rm", *true)),
                    "bridge_again": cases["bridge"]}
            more = C.interleaved(held, self.args.iterations)
            # Ratios come from one round-robin: this pair's varpod figure is its own.
            out["podman_bridge_up"] = more["podman_bridge_up"]
            out["bridge_beside_podman_up"] = more["bridge_again"]
            C.run(self.podman.argv("rm", "-f", "-t", "0", name))
        for key, samples in out.items():
            self.medians[f"run_{key}_ms"] = samples.median_ms
            self.samples[f"run_{key}"] = samples.summary()

    def cpu(self) -> None:
        """The daemon's CPU (its own and its reaped children's) per run, bridge and private."""
        n = max(4, self.args.iterations)
        with self.daemon.client(timeout=60) as c:
            for mode in ("private", "bridge"):
                before = cpu_seconds(self.daemon.pid)
                for _ in range(n):
                    cid = c.create(self.rootfs, ["/bin/true"], network=mode).id
                    c.start(cid)
                    c.wait(cid)
                    c.remove(cid)
                self.medians[f"cpu_{mode}_ms"] = (cpu_seconds(self.daemon.pid) - before) * 1e3 / n

    # -- throughput -----------------------------------------------------------------------------

    def throughput(self) -> None:
        with self.daemon.client(timeout=60) as c:
            cid = c.create(self.rootfs, ["httpd", "-f", "-p", "80", "-h", "/srv"],
                           ports=[f"{HTTP_PORT}:80"]).id
            c.start(cid)
            pid = c.inspect(cid).State.Pid
            published = [*self.netns.enter(), sys.executable, "-c", HTTP_CLIENT, "127.0.0.1",
                         str(HTTP_PORT), "/blob"]
            loopback = ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", HTTP_CLIENT,
                        "127.0.0.1", "80", "/blob"]
            results: dict[str, list[float]] = {"published": [], "loopback": []}
            for _ in range(self.args.transfers + 1):  # the first of each warms the page cache
                for key, argv in (("published", published), ("loopback", loopback)):
                    got, mb_s = subprocess.run(argv, capture_output=True, text=True, check=True,
                                               timeout=120).stdout.split()
                    if int(got) < BLOB_MB << 20:
                        raise RuntimeError(f"{key}: got {got} bytes of {BLOB_MB} MiB")
                    results[key].append(float(mb_s))
            c.remove(cid, force=True, timeout=0)
        for key, values in results.items():
            values = sorted(values[1:])
            self.medians[f"tcp_{key}_mb_s"] = values[len(values) // 2]
            self.samples[f"tcp_{key}_mb_s"] = [round(v) for v in values]

    # -- report ---------------------------------------------------------------------------------

    def ratios(self) -> dict[str, float | None]:
        g = self.medians.get
        return {
            "bridge_vs_private": C.ratio(g("run_bridge_ms"), g("run_private_ms")),
            "bridge_vs_podman_bridge_up": C.ratio(g("run_bridge_beside_podman_up_ms"),
                                                  g("run_podman_bridge_up_ms")),
            "bridge_vs_podman_bridge_created": C.ratio(g("run_bridge_ms"), g("run_podman_bridge_created_ms")),
            "private_vs_podman_none": C.ratio(g("run_private_ms"), g("run_podman_none_ms")),
            "cpu_bridge_vs_private": C.ratio(g("cpu_bridge_ms"), g("cpu_private_ms")),
            "tcp_published_vs_loopback": C.ratio(g("tcp_published_mb_s"), g("tcp_loopback_mb_s")),
        }

    def targets(self, r: dict[str, float | None]) -> dict[str, C.Target]:
        T = C.Target
        return {t.name: t for t in (
            T("bridge_vs_podman", "run --rm on a bridge network <= 0.35x podman run --rm (bridge up)",
              r["bridge_vs_podman_bridge_up"], "<=", 0.35),
        )}

    def table(self, r: dict[str, float | None], t: dict[str, C.Target]) -> C.Table:
        g, ms = self.medians.get, C.fmt_ms
        tab = C.Table(f"varpod networks: medians of {self.args.iterations} runs per case, "
                      f"{self.args.transfers} transfers per path; {os.cpu_count()} CPUs")
        podman = "" if self.podman is not None else "podman: not installed"
        tab.row("run --rm /bin/true, bridge, CLI", ms(g("run_bridge_ms")), "varpod private (default)",
                ms(g("run_private_ms")), r["bridge_vs_private"])
        beside = g("run_bridge_beside_podman_up_ms")  # from the same round-robin as podman's
        tab.row("run --rm /bin/true, bridge, CLI", ms(beside or g("run_bridge_ms")),
                podman or "podman run --rm, bridge up", "" if podman else ms(g("run_podman_bridge_up_ms")),
                r["bridge_vs_podman_bridge_up"], t["bridge_vs_podman"])
        made = g("run_podman_bridge_created_ms")
        tab.row("run --rm /bin/true, bridge, CLI", ms(g("run_bridge_ms")),
                podman or "podman run --rm, bridge made", "" if podman else ms(made),
                r["bridge_vs_podman_bridge_created"])
        tab.row("run --rm /bin/true, private, CLI", ms(g("run_private_ms")),
                podman or "podman run --rm --network=none", "" if podman else ms(g("run_podman_none_ms")),
                r["private_vs_podman_none"])
        tab.row("daemon CPU per run (with runc, plugins)", ms(g("cpu_bridge_ms")), "same, private",
                ms(g("cpu_private_ms")), r["cpu_bridge_vs_private"])
        mb = g("tcp_published_mb_s"), g("tcp_loopback_mb_s")
        tab.row(f"TCP GET {BLOB_MB} MiB via published port", "—" if mb[0] is None else f"{mb[0]:,.0f} MB/s",
                "same over the container's loopback", "—" if mb[1] is None else f"{mb[1]:,.0f} MB/s",
                r["tcp_published_vs_loopback"])
        if self.health:
            tab.note("health", ", ".join(f"{k}={v}" for k, v in self.health.items()))
        self.note_problems(tab)
        return tab

    def report(self) -> tuple[dict[str, Any], C.Table]:
        r = self.ratios()
        t = self.targets(r)
        report = {
            "benchmark": "net",
            "machine": self.machine_report(),
            "parameters": {"iterations": self.args.iterations, "transfers": self.args.transfers,
                           "blob_mb": BLOB_MB, "quick": self.args.quick},
            "medians": {k: C.rounded(v) for k, v in self.medians.items()},
            "ratios": {k: C.rounded(v) for k, v in r.items()},
            "targets": {k: v.as_json() for k, v in t.items()},
            "samples": self.samples,
            "health": self.health,
            "problems": self.problems,
        }
        return report, self.table(r, t)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_net drives runc and makes network namespaces: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            with bench.phase("run --rm /bin/true: private, bridge" + (", podman" if bench.podman else "")):
                bench.runs()
            with bench.phase("daemon CPU per run"):
                bench.cpu()
            with bench.phase("TCP through a published port and over loopback"):
                bench.throughput()
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
