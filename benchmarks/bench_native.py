"""Log relay throughput: the C loop (varpod.native) against its pure-Python twin.

    .venv/bin/python benchmarks/bench_native.py [--size MiB] [--repeat N] [--json]

A log of ``--size`` MiB (default 512) of 64 KiB records, alternating stdout
and stderr, in a temporary file (so in the page cache, as a followed log is),
and one of 1 KiB records (what line-at-a-time output makes), are each relayed
by ``native.relay`` to one end of a socketpair whose other end a reader
thread drains, in each output mode, as a log follower does: call until the
end, wait for POLLOUT whenever it reports EAGAIN. Each run relays the whole
log with a fresh cursor; the figure is the median of ``--repeat`` runs
(``timeit`` autorange, which settles on one run per timing at these sizes).
MB/s counts log bytes read (MB = 10^6 bytes), whatever the mode sends.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import timeit
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

from varpod import native
from varpod.core.logfile import encode_record
from varpod.native import MODE_FRAMES, MODE_RAW, MODE_RECORDS, _fallback

RECORD_PAYLOADS = (64 << 10, 1 << 10)
MODES = {"records": MODE_RECORDS, "frames": MODE_FRAMES, "raw": MODE_RAW}
BOTH = 0b110


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512, help="log size in MiB (default 512)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p.parse_args(argv)


def write_log(fd: int, size: int, record_payload: int) -> int:
    payload = os.urandom(record_payload)
    batch = b"".join(encode_record(1 + i % 2, payload, ts=i) for i in range((1 << 20) // record_payload))
    written = 0
    while written + len(batch) <= size:
        os.write(fd, batch)
        written += len(batch)
    return written


def output_size(mode: int, end: int, record_payload: int) -> int:
    records = end // (record_payload + 20)
    return {MODE_RECORDS: end, MODE_FRAMES: end - records * 12, MODE_RAW: records * record_payload}[mode]


def relay_once(mod: Any, log_fd: int, end: int, mode: int) -> int:
    """Relay the whole log to a drained socketpair; returns the bytes the reader got."""
    w, r = socket.socketpair()
    w.setblocking(False)
    received = 0

    def drain() -> None:
        nonlocal received
        buf = bytearray(1 << 20)
        while n := r.recv_into(buf):
            received += n

    reader = threading.Thread(target=drain)
    reader.start()
    poller = select.poll()
    poller.register(w, select.POLLOUT)
    try:
        cursor = mod.Cursor()
        while True:
            _, blocked = mod.relay(cursor, log_fd, end, w.fileno(), mode, BOTH)
            if not blocked:
                break
            poller.poll()
    finally:
        w.close()
        reader.join()
        r.close()
    return received


def throughput(mod: Any, log_fd: int, end: int, mode: int, repeat: int) -> float:
    """MB/s of log relayed: the median of ``repeat`` timed runs."""
    timer = timeit.Timer(lambda: relay_once(mod, log_fd, end, mode))
    number, _ = timer.autorange()
    times = timer.repeat(repeat=repeat, number=number)
    return end * number / statistics.median(times) / 1e6


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if native.IMPLEMENTATION != "c":
        C.log(f"the compiled module is not live ({native.IMPORT_ERROR or 'VARPOD_NATIVE=python'}); "
              "both columns would be the Python twin")
        return 1
    results: dict[tuple[int, str], dict[str, float]] = {}
    for record_payload in RECORD_PAYLOADS:
        with tempfile.TemporaryFile() as f:
            end = write_log(f.fileno(), args.size << 20, record_payload)
            for name, mode in MODES.items():
                for impl, mod in (("c", native), ("python", _fallback)):
                    got = relay_once(mod, f.fileno(), end, mode)  # warm-up, and a check that it all arrives
                    if got != output_size(mode, end, record_payload):
                        raise RuntimeError(f"{impl} {name}: reader got {got} bytes, "
                                           f"expected {output_size(mode, end, record_payload)}")
                    C.log(f"{record_payload >> 10} KiB records, {name} mode: {impl} ...")
                    r = throughput(mod, f.fileno(), end, mode, args.repeat)
                    results.setdefault((record_payload, name), {})[impl] = r

    table = C.Table(f"relay of a {args.size} MiB log to a socketpair drained by a reader thread")
    for (record_payload, name), r in results.items():
        table.row(f"{record_payload >> 10} KiB records, {name}", f"{r['c']:,.0f} MB/s", "pure Python",
                  f"{r['python']:,.0f} MB/s", C.ratio(r["c"], r["python"]))
    table.note("MB/s", "log bytes read per second (MB = 10^6 bytes); median of runs")
    report = {
        "benchmark": "native",
        "machine": C.machine(),
        "log_mib": args.size,
        "results": [{"record_payload": record_payload, "mode": name, "c_mb_s": round(r["c"], 1),
                     "python_mb_s": round(r["python"], 1), "ratio": round(r["c"] / r["python"], 2)}
                    for (record_payload, name), r in results.items()],
    }
    C.emit(report, table, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
