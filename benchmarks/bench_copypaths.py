"""Every way this kernel offers to copy a container's output into a log and on to a socket, measured.

    .venv/bin/python benchmarks/bench_copypaths.py [--mib 256] [--runs 5] [--chunks 4096,65536] [--json]

Compiles ``copypaths.c`` (next to this file) with ``cc`` into a temp dir and
runs it for each way of moving bytes (see its header): the daemon's CPU
seconds per GiB that goes pipe -> log -> socket, with 4 KiB (line-buffered
output) and 64 KiB writes, on a log whose pages are already in the page cache
("overwrite": the copies alone) and on a new file ("new": as a new container's
log, paying for new pages). Min, median and max of ``--runs`` runs, interleaved:
with free page reporting (see _common.page_reporting) new pages cost a host
fault, whose share moves from run to run; the minimum is the copies' own cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

SOURCE = Path(__file__).resolve().with_name("copypaths.c")
WAYS = [("readwrite", "copy"), ("splice", "copy"), ("staged", "copy"), ("readwrite", "sendfile"),
        ("splice", "sendfile"), ("staged", "sendfile"), ("splice", "tee")]
WHAT = {
    ("readwrite", "copy"): "read + writev; pread + write (varpod before)",
    ("staged", "sendfile"): "staged splice; sendfile (varpod now)",
    ("splice", "tee"): "tee to a live pipe, splice to the socket (no log reads)",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=256, help="MiB moved per run (default 256)")
    p.add_argument("--runs", type=int, default=5, help="runs per way (default 5)")
    p.add_argument("--chunks", default="4096,65536", help="producer write sizes (default 4096,65536)")
    p.add_argument("--files", default="overwrite,new", help="log file modes (default overwrite,new)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    a.chunks = [int(x) for x in a.chunks.split(",")]
    a.files = [x for x in a.files.split(",") if x]
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("bench_copypaths needs a C compiler (cc)")
    results: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        base = C.tempdir(stack)
        exe = base / "copypaths"
        subprocess.run([cc, "-O2", "-o", str(exe), str(SOURCE)], check=True)
        log_path = base / "log"
        for i in range(a.runs):
            for mode in a.files:
                for chunk in a.chunks:
                    for pump, relay in WAYS:
                        key = f"{mode} {chunk} {pump} {relay}"
                        C.log(f"   {key} ({i + 1}/{a.runs})")
                        if mode == "new":
                            C.settle_memory()
                        argv = [str(exe), pump, relay, str(chunk), str(a.mib), str(log_path), mode]
                        done = subprocess.run(argv, capture_output=True, text=True, check=False)
                        if done.returncode:
                            raise SystemExit(f"copypaths {key} failed: {done.stderr or done.stdout}")
                        r = json.loads(done.stdout)
                        gib = r["bytes"] / (1 << 30)
                        results.setdefault(key, []).append((r["user_s"] + r["sys_s"]) / gib)
    table = C.Table(f"daemon CPU seconds per GiB, pipe -> log -> Unix socket, {a.mib} MiB per run, "
                    f"min / median / max of {a.runs} runs")
    report = {"benchmark": "copypaths", "machine": C.machine(), "mib": a.mib, "runs": a.runs, "results": {}}
    for mode in a.files:
        for chunk in a.chunks:
            base_key = f"{mode} {chunk} readwrite copy"
            base_med = statistics.median(results[base_key])
            for pump, relay in WAYS:
                v = results[f"{mode} {chunk} {pump} {relay}"]
                med = statistics.median(v)
                name = WHAT.get((pump, relay), f"{pump}; {relay}")
                before = (pump, relay) != ("readwrite", "copy")
                table.row(f"{mode} log, {chunk // 1024} KiB writes: {name}",
                          f"{min(v):.2f} / {med:.2f} / {max(v):.2f}", "varpod before" if before else "",
                          f"{base_med:.2f}" if before else "", base_med / med if med else None)
                report["results"][f"{mode} {chunk} {pump} {relay}"] = [round(x, 3) for x in v]
    table.note("vs.", "CPU of varpod's previous way over this one's (higher is cheaper)")
    table.note("tee", "the floor of a design that reads no log back: each slow reader would then need a "
                      "log fallback of its own")
    C.emit(report, table, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
