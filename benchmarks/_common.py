"""Shared helpers for ``benchmarks/bench_*.py``.

A private daemon in a temp dir, a busybox rootfs, timing (medians of fixed
counts for container runs, ``timeit`` autorange for call loops), a table with
a "vs." column, one JSON object for ``--json``, podman detection, RSS of a pid,
and a bare msgspec+uvloop echo server to measure the RPC stack against.

Every ratio a benchmark prints is computed from figures taken in the same run:
absolute numbers move between machines and runs, ratios carry.

    python benchmarks/_common.py echo-server SOCKET   # the bare baseline server
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import mkrootfs  # noqa: E402

from varpod.core.errors import DaemonNotRunning  # noqa: E402
from varpod.rpc.client import Client  # noqa: E402

PING = "io.varpod.System.Ping"


def log(msg: str) -> None:
    """Progress goes to stderr: stdout carries the table, or the JSON object alone."""
    print(msg, file=sys.stderr, flush=True)


# -- clean-up ------------------------------------------------------------------------


def sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` clean-up runs."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def tempdir(stack: contextlib.ExitStack, prefix: str = "varpod-bench-") -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, path, ignore_errors=True)
    return path


def build_rootfs(path: Path) -> str:
    return mkrootfs.build(str(path))


# -- the daemon ---------------------------------------------------------------------------


class Daemon:
    """A private ``varpod serve`` under ``base``.

    It runs in its own session: a Ctrl-C on the terminal reaches the benchmark,
    which removes the containers through the daemon before stopping it.
    """

    def __init__(self, base: Path, log_level: str = "warning", env: dict[str, str] | None = None) -> None:
        self.base = base
        self.env = env  # added to the daemon's environment (e.g. VARPOD_NATIVE=python)
        self.root = str(base / "root")
        self.run_root = str(base / "run")
        self.socket = str(base / "run" / "varpod.sock")
        self.log_path = base / "daemon.log"
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None
        self.prefix: list[str] = []  # e.g. nsenter --net=FILE: the daemon runs in that namespace

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 15.0) -> Daemon:
        cmd = [*self.prefix, sys.executable, "-m", "varpod.rpc.cli", "serve", "--root", self.root,
               "--run-root", self.run_root, "--socket", self.socket, "--log-level", self.log_level]
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                         start_new_session=True,
                                         env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited early (status {self.proc.returncode}):\n{self.log()}")
            try:
                with Client(self.socket, timeout=5) as c:
                    c.ping()
                return self
            except DaemonNotRunning:
                time.sleep(0.02)
        raise RuntimeError(f"daemon did not come up in {timeout} s:\n{self.log()}")

    def client(self, **kw: Any) -> Client:
        return Client(self.socket, **kw)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def logged_problems(self) -> list[str]:
        """WARNING/ERROR lines and tracebacks the daemon logged (the first few)."""
        lines = [ln for ln in self.log().splitlines()
                 if " WARNING " in ln or " ERROR " in ln or " CRITICAL " in ln or ln.startswith("Traceback")]
        out = [f"daemon {self.base.name} logged: {ln[:300]}" for ln in lines[:5]]
        if len(lines) > 5:
            out.append(f"daemon {self.base.name} logged {len(lines) - 5} more such lines")
        return out

    def runtime_root(self) -> str:
        return os.path.join(self.run_root, "runtime", "runc")

    def runtime_containers(self) -> list[str]:
        root = self.runtime_root()
        return sorted(os.listdir(root)) if os.path.isdir(root) else []

    def remove_all(self) -> list[str]:
        """Remove every container through the daemon; returns the failures."""
        failures = []
        with self.client(timeout=60) as c:
            for ctr in c.list(all=True):
                try:
                    c.remove(ctr.Id, force=True, timeout=0)
                except Exception as e:
                    failures.append(f"removing {ctr.Id[:12]}: {e}")
        return failures

    def stop(self) -> list[str]:
        """Remove containers, stop the daemon, delete what runc still has. Returns problems."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            try:
                problems += self.remove_all()
            except Exception as e:
                problems.append(f"listing containers for clean-up: {e}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                problems.append("daemon did not exit within 20 s of SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        elif self.proc.returncode:
            problems.append(f"daemon had exited with status {self.proc.returncode}")
        self.proc = None
        problems += self.logged_problems()
        # Containers outlive their daemon by design; the benchmark's must not.
        for cid in self.runtime_containers():
            problems.append(f"runc still had container {cid[:12]} after clean-up")
            subprocess.run(["runc", "--root", self.runtime_root(), "delete", "--force", cid],
                           capture_output=True, check=False)
        return problems


def start_daemon(stack: contextlib.ExitStack, base: Path, problems: list[str],
                 env: dict[str, str] | None = None) -> Daemon:
    d = Daemon(base, env=env)
    stack.callback(lambda: problems.extend(d.stop()))
    return d.start()


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (or another ``/proc/PID/status`` field in kB, such as VmHWM) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def reset_peak_rss(pid: int) -> None:
    """Restart VmHWM (the peak RSS) from the current RSS: ``5`` in clear_refs (Linux 4.0+, root)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_rss_kb(pid: int) -> int:
    """The peak RSS since start-up or the last ``reset_peak_rss``, in KiB."""
    return rss_kb(pid, "VmHWM")


# -- the machine's memory ---------------------------------------------------------------------------

PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")


def page_reporting() -> dict[str, Any] | None:
    """The guest's free page reporting, when the kernel has it (None otherwise).

    With it, memory the guest frees is handed back to the host within about a
    second (here: any freed block of 2^order pages), and the next first touch of
    it costs a host fault: writing 1 GiB into a new file took 1.7-2.4 CPU-s here
    instead of 0.3. Every new page-cache page of a container's log pays that, and
    so does anything else that touches memory nobody touched lately.
    """
    if not PAGE_REPORTING.is_dir():
        return None
    out: dict[str, Any] = {}
    for f in sorted(PAGE_REPORTING.iterdir()):
        with contextlib.suppress(OSError):
            text = f.read_text().strip()
            out[f.name] = int(text) if text.lstrip("-").isdigit() else text
    return out


def settle_memory(quiet: float = 0.5, limit: float = 10.0) -> dict[str, float]:
    """Wait until memory freed by the previous case has been handed back to the host.

    Every timed case then starts as on a fresh machine: what it touches first is
    cold. Without free page reporting there is nothing to wait for but a moment.
    Returns how long it waited and how much was reported meanwhile.
    """
    counter = PAGE_REPORTING / "reported_kib"
    if not counter.exists():
        time.sleep(quiet)
        return {"waited_s": quiet, "reported_kib": 0}
    start = time.monotonic()
    first = last = int(counter.read_text())
    stable_since = start
    while time.monotonic() - start < limit:
        time.sleep(0.1)
        now = int(counter.read_text())
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            break
    return {"waited_s": round(time.monotonic() - start, 2), "reported_kib": last - first}


def cli_bytecode_cache(prefix: Path) -> str:
    """Let the CLI processes we start cache their bytecode, in our temp dir.

    With PYTHONDONTWRITEBYTECODE set (as here) and a source newer than its
    ``__pycache__`` entry (as during development), every CLI start compiles those
    modules again: ~15 ms a start here, which an installed varpod never pays. A
    private PYTHONPYCACHEPREFIX caches them without writing into the tree.
    Children inherit it; this process is unaffected (read at start-up).
    """
    was = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    return f"PYTHONPYCACHEPREFIX in the temp dir (PYTHONDONTWRITEBYTECODE was {was!r})"


# -- raw runc ------------------------------------------------------------------------------


def runc_bundle(path: Path, rootfs: str, command: list[str], network: str = "private") -> str:
    """A bundle whose config.json is the daemon's own, so raw runc does the same work."""
    import msgspec

    from varpod.core.model import ContainerConfig
    from varpod.core.network import etcfiles
    from varpod.core.spec import oci_config

    path.mkdir(parents=True, exist_ok=True)
    config = ContainerConfig(id=secrets.token_hex(32), name="bench-runc", rootfs=rootfs,
                             command=command, network=network)
    etcfiles.write(str(path), etcfiles.texts(config))  # what NetworkPart does for private mode
    spec = oci_config(config, str(path))
    spec["mounts"] += etcfiles.mounts(str(path), rootfs, owned=False, read_only=False)
    (path / "config.json").write_bytes(msgspec.json.encode(spec))
    return str(path)


def runc_cleanup(root: str) -> list[str]:
    """Force-delete whatever a benchmark left under a runc root; names them."""
    if not os.path.isdir(root):
        return []
    left = sorted(os.listdir(root))
    for cid in left:
        subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True, check=False)
    return [f"raw runc left {cid}" for cid in left]


def tool_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0].strip() if out else None


# -- podman -----------------------------------------------------------------------------------


def podman_path() -> str | None:
    return shutil.which("podman")


class Podman:
    """Runs podman commands and removes every container it created."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.created: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return [self.path, *args]

    def name(self) -> str:
        """A fresh container name, removed by ``cleanup`` whether or not it was ever created."""
        name = f"varpod-bench-{secrets.token_hex(4)}"
        self.created.append(name)
        return name

    def create(self, rootfs: str, command: list[str]) -> str:
        name = self.name()
        run(self.argv("create", "--name", name, "--network=none", "--rootfs", rootfs, *command))
        return name

    def cleanup(self) -> list[str]:
        problems = []
        if self.created:
            # --time 0: a running sleeper (PID 1 ignores SIGTERM) would hold this up 10 s.
            done = subprocess.run(self.argv("rm", "--force", "--ignore", "--time", "0", *self.created),
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                problems.append(f"podman rm failed: {done.stderr.strip()}")
            self.created.clear()
        return problems


# -- CPU placement ----------------------------------------------------------------------------

PIN_MODES = ("auto", "same", "cross", "none")


def _set_affinity(pid: int, cpus: set[int]) -> None:
    """Every thread of the process, not only its main one."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def placement(mode: str, workload: str) -> str:
    """``auto``: what the scheduler mostly does unpinned on an idle machine, made repeatable.

    One call at a time (``sequential``) keeps client and server on one CPU;
    calls in flight (``parallel``) spread them over two. Unpinned, runs flip
    between the two placements and the call rates by up to 2x; pinned, they
    move by a few percent. ``cross`` for sequential calls adds a cross-CPU
    wake-up (~65 us here) to every call on both sides of a ratio.
    """
    if mode != "auto":
        return mode
    return "same" if workload == "sequential" else "cross"


@contextlib.contextmanager
def pinned(mode: str, servers: list[int]) -> Iterator[str]:
    """Pin this process (the client) and the server processes; yields the placement in effect.

    ``same``: all on the first CPU; ``cross``: the client on the first, the
    servers on the second; ``none``: left to the scheduler.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "none" or (mode == "cross" and len(cpus) < 2):
        yield "none"
        return
    saved = {pid: os.sched_getaffinity(pid) for pid in [os.getpid(), *servers]}
    client_cpu = {cpus[0]}
    server_cpu = {cpus[1]} if mode == "cross" else client_cpu
    try:
        _set_affinity(os.getpid(), client_cpu)
        for pid in servers:
            _set_affinity(pid, server_cpu)
        yield mode
    finally:
        for pid, mask in saved.items():
            with contextlib.suppress(OSError):
                _set_affinity(pid, mask)


# -- timing -----------------------------------------------------------------------------------


def run(argv: list[str], **kw: Any) -> None:
    """Run a command to completion, output discarded; its failure is an error."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False, **kw)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of fn takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class Samples:
    """Durations in seconds; reported in ms."""

    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.values) * 1e3

    def summary(self) -> dict[str, float | int]:
        ms = sorted(v * 1e3 for v in self.values)
        q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
        return {"median_ms": round(statistics.median(ms), 3), "p25_ms": round(q[0], 3),
                "p75_ms": round(q[2], 3), "min_ms": round(ms[0], 3), "n": len(ms)}


def interleaved(cases: dict[str, Callable[[], Any]], iterations: int, warmup: int = 2) -> dict[str, Samples]:
    """Time each case ``iterations`` times, round-robin, so drift hits every case alike."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    out = {name: Samples() for name in cases}
    for _ in range(iterations):
        for name, fn in cases.items():
            out[name].add(timed(fn))
    return out


def rate(fn: Callable[[], Any], calls_per_run: int = 1, repeat: int = 5) -> float:
    """Calls per second: ``timeit`` autorange picks the count, the median of ``repeat`` runs."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    times = timer.repeat(repeat=repeat, number=number)
    return number * calls_per_run / statistics.median(times)


async def async_rate(round_fn: Callable[[int], Any], calls_per_unit: int, repeat: int = 5,
                     min_time: float = 0.2) -> float:
    """``rate`` for coroutines: ``await round_fn(n)`` does n units; autorange on n like timeit."""
    n = 1
    while True:
        t0 = time.perf_counter()
        await round_fn(n)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            break
        n = max(n * 2, int(n * min_time / max(elapsed, 1e-6) * 1.2))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await round_fn(n)
        times.append(time.perf_counter() - t0)
    return n * calls_per_unit / statistics.median(times)


# -- report --------------------------------------------------------------------------------------


def ratio(ours: float | None, base: float | None) -> float | None:
    if ours is None or base is None or base == 0:
        return None
    return ours / base


@dataclass
class Target:
    name: str
    text: str  # e.g. "client run --rm ≤ 1.5x raw runc"
    value: float | None
    op: str  # "<=" or ">=" or "<"
    limit: float
    unit: str = "x"

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return {"<=": self.value <= self.limit, ">=": self.value >= self.limit,
                "<": self.value < self.limit}[self.op]

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "value": rounded(self.value), "op": self.op, "limit": self.limit,
                "unit": self.unit, "pass": self.passed}


def rounded(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


class Table:
    """Rows of: what, varpod's figure, the baseline's name and figure, vs., target, verdict."""

    HEAD = ("what", "varpod", "baseline", "", "vs.", "target", "")

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: list[tuple[str, ...]] = []
        self.notes: list[str] = []

    def row(self, what: str, ours: str, base_name: str = "", base: str = "", vs: float | None = None,
            target: Target | None = None) -> None:
        verdict = ""
        tgt = ""
        if target is not None:
            sep = "" if target.unit == "x" else " "
            tgt = f"{_op_text(target.op)} {target.limit:,g}{sep}{target.unit}"
            verdict = {True: "ok", False: "MISS", None: "n/a"}[target.passed]
        self.rows.append((what, ours, base_name, base, "" if vs is None else f"{vs:.2f}x", tgt, verdict))

    def note(self, what: str, text: str) -> None:
        """A line (wrapped) under the table."""
        self.notes.append(textwrap.fill(f"{what}: {text}", width=110, subsequent_indent="    ",
                                        break_on_hyphens=False))

    def render(self) -> str:
        rows = [self.HEAD, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.HEAD))]
        right = {1, 3, 4}
        lines = [self.title]
        for i, r in enumerate(rows):
            cells = [v.rjust(w) if j in right else v.ljust(w) for j, (v, w) in enumerate(zip(r, widths,
                                                                                                strict=True))]
            lines.append("  ".join(cells).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join([*lines, *self.notes])


def _op_text(op: str) -> str:
    return {"<=": "≤", ">=": "≥", "<": "<"}[op]


def fmt_ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} ms"


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}/s"


def fmt_kb(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} KB"


def cpu_pressure() -> float | None:
    """PSI "some avg10": the share of the last 10 s in which runnable work waited for a CPU."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].partition("=")[2])
    except (OSError, IndexError, ValueError):
        return None


def busy(samples: list[dict[str, Any]]) -> str | None:
    """A warning when something else was using the CPUs: the figures are then noisy."""
    worst = max((x["cpu_pressure_avg10"] for x in samples if x.get("cpu_pressure_avg10") is not None),
                default=None)
    if worst is not None and worst > 10:
        return (f"other work was competing for the CPUs (PSI cpu some avg10 up to {worst:.0f}%): "
                "figures are noisy; ratios hold better than absolute numbers")
    return None


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(v) - v[3] - v[4], sum(v)


def _psi_some_total_us() -> int | None:
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().split()[4].partition("=")[2])
    except (OSError, IndexError, ValueError):
        return None


def quiet_sample(window: float = 0.25) -> dict[str, float | None]:
    """How busy the machine is while the caller sleeps ``window`` seconds.

    For benchmarks that load both CPUs themselves, PSI's 10 s average mostly
    measures their own previous run; a sample taken while they are idle (between
    runs) sees other work: other processes, and the kernel writing back what
    earlier runs wrote. ``busy_pct`` is of all CPUs (50 = one CPU fully used).
    """
    b0, t0 = _cpu_jiffies()
    p0 = _psi_some_total_us()
    time.sleep(window)
    b1, t1 = _cpu_jiffies()
    p1 = _psi_some_total_us()
    return {"busy_pct": round(100 * (b1 - b0) / max(t1 - t0, 1), 1),
            "psi_some_pct": None if p0 is None or p1 is None else round((p1 - p0) / (window * 1e4), 1)}


def busy_while_idle(samples: list[dict[str, Any]]) -> str | None:
    """A warning when ``quiet_sample``s found the CPUs in use by other work."""
    busy = sorted(x["busy_pct"] for x in samples if x.get("busy_pct") is not None)
    if not busy:
        return None
    med, worst = statistics.median(busy), busy[-1]
    if med > 15 or worst > 50:
        return (f"the CPUs were busy while this benchmark sat idle between runs (other processes, or the "
                f"kernel finishing earlier runs' work: {med:.0f}% of all CPUs in the median sample, up to "
                f"{worst:.0f}%): figures are noisy; ratios hold better than absolute numbers")
    return None


def load_now() -> dict[str, Any]:
    return {"loadavg_1m": os.getloadavg()[0], "cpu_pressure_avg10": cpu_pressure()}


def cli_argv() -> list[str]:
    """The `varpod` script installed beside this interpreter (what a user runs), else ``-m``."""
    script = Path(sys.executable).with_name("varpod")
    return [str(script)] if script.exists() else [sys.executable, "-m", "varpod.rpc.cli"]


class Phases:
    """What every benchmark keeps: its arguments, exit stack and temporary directory, the
    problems it met, and the machine's load as each phase began. A failing phase is
    reported and the others still run."""

    def __init__(self, args: Any, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.problems: list[str] = []
        self.load: list[dict[str, Any]] = []
        self.base = tempdir(stack)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        log(f"-- {name}")
        self.load.append({"phase": name, **load_now()})
        try:
            yield
        except Exception as e:
            import traceback

            traceback.print_exc(file=sys.stderr)
            self.problems.append(f"{name}: {type(e).__name__}: {e}")

    def note_problems(self, tab: Table) -> None:
        """The load warning and every problem, under the table."""
        warning = busy(self.load)
        if warning:
            tab.note("WARNING", warning)
        for p in self.problems:
            tab.note("PROBLEM", p)

    def machine_report(self) -> dict[str, Any]:
        """The report's "machine": what it is and how loaded it was, up to now."""
        self.load.append({"phase": "end", **load_now()})
        return {**machine(), "load": self.load, "busy": busy(self.load)}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "page_reporting": page_reporting(),
        "transparent_hugepage": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "runc": tool_version(["runc", "--version"]),
        "podman": tool_version([podman_path(), "--version"]) if podman_path() else None,
    }


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    models = (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
    return next(models, None)


def emit(report: dict[str, Any], table: Table, as_json: bool) -> None:
    """The table on stdout, or (``--json``) the table on stderr and the object alone on stdout."""
    if as_json:
        log(table.render())
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        print(table.render())


# -- the bare RPC baseline ------------------------------------------------------------------------


def echo_server_main(path: str) -> None:
    """asyncio Protocol on uvloop: 4-byte big-endian length + msgpack ``{method, parameters}``
    in, ``{parameters: {pong}}`` out. Nothing else: the floor our RPC stack is measured against."""
    import asyncio

    import msgspec
    import uvloop

    class Call(msgspec.Struct):
        method: str
        parameters: dict = {}

    decode = msgspec.msgpack.Decoder(Call).decode
    encode = msgspec.msgpack.Encoder().encode

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buf = bytearray()

        def data_received(self, data: bytes) -> None:
            buf = self.buf
            buf += data
            out = []
            pos = 0
            while len(buf) - pos >= 4:
                n = int.from_bytes(buf[pos:pos + 4], "big")
                if len(buf) - pos - 4 < n:
                    break
                call = decode(buf[pos + 4:pos + 4 + n])
                body = encode({"parameters": {"pong": call.parameters.get("ping", "pong")}})
                out.append(len(body).to_bytes(4, "big") + body)
                pos += 4 + n
            del buf[:pos]
            if out:
                self.transport.write(b"".join(out))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(Echo, path)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with server:
            await stop

    uvloop.run(main())


@dataclass
class EchoServer:
    path: str
    pid: int


@contextlib.contextmanager
def echo_server(base: Path) -> Iterator[EchoServer]:
    """The bare server in a subprocess of its own."""
    path = str(base / "echo.sock")
    proc = subprocess.Popen([sys.executable, __file__, "echo-server", path], stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bare echo server did not start")
            time.sleep(0.01)
        yield EchoServer(path, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class BareClient:
    """Blocking msgspec socket client: as little as a client can do (echo server or daemon)."""

    def __init__(self, path: str) -> None:
        import socket

        import msgspec

        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.decode
        self._buf = b""

    def close(self) -> None:
        self._sock.close()

    def _frame(self, method: str, params: dict) -> bytes:
        body = self._encode({"method": method, "parameters": params})
        return len(body).to_bytes(4, "big") + body

    def _reply_body(self) -> bytes:
        buf = self._buf
        while True:
            if len(buf) >= 4:
                end = 4 + int.from_bytes(buf[:4], "big")
                if len(buf) >= end:
                    self._buf = buf[end:]
                    return buf[4:end]
                chunks = [buf]
                have = len(buf)
                while have < end:  # a large reply: collect, then join once
                    data = self._sock.recv(max(end - have, 1 << 16))
                    if not data:
                        raise ConnectionError("the server closed the connection")
                    chunks.append(data)
                    have += len(data)
                buf = b"".join(chunks)
                continue
            data = self._sock.recv(1 << 16)  # 1 MiB: glibc would mmap and unmap it every call
            if not data:
                raise ConnectionError("the server closed the connection")
            buf += data

    def _reply(self) -> Any:
        return self._decode(self._reply_body())["parameters"]

    def ping(self) -> str:
        self._sock.sendall(self._frame(PING, {}))
        return self._reply()["pong"]

    def call(self, method: str, params: dict) -> Any:
        self._sock.sendall(self._frame(method, params))
        return self._decode(self._reply_body())["parameters"]

    def call_bytes(self, method: str, params: dict) -> bytes:
        """The reply undecoded: what the server alone costs."""
        self._sock.sendall(self._frame(method, params))
        return self._reply_body()

    def pipeline(self, n: int) -> list[Any]:
        self._sock.sendall(self._frame(PING, {}) * n)
        return [self._reply() for _ in range(n)]


async def bare_inflight_rate(path: str, tasks: int, repeat: int = 5) -> float:
    """Pings/s with ``tasks`` coroutines sharing one asyncio connection (replies in order)."""
    import asyncio
    from collections import deque

    import msgspec

    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.decode
    loop = asyncio.get_running_loop()
    waiting: deque[asyncio.Future] = deque()

    class Conn(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data
            pos = 0
            while len(buf) - pos >= 4:
                end = pos + 4 + int.from_bytes(buf[pos:pos + 4], "big")
                if len(buf) < end:
                    break
                fut = waiting.popleft()
                if not fut.done():  # cancelled by a Ctrl-C
                    fut.set_result(decode(buf[pos + 4:end])["parameters"])
                pos = end
            self.buf = buf[pos:]

    transport, _ = await loop.create_unix_connection(Conn, path)

    async def ping() -> Any:
        body = encode({"method": PING, "parameters": {}})
        fut = loop.create_future()
        waiting.append(fut)
        transport.write(len(body).to_bytes(4, "big") + body)
        return await fut

    async def worker(n: int) -> None:
        for _ in range(n):
            await ping()

    async def round_fn(n: int) -> None:
        await asyncio.gather(*(worker(n) for _ in range(tasks)))

    try:
        return await async_rate(round_fn, tasks, repeat=repeat)
    finally:
        transport.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "echo-server":
        echo_server_main(sys.argv[2])
    else:
        raise SystemExit(__doc__)
