"""Images benchmark: pulls, runs of an image, and many containers of one image.

    .venv/bin/python benchmarks/bench_images.py [--iterations N] [--pulls N] [--size-mb N]
                                                [--containers N] [--quick] [--json]

Everything runs against Debian's ``docker-registry`` on 127.0.0.1 and a
~100 MB image of five layers generated here (busybox plus incompressible
data), with every ratio taken within the run:

* pull (the store emptied before each) against ``skopeo copy docker://... oci:DIR``
  and ``podman pull`` (its own temporary storage) when podman is installed;
  the daemon's CPU seconds per pull are reported too: they hold under load;
* ``run --rm IMAGE /bin/true`` through the CLI against ``run --rm --rootfs DIR
  /bin/true`` (target <= 1.2x) and ``podman run --rm --network=none IMAGE`` (target
  <= 0.45x), interleaved round-robin, medians; the client library's
  create/start/wait/remove of both kinds too;
* N ``sleep`` containers of the image: disk used per container (their upper
  and work dirs) and daemon RSS per container.

Run as root. Targets are measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C
import imagetools as it

LAYERS = 4  # data layers over the busybox base


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, help="runs per run case (default 20; 5 with --quick)")
    p.add_argument("--pulls", type=int, help="pulls per tool (default 3; 1 with --quick)")
    p.add_argument("--size-mb", type=int, help="image size in MB (default 100; 20 with --quick)")
    p.add_argument("--containers", type=int, help="containers of one image (default 50; 10 with --quick)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    a.iterations = a.iterations or (5 if a.quick else 20)
    a.pulls = a.pulls or (1 if a.quick else 3)
    a.size_mb = a.size_mb or (20 if a.quick else 100)
    a.containers = a.containers or (10 if a.quick else 50)
    return a


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_bytes(path: str) -> int:
    """Bytes of disk a tree occupies (allocated blocks, each inode once)."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames, ""):
            p = os.path.join(dirpath, name) if name else dirpath
            try:
                s = os.lstat(p)
            except OSError:
                continue
            if (s.st_dev, s.st_ino) not in seen:
                seen.add((s.st_dev, s.st_ino))
                total += s.st_blocks * 512
    return total


class PodmanImages:
    """podman with storage of its own under the temp dir (overlay, as installed podman uses)."""

    def __init__(self, path: str, base: Path) -> None:
        self.path = path
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        # podman refuses a run root of over 50 characters.
        self.runroot = Path(f"/run/vpbench-{os.getpid()}")
        self.global_args = ["--root", str(base / "root"), "--runroot", str(self.runroot)]

    def argv(self, *args: str) -> list[str]:
        return [self.path, *self.global_args, *args]

    def cleanup(self) -> list[str]:
        problems = []
        done = subprocess.run(self.argv("rm", "--all", "--force", "--time", "0"), capture_output=True,
                              text=True, check=False)
        if done.returncode:
            problems.append(f"podman rm: {done.stderr.strip()[:200]}")
        subprocess.run(self.argv("system", "reset", "--force"), capture_output=True, check=False)
        shutil.rmtree(self.runroot, ignore_errors=True)
        return problems


class Bench(C.Phases):
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        super().__init__(args, stack)
        self.medians: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        self.figures: dict[str, Any] = {}
        self.cli = C.cli_argv()
        path = C.podman_path()
        self.podman = PodmanImages(path, self.base / "podman") if path else None
        if self.podman is not None:
            stack.callback(lambda: self.problems.extend(self.podman.cleanup()))

    # -- set-up -------------------------------------------------------------------------------

    def setup(self) -> None:
        C.log(f"temp dir {self.base}")
        self.rootfs = C.build_rootfs(self.base / "rootfs")
        self.registry = it.Registry(self.base / "registry", self.base / "storage")
        self.stack.callback(self.registry.stop)
        layout = self.base / "layout"
        chunk = max(1, self.args.size_mb // LAYERS) << 20
        C.log(f"building a {self.args.size_mb} MB image of {LAYERS + 1} layers")
        layers = [(it.base_layer(), "gzip")]
        for i in range(LAYERS):
            layer = it.Layer()
            layer.file(f"data/blob{i}", os.urandom(chunk))
            layers.append((layer.raw(), "gzip"))
        # No VOLUME (the fixture's default declares /data): each run would copy the data into an
        # anonymous volume, as podman does, and time that copy instead of the run
        self.image_id = it.build_layout(layout, "big", layers, Volumes={})[7:]
        self.ref = f"{self.registry.host}/bench/big:latest"
        it.push(layout, "big", self.ref)
        self.figures["image_bytes"] = sum(os.path.getsize(p) for p in (layout / "blobs" / "sha256").iterdir())
        conf = self.base / "registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "{self.registry.host}"\ninsecure = true\n')
        self.daemon = C.Daemon(self.base / "daemon", env={"CONTAINERS_REGISTRIES_CONF": str(conf)})
        self.stack.callback(lambda: self.problems.extend(self.daemon.stop()))
        self.daemon.start()
        self.client = self.stack.enter_context(self.daemon.client(timeout=600))

    # -- pull ------------------------------------------------------------------------------------

    def pulls(self) -> None:
        c = self.client
        cases: dict[str, Any] = {}
        cpu: list[float] = []

        def ours() -> None:
            if c.image_exists(self.ref):
                c.image_remove(self.ref, force=True)
            before = cpu_seconds(self.daemon.pid)
            t0 = time.perf_counter()
            c.pull(self.ref)
            cases.setdefault("varpod", C.Samples()).add(time.perf_counter() - t0)
            cpu.append(cpu_seconds(self.daemon.pid) - before)

        def skopeo() -> None:
            target = self.base / "skopeo-oci"
            shutil.rmtree(target, ignore_errors=True)
            t0 = time.perf_counter()
            C.run([it.SKOPEO, "copy", "--quiet", "--src-tls-verify=false", f"docker://{self.ref}",
                   f"oci:{target}:x"])
            cases.setdefault("skopeo", C.Samples()).add(time.perf_counter() - t0)

        def podman() -> None:
            C.run(self.podman.argv("rmi", "--all", "--force"))
            t0 = time.perf_counter()
            C.run(self.podman.argv("pull", "-q", "--tls-verify=false", self.ref))
            cases.setdefault("podman", C.Samples()).add(time.perf_counter() - t0)

        order = [ours, skopeo, *([podman] if self.podman else [])]
        for fn in order:  # a warm-up of each: caches, connections, first-touch memory
            fn()
        cases.clear()
        cpu.clear()
        for _ in range(self.args.pulls):
            for fn in order:
                fn()
        for name, samples in cases.items():
            self.samples[f"pull_{name}"] = samples.summary()
            self.medians[f"pull_{name}_ms"] = samples.median_ms
        self.medians["pull_varpod_daemon_cpu_s"] = sorted(cpu)[len(cpu) // 2]
        if self.podman:  # for the run case
            C.run(self.podman.argv("pull", "-q", "--tls-verify=false", self.ref))

    # -- run --rm -----------------------------------------------------------------------------------

    def runs(self) -> None:
        c = self.client
        if not c.image_exists(self.ref):
            c.pull(self.ref)
        sock = ["--socket", self.daemon.socket]

        def client_run(**kw: Any) -> None:
            cid = c.create(command=["/bin/true"], **kw).id
            c.start(cid)
            if c.wait(cid).exit_code != 0:
                raise RuntimeError("/bin/true failed")
            c.remove(cid)

        cases = {
            "cli_image": lambda: C.run([*self.cli, *sock, "run", "--rm", self.ref, "/bin/true"]),
            "cli_rootfs": lambda: C.run([*self.cli, *sock, "run", "--rm", "--rootfs", self.rootfs,
                                         "/bin/true"]),
            "client_image": lambda: client_run(image=self.ref),
            "client_rootfs": lambda: client_run(rootfs=self.rootfs),
        }
        if self.podman:
            cases["podman_image"] = lambda: C.run(self.podman.argv("run", "--rm", "--network=none", self.ref,
                                                                   "/bin/true"))
        for name, samples in C.interleaved(cases, self.args.iterations).items():
            self.samples[f"run_{name}"] = samples.summary()
            self.medians[f"run_{name}_ms"] = samples.median_ms

    # -- many containers ----------------------------------------------------------------------------

    def many(self) -> None:
        c = self.client
        n = self.args.containers
        pid = self.daemon.pid
        root = os.path.join(self.daemon.root, "images", "containers")

        def containers_disk() -> int:  # upper and work dirs: the merged mounts show the image
            return sum(disk_bytes(os.path.join(root, cid, part)) for cid in os.listdir(root)
                       for part in ("upper", "work"))

        rss0 = C.rss_kb(pid)
        disk0 = containers_disk()
        ids = []
        try:
            for _ in range(n):
                cid = c.create(image=self.ref, command=["/bin/sleep", "1000"]).id
                ids.append(cid)
                c.start(cid)
            time.sleep(0.5)
            self.figures["containers"] = n
            self.figures["disk_per_container_bytes"] = (containers_disk() - disk0) / n
            self.figures["rss_per_container_kb"] = (C.rss_kb(pid) - rss0) / n
            self.figures["layers_bytes"] = disk_bytes(os.path.join(self.daemon.root, "images", "layers"))
        finally:
            for cid in ids:
                c.remove(cid, force=True, timeout=0)

    # -- report -------------------------------------------------------------------------------------

    def report(self) -> tuple[dict[str, Any], C.Table]:
        m = self.medians
        r = {
            "pull_vs_skopeo": C.ratio(m.get("pull_varpod_ms"), m.get("pull_skopeo_ms")),
            "pull_vs_podman": C.ratio(m.get("pull_varpod_ms"), m.get("pull_podman_ms")),
            "run_image_vs_rootfs_cli": C.ratio(m.get("run_cli_image_ms"), m.get("run_cli_rootfs_ms")),
            "run_image_vs_rootfs_client": C.ratio(m.get("run_client_image_ms"),
                                                  m.get("run_client_rootfs_ms")),
            "run_image_vs_podman": C.ratio(m.get("run_cli_image_ms"), m.get("run_podman_image_ms")),
        }
        t = {
            "run_image_vs_rootfs": C.Target("run_image_vs_rootfs", "CLI run --rm IMAGE <= 1.2x --rootfs",
                                            r["run_image_vs_rootfs_cli"], "<=", 1.2),
            "run_image_vs_podman": C.Target("run_image_vs_podman", "CLI run --rm IMAGE <= 0.45x podman",
                                            r["run_image_vs_podman"], "<=", 0.45),
        }
        size = self.figures.get("image_bytes", 0) / 1e6
        tab = C.Table(f"varpod images: a {size:.0f} MB image of {LAYERS + 1} layers from docker-registry "
                      f"on 127.0.0.1; medians of {self.args.pulls} pulls and {self.args.iterations} runs "
                      "per case")
        tab.row("pull", C.fmt_ms(m.get("pull_varpod_ms")), "skopeo copy … oci:",
                C.fmt_ms(m.get("pull_skopeo_ms")), r["pull_vs_skopeo"])
        if self.podman:
            tab.row("pull", C.fmt_ms(m.get("pull_varpod_ms")), "podman pull",
                    C.fmt_ms(m.get("pull_podman_ms")), r["pull_vs_podman"])
        cpu = m.get("pull_varpod_daemon_cpu_s")
        if cpu is not None:
            tab.row("pull: daemon CPU", f"{cpu:.2f} s")
        tab.row("run --rm IMAGE /bin/true, CLI", C.fmt_ms(m.get("run_cli_image_ms")), "run --rm --rootfs",
                C.fmt_ms(m.get("run_cli_rootfs_ms")), r["run_image_vs_rootfs_cli"], t["run_image_vs_rootfs"])
        tab.row("same, client library", C.fmt_ms(m.get("run_client_image_ms")), "--rootfs",
                C.fmt_ms(m.get("run_client_rootfs_ms")), r["run_image_vs_rootfs_client"])
        if self.podman:
            tab.row("run --rm IMAGE /bin/true, CLI", C.fmt_ms(m.get("run_cli_image_ms")),
                    "podman run --rm --network=none", C.fmt_ms(m.get("run_podman_image_ms")),
                    r["run_image_vs_podman"], t["run_image_vs_podman"])
        f = self.figures
        if "disk_per_container_bytes" in f:
            n = f["containers"]
            tab.row(f"{n} containers of it: disk each", f"{f['disk_per_container_bytes'] / 1024:,.1f} KB",
                    "the image's layers", f"{f['layers_bytes'] / 1e6:,.0f} MB")
            tab.row(f"{n} containers of it: daemon RSS each", C.fmt_kb(f["rss_per_container_kb"]))
        self.note_problems(tab)
        report = {
            "benchmark": "images", "machine": self.machine_report(), "medians": m,
            "ratios": {k: C.rounded(v) for k, v in r.items()},
            "targets": {k: v.as_json() for k, v in t.items()}, "figures": f, "samples": self.samples,
            "problems": self.problems,
        }
        return report, tab


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_images drives runc and mounts: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            with bench.phase("pull: varpod, skopeo" + (", podman" if bench.podman else "")):
                bench.pulls()
            with bench.phase("run --rm IMAGE /bin/true"):
                bench.runs()
            with bench.phase(f"{args.containers} containers of one image"):
                bench.many()
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
