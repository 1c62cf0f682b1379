"""Methods by name: parameter Struct, decoders built once, handler and how it replies."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from ..core.errors import InterfaceNotFound, MethodNotFound
from .codecs import JsonServerCodec, MsgpackServerCodec


class Kind(enum.Enum):
    SYNC = "sync"  # plain function, answered inline without a task
    ASYNC = "async"  # coroutine function, one reply
    STREAM = "stream"  # async generator of (reply, continues)
    UPGRADE = "upgrade"  # coroutine returning (reply, takeover) for a raw stream


class Method:
    __slots__ = ("decoders", "handler", "interface", "kind", "long", "mutating", "name", "params")

    def __init__(self, name: str, params: type, handler: Callable[..., Any], kind: Kind,
                 mutating: bool, long: bool, decoders: tuple[Any, Any]) -> None:
        self.name = name
        # Long waits (streams, Wait) are cancelled when the peer leaves or the daemon stops.
        self.long = long or kind in (Kind.STREAM, Kind.UPGRADE)
        self.interface = name.rpartition(".")[0]
        self.params = params
        self.handler = handler
        self.kind = kind
        self.mutating = mutating
        self.decoders = decoders


class Registry:
    def __init__(self) -> None:
        self.msgpack = MsgpackServerCodec()
        self.json = JsonServerCodec()
        self._methods: dict[str, Method] = {}
        self.interfaces: list[str] = []

    def add(self, name: str, params: type, handler: Callable[..., Any], kind: Kind = Kind.ASYNC,
            *, mutating: bool = False, long: bool = False) -> None:
        interface = name.rpartition(".")[0]
        if interface not in self.interfaces:
            self.interfaces.append(interface)
        decoders = (self.msgpack.decoder(params), self.json.decoder(params))
        self._methods[name] = Method(name, params, handler, kind, mutating, long, decoders)

    def get(self, name: str) -> Method:
        method = self._methods.get(name)
        if method is not None:
            return method
        interface = name.rpartition(".")[0]
        if interface not in self.interfaces:
            raise InterfaceNotFound(f"interface {interface[:200]!r} is not served here",
                                    interface=interface[:200])
        raise MethodNotFound(f"method {name[:200]!r} does not exist", method=name[:200])

    def methods(self) -> list[Method]:
        return list(self._methods.values())
