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

Two more tables, C only. Merge: the 1 KiB-record log relayed in records mode
with ``merge=True`` against without (what a client receives then has a few
large records instead of one per read). Demux: the client's side of
``varpod logs``, the same log sent as a records stream through a socketpair by
a sender thread, and written to a pipe that a reader thread drains, by
``demux_from`` (splice) against the loop ``rpc/cli.py`` runs today (recv 1
MiB, ``demux`` what is whole, keep the rest); MB/s counts stream bytes.

Pump: the daemon's other loop, a container's pipe into its log. ``dd`` writes
``--size`` MiB in 64 KiB or 4 KiB pieces into a pipe grown as the daemon grows
a container's; ``native.pump`` and its twin splice it into a log file (the same
file each run: its pages cached, so the figure is the loop and its copy, not the
price of new page cache), woken by poll as the daemon is, taking what one
wake-up finds. CPU seconds per GiB of the pumping thread, and MB/s.
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

from varpod import native
from varpod.core.logfile import encode_record
from varpod.core.stdio import READ_BUDGET, grow_pipe
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


def write_log(fd: int, size: int, record_payload: int, alternate: bool = True) -> int:
    """Records alternating stdout and stderr, or (not ``alternate``) all stdout; returns the size."""
    payload = os.urandom(record_payload)
    batch = b"".join(encode_record(1 + i % 2 if alternate else 1, payload, ts=i)
                     for i in range((1 << 20) // record_payload))
    written = 0
    while written + len(batch) <= size:
        os.write(fd, batch)
        written += len(batch)
    return written


def output_size(mode: int, end: int, record_payload: int) -> int:
    records = end // (record_payload + 20)
    return {MODE_RECORDS: end, MODE_FRAMES: end - records * 12, MODE_RAW: records * record_payload}[mode]


def relay_once(mod: Any, log_fd: int, end: int, mode: int, merge: bool = False) -> int:
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
            _, blocked = mod.relay(cursor, log_fd, end, w.fileno(), mode, BOTH, merge=merge)
            if not blocked:
                break
            poller.poll()
    finally:
        w.close()
        reader.join()
        r.close()
    return received


def throughput(mod: Any, log_fd: int, end: int, mode: int, repeat: int, merge: bool = False) -> float:
    """MB/s of log relayed: the median of ``repeat`` timed runs."""
    return rate(lambda: relay_once(mod, log_fd, end, mode, merge), end, repeat)


def rate(run: Any, nbytes: int, repeat: int) -> float:
    """MB/s of ``nbytes`` per ``run()``: the median of ``repeat`` timed runs."""
    timer = timeit.Timer(run)
    number, _ = timer.autorange()
    times = timer.repeat(repeat=repeat, number=number)
    return nbytes * number / statistics.median(times) / 1e6


# -- the client's side: demux_from against the loop through Python ---------------------------------

CONTROL_RECORD = encode_record(3, b"\x81\xa3end\xa3eof", ts=0)


def demux_once(log_fd: int, end: int, how: str) -> int:
    """Send the log and an end record through a socketpair; demux it into a drained pipe.

    Returns the bytes the pipe's reader got.
    """
    a, b = socket.socketpair()
    r, w = os.pipe()
    received = 0

    def send() -> None:
        with os.fdopen(os.dup(log_fd), "rb") as f:
            b.sendfile(f, 0, end)
        b.sendall(CONTROL_RECORD)
        b.close()

    def drain() -> None:
        nonlocal received
        buf = bytearray(1 << 20)
        while n := os.readv(r, [buf]):
            received += n

    threads = [threading.Thread(target=send), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    try:
        if how == "demux_from":
            demuxer = native.Demuxer(MODE_RECORDS)
            status, _ = native.demux_from(demuxer, a.fileno(), w, w)
            while status == native.STATUS_INTERRUPTED:  # the budget: handlers get their turn
                status, _ = native.demux_from(demuxer, a.fileno(), w, w)
            assert status == native.STATUS_CONTROL
        else:
            demux_loop(a, w)
    finally:
        os.close(w)
        for t in threads:
            t.join()
        os.close(r)
        a.close()
    return received


def demux_loop(sock: socket.socket, out: int) -> None:
    """What ``_demux_logs`` in rpc/cli.py does with a records stream."""
    buf = b""
    while True:
        consumed, control_at = native.demux(buf, MODE_RECORDS, out, out)
        buf = buf[consumed:]
        if control_at >= 0 and len(buf) >= 8 + int.from_bytes(buf[4:8], "big"):
            return
        data = sock.recv(1 << 16)  # 1 MiB: glibc would mmap and unmap it every call
        if not data:
            raise RuntimeError("the stream ended without its end record")
        buf = buf + data if buf else data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if native.IMPLEMENTATION != "c":
        C.log(f"the compiled module is not live ({native.IMPORT_ERROR or 'VARPOD_NATIVE=python'}); "
              "both columns would be the Python twin")
        return 1
    results = bench_relay(args)
    merged, demuxed = bench_merge_and_demux(args)
    pumped = bench_pump(args)

    table = C.Table(f"relay of a {args.size} MiB log to a socketpair drained by a reader thread")
    for (record_payload, name), r in results.items():
        table.row(f"{record_payload >> 10} KiB records, {name}", f"{r['c']:,.0f} MB/s", "pure Python",
                  f"{r['python']:,.0f} MB/s", C.ratio(r["c"], r["python"]))
    table.row("1 KiB stdout records, records, merge", f"{merged['on']:,.0f} MB/s", "merge off",
              f"{merged['off']:,.0f} MB/s", C.ratio(merged["on"], merged["off"]))
    for name, r in demuxed.items():
        table.row(f"client demux, {name}", f"{r['demux_from']:,.0f} MB/s", "demux() loop",
                  f"{r['loop']:,.0f} MB/s", C.ratio(r["demux_from"], r["loop"]))
    for chunk, r in pumped.items():
        table.row(f"pump, {chunk >> 10} KiB writes, CPU-s per GiB", f"{r['c']['cpu']:.3f} s", "pure Python",
                  f"{r['python']['cpu']:.3f} s", C.ratio(r["python"]["cpu"], r["c"]["cpu"]))
        table.row(f"pump, {chunk >> 10} KiB writes", f"{r['c']['rate']:,.0f} MB/s", "pure Python",
                  f"{r['python']['rate']:,.0f} MB/s", C.ratio(r["c"]["rate"], r["python"]["rate"]))
    table.note("MB/s", "log (or stream) bytes read per second (MB = 10^6 bytes); median of runs")
    table.note("pump", "a dd's pipe into a log whose pages are cached; CPU of the pumping thread (ratio: "
               "Python's / C's) and MB/s, medians")
    table.note("merge", f"C both; one stream, as line-at-a-time output leaves it; records the client "
               f"receives: {merged['records_off']:,} without, {merged['records_on']:,} with")
    table.note("client demux", "C both; a records stream through a socketpair into a drained pipe: "
               "demux_from (splice) against rpc/cli.py's recv + demux() loop")
    report = {
        "benchmark": "native",
        "machine": C.machine(),
        "log_mib": args.size,
        "results": [{"record_payload": record_payload, "mode": name, "c_mb_s": round(r["c"], 1),
                     "python_mb_s": round(r["python"], 1), "ratio": round(r["c"] / r["python"], 2)}
                    for (record_payload, name), r in results.items()],
        "merge": {"record_payload": 1 << 10, "mode": "records", "off_mb_s": round(merged["off"], 1),
                  "on_mb_s": round(merged["on"], 1), "ratio": round(merged["on"] / merged["off"], 2),
                  "records_off": merged["records_off"], "records_on": merged["records_on"]},
        "demux": [{"stream": name, "demux_from_mb_s": round(r["demux_from"], 1),
                   "loop_mb_s": round(r["loop"], 1), "ratio": round(r["demux_from"] / r["loop"], 2)}
                  for name, r in demuxed.items()],
        "pump": [{"write_size": chunk, "c_cpu_s_per_gib": round(r["c"]["cpu"], 3),
                  "python_cpu_s_per_gib": round(r["python"]["cpu"], 3),
                  "c_mb_s": round(r["c"]["rate"], 1), "python_mb_s": round(r["python"]["rate"], 1),
                  "cpu_ratio": round(r["python"]["cpu"] / r["c"]["cpu"], 2)}
                 for chunk, r in pumped.items()],
    }
    C.emit(report, table, args.json)
    return 0


def bench_relay(args: argparse.Namespace) -> dict[tuple[int, str], dict[str, float]]:
    """Each mode, C and Python, on logs of 64 KiB and 1 KiB records."""
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
    return results


def bench_merge_and_demux(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """relay merge on and off; then the client's demux of three streams, demux_from and the loop."""
    size = args.size << 20
    with (tempfile.TemporaryFile() as big, tempfile.TemporaryFile() as small,
          tempfile.TemporaryFile() as joined):
        big_end = write_log(big.fileno(), size, 64 << 10)
        small_end = write_log(small.fileno(), size, 1 << 10, alternate=False)
        merged: dict[str, Any] = {}
        for merge in (False, True):
            C.log(f"1 KiB stdout records, records mode, merge={merge}: c ...")
            merged["on" if merge else "off"] = throughput(native, small.fileno(), small_end, MODE_RECORDS,
                                                          args.repeat, merge)
        cursor = native.Cursor()  # what a client of a merging daemon receives, kept in a file
        native.relay(cursor, small.fileno(), small_end, joined.fileno(), MODE_RECORDS, BOTH, merge=True)
        joined_end = os.fstat(joined.fileno()).st_size
        merged["records_off"] = count_records(small.fileno(), small_end)
        merged["records_on"] = count_records(joined.fileno(), joined_end)
        streams = {
            "64 KiB records": (big.fileno(), big_end, big_end // ((64 << 10) + 20) * (64 << 10)),
            "1 KiB records": (small.fileno(), small_end, small_end // 1044 * 1024),
            "1 KiB records merged by relay": (joined.fileno(), joined_end, small_end // 1044 * 1024),
        }
        demuxed: dict[str, dict[str, float]] = {}
        for name, (fd, end, payload_bytes) in streams.items():
            for how in ("demux_from", "loop"):
                if demux_once(fd, end, how) != payload_bytes:
                    raise RuntimeError(f"{name}, {how}: the pipe did not get every payload")
                C.log(f"client demux, {name}: {how} ...")
                demuxed.setdefault(name, {})[how] = rate(functools.partial(demux_once, fd, end, how), end,
                                                         args.repeat)
    return merged, demuxed


def pump_once(pump: Any, log_fd: int, size: int, chunk: int) -> tuple[float, float]:
    """(seconds, CPU seconds of this thread) to pump ``size`` bytes written by dd in ``chunk`` pieces."""
    r, w = os.pipe()
    grow_pipe(r)
    os.set_blocking(r, False)
    dd = subprocess.Popen(["dd", "if=/dev/zero", f"bs={chunk}", f"count={size // chunk}", "status=none"],
                          stdout=w)
    os.close(w)
    poller = select.poll()
    poller.register(r, select.POLLIN)
    offset = 0
    try:
        t0, c0 = time.perf_counter(), time.thread_time()
        while True:
            poller.poll()
            n, eof = pump(r, log_fd, offset, 1, READ_BUDGET, True)
            offset += n
            if eof:
                break
        t1, c1 = time.perf_counter(), time.thread_time()
    finally:
        os.close(r)
        dd.wait()
    records = count_records(log_fd, offset)  # every byte arrived, as records
    if offset - 20 * records != size:
        raise RuntimeError(f"pump: {offset - 20 * records} payload bytes of {size} in the log")
    return t1 - t0, c1 - c0


def bench_pump(args: argparse.Namespace) -> dict[int, dict[str, dict[str, float]]]:
    """C and Python pump, alternating, on 64 KiB and 4 KiB writes."""
    size = args.size << 20
    out: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryFile() as f:
        for chunk in (64 << 10, 4 << 10):
            runs: dict[str, list[tuple[float, float]]] = {"c": [], "python": []}
            for i in range(args.repeat + 1):
                for impl, pump in (("c", native.pump), ("python", _fallback.pump)):
                    C.log(f"pump, {chunk >> 10} KiB writes: {impl} ...")
                    got = pump_once(pump, f.fileno(), size, chunk)
                    if i:  # the first round warms the file's pages
                        runs[impl].append(got)
            out[chunk] = {impl: {"cpu": statistics.median(c for _, c in v) / (size / (1 << 30)),
                                 "rate": statistics.median(size / t / 1e6 for t, _ in v)}
                          for impl, v in runs.items()}
    return out


def count_records(fd: int, end: int) -> int:
    """Records in [0, end), which must end exactly at ``end``."""
    pos = count = 0
    while pos < end:
        pos += 20 + int.from_bytes(os.pread(fd, 8, pos)[4:], "big")
        count += 1
    if pos != end:
        raise RuntimeError(f"the records run past {end:,} bytes, to {pos:,}")
    return count


if __name__ == "__main__":
    raise SystemExit(main())
