"""Volumes in SQLite, on the containers' database file, cached in memory (as the image store)."""

from __future__ import annotations

import sqlite3
import threading

import msgspec

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
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
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
