"""The embedded monitor: pidfd exit watching, helper spawning, orphan reaping.

There is no per-container helper process. The daemon is a child subreaper, so
container init and detached exec processes are re-parented to it when runc
exits; each is watched through a pidfd on the event loop and reaped with
``waitid(P_PIDFD)``, which also yields its exit status. Runtime invocations are
spawned here too (``posix_spawn``, i.e. vfork+exec: cheap even from a large
process) so that every child of the daemon is known, and a periodic reaper
can reap the rare unknown orphan without stealing an exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence

import msgspec

log = logging.getLogger("varpod.monitor")

PR_SET_CHILD_SUBREAPER = 36


class ExitInfo(msgspec.Struct, frozen=True):
    """How a process ended. ``code`` is None when nobody could see its status."""

    code: int | None
    signal: int = 0
    time: int = 0  # ns since the epoch

    @property
    def known(self) -> bool:
        return self.code is not None


def status_from_siginfo(info: os.waitid_result) -> ExitInfo:
    now = time.time_ns()
    if info.si_code == os.CLD_EXITED:
        return ExitInfo(info.si_status, 0, now)
    # Killed or dumped: podman reports 128 + signal.
    return ExitInfo(128 + info.si_status, info.si_status, now)


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


class Completed(msgspec.Struct, frozen=True):
    exit: ExitInfo
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit.code == 0


class Monitor:
    """Owns every child of the daemon. One per event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        # pid -> future resolved with its ExitInfo; guarded by running on the loop thread.
        self._watched: dict[int, asyncio.Future[ExitInfo]] = {}
        self._pidfds: dict[int, int] = {}  # pid -> its pidfd, while watched
        # Launches in flight may re-parent a container init to us before its
        # pidfile is read; orphan reaping waits until none are in flight.
        self._launches = 0
        self._reap_pending = False
        self._reaper: asyncio.TimerHandle | None = None

    # -- watching --------------------------------------------------------------

    def watch(self, pid: int) -> asyncio.Future[ExitInfo]:
        """A future resolved when ``pid`` exits (status known only for our children)."""
        fut = self._watched.get(pid)
        if fut is not None:
            return fut
        fut = self._loop.create_future()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            fut.set_result(ExitInfo(None, 0, time.time_ns()))
            return fut
        self._watched[pid] = fut
        self._pidfds[pid] = pidfd
        self._loop.add_reader(pidfd, self._on_pidfd, pid, pidfd)
        return fut

    def is_watched(self, pid: int) -> bool:
        return pid in self._watched

    def signal(self, pid: int, sig: int) -> bool:
        """Signal a watched process through its pidfd: no runtime spawn, and the pidfd
        cannot name a reused pid. True when sent or the process is already gone, False
        when ``pid`` is not watched (the caller asks the runtime instead)."""
        pidfd = self._pidfds.get(pid)
        if pidfd is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, sig)
        return True

    def _on_pidfd(self, pid: int, pidfd: int) -> None:
        try:
            info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            # Not our child (re-adopted after a daemon restart): it is gone, the
            # status went to whoever its parent is now.
            info = None
            exit_info = ExitInfo(None, 0, time.time_ns())
        else:
            if info is None:  # spurious wake-up: still running
                return
            exit_info = status_from_siginfo(info)
        self._loop.remove_reader(pidfd)
        self._pidfds.pop(pid, None)
        os.close(pidfd)
        fut = self._watched.pop(pid, None)
        if fut is not None and not fut.done():
            fut.set_result(exit_info)

    # -- spawning ----------------------------------------------------------------

    def spawn(
        self,
        argv: Sequence[str],
        *,
        fds: Mapping[int, int] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, asyncio.Future[ExitInfo]]:
        """Start ``argv`` in its own session with ``fds`` (target -> source) dup'ed in."""
        actions = [(os.POSIX_SPAWN_DUP2, src, dst) for dst, src in (fds or {}).items()]
        pid = os.posix_spawn(
            argv[0], list(argv), dict(env if env is not None else _runtime_env()),
            file_actions=actions, setsid=True,
        )
        return pid, self.watch(pid)

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        extra_fds: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Completed:
        """Run a helper to completion, capturing the streams not given as fds.

        ``extra_fds`` become the child's fds 3, 4, ... (runc --preserve-fds); ``env``
        replaces the environment runtimes get (a CNI plugin's parameters travel there).
        Past ``timeout`` seconds its process group is killed and TimeoutError raised.
        """
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        fds = {0: null if stdin is None else stdin}
        pipes: dict[int, int] = {}
        # Copies above any target number first, so no dup2 overwrites a later source.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 256) for fd in extra_fds]
        fds.update({3 + i: fd for i, fd in enumerate(high)})
        try:
            for target, given in ((1, stdout), (2, stderr)):
                if given is None:
                    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                    pipes[target] = r
                    fds[target] = w
                else:
                    fds[target] = given
            try:
                pid, exited = self.spawn(argv, fds=fds, env=env)
            finally:
                for target in pipes:
                    os.close(fds[target])
            chunks: dict[int, list[bytes]] = {1: [], 2: []}
            readers = [self._drain(r, chunks[t]) for t, r in pipes.items()]
            if timeout is None:
                info = await exited
            else:
                try:
                    info = await asyncio.wait_for(asyncio.shield(exited), timeout)
                except TimeoutError:
                    # The group (it runs in a session of its own): a helper it started
                    # would otherwise go on, holding the pipes.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    await exited
                    for reader in readers:
                        reader.close()
                    raise TimeoutError(f"{argv[0]} did not finish within {timeout:g} s") from None
            if readers:
                await asyncio.gather(*readers)
            return Completed(info, b"".join(chunks[1]), b"".join(chunks[2]))
        finally:
            os.close(null)
            for fd in (*pipes.values(), *high):
                os.close(fd)

    async def _drain(self, fd: int, out: list[bytes]) -> None:
        done = self._loop.create_future()

        def readable() -> None:
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    return
                if not data:
                    self._loop.remove_reader(fd)
                    if not done.done():
                        done.set_result(None)
                    return
                out.append(data)

        self._loop.add_reader(fd, readable)
        try:
            await done
        finally:
            self._loop.remove_reader(fd)

    # -- orphans -------------------------------------------------------------------

    def start_reaper(self, interval: float = 2.0) -> None:
        """Reap unknown orphans every ``interval`` seconds.

        A timer, not SIGCHLD: uvloop keeps SIGCHLD for itself. Every child we
        expect is reaped the moment it exits through its pidfd; this only
        catches strays, so a short delay costs nothing.
        """
        def tick() -> None:
            self.reap_orphans()
            self._reaper = self._loop.call_later(interval, tick)

        self._reaper = self._loop.call_later(interval, tick)

    def stop_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None

    def hold_reaping(self) -> _ReapHold:
        """While held, unknown children are left alone (a container init may be one)."""
        return _ReapHold(self)

    def reap_orphans(self) -> None:
        if self._launches:
            self._reap_pending = True
            return
        self._reap_pending = False
        for pid in _children():
            if pid in self._watched:
                continue
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped:
                log.info("reaped orphan %d (status %#x)", pid, status)


class _ReapHold:
    def __init__(self, monitor: Monitor) -> None:
        self._m = monitor

    def __enter__(self) -> None:
        self._m._launches += 1

    def __exit__(self, *exc: object) -> None:
        self._m._launches -= 1
        if self._m._launches == 0 and self._m._reap_pending:
            self._m._loop.call_soon(self._m.reap_orphans)


def _children() -> list[int]:
    pids: list[int] = []
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(p) for p in f.read().split())
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
    return pids


def _runtime_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")}


def alive(pid: int) -> bool:
    """Running: it exists and is not a zombie waiting to be reaped."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
