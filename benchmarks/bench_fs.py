"""Filesystems benchmark: `cp` into and out of a container, and `export` of one, in MB/s.

    .venv/bin/python benchmarks/bench_fs.py [--size-mb N] [--files N] [--iterations N] [--quick] [--json]

A directory of N files (1 GiB in 512 files by default, incompressible) is copied:

* ``varpod cp DIR CTR:/in`` and ``varpod cp CTR:/in DIR`` (the CLI: GNU tar on the client's
  side, the daemon's tar walker and unpacker on the container's) into and out of a
  running container of an image, against ``tar -C DIR -c . | tar -C NEW -x`` on the host
  (the limit: the same bytes through the same kind of pipe, no daemon) and ``podman cp``
  into and out of a container of the same image in podman's own temporary storage;
* ``varpod export -o FILE CTR`` of that container once it holds the data, against
  ``tar -C ROOTFS -c -f FILE .`` of the same tree on the host and ``podman export``.

Every case runs ``--iterations`` times round-robin (destinations removed between runs,
outside the timing), so drift under load hits each alike; medians are reported, MB/s
as 10^6 bytes per second of the data copied. The daemon's CPU seconds per operation are
reported too: they hold under load, where wall-clock figures do not.

Run as root. Targets are measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C
from bench_images import PodmanImages, cpu_seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, help="MiB of data (default 1024; 64 with --quick)")
    p.add_argument("--files", type=int, help="files it is spread over (default 512; 32 with --quick)")
    p.add_argument("--iterations", type=int, help="runs per case (default 3; 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    a.size_mb = a.size_mb or (64 if a.quick else 1024)
    a.files = a.files or (32 if a.quick else 512)
    a.iterations = a.iterations or (1 if a.quick else 3)
    return a


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Bench(C.Phases):
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        super().__init__(args, stack)
        self.samples: dict[str, C.Samples] = {}
        self.cpu: dict[str, list[float]] = {}
        self.cli = C.cli_argv()
        path = C.podman_path()
        self.podman = PodmanImages(path, self.base / "podman") if path else None
        if self.podman is not None:
            stack.callback(lambda: self.problems.extend(self.podman.cleanup()))

    # -- set-up ---------------------------------------------------------------------------------

    def setup(self) -> None:
        a = self.args
        C.log(f"temp dir {self.base}")
        rootfs = C.build_rootfs(self.base / "rootfs")
        image_tar = self.base / "rootfs.tar"
        C.run(["tar", "-C", rootfs, "-cf", str(image_tar), "."])
        self.data = self.base / "data"
        per_dir = 32
        size = (a.size_mb << 20) // a.files
        C.log(f"writing {a.size_mb} MiB in {a.files} files")
        for i in range(a.files):
            d = self.data / f"d{i // per_dir:03d}"
            d.mkdir(parents=True, exist_ok=True)
            with open(d / f"f{i:05d}", "wb") as f:
                left = size
                while left:
                    chunk = os.urandom(min(left, 8 << 20))
                    f.write(chunk)
                    left -= len(chunk)
        self.bytes = tree_bytes(self.data)
        self.daemon = C.Daemon(self.base / "daemon")
        self.stack.callback(lambda: self.problems.extend(self.daemon.stop()))
        self.daemon.start()
        self.client = self.stack.enter_context(self.daemon.client(timeout=600))
        self.client.import_image(str(image_tar), "fsbench")
        self.ctr = self.client.create(image="fsbench", command=["/bin/sleep", "100000"], name="fsbench").id
        self.client.start(self.ctr)
        self.stack.callback(self._remove_ours)
        if self.podman is not None:
            C.run(self.podman.argv("import", "-q", str(image_tar), "fsbench"))
            C.run(self.podman.argv("run", "-d", "--name", "fsbench", "--network=none", "fsbench",
                                   "/bin/sleep", "100000"))
        # Export needs the data in the container: the first cp in puts it there for both.
        self.exported_tree = self.base / "exported-tree"
        shutil.copytree(rootfs, self.exported_tree, symlinks=True)
        shutil.copytree(self.data, self.exported_tree / "in", symlinks=True)

    def _remove_ours(self) -> None:
        try:
            self.client.remove(self.ctr, force=True, timeout=0)
        except Exception as e:
            self.problems.append(f"removing the benchmark container: {e}")

    def _sock(self) -> list[str]:
        return ["--socket", self.daemon.socket]

    def _varpod(self, *args: str) -> None:
        C.run([*self.cli, *self._sock(), *args])

    # -- the cases ------------------------------------------------------------------------------

    def _time(self, name: str, fn: Callable[[], Any], before: Callable[[], Any] | None = None,
              daemon_cpu: bool = False) -> Callable[[], None]:
        def case() -> None:
            if before is not None:
                before()
            cpu0 = cpu_seconds(self.daemon.pid) if daemon_cpu else 0.0
            t0 = time.perf_counter()
            fn()
            self.samples.setdefault(name, C.Samples()).add(time.perf_counter() - t0)
            if daemon_cpu:
                self.cpu.setdefault(name, []).append(cpu_seconds(self.daemon.pid) - cpu0)
        return case

    def copies(self) -> None:
        out = self.base / "out"
        host_dst = self.base / "host-copy"

        def fresh(path: Path) -> Callable[[], None]:
            def clear() -> None:
                shutil.rmtree(path, ignore_errors=True)
            return clear

        def host_tar() -> None:
            host_dst.mkdir()
            C.run(["sh", "-c", f"tar -C '{self.data}' -c . | tar -C '{host_dst}' -x"])

        data = str(self.data)
        cases: dict[str, Callable[[], None]] = {
            "tar_pipe": self._time("tar_pipe", host_tar, fresh(host_dst)),
            "varpod_cp_in": self._time("varpod_cp_in", lambda: self._varpod("cp", data, "fsbench:/in"),
                                       lambda: self._varpod("exec", "fsbench", "rm", "-rf", "/in"), True),
            "varpod_cp_out": self._time("varpod_cp_out", lambda: self._varpod("cp", "fsbench:/in", str(out)),
                                        fresh(out), True),
        }
        if self.podman is not None:
            p = self.podman
            cases["podman_cp_in"] = self._time(
                "podman_cp_in", lambda: C.run(p.argv("cp", str(self.data), "fsbench:/in")),
                lambda: C.run(p.argv("exec", "fsbench", "rm", "-rf", "/in")))
            cases["podman_cp_out"] = self._time(
                "podman_cp_out", lambda: C.run(p.argv("cp", "fsbench:/in", str(out))), fresh(out))
        for _ in range(self.args.iterations):
            for fn in cases.values():
                fn()
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(host_dst, ignore_errors=True)

    def exports(self) -> None:
        target = self.base / "export.tar"

        def gone() -> None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()

        cases = {
            "tar_create": self._time("tar_create", lambda: C.run(["tar", "-C", str(self.exported_tree), "-cf",
                                                                    str(target), "."]), gone),
            "varpod_export": self._time("varpod_export", lambda: self._varpod("export", "-o", str(target),
                                                                                "fsbench"), gone, True),
        }
        if self.podman is not None:
            podman = self.podman
            cases["podman_export"] = self._time(
                "podman_export", lambda: C.run(podman.argv("export", "-o", str(target), "fsbench")), gone)
        for _ in range(self.args.iterations):
            for fn in cases.values():
                fn()
        gone()

    # -- report ------------------------------------------------------------------------------------

    def mbps(self, name: str) -> float | None:
        s = self.samples.get(name)
        if s is None or not s.values:
            return None
        return self.bytes / (s.median_ms / 1e3) / 1e6

    def report(self) -> tuple[dict[str, Any], C.Table]:
        rates = {name: self.mbps(name) for name in self.samples}
        cpu = {name: sorted(v)[len(v) // 2] for name, v in self.cpu.items()}
        r = {
            "cp_in_vs_tar": C.ratio(rates.get("varpod_cp_in"), rates.get("tar_pipe")),
            "cp_out_vs_tar": C.ratio(rates.get("varpod_cp_out"), rates.get("tar_pipe")),
            "cp_in_vs_podman": C.ratio(rates.get("varpod_cp_in"), rates.get("podman_cp_in")),
            "cp_out_vs_podman": C.ratio(rates.get("varpod_cp_out"), rates.get("podman_cp_out")),
            "export_vs_tar": C.ratio(rates.get("varpod_export"), rates.get("tar_create")),
            "export_vs_podman": C.ratio(rates.get("varpod_export"), rates.get("podman_export")),
        }

        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:,.0f} MB/s"

        mb = self.bytes / 1e6
        tab = C.Table(f"varpod filesystems: {mb:,.0f} MB in {self.args.files} files; medians of "
                      f"{self.args.iterations} runs per case, MB/s of the data (higher is better; "
                      "vs. is varpod's rate over the baseline's)")
        tab.row("cp DIR CTR:/in", fmt(rates.get("varpod_cp_in")), "tar c | tar x on the host",
                fmt(rates.get("tar_pipe")), r["cp_in_vs_tar"])
        tab.row("cp CTR:/in DIR", fmt(rates.get("varpod_cp_out")), "tar c | tar x on the host",
                fmt(rates.get("tar_pipe")), r["cp_out_vs_tar"])
        if self.podman is not None:
            tab.row("cp DIR CTR:/in", fmt(rates.get("varpod_cp_in")), "podman cp",
                    fmt(rates.get("podman_cp_in")), r["cp_in_vs_podman"])
            tab.row("cp CTR:/in DIR", fmt(rates.get("varpod_cp_out")), "podman cp",
                    fmt(rates.get("podman_cp_out")), r["cp_out_vs_podman"])
        tab.row("export -o FILE CTR", fmt(rates.get("varpod_export")), "tar -cf FILE of the same tree",
                fmt(rates.get("tar_create")), r["export_vs_tar"])
        if self.podman is not None:
            tab.row("export -o FILE CTR", fmt(rates.get("varpod_export")), "podman export",
                    fmt(rates.get("podman_export")), r["export_vs_podman"])
        for name, seconds in cpu.items():
            tab.row(f"{name}: daemon CPU", f"{seconds:.2f} s")
        self.note_problems(tab)
        report = {
            "benchmark": "fs", "machine": self.machine_report(), "bytes": self.bytes,
            "files": self.args.files, "mb_per_s": {k: C.rounded(v) for k, v in rates.items()},
            "daemon_cpu_s": {k: C.rounded(v) for k, v in cpu.items()},
            "ratios": {k: C.rounded(v) for k, v in r.items()},
            "samples": {k: s.summary() for k, s in self.samples.items()}, "problems": self.problems,
        }
        return report, tab


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_fs drives runc and mounts: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            with bench.phase("cp in and out: varpod, tar" + (", podman" if bench.podman else "")):
                bench.copies()
            with bench.phase("export: varpod, tar" + (", podman" if bench.podman else "")):
                bench.exports()
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
