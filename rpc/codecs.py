"""msgspec codecs for the protocol: msgpack (varpod's framing) and JSON (plain varlink).

The envelope is decoded first with ``parameters`` left raw; the method's own
decoder (built once at start-up) then decodes the parameters into its Struct.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..core.errors import InvalidParameter, ProtocolError


class Call(msgspec.Struct):
    method: str
    parameters: msgspec.Raw = msgspec.Raw()
    more: bool = False
    oneway: bool = False
    upgrade: bool = False


class _ReplyOut(msgspec.Struct, omit_defaults=True):
    parameters: Any
    continues: bool = False


class _ErrorOut(msgspec.Struct):
    error: str
    parameters: Any


class _ReplyIn(msgspec.Struct):
    parameters: msgspec.Raw = msgspec.Raw()
    continues: bool = False
    error: str | None = None


_AT_PATH = re.compile(r"at `\$\.?([^`]*)`")


def invalid_parameter(e: msgspec.ValidationError | msgspec.DecodeError) -> InvalidParameter:
    text = str(e)
    m = _AT_PATH.search(text)
    field = m.group(1) if m else ""
    named = re.search(r"(?:missing required|unknown) field `([^`]+)`", text)
    if named:
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    return InvalidParameter(f"invalid parameters: {text}", parameter=field)


class _ServerCodec:
    json: bool
    empty: bytes

    def __init__(self, module: Any) -> None:
        self._call = module.Decoder(Call)
        self._enc = module.Encoder()
        self._module = module

    def decode_call(self, body: bytes) -> Call:
        try:
            call = self._call.decode(body)
        except msgspec.ValidationError as e:
            raise ProtocolError(f"invalid call envelope: {e}") from None
        except (msgspec.DecodeError, UnicodeDecodeError) as e:  # msgspec: bad UTF-8 is the latter
            raise ProtocolError(f"malformed message: {e}") from None
        except RecursionError:
            raise ProtocolError("malformed message: nested too deeply") from None
        return call

    def decode_params(self, call: Call, decoder: Any) -> Any:
        raw = call.parameters
        try:
            return decoder.decode(raw if len(raw) else self.empty)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise invalid_parameter(e) from None
        except UnicodeDecodeError as e:
            raise InvalidParameter(f"invalid parameters: {e}", parameter="") from None
        except RecursionError:
            raise InvalidParameter("invalid parameters: nested too deeply", parameter="") from None

    def encode_reply(self, parameters: Any, continues: bool) -> bytes:
        return self._enc.encode(_ReplyOut(parameters, continues))

    def encode_error(self, name: str, parameters: dict[str, Any]) -> bytes:
        return self._enc.encode(_ErrorOut(name, parameters))

    def encode_control(self, payload: dict[str, Any]) -> bytes:
        return self._enc.encode(payload)

    def encode_value(self, value: Any) -> msgspec.Raw:
        """Pre-encoded reply parameters, for replies that are cached."""
        return msgspec.Raw(self._enc.encode(value))

    def decoder(self, ptype: Any) -> Any:
        return self._module.Decoder(ptype)


class MsgpackServerCodec(_ServerCodec):
    json = False
    empty = b"\x80"

    def __init__(self) -> None:
        super().__init__(msgspec.msgpack)


class JsonServerCodec(_ServerCodec):
    json = True
    empty = b"{}"

    def __init__(self) -> None:
        super().__init__(msgspec.json)


class MsgspecClientCodec:
    """The library's codec: Struct parameters out, typed results in."""

    def __init__(self, json: bool = False) -> None:
        self.json = json
        module = msgspec.json if json else msgspec.msgpack
        self._module = module
        self._enc = module.Encoder()
        self._reply = module.Decoder(_ReplyIn)
        self._decoders: dict[Any, Any] = {}

    def encode_call(self, call: dict[str, Any]) -> bytes:
        return self._enc.encode(call)

    def decode_reply(self, body: bytes) -> tuple[msgspec.Raw, bool, str | None]:
        try:
            r = self._reply.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ProtocolError(f"malformed reply: {e!r}") from None
        return r.parameters, r.continues, r.error

    def decode_parameters(self, raw: msgspec.Raw, rtype: Any) -> Any:
        dec = self._decoders.get(rtype)
        if dec is None:
            dec = self._decoders[rtype] = self._module.Decoder(rtype)
        if not len(raw):
            raw = b"{}" if self.json else b"\x80"
        try:
            return dec.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ProtocolError(f"reply does not match {getattr(rtype, '__name__', rtype)}: {e}") from None

    def decode_control(self, payload: bytes) -> dict[str, Any]:
        try:
            value = self._module.decode(payload)
        except msgspec.DecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def error_parameters(self, raw: msgspec.Raw) -> dict[str, Any]:
        if not len(raw):
            return {}
        try:
            value = self._module.decode(raw)
        except msgspec.DecodeError:
            return {}
        return value if isinstance(value, dict) else {}
