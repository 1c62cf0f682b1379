"""The hot stream loops in C (cffi), with a pure-Python fallback of the same functions.

``IMPLEMENTATION`` says which one is live; ``varpod info`` reports it and CI
asserts the compiled one.
"""

from __future__ import annotations

import os
import threading

from . import _fallback

try:
    from ._streamio import ffi as _ffi
    from ._streamio import lib as _lib
except ImportError as _e:  # not built: say why, keep working
    _lib = None
    IMPLEMENTATION = "python"
    IMPORT_ERROR = str(_e)
else:
    IMPLEMENTATION = "c"
    IMPORT_ERROR = ""

BUFSIZE = 1 << 20
_tls = threading.local()


def _buffers():
    bufs = getattr(_tls, "bufs", None)
    if bufs is None:
        raw = bytearray(BUFSIZE)
        bufs = _tls.bufs = (raw, _ffi.from_buffer(raw), _ffi.new("int *"))
    return bufs


def _c_pump(src: int, log_fd: int, stream: int, budget: int) -> tuple[int, bool]:
    _, cbuf, eof = _buffers()
    n = _lib.vp_pump(src, log_fd, stream, budget, cbuf, BUFSIZE, eof)
    if n < 0:
        raise OSError(-n, os.strerror(-n))
    return n, bool(eof[0])


if _lib is not None and os.environ.get("VARPOD_NATIVE", "") != "python":
    pump = _c_pump
else:
    IMPLEMENTATION = "python"
    pump = _fallback.pump

__all__ = ["IMPLEMENTATION", "IMPORT_ERROR", "pump"]
