"""io.varpod.Pod: pods, their infra container, stats and top."""

from __future__ import annotations

import msgspec

from .container import ContainerStats, StatsReply, TopReply

__all__ = ["ContainerStats", "StatsReply", "TopReply"]  # declared in both IDLs, one Struct


class PodSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    labels: dict[str, str] | None = None
    hostname: str | None = None
    cgroup_parent: str | None = None
    pod_cgroup: bool | None = None
    share: list[str] | None = None
    infra: bool | None = None
    publish: list[str] | None = None
    networks: list[str] | None = None


class CreateParams(msgspec.Struct, forbid_unknown_fields=True):
    spec: PodSpec


class CreateReply(msgspec.Struct):
    id: str
    name: str


class NameParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class StopParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    timeout: int | None = None


class KillParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    signal: str | None = None


class RemoveParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    force: bool | None = None
    timeout: int | None = None


class IdReply(msgspec.Struct):
    id: str


class PodContainer(msgspec.Struct):
    Id: str
    Name: str
    State: str


class PodInfraConfig(msgspec.Struct):
    Networks: list[str]
    PortBindings: list[str]


class PodInspect(msgspec.Struct):
    Id: str
    Name: str
    Created: str
    State: str
    Hostname: str
    Labels: dict[str, str]
    CreateCgroup: bool
    CgroupParent: str
    CgroupPath: str
    CreateInfra: bool
    InfraContainerID: str
    SharedNamespaces: list[str]
    NumContainers: int
    Containers: list[PodContainer]
    InfraConfig: PodInfraConfig = msgspec.field(default_factory=lambda: PodInfraConfig([], []))


class InspectReply(msgspec.Struct):
    pod: PodInspect


class ListParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PodSummaryContainer(msgspec.Struct):
    Id: str
    Names: str
    Status: str


class PodSummary(msgspec.Struct):
    Id: str
    Name: str
    Status: str
    Created: str
    InfraId: str
    Cgroup: str
    Labels: dict[str, str]
    Networks: list[str]
    Containers: list[PodSummaryContainer]


class ListReply(msgspec.Struct):
    pods: list[PodSummary]


class StatsParams(msgspec.Struct, forbid_unknown_fields=True):
    names: list[str] | None = None
    stream: bool | None = None
    interval: float | None = None


class TopParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    descriptors: list[str] | None = None
