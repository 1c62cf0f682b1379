"""io.varpod.System: liveness, daemon information, events."""

from __future__ import annotations

import msgspec


class RuntimeFeatures(msgspec.Struct):
    checkpoint: bool
    checkpoint_error: str
    json_errors: bool
    no_cgroups: bool


class Runtime(msgspec.Struct):
    name: str
    path: str
    version: str
    features: RuntimeFeatures


class DaemonInfo(msgspec.Struct):
    version: str
    pid: int
    default_runtime: str
    runtimes: list[Runtime]
    missing_runtimes: dict[str, list[str]]
    root: str
    run_root: str
    store_path: str
    socket: str
    native: str
    native_error: str
    loop: str
    containers: int
    running: int
    connections: int


class Event(msgspec.Struct):
    seq: int
    time: int
    type: str
    action: str
    id: str
    name: str
    attributes: dict[str, str]


class PingParams(msgspec.Struct, forbid_unknown_fields=True):
    ping: str | None = None


class PingReply(msgspec.Struct):
    pong: str


class InfoParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class InfoReply(msgspec.Struct):
    info: DaemonInfo


class EventsParams(msgspec.Struct, forbid_unknown_fields=True):
    since_seq: int | None = None
    since: int | None = None
    until: int | None = None
    stream: bool | None = None
    filters: dict[str, str] | None = None


class EventsReply(msgspec.Struct):
    event: Event | None = None
