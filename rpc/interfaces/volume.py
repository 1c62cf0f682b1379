"""io.varpod.Volume: named and anonymous volumes on the local driver."""

from __future__ import annotations

import msgspec


class VolumeInfo(msgspec.Struct):
    """Shaped like podman 4's ``volume inspect``."""

    Name: str
    Driver: str
    Mountpoint: str
    CreatedAt: str
    Labels: dict[str, str]
    Scope: str
    Options: dict[str, str]
    MountCount: int
    NeedsCopyUp: bool
    NeedsChown: bool
    Anonymous: bool
    Containers: list[str]


class CreateParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str | None = None
    driver: str | None = None
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    ignore: bool | None = None


class VolumeReply(msgspec.Struct):
    volume: VolumeInfo


class NameParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class ListParams(msgspec.Struct, forbid_unknown_fields=True):
    filters: dict[str, list[str]] | None = None


class ListReply(msgspec.Struct):
    volumes: list[VolumeInfo]


class ExistsReply(msgspec.Struct):
    exists: bool


class RemoveParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    force: bool | None = None
    timeout: int | None = None


class RemoveReply(msgspec.Struct):
    name: str
    containers: list[str]


class PruneParams(msgspec.Struct, forbid_unknown_fields=True):
    filters: dict[str, list[str]] | None = None


class PruneReply(msgspec.Struct):
    names: list[str]
