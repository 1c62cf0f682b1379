"""Exec sessions: one ``runc exec --detach`` each, watched like a container's init.

A session never holds the container lock while it runs (podman#26588): it
checks that the container is running, launches, and is on its own. One
runtime invocation per exec, no ``runc state`` (containerd#3711): the pidfd
says when it ends and ``waitid`` gives the exit code. Output goes to a small
log of its own in the bundle (tmpfs) that attached clients follow, exactly
as they follow a container's log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from .errors import ExecSessionActive, InvalidConfig, InvalidState, NoSuchExecSession, VarpodError
from .logfile import DISCARD_IN_THREAD, LogWriter
from .model import new_id
from .monitor import ExitInfo, alive
from .paths import discard_tree
from .spec import capabilities, exec_process
from .states import Action, State, next_state
from .stdio import ContainerIO, StdinWriter

if TYPE_CHECKING:
    from .engine import Engine
    from .events import EventBus
    from .monitor import Monitor
    from .runtime import RuntimeRegistry
    from .store import Store
    from .tasks import Tasks

log = logging.getLogger("varpod.exec")

EXEC_LOG_MAX = 64 << 20  # attached readers lagging more than this (x2, with the rotated file) see a gap
KEEP_EXITED = 64  # exited sessions kept per container for inspect; older ones are dropped
STOP_GRACE = 10.0


class ExecConfig(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    container_id: str
    command: list[str]
    env: list[str] = []
    workdir: str = ""
    user: str = ""
    tty: bool = False
    stdin: bool = False
    privileged: bool = False
    cap_add: list[str] = []
    detach_keys: str | None = None
    preserve_fds: int = 0


class ExecState(msgspec.Struct, frozen=True, kw_only=True):
    state: str = "created"  # created, running, exited
    pid: int = 0
    exit_code: int = 0
    exit_code_known: bool = True
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0


class ExecRecord(msgspec.Struct, frozen=True):
    config: ExecConfig
    state: ExecState

    @property
    def id(self) -> str:
        return self.config.id

    def with_state(self, **changes: object) -> ExecRecord:
        return ExecRecord(self.config, msgspec.structs.replace(self.state, **changes))


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ExecRecord).decode


class _Live:
    def __init__(self, log_writer: LogWriter) -> None:
        self.log = log_writer
        self.io: ContainerIO | None = None
        self.exited: asyncio.Future[ExitInfo] | None = None
        self.handler: asyncio.Task | None = None
        self.tty_size: tuple[int, int] = (0, 0)


class ExecSessions:
    """Exec sessions beside the containers: the engine's store, runtimes and monitor, shared."""

    def __init__(self, engine: Engine, store: Store, runtimes: RuntimeRegistry, events: EventBus,
                 monitor: Monitor, tasks: Tasks) -> None:
        self._engine = engine
        self._store = store
        self._runtimes = runtimes
        self._events = events
        self._monitor = monitor
        self._tasks = tasks
        self._sessions: dict[str, ExecRecord] = {}
        self._live: dict[str, _Live] = {}
        for sid, _cid, raw in self._store.load_execs():
            try:
                rec = _decode(raw)
            except msgspec.DecodeError:
                log.error("unreadable exec session %s dropped", sid)
                self._store.delete_exec(sid)
                continue
            self._sessions[sid] = rec

    def recover(self) -> None:
        """Sessions an earlier daemon left running: watched again, or settled if gone."""
        for rec in [r for r in self._sessions.values() if r.state.state == "running"]:
            pid = rec.state.pid
            if alive(pid):
                d = self._dir(rec)
                live = self._live[rec.id] = _Live(LogWriter(os.path.join(d, "log"),
                                                            size_max=EXEC_LOG_MAX, keep=1))
                live.io = ContainerIO.reopen(d, live.log)
                live.exited = self._monitor.watch(pid)
                live.handler = self._tasks.spawn(self._handle_exit(rec.id, live),
                                                         name=f"exec-{rec.id[:12]}")
                continue
            info = self._engine.ledger.lookup(pid, rec.state.started_at)
            known = info is not None and info.known
            self._save(rec.with_state(state="exited", pid=0, exit_code=info.code if known else -1,
                                      exit_code_known=known,
                                      finished_at=info.time if known and info.time else time.time_ns()))

    # -- paths --------------------------------------------------------------------------------

    def _dir(self, rec: ExecRecord) -> str:
        return os.path.join(self._engine.bundle_dir(rec.config.container_id), "exec", rec.id)

    # -- records --------------------------------------------------------------------------------

    def _save(self, rec: ExecRecord) -> ExecRecord:
        self._sessions[rec.id] = rec
        self._store.save_exec(rec.id, rec.config.container_id, _encode(rec))
        return rec

    def get(self, sid: str) -> ExecRecord:
        rec = self._sessions.get(sid)
        if rec is None:
            raise NoSuchExecSession(f"no exec session {sid[:80]!r}", id=sid[:80])
        return rec

    def of_container(self, cid: str) -> list[ExecRecord]:
        return [r for r in self._sessions.values() if r.config.container_id == cid]

    def active(self, cid: str) -> list[ExecRecord]:
        return [r for r in self.of_container(cid) if r.state.state == "running"]

    # -- create / start -------------------------------------------------------------------------

    def create(self, ref: str, *, command: list[str], env: Sequence[str] = (), workdir: str = "",
               user: str = "", tty: bool = False, stdin: bool = False, privileged: bool = False,
               cap_add: Sequence[str] = (), detach_keys: str | None = None,
               preserve_fds: int = 0) -> ExecRecord:
        ctr = self._engine.resolve(ref)
        next_state(ctr.state.state, Action.EXEC, who=f"container {ctr.name}")
        if not command:
            raise InvalidConfig("exec needs a command", field="command")
        for item in env:
            if "=" not in item or not item.partition("=")[0]:
                raise InvalidConfig(f"environment entry {item[:80]!r} is not KEY=VALUE", field="env")
        if workdir and not workdir.startswith("/"):
            raise InvalidConfig(f"working directory {workdir!r} is not absolute", field="workdir")
        if not 0 <= preserve_fds <= 64:
            raise InvalidConfig("preserve_fds must be between 0 and 64", field="preserve_fds")
        capabilities(privileged, list(cap_add))  # unknown capability: refuse now
        cfg = ExecConfig(id=new_id(), container_id=ctr.id, command=list(command), env=list(env),
                         workdir=workdir, user=user, tty=tty, stdin=stdin, privileged=privileged,
                         cap_add=list(cap_add), detach_keys=detach_keys, preserve_fds=preserve_fds)
        rec = self._save(ExecRecord(cfg, ExecState(created_at=time.time_ns())))
        self._prune(ctr.id)
        return rec

    def log_writer(self, sid: str) -> LogWriter:
        """The session's output log, made before start so an attach can be placed first."""
        rec = self.get(sid)
        live = self._live.get(sid)
        if live is None:
            d = self._dir(rec)
            os.makedirs(d, mode=0o700, exist_ok=True)
            live = self._live[sid] = _Live(LogWriter(os.path.join(d, "log"), size_max=EXEC_LOG_MAX,
                                                     keep=1))
        return live.log

    async def start(self, sid: str, *, tty_size: tuple[int, int] | None = None,
                    fds: Sequence[int] = ()) -> ExecRecord:
        rec = self.get(sid)
        if rec.state.state != "created":
            raise InvalidState(f"exec session {sid[:12]} is {rec.state.state}; it can start once",
                               id=sid, state=rec.state.state)
        if len(fds) != rec.config.preserve_fds:
            raise InvalidConfig(f"exec session wants {rec.config.preserve_fds} fds, got {len(fds)}",
                                field="preserve_fds")
        engine = self._engine
        ctr = engine.resolve(rec.config.container_id)
        # Checked, not held: the exec runs without the container lock.
        next_state(ctr.state.state, Action.EXEC, who=f"container {ctr.name}")
        runtime = self._runtimes.get(ctr.config.runtime)
        logw = self.log_writer(sid)
        live = self._live[sid]
        if tty_size and all(tty_size):
            live.tty_size = tty_size
        d = self._dir(rec)
        process = exec_process(ctr.config, command=rec.config.command, env=rec.config.env,
                               workdir=rec.config.workdir, user=rec.config.user, tty=rec.config.tty,
                               privileged=rec.config.privileged, cap_add=rec.config.cap_add,
                               tty_size=live.tty_size)
        process_path = os.path.join(d, "process.json")
        with open(process_path, "wb") as f:
            f.write(msgspec.json.encode(process))
        io = ContainerIO(d, logw, stdin=rec.config.stdin, tty=rec.config.tty,
                         console_path=engine.console_path(sid) if rec.config.tty else "")
        pid_file = os.path.join(d, "pid")
        stdio = io.open()
        console = asyncio.ensure_future(io.receive_console(*live.tty_size)) if rec.config.tty else None
        try:
            with self._monitor.hold_reaping():
                await runtime.exec(ctr.id, process_path=process_path, pid_file=pid_file,
                                   log_path=os.path.join(d, "runtime.log"), stdio=stdio,
                                   console_socket=io.console_path if rec.config.tty else None,
                                   extra_fds=fds)
                if console is not None:
                    await asyncio.wait_for(console, 10.0)
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                exited = self._monitor.watch(pid)
        except BaseException:
            if console is not None:
                console.cancel()
            io.close()
            logw.finish()
            raise
        io.close_container_side()
        live.io, live.exited = io, exited
        live.handler = self._tasks.spawn(self._handle_exit(sid, live), name=f"exec-{sid[:12]}")
        rec = self._save(rec.with_state(state="running", pid=pid, started_at=time.time_ns()))
        self._events.emit("container", "exec", ctr.id, ctr.name, execID=sid,
                            command=" ".join(rec.config.command)[:200])
        return rec

    async def _handle_exit(self, sid: str, live: _Live) -> None:
        info = await live.exited
        if not info.known:  # not our child: started before a daemon restart
            rec = self._sessions.get(sid)
            found = self._engine.ledger.lookup(rec.state.pid, rec.state.started_at) if rec else None
            info = found or info
        if live.io is not None:
            drained = await live.io.drained(self._engine.config.drain_timeout)
            log.debug("exec %s exited (%s); output drained: %s, log size %d", sid[:12], info,
                      drained, live.log.size)
            live.io.close()
        rec = self._sessions.get(sid)
        if rec is None:
            return
        code = info.code if info.code is not None else -1
        rec = self._save(rec.with_state(state="exited", pid=0, exit_code=code,
                                        exit_code_known=info.known, finished_at=info.time))
        live.log.finish()  # after the save: a follower that ends reads the exit code
        try:
            ctr = self._engine.resolve(rec.config.container_id)
            self._events.emit("container", "exec_died", ctr.id, ctr.name, execID=sid,
                                      exitCode=code if info.known else "unknown")
        except VarpodError:
            pass

    # -- control ------------------------------------------------------------------------------------

    def stdin_of(self, sid: str) -> StdinWriter | None:
        live = self._live.get(sid)
        return live.io.stdin if live is not None and live.io is not None else None

    def resize(self, sid: str, rows: int, cols: int) -> None:
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise InvalidConfig(f"terminal size {rows}x{cols} is out of range", field="height")
        rec = self.get(sid)
        if not rec.config.tty:
            raise InvalidState(f"exec session {sid[:12]} has no terminal", id=sid,
                               state=rec.state.state)
        live = self._live.get(sid)
        if live is not None:
            live.tty_size = (rows, cols)
            if live.io is not None and live.io.master >= 0:
                live.io.resize(rows, cols)

    async def stop(self, sid: str, timeout: int = 10) -> ExecRecord:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (0: SIGKILL at once)."""
        rec = self.get(sid)
        live = self._live.get(sid)
        if rec.state.state != "running" or live is None or live.exited is None:
            return rec
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, STOP_GRACE)):
            if timeout == 0 and sig == signal.SIGTERM:
                continue
            try:
                os.kill(rec.state.pid, sig)  # our child: the pidfd keeps the pid from being reused
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(asyncio.shield(live.exited), wait)
                break
            except TimeoutError:
                continue
        if live.handler is not None:
            await asyncio.wait([live.handler])
        return self.get(sid)

    def remove(self, sid: str, force: bool = False) -> None:
        rec = self.get(sid)
        if rec.state.state == "running" and not force:
            raise ExecSessionActive(f"exec session {sid[:12]} is running; stop it or use force",
                                    id=sid, state=rec.state.state)
        if rec.state.state == "running":
            os.kill(rec.state.pid, signal.SIGKILL)
        self._forget(rec)

    def _forget(self, rec: ExecRecord, *, remove_dir: bool = True) -> None:
        live = self._live.pop(rec.id, None)
        if live is not None:
            if live.io is not None:
                live.io.close()
            live.log.finish()
            live.log.close()
        self._sessions.pop(rec.id, None)
        self._store.delete_exec(rec.id)
        if remove_dir:
            discard_tree(self._dir(rec), DISCARD_IN_THREAD)

    def _prune(self, cid: str) -> None:
        exited = sorted((r for r in self.of_container(cid) if r.state.state == "exited"),
                        key=lambda r: r.state.finished_at)
        for rec in exited[:-KEEP_EXITED]:
            self._forget(rec)

    async def settle(self, cid: str, timeout: float) -> None:
        """Wait for the container's running sessions to end (they die with its pid namespace)."""
        handlers = [self._live[r.id].handler for r in self.active(cid)
                    if r.id in self._live and self._live[r.id].handler is not None]
        if handlers:
            await asyncio.wait(handlers, timeout=timeout)

    def drop_container(self, cid: str) -> None:
        """Forget the container's sessions; their directories go with its bundle."""
        for rec in self.of_container(cid):
            self._forget(rec, remove_dir=False)

    def container_state(self, sid: str) -> State:
        return self._engine.resolve(self.get(sid).config.container_id).state.state


