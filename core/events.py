"""Typed events and the in-process bus; every event also lands in the store's ring."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable

import msgspec

log = logging.getLogger("varpod.events")


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    seq: int = 0
    time: int  # ns since the epoch
    type: str  # "container", "exec", "system"
    action: str  # create, init, start, attach, stop, kill, pause, unpause, died, ...
    id: str = ""
    name: str = ""
    attributes: dict[str, str] = {}


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Event).decode


class Subscription:
    """A bounded queue of events for one reader.

    A reader that falls ``limit`` events behind is cut off (``overflowed``)
    rather than growing the daemon's memory; it can resume from the ring by seq.
    """

    def __init__(self, bus: EventBus, limit: int, wakeup: Callable[[], None]) -> None:
        self._bus = bus
        self.queue: collections.deque[Event] = collections.deque()
        self.limit = limit
        self.overflowed = False
        self._wakeup = wakeup

    def push(self, event: Event) -> None:
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self._bus.unsubscribe(self)
        else:
            self.queue.append(event)
        self._wakeup()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    def __init__(self, store=None) -> None:
        self._store = store
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []

    def emit(self, type: str, action: str, id: str = "", name: str = "", **attributes: str) -> Event:
        event = Event(
            time=time.time_ns(), type=type, action=action, id=id, name=name,
            attributes={k: str(v) for k, v in attributes.items()},
        )
        if self._store is not None:
            seq = self._store.append_event(_encode(event))
            event = msgspec.structs.replace(event, seq=seq)
        for listener in self._listeners:
            listener(event)
        for sub in list(self._subs):
            sub.push(event)
        return event

    def subscribe(self, wakeup: Callable[[], None], limit: int = 4096) -> Subscription:
        sub = Subscription(self, limit, wakeup)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def history(self, after_seq: int = 0, limit: int = 10_000) -> list[Event]:
        if self._store is None:
            return []
        return [
            msgspec.structs.replace(_decode(rec), seq=seq)
            for seq, rec in self._store.events_after(after_seq, limit)
        ]

    def last_seq(self) -> int:
        return self._store.last_event_seq() if self._store is not None else 0
