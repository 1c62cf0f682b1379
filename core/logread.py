"""Where a log replay starts and ends: tail, since and until over rotated files.

Positions are (generation, offset[, skip]) so a reader can hold a file open
across a rotation and move on by generation. ``--tail`` walks backwards one
record at a time (bounded memory, whatever the log size: podman#5131 read it
all); ``--since`` scans headers forward from the oldest retained file.
"""

from __future__ import annotations

import os

import msgspec

from .logfile import iter_backwards, iter_file, log_files


class Position(msgspec.Struct, frozen=True):
    generation: int
    offset: int
    skip: int = 0  # payload bytes of the record at ``offset`` to leave out (tail mid-record)


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    stdout: bool = True
    stderr: bool = True
    tail: int | None = None  # last N lines
    since: int | None = None  # ns since the epoch
    until: int | None = None

    def wants(self, stream: int) -> bool:
        return (stream == 1 and self.stdout) or (stream == 2 and self.stderr)

    @property
    def all_streams(self) -> bool:
        return self.stdout and self.stderr


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def start_position(path: str, sel: Selection) -> Position:
    files = log_files(path)
    if sel.tail is not None:
        return _tail_position(files, sel)
    if sel.since is not None:
        return _since_position(files, sel.since)
    return Position(files[0][0], 0)


def _tail_position(files: list[tuple[int, str]], sel: Selection) -> Position:
    wanted = sel.tail or 0
    if wanted <= 0:
        gen, fpath = files[-1]
        return Position(gen, _size(fpath))
    newlines = 0
    first = True
    for gen, fpath in reversed(files):
        fd = _open(fpath)
        if fd is None:
            continue
        try:
            for rec in iter_backwards(fd):
                if not sel.wants(rec.stream) or not rec.payload:
                    continue
                payload = rec.payload
                end = len(payload)
                if first and payload.endswith(b"\n"):
                    end -= 1  # the final newline ends the last line; it does not start one
                first = False
                while (i := payload.rfind(b"\n", 0, end)) >= 0:
                    newlines += 1
                    if newlines == wanted:
                        return Position(gen, rec.offset, i + 1)
                    end = i
        finally:
            os.close(fd)
    return Position(files[0][0], 0)  # fewer lines than asked for: all of them


def _since_position(files: list[tuple[int, str]], since: int) -> Position:
    for gen, fpath in files:
        fd = _open(fpath)
        if fd is None:
            continue
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                continue
            # Whole files older than `since` are skipped by their last record.
            newest = next(iter_backwards(fd), None)
            if newest is None or newest.time < since:
                continue
            for rec in iter_file(fd):
                if rec.time >= since:
                    return Position(gen, rec.offset)
        finally:
            os.close(fd)
    return Position(files[-1][0], _size(files[-1][1]))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
