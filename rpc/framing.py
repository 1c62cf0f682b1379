"""Sans-IO decoding of upgraded streams: 8-byte-header frames or log records.

The byte work is ``varpod.native`` (C when built, the Python twin otherwise),
so there is one framing implementation for the daemon, the library and the
CLI. A control entry (stream 3) ends a stream; its payload says how.
"""

from __future__ import annotations

import struct

from .. import native
from ..core.errors import ProtocolError, from_wire

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

CONTROL = 3
MODE_RECORDS, MODE_FRAMES = native.MODE_RECORDS, native.MODE_FRAMES
encode_frame = native.encode_frame
_TRAILER = struct.Struct(">QI")


class StreamDecoder:
    """Feed bytes, take (stream, payload) pairs; ``ended`` once the control entry arrived."""

    def __init__(self, codec: Any, fmt: int = MODE_FRAMES) -> None:
        self._codec = codec
        self.fmt = fmt
        self._buf = b""
        self.ended = False
        self.end: dict[str, Any] = {}

    def feed(self, data: bytes) -> None:
        self._buf = self._buf + data if self._buf else data

    def entries(self) -> list[tuple[int, bytes, int]]:
        """Complete (stream, payload, time) entries; time is 0 for frames, which carry none."""
        buf = self._buf
        try:
            found, used = native.scan(buf, self.fmt)
        except ValueError as e:
            raise ProtocolError(f"malformed stream: {e}") from None
        records = self.fmt == MODE_RECORDS
        out = []
        for stream, off, n in found:
            payload = buf[off : off + n]
            if stream == CONTROL:
                used = off + n + (_TRAILER.size if records else 0)
                self._finish(payload)
                break
            ts = _TRAILER.unpack_from(buf, off + n)[0] if records else 0
            out.append((stream, payload, ts))
        self._buf = buf[used:]
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
        data, self._buf = self._buf, b""
        return data
