"""org.varlink.service: introspection every varlink service offers."""

from __future__ import annotations

import msgspec


class GetInfoParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class GetInfoReply(msgspec.Struct):
    vendor: str
    product: str
    version: str
    url: str
    interfaces: list[str]


class GetInterfaceDescriptionParams(msgspec.Struct, forbid_unknown_fields=True):
    interface: str


class GetInterfaceDescriptionReply(msgspec.Struct):
    description: str
