"""How long a persisted transition costs, and why it runs on the event loop.

Every state transition is saved before it is acknowledged. The store commits
on the calling thread in WAL mode with synchronous=NORMAL; this measures what
that costs per save (p50/p99) against a hop to a worker thread, the
alternative, in the same run.

    python benchmarks/bench_store.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from varpod.core.model import ContainerConfig, ContainerRecord, ContainerState, new_id
from varpod.core.states import State
from varpod.core.store import Store


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--saves", type=int, default=5000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="varpod-store-") as d:
        store = Store(str(Path(d) / "varpod.db"))
        recs = []
        for i in range(200):
            cfg = ContainerConfig(id=new_id(), name=f"c{i}", rootfs="/r", command=["/bin/true"])
            rec = ContainerRecord(cfg, ContainerState())
            store.add(rec)
            recs.append(rec)
        states = [State.RUNNING, State.STOPPING, State.STOPPED, State.EXITED]
        inline = []
        for i in range(a.saves):
            rec = recs[i % len(recs)].with_state(state=states[i % 4], pid=i)
            t = time.perf_counter()
            store.save(rec)
            inline.append(time.perf_counter() - t)
        event = msgspec.json.encode({"time": 0, "type": "container", "action": "start", "id": "x" * 64})
        events = []
        for _ in range(a.saves):
            t = time.perf_counter()
            store.append_event(event)
            events.append(time.perf_counter() - t)

        async def threaded() -> list[float]:
            out = []
            for i in range(a.saves // 5):
                rec = recs[i % len(recs)].with_state(state=states[i % 4], pid=i)
                t = time.perf_counter()
                await asyncio.to_thread(store.save, rec)
                out.append(time.perf_counter() - t)
            return out

        hop = asyncio.run(threaded())
        store.close()
    result = {}
    for name, samples in (("save_inline", inline), ("event_append_inline", events),
                          ("save_via_worker_thread", hop)):
        p50, p99 = percentiles(samples)
        result[name] = {"p50_us": round(p50 * 1e6, 1), "p99_us": round(p99 * 1e6, 1)}
    result["worker_thread_vs_inline_p50"] = round(
        result["save_via_worker_thread"]["p50_us"] / result["save_inline"]["p50_us"], 2)
    if a.json:
        print(json.dumps(result))
    else:
        print(f"{'what':<28}{'p50':>10}{'p99':>10}")
        for name in ("save_inline", "event_append_inline", "save_via_worker_thread"):
            print(f"{name:<28}{result[name]['p50_us']:>8} µs{result[name]['p99_us']:>8} µs")
        print(f"a worker-thread hop costs {result['worker_thread_vs_inline_p50']}x an inline save (p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
