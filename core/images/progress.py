"""What a pull, load or import reports while it works: typed events for a sink.

The operation calls ``progress(Progress(...))`` on the loop thread; the RPC
layer streams the events as ``more`` replies and the CLI draws them (a
podman-like display on a terminal, plain lines otherwise). Byte counts of one
blob are reported at most every ``INTERVAL`` seconds, and always at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

INTERVAL = 0.1


class Progress(msgspec.Struct, frozen=True, omit_defaults=True):
    """``kind``: resolve | blob | config | manifest | layer | image | note.

    ``state`` for blobs and layers: start | progress | done | exists | extract.
    """

    kind: str
    id: str = ""
    state: str = ""
    current: int = 0
    total: int = 0
    text: str = ""


Sink = Callable[[Progress], None]


def _discard(event: Progress) -> None:
    pass


class Reporter:
    """A sink with throttled byte counts."""

    def __init__(self, sink: Sink | None) -> None:
        self.sink = sink or _discard
        self._last: dict[str, float] = {}

    def __call__(self, event: Progress) -> None:
        self.sink(event)

    def note(self, text: str) -> None:
        self.sink(Progress("note", text=text))

    def bytes(self, kind: str, ident: str, current: int, total: int) -> None:
        now = time.monotonic()
        if current < total and now - self._last.get(ident, 0.0) < INTERVAL:
            return
        self._last[ident] = now
        self.sink(Progress(kind, ident, "progress", current, total))
