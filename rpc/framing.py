"""Sans-IO decoding of upgraded streams: 8-byte-header frames or log records.

The byte work is ``varpod.native`` (C when built, the Python twin otherwise),
so there is one framing implementation for the daemon, the library and the
CLI. A control entry (stream 3) ends a stream; its payload says how.
"""

from __future__ import annotations

import struct

from .. import native
from ..core.errors import ProtocolError, from_wire
from ..native._common import HEADER as _HEADER
from ..native._common import MAX_PAYLOAD  # a larger length is corrupt

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

CONTROL = 3
MODE_RECORDS, MODE_FRAMES = native.MODE_RECORDS, native.MODE_FRAMES
encode_frame = native.encode_frame
_TRAILER = struct.Struct(">QI")
READ_SIZE = 256 << 10  # room offered to a read when no entry is waiting to be completed


class StreamDecoder:
    """Bytes in (``feed``, or a read into ``get_buffer``), whole (stream, payload, time) entries out.

    Received bytes go into one reusable buffer, sized for the entry being
    completed, so a stream costs one copy in (a ``recv_into``) and one out
    (each payload as ``bytes``) whatever the entry and read sizes; joining
    reads (``buf + data``) copied a large entry once per read of it. The buffer
    is made on first use and grows with the entries: a session the caller reads
    some other way (the CLI demultiplexes in C) never pays for one, and every
    page of it is a page fault (a few microseconds each here).
    """

    def __init__(self, codec: Any, fmt: int = MODE_FRAMES, bufsize: int = 0) -> None:
        self._codec = codec
        self.fmt = fmt
        self._trailer = _TRAILER.size if fmt == MODE_RECORDS else 0
        self._buf = bytearray(bufsize)
        self._start = 0  # self._buf[_start:_end] is received and not yet taken
        self._end = 0
        self.ended = False
        self.end: dict[str, Any] = {}

    @property
    def buffered(self) -> int:
        return self._end - self._start

    def get_buffer(self) -> memoryview:
        """Where the next read goes: room for the rest of the entry under way, or a read's worth."""
        want = max(self._rest_of_entry(), READ_SIZE)
        if len(self._buf) - self._end < want:
            self._make_room(want)
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, n: int) -> None:
        """``n`` bytes were read into the buffer ``get_buffer`` gave."""
        self._end += n

    def feed(self, data: bytes) -> None:
        n = len(data)
        if len(self._buf) - self._end < n:
            self._make_room(n)
        self._buf[self._end : self._end + n] = data
        self._end += n

    def _rest_of_entry(self) -> int:
        """Bytes still to come for the incomplete entry at the start (0: none, or no header yet)."""
        have = self._end - self._start
        if have < _HEADER.size:
            return 0
        _, n = _HEADER.unpack_from(self._buf, self._start)
        # A corrupt length is refused by entries(); here it only must not size the buffer.
        return max(0, min(n, MAX_PAYLOAD) + _HEADER.size + self._trailer - have)

    def _make_room(self, want: int) -> None:
        """At least ``want`` bytes free at the end: move what is held to the front, or grow."""
        held = self._end - self._start
        size = len(self._buf)
        if held + want > size:
            size = max(size * 2, held + want)
            buf = bytearray(size)
        else:
            buf = self._buf
        buf[:held] = self._buf[self._start : self._end]
        self._buf, self._start, self._end = buf, 0, held

    def entries(self) -> list[tuple[int, bytes, int]]:
        """Complete (stream, payload, time) entries; time is 0 for frames, which carry none."""
        if self._start == self._end:
            return []
        view = memoryview(self._buf)[self._start : self._end]
        try:
            found, used = native.scan(view, self.fmt)
        except ValueError as e:
            raise ProtocolError(f"malformed stream: {e}") from None
        records = self.fmt == MODE_RECORDS
        out = []
        for stream, off, n in found:
            payload = bytes(view[off : off + n])
            if stream == CONTROL:
                used = off + n + self._trailer
                self._finish(payload)
                break
            ts = _TRAILER.unpack_from(view, off + n)[0] if records else 0
            out.append((stream, payload, ts))
        view.release()
        self._start += used
        if self._start == self._end:
            self._start = self._end = 0
        return out

    def _finish(self, payload: bytes) -> None:
        # Not raised here: the entries before the control one must reach the caller first.
        self.ended = True
        self.end = self._codec.decode_control(payload)

    def check(self) -> None:
        """Raise the error the stream ended with, if it ended with one."""
        if "error" in self.end:
            raise from_wire(str(self.end["error"]), {"message": self.end.get("message", "")})

    def take(self) -> bytes:
        """Whatever is buffered (for a raw TTY stream that is never framed)."""
        data = bytes(self._buf[self._start : self._end])
        self._start = self._end = 0
        return data
