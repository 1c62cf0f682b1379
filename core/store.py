"""The SQLite store (WAL), with a write-through cache so reads never touch disk.

Every write is one short transaction on the calling thread: a state row is a
few hundred bytes and a WAL commit with ``synchronous=NORMAL`` costs ~20 µs
here (p50; p99 ~60 µs), while a hop to a worker thread costs ~140 µs
(``benchmarks/bench_store.py`` measures both). NORMAL keeps every committed transaction across
a daemon crash; only an OS crash can lose the last few, never corrupt the file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator

import msgspec

from .errors import AmbiguousName, NameInUse, NoSuchContainer
from .model import ContainerConfig, ContainerRecord, ContainerState

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id     TEXT PRIMARY KEY,
    name   TEXT NOT NULL UNIQUE,
    config BLOB NOT NULL,
    state  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS exec_sessions (
    id           TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    record       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS exec_by_container ON exec_sessions (container_id);
CREATE TABLE IF NOT EXISTS events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    record BLOB NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode
_decode_config = msgspec.json.Decoder(ContainerConfig).decode
_decode_state = msgspec.json.Decoder(ContainerState).decode


def connect(path: str, schema: str) -> sqlite3.Connection:
    """A connection to the daemon's database file (WAL), with ``schema`` made if missing.

    Each store (containers, images, networks, pods ...) keeps its own connection to the
    one file; writes are short and on the loop thread, and a writer that finds the file
    locked (a store closing, a thread's transaction) waits rather than fails.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(schema)
    return db
# Larger values are not bound to a statement but written through a blob handle: the
# sqlite3 module keeps a statement's last bindings (SQLite's own copies) in its
# statement cache, which held one container's 8 MiB environment value for as long
# as the daemon ran.
BIG_VALUE = 64 << 10


class Store:
    """Containers, exec sessions and an events ring. ``path=":memory:"`` for unit tests."""

    def __init__(self, path: str, *, events_kept: int = 10_000) -> None:
        self.path = path
        self._db = connect(path, SCHEMA)
        # Guards the connection: the loop thread writes, shutdown may close.
        self._lock = threading.Lock()
        self._events_kept = events_kept
        self._events_since_trim = 0
        self._by_id: dict[str, ContainerRecord] = {}
        self._by_name: dict[str, str] = {}
        self.version = 0  # bumped on every container change: readers cache against it
        for cid, config, state in self._db.execute("SELECT id, config, state FROM containers"):
            rec = ContainerRecord(_decode_config(config), _decode_state(state))
            self._by_id[cid] = rec
            self._by_name[rec.name] = cid

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- containers -------------------------------------------------------

    def add(self, rec: ContainerRecord) -> None:
        if rec.name in self._by_name:
            raise NameInUse(f"the name {rec.name!r} is already in use", name=rec.name)
        config = _encode(rec.config)
        with self._lock:
            if len(config) <= BIG_VALUE:
                self._db.execute(
                    "INSERT INTO containers (id, name, config, state) VALUES (?, ?, ?, ?)",
                    (rec.id, rec.name, config, _encode(rec.state)),
                )
            else:
                self._write_big(config, "INSERT INTO containers (id, name, config, state) "
                                        "VALUES (?, ?, zeroblob(?), ?)",
                                (rec.id, rec.name, len(config), _encode(rec.state)), rec.id)
        self._by_id[rec.id] = rec
        self._by_name[rec.name] = rec.id
        self.version += 1

    def save(self, rec: ContainerRecord) -> ContainerRecord:
        """Persist a new state for an existing container; returns the record now stored.

        Only the state is written: the config stays the stored one, even when ``rec``
        was loaded before a ``save_record`` changed it.
        """
        current = self._by_id.get(rec.id)
        if current is None:
            raise NoSuchContainer(f"no container with ID {rec.id}", name=rec.id)
        if rec.config is not current.config:
            rec = ContainerRecord(current.config, rec.state)
        with self._lock:
            self._db.execute(
                "UPDATE containers SET state = ? WHERE id = ?", (_encode(rec.state), rec.id)
            )
        self._by_id[rec.id] = rec
        self.version += 1
        return rec

    def save_record(self, rec: ContainerRecord) -> ContainerRecord:
        """Persist config and state of an existing container (its name and ID never change)."""
        current = self._by_id.get(rec.id)
        if current is None:
            raise NoSuchContainer(f"no container with ID {rec.id}", name=rec.id)
        if rec.name != current.name:
            raise ValueError(f"container {rec.id} cannot be renamed by save_record")
        config = _encode(rec.config)
        with self._lock:
            if len(config) <= BIG_VALUE:
                self._db.execute(
                    "UPDATE containers SET config = ?, state = ? WHERE id = ?",
                    (config, _encode(rec.state), rec.id),
                )
            else:
                self._write_big(config, "UPDATE containers SET config = zeroblob(?), state = ? WHERE id = ?",
                                (len(config), _encode(rec.state), rec.id), rec.id)
        self._by_id[rec.id] = rec
        self.version += 1
        return rec

    def _write_big(self, config: bytes, sql: str, params: tuple, cid: str) -> None:
        """One transaction: ``sql`` makes room (zeroblob) for the config, which is then written in."""
        self._db.execute("BEGIN")
        try:
            self._db.execute(sql, params)
            (rowid,) = self._db.execute("SELECT rowid FROM containers WHERE id = ?", (cid,)).fetchone()
            with self._db.blobopen("containers", "config", rowid) as blob:
                blob.write(config)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def delete(self, cid: str) -> None:
        rec = self._by_id.pop(cid, None)
        if rec is not None:
            self._by_name.pop(rec.name, None)
        self.version += 1
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM exec_sessions WHERE container_id = ?", (cid,))
            self._db.execute("DELETE FROM containers WHERE id = ?", (cid,))
            self._db.execute("COMMIT")

    def get(self, cid: str) -> ContainerRecord:
        try:
            return self._by_id[cid]
        except KeyError:
            raise NoSuchContainer(f"no container with ID {cid}", name=cid) from None

    def find(self, ref: str) -> ContainerRecord:
        """Resolve like podman: full ID, then exact name, then a unique ID prefix."""
        rec = self._by_id.get(ref)
        if rec is not None:
            return rec
        cid = self._by_name.get(ref)
        if cid is not None:
            return self._by_id[cid]
        if ref and all(c in "0123456789abcdef" for c in ref):
            matches = [cid for cid in self._by_id if cid.startswith(ref)]
            if len(matches) == 1:
                return self._by_id[matches[0]]
            if matches:
                raise AmbiguousName(
                    f"{ref!r} matches {len(matches)} containers; use more of the ID", name=ref
                )
        raise NoSuchContainer(f"no container with name or ID {ref[:100]!r}", name=ref[:253])

    def all(self) -> Iterator[ContainerRecord]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    # -- exec sessions (opaque JSON records owned by core.exec) ------------------

    def save_exec(self, sid: str, cid: str, record: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO exec_sessions (id, container_id, record) VALUES (?, ?, ?)",
                (sid, cid, record),
            )

    def delete_exec(self, sid: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM exec_sessions WHERE id = ?", (sid,))

    def load_execs(self) -> list[tuple[str, str, bytes]]:
        with self._lock:
            return list(self._db.execute("SELECT id, container_id, record FROM exec_sessions"))

    # -- events ring ------------------------------------------------------------

    def append_event(self, record: bytes) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO events (record) VALUES (?)", (record,))
            seq = int(cur.lastrowid or 0)
            self._events_since_trim += 1
            if self._events_since_trim >= 500:
                self._events_since_trim = 0
                self._db.execute("DELETE FROM events WHERE seq <= ?", (seq - self._events_kept,))
        return seq

    def events_after(self, seq: int, limit: int = 10_000) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT seq, record FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, limit),
                )
            )

    def last_event_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)
