"""The CLI's own log (``--log-level``), on stderr in logrus's shapes as podman writes it.

At ``debug`` (and ``trace``) it says which command ran against which socket, every
call made to the daemon with how long it took, and the exit status; ``info`` the
command and its status. ``warn`` (the default), ``error``, ``fatal`` and ``panic``
print nothing of the CLI's own: its errors are always the ``Error:`` lines. Imported
only when a level below ``warn`` is asked for.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
_RANK = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "warning": 3, "error": 4, "fatal": 5,
         "panic": 6}
_SHORT = {0: "TRAC", 1: "DEBU", 2: "INFO", 3: "WARN", 4: "ERRO", 5: "FATA", 6: "PANI"}
_NAME = {0: "trace", 1: "debug", 2: "info", 3: "warning", 4: "error", 5: "fatal", 6: "panic"}
_START = time.monotonic()


class Log:
    def __init__(self, level: str) -> None:
        self.rank = _RANK[level]
        self.tty = os.isatty(2)

    def enabled(self, level: str) -> bool:
        return _RANK[level] >= self.rank

    def emit(self, level: str, message: str) -> None:
        rank = _RANK[level]
        if rank < self.rank:
            return
        if self.tty:
            line = f"{_SHORT[rank]}[{int(time.monotonic() - _START):04d}] {message}"
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            quoted = message.replace("\\", "\\\\").replace('"', '\\"')
            line = f'time="{stamp}" level={_NAME[rank]} msg="{quoted}"'
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def traced(client_class: type, log: Log) -> type:
    """A Client class whose calls are logged at debug level with their duration."""

    def timed(name: str) -> Any:
        original = getattr(client_class, name)

        def wrapper(self: Any, method: str, *args: Any, **kw: Any) -> Any:
            started = time.monotonic()
            try:
                return original(self, method, *args, **kw)
            finally:
                log.emit("debug", f"call {method} ({name.strip('_')}) took "
                                  f"{(time.monotonic() - started) * 1e3:.1f}ms")

        return wrapper

    def concurrently(self: Any, calls: list, *args: Any, **kw: Any) -> Any:
        started = time.monotonic()
        try:
            return client_class.concurrently(self, calls, *args, **kw)
        finally:
            methods = sorted({m for m, _ in calls})
            log.emit("debug", f"{len(calls)} calls of {', '.join(methods) or 'nothing'} side by "
                              f"side took {(time.monotonic() - started) * 1e3:.1f}ms")

    names = {n: timed(n) for n in ("_call", "_stream", "_open_upgraded", "call")}
    return type("TracedClient", (client_class,), {**names, "concurrently": concurrently})
