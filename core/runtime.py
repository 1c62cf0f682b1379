"""OCI runtime driver: argv in, result out, no state checks (the state table decides).

Every invocation runs with ``--log <file> --log-format json`` so a failure says
what the runtime said: ``OCI runtime create failed: <last runtime message>``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence

import msgspec

from .errors import ContainerNotInRuntime, InternalError, RuntimeFailed, RuntimeNotFound
from .monitor import Completed, Monitor

log = logging.getLogger("varpod.runtime")

DEFAULT_RUNTIMES: dict[str, list[str]] = {
    "runc": ["/usr/bin/runc", "/usr/sbin/runc", "/usr/local/bin/runc", "/usr/local/sbin/runc"],
    "crun": ["/usr/bin/crun", "/usr/local/bin/crun"],
}

RUNTIME_STATUSES = ("created", "running", "paused", "stopped")


class RuntimeState(msgspec.Struct, frozen=True):
    status: str
    pid: int


class RuntimeFeatures(msgspec.Struct, frozen=True):
    checkpoint: bool = False
    checkpoint_error: str = ""
    json_errors: bool = True
    no_cgroups: bool = False


class RuntimeInfo(msgspec.Struct, frozen=True):
    name: str
    path: str
    version: str
    features: RuntimeFeatures


class OCIRuntime:
    """One runtime binary. Thin: knows runc's CLI, not container semantics."""

    def __init__(self, name: str, path: str, state_root: str, monitor: Monitor) -> None:
        self.name = name
        self.path = path
        self.state_root = state_root
        self._monitor = monitor
        self._info: RuntimeInfo | None = None

    def _argv(self, log_path: str | None, *args: str) -> list[str]:
        argv = [self.path, "--root", self.state_root]
        if log_path:
            argv += ["--log", log_path, "--log-format", "json"]
        argv += args
        return argv

    async def _call(
        self,
        verb: str,
        log_path: str | None,
        *args: str,
        stdio: Sequence[int] | None = None,
        extra_fds: Sequence[int] = (),
    ) -> Completed:
        if log_path and not os.path.isdir(os.path.dirname(log_path)):
            log_path = None  # no bundle (never launched): errors come back on stderr
        offset = _size(log_path)
        kwargs: dict = {"extra_fds": extra_fds}
        if stdio is not None:
            kwargs.update(stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
        done = await self._monitor.run(self._argv(log_path, verb, *args), **kwargs)
        if not done.ok:
            message = _last_error(log_path, offset) or done.stderr.decode(errors="replace").strip()
            message = message or f"exit status {done.exit.code}"
            cls = ContainerNotInRuntime if "does not exist" in message else RuntimeFailed
            raise cls(f"OCI runtime {verb} failed: {message}", runtime=self.name)
        return done

    # -- lifecycle ------------------------------------------------------------

    async def create(
        self,
        cid: str,
        bundle: str,
        *,
        pid_file: str,
        log_path: str,
        stdio: Sequence[int],
        console_socket: str | None = None,
        start: bool = False,
    ) -> None:
        """``runc create`` (or ``run --detach`` when ``start``: one spawn instead of two)."""
        verb = "run" if start else "create"
        args = ["--bundle", bundle, "--pid-file", pid_file]
        if start:
            args.append("--detach")
        if console_socket:
            args += ["--console-socket", console_socket]
        await self._call(verb, log_path, *args, cid, stdio=stdio)

    async def start(self, cid: str, log_path: str) -> None:
        await self._call("start", log_path, cid)

    async def state(self, cid: str, log_path: str | None = None) -> RuntimeState:
        done = await self._call("state", log_path, cid)
        try:
            raw = json.loads(done.stdout)
        except ValueError:
            raise InternalError(f"OCI runtime state printed no JSON: {done.stdout[:200]!r}") from None
        status = raw.get("status", "")
        if status not in RUNTIME_STATUSES:
            raise InternalError(
                f"OCI runtime {self.name} reported unknown status {status!r} for container {cid}"
            )
        return RuntimeState(status=status, pid=int(raw.get("pid") or 0))

    async def list(self) -> dict[str, RuntimeState]:
        """Every container in this runtime's state root: one call, for start-up."""
        done = await self._call("list", None, "--format", "json")
        try:
            entries = json.loads(done.stdout or b"null") or []
        except ValueError:
            raise InternalError(f"OCI runtime list printed no JSON: {done.stdout[:200]!r}") from None
        return {e["id"]: RuntimeState(status=str(e.get("status", "")), pid=int(e.get("pid") or 0))
                for e in entries if isinstance(e, dict) and "id" in e}

    async def kill(self, cid: str, signal: int, log_path: str, *, all: bool = False) -> None:
        args = ["--all"] if all else []
        await self._call("kill", log_path, *args, cid, str(signal))

    async def delete(self, cid: str, log_path: str | None, *, force: bool = False) -> None:
        """Delete; a container the runtime has already forgotten counts as deleted."""
        try:
            await self._call("delete", log_path, *(["--force"] if force else []), cid)
        except ContainerNotInRuntime:
            pass

    async def pause(self, cid: str, log_path: str) -> None:
        await self._call("pause", log_path, cid)

    async def resume(self, cid: str, log_path: str) -> None:
        await self._call("resume", log_path, cid)

    async def update(self, cid: str, resources_path: str, log_path: str) -> None:
        await self._call("update", log_path, "--resources", resources_path, cid)

    async def exec(
        self,
        cid: str,
        *,
        process_path: str,
        pid_file: str,
        log_path: str,
        stdio: Sequence[int],
        console_socket: str | None = None,
        extra_fds: Sequence[int] = (),
    ) -> None:
        """``runc exec --detach``: the process is re-parented to us, no runc stays behind."""
        args = ["--detach", "--process", process_path, "--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        if extra_fds:
            args.append(f"--preserve-fds={len(extra_fds)}")
        await self._call("exec", log_path, *args, cid, stdio=stdio, extra_fds=extra_fds)

    async def exec_output(self, cid: str, argv: Sequence[str]) -> Completed:
        """``runc exec`` of a short command with its output captured (``ps`` for top)."""
        return await self._call("exec", None, cid, *argv)

    # -- introspection ----------------------------------------------------------

    async def info(self) -> RuntimeInfo:
        if self._info is None:
            version = await self._monitor.run([self.path, "--version"])
            first = version.stdout.decode(errors="replace").splitlines()
            features = await self._probe_features()
            self._info = RuntimeInfo(
                name=self.name, path=self.path,
                version=first[0] if first else "unknown", features=features,
            )
        return self._info

    async def _probe_features(self) -> RuntimeFeatures:
        help_ = await self._monitor.run([self.path, "checkpoint", "--help"])
        checkpoint, why = False, "the runtime has no checkpoint command"
        if help_.ok:
            criu = _which("criu")
            if criu is None:
                why = "criu is not installed"
            else:
                check = await self._monitor.run([criu, "check"])
                checkpoint = check.ok
                lines = (check.stderr or check.stdout).decode(errors="replace").strip().splitlines()
                why = "" if check.ok else f"`criu check` failed: {lines[-1] if lines else 'no output'}"
        return RuntimeFeatures(checkpoint=checkpoint, checkpoint_error=why, json_errors=True,
                               no_cgroups=self.name == "crun")


class RuntimeRegistry:
    """Runtimes by name; for each, the first candidate path that is a regular file wins."""

    def __init__(
        self,
        candidates: Mapping[str, Sequence[str]],
        default: str,
        state_root: str,
        monitor: Monitor,
    ) -> None:
        self.default = default
        self._runtimes: dict[str, OCIRuntime] = {}
        self._missing: dict[str, list[str]] = {}
        for name, paths in candidates.items():
            found = next((p for p in paths if os.path.isfile(p) and os.access(p, os.X_OK)), None)
            if found is None:
                self._missing[name] = list(paths)
            else:
                # A state root per runtime: they must not see each other's containers.
                self._runtimes[name] = OCIRuntime(name, found, os.path.join(state_root, name), monitor)

    def get(self, name: str = "") -> OCIRuntime:
        name = name or self.default
        rt = self._runtimes.get(name)
        if rt is not None:
            return rt
        if name in self._missing:
            raise RuntimeNotFound(
                f"no executable found for OCI runtime {name!r} (tried {', '.join(self._missing[name])})",
                runtime=name,
            )
        raise RuntimeNotFound(f"unknown OCI runtime {name[:100]!r}", runtime=name[:100])

    def available(self) -> list[OCIRuntime]:
        return list(self._runtimes.values())

    def missing(self) -> dict[str, list[str]]:
        return dict(self._missing)


def _size(path: str | None) -> int:
    if not path:
        return 0
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _last_error(log_path: str | None, offset: int) -> str:
    """The last error-level message the runtime logged since ``offset``."""
    if not log_path:
        return ""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            tail = f.read(1 << 20)
    except OSError:
        return ""
    last = ""
    for line in tail.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal", "panic"):
            last = str(entry.get("msg", ""))
    return last


def _which(prog: str) -> str | None:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return shutil.which(prog, path=f"{path}:/usr/local/sbin:/usr/sbin:/sbin")
