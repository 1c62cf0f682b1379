"""The daemon's heap: large blocks mapped on their own, and freed memory given back.

glibc raises its mmap threshold to the size of the largest block freed so far
(up to 32 MiB): after one 8 MiB request or a few 2 MiB buffers, blocks of that
size come from the heap, where what is freed in the middle stays resident. A
daemon that served 150 streams or one 8 MiB environment value then kept that
memory for good. Fixed thresholds keep large blocks in mappings of their own
(returned on free), and after sessions end or containers go ``trim_soon``
gives back the free pages in the middle of the heap (``malloc_trim``).
Without glibc (musl) these do nothing.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("varpod.memory")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 256 << 10  # blocks this large get a mapping of their own
TRIM_THRESHOLD = 1 << 20  # free memory at the heap's top beyond this goes back at once
TRIM_DELAY = 1.0  # seconds from a release to the trim: one trim per burst of them

_libc = None
_pending: asyncio.TimerHandle | None = None


def _glibc():
    global _libc
    if _libc is None:
        import ctypes  # the daemon only, once

        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.malloc_trim  # noqa: B018 (glibc's own: musl has no malloc_trim)
            libc.mallopt  # noqa: B018
        except (OSError, AttributeError):
            libc = False
        _libc = libc
    return _libc or None


def tune_allocator() -> bool:
    """Fix glibc's thresholds (at daemon start); False when this is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    if not ok:
        log.warning("mallopt refused the heap thresholds; freed memory may stay resident")
    return bool(ok)


def trim() -> bool:
    """Give free heap pages back to the kernel now; True when some were."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def trim_soon(delay: float = TRIM_DELAY) -> None:
    """Trim ``delay`` seconds from now (called as sessions end): releases that come in a
    burst share one trim, and a steady stream of them still gets one per ``delay``."""
    global _pending
    if _pending is None and _glibc() is not None:
        _pending = asyncio.get_running_loop().call_later(delay, _trim_now)


def _trim_now() -> None:
    global _pending
    _pending = None
    trim()
