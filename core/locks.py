"""Per-container async locks, created on first use and dropped on removal."""

from __future__ import annotations

import asyncio


class Locks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def hold(self, cid: str) -> asyncio.Lock:
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = asyncio.Lock()
        return lock

    def drop(self, cid: str) -> None:
        self._locks.pop(cid, None)

    def locked(self, cid: str) -> bool:
        lock = self._locks.get(cid)
        return lock is not None and lock.locked()
