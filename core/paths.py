"""Paths the daemon derives: never from unchecked input, never escaping a root."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat

from .errors import InvalidConfig
from .model import ID_RE

_MAX_LINKS = 40


def check_id(cid: str) -> str:
    """IDs reach the filesystem; only our own 64-hex form is accepted there."""
    if not ID_RE.match(cid):
        raise InvalidConfig(f"invalid container ID {cid[:80]!r}", field="id")
    return cid


def resolve_in_root(root: str, path: str) -> str:
    """Resolve ``path`` as if ``root`` were ``/``: symlinks (absolute or ``..``) cannot escape.

    Returns the host path. Components that do not exist are kept lexically,
    so the result can name a file still to be created, always under ``root``.
    """
    root = os.path.realpath(root)
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)  # nothing there (yet): kept lexically, still under root
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidConfig(f"too many symlinks resolving {path!r}", field="path")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def read_in_root(root: str, path: str, limit: int = 1 << 20) -> bytes | None:
    """Read a small regular file inside ``root``; None if absent or not a regular file."""
    host = resolve_in_root(root, path)
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    finally:
        os.close(fd)


async def remove_trees(*paths: str) -> None:
    """``rmtree`` of each, on a worker thread: a big log's last unlink frees its page
    cache, 0.1-0.3 s per GiB here, which every other client waited out on the event loop.
    A cancellation waits for the removal to finish, then goes on."""

    def remove() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    done = asyncio.ensure_future(asyncio.to_thread(remove))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.wait([done])
        raise


def discard_tree(path: str, big: int) -> None:
    """``rmtree`` of a flat directory nothing refers to any more; on a thread when its files
    hold ``big`` bytes or more (a session's log), whose unlink frees that much page cache
    (0.1 s per GiB), so the caller's event loop does not wait for it."""
    try:
        with os.scandir(path) as entries:
            size = sum(e.stat(follow_symlinks=False).st_size for e in entries
                       if e.is_file(follow_symlinks=False))
    except OSError:
        size = 0
    if size < big:
        shutil.rmtree(path, ignore_errors=True)
        return
    import threading  # here: most trees are small

    threading.Thread(target=shutil.rmtree, args=(path, True), name="discard", daemon=True).start()
