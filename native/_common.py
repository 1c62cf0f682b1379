"""The formats, constants and argument checks shared by the C wrappers and the Python twin.

Kept apart from ``_fallback`` so that ``varpod.native`` with the compiled
module live imports only this (struct, os, _signal): the twin needs select,
termios and fcntl as well.
"""

from __future__ import annotations

import _signal  # the C module behind `signal`, which would import enum (~3 ms of CLI start-up)
import os
import struct

HEADER = struct.Struct(">B3xI")  # u8 stream, 3 zero bytes, u32 BE payload length
HEADER_SIZE, TRAILER_SIZE = 8, 12
MAX_PAYLOAD = 16 << 20
MAX_TIME = (1 << 63) - 1
CONTROL = 3

MODE_RECORDS, MODE_FRAMES, MODE_RAW = 0, 1, 2
# Log bytes a relay pass converts at a time: the most output a follower whose client
# does not read holds (records of 16 KiB and more go out from the file, never held).
RELAY_WINDOW = 64 << 10
SENDFILE_MIN = 16 << 10  # payloads this large go from the log's page cache by sendfile
PUMP_BUFSIZE = 1 << 20  # the largest record one read of a container's output makes
STATUS_CONTROL, STATUS_EOF, STATUS_INTERRUPTED = 0, 1, 2
DEMUX_BUFSIZE = 4 << 10  # control payloads (grown for a larger one); data never passes through it
DEMUX_AHEAD = 64 << 10  # what the C demux_from reads from its source at a time
DEMUX_BUDGET = 16 << 20  # stream bytes one demux_from call consumes at most


def encode_frame(stream: int, payload: bytes) -> bytes:
    """The wire frame: u8 stream, 3 zero bytes, u32 BE length, payload."""
    return HEADER.pack(stream, len(payload)) + bytes(payload)


def check_relay_args(mode: int, since: int, until: int) -> None:
    if mode not in (MODE_RECORDS, MODE_FRAMES, MODE_RAW):
        raise ValueError(f"unknown relay mode {mode!r}")
    if not (0 <= since < 1 << 64 and 0 <= until < 1 << 64):
        raise ValueError(f"since and until must be u64 nanoseconds, not {since!r} and {until!r}")


def check_fmt(fmt: int) -> None:
    if fmt not in (MODE_RECORDS, MODE_FRAMES):
        raise ValueError(f"demux and scan read records or frames, not mode {fmt!r}")


def check_budget(budget: int) -> None:
    if not 0 < budget < 1 << 63:
        raise ValueError(f"the budget is a positive byte count, not {budget!r}")


def corrupt(fmt: int, offset: int) -> ValueError:
    return ValueError(f"corrupt {'record' if fmt == MODE_RECORDS else 'frame'} at offset {offset}")


def grown_size(need: int) -> int:
    """A buffer for a record of ``need`` bytes, rounded up to 4 KiB."""
    return (need + 0xFFF) & ~0xFFF


class WakeupPipe:
    """Where signals are noted while a demux_from call runs: a pipe of ours as the wakeup fd.

    CPython's C handler writes each signal's number there, whenever it comes.
    The loop polls ``fd`` along with whatever it waits for, so a signal that
    arrived between system calls still stops it (EINTR alone misses those).
    Afterwards the numbers go on to the wakeup fd the caller had set.
    ``fd`` is -1 outside the main thread, where no handler runs.
    """

    __slots__ = ("_old", "_w", "fd")

    def __enter__(self) -> WakeupPipe:
        self.fd = self._w = -1
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._old = _signal.set_wakeup_fd(w)
        except ValueError:  # not the main thread
            os.close(r)
            os.close(w)
            return self
        self.fd, self._w = r, w
        return self

    def forward(self) -> None:
        try:
            numbers = os.read(self.fd, 256)
            if self._old >= 0:
                os.write(self._old, numbers)
        except OSError:
            pass

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            _signal.set_wakeup_fd(self._old)
            self.forward()
            os.close(self.fd)
            os.close(self._w)


class NonBlocking:
    """``fd`` non-blocking for a ``with`` block, then as it was (the C reader waits in poll)."""

    __slots__ = ("_fd", "_was")

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        self._was = os.get_blocking(self._fd)
        if self._was:
            os.set_blocking(self._fd, False)

    def __exit__(self, *exc: object) -> None:
        if self._was:
            os.set_blocking(self._fd, True)
