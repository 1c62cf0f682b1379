"""Pods in SQLite, in their own table of the containers' database file.

A connection of its own (WAL lets two share a file): this module owns its table
and the containers' Store stays as it is. Reads come from a cache; each write is
one short transaction, as in core/store.py.
"""

from __future__ import annotations

import threading

import msgspec

from ..errors import AmbiguousPodName, NoSuchPod, PodExists
from ..store import connect
from .model import PodConfig, PodRecord, PodState

SCHEMA = """
CREATE TABLE IF NOT EXISTS pods (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE,
    config BLOB NOT NULL,
    state  BLOB NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode
_decode_config = msgspec.json.Decoder(PodConfig).decode
_decode_state = msgspec.json.Decoder(PodState).decode


class PodStore:
    """``path=":memory:"`` for unit tests."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()  # guards the connection, as in core/store.py
        self._by_id: dict[str, PodRecord] = {}
        self._by_name: dict[str, str] = {}
        for pid, config, state in self._db.execute("SELECT id, config, state FROM pods"):
            rec = PodRecord(_decode_config(config), _decode_state(state))
            self._by_id[pid] = rec
            self._by_name[rec.name] = pid

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, rec: PodRecord) -> None:
        if rec.name in self._by_name:
            raise PodExists(f"a pod named {rec.name!r} already exists", name=rec.name)
        with self._lock:
            self._db.execute("INSERT INTO pods (id, name, config, state) VALUES (?, ?, ?, ?)",
                             (rec.id, rec.name, _encode(rec.config), _encode(rec.state)))
        self._by_id[rec.id] = rec
        self._by_name[rec.name] = rec.id

    def save(self, rec: PodRecord) -> PodRecord:
        """A new state for a stored pod (its config never changes)."""
        current = self.get(rec.id)
        rec = PodRecord(current.config, rec.state)
        with self._lock:
            self._db.execute("UPDATE pods SET state = ? WHERE id = ?", (_encode(rec.state), rec.id))
        self._by_id[rec.id] = rec
        return rec

    def delete(self, pid: str) -> None:
        rec = self._by_id.pop(pid, None)
        if rec is not None:
            self._by_name.pop(rec.name, None)
        with self._lock:
            self._db.execute("DELETE FROM pods WHERE id = ?", (pid,))

    def get(self, pid: str) -> PodRecord:
        try:
            return self._by_id[pid]
        except KeyError:
            raise NoSuchPod(f"no pod with ID {pid[:100]}", name=pid[:253]) from None

    def find(self, ref: str) -> PodRecord:
        """Full ID, then exact name, then a unique ID prefix (as containers are found)."""
        rec = self._by_id.get(ref)
        if rec is not None:
            return rec
        pid = self._by_name.get(ref)
        if pid is not None:
            return self._by_id[pid]
        if ref and all(c in "0123456789abcdef" for c in ref):
            matches = [pid for pid in self._by_id if pid.startswith(ref)]
            if len(matches) == 1:
                return self._by_id[matches[0]]
            if matches:
                raise AmbiguousPodName(f"{ref!r} matches {len(matches)} pods; use more of the ID",
                                       name=ref)
        raise NoSuchPod(f"no pod with name or ID {ref[:100]!r}", name=ref[:253])

    def has_name(self, name: str) -> bool:
        return name in self._by_name

    def all(self) -> list[PodRecord]:
        return list(self._by_id.values())
