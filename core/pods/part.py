"""Pod membership as the engine sees it: a Part (core/parts.py).

create   a container naming a pod joins it (or is refused: unknown pod, a pod being
         removed, a namespace of its own that the pod shares)
prepare  before the runtime creates a member: the infra container runs (started
         first if need be), and the spec joins its namespaces by path and puts the
         member's cgroup under the pod's
check    the infra container stops, is killed or removed only with its whole pod
         while members still use its namespaces
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ..errors import InfraContainerInUse, InvalidConfig, NameInUse, PodNamespaceConflict, PodRemoving
from ..network.types import CONTAINER_PREFIX
from ..parts import Launch, Part
from ..states import LIVE_STATES, Action
from .model import OCI_TYPES, PodRecord

if TYPE_CHECKING:
    from ..model import ContainerConfig, ContainerRecord, CreateOptions
    from .manager import Pods

# What ends the infra's process: refused while members still use its namespaces.
_GUARDED = (Action.STOP, Action.KILL, Action.RESTART)


class PodPart(Part):
    name = "pods"

    def __init__(self, pods: Pods) -> None:
        self._pods = pods

    async def create(self, opts: CreateOptions, config: ContainerConfig) -> ContainerConfig:
        # Pods and containers share one namespace of names, as in podman.
        if self._pods.has_name(config.name):
            if opts.name is not None:
                raise NameInUse(f"the name {config.name!r} is already in use by a pod",
                                name=config.name)
            config = msgspec.structs.replace(config, name=self._pods.unused_name())  # generated
        if not opts.pod:
            if opts.pod_infra:
                raise InvalidConfig("an infra container needs its pod", field="pod")
            return config
        pod = self._pods.find(opts.pod)
        # No await from here until the engine persists the container: a removal of the
        # pod that starts meanwhile sees this member (the removing flag is set first).
        if pod.state.removing:
            raise PodRemoving(f"pod {pod.name} is being removed; no container can join it",
                              id=pod.id)
        if opts.pod_infra:
            return msgspec.structs.replace(config, pod=pod.id, pod_infra=True)
        _check_conflicts(pod, opts)
        changes: dict = {"pod": pod.id}
        if pod.config.has_infra and pod.config.shares.net:
            # The network part (after this one) joins it, with its /etc/hosts and resolv.conf.
            changes["network"] = CONTAINER_PREFIX + self._pods.infra_id(pod)
        if pod.config.shares.uts:
            changes["hostname"] = pod.config.uts_hostname  # for its /etc/hostname and $HOSTNAME
        return msgspec.structs.replace(config, **changes)

    async def prepare(self, rec: ContainerRecord, launch: Launch) -> None:
        if not rec.config.pod:
            return
        pod = self._pods.get(rec.config.pod)
        cgroup = pod.config.member_cgroup(rec.id)
        launch.edits.append(lambda spec: spec["linux"].__setitem__("cgroupsPath", cgroup))
        shares = pod.config.shares
        if rec.config.pod_infra:
            if shares.cgroupns:
                launch.edits.append(_new_namespace("cgroup"))  # the one members join
            return
        if pod.state.removing:
            raise PodRemoving(f"pod {pod.name} is being removed; its containers cannot start",
                              id=pod.id)
        if pod.config.has_infra:
            pid = await self._pods.ensure_infra_running(pod.id)
            for name in shares.names():
                launch.namespaces[OCI_TYPES[name]] = f"/proc/{pid}/ns/{name}"
        if not shares.cgroupns:
            # A cgroup namespace of its own: never the infra's (podman#6149), nor the host's.
            launch.edits.append(_new_namespace("cgroup"))
        if shares.uts:
            launch.edits.append(lambda spec: spec.pop("hostname", None))  # the infra's is set

    def check(self, rec: ContainerRecord, action: Action) -> None:
        if not rec.config.pod_infra or self._pods.whole_pod_busy(rec.config.pod):
            return
        pod = self._pods.get_or_none(rec.config.pod)
        if pod is None:
            return  # an orphan (its pod is gone): nothing depends on it
        if action is Action.REMOVE:
            raise InfraContainerInUse(f"container {rec.name} is the infra container of pod "
                                      f"{pod.name}; remove the pod instead", id=rec.id,
                                      state=rec.state.state.value)
        if action in _GUARDED:
            users = [m.name for m in self._pods.members(pod.id) if m.state.state in LIVE_STATES]
            if users:
                raise InfraContainerInUse(
                    f"container {rec.name} holds the namespaces of pod {pod.name}, which "
                    f"{', '.join(users[:5])}{' ...' if len(users) > 5 else ''} still use; "
                    f"stop the pod instead", id=rec.id, state=rec.state.state.value)


def _check_conflicts(pod: PodRecord, opts: CreateOptions) -> None:
    shares = pod.config.shares
    if shares.net:
        asked = [flag for flag, given in (
            ("--network", opts.network), ("-p", opts.ports), ("-P", opts.publish_all),
            ("--expose", opts.expose), ("--ip", opts.ip), ("--mac-address", opts.mac_address),
            ("--network-alias", opts.network_aliases), ("--dns", opts.dns),
            ("--dns-search", opts.dns_search), ("--dns-option", opts.dns_option),
            ("--add-host", opts.add_hosts)) if given]
        if asked:
            raise PodNamespaceConflict(
                f"pod {pod.name} shares its network namespace; a member cannot set "
                f"{', '.join(asked)} of its own: give the pod its network and ports at pod create",
                namespace="net")
    if shares.uts and opts.hostname:
        raise PodNamespaceConflict(
            f"pod {pod.name} shares its UTS namespace (hostname {pod.config.uts_hostname!r}); "
            "a member cannot set a hostname of its own", namespace="uts")


def _new_namespace(kind: str):
    def edit(spec: dict) -> None:
        namespaces = spec["linux"]["namespaces"]
        if not any(ns["type"] == kind for ns in namespaces):
            namespaces.append({"type": kind})

    return edit
