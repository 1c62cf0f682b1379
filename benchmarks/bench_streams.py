"""Streams benchmark: attach, log replay, tail, follow, exec and TTY against raw runc, pipes, ptys and podman.

    .venv/bin/python benchmarks/bench_streams.py [--runs N] [--quick] [--json] [--phases LIST] [sizes...]

Measured in one run, with every ratio taken within it (medians of ``--runs``
interleaved round-robin runs, fixed counts: these cases take seconds each):

* Attach throughput: a container writes ``--attach-mib`` (1 GiB) with
  ``dd if=/dev/zero bs=64k`` to stdout. Bytes/s through the client library
  (create, ``attach(start=True)``, count, remove), through the CLI
  (``varpod run --rm`` into a pipe the benchmark reads) and through the client
  on a second daemon with ``VARPOD_NATIVE=python`` (the pure-Python copy path),
  against ``runc run`` of a bundle whose config.json is the daemon's own, into
  the same kind of pipe (the limit), and ``podman run --rm --network=none``.
  varpod writes the log on the way (attach reads from it): that is the point.
* Alone: the client attach again, ``--alone-runs`` times, alternating only with
  the log's floor (``dd`` of the same GiB into the daemon's root, then ``rm``):
  the daemon's CPU per GiB apart from the state the attach phase's other cases
  (raw runc, tee, the CLI, a second daemon, podman) leave the memory in.
* Log replay: 1,000,000 lines of 100 bytes (busybox awk). ``varpod logs NAME
  > /dev/null`` and client ``logs()`` iteration against ``cat`` of the same
  100 MB as a text file (the limit) and ``podman logs`` of a podman container
  with the same producer. Payload bytes per second.
* Tail: ``logs(tail=10)`` (client and CLI) on the 100 MB log and on a
  ``--tail-mib`` (1 GiB) one; latency and the daemon's peak RSS during the
  calls (VmHWM, reset before each call) must not depend on the log size.
* Follow: ``varpod logs -f`` started right after ``varpod run -d`` of the
  1,000,000-line producer must receive every line; ``podman logs -f`` in the
  same setting is reported beside it.
* Exec: sequential ``exec /bin/true`` through the client library (exec_create,
  exec_start(attach=True), read to the end) against ``runc exec`` into the same
  container; the CLI against ``podman exec``; execs/s with ``--exec-clients``
  threads each holding its own Client, against as many threads running
  ``runc exec``.
* TTY: ``--tty-mib`` (256 MiB) of ``head -c /dev/zero`` through ``varpod run
  -t --rm`` into a pty the benchmark reads, against a raw pty relay of the same
  shape (``head`` on a pty whose master util-linux ``script`` copies into the
  benchmark's pty: two pty hops, as for any engine), against ``head`` writing
  straight into the benchmark's pty (one hop: the limit) and ``podman run -t``.

Beside the rates, the CPU seconds per GiB that the daemon, the CLI process and
the client library used (wall-clock rates move with whatever else the machine
runs; CPU per byte moves less and says which process a gap is in). CLI
processes cache their bytecode in the temp dir (``_common.cli_bytecode_cache``).

Run as root (it drives runc). Targets are measured here, never asserted in tests:
a missed target does not change the exit status; a failed phase, lost data, a
daemon error in its log or anything left behind after clean-up makes it 1.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import pty
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

from varpod.rpc.client import Client

MiB = 1 << 20
LINE = 100  # bytes per log line, newline included
DD_BLOCK = 64 << 10
PHASES = ("attach", "alone", "logs", "tail", "follow", "exec", "tty")
TAIL_LINES = 10
READ_SIZE = 1 << 20


def awk_producer(lines: int) -> list[str]:
    """``lines`` lines of 99 digits and a newline; busybox awk does 1M in about a second."""
    return ["awk", f'BEGIN{{for(i=0;i<{lines};i++) printf "%099d\\n", i}}']


def yes_producer(size: int) -> list[str]:
    """About ``size`` bytes of 100-byte lines, cut at a line end (tail needs newlines)."""
    return ["/bin/sh", "-c", f"yes $(printf %099d 0) | head -c {size // LINE * LINE}"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, help="timed runs per throughput case (default 3; 1 with --quick)")
    p.add_argument("--attach-mib", type=int, help="attach stream size in MiB (default 1024; 64 with --quick)")
    p.add_argument("--lines", type=int,
                   help="log lines for replay and follow (default 1,000,000; 100,000 with --quick)")
    p.add_argument("--tail-mib", type=int,
                   help="size of the big log for --tail (default 1024; 128 with --quick)")
    p.add_argument("--tail-iterations", type=int, help="tail calls per log (default 20; 5 with --quick)")
    p.add_argument("--exec-iterations", type=int,
                   help="sequential execs per case (default 30; 5 with --quick)")
    p.add_argument("--exec-clients", type=int, default=8, help="concurrent exec clients (default 8)")
    p.add_argument("--exec-per-client", type=int,
                   help="execs per concurrent client and round (default 25; 4 with --quick)")
    p.add_argument("--alone-runs", type=int,
                   help="runs of the alone phase: attach through the client, then the log's floor, "
                        "nothing else (default 7; 2 with --quick)")
    p.add_argument("--tty-mib", type=int, help="TTY stream size in MiB (default 256; 16 with --quick)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)} (default all)")
    p.add_argument("--no-podman", action="store_true", help="skip podman even when it is installed")
    p.add_argument("--quick", action="store_true", help="a fast smoke run: small sizes, one run")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    a = p.parse_args(argv)
    q = a.quick
    a.runs = a.runs or (1 if q else 3)
    a.attach_size = (a.attach_mib or (64 if q else 1024)) * MiB
    a.lines = a.lines or (100_000 if q else 1_000_000)
    a.tail_size = (a.tail_mib or (128 if q else 1024)) * MiB
    a.tail_iterations = a.tail_iterations or (5 if q else 20)
    a.exec_iterations = a.exec_iterations or (5 if q else 30)
    a.exec_per_client = a.exec_per_client or (4 if q else 25)
    a.alone_runs = a.alone_runs or (2 if q else 7)
    a.tty_size = (a.tty_mib or (16 if q else 256)) * MiB
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    unknown = set(a.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if a.attach_size % DD_BLOCK:
        p.error("--attach-mib must make whole 64 KiB blocks")
    return a


# -- moving bytes ------------------------------------------------------------------------


def drain(fd: int, count_lines: bool = False) -> tuple[int, int]:
    """Read a pipe to EOF into one reused buffer; (bytes, newlines)."""
    buf = bytearray(READ_SIZE)
    total = lines = 0
    while n := os.readv(fd, [buf]):
        total += n
        if count_lines:
            lines += buf.count(b"\n", 0, n)
    return total, lines


def drain_pty(master: int) -> int:
    """Read a pty master until every slave is closed (EIO); the byte count."""
    buf = bytearray(READ_SIZE)
    total = 0
    while True:
        try:
            n = os.readv(master, [buf])
        except OSError as e:
            if e.errno == errno.EIO:
                return total
            raise
        if not n:
            return total
        total += n


@dataclass
class Piped:
    seconds: float
    nbytes: int
    lines: int
    returncode: int
    stderr: str


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def piped(argv: list[str], *, count_lines: bool = False, stdout_null: bool = False) -> Piped:
    """Run argv with stdout into a pipe this process drains (or /dev/null); timed spawn to exit."""
    with tempfile.TemporaryFile() as err:  # a file: a chatty stderr cannot block the pipe reader
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL if stdout_null else subprocess.PIPE, stderr=err)
        try:
            nbytes, lines = (0, 0) if stdout_null else drain(proc.stdout.fileno(), count_lines)
            rc = proc.wait()
            seconds = time.perf_counter() - t0
        finally:
            _stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        err.seek(0)
        return Piped(seconds, nbytes, lines, rc, err.read().decode(errors="replace").strip()[-500:])


def open_pty(rows: int = 24, cols: int = 80) -> tuple[int, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def through_pty(argv: list[str]) -> Piped:
    """Run argv with stdin and stdout on a fresh pty's slave; read the master to the end."""
    master, slave = open_pty()
    proc = None
    try:
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=err, start_new_session=True)
            os.close(slave)
            slave = -1
            nbytes = drain_pty(master)
            rc = proc.wait()
            seconds = time.perf_counter() - t0
            err.seek(0)
            return Piped(seconds, nbytes, 0, rc, err.read().decode(errors="replace").strip()[-500:])
    finally:
        if proc is not None:
            _stop(proc)
        os.close(master)
        if slave >= 0:
            os.close(slave)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> tuple[float, float]:
    """(this process, its waited-for children): user + system CPU seconds."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class CpuMeter:
    """CPU seconds one case took in the daemon, in this process and in the children it waited for.

    Wall-clock rates move with whatever else the machine runs; CPU per byte moves
    much less, and says which process a gap is in (there are only two CPUs).
    """

    def __init__(self, daemon_pid: int) -> None:
        self.pid = daemon_pid

    def __enter__(self) -> CpuMeter:
        self._d0 = cpu_seconds(self.pid)
        self._self0, self._kids0 = own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        me, kids = own_cpu()
        self.daemon = cpu_seconds(self.pid) - self._d0
        self.me = me - self._self0
        self.children = kids - self._kids0


def bytes_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds


def fmt_mbs(v: float | None) -> str:
    return "—" if v is None else f"{v / 1e6:,.0f} MB/s"


def fmt_lines(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} lines"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- the benchmark ------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        self.args = args
        self.stack = stack
        self.problems: list[str] = []
        self.medians: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        self.health: dict[str, Any] = {}
        self.load: list[dict[str, Any]] = []
        self.quiet: list[dict[str, Any]] = []  # the machine while we sit idle between runs
        self.settled: list[dict[str, Any]] = []  # waits for freed memory to go back to the host
        self.base = C.tempdir(stack)
        self.bytecode = C.cli_bytecode_cache(self.base / "pycache")
        self.cli = self._cli_argv()
        path = None if args.no_podman else C.podman_path()
        self.podman = C.Podman(path) if path else None
        if self.podman is not None:
            stack.callback(lambda: self.problems.extend(self.podman.cleanup()))
        self._names = 0
        self.local = stack
        self.kept: list[str] = []  # containers later phases use; removed by finish()
        self._cpu: dict[str, list[float]] = {}

    @staticmethod
    def _cli_argv() -> list[str]:
        script = Path(sys.executable).with_name("varpod")
        return [str(script)] if script.exists() else [sys.executable, "-m", "varpod.rpc.cli"]

    def name(self, what: str) -> str:
        self._names += 1
        return f"bench-{what}-{self._names}"

    def varpod(self, *args: str) -> list[str]:
        return [*self.cli, "--socket", self.daemon.socket, *args]

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A failing phase is reported and the others still run."""
        C.log(f"-- {name}")
        self.load.append({"phase": name, **C.load_now()})
        self.quiet.append({"before": name, **C.quiet_sample(1.0)})
        try:
            with contextlib.ExitStack() as self.local:  # connections of this phase
                yield
        except Exception as e:
            traceback.print_exc(file=sys.stderr)
            self.problems.append(f"{name}: {type(e).__name__}: {e}")

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            C.log(f"PROBLEM: {problem}")
            self.problems.append(problem)

    def keep(self, key: str, values: list[float], fmt: Callable[[float], Any] = C.rounded) -> None:
        """The median as the figure, every run in ``samples``."""
        self.medians[key] = median(values)
        self.samples[key] = [fmt(v) for v in values]

    # -- set-up ----------------------------------------------------------------------

    def setup(self) -> None:
        C.log(f"temp dir {self.base}")
        self.rootfs = C.build_rootfs(self.base / "rootfs")
        self.daemon = C.start_daemon(self.stack, self.base / "daemon", self.problems)
        self.runc_root = str(self.base / "runc-root")
        self.stack.callback(lambda: self.problems.extend(C.runc_cleanup(self.runc_root)))
        # Compile what the CLI imports once, so no timed CLI run pays for it.
        C.run([sys.executable, "-c", "import varpod.rpc.cli, varpod.rpc.terminal, varpod.rpc.framing, "
                                     "varpod.rpc.minipack, varpod.native"])
        C.run(self.varpod("run", "--rm", "--rootfs", self.rootfs, "/bin/true"))
        with self.daemon.client() as c:
            self.health["native"] = c.info().native
            # Counted with one connection open, as at the end; after a first run, which opens
            # what stays open (the pump's staging pipe).
            self.fds0, self.rss0 = C.fd_count(self.daemon.pid), C.rss_kb(self.daemon.pid)
        self.check(self.health["native"] == "c",
                   f"the daemon runs the {self.health['native']} copy path, not the C one: the native "
                   "figures are not the compiled module's")

    def python_daemon(self) -> C.Daemon:
        d = C.start_daemon(self.stack, self.base / "daemon-python", self.problems,
                           env={"VARPOD_NATIVE": "python"})
        with d.client() as c:
            impl = c.info().native
        if impl != "python":
            raise RuntimeError(f"VARPOD_NATIVE=python did not take: the daemon reports native={impl}")
        return d

    def round_robin(self, cases: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
        """Each case ``runs`` times, alternating, so drift hits every case alike.

        Every other round goes in reverse order, so that no case always follows the same
        one: with two daemons attaching in turn, the first of the pair paid up to 0.3 CPU-s
        per GiB more, whichever daemon it was (the memory the previous case freed).
        """
        got: dict[str, list[float]] = {k: [] for k in cases}
        for i in range(runs):
            for key, fn in (reversed(cases.items()) if i % 2 else cases.items()):
                # Every case starts on memory as a fresh machine has it (see _common.settle_memory):
                # whether the previous case's freed pages were still backed decided the order of
                # the results before.
                self.settled.append({"before": f"{key} {i + 1}", **C.settle_memory()})
                self.quiet.append({"before": f"{key} {i + 1}", **C.quiet_sample()})
                C.log(f"   {key} ({i + 1}/{runs})")
                got[key].append(fn())
        return got

    # -- attach -------------------------------------------------------------------------

    def dd_argv(self) -> list[str]:
        size = self.args.attach_size
        return ["dd", "if=/dev/zero", f"bs={DD_BLOCK // 1024}k", f"count={size // DD_BLOCK}"]

    def floor_file(self) -> str:
        return os.path.join(self.daemon.root, "bench-floor.log")  # where the daemon keeps logs

    def new_file(self, cpu: str) -> float:
        """The machine's own cost of a GiB of new page cache in the daemon's root (dd: reads of
        /dev/zero are nearly free): every log writer pays it, the daemon included."""
        size, gib, log_file = self.args.attach_size, self.args.attach_size / (1 << 30), self.floor_file()
        t0 = time.perf_counter()
        with CpuMeter(self.daemon.pid) as m:
            C.run([*self.dd_argv(), f"of={log_file}"])
        seconds = time.perf_counter() - t0
        # And its removal, as `run --rm` and the client case's remove delete their log: the
        # last unlink frees the file's page cache (0.03-0.11 s per GiB of the daemon's here).
        before = time.thread_time()
        os.unlink(log_file)
        self.cpu(f"{cpu}_dd", m.children / gib)
        self.cpu(f"{cpu}_rm", (time.thread_time() - before) / gib)
        return bytes_per_s(size, seconds)

    def client_attach(self, client: Client, what: str, daemon: C.Daemon, cpu: str) -> float:
        size, gib = self.args.attach_size, self.args.attach_size / (1 << 30)
        with CpuMeter(daemon.pid) as m:
            t0 = time.perf_counter()
            cid = client.create(self.rootfs, self.dd_argv(), name=self.name("attach")).id
            got = 0
            session = client.attach(cid, start=True)
            for stream, data in session:
                if stream == 1:
                    got += len(data)
            removing = time.perf_counter()
            client.remove(cid)  # with its log: part of the cost, as in run --rm
            t1 = time.perf_counter()
            seconds = t1 - t0
        self.samples.setdefault(f"{cpu}_remove_ms", []).append(round((t1 - removing) * 1e3, 1))
        self.cpu(f"{cpu}_daemon", m.daemon / gib)
        self.cpu(f"{cpu}_client_library", m.me / gib)
        self.check(session.exit_code == 0, f"attach, {what}: ended {session.end}")
        self.check(got == size, f"attach, {what}: {got:,} bytes of {size:,} arrived")
        return bytes_per_s(got, seconds)

    def alone(self) -> None:
        """The daemon's CPU per GiB attached with nothing else between its runs but the log's
        floor: what the daemon itself adds, apart from what the attach phase's other cases
        (raw runc, tee, the CLI, a second daemon, podman) leave the machine's memory in."""
        with self.daemon.client(timeout=300) as client:
            got = self.round_robin({
                "alone_attach_client": lambda: self.client_attach(client, "client library, alone",
                                                                  self.daemon, "alone_attach_client"),
                "alone_new_file": lambda: self.new_file("alone_new_file"),
            }, self.args.alone_runs)
        for key, values in got.items():
            self.keep(f"{key}_bytes_s", values, round)
        self.keep_cpu()

    def attach(self) -> None:
        size = self.args.attach_size
        dd = self.dd_argv()
        bundle = C.runc_bundle(self.base / "bundle-dd", self.rootfs, dd)
        native_client = self.local.enter_context(self.daemon.client(timeout=300))
        pydaemon = self.python_daemon()
        python_client = self.local.enter_context(pydaemon.client(timeout=300))
        n = 0
        gib = size / (1 << 30)

        def pipe_case(what: str, argv: list[str], cpu: str | None = None) -> float:
            with CpuMeter(self.daemon.pid) as m:
                got = piped(argv)
            if cpu:  # the CLI is the one child waited for: its CPU is in `children`
                self.cpu(f"{cpu}_daemon", m.daemon / gib)
                self.cpu(f"{cpu}_cli_process", m.children / gib)
                self.cpu(f"{cpu}_reader", m.me / gib)
            self.check(got.returncode == 0, f"attach, {what}: exited {got.returncode}: {got.stderr}")
            self.check(got.nbytes == size, f"attach, {what}: {got.nbytes:,} bytes of {size:,} arrived")
            return bytes_per_s(got.nbytes, got.seconds)

        def runc() -> float:
            nonlocal n
            n += 1
            return pipe_case("raw runc", ["runc", "--root", self.runc_root, "run", "--bundle", bundle,
                                          f"bench-dd-{n}"])

        log_file = self.floor_file()

        def runc_tee() -> float:
            # Streaming and keeping a log with plain tools: what any engine that logs must beat.
            nonlocal n
            n += 1
            try:
                return pipe_case("raw runc | tee", ["sh", "-c", f"runc --root {self.runc_root} run --bundle "
                                                    f"{bundle} bench-dd-{n} | tee {log_file}"])
            finally:
                os.unlink(log_file)

        cases: dict[str, Callable[[], float]] = {
            "attach_runc": runc,
            "attach_tee": runc_tee,
            "new_file": lambda: self.new_file("new_file"),
            "attach_client": lambda: self.client_attach(native_client, "client library", self.daemon,
                                                        "attach_client"),
            "attach_client_python": lambda: self.client_attach(python_client,
                                                               "client library, VARPOD_NATIVE=python",
                                                               pydaemon, "attach_client_python"),
            "attach_cli": lambda: pipe_case("CLI", self.varpod("run", "--rm", "--rootfs", self.rootfs, *dd),
                                            "attach_cli"),
        }
        if self.podman is not None:
            cases["attach_podman"] = lambda: pipe_case("podman", self.podman.argv(
                "run", "--rm", "--name", self.podman.name(), "--network=none", "--rootfs", self.rootfs, *dd))
        for key, values in self.round_robin(cases, self.args.runs).items():
            self.keep(f"{key}_bytes_s", values, round)
        self.problems.extend(pydaemon.stop())
        self.keep_cpu()

    def cpu(self, key: str, seconds: float) -> None:
        self._cpu.setdefault(key, []).append(seconds)

    def keep_cpu(self) -> None:
        """CPU seconds per GiB (attach, TTY) or per replay (logs): medians, every run in samples."""
        for key, values in self._cpu.items():
            self.keep(f"cpu_{key}_s", values, lambda v: round(v, 3))
        self._cpu.clear()

    # -- log replay ------------------------------------------------------------------------

    def run_to_exit(self, command: list[str], name: str) -> str:
        with self.daemon.client(timeout=600) as c:
            cid = c.create(self.rootfs, command, name=name).id
            self.kept.append(cid)
            c.start(cid)
            waited = c.wait(cid)
        if waited.exit_code != 0:
            raise RuntimeError(f"{name}: the producer exited {waited.exit_code}")
        return cid

    def logs(self) -> None:
        lines = self.args.lines
        size = lines * LINE
        producer = awk_producer(lines)
        self.replay_name = self.name("replay")
        replay_id = self.run_to_exit(producer, self.replay_name)
        text = self.base / "lines.txt"
        with open(text, "wb") as f:  # the same bytes as a plain file, for cat
            subprocess.run([os.path.join(self.rootfs, "bin", "busybox"), *producer], stdout=f, check=True)
        self.check(text.stat().st_size == size, f"the awk producer wrote {text.stat().st_size:,} bytes, "
                                                f"not {size:,}")
        # Once, untimed: every line must come back (the timed runs go to /dev/null).
        got = piped(self.varpod("logs", self.replay_name), count_lines=True)
        self.check(got.returncode == 0 and got.nbytes == size and got.lines == lines,
                   f"varpod logs returned {got.lines:,} lines, {got.nbytes:,} bytes (of {lines:,}, "
                   f"{size:,}); exit {got.returncode}: {got.stderr}")
        client = self.local.enter_context(self.daemon.client(timeout=300))

        gib = size / (1 << 30)

        def null_case(what: str, argv: list[str], cpu: str | None = None) -> float:
            with CpuMeter(self.daemon.pid) as m:
                got = piped(argv, stdout_null=True)
            if cpu:
                self.cpu(f"{cpu}_daemon", m.daemon / gib)
                self.cpu(f"{cpu}_cli_process", m.children / gib)
            self.check(got.returncode == 0, f"logs, {what}: exited {got.returncode}: {got.stderr}")
            return bytes_per_s(size, got.seconds)

        def client_case() -> float:
            with CpuMeter(self.daemon.pid) as m:
                t0 = time.perf_counter()
                got = sum(len(rec.payload) for rec in client.logs(self.replay_name))
                seconds = time.perf_counter() - t0
            self.cpu("logs_client_daemon", m.daemon / gib)
            self.cpu("logs_client_client_library", m.me / gib)
            self.check(got == size, f"logs, client library: {got:,} bytes of {size:,}")
            return bytes_per_s(got, seconds)

        on_disk = self._log_size(replay_id)
        # One record per read of the container's pipe: a line-at-a-time writer makes many.
        self.medians["logs_replay_records"] = None if on_disk is None else (on_disk - size) // 20
        cases: dict[str, Callable[[], float]] = {
            "logs_cat": lambda: null_case("cat", ["cat", str(text)]),
            "logs_client": client_case,
            "logs_cli": lambda: null_case("CLI", self.varpod("logs", self.replay_name), "logs_cli"),
        }
        if self.podman is not None:
            pname = self.podman.name()
            C.run(self.podman.argv("run", "-d", "--name", pname, "--network=none", "--rootfs", self.rootfs,
                                   *producer))
            C.run(self.podman.argv("wait", pname))
            cases["logs_podman"] = lambda: null_case("podman", self.podman.argv("logs", pname))
        subprocess.run(["cat", str(text)], stdout=subprocess.DEVNULL, check=True)  # into the page cache
        for key, values in self.round_robin(cases, self.args.runs).items():
            self.keep(f"{key}_bytes_s", values, round)
        self.keep_cpu()

    # -- tail --------------------------------------------------------------------------------

    def tail(self) -> None:
        if not getattr(self, "replay_name", None):
            self.replay_name = self.name("replay")
            self.run_to_exit(awk_producer(self.args.lines), self.replay_name)
        big = self.name("tail-big")
        C.log(f"   writing a {self.args.tail_size // MiB} MiB log")
        self.run_to_exit(yes_producer(self.args.tail_size), big)
        logs = {"small": self.replay_name, "big": big}
        with self.daemon.client() as c:
            for key, name in logs.items():
                self.medians[f"tail_{key}_log_bytes"] = self._log_size(c.inspect(name).Id)
        pid = self.daemon.pid
        client = self.local.enter_context(self.daemon.client(timeout=60))
        peaks: dict[str, list[int]] = {k: [] for k in logs}

        def client_case(key: str) -> Callable[[], Any]:
            def once() -> None:
                C.reset_peak_rss(pid)
                before = C.rss_kb(pid)
                payload = b"".join(r.payload for r in client.logs(logs[key], tail=TAIL_LINES))
                peaks[key].append(C.peak_rss_kb(pid) - before)
                got = payload.count(b"\n")
                self.check(got == TAIL_LINES and len(payload) == TAIL_LINES * LINE,
                           f"logs(tail={TAIL_LINES}) on the {key} log returned {len(payload)} bytes, "
                           f"{got} lines")
            return once

        def cli_case(key: str) -> Callable[[], Any]:
            def once() -> None:
                got = piped(self.varpod("logs", "--tail", str(TAIL_LINES), logs[key]), count_lines=True)
                self.check(got.returncode == 0 and got.lines == TAIL_LINES,
                           f"varpod logs --tail on the {key} log: {got.lines} lines, exit {got.returncode}")
            return once

        cases = {f"tail_{kind}_{key}": (client_case if kind == "client" else cli_case)(key)
                 for kind in ("client", "cli") for key in logs}
        for key, samples in C.interleaved(cases, self.args.tail_iterations).items():
            self.samples[key] = samples.summary()
            self.medians[f"{key}_ms"] = samples.median_ms
        for key in logs:
            warm = peaks[key][2:]  # the two warm-up calls of each case are not figures
            self.medians[f"tail_peak_rss_growth_{key}_kb"] = max(warm) if warm else None
            self.samples[f"tail_peak_rss_growth_{key}_kb"] = warm
        self.medians["daemon_rss_kb_at_tail"] = C.rss_kb(pid)

    def _log_size(self, cid: str) -> int | None:
        """A container's log size on disk (payload plus 20 bytes per record)."""
        for path in Path(self.daemon.root).rglob("ctr.log"):
            if cid in path.parts:
                return path.stat().st_size
        return None

    # -- follow ------------------------------------------------------------------------------

    def follow(self) -> None:
        lines = self.args.lines
        producer = awk_producer(lines)

        def varpod_case() -> float:
            name = self.name("follow")
            t0 = time.perf_counter()
            C.run(self.varpod("run", "-d", "--name", name, "--rootfs", self.rootfs, *producer))
            got = piped(self.varpod("logs", "-f", name), count_lines=True)
            seconds = time.perf_counter() - t0
            self.check(got.returncode == 0, f"varpod logs -f exited {got.returncode}: {got.stderr}")
            self.check(got.lines == lines and got.nbytes == lines * LINE,
                       f"varpod logs -f after run -d: {got.lines:,} of {lines:,} lines, {got.nbytes:,} bytes")
            self.samples.setdefault("follow_varpod_seconds", []).append(round(seconds, 3))
            with self.daemon.client() as c:
                c.remove(name, force=True, timeout=0)
            return got.lines

        def podman_case() -> float:
            assert self.podman is not None
            name = self.podman.name()
            C.run(self.podman.argv("run", "-d", "--name", name, "--network=none", "--rootfs", self.rootfs,
                                   *producer))
            got = piped(self.podman.argv("logs", "-f", name), count_lines=True)
            self.check(got.returncode == 0, f"podman logs -f exited {got.returncode}: {got.stderr}")
            C.run(self.podman.argv("rm", "--force", "--time", "0", name))
            return got.lines

        cases: dict[str, Callable[[], float]] = {"follow_varpod": varpod_case}
        if self.podman is not None:
            cases["follow_podman"] = podman_case
        for key, values in self.round_robin(cases, self.args.runs).items():
            self.keep(f"{key}_lines", values, int)
            self.medians[f"{key}_lines_min"] = min(values)
        self.medians["follow_lines_written"] = lines

    # -- exec --------------------------------------------------------------------------------

    def exec(self) -> None:
        with self.daemon.client() as c:
            cid = c.create(self.rootfs, ["sleep", "1000"], name=self.name("exec")).id
            c.start(cid)
        root = self.daemon.runtime_root()
        if not os.path.isdir(os.path.join(root, cid)):
            raise RuntimeError(f"the daemon's runc root is not {root}: no {cid[:12]} there")
        client = self.local.enter_context(self.daemon.client(timeout=60))
        runc_argv = ["runc", "--root", root, "exec", cid, "/bin/true"]

        def client_exec(c: Client = client) -> None:
            session = c.exec_start(c.exec_create(cid, ["/bin/true"]), attach=True)
            session.read()
            if session.exit_code != 0:
                raise RuntimeError(f"exec /bin/true through the client ended {session.end}")

        cases = {
            "exec_runc": lambda: C.run(runc_argv),
            "exec_client": client_exec,
            "exec_cli": lambda: C.run(self.varpod("exec", cid, "/bin/true")),
            # What any CLI in this interpreter pays before it does anything.
            "python_start": lambda: C.run([sys.executable, "-c", "pass"]),
        }
        if self.podman is not None:
            pname = self.podman.name()
            C.run(self.podman.argv("run", "-d", "--name", pname, "--network=none", "--rootfs", self.rootfs,
                                   "sleep", "1000"))
            cases["exec_podman"] = lambda: C.run(self.podman.argv("exec", pname, "/bin/true"))
        for key, samples in C.interleaved(cases, self.args.exec_iterations).items():
            self.samples[key] = samples.summary()
            self.medians[f"{key}_ms"] = samples.median_ms
        self._concurrent_exec(cid, client_exec, runc_argv)
        with self.daemon.client() as c:
            self.health["exec_sessions_kept"] = len(c.exec_list(cid))
            c.remove(cid, force=True, timeout=0)

    def _concurrent_exec(self, cid: str, client_exec: Callable[[Client], None], runc_argv: list[str]) -> None:
        k, per = self.args.exec_clients, self.args.exec_per_client

        def varpod_worker() -> Callable[[], None]:
            c = self.local.enter_context(self.daemon.client(timeout=60))
            return lambda: client_exec(c)

        def rate(make_worker: Callable[[], Callable[[], None]]) -> float:
            workers = [make_worker() for _ in range(k)]
            start = threading.Barrier(k + 1)
            errors: list[BaseException] = []

            def run(fn: Callable[[], None]) -> None:
                start.wait()
                try:
                    for _ in range(per):
                        fn()
                except BaseException as e:
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(fn,), daemon=True) for fn in workers]
            for t in threads:
                t.start()
            start.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - t0
            if errors:
                raise RuntimeError(f"{len(errors)} of {k} concurrent exec clients failed: {errors[0]!r}")
            return k * per / seconds

        cases = {
            "exec_concurrent_runc": lambda: rate(lambda: lambda: C.run(runc_argv)),
            "exec_concurrent_client": lambda: rate(varpod_worker),
        }
        for key, values in self.round_robin(cases, self.args.runs).items():
            self.keep(f"{key}_per_s", values, lambda v: round(v, 1))

    # -- TTY ---------------------------------------------------------------------------------

    def tty(self) -> None:
        size = self.args.tty_size
        head = f"head -c {size} /dev/zero"
        busybox = os.path.join(self.rootfs, "bin", "busybox")

        gib = size / (1 << 30)

        def case(what: str, argv: list[str], cpu: str | None = None) -> float:
            with CpuMeter(self.daemon.pid) as m:
                got = through_pty(argv)
            if cpu:
                self.cpu(f"{cpu}_daemon", m.daemon / gib)
                self.cpu(f"{cpu}_cli_process", m.children / gib)
            self.check(got.returncode == 0, f"tty, {what}: exited {got.returncode}: {got.stderr}")
            self.check(got.nbytes == size, f"tty, {what}: {got.nbytes:,} bytes of {size:,} arrived")
            return bytes_per_s(got.nbytes, got.seconds)

        cases: dict[str, Callable[[], float]] = {
            "tty_raw": lambda: case("one pty", [busybox, "head", "-c", str(size), "/dev/zero"]),
            # The same topology as ours and podman's, minus the engine: a program holds the
            # pty the writer runs on and copies its master to the terminal (util-linux script).
            "tty_relay": lambda: case("raw pty relay", ["script", "-q", "-e", "-c",
                                                        f"{busybox} head -c {size} /dev/zero",
                                                        "/dev/null"]),
            "tty_cli": lambda: case("CLI", self.varpod("run", "-t", "--rm", "--rootfs", self.rootfs,
                                                       "/bin/sh", "-c", head), "tty_cli"),
        }
        if self.podman is not None:
            cases["tty_podman"] = lambda: case("podman", self.podman.argv(
                "run", "-t", "--rm", "--name", self.podman.name(), "--network=none", "--rootfs", self.rootfs,
                "/bin/sh", "-c", head))
        for key, values in self.round_robin(cases, self.args.runs).items():
            self.keep(f"{key}_bytes_s", values, round)
        self.keep_cpu()

    # -- report ---------------------------------------------------------------------------

    def finish(self) -> None:
        """Daemon health at the end, while it still runs."""
        if getattr(self, "daemon", None) is None or self.daemon.proc is None:
            return
        with contextlib.suppress(Exception):
            pid = self.daemon.pid
            with self.daemon.client(timeout=60) as c:
                for cid in self.kept:
                    c.remove(cid, force=True, timeout=0)
                self.health["leftover_containers"] = len(c.list(all=True))
                # Closed connections are noticed by the daemon a moment later; a leak stays.
                deadline = time.monotonic() + 2
                while C.fd_count(pid) > self.fds0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.health["daemon_fds_delta"] = C.fd_count(pid) - self.fds0
            self.health["leftover_runtime_containers"] = len(self.daemon.runtime_containers())
            self.health["daemon_rss_kb_end"] = C.rss_kb(pid)
            self.health["daemon_rss_delta_kb"] = C.rss_kb(pid) - self.rss0

    def ratios(self) -> dict[str, float | None]:
        g = self.medians.get
        pairs = {
            "attach_client_vs_runc": ("attach_client_bytes_s", "attach_runc_bytes_s"),
            "attach_cli_vs_runc": ("attach_cli_bytes_s", "attach_runc_bytes_s"),
            "attach_client_python_vs_runc": ("attach_client_python_bytes_s", "attach_runc_bytes_s"),
            "attach_client_python_vs_native": ("attach_client_python_bytes_s", "attach_client_bytes_s"),
            "attach_podman_vs_runc": ("attach_podman_bytes_s", "attach_runc_bytes_s"),
            "attach_cli_vs_podman": ("attach_cli_bytes_s", "attach_podman_bytes_s"),
            "attach_tee_vs_runc": ("attach_tee_bytes_s", "attach_runc_bytes_s"),
            "attach_client_vs_tee": ("attach_client_bytes_s", "attach_tee_bytes_s"),
            "attach_cli_vs_tee": ("attach_cli_bytes_s", "attach_tee_bytes_s"),
            # CPU: higher is better for the C path
            "attach_python_vs_native_daemon_cpu": ("cpu_attach_client_python_daemon_s",
                                                   "cpu_attach_client_daemon_s"),
            "logs_cli_vs_cat": ("logs_cli_bytes_s", "logs_cat_bytes_s"),
            "logs_client_vs_cat": ("logs_client_bytes_s", "logs_cat_bytes_s"),
            "logs_cli_vs_podman": ("logs_cli_bytes_s", "logs_podman_bytes_s"),
            "logs_podman_vs_cat": ("logs_podman_bytes_s", "logs_cat_bytes_s"),
            "tail_client_big_vs_small": ("tail_client_big_ms", "tail_client_small_ms"),
            "tail_cli_big_vs_small": ("tail_cli_big_ms", "tail_cli_small_ms"),
            "tail_big_vs_small_log_size": ("tail_big_log_bytes", "tail_small_log_bytes"),
            "follow_varpod_received": ("follow_varpod_lines_min", "follow_lines_written"),
            "follow_podman_received": ("follow_podman_lines", "follow_lines_written"),
            "exec_client_vs_runc": ("exec_client_ms", "exec_runc_ms"),
            "exec_cli_vs_runc": ("exec_cli_ms", "exec_runc_ms"),
            "exec_cli_vs_podman": ("exec_cli_ms", "exec_podman_ms"),
            "exec_concurrent_client_vs_runc": ("exec_concurrent_client_per_s", "exec_concurrent_runc_per_s"),
            "tty_cli_vs_relay": ("tty_cli_bytes_s", "tty_relay_bytes_s"),
            "tty_cli_vs_raw": ("tty_cli_bytes_s", "tty_raw_bytes_s"),
            "tty_relay_vs_raw": ("tty_relay_bytes_s", "tty_raw_bytes_s"),
            "tty_podman_vs_relay": ("tty_podman_bytes_s", "tty_relay_bytes_s"),
        }
        out = {name: C.ratio(g(a), g(b)) for name, (a, b) in pairs.items()}
        # The daemon's CPU per GiB against the log's floor (dd, then rm), which is not a ratio.
        for name, case, floor_case in (("attach_client_daemon_cpu", "attach_client", "new_file"),
                                       ("alone_daemon_cpu", "alone_attach_client", "alone_new_file")):
            daemon, dd, rm = (g(f"cpu_{case}_daemon_s"), g(f"cpu_{floor_case}_dd_s"),
                              g(f"cpu_{floor_case}_rm_s"))
            floor = None if dd is None or rm is None else dd + rm
            out[f"{name}_above_new_file"] = None if daemon is None or floor is None else daemon - floor
            out[f"{name}_vs_new_file"] = C.ratio(daemon, floor)
            out[f"{floor_case}_and_rm_cpu"] = floor
        # Peak RSS during tail: growth over the RSS at the call, 1 GiB log against 100 MB (+1 MiB
        # on both sides, so that two near-zero growths do not make a meaningless ratio).
        small, big = g("tail_peak_rss_growth_small_kb"), g("tail_peak_rss_growth_big_kb")
        out["tail_peak_rss_growth_big_vs_small"] = (None if small is None or big is None
                                                    else (big + 1024) / (small + 1024))
        return out

    def targets(self, r: dict[str, float | None]) -> dict[str, C.Target]:
        g, T = self.medians.get, C.Target
        client_logs = g("logs_client_bytes_s")
        return {t.name: t for t in (
            T("attach_cli_vs_runc", "attach via the CLI >= 75% of raw runc into a pipe",
              r["attach_cli_vs_runc"], ">=", 0.75),
            T("attach_client_vs_runc", "attach via the client library >= 75% of raw runc into a pipe",
              r["attach_client_vs_runc"], ">=", 0.75),
            T("attach_client_daemon_cpu", "daemon CPU per GiB attached (client library) <= 0.5 s",
              g("cpu_attach_client_daemon_s"), "<=", 0.5, "s"),
            T("attach_native_vs_python", "C path >= 1.2x the Python path (daemon CPU per GiB, 64 KiB writes)",
              r["attach_python_vs_native_daemon_cpu"], ">=", 1.2),
            T("logs_cli_vs_podman", "varpod logs (CLI) >= 10x podman logs", r["logs_cli_vs_podman"],
              ">=", 10),
            T("logs_client_gb_s", "client logs() iteration >= 1 GB/s",
              None if client_logs is None else client_logs / 1e9, ">=", 1, "GB/s"),
            T("tail_client_big_vs_small", "logs(tail=10): 1 GiB log <= 1.5x the time on the 100 MB one",
              r["tail_client_big_vs_small"], "<=", 1.5),
            T("tail_peak_rss_growth_big_vs_small",
              "daemon peak RSS growth during tail: 1 GiB log <= 1.2x the 100 MB one (+1 MiB each)",
              r["tail_peak_rss_growth_big_vs_small"], "<=", 1.2),
            T("follow_varpod_received", "logs -f after run -d receives every line (worst run)",
              r["follow_varpod_received"], ">=", 1.0),
            T("exec_client_vs_runc", "exec /bin/true via the client <= 1.3x raw runc exec",
              r["exec_client_vs_runc"], "<=", 1.3),
            T("exec_cli_vs_podman", "varpod exec (CLI) <= 0.4x podman exec", r["exec_cli_vs_podman"],
              "<=", 0.4),
            T("tty_cli_vs_relay", "run -t via the CLI >= 80% of a raw pty relay", r["tty_cli_vs_relay"],
              ">=", 0.8),
        )}

    def table(self, r: dict[str, float | None], t: dict[str, C.Target]) -> C.Table:
        g, a = self.medians.get, self.args
        tab = C.Table(f"varpod streams: medians of {a.runs} interleaved runs per throughput case "
                      f"({a.exec_iterations} per exec case, {a.tail_iterations} per tail case); "
                      f"{os.cpu_count()} CPUs")
        podman = "podman: not installed" if self.podman is None else ""
        mbs, ms = fmt_mbs, C.fmt_ms
        att = f"{a.attach_size // MiB} MiB dd bs=64k"
        runc_pipe = "runc run → pipe, same bundle"
        cat = f"cat {a.lines * LINE / 1e6:,.0f} MB file > /dev/null"
        big = f"{a.tail_size // MiB} MiB log"
        small = f"{a.lines * LINE / 1e6:,.0f} MB log"
        tty_raw = "busybox head → one pty (the limit)"
        tty_relay = "head → pty → script → pty (raw relay)"
        k = a.exec_clients
        # (what, ours key, baseline name, baseline key, format, ratio, target)
        rows: list[tuple[str, str, str, str, Callable, str | None, str | None]] = [
            (f"attach {att}, client library", "attach_client_bytes_s", runc_pipe, "attach_runc_bytes_s",
             mbs, "attach_client_vs_runc", "attach_client_vs_runc"),
            (f"attach {att}, CLI run --rm → pipe", "attach_cli_bytes_s", runc_pipe, "attach_runc_bytes_s",
             mbs, "attach_cli_vs_runc", "attach_cli_vs_runc"),
            ("  client library, VARPOD_NATIVE=python", "attach_client_python_bytes_s", runc_pipe,
             "attach_runc_bytes_s", mbs, "attach_client_python_vs_runc", None),
            ("  client library, VARPOD_NATIVE=python", "attach_client_python_bytes_s",
             "client library, C path", "attach_client_bytes_s", mbs, "attach_client_python_vs_native", None),
            (f"attach {att}, client library", "attach_client_bytes_s", "runc run | tee LOG → pipe",
             "attach_tee_bytes_s", mbs, "attach_client_vs_tee", None),
            (f"attach {att}, CLI run --rm → pipe", "attach_cli_bytes_s", "runc run | tee LOG → pipe",
             "attach_tee_bytes_s", mbs, "attach_cli_vs_tee", None),
            ("  runc run | tee LOG → pipe", "attach_tee_bytes_s", runc_pipe, "attach_runc_bytes_s", mbs,
             "attach_tee_vs_runc", None),
            ("  podman run --rm → pipe", "attach_podman_bytes_s", runc_pipe, "attach_runc_bytes_s", mbs,
             "attach_podman_vs_runc", None),
            (f"attach {att}, CLI run --rm → pipe", "attach_cli_bytes_s", podman or "podman run --rm → pipe",
             "attach_podman_bytes_s", mbs, "attach_cli_vs_podman", None),
            (f"logs, {a.lines:,} lines, CLI > /dev/null", "logs_cli_bytes_s",
             podman or "podman logs > /dev/null", "logs_podman_bytes_s", mbs, "logs_cli_vs_podman",
             "logs_cli_vs_podman"),
            ("  same, CLI", "logs_cli_bytes_s", cat, "logs_cat_bytes_s", mbs, "logs_cli_vs_cat", None),
            (f"logs, {a.lines:,} lines, client logs()", "logs_client_bytes_s", cat, "logs_cat_bytes_s", mbs,
             "logs_client_vs_cat", "logs_client_gb_s"),
            ("  podman logs > /dev/null", "logs_podman_bytes_s", cat, "logs_cat_bytes_s", mbs,
             "logs_podman_vs_cat", None),
            (f"logs(tail={TAIL_LINES}), client, {big}", "tail_client_big_ms", f"same, {small}",
             "tail_client_small_ms", ms, "tail_client_big_vs_small", "tail_client_big_vs_small"),
            (f"logs --tail {TAIL_LINES}, CLI, {big}", "tail_cli_big_ms", f"same, {small}",
             "tail_cli_small_ms", ms, "tail_cli_big_vs_small", None),
        ]
        for what, ours, base_name, base, fmt, rkey, tkey in rows:
            base_text = "" if base_name.startswith("podman: ") else fmt(g(base)) + self.spread(base)
            tab.row(what, fmt(g(ours)) + self.spread(ours), base_name, base_text,
                    r.get(rkey) if rkey else None, t[tkey] if tkey else None)
        cpu_s = self.fmt_cpu
        tab.row("daemon CPU per GiB attached, client library", cpu_s("cpu_attach_client_daemon_s"),
                "dd to a new file in its root", cpu_s("cpu_new_file_dd_s"), None,
                t["attach_client_daemon_cpu"])
        tab.row("  same", cpu_s("cpu_attach_client_daemon_s"), "dd, then rm of its file (the log's floor)",
                cpu_s(None, r["new_file_and_rm_cpu"]), r["attach_client_daemon_cpu_vs_new_file"])
        tab.row("  same, above what dd and rm pay for the log's page cache",
                cpu_s(None, r["attach_client_daemon_cpu_above_new_file"]))
        tab.row("  same, VARPOD_NATIVE=python", cpu_s("cpu_attach_client_python_daemon_s"),
                "C path", cpu_s("cpu_attach_client_daemon_s"), r["attach_python_vs_native_daemon_cpu"],
                t["attach_native_vs_python"])
        tab.row("daemon CPU per GiB attached, CLI", cpu_s("cpu_attach_cli_daemon_s"))
        tab.row("daemon CPU per GiB attached, client library, alone",
                cpu_s("cpu_alone_attach_client_daemon_s"),
                "dd, then rm of its file (the log's floor)", cpu_s(None, r["alone_new_file_and_rm_cpu"]),
                r["alone_daemon_cpu_vs_new_file"])
        tab.row("  same, above what dd and rm pay for the log's page cache",
                cpu_s(None, r["alone_daemon_cpu_above_new_file"]))
        kb = C.fmt_kb
        tab.row("  daemon peak RSS growth during tail", kb(g("tail_peak_rss_growth_big_kb")),
                f"same, {small}", kb(g("tail_peak_rss_growth_small_kb")),
                r["tail_peak_rss_growth_big_vs_small"], t["tail_peak_rss_growth_big_vs_small"])
        written = g("follow_lines_written")
        tab.row("logs -f after run -d, lines received (worst)", fmt_lines(g("follow_varpod_lines_min")),
                "lines written", fmt_lines(written), r["follow_varpod_received"], t["follow_varpod_received"])
        tab.row("  podman logs -f, lines received (median)", fmt_lines(g("follow_podman_lines")),
                "lines written" if self.podman else podman, fmt_lines(written) if self.podman else "",
                r["follow_podman_received"])
        rows = [
            ("exec /bin/true, client library", "exec_client_ms", "runc exec, same container",
             "exec_runc_ms", ms, "exec_client_vs_runc", "exec_client_vs_runc"),
            ("exec /bin/true, CLI", "exec_cli_ms", "runc exec, same container", "exec_runc_ms", ms,
             "exec_cli_vs_runc", None),
            ("exec /bin/true, CLI", "exec_cli_ms", podman or "podman exec", "exec_podman_ms", ms,
             "exec_cli_vs_podman", "exec_cli_vs_podman"),
            ("  python -c pass (this venv: any CLI's floor)", "python_start_ms", "", "", ms, None, None),
            (f"exec /bin/true, {k} clients at once", "exec_concurrent_client_per_s",
             f"{k} threads of runc exec", "exec_concurrent_runc_per_s", C.fmt_rate,
             "exec_concurrent_client_vs_runc", None),
            (f"run -t, {a.tty_size // MiB} MiB, CLI → pty", "tty_cli_bytes_s", tty_relay,
             "tty_relay_bytes_s", mbs, "tty_cli_vs_relay", "tty_cli_vs_relay"),
            ("  same", "tty_cli_bytes_s", tty_raw, "tty_raw_bytes_s", mbs, "tty_cli_vs_raw", None),
            ("  raw relay", "tty_relay_bytes_s", tty_raw, "tty_raw_bytes_s", mbs, "tty_relay_vs_raw", None),
            ("  podman run -t → pty", "tty_podman_bytes_s", podman or tty_relay, "tty_relay_bytes_s", mbs,
             "tty_podman_vs_relay", None),
        ]
        for what, ours, base_name, base, fmt, rkey, tkey in rows:
            base_text = "" if base_name.startswith("podman: ") or not base else fmt(g(base))
            tab.row(what, fmt(g(ours)), base_name, base_text, r.get(rkey) if rkey else None,
                    t[tkey] if tkey else None)
        tab.note("ratios", "throughput and line counts: ours / baseline (higher is better); latency: "
                           "ours / baseline (lower is better). MB = 10^6 bytes; logs rates count payload "
                           "bytes")
        follow_s = self.samples.get("follow_varpod_seconds")
        if follow_s:
            times = ", ".join(f"{s:.2f} s" for s in follow_s)
            podman_lines = f"; podman: {self.samples.get('follow_podman_lines')}" if self.podman else ""
            tab.note("logs -f", f"run -d to the follower's end: {times}; lines received per run: "
                                f"{self.samples.get('follow_varpod_lines')}{podman_lines}")
        cpu = self.cpu_note()
        if cpu:
            tab.note("CPU seconds per GiB of payload (medians)", cpu)
        records = g("logs_replay_records")
        if records:
            tab.note("replayed log", f"{records:,} records for {a.lines:,} lines (one record per read of the "
                                     "container's pipe; busybox awk writes every line with its own write)")
        tab.note("health", ", ".join(f"{key}={value}" for key, value in self.health.items()))
        reporting = C.page_reporting()
        if reporting is not None and self.settled:
            waited = sorted(x["waited_s"] for x in self.settled)
            order = reporting.get("page_reporting_order")
            tab.note("memory", f"free page reporting is on (order {order}): memory freed here goes back "
                     "to the host and costs a host fault when touched again; every throughput case "
                     f"started once it had (waits {waited[0]:.1f}-{waited[-1]:.1f} s), as on a fresh machine")
        warning = C.busy_while_idle(self.quiet)
        if warning:
            tab.note("WARNING", warning)
        for p in self.problems:
            tab.note("PROBLEM", p)
        return tab

    def spread(self, key: str) -> str:
        """How far the runs were apart: ± half the range, in % of the median ("" for one run)."""
        values = self.samples.get(key)
        med = self.medians.get(key)
        if not isinstance(values, list) or len(values) < 2 or not med:
            return ""
        return f" ±{(max(values) - min(values)) / 2 / med:.0%}"

    def fmt_cpu(self, key: str | None, value: float | None = None) -> str:
        if key is not None:
            value = self.medians.get(key)
        return "—" if value is None else f"{value:.2f} s" + (self.spread(key) if key else "")

    def cpu_note(self) -> str:
        g = self.medians.get
        parts = []
        for case, what in (("attach_client", "attach, client library"),
                           ("attach_client_python", "attach, client library, VARPOD_NATIVE=python"),
                           ("attach_cli", "attach, CLI"), ("logs_client", "logs, client library"),
                           ("logs_cli", "logs, CLI"), ("tty_cli", "run -t, CLI")):
            found = [(who, g(f"cpu_{case}_{key}_s")) for who, key in (
                ("daemon", "daemon"), ("client", "client_library"), ("CLI", "cli_process"),
                ("reader", "reader"))]
            found = [f"{who} {v:.2f}" for who, v in found if v is not None]
            if found:
                parts.append(f"{what}: {', '.join(found)}")
        return "; ".join(parts)

    def report(self) -> tuple[dict[str, Any], C.Table]:
        self.load.append({"phase": "end", **C.load_now()})
        r = self.ratios()
        t = self.targets(r)
        a = self.args
        report = {
            "benchmark": "streams",
            # PSI's 10 s average at each phase start mostly shows our own previous phase
            # (it loads both CPUs); the samples taken while we sit idle show other work.
            "machine": {**C.machine(), "load": self.load, "idle_samples": self.quiet,
                        "busy": C.busy_while_idle(self.quiet), "memory_settled": self.settled},
            "source": source_state(),
            "parameters": {"runs": a.runs, "quick": a.quick, "phases": a.phases,
                           "attach_bytes": a.attach_size, "log_lines": a.lines, "line_bytes": LINE,
                           "tail_big_bytes": a.tail_size, "tail_lines": TAIL_LINES,
                           "tail_iterations": a.tail_iterations, "exec_iterations": a.exec_iterations,
                           "exec_clients": a.exec_clients, "exec_per_client": a.exec_per_client,
                           "tty_bytes": a.tty_size, "podman": self.podman is not None,
                           "cli_bytecode": self.bytecode},
            "medians": {key: C.rounded(v) for key, v in self.medians.items()},
            "ratios": {key: C.rounded(v) for key, v in r.items()},
            "targets": {key: v.as_json() for key, v in t.items()},
            "targets_missed": [key for key, v in t.items() if v.passed is False],
            "samples": self.samples,
            "health": self.health,
            "problems": self.problems,
        }
        return report, self.table(r, t)


def source_state() -> dict[str, Any]:
    """Which code was measured: HEAD and whether the tree had uncommitted changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(C.REPO), *args], capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")  # not strip(): porcelain lines start with a space

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD") or None, "uncommitted": changed}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_streams drives runc: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            steps = {
                "attach": ("attach throughput: client, CLI, python path, raw runc", bench.attach),
                "alone": ("daemon CPU per GiB attached, alone: client attach and the log's floor",
                          bench.alone),
                "logs": ("log replay: CLI, client, cat", bench.logs),
                "tail": ("logs --tail on a small and a big log", bench.tail),
                "follow": ("logs -f right after run -d", bench.follow),
                "exec": ("exec /bin/true: client, CLI, raw runc; concurrent clients", bench.exec),
                "tty": ("run -t through a pty; raw pty relay", bench.tty),
            }
            for key in PHASES:
                if key in args.phases:
                    what, fn = steps[key]
                    podman = bench.podman and key not in ("tail", "alone")
                    with bench.phase(what + (", podman" if podman else "")):
                        fn()
            bench.finish()
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
