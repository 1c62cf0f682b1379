"""Volumes in SQLite, on the containers' database file, cached in memory (as the image store)."""

from __future__ import annotations

import threading

import msgspec

from ..store import connect
from .model import VolumeRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name   TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(VolumeRecord).decode


class VolumeStore:
    """Every read is from memory; every write is one short transaction (the loop thread's)."""

    def __init__(self, path: str) -> None:
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()  # guards the connection
        self.volumes: dict[str, VolumeRecord] = {
            name: _decode(record) for name, record in self._db.execute("SELECT name, record FROM volumes")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, rec: VolumeRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO volumes (name, record) VALUES (?, ?)",
                             (rec.name, _encode(rec)))
        self.volumes[rec.name] = rec

    def delete(self, name: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        self.volumes.pop(name, None)
