"""Resource usage of running containers, read from their cgroups and network namespaces.

CPU time, memory, pids and block I/O come from the container's cgroup (v1 controller
files, or the v2 ones), network I/O from ``/proc/<pid>/net/dev`` (the interfaces of the
container's network namespace, loopback left out as podman does). CPU % is the CPU
time used between two samples over the wall time between them; a first sample is
measured from the container's start, as podman's is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import msgspec

from . import cgroups
from .errors import InvalidState
from .model import ContainerRecord
from .states import State

# States whose processes can be read; others are left out (or refused when named).
STATS_STATES = (State.RUNNING, State.PAUSED, State.STOPPING)
UNLIMITED = 1 << 62  # v1 reports "no memory limit" as a number near 2**63


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    time: int  # ns since the epoch
    cpu_ns: int = 0
    mem_usage: int = 0
    mem_limit: int = 0
    pids: int = 0
    block_read: int = 0
    block_write: int = 0
    net_rx: int = 0
    net_tx: int = 0


class ContainerStats(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    pod: str  # the pod's ID, "" outside a pod
    cpu_percent: float  # since the previous sample (the first: since the start)
    avg_cpu_percent: float  # since the start
    cpu_ns: int  # CPU time used since the start
    system_ns: int  # when sampled (ns since the epoch)
    up_ns: int  # running for
    mem_usage: int
    mem_limit: int
    mem_percent: float
    pids: int
    block_read: int
    block_write: int
    net_input: int
    net_output: int


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _int(path: str, default: int = 0) -> int:
    try:
        text = _read(path).strip()
    except OSError:
        return default
    if text == "max":
        return default
    try:
        return int(text)
    except ValueError:
        return default


def _keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat) -> dict."""
    out = {}
    try:
        for line in _read(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def host_memory() -> int:
    """Bytes of RAM: the limit of a container without one (podman caps at it too)."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def parse_net_dev(text: str) -> tuple[int, int]:
    """Received and sent bytes over the interfaces in ``/proc/<pid>/net/dev``, except lo."""
    rx = tx = 0
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def parse_blkio_v1(text: str) -> tuple[int, int]:
    """``blkio.throttle.io_service_bytes``: ``MAJ:MIN Read|Write|... N`` lines."""
    read = write = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            if fields[1] == "Read":
                read += int(fields[2])
            elif fields[1] == "Write":
                write += int(fields[2])
    return read, write


def parse_io_stat_v2(text: str) -> tuple[int, int]:
    """``io.stat``: ``MAJ:MIN rbytes=N wbytes=N ...`` lines."""
    read = write = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes" and value.isdigit():
                read += int(value)
            elif key == "wbytes" and value.isdigit():
                write += int(value)
    return read, write


def read_sample(pid: int, leaf: str = "", *, now: int | None = None,
                mounts: list[cgroups.Hierarchy] | None = None) -> Sample:
    """Usage of the cgroup of process ``pid`` (ProcessLookupError if it is gone).

    ``leaf``: the name the cgroup must end with (the container's ID), so that a pid
    reused by another process after the container exited is never read as it.
    """
    try:
        dirs = cgroups.controller_dirs(pid, mounts)
        # The host's interfaces are not the container's traffic (--network host): none counted.
        own_netns = os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        with open(f"/proc/{pid}/net/dev") as f:
            net = f.read() if own_netns else ""
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    if leaf and not any(os.path.basename(d) == leaf for d in dirs.values()):
        raise ProcessLookupError(pid)
    v2 = dirs.get("")
    values: dict[str, int] = {}
    cpuacct = dirs.get("cpuacct")
    if cpuacct is not None and cpuacct != v2:
        values["cpu_ns"] = _int(os.path.join(cpuacct, "cpuacct.usage"))
    elif "cpu" in dirs:
        values["cpu_ns"] = _keyed(os.path.join(dirs["cpu"], "cpu.stat")).get("usage_usec", 0) * 1000
    memory = dirs.get("memory")
    total = host_memory()
    if memory is not None and memory != v2:
        usage = _int(os.path.join(memory, "memory.usage_in_bytes"))
        inactive = _keyed(os.path.join(memory, "memory.stat")).get("total_inactive_file", 0)
        limit = _int(os.path.join(memory, "memory.limit_in_bytes"), UNLIMITED)
    elif memory is not None:
        usage = _int(os.path.join(memory, "memory.current"))
        inactive = _keyed(os.path.join(memory, "memory.stat")).get("inactive_file", 0)
        limit = _int(os.path.join(memory, "memory.max"), UNLIMITED)
    else:
        usage = inactive = 0
        limit = UNLIMITED
    # As docker and podman count it: page cache that is cheap to drop is not "used".
    values["mem_usage"] = usage - inactive if inactive < usage else usage
    values["mem_limit"] = min(limit, total) if total else limit
    if "pids" in dirs:
        values["pids"] = _int(os.path.join(dirs["pids"], "pids.current"))
    blkio, io = dirs.get("blkio"), dirs.get("io")
    try:
        if blkio is not None and blkio != v2:
            path = os.path.join(blkio, "blkio.throttle.io_service_bytes_recursive")
            if not os.path.exists(path):
                path = os.path.join(blkio, "blkio.throttle.io_service_bytes")
            values["block_read"], values["block_write"] = parse_blkio_v1(_read(path))
        elif io is not None:
            values["block_read"], values["block_write"] = parse_io_stat_v2(
                _read(os.path.join(io, "io.stat")))
    except OSError:
        pass
    values["net_rx"], values["net_tx"] = parse_net_dev(net)
    return Sample(time=time.time_ns() if now is None else now, **values)


def compute(rec: ContainerRecord, cur: Sample, prev: Sample | None) -> ContainerStats:
    """Stats from a sample and the one before it (None: measure from the container's start)."""
    # From when the runtime was asked to create the process: its cgroup's CPU time
    # includes the runtime's own set-up, which a window from started_at would inflate.
    launched = rec.state.launched_at or rec.state.started_at or cur.time
    lifetime = max(cur.time - launched, 0)
    up = max(cur.time - (rec.state.started_at or cur.time), 0)
    if prev is None:
        cpu_delta, wall_delta = cur.cpu_ns, lifetime
    else:
        cpu_delta, wall_delta = cur.cpu_ns - prev.cpu_ns, cur.time - prev.time
    return ContainerStats(
        id=rec.id, name=rec.name, pod=rec.config.pod,
        cpu_percent=_percent(cpu_delta, wall_delta), avg_cpu_percent=_percent(cur.cpu_ns, lifetime),
        cpu_ns=cur.cpu_ns, system_ns=cur.time, up_ns=up, mem_usage=cur.mem_usage,
        mem_limit=cur.mem_limit, mem_percent=_percent(cur.mem_usage, cur.mem_limit),
        pids=cur.pids, block_read=cur.block_read, block_write=cur.block_write,
        net_input=cur.net_rx, net_output=cur.net_tx)


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole > 0 and part > 0 else 0.0


class StatsReader:
    """Samples containers again and again (one reader per stream: CPU % needs the last sample)."""

    def __init__(self) -> None:
        self._last: dict[str, Sample] = {}

    def read(self, recs: Iterable[ContainerRecord]) -> list[ContainerStats]:
        """Stats of the containers that can be read; those that stopped meanwhile are left out."""
        out, last = [], {}
        for rec in recs:
            if rec.state.state not in STATS_STATES or not rec.state.pid:
                continue
            try:
                cur = read_sample(rec.state.pid, rec.id)
            except ProcessLookupError:
                continue
            out.append(compute(rec, cur, self._last.get(rec.id)))
            last[rec.id] = cur
        self._last = last
        return out


def check_readable(rec: ContainerRecord) -> ContainerRecord:
    """A container named for stats must be running (podman refuses the others too)."""
    if rec.state.state not in STATS_STATES:
        raise InvalidState(f"container {rec.name} is {rec.state.state.value}; only a running "
                           "container has stats", id=rec.id, state=rec.state.state.value)
    return rec
