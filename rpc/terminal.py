"""The CLI side of an attached session: terminal in, container out, no asyncio.

One ``poll`` loop moves the local stdin to the socket and the socket's frames
to the local stdout/stderr (demultiplexed by the C loop straight into the fds).
``varpod.native`` (cffi, ~2.5 ms of start-up here) is imported when a stream
needs it: a short one (``exec /bin/true``: an end frame and a line or two) is
taken apart here in Python.
With a TTY the local terminal is put in raw mode and always restored, and
SIGWINCH becomes a resize call. Without a TTY, SIGINT/SIGTERM are passed to
the container (podman's --sig-proxy) instead of killing the CLI.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum (~5 ms of CLI start-up)
import os
import select
import sys

from ..native._common import HEADER, MAX_PAYLOAD, TRAILER_SIZE, WakeupPipe

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CONTROL = 3
READ_SIZE = 64 << 10  # under glibc's mmap threshold: a 1 MiB read mmaps and unmaps every time
OUT_PIPE_SIZE = 1 << 20  # the default /proc/sys/fs/pipe-max-size
_IN = select.POLLIN | select.POLLHUP | select.POLLERR


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


class raw_terminal:  # lower case: it was a contextmanager function, and reads as one
    """Raw mode for the session; the old settings come back whatever happens.

    A class rather than @contextlib.contextmanager: contextlib costs ~1 ms of CLI start-up.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = None

    def __enter__(self) -> None:
        import termios
        import tty

        if not os.isatty(self.fd):
            return
        self.saved = termios.tcgetattr(self.fd)
        try:
            tty.setraw(self.fd)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc: object) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


class cbreak_terminal(raw_terminal):
    """Keys arrive one by one and unechoed, ctrl-c still raises SIGINT: for watching the
    detach keys of a session that sends the container no input."""

    def __enter__(self) -> None:
        import termios

        if not os.isatty(self.fd):
            return
        self.saved = termios.tcgetattr(self.fd)
        mode = list(self.saved)
        mode[0] &= ~(termios.IXON | termios.ICRNL)
        mode[3] &= ~(termios.ICANON | termios.ECHO)
        mode[6] = list(mode[6])
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)


class SessionRelay:
    """Runs one attached session to its end; returns the end payload (empty for a TTY).

    ``detach_keys``, for a session that sends no stdin: the local keys are watched for
    that sequence, which ends the session as detached (the daemon sees only the close).
    ``proxy_signals`` False leaves SIGINT/SIGTERM to end this process, as podman's
    --sig-proxy=false does.
    """

    def __init__(self, sock_fd: int, leftover: bytes, *, tty: bool, send_stdin: bool,
                 decode_control: Callable[[bytes], dict], on_resize: Callable[[int, int], None],
                 on_signal: Callable[[int], None], detach_keys: bytes = b"",
                 proxy_signals: bool = True) -> None:
        self.sock = sock_fd
        self.buf = leftover
        self.tty = tty
        self.send_stdin = send_stdin
        self.decode_control = decode_control
        self.on_resize = on_resize
        self.on_signal = on_signal
        self.detach_keys = b"" if send_stdin else detach_keys
        self.matched = 0  # how much of detach_keys the last keys were
        self.proxy_signals = proxy_signals
        self.outgoing = bytearray()
        self.end: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        signals = [signal.SIGWINCH] if self.tty else []
        if self.proxy_signals and not self.tty:
            signals += [signal.SIGINT, signal.SIGTERM]
        old_handlers = {s: signal.signal(s, lambda *_: None) for s in signals}
        os.set_blocking(self.sock, False)
        try:
            if self.tty:
                self._resize()
            else:
                grow_output_pipes()
            return self._loop(wake_r)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)

    def _resize(self) -> None:
        size = terminal_size(0) or terminal_size(1)
        if size:
            self.on_resize(*size)

    def _loop(self, wake_r: int) -> dict[str, Any]:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        if self.send_stdin or self.detach_keys:
            poller.register(0, select.POLLIN)
        if self.buf and self._output(b"", eof=False):
            return self.end
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == wake_r:
                    self._signals(wake_r)
                elif fd == self.sock:
                    if ev & select.POLLOUT:
                        self._flush(poller)
                    if ev & _IN:
                        try:
                            data = os.read(self.sock, READ_SIZE)
                        except BlockingIOError:
                            continue
                        except ConnectionResetError:
                            data = b""
                        if self._output(data, eof=not data):
                            return self.end
                elif fd == 0 and ev & _IN and self._stdin(poller):
                    return self.end

    def _stdin(self, poller: select.poll) -> bool:
        """Input for the container, or keys to watch; True when they detach."""
        try:
            data = os.read(0, 65536)
        except InterruptedError:
            return False
        except OSError:
            data = b""
        if not self.send_stdin:
            if not data:
                poller.unregister(0)
            return self._watch_keys(data)
        if not data:
            poller.unregister(0)
            if not self.tty:
                self._eof_pending = True  # the container's EOF, once queued input is out
                self._flush(poller)
            return False
        self.outgoing += data
        self._flush(poller)
        if len(self.outgoing) > (1 << 20):  # the container is not reading: stop reading for it
            poller.unregister(0)
            self._stdin_paused = True
        return False

    def _watch_keys(self, data: bytes) -> bool:
        keys = self.detach_keys
        for byte in data:
            if byte == keys[self.matched]:
                self.matched += 1
                if self.matched == len(keys):
                    self.end = {"end": "detached"}
                    return True
            else:
                self.matched = 1 if byte == keys[0] else 0
        return False

    _eof_pending = False
    _stdin_paused = False

    def _flush(self, poller: select.poll) -> None:
        while self.outgoing:
            try:
                n = os.write(self.sock, self.outgoing)
            except BlockingIOError:
                poller.modify(self.sock, select.POLLIN | select.POLLOUT)
                return
            except OSError:
                self.outgoing.clear()
                break
            del self.outgoing[:n]
        poller.modify(self.sock, select.POLLIN)
        if self._stdin_paused:
            self._stdin_paused = False
            poller.register(0, select.POLLIN)
        if self._eof_pending:
            self._eof_pending = False
            _half_close(self.sock)

    def _signals(self, wake_r: int) -> None:
        try:
            numbers = os.read(wake_r, 256)
        except BlockingIOError:
            return
        for sig in numbers:
            if sig == signal.SIGWINCH:
                self._resize()
            else:
                self.on_signal(sig)

    def _output(self, data: bytes, *, eof: bool) -> bool:
        """Write what arrived; True when the session has ended."""
        if self.tty:
            if self.buf or data:
                _write_all(1, self.buf + data)
                self.buf = b""
            return eof  # a TTY stream has no end frame: the close is the end
        from .. import native

        buf = self.buf + data if self.buf else data
        consumed, control_at = native.demux(buf, native.MODE_FRAMES, 1, 2)
        buf = buf[consumed:]
        if control_at >= 0:
            n = int.from_bytes(buf[4:8], "big")
            if len(buf) >= 8 + n:
                self.end = self.decode_control(bytes(buf[8 : 8 + n]))
                return True
        self.buf = buf
        if eof:
            self.end = {"error": "io.varpod.Stream.StreamBroken",
                        "message": "the daemon closed the stream without saying how it ended"}
        return eof


def _half_close(fd: int) -> None:
    import _socket

    sock = _socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def grow_output_pipes() -> None:
    """Stdout and stderr, where they are pipes, hold 1 MiB instead of 64 KiB: a long
    stream then moves in 1 MiB batches between this process and its reader, not 16 pages
    and a wake-up at a time (attach of 1 GiB into a pipe: ~0.85 -> ~1.8 GB/s here). Never
    shrinks a pipe; a refusal (the user's pipe-buffer quota) leaves it as it was."""
    import fcntl
    import stat

    for fd in (1, 2):
        try:
            if (stat.S_ISFIFO(os.fstat(fd).st_mode)
                    and fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < OUT_PIPE_SIZE):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, OUT_PIPE_SIZE)
        except OSError:
            pass


def stdin_is_tty() -> bool:
    return sys.stdin is not None and os.isatty(0)


def pump_stream(sock_fd: int, initial: bytes, *, records: bool,
                on_signal: Callable[[], None] | None = None) -> dict[str, Any] | None:
    """An output-only stream: payloads to fds 1 and 2 until its control entry, whose
    payload is returned decoded (None at a bare EOF).

    What arrives first is looked at here: a stream that is whole by then is
    written from Python. Anything longer goes to the C loop (payloads spliced into
    pipes). Signals interrupt either; their Python handlers then run (``on_signal``
    too) and the stream goes on where it was.
    """
    from .minipack import MiniCodec

    os.set_blocking(sock_fd, True)
    kind, value = _short_stream(sock_fd, initial, records, on_signal)
    if kind == "control":
        return MiniCodec().decode_control(value)
    if kind == "eof":
        return None
    from .. import native

    demuxer = native.Demuxer(native.MODE_RECORDS if records else native.MODE_FRAMES)
    grow_output_pipes()
    initial = value
    while True:
        status, payload = native.demux_from(demuxer, sock_fd, 1, 2, initial)
        initial = b""
        if status == native.STATUS_CONTROL:
            return MiniCodec().decode_control(payload)
        if status == native.STATUS_EOF:
            return None
        if on_signal is not None:
            on_signal()


def _short_stream(sock_fd: int, buf: bytes, records: bool,
                  on_signal: Callable[[], None] | None) -> tuple[str, Any]:
    """("control", payload) or ("eof", None) once a whole stream went out from here, or
    ("more", bytes): nothing was written; the bytes are the stream's beginning.

    One read at most, and only when nothing came with the reply: a stream not whole
    by then is one the C loop is for. Bytes that came with the reply but do not end
    the stream go to the C loop at once: they may be all the container says for a
    while (its first line, then silence), and must not wait for a read to print.
    """
    found = _entries(buf, records)
    if found is None and buf:
        return "more", buf
    if found is None:
        data = _first_read(sock_fd, on_signal)
        buf += data
        found = _entries(buf, records, at_eof=not data)
        if found is None:  # longer, or torn or corrupt: the C loop says which
            return "more", buf
    payloads, control = found
    for stream, payload in payloads:
        _write_all(stream, payload)
    return ("eof", None) if control is None else ("control", control)


def _entries(buf: bytes, records: bool, at_eof: bool = False):
    """The (stream, payload) of each entry up to and with the control one: (payloads, its
    payload). With ``at_eof``, a buffer of whole entries without one ends the stream
    (control None). None when that cannot be said yet, or the bytes are not well formed."""
    out: list[tuple[int, bytes]] = []
    pos, end = 0, len(buf)
    trailer = TRAILER_SIZE if records else 0
    while end - pos >= HEADER.size:
        stream, n = HEADER.unpack_from(buf, pos)
        if stream > 3 or n > MAX_PAYLOAD or buf[pos + 1 : pos + 4] != b"\0\0\0":
            return None
        size = HEADER.size + n + trailer
        if end - pos < size:
            return None
        if records and int.from_bytes(buf[pos + size - 4 : pos + size], "big") != n:
            return None
        payload = buf[pos + HEADER.size : pos + HEADER.size + n]
        if stream == 3:
            return out, payload
        if stream in (1, 2) and n:
            out.append((stream, payload))
        pos += size
    return (out, None) if at_eof and pos == end else None


def _first_read(sock_fd: int, on_signal: Callable[[], None] | None) -> bytes:
    """What the daemon sends next (b"" at EOF), waiting with the signal wakeup pipe polled,
    as the C loop does: a signal is handled (and ``on_signal`` called) while we wait."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLIN)
    while True:
        with WakeupPipe() as wake:
            if wake.fd >= 0:
                poller.register(wake.fd, select.POLLIN)
            ready = dict(poller.poll())
            if wake.fd >= 0:
                poller.unregister(wake.fd)
            signalled = wake.fd in ready
        if signalled:
            if on_signal is not None:
                on_signal()
            continue
        try:
            return os.read(sock_fd, 1 << 16)
        except ConnectionResetError:
            return b""
