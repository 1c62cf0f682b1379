"""Container lifecycle and RPC benchmark: varpod against raw runc, podman and a bare RPC server.

    .venv/bin/python benchmarks/bench_lifecycle.py [--iterations N] [--containers N] [--quick] [--json]

Measured in one run, with every ratio taken within it:

* ``run --rm /bin/true``: client library (create, start, wait, remove on one
  connection) and CLI (``varpod run --rm``) against ``runc run`` of a bundle
  whose config.json comes from the daemon's own generator, and against
  ``podman run --rm --network=none`` when podman is installed. Interleaved
  round-robin, fixed counts, medians.
* ``varpod ps -a`` / ``varpod inspect`` against ``podman ps -a`` / ``podman inspect``.
* Ping: sequential on one connection (sync Client) and 64 in flight (64
  AsyncClient tasks on one connection; ``Client.pipeline`` batches of 64 too)
  against a bare msgspec+uvloop echo server with equally bare clients. The
  crossed pairs (our client -> bare server, bare client -> our daemon) say
  which half a gap is in. Client and servers are pinned to CPUs (``--pin``).
* ``Container.List`` calls/s with 200 created containers.
* Daemon RSS per running container (a fresh daemon, ``/bin/sleep 1000``).

Run as root (it drives runc). Targets are measured here, never asserted in tests:
a missed target does not change the exit status; a failed phase, a daemon error
in its log or anything left behind after clean-up makes it 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C

from varpod.rpc.client import AsyncClient, Client

INFLIGHT = 64
LIST_CONTAINERS = 200
CLI_CONTAINERS = 3  # present while timing ps -a and inspect
CONMON_KB = 2048  # ANCHORS: conmon's RSS per running container


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, help="runs per container case (default 30; 5 with --quick)")
    p.add_argument("--containers", type=int,
                   help="running containers for the RSS figure (default 50; 10 with --quick)")
    p.add_argument("--quick", action="store_true", help="a fast smoke run: few iterations")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--pin", choices=C.PIN_MODES, default="auto",
                   help="CPU placement of client and servers for call rates (default auto: one CPU "
                        "for sequential calls, two for calls in flight)")
    a = p.parse_args(argv)
    a.iterations = a.iterations or (5 if a.quick else 30)
    a.containers = a.containers or (10 if a.quick else 50)
    # Call rates: several short alternating passes beat one long one when the load drifts.
    a.rounds = 1 if a.quick else 5
    a.repeat = 2  # timeit repeats within a pass
    return a


class Bench(C.Phases):
    def __init__(self, args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
        super().__init__(args, stack)
        self.medians: dict[str, Any] = {}
        self.samples: dict[str, Any] = {}
        self.health: dict[str, Any] = {}
        self.cli = C.cli_argv()
        self.podman = C.Podman(C.podman_path()) if C.podman_path() else None
        if self.podman is not None:
            stack.callback(lambda: self.problems.extend(self.podman.cleanup()))

    # -- set-up ----------------------------------------------------------------------

    def setup(self) -> None:
        C.log(f"temp dir {self.base}")
        self.rootfs = C.build_rootfs(self.base / "rootfs")
        self.daemon = C.start_daemon(self.stack, self.base / "daemon", self.problems)
        self.runc_root = str(self.base / "runc-root")
        self.stack.callback(lambda: self.problems.extend(C.runc_cleanup(self.runc_root)))
        self.bundle = C.runc_bundle(self.base / "bundle", self.rootfs, ["/bin/true"])

    # -- run --rm /bin/true ------------------------------------------------------------

    def lifecycle(self) -> None:
        n = 0

        def runc_run() -> None:
            nonlocal n
            n += 1
            C.run(["runc", "--root", self.runc_root, "run", "--bundle", self.bundle, f"bench-{n}"])

        client = self.stack.enter_context(self.daemon.client(timeout=60))
        steps: dict[str, C.Samples] = {k: C.Samples() for k in ("create", "start", "wait", "remove")}

        def client_run() -> None:
            t0 = time.perf_counter()
            cid = client.create(self.rootfs, ["/bin/true"]).id
            t1 = time.perf_counter()
            client.start(cid)
            t2 = time.perf_counter()
            waited = client.wait(cid)
            t3 = time.perf_counter()
            client.remove(cid)
            t4 = time.perf_counter()
            if waited.exit_code != 0:
                raise RuntimeError(f"/bin/true exited {waited.exit_code} under the client")
            for name, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                steps[name].add(dt)

        cli_argv = [*self.cli, "--socket", self.daemon.socket, "run", "--rm", "--rootfs", self.rootfs,
                    "/bin/true"]
        cases = {"runc": runc_run, "client": client_run, "cli": lambda: C.run(cli_argv)}
        if self.podman is not None:
            podman_argv = self.podman.argv("run", "--rm", "--network=none", "--rootfs", self.rootfs,
                                           "/bin/true")
            cases["podman"] = lambda: C.run(podman_argv)

        for fn in cases.values():  # warm up, then look for growth over the measured runs
            fn()
            fn()
        for samples in steps.values():
            samples.values.clear()
        pid = self.daemon.pid
        fds0, rss0 = C.fd_count(pid), C.rss_kb(pid)
        for name, samples in C.interleaved(cases, self.args.iterations, warmup=0).items():
            self.samples[f"run_rm_{name}"] = samples.summary()
            self.medians[f"run_rm_{name}_ms"] = samples.median_ms
        for name, samples in steps.items():
            self.medians[f"client_{name}_ms"] = samples.median_ms
        self.health["measured_runs"] = self.args.iterations * 2  # client + CLI
        self.health["daemon_fds_delta_after_runs"] = C.fd_count(pid) - fds0
        self.health["daemon_rss_delta_kb_after_runs"] = C.rss_kb(pid) - rss0
        self.health["leftover_containers_after_runs"] = len(client.list(all=True))
        self.health["leftover_runtime_containers_after_runs"] = len(self.daemon.runtime_containers())

    # -- ps -a / inspect ----------------------------------------------------------------

    def cli_queries(self) -> None:
        names = []
        with self.daemon.client() as c:
            for i in range(CLI_CONTAINERS):
                names.append(c.create(self.rootfs, ["/bin/true"], name=f"bench-cli-{i}").name)
        sock = ["--socket", self.daemon.socket]
        cases = {
            "ps_cli": lambda: C.run([*self.cli, *sock, "ps", "-a"]),
            "inspect_cli": lambda: C.run([*self.cli, *sock, "inspect", names[0]]),
        }
        try:
            if self.podman is not None:
                pnames = [self.podman.create(self.rootfs, ["/bin/true"]) for _ in range(CLI_CONTAINERS)]
                cases["ps_podman"] = lambda: C.run(self.podman.argv("ps", "-a"))
                cases["inspect_podman"] = lambda: C.run(self.podman.argv("inspect", pnames[0]))
            for name, samples in C.interleaved(cases, self.args.iterations).items():
                self.samples[name] = samples.summary()
                self.medians[f"{name}_ms"] = samples.median_ms
        finally:
            with self.daemon.client() as c:
                for name in names:
                    c.remove(name)
            if self.podman is not None:
                self.problems.extend(self.podman.cleanup())

    # -- ping -------------------------------------------------------------------------

    def _rates(self, cases: dict[str, Any]) -> None:
        """Calls/s of each case, measured round-robin ``rounds`` times; the median is kept."""
        got: dict[str, list[float]] = {key: [] for key in cases}
        for _ in range(self.args.rounds):  # alternate, so drift hits every case alike
            for key, fn in cases.items():
                got[key].append(fn())
        for key, values in got.items():
            self.medians[f"{key}_calls_s"] = sorted(values)[len(values) // 2]
            self.samples[f"{key}_calls_s"] = [round(v) for v in values]

    def ping(self) -> None:
        """Ours against the bare pair; the crossed pairs say whether a gap is the client's or the server's."""
        echo = self.stack.enter_context(C.echo_server(self.base))
        sock = self.daemon.socket
        ours = self.stack.enter_context(self.daemon.client(timeout=60))
        ours_to_bare = self.stack.enter_context(Client(echo.path, timeout=60))
        bare = C.BareClient(echo.path)
        self.stack.callback(bare.close)
        bare_to_ours = C.BareClient(sock)
        self.stack.callback(bare_to_ours.close)
        for c in (ours, ours_to_bare, bare, bare_to_ours):
            if c.ping() != "pong":
                raise RuntimeError(f"{type(c).__name__}.ping() did not answer pong")
        rep = self.args.repeat
        batch = [(C.PING, {})] * INFLIGHT
        k = INFLIGHT
        servers = [self.daemon.pid, echo.pid]
        with C.pinned(C.placement(self.args.pin, "sequential"), servers) as pin:
            self.health["placement_sequential"] = pin
            self._rates({
                "ping_seq_ours": lambda: C.rate(ours.ping, 1, rep),
                "ping_seq_bare": lambda: C.rate(bare.ping, 1, rep),
                "ping_seq_client_to_bare": lambda: C.rate(ours_to_bare.ping, 1, rep),
                "ping_seq_bare_to_daemon": lambda: C.rate(bare_to_ours.ping, 1, rep),
            })
        with C.pinned(C.placement(self.args.pin, "parallel"), servers) as pin:
            self.health["placement_in_flight"] = pin
            self._rates({
                f"ping_{k}_tasks_ours": lambda: _anyio_run(_client_inflight_rate, sock, rep),
                f"ping_{k}_tasks_bare": lambda: _uvloop_run(C.bare_inflight_rate(echo.path, k, rep)),
                f"ping_{k}_tasks_client_to_bare": lambda: _anyio_run(_client_inflight_rate, echo.path, rep),
                f"ping_{k}_tasks_bare_to_daemon": lambda: _uvloop_run(C.bare_inflight_rate(sock, k, rep)),
            })
            self._rates({
                f"ping_{k}_pipeline_ours": lambda: C.rate(lambda: ours.pipeline(batch), k, rep),
                f"ping_{k}_pipeline_bare": lambda: C.rate(lambda: bare.pipeline(k), k, rep),
            })

    # -- Container.List ------------------------------------------------------------------

    def list_many(self) -> None:
        with self.daemon.client(timeout=60) as c:
            created = []
            try:
                for i in range(LIST_CONTAINERS):
                    created.append(c.create(self.rootfs, ["/bin/true"], name=f"bench-list-{i:03d}").id)
                got = len(c.list(all=True))
                if got != LIST_CONTAINERS:
                    raise RuntimeError(f"list(all=True) returned {got} containers, not {LIST_CONTAINERS}")
                self._list_rates(c)
            finally:
                t0 = time.perf_counter()
                for cid in created:
                    c.remove(cid)
                self.health["remove_200_created_ms_each"] = round((time.perf_counter() - t0) * 1e3 / 200, 3)

    def _list_rates(self, c: Client) -> None:
        rep = self.args.repeat
        method, params = "io.varpod.Container.List", {"all": True}
        bare = C.BareClient(self.daemon.socket)
        with self.daemon.client(raw=True) as raw, contextlib.closing(bare), \
                C.pinned(C.placement(self.args.pin, "sequential"), [self.daemon.pid]):
            self._rates({
                "list_200": lambda: C.rate(lambda: c.list(all=True), 1, rep),
                "list_200_raw": lambda: C.rate(lambda: raw.list(all=True), 1, rep),
                "list_200_bare_to_daemon": lambda: C.rate(lambda: bare.call_bytes(method, params), 1, rep),
            })

    # -- RSS --------------------------------------------------------------------------

    def rss(self) -> None:
        """On a daemon of its own: heap freed by earlier phases would hide growth."""
        d = C.start_daemon(self.stack, self.base / "daemon-rss", self.problems)
        count = self.args.containers
        with d.client(timeout=60) as c:
            self.medians["rss_startup_kb"] = C.rss_kb(d.pid)
            # Warm the start/exit code paths once, so the figure is per container, not first-use.
            for _ in range(2):
                cid = c.create(self.rootfs, ["/bin/true"]).id
                c.start(cid)
                c.wait(cid)
                c.remove(cid)
            base_rss, base_fds = C.rss_kb(d.pid), C.fd_count(d.pid)
            ids = []
            for i in range(count):
                cid = c.create(self.rootfs, ["/bin/sleep", "1000"], name=f"bench-rss-{i:03d}").id
                c.start(cid)
                ids.append(cid)
            running = [x for x in c.list(all=True) if x.State == "running"]
            if len(running) != count:
                raise RuntimeError(f"{len(running)} of {count} sleepers are running")
            time.sleep(0.5)
            c.ping()
            after_rss, after_fds = C.rss_kb(d.pid), C.fd_count(d.pid)
            helpers = _helpers(d.pid, {c.inspect(cid).State.Pid for cid in ids})
            self.medians["rss_before_kb"] = base_rss
            self.medians["rss_after_kb"] = after_rss
            self.medians["rss_per_container_kb"] = (after_rss - base_rss) / count
            self.health["daemon_fds_per_running_container"] = (after_fds - base_fds) / count
            self.health["helper_processes"] = len(helpers)
            self.health["helper_rss_kb"] = sum(kb for _, kb in helpers)
            t0 = time.perf_counter()
            for cid in ids:
                c.remove(cid, force=True, timeout=0)
            self.health["remove_force_running_ms_each"] = round((time.perf_counter() - t0) * 1e3 / count, 2)
            self.health["daemon_fds_delta_after_remove"] = C.fd_count(d.pid) - base_fds
            self.health["daemon_rss_delta_kb_after_remove"] = C.rss_kb(d.pid) - base_rss
        self.problems.extend(d.stop())

    # -- report ---------------------------------------------------------------------------

    def ratios(self) -> dict[str, float | None]:
        g, k = self.medians.get, INFLIGHT
        pairs = {
            "client_vs_runc": ("run_rm_client_ms", "run_rm_runc_ms"),
            "cli_vs_runc": ("run_rm_cli_ms", "run_rm_runc_ms"),
            "cli_vs_podman": ("run_rm_cli_ms", "run_rm_podman_ms"),
            "ps_cli_vs_podman": ("ps_cli_ms", "ps_podman_ms"),
            "inspect_cli_vs_podman": ("inspect_cli_ms", "inspect_podman_ms"),
        }
        for key in ("ping_seq", f"ping_{k}_tasks", f"ping_{k}_pipeline"):
            pairs[f"{key}_vs_bare"] = (f"{key}_ours_calls_s", f"{key}_bare_calls_s")
        for key in ("ping_seq", f"ping_{k}_tasks"):
            # Which half loses: our client on the bare server, the bare client on our daemon.
            pairs[f"{key}_client_to_bare_vs_bare"] = (f"{key}_client_to_bare_calls_s", f"{key}_bare_calls_s")
            pairs[f"{key}_bare_to_daemon_vs_bare"] = (f"{key}_bare_to_daemon_calls_s", f"{key}_bare_calls_s")
        out = {name: C.ratio(g(a), g(b)) for name, (a, b) in pairs.items()}
        per = g("rss_per_container_kb")
        out["rss_per_container_vs_conmon"] = C.ratio(per, CONMON_KB)
        return out

    def targets(self, r: dict[str, float | None]) -> dict[str, C.Target]:
        g, T = self.medians.get, C.Target
        return {t.name: t for t in (
            T("client_vs_runc", "run --rm via the client <= 1.5x raw runc run", r["client_vs_runc"],
              "<=", 1.5),
            T("cli_vs_podman", "run --rm via the CLI <= 0.45x podman run --rm --network=none",
              r["cli_vs_podman"], "<=", 0.45),
            T("ps_cli_vs_podman", "varpod ps -a <= 1.5x podman ps -a", r["ps_cli_vs_podman"], "<=", 1.5),
            T("inspect_cli_vs_podman", "varpod inspect <= 1.5x podman inspect", r["inspect_cli_vs_podman"],
              "<=", 1.5),
            T("ping_seq_vs_bare", "sequential calls on one connection >= 70% of the bare server",
              r["ping_seq_vs_bare"], ">=", 0.7),
            T("ping_inflight_vs_bare", f"{INFLIGHT} in flight (AsyncClient tasks) >= 50% of the bare server",
              r[f"ping_{INFLIGHT}_tasks_vs_bare"], ">=", 0.5),
            T("list_200_calls_s", "Container.List with 200 containers >= 2,000 calls/s",
              g("list_200_calls_s"), ">=", 2000, "/s"),
            T("rss_per_container_kb", "daemon RSS grows < 150 KB per running container",
              g("rss_per_container_kb"), "<", 150, "KB"),
        )}

    def table(self, r: dict[str, float | None], t: dict[str, C.Target]) -> C.Table:
        g, k = self.medians.get, INFLIGHT
        pin = (f"sequential {self.health.get('placement_sequential', '?')}, "
               f"in flight {self.health.get('placement_in_flight', '?')}")
        tab = C.Table(f"varpod lifecycle: medians of {self.args.iterations} runs per container case; "
                      f"CPU placement {pin}; {os.cpu_count()} CPUs")
        podman = "podman: not installed" if self.podman is None else ""
        ms, per_s = C.fmt_ms, C.fmt_rate
        runc, seq, tasks = "runc run, same bundle", "bare, blocking socket", f"bare, {k} uvloop tasks"
        # (what, ours, baseline name, baseline key, format, ratio, target)
        rows = [
            ("run --rm /bin/true, client library", "run_rm_client_ms", runc, "run_rm_runc_ms", ms,
             "client_vs_runc", "client_vs_runc"),
            ("run --rm /bin/true, CLI", "run_rm_cli_ms", runc, "run_rm_runc_ms", ms, "cli_vs_runc", None),
            ("run --rm /bin/true, CLI", "run_rm_cli_ms", podman or "podman run --rm --network=none",
             "run_rm_podman_ms", ms, "cli_vs_podman", "cli_vs_podman"),
            (f"ps -a ({CLI_CONTAINERS} containers), CLI", "ps_cli_ms", podman or "podman ps -a",
             "ps_podman_ms", ms, "ps_cli_vs_podman", "ps_cli_vs_podman"),
            ("inspect NAME, CLI", "inspect_cli_ms", podman or "podman inspect", "inspect_podman_ms", ms,
             "inspect_cli_vs_podman", "inspect_cli_vs_podman"),
            ("Ping, sequential, sync Client", "ping_seq_ours_calls_s", seq, "ping_seq_bare_calls_s", per_s,
             "ping_seq_vs_bare", "ping_seq_vs_bare"),
            ("  our Client -> bare server", "ping_seq_client_to_bare_calls_s", seq, "ping_seq_bare_calls_s",
             per_s, "ping_seq_client_to_bare_vs_bare", None),
            ("  bare client -> our daemon", "ping_seq_bare_to_daemon_calls_s", seq, "ping_seq_bare_calls_s",
             per_s, "ping_seq_bare_to_daemon_vs_bare", None),
            (f"Ping, {k} AsyncClient tasks, 1 conn", f"ping_{k}_tasks_ours_calls_s", tasks,
             f"ping_{k}_tasks_bare_calls_s", per_s, f"ping_{k}_tasks_vs_bare", "ping_inflight_vs_bare"),
            ("  our AsyncClient -> bare server", f"ping_{k}_tasks_client_to_bare_calls_s", tasks,
             f"ping_{k}_tasks_bare_calls_s", per_s, f"ping_{k}_tasks_client_to_bare_vs_bare", None),
            ("  bare client -> our daemon", f"ping_{k}_tasks_bare_to_daemon_calls_s", tasks,
             f"ping_{k}_tasks_bare_calls_s", per_s, f"ping_{k}_tasks_bare_to_daemon_vs_bare", None),
            (f"Ping, Client.pipeline batches of {k}", f"ping_{k}_pipeline_ours_calls_s",
             f"bare, batches of {k}", f"ping_{k}_pipeline_bare_calls_s", per_s, f"ping_{k}_pipeline_vs_bare",
             None),
        ]
        for what, ours, base_name, base, fmt, rkey, tkey in rows:
            base_text = "" if base_name.startswith("podman: ") else fmt(g(base))
            tab.row(what, fmt(g(ours)), base_name, base_text, r[rkey], t[tkey] if tkey else None)
        tab.row(f"Container.List, {LIST_CONTAINERS} containers", per_s(g("list_200_calls_s")),
                "podman REST (ANCHORS)", "13/s", None, t["list_200_calls_s"])
        tab.row("  same, Client(raw=True) (CLI codec)", per_s(g("list_200_raw_calls_s")))
        tab.row("  bare client, reply undecoded", per_s(g("list_200_bare_to_daemon_calls_s")))
        per = g("rss_per_container_kb")
        tab.row(f"daemon RSS per running container ({self.args.containers})",
                "—" if per is None else f"{per:,.1f} KB", "conmon (ANCHORS)", f"{CONMON_KB:,} KB",
                r["rss_per_container_vs_conmon"], t["rss_per_container_kb"])
        steps = ", ".join(f"{step} {C.fmt_ms(g(f'client_{step}_ms'))}"
                          for step in ("create", "start", "wait", "remove"))
        tab.note("client run --rm by step (medians)", steps)
        tab.note("daemon RSS at start-up / before / after the sleepers",
                 " / ".join(C.fmt_kb(g(key)) for key in ("rss_startup_kb", "rss_before_kb", "rss_after_kb")))
        tab.note("health", ", ".join(f"{key}={value}" for key, value in self.health.items()))
        self.note_problems(tab)
        return tab

    def report(self) -> tuple[dict[str, Any], C.Table]:
        r = self.ratios()
        t = self.targets(r)
        podman_keys = ("run_rm_podman_ms", "ps_podman_ms", "inspect_podman_ms")
        nulls = {} if self.podman else dict.fromkeys(podman_keys)
        report = {
            "benchmark": "lifecycle",
            "machine": self.machine_report(),
            "parameters": {"iterations": self.args.iterations, "quick": self.args.quick,
                           "rss_containers": self.args.containers, "list_containers": LIST_CONTAINERS,
                           "cli_containers": CLI_CONTAINERS, "inflight": INFLIGHT, "pin": self.args.pin,
                           "inflight_client": f"{INFLIGHT} AsyncClient tasks on one connection (uvloop); "
                                              f"Client.pipeline batches of {INFLIGHT} reported too"},
            "medians": {key: C.rounded(v) for key, v in {**nulls, **self.medians}.items()},
            "ratios": {key: C.rounded(v) for key, v in r.items()},
            "targets": {key: v.as_json() for key, v in t.items()},
            "samples": self.samples,
            "health": self.health,
            "problems": self.problems,
        }
        return report, self.table(r, t)


async def _client_inflight_rate(path: str, repeat: int) -> float:
    import anyio

    async with await AsyncClient.connect(path) as client:

        async def worker(n: int) -> None:
            for _ in range(n):
                await client.ping()

        async def round_fn(n: int) -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(INFLIGHT):
                    tg.start_soon(worker, n)

        return await C.async_rate(round_fn, INFLIGHT, repeat=repeat)


def _anyio_run(fn: Any, *args: Any) -> float:
    import anyio

    return anyio.run(fn, *args, backend="asyncio", backend_options={"use_uvloop": True})


def _uvloop_run(coro: Any) -> float:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _helpers(daemon_pid: int, container_pids: set[int]) -> list[tuple[int, int]]:
    """(pid, RSS KB) of the daemon's descendants that are not containers: shims, if any."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(children.get(daemon_pid, []))
    while todo:
        pid = todo.pop()
        if pid in container_pids:
            continue  # the container and whatever runs in it
        with contextlib.suppress(OSError, RuntimeError):
            out.append((pid, C.rss_kb(pid)))
        todo += children.get(pid, [])
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench_lifecycle drives runc: run it as root")
    C.sigterm_as_interrupt()
    with contextlib.ExitStack() as stack:
        bench = Bench(args, stack)
        try:
            bench.setup()
            with bench.phase("run --rm /bin/true: runc, client, CLI" + (", podman" if bench.podman else "")):
                bench.lifecycle()
            with bench.phase("CLI ps -a / inspect"):
                bench.cli_queries()
            with bench.phase("Ping: ours and bare"):
                bench.ping()
            with bench.phase(f"Container.List with {LIST_CONTAINERS} containers"):
                bench.list_many()
            with bench.phase(f"RSS with {args.containers} running containers"):
                bench.rss()
        except KeyboardInterrupt:
            C.log("interrupted: cleaning up")
            stack.close()
            return 130
        C.log("-- cleaning up")
    # The stack is closed: clean-up problems are in the report too.
    report, table = bench.report()
    C.emit(report, table, args.json)
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())
