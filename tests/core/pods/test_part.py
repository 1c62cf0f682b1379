"""core/pods/part.py: what a member's OCI spec gets from its pod, and the infra's guard."""

from __future__ import annotations

import pytest

from varpod.core.errors import InfraContainerInUse, NameInUse, PodNamespaceConflict, PodRemoving
from varpod.core.model import ContainerConfig, ContainerRecord, ContainerState, CreateOptions
from varpod.core.parts import Launch
from varpod.core.pods import PodConfig, PodRecord, PodState, SharedNamespaces
from varpod.core.pods.part import PodPart
from varpod.core.spec import oci_config
from varpod.core.states import Action, State

pytestmark = pytest.mark.anyio
POD = "p" * 64


class FakePods:
    def __init__(self, pod: PodRecord, members=()):
        self.pod = pod
        self.started = 0
        self.busy = False
        self._members = list(members)

    def find(self, ref):
        return self.pod

    def get(self, pid):
        return self.pod

    def get_or_none(self, pid):
        return self.pod

    def has_name(self, name):
        return name == self.pod.name

    def unused_name(self):
        return "fresh_name"

    def whole_pod_busy(self, pid):
        return self.busy

    def members(self, pid):
        return self._members

    async def ensure_infra_running(self, pid):
        self.started += 1
        return 4242

    def infra_id(self, pod):
        return "i" * 64


def pod(**kw) -> PodRecord:
    removing = kw.pop("removing", False)
    return PodRecord(PodConfig(id=POD, name="web", **kw), PodState(removing=removing))


def record(config: ContainerConfig, state: State = State.CONFIGURED) -> ContainerRecord:
    return ContainerRecord(config, ContainerState(state=state))


def config(**kw) -> ContainerConfig:
    return ContainerConfig(**{"id": "c" * 64, "name": "m", "rootfs": "/", "command": ["x"], **kw})


async def spec_of(part: PodPart, rec: ContainerRecord) -> dict:
    launch = Launch("/bundle")
    await part.prepare(rec, launch)
    return launch.apply(oci_config(rec.config, "/bundle"))


async def test_a_member_joins_the_shared_namespaces_and_gets_its_own_cgroup_namespace():
    pods = FakePods(pod(shares=SharedNamespaces(net=True, uts=True, pid=True), hostname="h"))
    part = PodPart(pods)
    cfg = await part.create(CreateOptions(pod="web"), config())
    assert cfg.pod == POD and cfg.hostname == "h" and not cfg.pod_infra
    assert cfg.network == "container:" + "i" * 64  # the network part joins the infra's
    spec = await spec_of(part, record(cfg))
    byname = {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}
    assert byname == {"network": "/proc/4242/ns/net", "uts": "/proc/4242/ns/uts",
                      "pid": "/proc/4242/ns/pid", "ipc": None, "mount": None, "cgroup": None}
    assert spec["linux"]["cgroupsPath"] == f"/varpod/{POD}/{'c' * 64}"
    assert "hostname" not in spec  # the infra set the shared one
    assert pods.started == 1


async def test_a_shared_cgroup_namespace_is_joined_from_the_infra_which_makes_it():
    pods = FakePods(pod(shares=SharedNamespaces(cgroupns=True)))
    part = PodPart(pods)
    spec = await spec_of(part, record(await part.create(CreateOptions(pod="web"), config())))
    assert {"type": "cgroup", "path": "/proc/4242/ns/cgroup"} in spec["linux"]["namespaces"]
    infra = await part.create(CreateOptions(pod="web", pod_infra=True), config(id="i" * 64))
    spec = await spec_of(part, record(infra))
    assert {"type": "cgroup"} in spec["linux"]["namespaces"]
    assert spec["linux"]["cgroupsPath"] == f"/varpod/{POD}/{'i' * 64}"


async def test_nothing_shared_means_no_infra_but_the_pod_cgroup():
    pods = FakePods(pod(pod_cgroup=True))
    part = PodPart(pods)
    spec = await spec_of(part, record(await part.create(CreateOptions(pod="web"), config())))
    assert not any(ns.get("path") for ns in spec["linux"]["namespaces"])
    assert spec["linux"]["cgroupsPath"] == f"/varpod/{POD}/{'c' * 64}" and pods.started == 0


async def test_refusals_at_create_and_start():
    part = PodPart(FakePods(pod(shares=SharedNamespaces(net=True, uts=True))))
    with pytest.raises(PodNamespaceConflict):
        await part.create(CreateOptions(pod="web", network="host"), config())
    with pytest.raises(PodNamespaceConflict):
        await part.create(CreateOptions(pod="web", hostname="mine"), config())
    with pytest.raises(NameInUse):
        await part.create(CreateOptions(name="web"), config(name="web"))  # the pod's name
    # A generated name that happens to be a pod's is generated again, not refused.
    assert (await part.create(CreateOptions(), config(name="web"))).name == "fresh_name"
    leaving = PodPart(FakePods(pod(shares=SharedNamespaces(net=True), removing=True)))
    with pytest.raises(PodRemoving):
        await leaving.create(CreateOptions(pod="web"), config())
    with pytest.raises(PodRemoving):
        await leaving.prepare(record(config(pod=POD)), Launch("/bundle"))


def test_the_infra_is_guarded_while_members_use_it():
    infra = record(config(pod=POD, pod_infra=True, id="i" * 64), State.RUNNING)
    running = record(config(pod=POD), State.RUNNING)
    pods = FakePods(pod(shares=SharedNamespaces(net=True)), [running])
    part = PodPart(pods)
    for action in (Action.STOP, Action.KILL, Action.RESTART, Action.REMOVE):
        with pytest.raises(InfraContainerInUse):
            part.check(infra, action)
    part.check(running, Action.STOP)  # members are not guarded
    pods.busy = True  # the whole pod stops together
    part.check(infra, Action.STOP)
    pods.busy, pods._members = False, [record(config(pod=POD), State.EXITED)]
    part.check(infra, Action.STOP)
    with pytest.raises(InfraContainerInUse):
        part.check(infra, Action.REMOVE)  # only with its pod
