"""Images, their names and layers in SQLite, on the containers' database file, cached in memory.

An image row is written only once every layer it lists has its row (and its
directory): a crash between the two leaves layers no image uses, which
``Images.collect`` removes, never an image with missing layers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import msgspec

from ..store import connect
from .model import ImageRecord, LayerRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id     TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS image_names (
    name     TEXT PRIMARY KEY,
    image_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_names_by_image ON image_names (image_id);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    record   BLOB NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode
_decode_image = msgspec.json.Decoder(ImageRecord).decode
_decode_layer = msgspec.json.Decoder(LayerRecord).decode


class ImageStore:
    """Every read is from memory; every write is one short transaction (the loop thread's)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()  # guards the connection
        self.images: dict[str, ImageRecord] = {}
        self.names: dict[str, str] = {}  # name -> image id
        self.layers: dict[str, LayerRecord] = {}
        for iid, record in self._db.execute("SELECT id, record FROM images"):
            self.images[iid] = _decode_image(record)
        for name, iid in self._db.execute("SELECT name, image_id FROM image_names"):
            if iid in self.images:
                self.names[name] = iid
        for cid, record in self._db.execute("SELECT chain_id, record FROM layers"):
            self.layers[cid] = _decode_layer(record)
        self.version = 0  # bumped on every change: listings cache against it

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def names_of(self, iid: str) -> list[str]:
        return sorted(n for n, i in self.names.items() if i == iid)

    # -- writes ---------------------------------------------------------------------

    def add_layer(self, rec: LayerRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO layers (chain_id, record) VALUES (?, ?)",
                             (rec.chain_id, _encode(rec)))
        self.layers[rec.chain_id] = rec

    def delete_layers(self, chain_ids: Iterable[str]) -> None:
        ids = list(chain_ids)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM layers WHERE chain_id = ?", [(c,) for c in ids])
            self._db.execute("COMMIT")
        for c in ids:
            self.layers.pop(c, None)

    def put_image(self, rec: ImageRecord, names: Iterable[str] = ()) -> list[str]:
        """Add or replace an image and point ``names`` at it; returns the names it took from
        other images (they move, as a tag does)."""
        names = list(names)
        moved = [n for n in names if self.names.get(n) not in (None, rec.id)]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("INSERT OR REPLACE INTO images (id, record) VALUES (?, ?)",
                                 (rec.id, _encode(rec)))
                self._db.executemany(
                    "INSERT OR REPLACE INTO image_names (name, image_id) VALUES (?, ?)",
                    [(n, rec.id) for n in names])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.images[rec.id] = rec
        for n in names:
            self.names[n] = rec.id
        self.version += 1
        return moved

    def remove_names(self, names: Iterable[str]) -> None:
        names = list(names)
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM image_names WHERE name = ?", [(n,) for n in names])
            self._db.execute("COMMIT")
        for n in names:
            self.names.pop(n, None)
        self.version += 1

    def delete_image(self, iid: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM image_names WHERE image_id = ?", (iid,))
            self._db.execute("DELETE FROM images WHERE id = ?", (iid,))
            self._db.execute("COMMIT")
        self.images.pop(iid, None)
        for n in [n for n, i in self.names.items() if i == iid]:
            del self.names[n]
        self.version += 1
