"""io.varpod.Network: bridge networks, and containers' places on them."""

from __future__ import annotations

import msgspec


class Subnet(msgspec.Struct):
    subnet: str
    gateway: str


class NetworkInfo(msgspec.Struct):
    """Shaped like podman 4's ``network inspect``."""

    name: str
    id: str
    driver: str
    network_interface: str
    created: str
    subnets: list[Subnet]
    ipv6_enabled: bool
    internal: bool
    dns_enabled: bool
    labels: dict[str, str]
    options: dict[str, str]
    ipam_options: dict[str, str]


class CreateParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    subnet: str | None = None
    gateway: str | None = None
    internal: bool | None = None
    labels: dict[str, str] | None = None
    disable_dns: bool | None = None
    driver: str | None = None


class CreateReply(msgspec.Struct):
    network: NetworkInfo


class NameParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class InspectReply(msgspec.Struct):
    network: NetworkInfo


class ListParams(msgspec.Struct, forbid_unknown_fields=True):
    filters: dict[str, str] | None = None


class ListReply(msgspec.Struct):
    networks: list[NetworkInfo]


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
    pass


class PruneReply(msgspec.Struct):
    names: list[str]


class ConnectParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    container: str
    ip: str | None = None
    mac_address: str | None = None
    aliases: list[str] | None = None


class DisconnectParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    container: str
    force: bool | None = None


class ConnectionReply(msgspec.Struct):
    name: str
    container: str


class ReloadParams(msgspec.Struct, forbid_unknown_fields=True):
    container: str | None = None
    all: bool | None = None


class ReloadReply(msgspec.Struct):
    containers: list[str]


class PortsParams(msgspec.Struct, forbid_unknown_fields=True):
    container: str


class Port(msgspec.Struct):
    container_port: int
    protocol: str
    host_ip: str
    host_port: int


class PortsReply(msgspec.Struct):
    id: str
    ports: list[Port]
