"""``varpod serve``: configuration, start-up, signals, and a clean shutdown.

SIGTERM/SIGINT stop accepting connections, finish in-flight replies, end
streams with a ShuttingDown error, and exit. Containers keep running; the
next daemon re-adopts them.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path

import msgspec

from ..core import memory
from ..core.containerfs.fs import ContainerFS
from ..core.engine import Engine, EngineConfig
from ..core.events import EventBus
from ..core.images.images import Images
from ..core.images.part import ImagePart
from ..core.monitor import Monitor, become_subreaper
from ..core.network.networks import NetworkConfig, Networks
from ..core.network.part import NetworkPart
from ..core.parts import Parts
from ..core.pods import Pods, PodStore
from ..core.runtime import DEFAULT_RUNTIMES, RuntimeRegistry
from ..core.store import Store
from ..core.volumes.part import VolumePart
from ..core.volumes.volumes import Volumes
from .interfaces import system as S
from .registry import Registry
from .server import Server, ServerConfig
from .service import Service
from .service_fs import FsService
from .service_images import ImageService
from .service_networks import NetworkService, network_settings
from .service_pods import PodService
from .service_volumes import VolumeService

log = logging.getLogger("varpod.daemon")


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_frame: int = 16 << 20
    max_connections: int = 1024
    events_queue: int = 4096  # events a slow Events reader may fall behind before it is cut off


class Logs(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    size_max: int = 0
    keep: int = 2


class Access(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    group: str = ""
    uids: list[int] = []
    gids: list[int] = []


class DaemonConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The TOML file given with ``--config``; flags override it."""

    root: str = "/var/lib/varpod"
    run_root: str = "/run/varpod"
    socket: str = ""  # default: <run_root>/varpod.sock
    default_runtime: str = "runc"
    log_level: str = "info"
    # Kernel process accounting (acct(2), host-wide) so that exit codes of containers
    # that end while the daemon is down are known; see core/acct.py and the README.
    exit_accounting: bool = False
    runtimes: dict[str, list[str]] = {}
    limits: Limits = Limits()
    logs: Logs = Logs()
    access: Access = Access()
    network: NetworkConfig = NetworkConfig()


def load_config(path: str | None) -> DaemonConfig:
    if not path:
        return DaemonConfig()
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"varpod serve: cannot read config {path}: {e.strerror}") from None
    try:
        return msgspec.toml.decode(data, type=DaemonConfig)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise SystemExit(f"varpod serve: invalid config {path}: {e}") from None


def _ensure_std_fds() -> None:
    # A closed fd 0-2 would be reused by a FIFO and leak into runtimes' stdio.
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)


def _write_pidfile(run_root: str) -> str:
    """<run root>/varpod.pid: how `make stop-daemon` finds this daemon (never by name)."""
    os.makedirs(run_root, mode=0o700, exist_ok=True)
    path = os.path.join(run_root, "varpod.pid")
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(path + ".tmp", path)
    return path


def _remove_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return  # another daemon's now
        os.unlink(path)
    except OSError:
        pass


def _lock_root(root: str) -> int:
    fd = os.open(os.path.join(root, "varpod.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"varpod serve: another daemon is using {root}") from None
    return fd


async def run_daemon(cfg: DaemonConfig, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    memory.tune_allocator()
    become_subreaper()
    os.makedirs(cfg.root, mode=0o700, exist_ok=True)
    os.chmod(cfg.root, 0o700)
    lock_fd = _lock_root(cfg.root)
    pidfile = _write_pidfile(cfg.run_root)
    socket_path = cfg.socket or os.path.join(cfg.run_root, "varpod.sock")
    monitor = Monitor()
    monitor.start_reaper()
    store = Store(os.path.join(cfg.root, "varpod.db"))
    images = Images(os.path.join(cfg.root, "images"), store.path)
    bus = EventBus(store)
    volumes = Volumes(cfg.root, store.path, bus.emit)
    candidates = {**DEFAULT_RUNTIMES, **cfg.runtimes}
    runtimes = RuntimeRegistry(candidates, cfg.default_runtime,
                               os.path.join(cfg.run_root, "runtime"), monitor)
    networks = Networks(cfg.network, root=cfg.root, run_root=cfg.run_root, monitor=monitor)
    pod_store = PodStore(store.path)
    pods = Pods(pod_store, bus, cfg.root)
    # Parts run in this order (release and discard in reverse): the image's rootfs first (the
    # network binds etc files according to it, volumes copy up from it); pods before the
    # network, which joins a member to its infra container's network once the pods part has
    # started it. Between the pods part's check that a pod is not being removed and the engine
    # persisting the member, no part may await: the network part's create never does.
    parts = Parts([ImagePart(images), VolumePart(volumes, store, monitor), pods.part,
                   NetworkPart(networks, store, owned_roots=(cfg.root, cfg.run_root))])
    engine = Engine(EngineConfig(root=cfg.root, run_root=cfg.run_root,
                                 default_runtime=cfg.default_runtime, runtimes=candidates,
                                 log_size_max=cfg.logs.size_max, log_keep=cfg.logs.keep,
                                 exit_accounting=cfg.exit_accounting),
                    store, runtimes, bus, monitor, parts=parts)
    pods.bind(engine)
    await engine.recover()
    await pods.recover()
    infos = [await rt.info() for rt in runtimes.available()]
    service = Service(engine, bus, events_queue=cfg.limits.events_queue, info={
        "default_runtime": runtimes.default,
        "runtimes": msgspec.convert(msgspec.to_builtins(infos), list[S.Runtime]),
        "missing_runtimes": runtimes.missing(),
        "root": cfg.root, "run_root": cfg.run_root, "store_path": store.path,
        "socket": socket_path, "loop": type(loop).__module__.split(".")[0],
    })
    service.network_settings = lambda rec: network_settings(networks, rec)
    service.pod_name = pods.name_of
    registry = Registry()
    service.register(registry)
    PodService(pods, engine, runtimes).register(registry)
    ImageService(images, engine, bus).register(registry)
    NetworkService(engine, networks, bus).register(registry)
    VolumeService(volumes, engine).register(registry)
    fs = ContainerFS(engine, images, volumes, bus)
    FsService(fs).register(registry)
    server = Server(registry, ServerConfig(
        socket=socket_path, max_frame=cfg.limits.max_frame,
        max_connections=cfg.limits.max_connections, socket_group=cfg.access.group,
        allowed_uids=cfg.access.uids, allowed_gids=cfg.access.gids,
        owns_socket_dir=os.path.realpath(os.path.dirname(socket_path)) == os.path.realpath(cfg.run_root)))
    service.server = server
    await server.start()
    if runtimes.default not in {r.name for r in runtimes.available()}:
        log.warning("default runtime %s not found; containers need --runtime", runtimes.default)
    log.info("varpod %d listening on %s (root %s, runtimes %s, native %s)", os.getpid(),
             socket_path, cfg.root, ", ".join(f"{i.name} {i.version}" for i in infos) or "none",
             service.info(None, None).info.native)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        log.info("shutting down: containers keep running")
    finally:
        await server.close()
        await engine.shutdown()
        fs.close()
        await images.close()
        volumes.close()
        networks.close()
        monitor.stop_reaper()
        pod_store.close()
        store.close()
        _remove_pidfile(pidfile)
        os.close(lock_fd)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


def serve(cfg: DaemonConfig) -> int:
    import anyio

    _ensure_std_fds()
    logging.basicConfig(
        stream=sys.stderr, level=getattr(logging, cfg.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if os.geteuid() != 0:
        log.error("varpod serve must run as root (it drives runc and mounts)")
        return 1
    anyio.run(run_daemon, cfg, backend="asyncio", backend_options={"use_uvloop": True})
    return 0
