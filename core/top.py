"""``top``: the processes of a container, with podman's (psgo's) AIX format descriptors.

Read from the host's ``/proc`` for the processes in the container's cgroup; PIDs are
shown as the container sees them (``hpid`` gives the host's). Descriptors that are not
psgo's (``-o pid,comm``, ``aux``) go to ``ps`` run inside the container, as podman does.
"""

from __future__ import annotations

import grp
import os
import pwd
import time
from collections.abc import Callable

from . import cgroups
from .errors import InvalidState, RuntimeFailed
from .model import ContainerRecord
from .paths import read_in_root
from .runtime import RuntimeRegistry
from .spec import ALL_CAPS
from .states import State
from .stats import STATS_STATES

DEFAULT_DESCRIPTORS = ["user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Proc:
    """One process as /proc shows it to the host, with the container's view of its IDs."""

    def __init__(self, host_pid: int, ctx: Context) -> None:
        self.host_pid = host_pid
        self.ctx = ctx
        base = f"/proc/{host_pid}"
        with open(f"{base}/stat") as f:
            stat = f.read()
        self.comm = stat[stat.index("(") + 1:stat.rindex(")")]
        self.stat = stat[stat.rindex(")") + 2:].split()
        self.status: dict[str, str] = {}
        with open(f"{base}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                self.status[key] = value.strip()
        with open(f"{base}/cmdline", "rb") as f:
            self.cmdline = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        self.pidns = _ns(host_pid)

    # stat fields after "(comm) ": 0 state, 1 ppid, 2 pgrp, 4 tty_nr, 11 utime, 12 stime,
    # 16 nice, 19 starttime, 20 vsize
    def field(self, i: int) -> int:
        return int(self.stat[i])

    @property
    def pid(self) -> int:
        return int(self.status.get("NSpid", str(self.host_pid)).split()[-1])

    def ids(self, key: str) -> list[str]:
        return self.status.get(key, "").split()

    def cpu_seconds(self) -> float:
        return (self.field(11) + self.field(12)) / CLK_TCK

    def started(self) -> float:
        return self.ctx.boot_time + self.field(19) / CLK_TCK

    def elapsed(self) -> float:
        return max(self.ctx.now - self.started(), 0.0)


class Context:
    """What every row needs once: the time, boot time, and the container's user names."""

    def __init__(self, rootfs: str) -> None:
        self.now = time.time()
        self.boot_time = _boot_time()
        self.users = _names(rootfs, "/etc/passwd")
        self.groups = _names(rootfs, "/etc/group")
        self.ns_pids: dict[int, tuple[str, int]] = {}  # host pid -> (pid ns, pid in it)

    def in_container(self, host_pid: int, pidns: str) -> int:
        """``host_pid`` as a process in namespace ``pidns`` sees it; 0 outside it (as the
        kernel shows a parent outside the namespace)."""
        if host_pid <= 0:
            return 0
        found = self.ns_pids.get(host_pid)
        if found is None:
            try:
                with open(f"/proc/{host_pid}/status") as f:
                    nspid = next((line.split()[-1] for line in f if line.startswith("NSpid:")), "0")
                found = (_ns(host_pid), int(nspid))
            except (OSError, ValueError):
                found = ("", 0)
            self.ns_pids[host_pid] = found
        return found[1] if found[0] == pidns else 0


def _ns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def _names(rootfs: str, path: str) -> dict[str, str]:
    data = read_in_root(rootfs, path) if rootfs else None
    out = {}
    for line in (data or b"").decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            out.setdefault(fields[2], fields[0])
    return out


# -- formatting as psgo (and Go's fmt) does --------------------------------------------------


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): ``0s``, ``512.3µs``, ``595.79ms``, ``1h2m3.5s``."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{sign}{text}{_fraction(rest, 10**9, 9)}s"


def _fraction(value: int, unit: int, digits: int) -> str:
    whole, frac = divmod(value, unit)
    return f"{whole}.{str(frac).rjust(digits, '0').rstrip('0')}" if frac else str(whole)


def _tty(tty_nr: int) -> str:
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if tty_nr == 0:
        return "?"
    if 136 <= major <= 143:
        return f"pts/{minor + (major - 136) * 256}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    return "?"


def _caps(mask_hex: str) -> str:
    mask = int(mask_hex or "0", 16)
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            full = (1 << (int(f.read()) + 1)) - 1
    except (OSError, ValueError):
        full = (1 << len(ALL_CAPS)) - 1
    if mask == full:
        return "full"
    names = sorted(cap[4:].lower() for bit, cap in enumerate(ALL_CAPS) if mask >> bit & 1)
    return ",".join(names) or "none"


def _user(names: dict[str, str], uid: str) -> str:
    return names.get(uid, uid)


def _host_user(uid: str) -> str:
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return uid


def _host_group(gid: str) -> str:
    try:
        return grp.getgrgid(int(gid)).gr_name
    except (KeyError, ValueError):
        return gid


def _label(p: Proc) -> str:
    try:
        with open(f"/proc/{p.host_pid}/attr/current", "rb") as f:
            return f.read().rstrip(b"\0\n").decode(errors="replace") or "?"
    except OSError:
        return "?"


def _seccomp(p: Proc) -> str:
    return {"0": "disabled", "1": "strict", "2": "filter"}.get(p.status.get("Seccomp", ""), "?")


def _stime(p: Proc) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(int(p.started())))


Field = Callable[[Proc], str]

# (code, normal, header, value): psgo's descriptors, in its order.
DESCRIPTORS: list[tuple[str, str, str, Field]] = [
    ("%C", "pcpu", "%CPU", lambda p: f"{100 * p.cpu_seconds() / p.elapsed():.3f}"
     if p.elapsed() > 0 else "0.000"),
    ("%G", "group", "GROUP", lambda p: _user(p.ctx.groups, p.ids("Gid")[1])),
    ("", "groups", "GROUPS", lambda p: ",".join(_user(p.ctx.groups, g) for g in p.ids("Groups"))),
    ("%P", "ppid", "PPID", lambda p: str(p.ctx.in_container(int(p.status.get("PPid", "0")),
                                                             p.pidns))),
    ("%U", "user", "USER", lambda p: _user(p.ctx.users, p.ids("Uid")[1])),
    ("", "uid", "UID", lambda p: p.ids("Uid")[1]),
    ("%a", "args", "COMMAND", lambda p: " ".join(p.cmdline) if p.cmdline else f"[{p.comm}]"),
    ("%c", "comm", "COMMAND", lambda p: p.comm),
    ("%g", "rgroup", "RGROUP", lambda p: _user(p.ctx.groups, p.ids("Gid")[0])),
    ("%n", "nice", "NI", lambda p: p.stat[16]),
    ("%p", "pid", "PID", lambda p: str(p.pid)),
    ("%r", "pgid", "PGID", lambda p: str(p.ctx.in_container(p.field(2), p.pidns))),
    ("%t", "etime", "ELAPSED", lambda p: go_duration(int(p.elapsed() * 1e9))),
    ("%u", "ruser", "RUSER", lambda p: _user(p.ctx.users, p.ids("Uid")[0])),
    ("%x", "time", "TIME", lambda p: go_duration(int(p.cpu_seconds() * 1e9))),
    ("%y", "tty", "TTY", lambda p: _tty(p.field(4))),
    ("%z", "vsz", "VSZ", lambda p: str(p.field(20) // 1024)),
    ("", "capamb", "AMBIENT CAPS", lambda p: _caps(p.status.get("CapAmb", "0"))),
    ("", "capinh", "INHERITED CAPS", lambda p: _caps(p.status.get("CapInh", "0"))),
    ("", "capprm", "PERMITTED CAPS", lambda p: _caps(p.status.get("CapPrm", "0"))),
    ("", "capeff", "EFFECTIVE CAPS", lambda p: _caps(p.status.get("CapEff", "0"))),
    ("", "capbnd", "BOUNDING CAPS", lambda p: _caps(p.status.get("CapBnd", "0"))),
    ("", "seccomp", "SECCOMP", _seccomp),
    ("", "label", "LABEL", _label),
    ("", "hpid", "HPID", lambda p: str(p.host_pid)),
    ("", "huser", "HUSER", lambda p: _host_user(p.ids("Uid")[1])),
    ("", "huid", "HUID", lambda p: p.ids("Uid")[1]),
    ("", "hgroup", "HGROUP", lambda p: _host_group(p.ids("Gid")[1])),
    ("", "hgroups", "HGROUPS", lambda p: ",".join(p.ids("Groups"))),
    ("", "rss", "RSS", lambda p: p.status.get("VmRSS", "0 kB").split()[0]),
    ("", "state", "STATE", lambda p: p.status.get("State", "?")[:1]),
    ("", "stime", "STIME", _stime),
]
_BY_NAME = {name: d for d in DESCRIPTORS for name in (d[0], d[1]) if name}


def descriptors(args: list[str]) -> list[tuple[str, str, str, Field]] | None:
    """psgo's descriptors for ``args`` (comma lists allowed); None if any is not one of them."""
    words = [w.strip() for a in args for w in a.split(",") if w.strip()] or DEFAULT_DESCRIPTORS
    found = [_BY_NAME.get(w) for w in words]
    return None if any(d is None for d in found) else found  # type: ignore[return-value]


def container_pids(pid: int, leaf: str) -> list[int]:
    """Host pids of the processes in the cgroup of process ``pid`` (the container's init)."""
    try:
        dirs = cgroups.controller_dirs(pid)
    except FileNotFoundError:
        return []
    for key in ("pids", "memory", "name=systemd", ""):
        where = dirs.get(key)
        if where is not None and os.path.basename(where) == leaf:
            try:
                with open(os.path.join(where, "cgroup.procs")) as f:
                    return sorted(int(x) for x in f.read().split())
            except OSError:
                return []
    return []


def table(host_pids: list[int], rootfs: str,
          descs: list[tuple[str, str, str, Field]]) -> tuple[list[str], list[list[str]]]:
    """Titles and one row per process still there when read, in container PID order."""
    ctx = Context(rootfs)
    procs = []
    for host_pid in host_pids:
        try:
            procs.append(Proc(host_pid, ctx))
        except (OSError, ValueError, IndexError):
            continue  # it exited while we read it
    procs.sort(key=lambda p: p.pid)
    rows = []
    for p in procs:
        try:
            rows.append([d[3](p) for d in descs])
        except (OSError, ValueError, IndexError):
            continue
    return [d[2] for d in descs], rows


def parse_ps(output: str, args: list[str]) -> tuple[list[str], list[list[str]]]:
    """``ps`` output from inside a container, without the line of that ps itself (podman's
    trick: drop lines that contain its arguments)."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return [], []
    titles = lines[0].split()
    own = " ".join(args)
    rows = [line.split(None, max(len(titles) - 1, 0)) for line in lines[1:]
            if not (own and own in line)]
    return titles, rows


async def top(rec: ContainerRecord, args: list[str],
              runtimes: RuntimeRegistry) -> tuple[list[str], list[list[str]]]:
    """The container's processes: psgo's descriptors read here, anything else by ``ps``."""
    if rec.state.state not in STATS_STATES or not rec.state.pid:
        raise InvalidState(f"container {rec.name} is {rec.state.state.value}; top needs a "
                           "running container", id=rec.id, state=rec.state.state.value)
    descs = descriptors(args)
    if descs is not None:
        return table(container_pids(rec.state.pid, rec.id), rec.config.rootfs, descs)
    if rec.state.state is not State.RUNNING:  # ps would join the frozen cgroup and hang there
        raise InvalidState(f"container {rec.name} is {rec.state.state.value}; ps(1) cannot run in "
                           "it (psgo's descriptors can still be read)", id=rec.id,
                           state=rec.state.state.value)
    try:
        done = await runtimes.get(rec.config.runtime).exec_output(rec.id, ["ps", *args])
    except RuntimeFailed as e:
        raise RuntimeFailed(f"{' '.join(args)[:100]!r} are not top descriptors, and executing "
                            f"ps(1) in container {rec.name} failed: {e.message}",
                            runtime=e.runtime) from None
    return parse_ps(done.stdout.decode(errors="replace"), args)
