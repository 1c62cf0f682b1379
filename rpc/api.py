"""Every call the clients offer, written once.

``Client`` and ``AsyncClient`` supply ``_call`` and ``_stream``: the sync one
returns results and iterators, the async one coroutines and async iterators,
so ``client.stop("web")`` and ``await aclient.stop("web")`` share this code.
Results are typed Structs from ``rpc.interfaces`` (dicts for ``raw=True``).
"""

from __future__ import annotations

import os

from .api_fs import FsAPI
from .api_images import ImageAPI
from .api_networks import NetworkAPI
from .api_pods import PodAPI
from .api_volumes import VolumeAPI

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

SYSTEM = "io.varpod.System."
CONTAINER = "io.varpod.Container."


def _opts(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _limits(memory: int | str | None, cpus: float | None, pids_limit: int | None,
            cpu_shares: int | None) -> dict[str, Any]:
    """The resource parameters that are given; a memory size text becomes bytes here."""
    if isinstance(memory, str):
        from ..core.units import parse_size

        memory = parse_size(memory)
    return _opts(memory=memory, cpus=cpus, pids_limit=pids_limit, cpu_shares=cpu_shares)


class API(ImageAPI, NetworkAPI, PodAPI, VolumeAPI, FsAPI):
    def _call(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def _records(self, method: str, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _upgrade(self, method: str, params: dict[str, Any], resize: tuple[str, str, str],
                 fds: tuple[int, ...] = ()) -> Any:
        raise NotImplementedError

    # -- system ---------------------------------------------------------------------

    def ping(self, text: str | None = None) -> Any:
        return self._call(SYSTEM + "Ping", _opts(ping=text), "system.PingReply", "pong")

    def info(self) -> Any:
        return self._call(SYSTEM + "Info", {}, "system.InfoReply", "info")

    def events(self, *, since_seq: int | None = None, since: int | None = None,
               until: int | None = None, stream: bool = True,
               filters: dict[str, str] | None = None) -> Any:
        """Events (history after ``since_seq``/``since``, then live when ``stream``)."""
        params = _opts(since_seq=since_seq, since=since, until=until, stream=stream,
                       filters=filters)
        return self._stream(SYSTEM + "Events", params, "system.EventsReply", "event")

    def interface_description(self, interface: str) -> Any:
        return self._call("org.varlink.service.GetInterfaceDescription", {"interface": interface},
                          "service.GetInterfaceDescriptionReply", "description")

    # -- containers -----------------------------------------------------------------------

    def create(self, rootfs: str | None = None, command: list[str] | None = None, *,
               image: str | None = None, entrypoint: list[str] | None = None, name: str | None = None,
               env: list[str] | None = None, workdir: str | None = None,
               user: str | None = None, hostname: str | None = None, tty: bool | None = None,
               stdin: bool | None = None, runtime: str | None = None,
               restart_policy: str | None = None, stop_signal: str | None = None,
               stop_timeout: int | None = None, network: str | None = None,
               read_only: bool | None = None, labels: dict[str, str] | None = None,
               auto_remove: bool | None = None, log_size_max: int | None = None,
               memory: int | str | None = None, cpus: float | None = None,
               pids_limit: int | None = None, cpu_shares: int | None = None,
               pod: str | None = None, ports: list[str] | None = None,
               publish_all: bool | None = None, expose: list[str] | None = None,
               ip: str | None = None, mac_address: str | None = None, dns: list[str] | None = None,
               dns_search: list[str] | None = None, dns_option: list[str] | None = None,
               add_hosts: list[str] | None = None, network_aliases: list[str] | None = None,
               volumes: list[str] | None = None, mounts: list[str] | None = None,
               tmpfs: list[str] | None = None, image_volume: str | None = None,
               **host: Any) -> Any:
        """Create a container from a root filesystem directory or a local ``image`` (whose
        Entrypoint, Cmd, Env, WorkingDir, User, StopSignal and Labels apply unless given
        here); returns ``CreateReply(id, name)``.

        ``rootfs`` is a directory; a relative one is taken from this process's working
        directory. ``memory`` is bytes or a size like ``"64m"``; ``cpus`` a float (``0.5``);
        ``pod`` a pod's name or ID to join. ``network``: ``private`` (default), ``none``,
        ``host``, ``container:CTR``, ``bridge`` or network names (comma-separated); ``ports``
        as podman's -p (``"8080:80/tcp"``), which without ``network`` means the default bridge
        network. ``host`` takes the CreateSpec's host settings as keywords: ``cap_add``,
        ``cap_drop``, ``privileged``, ``no_new_privileges``, ``ulimits``, ``sysctls``,
        ``devices``, ``shm_size``, ``init``, ``log_driver``, ``annotations``, ``userns`` (see
        the IDL). ``volumes`` (podman's -v), ``mounts`` (--mount) and ``tmpfs`` (--tmpfs) take
        podman's specs; a relative host path in them is this process's, as ``rootfs`` is.
        """
        # A relative path is this client's, not the daemon's (whose working directory differs).
        rootfs = os.path.abspath(rootfs) if rootfs else rootfs
        if volumes or mounts:
            from ..core.volumes.hostpaths import absolute_mount, absolute_volume

            volumes = [absolute_volume(v) for v in volumes] if volumes else volumes
            mounts = [absolute_mount(m) for m in mounts] if mounts else mounts
        spec = _opts(rootfs=rootfs, command=None if command is None else list(command), image=image,
                     entrypoint=None if entrypoint is None else list(entrypoint), name=name, env=env,
                     workdir=workdir,
                     user=user, hostname=hostname, tty=tty, stdin=stdin, runtime=runtime,
                     restart_policy=restart_policy, stop_signal=stop_signal,
                     stop_timeout=stop_timeout, network=network, read_only=read_only,
                     labels=labels, auto_remove=auto_remove, log_size_max=log_size_max,
                     pod=pod, **_limits(memory, cpus, pids_limit, cpu_shares),
                     ports=ports, publish_all=publish_all, expose=expose, ip=ip,
                     mac_address=mac_address, dns=dns, dns_search=dns_search,
                     dns_option=dns_option, add_hosts=add_hosts, network_aliases=network_aliases,
                     volumes=volumes, mounts=mounts, tmpfs=tmpfs, image_volume=image_volume,
                     **_opts(**host))
        return self._call(CONTAINER + "Create", {"spec": spec}, "container.CreateReply")

    def init(self, name: str) -> Any:
        return self._call(CONTAINER + "Init", {"name": name}, "container.StateReply")

    def start(self, name: str) -> Any:
        return self._call(CONTAINER + "Start", {"name": name}, "container.StateReply")

    def stop(self, name: str, timeout: int | None = None) -> Any:
        return self._call(CONTAINER + "Stop", _opts(name=name, timeout=timeout),
                          "container.StateReply")

    def kill(self, name: str, signal: str | int | None = None) -> Any:
        sig = None if signal is None else str(signal)
        return self._call(CONTAINER + "Kill", _opts(name=name, signal=sig), "container.StateReply")

    def pause(self, name: str) -> Any:
        return self._call(CONTAINER + "Pause", {"name": name}, "container.StateReply")

    def unpause(self, name: str) -> Any:
        return self._call(CONTAINER + "Unpause", {"name": name}, "container.StateReply")

    def restart(self, name: str, timeout: int | None = None) -> Any:
        return self._call(CONTAINER + "Restart", _opts(name=name, timeout=timeout),
                          "container.StateReply")

    def update(self, name: str, *, memory: int | str | None = None, cpus: float | None = None,
               pids_limit: int | None = None, cpu_shares: int | None = None) -> Any:
        """New resource limits (those not given stay); a live container's cgroup changes now."""
        return self._call(CONTAINER + "Update",
                          {"name": name, **_limits(memory, cpus, pids_limit, cpu_shares)},
                          "container.StateReply")

    def wait(self, name: str, conditions: list[str] | None = None) -> Any:
        """Block until stopped/exited (or ``conditions``); returns ``WaitReply``."""
        return self._call(CONTAINER + "Wait", _opts(name=name, conditions=conditions),
                          "container.WaitReply")

    def wait_stream(self, name: str, conditions: list[str] | None = None) -> Any:
        """Wait as a stream of its own: a first reply once the wait is registered (empty
        ``state``), then the one ``wait()`` returns. Register, then start: no exit is missed,
        and the exit code arrives even if the container is removed (``--rm``) meanwhile."""
        return self._stream(CONTAINER + "Wait", _opts(name=name, conditions=conditions),
                            "container.WaitReply")

    def remove(self, name: str, *, force: bool = False, timeout: int | None = None,
               volumes: bool = False) -> Any:
        """``volumes``: its anonymous volumes go too (podman's rm -v)."""
        return self._call(CONTAINER + "Remove", _opts(name=name, force=force or None,
                                                       timeout=timeout, volumes=volumes or None),
                          "container.RemoveReply", "id")

    def inspect(self, name: str) -> Any:
        return self._call(CONTAINER + "Inspect", {"name": name}, "container.InspectReply",
                          "container")

    def list(self, all: bool = False) -> Any:
        return self._call(CONTAINER + "List", _opts(all=all or None), "container.ListReply",
                          "containers")

    def logs(self, name: str, *, follow: bool = False, tail: int | None = None,
             since: int | None = None, until: int | None = None, stdout: bool = True,
             stderr: bool = True, timestamps: bool = False) -> Any:
        """Log records (``.stream``, ``.time`` ns, ``.payload``) on a connection of their own.

        Consecutive records of one stream come merged, stamped with the first one's
        time; ``timestamps=True`` keeps each pipe read's own record and time.
        """
        params = _opts(name=name, follow=follow or None, tail=tail, since=since, until=until,
                       stdout=None if stdout else False, stderr=None if stderr else False,
                       timestamps=timestamps or None)
        return self._records(CONTAINER + "Logs", params)

    def attach(self, name: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
               detach_keys: str | None = None, logs: bool = False, stream: bool = True,
               start: bool = False, size: tuple[int, int] | None = None) -> Any:
        """An attach session (``start=True``: start the container attached, losing nothing).

        Returns a stream object: iterate it for ``(stream, bytes)``, ``send()`` input,
        ``close_stdin()``, ``resize()``; ``end`` says how it ended (``exit_code``).
        """
        rows, cols = size or (None, None)
        params = _opts(name=name, stdin=stdin or None, stdout=None if stdout else False,
                       stderr=None if stderr else False, detach_keys=detach_keys,
                       logs=logs or None, stream=None if stream else False, start=start or None,
                       height=rows, width=cols)
        return self._upgrade(CONTAINER + "Attach", params, ("Resize", "name", name))

    def resize(self, name: str, height: int, width: int) -> Any:
        return self._call(CONTAINER + "Resize", {"name": name, "height": height, "width": width},
                          "container.Empty")

    def exec_create(self, name: str, command: list[str], *, env: list[str] | None = None,
                    workdir: str | None = None, user: str | None = None, tty: bool = False,
                    stdin: bool = False, privileged: bool = False, cap_add: list[str] | None = None,
                    detach_keys: str | None = None, preserve_fds: int = 0) -> Any:
        """A new exec session in a running container; returns its ID."""
        spec = _opts(command=list(command), env=env, workdir=workdir, user=user, tty=tty or None,
                     stdin=stdin or None, privileged=privileged or None, cap_add=cap_add,
                     detach_keys=detach_keys, preserve_fds=preserve_fds or None)
        return self._call(CONTAINER + "ExecCreate", {"name": name, "spec": spec},
                          "container.IdReply", "id")

    def exec_start(self, exec_id: str, *, attach: bool = False,
                   size: tuple[int, int] | None = None, fds: tuple[int, ...] = ()) -> Any:
        """Start an exec session: detached (returns at once) or attached (a stream object)."""
        rows, cols = size or (None, None)
        params = _opts(id=exec_id, attach=attach or None, height=rows, width=cols)
        if not attach:
            return self._call(CONTAINER + "ExecStart", params, "container.AttachReply")
        return self._upgrade(CONTAINER + "ExecStart", params, ("ExecResize", "id", exec_id),
                             tuple(fds))

    def exec_resize(self, exec_id: str, height: int, width: int) -> Any:
        return self._call(CONTAINER + "ExecResize", {"id": exec_id, "height": height,
                                                     "width": width}, "container.Empty")

    def exec_inspect(self, exec_id: str) -> Any:
        return self._call(CONTAINER + "ExecInspect", {"id": exec_id}, "container.ExecInspectReply",
                          "exec")

    def exec_stop(self, exec_id: str, timeout: int | None = None) -> Any:
        return self._call(CONTAINER + "ExecStop", _opts(id=exec_id, timeout=timeout),
                          "container.ExecInspectReply", "exec")

    def exec_remove(self, exec_id: str, force: bool = False) -> Any:
        return self._call(CONTAINER + "ExecRemove", _opts(id=exec_id, force=force or None),
                          "container.IdReply", "id")

    def exec_list(self, name: str) -> Any:
        return self._call(CONTAINER + "ExecList", {"name": name}, "container.ExecListReply",
                          "sessions")

    def checkpoint(self, name: str, *, keep: bool = False, leave_running: bool = False,
                   tcp_established: bool = False) -> Any:
        """CRIU checkpoint (``Unsupported`` with the probe's reason where CRIU does not work)."""
        return self._call(CONTAINER + "Checkpoint",
                          _opts(name=name, keep=keep or None, leave_running=leave_running or None,
                                tcp_established=tcp_established or None), "container.IdReply", "id")

    def restore(self, name: str, *, keep: bool = False, tcp_established: bool = False) -> Any:
        return self._call(CONTAINER + "Restore",
                          _opts(name=name, keep=keep or None, tcp_established=tcp_established or None),
                          "container.IdReply", "id")

    def disk_usage(self, name: str) -> Any:
        """Bytes of the container's files: ``rw`` (writable) and ``rootfs`` (read-only below)."""
        return self._call(CONTAINER + "DiskUsage", {"name": name}, "container.DiskUsageReply")

    def sync(self, name: str) -> Any:
        return self._call(CONTAINER + "Sync", {"name": name}, "container.StateReply")


_RESULT_TYPES: dict[str, type] = {}


def result_type(name: str) -> type:
    """``"container.InspectReply"`` -> the Struct (imports msgspec: typed clients only)."""
    found = _RESULT_TYPES.get(name)
    if found is None:
        module, _, cls = name.partition(".")
        from importlib import import_module

        found = _RESULT_TYPES[name] = getattr(import_module(f"varpod.rpc.interfaces.{module}"), cls)
    return found


def pick(value: Any, field: str | None) -> Any:
    if field is None or value is None:
        return value
    return value[field] if isinstance(value, dict) else getattr(value, field)
