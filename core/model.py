"""Frozen container configuration and the mutable-by-replacement state record."""

from __future__ import annotations

import math
import os
import re
import secrets
import signal as _signal

import msgspec

from .errors import InvalidConfig, InvalidName
from .network.types import NetOptions
from .states import State
from .volumes.model import Mount

# podman's rule for names, plus a length cap: names end up in paths and logs.
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
NAME_MAX = 253
ID_RE = re.compile(r"[0-9a-f]{64}\Z")

RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


class RestartPolicy(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str = "no"
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """``no``, ``always``, ``unless-stopped`` or ``on-failure[:N]``."""
        name, _, count = text.partition(":")
        if name not in RESTART_POLICIES:
            raise InvalidConfig(f"unknown restart policy {text!r}", field="restart_policy")
        if count and name != "on-failure":
            raise InvalidConfig(
                f"restart policy {name} takes no retry count", field="restart_policy"
            )
        try:
            retries = int(count) if count else 0
        except ValueError:
            raise InvalidConfig(
                f"restart retry count {count!r} is not a number", field="restart_policy"
            ) from None
        if retries < 0:
            raise InvalidConfig("restart retry count must be >= 0", field="restart_policy")
        return cls(name=name, max_retries=retries)


# -- resource limits ----------------------------------------------------------------------

CPU_PERIOD_US = 100_000  # the CFS period --cpus is expressed in, as podman does
NANO = 10**9  # NanoCpus per CPU
MEMORY_MIN = 6 << 20  # podman's smallest memory limit: below it a container cannot even start
CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262_144  # the kernel's range for cpu.shares
CPUS_MIN = 0.01  # a quota of 1 ms per 100 ms period, the kernel's minimum
INT64_MAX = (1 << 63) - 1  # the runtime reads limits as int64


def online_cpus() -> int:
    """CPUs this process may run on (what podman's --cpus range is measured against)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


class Resources(msgspec.Struct, frozen=True, omit_defaults=True):
    """cgroup limits of a container; 0 means no limit (for cpu_shares: the kernel's default)."""

    memory: int = 0  # bytes
    nano_cpus: int = 0  # 10**9 per CPU; becomes a CFS quota per CPU_PERIOD_US
    pids_limit: int = 0
    cpu_shares: int = 0

    @property
    def cpu_quota(self) -> int:
        """Microseconds per CPU_PERIOD_US; 0 without a CPU limit."""
        return self.nano_cpus * CPU_PERIOD_US // NANO

    def updated(self, *, memory: int | None = None, cpus: float | None = None,
                pids_limit: int | None = None, cpu_shares: int | None = None) -> Resources:
        """These limits with each given one checked and replaced; None keeps the current one."""
        changes: dict[str, int] = {}
        if memory is not None:
            changes["memory"] = check_memory(memory)
        if cpus is not None:
            changes["nano_cpus"] = check_cpus(cpus)
        if pids_limit is not None:
            changes["pids_limit"] = check_pids_limit(pids_limit)
        if cpu_shares is not None:
            changes["cpu_shares"] = check_cpu_shares(cpu_shares)
        return msgspec.structs.replace(self, **changes) if changes else self


def check_memory(value: int) -> int:
    """Bytes; 0 lifts the limit."""
    if value < 0:
        raise InvalidConfig(f"memory limit {value} is negative", field="memory")
    if 0 < value < MEMORY_MIN:
        raise InvalidConfig(f"memory limit {value} is below the minimum of {MEMORY_MIN} bytes (6m)",
                            field="memory")
    if value > INT64_MAX:
        raise InvalidConfig(f"memory limit {value} is too large", field="memory")
    return value


def check_cpus(value: float) -> int:
    """A number of CPUs (0.01 up to the machine's) -> NanoCpus."""
    limit = online_cpus()
    if not math.isfinite(value) or not CPUS_MIN <= value <= limit:
        raise InvalidConfig(f"cpus {value} is out of range: from {CPUS_MIN} to {limit}.00, as "
                            f"there are only {limit} CPUs available", field="cpus")
    return round(value * NANO)


def check_pids_limit(value: int) -> int:
    """A process count; -1 and 0 both mean no limit, as in podman."""
    if not -1 <= value <= INT64_MAX:
        raise InvalidConfig(f"pids limit {value} is invalid: give a count, or -1 or 0 for no limit",
                            field="pids_limit")
    return max(value, 0)


def check_cpu_shares(value: int) -> int:
    """A relative weight; 0 means the kernel's default (1024)."""
    if value != 0 and not CPU_SHARES_MIN <= value <= CPU_SHARES_MAX:
        raise InvalidConfig(f"cpu shares {value} are out of range: from {CPU_SHARES_MIN} to "
                            f"{CPU_SHARES_MAX}, or 0 for the default", field="cpu_shares")
    return value


class ContainerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the user asked for; only ``resources`` changes after create (Engine.update)."""

    id: str
    name: str
    rootfs: str
    command: list[str]
    env: list[str] = []
    workdir: str = "/"
    user: str = "0:0"
    hostname: str = ""
    tty: bool = False
    stdin: bool = False
    runtime: str = ""
    restart: RestartPolicy = RestartPolicy()
    stop_signal: int = int(_signal.SIGTERM)
    stop_timeout: int = 10
    network: str = "private"
    read_only: bool = False
    labels: dict[str, str] = {}
    auto_remove: bool = False
    log_size_max: int = 0
    created_at: int = 0  # ns since the epoch
    resources: Resources = Resources()
    pod: str = ""  # the ID of the pod this container is a member (or the infra) of
    pod_infra: bool = False  # the pod's infra container, which holds its shared namespaces
    # From an image (core/images/part.py); empty for a --rootfs container.
    image: str = ""  # the image's ID
    image_name: str = ""  # the name it was created from, resolved (docker.io/library/alpine:latest)
    entrypoint: list[str] = []  # the leading part of `command` that is the entrypoint
    exposed_ports: list[str] = []  # the image's ExposedPorts ("80/tcp"), for networks
    volumes: list[str] = []  # the image's Volumes (paths), for filesystems
    # What the container may do on its host (core/hostconfig.py checks and applies these).
    cap_add: list[str] = []  # CAP_ names, or ALL
    cap_drop: list[str] = []
    privileged: bool = False
    no_new_privileges: bool = False
    ulimits: dict[str, list[int]] = {}  # RLIMIT_NAME -> [soft, hard]
    sysctls: dict[str, str] = {}
    devices: list[str] = []  # HOST:CONTAINER:PERMISSIONS
    shm_size: int = 64 << 20  # bytes; 0: no limit
    init: bool = False  # catatonit as PID 1
    log_driver: str = "k8s-file"  # or none
    annotations: dict[str, str] = {}
    userns: str = ""  # "": the host's; ns:PATH joins one
    net: NetOptions = NetOptions()  # networks, ports, addresses, DNS (core/network)
    mounts: list[Mount] = []  # binds, volumes and tmpfs, parents first (core/volumes)


class CreateOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller may set at create; everything else is derived."""

    rootfs: str = ""  # a directory; or empty, when a part (an image) provides the rootfs
    command: list[str] = []
    name: str | None = None  # None: generate one; "" is an invalid name
    env: list[str] = []
    # "" (workdir, user, stop_signal): not given; the image's, else "/", "0:0", SIGTERM.
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    tty: bool = False
    stdin: bool = False
    runtime: str = ""
    restart_policy: str = "no"
    stop_signal: str = ""
    stop_timeout: int = 10
    network: str = ""  # "": the daemon's default (bridge when ports are published)
    read_only: bool = False
    labels: dict[str, str] = {}
    auto_remove: bool = False
    log_size_max: int = -1
    # resource limits; None: not given, so none (Resources says what 0 and -1 mean)
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    cpu_shares: int | None = None
    pod: str = ""  # a pod's name or ID to join (core/pods)
    pod_infra: bool = False  # set by core/pods for the infra container only; not on the wire
    image: str = ""  # a name or ID of a local image to run (instead of rootfs)
    entrypoint: list[str] | None = None  # None: the image's; [] or [""]: none
    # host settings, as podman's run flags (core/hostconfig.py)
    cap_add: list[str] = []
    cap_drop: list[str] = []
    privileged: bool = False
    no_new_privileges: bool = False
    ulimits: list[str] = []  # NAME=SOFT[:HARD]
    sysctls: dict[str, str] = {}
    devices: list[str] = []  # HOST[:CONTAINER][:PERMISSIONS]
    shm_size: int | None = None  # bytes; None: 64 MiB, 0: no limit
    init: bool = False
    log_driver: str = "k8s-file"
    annotations: dict[str, str] = {}
    userns: str = ""
    # networking (core/network/part.py checks them): podman's -p/--publish, -P, --expose,
    # --ip, --mac-address, --dns, --dns-search, --dns-option, --add-host, --network-alias
    ports: list[str] = []
    publish_all: bool = False
    expose: list[str] = []
    ip: str = ""
    mac_address: str = ""
    dns: list[str] = []
    dns_search: list[str] = []
    dns_option: list[str] = []
    add_hosts: list[str] = []
    network_aliases: list[str] = []
    # filesystems (core/volumes/specs.py reads them): podman's -v, --mount, --tmpfs and
    # --image-volume (bind: the default, an anonymous volume; tmpfs; ignore)
    volumes: list[str] = []
    mounts: list[str] = []
    tmpfs: list[str] = []
    image_volume: str = ""


class ContainerState(msgspec.Struct, frozen=True, kw_only=True):
    """What is true now; replaced (never mutated) on every transition."""

    state: State = State.CONFIGURED
    pid: int = 0
    exit_code: int = 0
    exit_code_known: bool = True
    started_at: int = 0
    finished_at: int = 0
    stopped_by_user: bool = False
    restart_count: int = 0
    error: str = ""
    launched_at: int = 0  # when the runtime was asked to create the current process (ns)


class ContainerRecord(msgspec.Struct, frozen=True):
    config: ContainerConfig
    state: ContainerState

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    def with_state(self, **changes: object) -> ContainerRecord:
        return ContainerRecord(self.config, msgspec.structs.replace(self.state, **changes))


def new_id() -> str:
    return secrets.token_hex(32)


def check_name(name: str) -> str:
    if not name or len(name) > NAME_MAX or not NAME_RE.match(name):
        raise InvalidName(
            f"invalid container name {name[:80]!r}: names are 1-{NAME_MAX} characters "
            "of [a-zA-Z0-9_.-] and start with a letter or digit",
            name=name[:NAME_MAX],
        )
    return name


_ADJECTIVES = (
    "amber", "brave", "calm", "deft", "eager", "fair", "gentle", "hardy", "ideal", "jolly",
    "keen", "lucid", "merry", "nimble", "noble", "proud", "quiet", "rapid", "sharp", "steady",
    "swift", "tidy", "vivid", "warm", "witty", "zesty",
)
_NOUNS = (
    "albatross", "badger", "cormorant", "dolphin", "egret", "falcon", "gecko", "heron", "ibis",
    "jackal", "kestrel", "lemur", "marten", "newt", "osprey", "panda", "quail", "raven", "stoat",
    "tapir", "urchin", "vole", "walrus", "yak",
)


def random_name() -> str:
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"


def parse_signal(value: int | str) -> int:
    """A signal number from ``9``, ``KILL`` or ``SIGKILL``."""
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        number = int(value)
        if 0 < number < _signal.NSIG:
            return number
        raise InvalidConfig(f"signal {value} is out of range", field="signal")
    text = value.upper()
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(_signal.Signals[text])
    except KeyError:
        raise InvalidConfig(f"unknown signal {value!r}", field="signal") from None
