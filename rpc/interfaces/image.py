"""io.varpod.Image: pull, load, save, import, list, inspect, tag, remove."""

from __future__ import annotations

import msgspec


class Nothing(msgspec.Struct):
    """An empty object: the values of podman's port and volume sets."""


class Progress(msgspec.Struct):
    kind: str
    id: str
    state: str
    current: int
    total: int
    text: str


class PullParams(msgspec.Struct, forbid_unknown_fields=True):
    reference: str
    platform: str | None = None
    tls_verify: bool | None = None
    credentials: str | None = None
    auths: dict[str, str] | None = None


class PullReply(msgspec.Struct):
    progress: Progress | None = None
    id: str = ""
    names: list[str] = []


class LoginParams(msgspec.Struct, forbid_unknown_fields=True):
    registry: str
    username: str
    password: str
    tls_verify: bool | None = None


class Empty(msgspec.Struct):
    pass


class LoadParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class LoadedImage(msgspec.Struct):
    id: str
    names: list[str]


class LoadReply(msgspec.Struct):
    progress: Progress | None = None
    images: list[LoadedImage] = []


class SaveParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    format: str | None = None


class SaveReply(msgspec.Struct):
    id: str = ""


class ImportParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    changes: list[str] | None = None
    message: str | None = None


class ImportReply(msgspec.Struct):
    progress: Progress | None = None
    id: str = ""
    names: list[str] = []


class ListParams(msgspec.Struct, forbid_unknown_fields=True):
    all: bool | None = None


class ImageSummary(msgspec.Struct):
    Id: str
    ParentId: str
    RepoTags: list[str]
    RepoDigests: list[str]
    Created: int
    CreatedAt: str
    Size: int
    SharedSize: int
    VirtualSize: int
    Labels: dict[str, str]
    Containers: int
    Names: list[str]
    Digest: str
    Dangling: bool


class ListReply(msgspec.Struct):
    images: list[ImageSummary]


class NameParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class ImageRunConfig(msgspec.Struct):
    User: str
    ExposedPorts: dict[str, Nothing]
    Env: list[str]
    Entrypoint: list[str]
    Cmd: list[str]
    Volumes: dict[str, Nothing]
    WorkingDir: str
    Labels: dict[str, str]
    StopSignal: str


class GraphDriver(msgspec.Struct):
    Name: str
    Data: dict[str, str]


class ImageRootFS(msgspec.Struct):
    Type: str
    Layers: list[str]


class ImageHistory(msgspec.Struct):
    created: str
    created_by: str
    comment: str
    empty_layer: bool


class ImageInspect(msgspec.Struct):
    Id: str
    Digest: str
    RepoTags: list[str]
    RepoDigests: list[str]
    Parent: str
    Comment: str
    Created: str
    Config: ImageRunConfig
    Version: str
    Author: str
    Architecture: str
    Os: str
    Variant: str
    Size: int
    VirtualSize: int
    GraphDriver: GraphDriver
    RootFS: ImageRootFS
    Labels: dict[str, str]
    Annotations: dict[str, str]
    ManifestType: str
    User: str
    History: list[ImageHistory]
    NamesHistory: list[str]


class InspectReply(msgspec.Struct):
    image: ImageInspect


class ExistsReply(msgspec.Struct):
    exists: bool


class TagParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    new_name: str


class TagReply(msgspec.Struct):
    id: str
    name: str


class UntagParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    names: list[str] | None = None


class UntagReply(msgspec.Struct):
    id: str
    removed: list[str]


class RemoveParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    force: bool | None = None


class RemovalStep(msgspec.Struct):
    action: str
    value: str


class RemoveReply(msgspec.Struct):
    steps: list[RemovalStep]
    containers: list[str]


class PruneParams(msgspec.Struct, forbid_unknown_fields=True):
    all: bool | None = None


class PruneReply(msgspec.Struct):
    removed: list[str]
