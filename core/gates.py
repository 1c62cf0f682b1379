"""Gates: work that runs beside the runtime's create, which waits for it through a hook.

runc runs a container's OCI ``createRuntime`` hooks once its namespaces and mounts
exist, and only then writes its sysctls and starts its process. A gate is such a hook:
a shell's ``read`` of one line from a pipe the daemon holds both ends of, opened
through ``/proc/<daemon>/fd``. ``ok`` lets the create go on; anything else fails it,
and so does the daemon's death: its write end closes (the read sees end-of-file) or
its ``/proc`` entry is gone (the open fails), so a runtime left behind never waits on a
gate nobody will open. A part whose slow work the container needs only once it starts
(the CNI ADD into a namespace that exists already) runs that work beside the create
instead of before it, and the container still never runs without it.
"""

from __future__ import annotations

import os

# The hook's own limit: the gated work's steps have theirs (a CNI plugin's is 120 s).
HOOK_TIMEOUT = 600
# Runs in the runtime's namespaces, as root, with the container's state on stdin.
_SCRIPT = 'read -r word < "$1" && [ "$word" = ok ]'


class Gate:
    """A pipe and the OCI hook that waits on it."""

    def __init__(self) -> None:
        r, w = os.pipe()  # close-on-exec: no helper the daemon starts holds it open
        # File objects: a gate dropped without close() still gives its descriptors back.
        self._r = os.fdopen(r, "rb", buffering=0)
        self._w = os.fdopen(w, "wb", buffering=0)
        self._opened = False

    def hook(self) -> dict:
        path = f"/proc/{os.getpid()}/fd/{self._r.fileno()}"
        return {"path": "/bin/sh", "args": ["sh", "-c", _SCRIPT, "varpod-gate", path],
                "timeout": HOOK_TIMEOUT}

    def open(self, ok: bool) -> None:
        """Let the create go on (``ok``) or make it fail; only the first call counts. What
        is written waits in the pipe for the hook, however late the runtime gets to it."""
        if self._opened or self._w.closed:
            return
        self._opened = True
        self._w.write(b"ok\n" if ok else b"no\n")

    def close(self) -> None:
        """Once the runtime's create has returned (a hook that has not run never will)."""
        self._w.close()
        self._r.close()
