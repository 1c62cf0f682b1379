"""Exit codes the daemon could not collect itself, from kernel process accounting.

Only a process's parent can read its exit status, and after a daemon restart
the containers it left running are no longer its children (they went to the
nearest subreaper or init). Without a helper process per container, the one
record of their exit the kernel keeps is BSD process accounting (``acct(2)``):
when it is on, every exit in the pid namespace appends a 64-byte record with
the pid, the start time and the exit status, whether or not a daemon runs.

It is a global setting of the host's pid namespace (one accounting file at a
time), so it is opt-in (``exit_accounting = true``) and stays on across
daemon restarts on purpose: that is when it is needed. Without it, such exit
codes are reported as unknown, never invented.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct

from .monitor import ExitInfo

log = logging.getLogger("varpod.acct")

# struct acct_v3 (linux/acct.h): flag, version, tty, exitcode, uid, gid, pid, ppid,
# btime (s), etime, 8 x comp_t, comm[16].
RECORD = struct.Struct("<cBHIIIIIIf8H16s")
ACCT_VERSION = 3
ROTATE_AT = 64 << 20


def status_to_exit(status: int, when_ns: int) -> ExitInfo:
    """The kernel's exit status word, decoded as waitid would (128 + signal when killed)."""
    sig = status & 0x7F
    if sig:
        return ExitInfo(128 + sig, sig, when_ns)
    return ExitInfo((status >> 8) & 0xFF, 0, when_ns)


class ExitLedger:
    """The accounting files under ``directory`` and lookups in them, newest first."""

    def __init__(self, directory: str, enabled: bool) -> None:
        self.directory = directory
        self.enabled = enabled
        self.error = ""
        self._current = ""

    def _files(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        gens = sorted(int(n.split(".", 1)[1]) for n in names
                      if n.startswith("pacct.") and n.split(".", 1)[1].isdigit())
        return [os.path.join(self.directory, f"pacct.{g}") for g in gens]

    def start(self) -> None:
        """Switch the kernel to a fresh file; earlier ones stay readable until ``forget_old``."""
        if not self.enabled:
            return
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        files = self._files()
        gen = int(files[-1].rsplit(".", 1)[1]) + 1 if files else 1
        self._switch(os.path.join(self.directory, f"pacct.{gen}"))

    def _switch(self, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.close(fd)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.acct(path.encode()) != 0:
            err = ctypes.get_errno()
            self.enabled = False
            self.error = f"acct({path}): {os.strerror(err)}"
            log.warning("exit accounting unavailable: %s; exit codes of containers that end "
                        "while the daemon is down will be unknown", self.error)
            os.unlink(path)
            return
        self._current = path
        log.info("exit accounting to %s", path)

    def rotate_if_large(self) -> None:
        if self.enabled and self._current:
            try:
                big = os.path.getsize(self._current) > ROTATE_AT
            except OSError:
                big = True
            if big:
                self.start()
                self.forget_old(keep=1)

    def forget_old(self, keep: int = 0) -> None:
        """Delete files older than the current one (after recovery has read them)."""
        for path in self._files():
            if path != self._current:
                if keep:
                    keep -= 1
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def lookup(self, pid: int, not_before_ns: int) -> ExitInfo | None:
        """The last recorded exit of ``pid`` among processes started since ``not_before_ns``."""
        if pid <= 0 or not (self.enabled or self._files()):
            return None
        not_before = not_before_ns // 10**9 - 1  # btime has a one-second resolution
        for path in reversed(self._files()):
            found = _scan_back(path, pid, not_before)
            if found is not None:
                return found
        return None


def _scan_back(path: str, pid: int, not_before: int) -> ExitInfo | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        end = os.fstat(fd).st_size // RECORD.size * RECORD.size
        block = 4096 * RECORD.size
        while end > 0:
            start = max(0, end - block)
            data = os.pread(fd, end - start, start)
            for off in range(len(data) - RECORD.size, -1, -RECORD.size):
                (_, version, _, status, _, _, rpid, _, btime, etime, *_rest) = RECORD.unpack_from(data, off)
                if rpid == pid and (version & 0x7F) == ACCT_VERSION and btime >= not_before:
                    exited_ns = int((btime + etime / 100.0) * 1e9) if etime >= 0 else 0
                    return status_to_exit(status, exited_ns)
            end = start
    finally:
        os.close(fd)
    return None
