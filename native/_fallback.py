"""Pure-Python twins of the C functions: same inputs, same bytes out (tests check both)."""

from __future__ import annotations

import os
import struct
import time

_HEADER = struct.Struct(">B3xI")
_TRAILER = struct.Struct(">QI")


def pump(src: int, log_fd: int, stream: int, budget: int, bufsize: int = 1 << 20) -> tuple[int, bool]:
    total = 0
    while total < budget:
        try:
            data = os.read(src, bufsize)
        except BlockingIOError:
            return total, False
        except InterruptedError:
            continue
        if not data:
            return total, True
        n = len(data)
        _writev_all(log_fd, [_HEADER.pack(stream, n), data, _TRAILER.pack(time.time_ns(), n)])
        total += n + 20
    return total, False


def _writev_all(fd: int, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
