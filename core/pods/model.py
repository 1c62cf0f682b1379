"""A pod's frozen configuration, its small mutable state, and its status derived from members.

The namespaces a pod shares and whether it has a cgroup of its own are separate
settings: sharing the cgroup *namespace* is never implied by members joining the
pod's *cgroup* (confusing the two made podman's members join the infra's cgroup
namespace, podman#6149).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..errors import InvalidPodConfig, Unsupported
from ..states import State

DEFAULT_CGROUP_PARENT = "/varpod"  # where containers go without a pod, too (core/spec.py)

# --share names, as podman spells them -> the OCI namespace type members join
OCI_TYPES = {"cgroup": "cgroup", "ipc": "ipc", "mnt": "mount", "net": "network", "pid": "pid",
             "user": "user", "uts": "uts"}
DEFAULT_SHARE = ("ipc", "net", "uts")  # podman's (and Kubernetes') default


class SharedNamespaces(msgspec.Struct, frozen=True, omit_defaults=True):
    """Which namespaces members join from the infra container; one flag per namespace."""

    pid: bool = False
    ipc: bool = False
    net: bool = False
    mnt: bool = False
    user: bool = False
    uts: bool = False
    cgroupns: bool = False  # the cgroup namespace; not the pod cgroup (PodConfig.pod_cgroup)

    def names(self) -> list[str]:
        """The shared ones by their --share names, in a fixed order."""
        return [name for name in sorted(OCI_TYPES) if self.shares(name)]

    def shares(self, name: str) -> bool:
        return bool(getattr(self, "cgroupns" if name == "cgroup" else name))

    def any(self) -> bool:
        return bool(self.names())

    @classmethod
    def parse(cls, items: Iterable[str] | None) -> SharedNamespaces:
        """``None``: podman's default (ipc, net, uts). Names: ``net``, ``+pid`` (added to the
        default), ``none`` (nothing); both ``cgroup`` and ``cgroupns`` name the namespace."""
        if items is None:
            return cls(**{n: True for n in DEFAULT_SHARE})
        wanted: set[str] = set()
        for item in items:
            for word in str(item).split(","):
                word = word.strip()
                if not word or word == "none":
                    continue
                if word.startswith("+"):
                    wanted.update(DEFAULT_SHARE)
                    word = word[1:]
                if word == "cgroupns":
                    word = "cgroup"
                if word not in OCI_TYPES:
                    raise InvalidPodConfig(f"unknown namespace {word[:40]!r} to share: choose from "
                                           "cgroup, ipc, net, pid, uts, or none", field="share")
                wanted.add(word)
        if "mnt" in wanted:
            raise InvalidPodConfig(
                "a pod cannot share the mount namespace: each member has its own root "
                "filesystem, and the runtime's pivot_root into it would move the infra "
                "container's root too (podman does not offer it either)", field="share")
        if "user" in wanted:
            raise Unsupported("sharing a user namespace needs containers with user namespaces, "
                              "which varpod does not create yet", feature="pod share user")
        return cls(**{("cgroupns" if n == "cgroup" else n): True for n in wanted})


class PodConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the user asked for at ``pod create``; never changes."""

    id: str
    name: str
    labels: dict[str, str] = {}
    hostname: str = ""  # of the shared UTS namespace; the pod's name when empty
    cgroup_parent: str = ""  # empty: DEFAULT_CGROUP_PARENT
    pod_cgroup: bool = True  # members' cgroups go under a cgroup of the pod's own
    shares: SharedNamespaces = SharedNamespaces()
    infra: bool = True  # an infra container holds the shared namespaces (only if any are)
    created_at: int = 0  # ns since the epoch
    # The pod's network, which its infra container owns: -p specs and network names.
    publish: list[str] = []
    networks: list[str] = []

    @property
    def has_infra(self) -> bool:
        return self.infra and self.shares.any()

    @property
    def uts_hostname(self) -> str:
        return self.hostname or self.name

    @property
    def parent(self) -> str:
        return self.cgroup_parent or DEFAULT_CGROUP_PARENT

    @property
    def cgroup_path(self) -> str:
        """The pod's own cgroup ("" without one): members' and the infra's cgroups go in it."""
        return f"{self.parent}/{self.id}" if self.pod_cgroup else ""

    def member_cgroup(self, cid: str) -> str:
        """``linux.cgroupsPath`` of a member (or the infra)."""
        return f"{self.cgroup_path or self.parent}/{cid}"


class PodState(msgspec.Struct, frozen=True, kw_only=True):
    # Set (and saved) before a removal touches anything: nothing may join or start
    # meanwhile, and a daemon that dies half-way finishes the removal when it starts again.
    removing: bool = False


class PodRecord(msgspec.Struct, frozen=True):
    config: PodConfig
    state: PodState

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name


# Pod statuses as podman shows them (`pod ps`, `pod inspect`).
CREATED, RUNNING, DEGRADED, STOPPED, EXITED, PAUSED, ERROR = (
    "Created", "Running", "Degraded", "Stopped", "Exited", "Paused", "Error")


def derive_pod_status(states: Iterable[State]) -> str:
    """The pod's status from its containers' states (the infra counts), as podman derives it."""
    running = paused = stopped = errored = total = 0
    for state in states:
        total += 1
        if state in (State.RUNNING, State.STOPPING):
            running += 1
        elif state is State.PAUSED:
            paused += 1
        elif state in (State.STOPPED, State.EXITED):
            stopped += 1
        elif state not in (State.CREATED, State.CONFIGURED):
            errored += 1  # unknown, removing
    if total == 0:
        return CREATED
    if 0 < running < total:
        return DEGRADED
    if running == total:
        return RUNNING
    if paused == total:
        return PAUSED
    if stopped == total:
        return EXITED
    if stopped:
        return STOPPED
    if errored:
        return ERROR
    return CREATED
