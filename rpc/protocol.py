"""Sans-IO Varlink-style protocol: bytes in, calls/replies out. Nothing here awaits.

Two framings share one socket, told apart by the first byte a client sends:

* msgpack (varpod's own): a 4-byte big-endian length, then a msgpack map;
* standard varlink: a JSON object terminated by a NUL byte (first byte ``{``).

A call is ``{method, parameters, more?, oneway?, upgrade?}``; a reply is
``{parameters, continues?}`` or ``{error, parameters}``. Calls on one
connection are answered in order. After the final reply to an ``upgrade``
call the connection stops carrying frames and becomes a raw byte stream.

Codecs (how a map becomes bytes) are plugged in: ``codecs.py`` (msgspec,
typed) for the daemon and the library, ``minipack.MiniCodec`` for the CLI.
"""

from __future__ import annotations

from _collections import deque  # the C type; `collections` costs ~1.5 ms of CLI start-up

from ..core.errors import FrameTooLarge, ProtocolError

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object

DEFAULT_MAX_FRAME = 16 << 20
_LEN = 4


class Framer:
    """Splits a byte stream into message bodies and wraps bodies into frames."""

    __slots__ = ("_buf", "_pos", "json", "max_size")

    def __init__(self, *, json: bool = False, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.json = json
        self.max_size = max_size
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def next_body(self) -> bytes | None:
        """The next complete body, or None until more bytes arrive."""
        buf, pos = self._buf, self._pos
        if self.json:
            end = buf.find(b"\0", pos)
            if (end < 0 and len(buf) - pos > self.max_size) or end - pos > self.max_size:
                raise FrameTooLarge(f"message longer than {self.max_size} bytes", limit=self.max_size)
            if end < 0:
                return None
            body = bytes(buf[pos:end])
            self._advance(end + 1)
            return body
        if len(buf) - pos < _LEN:
            return None
        n = int.from_bytes(buf[pos : pos + _LEN], "big")
        if n > self.max_size:
            # Refused before anything is allocated for it.
            raise FrameTooLarge(f"frame of {n} bytes is over the {self.max_size}-byte limit",
                                limit=self.max_size)
        end = pos + _LEN + n
        if len(buf) < end:
            return None
        body = bytes(buf[pos + _LEN : end])
        self._advance(end)
        return body

    def _advance(self, pos: int) -> None:
        if pos >= len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif pos > 65536 and pos * 2 > len(self._buf):
            del self._buf[:pos]
            self._pos = 0
        else:
            self._pos = pos

    def frame(self, body: bytes) -> bytes:
        if self.json:
            return body + b"\0"
        return len(body).to_bytes(_LEN, "big") + body

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def take_rest(self) -> bytes:
        """Bytes received past the last body (the start of an upgraded stream)."""
        rest = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = 0
        return rest


# -- client side ------------------------------------------------------------------


class ClientCodec(Protocol):
    json: bool

    def encode_call(self, call: dict[str, Any]) -> bytes: ...
    def decode_reply(self, body: bytes) -> tuple[Any, bool, str | None]: ...
    def error_parameters(self, raw: Any) -> dict[str, Any]: ...


class Reply:
    """One reply from the server. ``parameters`` is codec-raw until decoded by the caller."""

    __slots__ = ("continues", "error", "method", "parameters")

    def __init__(self, method: str, parameters: Any, continues: bool, error: str | None) -> None:
        self.method = method
        self.parameters = parameters
        self.continues = continues
        self.error = error


class ClientConnection:
    """The client half: turns calls into bytes and received bytes into Replies."""

    def __init__(self, codec: ClientCodec, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.codec = codec
        self._framer = Framer(json=codec.json, max_size=max_size)
        # (method, upgrade) of calls awaiting their final reply, in send order.
        self._pending: deque[tuple[str, bool]] = deque()
        self.upgraded = False

    def send_call(
        self,
        method: str,
        parameters: Any = None,
        *,
        more: bool = False,
        oneway: bool = False,
        upgrade: bool = False,
    ) -> bytes:
        if self.upgraded:
            raise ProtocolError("the connection was upgraded to a raw stream; open a new one")
        call: dict[str, Any] = {"method": method, "parameters": {} if parameters is None else parameters}
        if more:
            call["more"] = True
        if oneway:
            call["oneway"] = True
        else:
            self._pending.append((method, upgrade))
        if upgrade:
            call["upgrade"] = True
        return self._framer.frame(self.codec.encode_call(call))

    def receive_data(self, data: bytes) -> None:
        self._framer.feed(data)

    def next_reply(self) -> Reply | None:
        if self.upgraded:
            return None
        body = self._framer.next_body()
        if body is None:
            return None
        if not self._pending:
            raise ProtocolError("reply received with no call outstanding")
        parameters, continues, error = self.codec.decode_reply(body)
        method, upgrade = self._pending[0]
        if error is not None or not continues:
            self._pending.popleft()
            if upgrade and error is None:
                self.upgraded = True
        return Reply(method, parameters, continues and error is None, error)

    def resume(self, method: str) -> None:
        """After an upgrade whose stream carries replies again (io.varpod.Image's fd calls):
        the next frames are ``method``'s replies."""
        self.upgraded = False
        self._pending.append((method, False))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take_rest(self) -> bytes:
        return self._framer.take_rest()


# -- server side ------------------------------------------------------------------


class ServerCodec(Protocol):
    json: bool

    def decode_call(self, body: bytes) -> Any: ...
    def encode_reply(self, parameters: Any, continues: bool) -> bytes: ...
    def encode_error(self, name: str, parameters: dict[str, Any]) -> bytes: ...


class ServerConnection:
    """The server half. The first byte picks the framing: ``{`` means varlink JSON."""

    def __init__(self, msgpack_codec: ServerCodec, json_codec: ServerCodec, *,
                 max_size: int = DEFAULT_MAX_FRAME) -> None:
        self._codecs = (msgpack_codec, json_codec)
        self.max_size = max_size
        self.codec: ServerCodec | None = None
        self._framer: Framer | None = None

    def receive_data(self, data: bytes) -> None:
        if self._framer is None:
            if not data:
                return
            is_json = data[:1] == b"{"
            self.codec = self._codecs[1] if is_json else self._codecs[0]
            self._framer = Framer(json=is_json, max_size=self.max_size)
        self._framer.feed(data)

    def next_call(self) -> Any | None:
        """The next decoded call envelope; ProtocolError on garbage."""
        if self._framer is None:
            return None
        body = self._framer.next_body()
        if body is None:
            return None
        return self.codec.decode_call(body)

    def reply(self, parameters: Any, continues: bool = False) -> bytes:
        return self._framer.frame(self.codec.encode_reply(parameters, continues))

    def error(self, name: str, parameters: dict[str, Any]) -> bytes:
        codec = self.codec or self._codecs[0]
        framer = self._framer or Framer(max_size=self.max_size)
        return framer.frame(codec.encode_error(name, parameters))

    @property
    def is_json(self) -> bool:
        return self._framer is not None and self._framer.json

    def buffered(self) -> int:
        return self._framer.buffered() if self._framer is not None else 0

    def take_rest(self) -> bytes:
        return self._framer.take_rest() if self._framer is not None else b""
