"""A container run's stdio: FIFOs the daemon owns, pumps into the log, stdin relay.

stdout and stderr are FIFOs in the bundle. The container gets them opened
read-write, so it always holds a reader itself: while the daemon is down or
restarting its writes block when the pipe is full instead of failing with
EPIPE, and a restarted daemon just opens the FIFO again. The daemon reads
with O_RDONLY, so it sees EOF once every process in the container is gone.
stdin is a plain pipe: closing our end is how EOF reaches the process.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import stat

from .logfile import STDERR, STDOUT, LogWriter

log = logging.getLogger("varpod.stdio")

PIPE_SIZE = 1 << 20
READ_BUDGET = 16 << 20  # bytes per wake-up before yielding to other work


def make_fifo(path: str) -> None:
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            raise


def grow_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size: the default size still works


class OutputPump:
    """Moves one pipe's bytes into the log, as fast as the pipe delivers them."""

    def __init__(self, fd: int, stream: int, log_writer: LogWriter) -> None:
        self.fd = fd
        self.stream = stream
        self.log = log_writer
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            eof = self.log.pump_from(self.fd, self.stream, READ_BUDGET)
        except OSError as e:
            log.error("reading container output failed: %s", e)
            eof = True
        self.log.notify()
        if eof:
            self.stop()

    def drain_now(self) -> None:
        """Take whatever is buffered without waiting for EOF (used after a timeout)."""
        if not self.done.done():
            try:
                self.log.pump_from(self.fd, self.stream, 1 << 62)
            except OSError:
                pass
            self.log.notify()
            self.stop()

    def stop(self) -> None:
        if self.fd >= 0:
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        if not self.done.done():
            self.done.set_result(None)


class ContainerIO:
    """The daemon's half of one run's stdio, and the container's half until it is handed over."""

    def __init__(self, bundle: str, log_writer: LogWriter, *, stdin: bool) -> None:
        self.bundle = bundle
        self.log = log_writer
        self.want_stdin = stdin
        self.container_fds: list[int] = []
        self.stdin_w = -1
        self.pumps: list[OutputPump] = []

    def open(self) -> tuple[int, int, int]:
        """Create the FIFOs and pipes; returns the container's (stdin, stdout, stderr)."""
        ours: list[tuple[int, int]] = []
        try:
            if self.want_stdin:
                r, w = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(w, False)
                self.stdin_w = w
                stdin_fd = r
            else:
                stdin_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self.container_fds.append(stdin_fd)
            for name, stream in (("stdout", STDOUT), ("stderr", STDERR)):
                path = os.path.join(self.bundle, name)
                make_fifo(path)
                reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                ours.append((reader, stream))
                writer = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                self.container_fds.append(writer)
                grow_pipe(writer)
        except BaseException:
            for fd, _ in ours:
                os.close(fd)
            self.close_container_side()
            raise
        self.pumps = [OutputPump(fd, stream, self.log) for fd, stream in ours]
        return (self.container_fds[0], self.container_fds[1], self.container_fds[2])

    def close_container_side(self) -> None:
        """After the runtime has handed our fds to the container, drop our copies."""
        for fd in self.container_fds:
            os.close(fd)
        self.container_fds = []

    def write_stdin(self, data: bytes) -> int:
        if self.stdin_w < 0:
            return 0
        return os.write(self.stdin_w, data)

    def close_stdin(self) -> None:
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1

    async def drained(self, timeout: float) -> bool:
        """Wait for EOF on every output pipe; after ``timeout`` take what is there."""
        waiting = [p.done for p in self.pumps if not p.done.done()]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=timeout)
            if pending:
                for p in self.pumps:
                    p.drain_now()
                return False
        return True

    def close(self) -> None:
        self.close_container_side()
        self.close_stdin()
        for p in self.pumps:
            p.stop()
