"""The client's file descriptor, as one transfer's thread uses it.

The thread never uses the fd number the connection handed over (that one is closed
when the call ends, and a number closed under a running thread could be reused by
another open and written into): it gets a descriptor of its own. Where the client's is
a pipe, that is a new open file description (``/proc/self/fd/N``), made non-blocking
there alone (the client's flags are untouched), so the thread waits in ``poll`` and
sees a cancel (the daemon stopping) within a second, even from a peer that stopped
reading or writing. A file or socket gets a dup: writes to a file do not block, and a
socket's peer going away ends them.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import select
import stat
import threading

from ..errors import StreamBroken, StreamClosed

POLL_MS = 1000  # how often a waiting thread looks for a cancel
PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size


class ClientFd(io.RawIOBase):
    def __init__(self, fd: int, *, write: bool, cancel: threading.Event | None = None) -> None:
        super().__init__()
        self.cancel = cancel
        self._write_mode = write
        self.fd = -1
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            try:
                flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC
                self.fd = os.open(f"/proc/self/fd/{fd}", flags)
            except OSError:
                self.fd = -1
            try:  # fewer wake-ups per MiB on both sides (the pipe's, not a setting of the client's fd)
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
        if self.fd < 0:
            self.fd = os.dup(fd)
            os.set_inheritable(self.fd, False)

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise StreamClosed("the copy was cancelled: the daemon is stopping")

    def _wait(self, events: int) -> None:
        poller = select.poll()
        poller.register(self.fd, events)
        while True:
            self.check()
            if poller.poll(POLL_MS):
                return

    # -- writing -------------------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        while True:
            try:
                return os.write(self.fd, data)
            except BlockingIOError:
                self._wait(select.POLLOUT)
            except BrokenPipeError:
                raise StreamBroken("the reader of the tar stream went away") from None

    def sendfile(self, src: int, offset: int, count: int) -> int:
        while True:
            try:
                return os.sendfile(self.fd, src, offset, count)
            except BlockingIOError:
                self._wait(select.POLLOUT)
            except BrokenPipeError:
                raise StreamBroken("the reader of the tar stream went away") from None

    # -- reading (io.BufferedReader buffers on top) ---------------------------------------------

    def readable(self) -> bool:
        return not self._write_mode

    def writable(self) -> bool:
        return self._write_mode

    def readinto(self, b) -> int:  # type: ignore[override]
        while True:
            self.check()
            try:
                return os.readv(self.fd, [b])
            except BlockingIOError:
                self._wait(select.POLLIN)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()
