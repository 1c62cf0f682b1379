"""The public container operations: lock, load, check, act, save, emit.

Long waits (stop's timeout, attach sessions) save an intermediate state and
release the container lock, so inspect, list and kill proceed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Iterable

import msgspec

from . import memory
from .acct import ExitLedger
from .errors import (
    ContainerNotInRuntime,
    ContainerStopped,
    InvalidConfig,
    InvalidState,
    NoSuchContainer,
    RootfsNotFound,
    RuntimeFailed,
    StopTimeout,
    Unsupported,
    VarpodError,
)
from .events import EventBus
from .exec import ExecSessions
from .hostconfig import config_fields as host_config_fields
from .locks import Locks
from .logfile import LogWriter
from .model import (
    ContainerConfig,
    ContainerRecord,
    ContainerState,
    CreateOptions,
    Resources,
    RestartPolicy,
    check_name,
    new_id,
    parse_signal,
    random_name,
)
from .monitor import ExitInfo, Monitor, alive
from .parts import Launch, Parts
from .paths import check_id, remove_trees
from .runtime import OCIRuntime, RuntimeRegistry, RuntimeState
from .spec import oci_config, resolve_user, update_resources
from .states import LIVE_STATES, Action, State, next_state
from .stdio import ContainerIO, StdinWriter
from .store import Store
from .tasks import Tasks

log = logging.getLogger("varpod.engine")

KILL_GRACE = 10.0  # seconds to wait for SIGKILL to take effect before StopTimeout
KILL_FIRST = 1.0  # seconds a SIGKILLed init has to die before every process of it is killed
CONSOLE_TIMEOUT = 10.0  # seconds for the runtime to hand over a TTY's master
CREATING_GRACE = 10.0  # seconds a restarted daemon waits for runtime creates it inherited
QUICK_RUN_NS = 10 * 10**9  # runs shorter than this count towards restart backoff
AUTO_REMOVED_KEPT = 256  # exit states of --rm containers kept for the sessions that report them
NONE_LOG_WINDOW = 1 << 20  # --log-driver none: output kept for attached readers, then rotated away


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    root: str = "/var/lib/varpod"
    run_root: str = "/run/varpod"
    default_runtime: str = "runc"
    runtimes: dict[str, list[str]] = {}
    drain_timeout: float = 5.0
    log_size_max: int = 0
    log_keep: int = 2
    exit_accounting: bool = False


class Run:
    """One start of a container: its init pid, exit future and stdio."""

    def __init__(self, pid: int, exited: asyncio.Future[ExitInfo], io: ContainerIO | None) -> None:
        self.pid = pid
        self.exited = exited
        self.io = io
        self.started = time.monotonic_ns()
        self.handler: asyncio.Task | None = None


class Live:
    """In-memory companions of a container; every field is guarded by its lock."""

    def __init__(self) -> None:
        self.log: LogWriter | None = None
        self.run: Run | None = None
        self.restart_task: asyncio.Task | None = None
        self.quick_restarts = 0
        self.tty_size: tuple[int, int] = (0, 0)  # rows, cols: kept for the next start
        self.waiters: list[tuple[frozenset[State], asyncio.Future[ContainerRecord]]] = []


class Engine:
    def __init__(
        self,
        config: EngineConfig,
        store: Store,
        runtimes: RuntimeRegistry,
        events: EventBus,
        monitor: Monitor,
        parts: Parts | None = None,
    ) -> None:
        self.config = config
        self.parts = parts or Parts()
        self._store = store
        self._runtimes = runtimes
        self._events = events
        self._monitor = monitor
        self._locks = Locks()
        self._live: dict[str, Live] = {}
        self._tasks = Tasks()
        self.execs = ExecSessions(self, store, runtimes, events, monitor, self._tasks)
        for d in (config.root, self._containers_dir(), config.run_root, self._bundles_dir(),
                  os.path.join(config.run_root, "cs")):
            os.makedirs(d, mode=0o700, exist_ok=True)
        # Present only between a clean shutdown and the next start: without it the
        # last daemon crashed, and logs it was appending to are checked in full.
        self._clean_marker = os.path.join(config.root, "clean-shutdown")
        self.unclean_start = not os.path.exists(self._clean_marker)
        if not self.unclean_start:
            os.unlink(self._clean_marker)
        self.ledger = ExitLedger(os.path.join(config.run_root, "acct"), config.exit_accounting)
        # The last states of containers removed on exit (--rm), newest last.
        self._auto_removed: dict[str, ContainerState] = {}
        self._exit_handlers: dict[str, asyncio.Task] = {}  # the current run's, until it is done

    # -- paths --------------------------------------------------------------------

    def _containers_dir(self) -> str:
        return os.path.join(self.config.root, "containers")

    def _bundles_dir(self) -> str:
        return os.path.join(self.config.run_root, "containers")

    def bundle_dir(self, cid: str) -> str:
        return os.path.join(self._bundles_dir(), check_id(cid))

    def data_dir(self, cid: str) -> str:
        return os.path.join(self._containers_dir(), check_id(cid))

    def log_path(self, cid: str) -> str:
        return os.path.join(self.data_dir(cid), "ctr.log")

    def _runtime_log(self, cid: str) -> str:
        return os.path.join(self.bundle_dir(cid), "runtime.log")

    def console_path(self, token: str) -> str:
        # Short on purpose: a Unix socket path must fit in 108 bytes.
        return os.path.join(self.config.run_root, "cs", token[:16])

    # -- helpers --------------------------------------------------------------------

    def _live_of(self, cid: str) -> Live:
        live = self._live.get(cid)
        if live is None:
            live = self._live[cid] = Live()
        return live

    def resolve(self, ref: str) -> ContainerRecord:
        return self._store.find(ref)

    def _save(self, rec: ContainerRecord, *, with_config: bool = False) -> ContainerRecord:
        # Only update() changes a config; every other save writes the state alone.
        rec = self._store.save_record(rec) if with_config else self._store.save(rec)
        live = self._live.get(rec.id)
        if live is not None and live.waiters:
            state = rec.state.state
            keep = []
            for states, fut in live.waiters:
                if fut.done():
                    continue
                if state in states:
                    fut.set_result(rec)
                else:
                    keep.append((states, fut))
            live.waiters = keep
        return rec

    def _emit(self, rec: ContainerRecord, action: str, **attributes: object) -> None:
        self._events.emit("container", action, rec.id, rec.name, **attributes)

    def _refuse(self, rec: ContainerRecord, action: Action) -> State:
        try:
            return next_state(rec.state.state, action, who=f"container {rec.name}")
        except InvalidState as e:
            e.id = rec.id
            raise

    def _cancel_restart(self, cid: str) -> None:
        live = self._live.get(cid)
        if live is not None and live.restart_task is not None:
            live.restart_task.cancel()
            live.restart_task = None

    def log_writer(self, rec: ContainerRecord) -> LogWriter:
        live = self._live_of(rec.id)
        if live.log is None:
            os.makedirs(self.data_dir(rec.id), mode=0o700, exist_ok=True)
            size_max = self.config.log_size_max if rec.config.log_size_max < 0 else rec.config.log_size_max
            keep = self.config.log_keep
            if rec.config.log_driver == "none":  # kept only for live readers: a window, not a log
                size_max, keep = NONE_LOG_WINDOW, 1
            live.log = LogWriter(self.log_path(rec.id), size_max=size_max, keep=keep,
                                 verify=self.unclean_start)
        return live.log

    def current_log(self, cid: str) -> LogWriter | None:
        live = self._live.get(cid)
        return live.log if live is not None else None

    # -- create -------------------------------------------------------------------

    async def create(self, opts: CreateOptions) -> ContainerRecord:
        name = self._unused_name() if opts.name is None else check_name(opts.name)
        rootfs = self._check_rootfs(opts.rootfs) if opts.rootfs else ""
        if any("\0" in a for a in opts.command) or any("\0" in e for e in opts.env):
            raise InvalidConfig("arguments and environment cannot contain NUL bytes", field="command")
        for item in opts.env:
            key = item.partition("=")[0]
            if not key or "=" not in item:
                raise InvalidConfig(f"environment entry {item[:80]!r} is not KEY=VALUE", field="env")
        if opts.workdir and not opts.workdir.startswith("/"):
            raise InvalidConfig(f"working directory {opts.workdir!r} is not absolute", field="workdir")
        if opts.stop_timeout < 0:
            raise InvalidConfig("stop timeout must be >= 0", field="stop_timeout")
        if opts.hostname and (len(opts.hostname) > 64 or "/" in opts.hostname or "\0" in opts.hostname):
            raise InvalidConfig(f"invalid hostname {opts.hostname[:80]!r}", field="hostname")
        restart = RestartPolicy.parse(opts.restart_policy)
        resources = Resources().updated(memory=opts.memory, cpus=opts.cpus,
                                        pids_limit=opts.pids_limit, cpu_shares=opts.cpu_shares)
        if opts.auto_remove and restart.name != "no":
            raise InvalidConfig("--rm and a restart policy cannot be combined", field="restart_policy")
        self._runtimes.get(opts.runtime)  # unknown runtime: refuse now, not at start
        if rootfs:
            resolve_user(rootfs, opts.user or "0:0")  # an unknown user fails here, not at start
        config = ContainerConfig(
            id=new_id(), name=name, rootfs=rootfs, command=list(opts.command), env=list(opts.env),
            workdir=opts.workdir or "/", user=opts.user or "0:0", hostname=opts.hostname,
            tty=opts.tty, stdin=opts.stdin, runtime=opts.runtime or self._runtimes.default,
            restart=restart, stop_signal=parse_signal(opts.stop_signal or "SIGTERM"),
            stop_timeout=opts.stop_timeout, network=opts.network, read_only=opts.read_only,
            labels=dict(opts.labels), auto_remove=opts.auto_remove,
            log_size_max=opts.log_size_max, created_at=time.time_ns(), resources=resources,
            **host_config_fields(opts),
        )
        config = await self.parts.create(opts, config)
        rec = ContainerRecord(config, ContainerState())
        try:
            if not config.rootfs:
                raise InvalidConfig("a root filesystem directory or an image is required",
                                    field="rootfs")
            if not config.command:
                raise InvalidConfig("a command is required", field="command")
            self._store.add(rec)
        except BaseException:
            await self.parts.discard(config)  # what the parts took for it
            raise
        self._emit(rec, "create")
        return rec

    @staticmethod
    def _check_rootfs(path: str) -> str:
        if not isinstance(path, str) or "\0" in path:
            raise InvalidConfig("invalid root filesystem path", field="rootfs")
        rootfs = os.path.realpath(path)
        if not os.path.isdir(rootfs):
            raise RootfsNotFound(f"rootfs {path!r} is not a directory", field="rootfs", path=path[:4096])
        return rootfs

    def _unused_name(self) -> str:
        for _ in range(100):
            name = random_name()
            try:
                self._store.find(name)
            except NoSuchContainer:
                return name
        return "ctr_" + new_id()[:12]

    # -- init / start ---------------------------------------------------------------

    async def init(self, ref: str) -> ContainerRecord:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._refuse(rec, Action.INIT)
            self._cancel_restart(cid)
            rec = await self._launch(rec, start=False)
        return rec

    async def start(self, ref: str, tty_size: tuple[int, int] | None = None) -> ContainerRecord:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._refuse(rec, Action.START)
            self._cancel_restart(cid)
            if tty_size and all(tty_size):
                self._live_of(cid).tty_size = tty_size
                run = self._live_of(cid).run
                if run is not None and run.io is not None and run.io.master >= 0:
                    run.io.resize(*tty_size)
            if rec.state.state is State.CREATED:
                rec = await self._start_created(rec)
            else:
                rec = await self._launch(rec.with_state(stopped_by_user=False), start=True)
        return rec

    async def _start_created(self, rec: ContainerRecord) -> ContainerRecord:
        runtime = self._runtimes.get(rec.config.runtime)
        await runtime.start(rec.id, self._runtime_log(rec.id))
        rec = self._save(rec.with_state(state=State.RUNNING, started_at=time.time_ns(),
                                        finished_at=0, stopped_by_user=False))
        self._emit(rec, "start")
        return rec

    async def _prepare_bundle(self, rec: ContainerRecord) -> Launch:
        """The bundle with its config.json, once every part has prepared (and said what the
        spec needs); a part that fails leaves nothing prepared behind."""
        bundle = self.bundle_dir(rec.id)
        os.makedirs(bundle, mode=0o700, exist_ok=True)
        launch = Launch(bundle)
        await self.parts.prepare(rec, launch)
        try:
            spec = launch.apply(oci_config(rec.config, bundle, self._live_of(rec.id).tty_size))
            with open(os.path.join(bundle, "config.json"), "wb") as f:
                f.write(msgspec.json.encode(spec))
        except BaseException:
            launch.close()
            await self.parts.release(rec)
            raise
        return launch

    async def _launch(self, rec: ContainerRecord, *, start: bool) -> ContainerRecord:
        """Create the container in the runtime (and start it): stdio wired, monitor armed."""
        runtime = self._runtimes.get(rec.config.runtime)
        live = self._live_of(rec.id)
        runtime_log = self._runtime_log(rec.id)
        if rec.state.state in (State.STOPPED, State.UNKNOWN):
            await runtime.delete(rec.id, runtime_log, force=True)
        launch = await self._prepare_bundle(rec)
        bundle = launch.bundle
        logw = self.log_writer(rec)
        logw.finished = False
        tty = rec.config.tty
        io = ContainerIO(bundle, logw, stdin=rec.config.stdin, tty=tty,
                         console_path=self.console_path(rec.id) if tty else "")
        pid_file = os.path.join(bundle, "pid")
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        stdio = io.open()
        launched_at = time.time_ns()
        console = asyncio.ensure_future(io.receive_console(*live.tty_size)) if tty else None
        try:
            with self._monitor.hold_reaping():
                await launch.create(lambda: runtime.create(
                    rec.id, bundle, pid_file=pid_file, log_path=runtime_log, stdio=stdio,
                    start=start, console_socket=io.console_path if tty else None))
                if console is not None:
                    await asyncio.wait_for(console, CONSOLE_TIMEOUT)
                pid = _read_pid(pid_file)
                exited = self._monitor.watch(pid)
        except BaseException as e:
            if console is not None:
                console.cancel()
            io.close()
            logw.finish()  # followers waiting for this run end with it
            await _quietly(runtime.delete(rec.id, runtime_log, force=True))
            await self.parts.release(rec)
            if isinstance(e, VarpodError):
                self._save(rec.with_state(error=e.message))
            raise
        io.close_container_side()
        run = Run(pid, exited, io)
        live.run = run
        self._watch_exit(rec.id, run)
        now = time.time_ns()
        changes: dict = {"state": State.CREATED, "pid": pid, "error": "", "exit_code": 0,
                         "exit_code_known": True, "launched_at": launched_at}
        if start:
            changes.update(state=State.RUNNING, started_at=now, finished_at=0)
        rec = self._save(rec.with_state(**changes))
        self._emit(rec, "init")
        if start:
            self._emit(rec, "start")
        return rec

    # -- exits, cleanup, restart policy ---------------------------------------------------

    def _watch_exit(self, cid: str, run: Run) -> None:
        run.handler = task = self._tasks.spawn(self._handle_exit(cid, run), name=f"exit-{cid[:12]}")
        self._exit_handlers[cid] = task

        def done(_: asyncio.Task) -> None:
            if self._exit_handlers.get(cid) is task:
                del self._exit_handlers[cid]

        task.add_done_callback(done)

    async def exit_handled(self, cid: str) -> ContainerState | None:
        """The container's exit state; for a --rm container once it is removed, as podman's
        `run --rm` ends only then (the next `ps -a` must not list it)."""
        state = self.exit_status(cid)
        task = self._exit_handlers.get(cid)
        try:
            auto_remove = self._store.get(cid).config.auto_remove
        except NoSuchContainer:
            auto_remove = False
        if task is not None and auto_remove:
            await asyncio.wait([task], timeout=KILL_GRACE + self.config.drain_timeout)
            state = self.exit_status(cid) or state
        return state

    async def _handle_exit(self, cid: str, run: Run) -> None:
        info = await run.exited
        # Drain the pipes before reporting the exit: the last lines must reach the log.
        if run.io is not None:
            await run.io.drained(self.config.drain_timeout)
            run.io.close()
        restart = False
        async with self._locks.hold(cid):
            live = self._live.get(cid)
            if live is None or live.run is not run:
                return  # superseded: removed, or taken over by remove/re-adoption
            live.run = None
            try:
                rec = self._store.get(cid)
            except NoSuchContainer:
                return
            if live.log is not None:
                live.log.finish()
            try:
                rec = self._record_death(rec, info, run.pid)
            except InvalidState:
                log.error("BUG: container %s died while %s; exit not recorded", cid, rec.state.state)
                return
            await self.execs.settle(cid, self.config.drain_timeout)  # they die with its pid namespace
            rec = await self._cleanup_locked(rec)
            quick = time.monotonic_ns() - run.started < QUICK_RUN_NS
            live.quick_restarts = live.quick_restarts + 1 if quick else 0
            restart = self._should_restart(rec)
            if restart:
                delay = min(0.1 * 2 ** max(live.quick_restarts - 1, 0), 10.0)
                live.restart_task = self._tasks.spawn(self._restart_later(cid, delay),
                                                      name=f"restart-{cid[:12]}")
        if rec.config.auto_remove and not restart:
            self._auto_removed[cid] = rec.state  # attach sessions ending now still report it
            while len(self._auto_removed) > AUTO_REMOVED_KEPT:
                del self._auto_removed[next(iter(self._auto_removed))]
            try:
                await self.remove(cid)
            except NoSuchContainer:
                pass

    def _record_death(self, rec: ContainerRecord, info: ExitInfo | None, pid: int) -> ContainerRecord:
        """DIED: the exit code from waitid, else from the exit ledger, else unknown."""
        new = next_state(rec.state.state, Action.DIED)
        if info is None or not info.known:
            found = self.ledger.lookup(pid, rec.state.launched_at or rec.state.started_at)
            if found is not None:
                info = found
        known = info is not None and info.known
        code = info.code if known else -1
        finished = info.time if info is not None and info.time else time.time_ns()
        rec = self._save(rec.with_state(state=new, pid=0, exit_code=code, exit_code_known=known,
                                        finished_at=finished))
        self._emit(rec, "died", exitCode=code if known else "unknown")
        return rec

    async def _cleanup_locked(self, rec: ContainerRecord) -> ContainerRecord:
        """After the init's death: the runtime's delete and the parts' ``exited`` overlap."""
        runtime = self._runtimes.get(rec.config.runtime)
        # The parts first: a network's DELs take longer than runc's delete.
        _, deleted = await asyncio.gather(self.parts.exited(rec),
                                          runtime.delete(rec.id, self._runtime_log(rec.id), force=True),
                                          return_exceptions=True)
        if isinstance(deleted, RuntimeFailed):
            log.error("cleanup of %s failed: %s", rec.id, deleted)
            return self._save(rec.with_state(error=deleted.message))
        if isinstance(deleted, BaseException):
            raise deleted
        await self.parts.release(rec)
        rec = self._save(rec.with_state(state=next_state(rec.state.state, Action.CLEANUP)))
        self._emit(rec, "cleanup")
        return rec

    @staticmethod
    def _should_restart(rec: ContainerRecord) -> bool:
        policy, st = rec.config.restart, rec.state
        if st.stopped_by_user or policy.name == "no":
            return False
        if policy.name in ("always", "unless-stopped"):
            return True
        failed = st.exit_code != 0 or not st.exit_code_known
        return failed and (policy.max_retries == 0 or st.restart_count < policy.max_retries)

    async def _restart_later(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._locks.hold(cid):
            live = self._live.get(cid)
            if live is not None:
                live.restart_task = None
            try:
                rec = self._store.get(cid)
            except NoSuchContainer:
                return
            if rec.state.state not in (State.EXITED, State.STOPPED) or rec.state.stopped_by_user:
                return
            rec = rec.with_state(restart_count=rec.state.restart_count + 1)
            try:
                await self._launch(rec, start=True)
            except VarpodError as e:
                log.error("restart of %s failed: %s", rec.name, e)

    # -- stop / kill / pause ------------------------------------------------------------

    async def stop(self, ref: str, timeout: int | None = None) -> ContainerRecord:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._cancel_restart(cid)
            self._refuse(rec, Action.STOP)
            self.parts.check(rec, Action.STOP)
            run = self._live_of(cid).run
            if run is None:  # the runtime has it but we do not watch it: ask the runtime
                raise InvalidState(f"container {rec.name} has no monitored process; run sync",
                                   id=cid, state=rec.state.state.value)
            if timeout is None:
                timeout = rec.config.stop_timeout
            if rec.state.state is not State.STOPPING or not rec.state.stopped_by_user:
                rec = self._save(rec.with_state(state=State.STOPPING, stopped_by_user=True))
            sig = signal.SIGKILL if timeout == 0 else rec.config.stop_signal
            await self._signal(rec, run, sig)
        # The lock is released while we wait, so inspect, list and kill proceed (podman#8501).
        # After a SIGKILL, --all is for an init that outlives it, not the first resort.
        if not await _wait_done(run.exited, KILL_FIRST if sig == signal.SIGKILL else timeout):
            async with self._locks.hold(cid):
                await self._signal(rec, run, signal.SIGKILL, all=True)
            if not await _wait_done(run.exited, KILL_GRACE):
                raise StopTimeout(f"container {rec.name} did not exit after SIGKILL", id=cid)
        rec = await self._settled(cid, run)
        self._emit(rec, "stop")
        return rec

    async def _signal(self, rec: ContainerRecord, run: Run | None, sig: int, *,
                      all: bool = False) -> None:
        """What ``runc kill`` would do: to the init through our pidfd when we watch it and
        that is all runc would do (one signal, not ``--all``; not paused, where runc thaws
        for SIGKILL), else through the runtime, whose spawn per signal made a pod's
        teardown start a runc for every member."""
        if (run is not None and not all and rec.state.state is not State.PAUSED
                and self._monitor.signal(run.pid, int(sig))):
            return
        runtime = self._runtimes.get(rec.config.runtime)
        try:
            await runtime.kill(rec.id, int(sig), self._runtime_log(rec.id), all=all)
        except RuntimeFailed:
            if run is None or (not run.exited.done() and alive(run.pid)):
                raise  # a real failure, not the race with an exit

    async def _settled(self, cid: str, run: Run) -> ContainerRecord:
        """The record once the exit handler has recorded the death and cleaned up."""
        if run.handler is not None:
            await asyncio.wait([run.handler])
        try:
            return self._store.get(cid)
        except NoSuchContainer:  # auto-removed on exit
            return ContainerRecord(ContainerConfig(id=cid, name=cid, rootfs="", command=[]),
                                   ContainerState(state=State.EXITED))

    async def kill(self, ref: str, sig: int | str = signal.SIGKILL) -> ContainerRecord:
        number = parse_signal(sig)
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._refuse(rec, Action.KILL)
            self.parts.check(rec, Action.KILL)
            await self._signal(rec, self._live_of(cid).run, number)
            rec = self._save(rec.with_state(stopped_by_user=True))
            self._emit(rec, "kill", signal=number)
        return rec

    async def pause(self, ref: str) -> ContainerRecord:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            new = self._refuse(rec, Action.PAUSE)
            await self._runtimes.get(rec.config.runtime).pause(cid, self._runtime_log(cid))
            rec = self._save(rec.with_state(state=new))
            self._emit(rec, "pause")
        return rec

    async def unpause(self, ref: str) -> ContainerRecord:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            new = self._refuse(rec, Action.UNPAUSE)
            await self._runtimes.get(rec.config.runtime).resume(cid, self._runtime_log(cid))
            rec = self._save(rec.with_state(state=new))
            self._emit(rec, "unpause")
        return rec

    async def update(self, ref: str, *, memory: int | None = None, cpus: float | None = None,
                     pids_limit: int | None = None, cpu_shares: int | None = None) -> ContainerRecord:
        """New resource limits: applied by the runtime where a cgroup exists, and saved
        for every later start. None leaves a limit as it is."""
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._refuse(rec, Action.UPDATE)
            resources = rec.config.resources.updated(memory=memory, cpus=cpus,
                                                     pids_limit=pids_limit, cpu_shares=cpu_shares)
            if rec.state.state in (State.CREATED, State.RUNNING, State.PAUSED):
                path = os.path.join(self.bundle_dir(cid), "resources.json")
                with open(path, "wb") as f:
                    f.write(msgspec.json.encode(update_resources(resources)))
                await self._runtimes.get(rec.config.runtime).update(cid, path, self._runtime_log(cid))
            config = msgspec.structs.replace(rec.config, resources=resources)
            rec = self._save(ContainerRecord(config, rec.state), with_config=True)
            changed = {"memory": memory, "cpus": cpus, "pidsLimit": pids_limit,
                       "cpuShares": cpu_shares}
            self._emit(rec, "update", **{k: v for k, v in changed.items() if v is not None})
        return rec

    async def restart(self, ref: str, timeout: int | None = None) -> ContainerRecord:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._refuse(rec, Action.RESTART)
            self.parts.check(rec, Action.RESTART)
            self._cancel_restart(cid)
            state = rec.state.state
        if state is State.PAUSED:
            await self.unpause(cid)
        if state in LIVE_STATES:
            try:
                await self.stop(cid, timeout)
            except ContainerStopped:
                pass
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            if rec.state.state is not State.UNKNOWN:  # unknown: _launch deletes whatever is left
                self._refuse(rec, Action.START)
            rec = await self._launch(rec.with_state(stopped_by_user=False), start=True)
            self._emit(rec, "restart")
        return rec

    # -- checkpoint / restore ---------------------------------------------------------------------

    async def checkpoint_support(self, ref: str, action: Action) -> None:
        """Refuse with the reason the runtime's probe gave (CRIU is broken on some kernels).

        varpod does not implement checkpoint/restore beyond this probe yet: it could not be
        exercised where it was built (CRIU 3.17 fails ``criu check`` there).
        """
        rec = self.resolve(ref)
        self._refuse(rec, action)
        runtime = self._runtimes.get(rec.config.runtime)
        features = (await runtime.info()).features
        if not features.checkpoint:
            raise Unsupported(f"{action.value} needs CRIU, which does not work with runtime "
                              f"{runtime.name} here: {features.checkpoint_error}", feature=action.value)
        raise Unsupported(f"{action.value} is not implemented by this varpod build (CRIU was not "
                          "usable where it was built, so it could not be tested)", feature=action.value)

    # -- attach support -------------------------------------------------------------------------

    def check_attach(self, ref: str, *, start: bool) -> ContainerRecord:
        """Refuse before any stream starts: attach needs created/running, or a startable one."""
        rec = self.resolve(ref)
        self._refuse(rec, Action.START if start else Action.ATTACH)
        return rec

    def stdin_of(self, cid: str) -> StdinWriter | None:
        """The current run's stdin (changes when the container restarts)."""
        live = self._live.get(cid)
        if live is None or live.run is None or live.run.io is None:
            return None
        return live.run.io.stdin

    async def resize(self, ref: str, rows: int, cols: int) -> None:
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise InvalidConfig(f"terminal size {rows}x{cols} is out of range", field="height")
        rec = self.resolve(ref)
        self._refuse(rec, Action.RESIZE)
        if not rec.config.tty:
            raise InvalidState(f"container {rec.name} has no terminal to resize", id=rec.id,
                               state=rec.state.state.value)
        live = self._live_of(rec.id)
        live.tty_size = (rows, cols)
        if live.run is not None and live.run.io is not None and live.run.io.master >= 0:
            live.run.io.resize(rows, cols)

    async def signal_winch(self, cid: str) -> None:
        """After an attach, so full-screen programs redraw (best effort)."""
        rec = self._store.get(cid)
        if rec.config.tty and rec.state.state is State.RUNNING:
            try:
                live = self._live.get(cid)
                await self._signal(rec, live.run if live else None, signal.SIGWINCH)
            except RuntimeFailed as e:
                log.debug("SIGWINCH to %s: %s", rec.name, e)

    def exit_status(self, cid: str) -> ContainerState | None:
        try:
            return self._store.get(cid).state
        except NoSuchContainer:
            return self._auto_removed.get(cid)

    # -- wait ---------------------------------------------------------------------------------

    async def wait_for(self, ref: str, states: Iterable[State]) -> ContainerRecord:
        """Block until the container enters one of ``states`` (now counts)."""
        wanted = frozenset(states)
        rec = self.resolve(ref)
        if rec.state.state in wanted:
            return rec
        fut: asyncio.Future[ContainerRecord] = asyncio.get_running_loop().create_future()
        live = self._live_of(rec.id)
        live.waiters.append((wanted, fut))
        try:
            return await fut
        finally:
            if not fut.done():
                fut.cancel()
            live.waiters = [(s, f) for s, f in live.waiters if f is not fut]

    async def wait(self, ref: str, conditions: Iterable[str] = ()) -> ContainerRecord:
        states = []
        for c in conditions:
            try:
                states.append(State(c))
            except ValueError:
                raise InvalidConfig(f"unknown wait condition {c!r}", field="conditions") from None
        return await self.wait_for(ref, states or (State.STOPPED, State.EXITED))

    # -- remove ---------------------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, timeout: int | None = None,
                     volumes: bool = False) -> str:
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self.parts.check(rec, Action.REMOVE)
            self._cancel_restart(cid)
            state = rec.state.state
            if state in (State.RUNNING, State.PAUSED, State.STOPPING) and not force:
                raise InvalidState(
                    f"container {rec.name} is {state.value}; stop it first or remove with force",
                    id=cid, state=state.value)
        if state is State.PAUSED:
            await _quietly(self.unpause(cid))
        if state in (State.RUNNING, State.PAUSED, State.STOPPING):
            try:
                await self.stop(cid, 0 if timeout is None else timeout)
            except (ContainerStopped, InvalidState):
                pass
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            self._refuse(rec, Action.REMOVE)
            in_runtime = rec.state.state not in (State.CONFIGURED, State.EXITED)
            rec = self._save(rec.with_state(state=State.REMOVING))
            await self._dispose(rec, in_runtime, volumes)
            self._emit(rec, "remove")
        return cid

    async def _dispose(self, rec: ContainerRecord, in_runtime: bool = True, volumes: bool = False) -> None:
        """Everything the container owns goes: runtime state, stdio, bundle, logs, rows.

        ``in_runtime`` False (configured, or exited and cleaned up) skips a runtime call.
        """
        cid = rec.id
        live = self._live.pop(cid, None)
        if in_runtime or (live is not None and live.run is not None):
            runtime = self._runtimes.get(rec.config.runtime)
            await runtime.delete(cid, self._runtime_log(cid), force=True)
        if live is not None:
            run, live.run = live.run, None
            if run is not None:
                await _wait_done(run.exited, KILL_GRACE)
                if run.io is not None:
                    run.io.close()
                if run.handler is not None:
                    run.handler.cancel()
            if live.restart_task is not None:
                live.restart_task.cancel()
            if live.log is not None:
                live.log.finish()
                live.log.close()
            for _, fut in live.waiters:
                if not fut.done():
                    fut.set_exception(NoSuchContainer(f"container {rec.name} was removed",
                                                      name=rec.name))
        self.execs.drop_container(cid)
        await self.parts.release(rec)
        await self.parts.discard(rec.config, volumes=volumes)
        await remove_trees(self.bundle_dir(cid), self.data_dir(cid))
        self._store.delete(cid)
        self._locks.drop(cid)
        memory.trim_soon()  # its config (an 8 MiB env value...) and stdio go back to the kernel

    # -- queries --------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever any container's record does."""
        return self._store.version

    @contextlib.asynccontextmanager
    async def locked(self, ref: str) -> AsyncIterator[ContainerRecord]:
        """A container's record under its lock, for a part's own operation on it (network
        connect, reload): serialised with every lifecycle operation, as those are."""
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            yield self._store.get(cid)

    def inspect(self, ref: str) -> ContainerRecord:
        return self.resolve(ref)

    def list(self, all: bool = False) -> list[ContainerRecord]:
        recs = self._store.all()
        if all:
            return list(recs)
        return [r for r in recs if r.state.state in LIVE_STATES]

    async def sync(self, ref: str) -> ContainerRecord:
        """Ask the runtime for the real state; save only if it changed."""
        cid = self.resolve(ref).id
        async with self._locks.hold(cid):
            rec = self._store.get(cid)
            new = await self._runtime_state(rec)
            if new is not None and new != rec.state:
                rec = self._save(ContainerRecord(rec.config, new))
                self._emit(rec, "sync")
        return rec

    async def _runtime_state(self, rec: ContainerRecord) -> ContainerState | None:
        if rec.state.state not in LIVE_STATES:
            return None
        run = self._live_of(rec.id).run
        runtime = self._runtimes.get(rec.config.runtime)
        try:
            st = await runtime.state(rec.id, self._runtime_log(rec.id))
        except ContainerNotInRuntime:
            return msgspec.structs.replace(rec.state, state=State.EXITED, exit_code=-1,
                                           exit_code_known=False, pid=0,
                                           finished_at=rec.state.finished_at or time.time_ns())
        if st.status == "stopped" and run is not None:
            return None  # the monitor is about to report it, with the exit code
        mapping = {"created": State.CREATED, "running": State.RUNNING, "paused": State.PAUSED,
                   "stopped": State.STOPPED}
        state = mapping[st.status]
        if rec.state.state is State.STOPPING and state is State.RUNNING:
            state = State.STOPPING
        return msgspec.structs.replace(rec.state, state=state, pid=st.pid)

    # -- daemon start and stop -----------------------------------------------------------------

    async def recover(self) -> None:
        """Re-adopt what survived a daemon restart; settle what did not; collect leftovers."""
        self.ledger.start()
        seen = await self._runtime_containers()
        records = list(self._store.all())
        surviving = {cid for cid, (_, st) in seen.items() if st.status != "stopped" and alive(st.pid)}
        await self.parts.recover(records, surviving)
        for rec in records:
            found = seen.pop(rec.id, None)
            try:
                await self._recover_one(rec, found[1] if found else None)
            except Exception:
                log.exception("recovering container %s failed", rec.id)
        self.execs.recover()
        for cid, (runtime, _) in seen.items():  # in the runtime, unknown to the store
            log.warning("deleting runtime container %s that no record owns", cid)
            await _quietly(runtime.delete(cid, None, force=True))
        self._collect_stale()
        self.ledger.forget_old()
        if self.ledger.enabled:
            self._tasks.spawn(self._rotate_ledger(), name="acct-rotate")

    async def _runtime_containers(self) -> dict[str, tuple[OCIRuntime, RuntimeState]]:
        """Every container the runtimes hold, once none is still being created: a `runc run`
        the last daemon started before it died goes on without it, and is adopted finished."""
        deadline = time.monotonic() + CREATING_GRACE
        while True:
            seen: dict[str, tuple[OCIRuntime, RuntimeState]] = {}
            for runtime in self._runtimes.available():
                try:
                    for cid, st in (await runtime.list()).items():
                        seen[cid] = (runtime, st)
                except VarpodError as e:
                    log.error("listing %s containers failed: %s", runtime.name, e)
            if time.monotonic() > deadline or all(st.status != "creating" for _, st in seen.values()):
                return seen
            await asyncio.sleep(0.05)

    async def _rotate_ledger(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.ledger.rotate_if_large()

    async def _recover_one(self, rec: ContainerRecord, st: RuntimeState | None) -> None:
        cid = rec.id
        async with self._locks.hold(cid):
            state = rec.state.state
            if state is State.REMOVING:
                await self._dispose(rec, in_runtime=st is not None)
                self._emit(rec, "remove")
                return
            running = st is not None and st.status != "stopped" and alive(st.pid)
            if running:
                # Running: adopt it, whatever the record said (a start the crash cut
                # short still started it). A stop the crash interrupted is finished.
                self._adopt(rec, st.pid, st.status)
                if state is State.STOPPING:
                    self._tasks.spawn(self.stop(cid), name=f"stop-{cid[:12]}")
                return
            if state in LIVE_STATES:  # it ended while no daemon watched
                rec = self._record_death(rec, None, rec.state.pid)
                state = rec.state.state
            if state is State.STOPPED or (st is not None and st.status == "stopped"):
                rec = await self._cleanup_locked(rec)
                if self._should_restart(rec) and rec.state.state is State.EXITED:
                    live = self._live_of(cid)
                    live.restart_task = self._tasks.spawn(self._restart_later(cid, 0.0),
                                                          name=f"restart-{cid[:12]}")

    def _adopt(self, rec: ContainerRecord, pid: int, status: str) -> None:
        """Watch a container started by an earlier daemon and resume copying its output."""
        io = ContainerIO.reopen(self.bundle_dir(rec.id), self.log_writer(rec))
        run = Run(pid, self._monitor.watch(pid), io)
        live = self._live_of(rec.id)
        live.run = run
        self._watch_exit(rec.id, run)
        state = {"running": State.RUNNING, "paused": State.PAUSED, "created": State.CREATED}[status]
        if state is not rec.state.state or pid != rec.state.pid:
            log.warning("container %s was %s, the runtime says %s", rec.name, rec.state.state, status)
            changes: dict = {"state": state, "pid": pid}
            if not rec.state.started_at and state is not State.CREATED:
                changes["started_at"] = time.time_ns()
            rec = self._save(rec.with_state(**changes))
        log.info("re-adopted container %s (pid %d, %s)", rec.name, pid, status)

    def _collect_stale(self) -> None:
        """Bundles and log directories of containers the store no longer knows."""
        known = {r.id for r in self._store.all()}
        for parent in (self._bundles_dir(), self._containers_dir()):
            for name in os.listdir(parent):
                if name not in known:
                    log.info("removing stale %s", os.path.join(parent, name))
                    shutil.rmtree(os.path.join(parent, name), ignore_errors=True)

    async def shutdown(self) -> None:
        """Stop watching without touching containers: they keep running."""
        # Half-done exits and cleanups are finished by recover() on the next start.
        await self._tasks.cancel_all()
        for live in self._live.values():
            if live.run is not None and live.run.io is not None:
                live.run.io.close()
            if live.log is not None:
                live.log.close()
        with open(self._clean_marker, "w"):
            pass


def _read_pid(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


async def _wait_done(fut: asyncio.Future, timeout: float) -> bool:
    if fut.done():
        return True
    try:
        await asyncio.wait_for(asyncio.shield(fut), timeout)
    except TimeoutError:
        return False
    return True


async def _quietly(coro) -> None:
    try:
        await coro
    except Exception as e:  # best effort on an error path that already has an error
        log.debug("ignored during cleanup: %s", e)
