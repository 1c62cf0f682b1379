"""Disk use of a container's files, counted as containers/storage counts a layer's size."""

from __future__ import annotations

import os
import stat


def disk_usage(path: str) -> int:
    """Bytes of every file under path that is not a directory, by its size, hard links once;
    symlinks are not followed and other filesystems mounted inside are not entered."""
    if not path:
        return 0
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            entries = os.scandir(d)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if st.st_dev == top.st_dev:
                        stack.append(entry.path)
                    continue
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total
