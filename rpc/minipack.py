"""A small pure-Python msgpack codec for the CLI.

Importing msgspec costs ~30 ms here (it pulls in typing and inspect), more than
a whole `varpod ps` should take; the CLI's calls and replies are small, so it
encodes and decodes them with this instead. Same bytes as msgspec for the
types it covers (tests check both directions against msgspec).
"""

from __future__ import annotations

import struct

_pack_f64 = struct.Struct(">Bd").pack
_unpack = struct.unpack_from


class DecodeError(ValueError):
    pass


def packb(obj: object) -> bytes:
    out: list[bytes] = []
    _pack(obj, out)
    return b"".join(out)


def _pack(obj: object, out: list[bytes]) -> None:
    if obj is None:
        out.append(b"\xc0")
    elif obj is True:
        out.append(b"\xc3")
    elif obj is False:
        out.append(b"\xc2")
    elif isinstance(obj, int):
        out.append(_pack_int(obj))
    elif isinstance(obj, str):
        data = obj.encode()
        n = len(data)
        if n < 32:
            out.append(bytes((0xA0 | n,)))
        elif n < 0x100:
            out.append(bytes((0xD9, n)))
        elif n < 0x10000:
            out.append(struct.pack(">BH", 0xDA, n))
        else:
            out.append(struct.pack(">BI", 0xDB, n))
        out.append(data)
    elif isinstance(obj, float):
        out.append(_pack_f64(0xCB, obj))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        n = len(data)
        if n < 0x100:
            out.append(bytes((0xC4, n)))
        elif n < 0x10000:
            out.append(struct.pack(">BH", 0xC5, n))
        else:
            out.append(struct.pack(">BI", 0xC6, n))
        out.append(data)
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(bytes((0x90 | n,)))
        elif n < 0x10000:
            out.append(struct.pack(">BH", 0xDC, n))
        else:
            out.append(struct.pack(">BI", 0xDD, n))
        for item in obj:
            _pack(item, out)
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(bytes((0x80 | n,)))
        elif n < 0x10000:
            out.append(struct.pack(">BH", 0xDE, n))
        else:
            out.append(struct.pack(">BI", 0xDF, n))
        for k, v in obj.items():
            _pack(k, out)
            _pack(v, out)
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as msgpack")


def _pack_int(n: int) -> bytes:
    if 0 <= n < 0x80:
        return bytes((n,))
    if -32 <= n < 0:
        return bytes((n & 0xFF,))
    if n >= 0:
        for code, fmt, limit in ((0xCC, ">BB", 1 << 8), (0xCD, ">BH", 1 << 16),
                                 (0xCE, ">BI", 1 << 32), (0xCF, ">BQ", 1 << 64)):
            if n < limit:
                return struct.pack(fmt, code, n)
    else:
        for code, fmt, limit in ((0xD0, ">Bb", 1 << 7), (0xD1, ">Bh", 1 << 15),
                                 (0xD2, ">Bi", 1 << 31), (0xD3, ">Bq", 1 << 63)):
            if n >= -limit:
                return struct.pack(fmt, code, n)
    raise OverflowError(f"integer {n} does not fit msgpack")


def unpackb(data: bytes) -> object:
    obj, pos = _unpack_at(memoryview(data), 0, 0)
    if pos != len(data):
        raise DecodeError(f"{len(data) - pos} trailing bytes after the msgpack value")
    return obj


_FIXED = {  # code -> (struct format, size)
    0xCA: (">f", 4), 0xCB: (">d", 8),
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}
_LEN = {  # code -> (kind, length format, size)
    0xD9: ("str", ">B", 1), 0xDA: ("str", ">H", 2), 0xDB: ("str", ">I", 4),
    0xC4: ("bin", ">B", 1), 0xC5: ("bin", ">H", 2), 0xC6: ("bin", ">I", 4),
    0xDC: ("array", ">H", 2), 0xDD: ("array", ">I", 4),
    0xDE: ("map", ">H", 2), 0xDF: ("map", ">I", 4),
}


def _unpack_at(buf: memoryview, pos: int, depth: int) -> tuple[object, int]:
    if depth > 512:
        raise DecodeError("msgpack nesting too deep")
    try:
        code = buf[pos]
    except IndexError:
        raise DecodeError("truncated msgpack data") from None
    pos += 1
    if code < 0x80:
        return code, pos
    if code >= 0xE0:
        return code - 0x100, pos
    if 0xA0 <= code <= 0xBF:
        kind, n = "str", code & 0x1F
    elif 0x90 <= code <= 0x9F:
        kind, n = "array", code & 0x0F
    elif 0x80 <= code <= 0x8F:
        kind, n = "map", code & 0x0F
    elif code == 0xC0:
        return None, pos
    elif code == 0xC2:
        return False, pos
    elif code == 0xC3:
        return True, pos
    elif code in _FIXED:
        fmt, size = _FIXED[code]
        if pos + size > len(buf):
            raise DecodeError("truncated msgpack data")
        return _unpack(fmt, buf, pos)[0], pos + size
    elif code in _LEN:
        kind, fmt, size = _LEN[code]
        if pos + size > len(buf):
            raise DecodeError("truncated msgpack data")
        n = _unpack(fmt, buf, pos)[0]
        pos += size
    else:
        raise DecodeError(f"unsupported msgpack type byte {code:#x}")
    if kind in ("str", "bin"):
        end = pos + n
        if end > len(buf):
            raise DecodeError("truncated msgpack data")
        raw = bytes(buf[pos:end])
        if kind == "bin":
            return raw, end
        try:
            return raw.decode(), end
        except UnicodeDecodeError:
            raise DecodeError("invalid UTF-8 in msgpack string") from None
    if n > len(buf) - pos:  # every element takes at least one byte
        raise DecodeError("truncated msgpack data")
    if kind == "array":
        items = []
        for _ in range(n):
            item, pos = _unpack_at(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    out = {}
    for _ in range(n):
        key, pos = _unpack_at(buf, pos, depth + 1)
        value, pos = _unpack_at(buf, pos, depth + 1)
        try:
            out[key] = value
        except TypeError:
            raise DecodeError("unhashable msgpack map key") from None
    return out, pos


class MiniCodec:
    """Client codec over this module: dict parameters out, dict results in."""

    json = False

    def encode_call(self, call: dict) -> bytes:
        return packb(call)

    def decode_reply(self, body: bytes) -> tuple[object, bool, str | None]:
        from ..core.errors import ProtocolError

        try:
            reply = unpackb(body)
        except (DecodeError, UnicodeDecodeError) as e:
            raise ProtocolError(f"malformed reply: {e}") from None
        if not isinstance(reply, dict):
            raise ProtocolError("malformed reply: not a map")
        error = reply.get("error")
        return reply.get("parameters") or {}, bool(reply.get("continues")), error

    def decode_parameters(self, raw: object, rtype: object) -> object:
        return raw

    def decode_control(self, payload: bytes) -> dict:
        try:
            value = unpackb(payload)
        except (DecodeError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def error_parameters(self, raw: object) -> dict:
        return raw if isinstance(raw, dict) else {}
