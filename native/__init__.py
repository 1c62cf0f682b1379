"""The hot stream loops in C (cffi), with a pure-Python fallback of the same functions.

``IMPLEMENTATION`` says which one is live; ``varpod info`` reports it and CI
asserts the compiled one. ``VARPOD_NATIVE=python`` forces the fallback. The
compiled module is loaded when one of these names is first used, not at import.

* ``pump(src, log_fd, offset, stream, budget, fifo=False) -> (appended, eof)``: a
  container's output into its log, as records written from ``offset`` on (the log
  is not opened O_APPEND: splice cannot append). ``fifo``: src is a pipe, and its
  bytes are spliced into the log without passing through user space.
* ``relay(cursor, log_fd, end, dst, mode, mask, since=0, until=MAX_TIME, merge=False)
  -> (written, blocked)``:
  log records from ``cursor.offset`` up to ``end`` to a non-blocking dst, as
  ``MODE_RECORDS`` (as stored), ``MODE_FRAMES`` (trailer dropped) or ``MODE_RAW``
  (payloads); ``mask`` bit ``1 << stream`` selects streams, records before
  ``since`` are skipped and the first one after ``until`` ends the stream
  (``cursor.past_until``). Small records are converted a window
  (``cursor.bufsize``) at a time; a payload of ``SENDFILE_MIN`` bytes or more (or
  a record larger than the window) goes from the log to dst by sendfile. Output
  dst will not take yet stays in the cursor (``cursor.busy``): at most a window.
  ``merge``: consecutive selected small records of one stream that one pass
  converts go out as one record (the first one's time) or frame.
* ``demux(buf, fmt, out1, out2) -> (consumed, control_at)``: payloads of whole
  records/frames to blocking fds, up to a control entry (stream 3).
* ``Demuxer(fmt)`` and ``demux_from(demuxer, src_fd, out1, out2, initial=b"") -> (status, control)``:
  ``initial`` (bytes the caller read from src first: given once, before the
  demuxer reads src itself), then what src_fd sends, to blocking out1/out2 (a
  pipe gets large payloads by splice; the C loop reads src ahead, and keeps
  what it has not consumed for the next call) until ``STATUS_CONTROL`` (with the
  control payload), ``STATUS_EOF``, or ``STATUS_INTERRUPTED``: a signal arrived
  (or ``demuxer.budget`` bytes went by, so handlers of signals that interrupted
  no system call run too); call again with the same Demuxer.
* ``scan(buf, fmt) -> ([(stream, payload_offset, length)], consumed)``.
* ``encode_frame(stream, payload)``: the reference encoder for frames.

Corrupt input raises ValueError; a failed system call, OSError.
"""

from __future__ import annotations

import os

# Only what the C wrappers share with the twin: _cwrap (cffi) and _fallback (signal
# and so enum, termios...) are imported when live, or when asked for.
from ._common import (
    MAX_TIME,
    MODE_FRAMES,
    MODE_RAW,
    MODE_RECORDS,
    PUMP_BUFSIZE,
    RELAY_WINDOW,
    SENDFILE_MIN,
    STATUS_CONTROL,
    STATUS_EOF,
    STATUS_INTERRUPTED,
    encode_frame,
)

# The compiled module loads on first use of anything that needs it, not at import:
# cffi costs ~2.5 ms of start-up, which a CLI command whose stream is short (an
# exec of /bin/true: one end frame) never pays (rpc/terminal.py takes those apart).
_C_NAMES = ("_ffi", "_lib", "_staging", "_CCursor", "_CDemuxer", "_c_demux", "_c_demux_from", "_c_pump",
            "_c_relay", "_c_scan")  # for tests and benchmarks: both paths on the same inputs
_LAZY = frozenset({"IMPLEMENTATION", "IMPORT_ERROR", "pump", "Cursor", "relay", "demux", "Demuxer",
                   "demux_from", "scan", *_C_NAMES})


def _load() -> None:
    """Bind the live implementation: the C wrappers when built (and not VARPOD_NATIVE=python)."""
    from importlib import import_module  # `from . import` would ask __getattr__ below first

    g = globals()
    try:
        cw = import_module("._cwrap", __name__)
    except ImportError as e:  # not built: say why, keep working
        g.update(dict.fromkeys(_C_NAMES), IMPORT_ERROR=str(e))
    else:
        g.update({name: getattr(cw, name) for name in _C_NAMES}, IMPORT_ERROR="")
    if g["_lib"] is not None and os.environ.get("VARPOD_NATIVE", "") != "python":
        g.update(IMPLEMENTATION="c", pump=cw._c_pump, Cursor=cw._CCursor, relay=cw._c_relay,
                 demux=cw._c_demux, Demuxer=cw._CDemuxer, demux_from=cw._c_demux_from, scan=cw._c_scan)
    else:
        fb = import_module("._fallback", __name__)
        g.update(IMPLEMENTATION="python", pump=fb.pump, Cursor=fb.Cursor, relay=fb.relay, demux=fb.demux,
                 Demuxer=fb.Demuxer, demux_from=fb.demux_from, scan=fb.scan)


def __getattr__(name: str):
    if name in _LAZY:
        _load()
        return globals()[name]
    # native._fallback while the C path is live: tests and benchmarks run both on the same inputs.
    if name == "_fallback":
        from importlib import import_module

        return import_module("._fallback", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IMPLEMENTATION",
    "IMPORT_ERROR",
    "MAX_TIME",
    "MODE_FRAMES",
    "MODE_RAW",
    "MODE_RECORDS",
    "PUMP_BUFSIZE",
    "RELAY_WINDOW",
    "SENDFILE_MIN",
    "STATUS_CONTROL",
    "STATUS_EOF",
    "STATUS_INTERRUPTED",
    "Cursor",
    "Demuxer",
    "demux",
    "demux_from",
    "encode_frame",
    "pump",
    "relay",
    "scan",
]
