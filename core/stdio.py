"""A container run's stdio: FIFOs the daemon owns, pumps into the log, stdin relay.

stdout and stderr are FIFOs in the bundle. The container gets them opened
read-write, so it always holds a reader itself: while the daemon is down or
restarting its writes block when the pipe is full instead of failing with
EPIPE, and a restarted daemon just opens the FIFO again. The daemon reads
with O_RDONLY, so it sees EOF once every process in the container is gone.
stdin is a plain pipe: closing our end is how EOF reaches the process.
TTY containers get a PTY from the runtime instead; the daemon holds its master.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import socket
import stat
import struct
import termios
from collections.abc import Callable

from .logfile import STDERR, STDOUT, LogWriter

log = logging.getLogger("varpod.stdio")

PIPE_SIZE = 1 << 20
READ_BUDGET = 16 << 20  # bytes per wake-up before yielding to other work
# A record this large says the writer copies large pieces into the pipe, holding its lock
# meanwhile: looking again at once would find it refilling the pipe and spin on the lock
# (15 % of the daemon's CPU attaching dd bs=64k). So after such a record the pump waits
# for the next wake-up; after small ones it gathers on, as one wake-up per small write
# would cost more than it saves (1,000,000 lines followed: 13 % slower).
BULK_RECORD = 32 << 10


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
    """Moves one pipe's (or PTY master's) bytes into the log, as fast as they come.

    A pipe's bytes are spliced into the log (``fifo``); a PTY's are read.
    """

    def __init__(self, fd: int, stream: int, log_writer: LogWriter, *, fifo: bool = True) -> None:
        self.fd = fd
        self.stream = stream
        self.fifo = fifo
        self.log = log_writer
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(fd, self._readable)

    def _pump(self, budget: int) -> bool:
        try:
            return self.log.pump_from(self.fd, self.stream, budget, self.fifo)
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: a PTY whose last slave closed, i.e. EOF
                log.error("reading container output failed: %s", e)
            return True

    def _readable(self) -> None:
        before = self.log.size
        eof = self._pump(1)  # one record
        if not eof and 0 < self.log.size - before < BULK_RECORD:
            eof = self._pump(READ_BUDGET)
        self.log.notify()
        if eof:
            self.stop()

    def drain_now(self) -> None:
        """Take whatever is buffered without waiting for EOF (used after a timeout)."""
        if not self.done.done():
            self._pump(1 << 62)
            self.log.notify()
            self.stop()

    def stop(self) -> None:
        if self.fd >= 0:
            self._loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        if not self.done.done():
            self.done.set_result(None)


class StdinWriter:
    """The container's stdin (a pipe, or the PTY master), written without blocking.

    Attach sessions write here; when the process does not read, bytes wait in
    a bounded buffer and writers are told to stop reading their clients until
    ``on_drained`` callbacks say there is room again.
    """

    LIMIT = 1 << 20

    def __init__(self, fd: int, *, closable: bool) -> None:
        self.fd = fd
        self.closable = closable  # a pipe: EOF is closing it; a PTY master is not ours to close
        self._loop = asyncio.get_running_loop()
        self._pending = bytearray()
        self._close_after = False
        self._waiting = False
        self.on_drained: list[Callable[[], None]] = []

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def write(self, data: bytes) -> bool:
        """Queue ``data``; False when the buffer is over its limit (pause the sender)."""
        if self.fd < 0:
            return True  # the process is gone or stdin was closed: input is dropped
        if not self._pending:
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                n = 0
            except OSError:  # EPIPE: nobody reads stdin any more
                self.shut()
                return True
            data = data[n:]
        if data:
            self._pending += data
            self._wait_writable()
        return len(self._pending) < self.LIMIT

    def _wait_writable(self) -> None:
        if not self._waiting and self.fd >= 0:
            self._waiting = True
            self._loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            n = os.write(self.fd, self._pending)
        except BlockingIOError:
            return
        except OSError:
            self.shut()
            return
        del self._pending[:n]
        if not self._pending:
            self._loop.remove_writer(self.fd)
            self._waiting = False
            if self._close_after:
                self.shut()
        if len(self._pending) < self.LIMIT:
            for cb in list(self.on_drained):
                cb()

    def close(self) -> None:
        """EOF for the process, once what is queued has been written."""
        if not self.closable:
            return
        if self._pending:
            self._close_after = True
        else:
            self.shut()

    def shut(self) -> None:
        if self.fd >= 0:
            if self._waiting:
                self._loop.remove_writer(self.fd)
                self._waiting = False
            os.close(self.fd)
            self.fd = -1
        self._pending.clear()
        for cb in list(self.on_drained):
            cb()


class ConsoleSocket:
    """Where the runtime hands over the PTY master of a TTY container (``--console-socket``)."""

    def __init__(self, path: str) -> None:
        if len(path.encode()) >= 108:
            raise OSError(errno.ENAMETOOLONG, f"console socket path too long: {path}")
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self._sock.bind(path)
        os.chmod(path, 0o600)
        self._sock.listen(1)
        self._sock.setblocking(False)

    async def receive(self) -> int:
        """The master fd sent by the runtime (non-blocking, close-on-exec)."""
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self._sock)
        with conn:
            conn.setblocking(False)
            while True:
                try:
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
                    break
                except BlockingIOError:
                    ready = loop.create_future()
                    loop.add_reader(conn.fileno(), ready.set_result, None)
                    try:
                        await ready
                    finally:
                        loop.remove_reader(conn.fileno())
        if not fds:
            raise OSError(errno.EPROTO, "the runtime sent no console fd")
        for extra in fds[1:]:
            os.close(extra)
        os.set_blocking(fds[0], False)
        os.set_inheritable(fds[0], False)
        return fds[0]

    def close(self) -> None:
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


TIOCGPTPEER = 0x5441


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class ContainerIO:
    """The daemon's half of one run's stdio, and the container's half until it is handed over.

    Non-TTY: FIFOs for stdout/stderr (see the module docstring) and a pipe for
    stdin. TTY: the runtime sends the PTY master to ``console``; its output is
    stream 1 of the log and attach sessions write its input.
    """

    def __init__(self, bundle: str, log_writer: LogWriter, *, stdin: bool, tty: bool = False,
                 console_path: str = "") -> None:
        self.bundle = bundle
        self.log = log_writer
        self.want_stdin = stdin
        self.tty = tty
        self.console_path = console_path
        self.console: ConsoleSocket | None = None
        self.master = -1
        self.peer = -1
        self.container_fds: list[int] = []
        self.stdin: StdinWriter | None = None
        self.pumps: list[OutputPump] = []

    @classmethod
    def reopen(cls, directory: str, log_writer: LogWriter) -> ContainerIO:
        """The output FIFOs of a process an earlier daemon started (stdin cannot come back)."""
        io = cls(directory, log_writer, stdin=False)
        for name, stream in (("stdout", STDOUT), ("stderr", STDERR)):
            path = os.path.join(directory, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                log.warning("cannot reopen %s: %s", path, e)
                continue
            io.pumps.append(OutputPump(fd, stream, log_writer))
        return io

    def open(self) -> tuple[int, int, int]:
        """Create FIFOs and pipes (or the console socket); returns the runtime's stdio."""
        if self.tty:
            return self._open_tty()
        ours: list[tuple[int, int]] = []
        try:
            if self.want_stdin:
                r, w = os.pipe2(os.O_CLOEXEC)
                os.set_blocking(w, False)
                self.stdin = StdinWriter(w, closable=True)
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
            self.close()
            raise
        self.pumps = [OutputPump(fd, stream, self.log) for fd, stream in ours]
        return (self.container_fds[0], self.container_fds[1], self.container_fds[2])

    def _open_tty(self) -> tuple[int, int, int]:
        self.console = ConsoleSocket(self.console_path)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.container_fds.append(null)
        return (null, null, null)

    async def receive_console(self, rows: int = 0, cols: int = 0) -> None:
        """TTY: take the PTY master from the runtime (runs while ``runc create`` runs)."""
        assert self.console is not None
        try:
            self.master = await self.console.receive()
        finally:
            self.console.close()
            self.console = None
        if rows and cols:
            set_winsize(self.master, rows, cols)
        self.hold_terminal()
        self.stdin = StdinWriter(os.dup(self.master), closable=False)
        os.set_blocking(self.stdin.fd, False)
        self.pumps = [OutputPump(os.dup(self.master), STDOUT, self.log, fifo=False)]

    def hold_terminal(self) -> None:
        """Keep a slave fd of our own from the start (see ``drained``).

        From the start, because while the runtime sets the process up the slave
        may have no other opener for a moment, and the master then reports EIO,
        which the pump takes for the end: all output was lost that way.
        """
        if self.master >= 0 and self.peer < 0:
            try:
                self.peer = fcntl.ioctl(self.master, TIOCGPTPEER, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
            except OSError as e:
                log.warning("cannot hold the terminal's slave side: %s", e)

    def resize(self, rows: int, cols: int) -> None:
        if self.master < 0:
            raise OSError(errno.ENOTTY, "no terminal")
        set_winsize(self.master, rows, cols)

    def close_container_side(self) -> None:
        """After the runtime has handed our fds to the container, drop our copies."""
        for fd in self.container_fds:
            os.close(fd)
        self.container_fds = []

    async def drained(self, timeout: float) -> bool:
        """Wait for EOF on every output pipe; after ``timeout`` take what is there.

        Called once the process has exited. A TTY's master would report EOF (EIO)
        when the last slave fd closes, and output written just before the exit
        could be lost on the way (seen here in about one run of three). So we hold
        a slave fd (``peer``) ourselves: the master never ends on its own, and
        once the process is gone a read that finds nothing has first pushed the
        kernel's pending buffers through, so reading to EAGAIN takes everything.
        """
        if self.peer >= 0:
            for p in self.pumps:
                p.drain_now()
            os.close(self.peer)
            self.peer = -1
            return True
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
        if self.console is not None:
            self.console.close()
            self.console = None
        if self.stdin is not None:
            self.stdin.shut()
        for p in self.pumps:
            p.stop()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        if self.peer >= 0:
            os.close(self.peer)
            self.peer = -1
