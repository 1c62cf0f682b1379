"""io.varpod.Container: the container lifecycle."""

from __future__ import annotations

import msgspec


class CreateSpec(msgspec.Struct, forbid_unknown_fields=True):
    rootfs: str | None = None
    command: list[str] | None = None
    name: str | None = None
    env: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    tty: bool | None = None
    stdin: bool | None = None
    runtime: str | None = None
    restart_policy: str | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    network: str | None = None
    read_only: bool | None = None
    labels: dict[str, str] | None = None
    auto_remove: bool | None = None
    log_size_max: int | None = None
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    cpu_shares: int | None = None
    pod: str | None = None
    image: str | None = None
    entrypoint: list[str] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    privileged: bool | None = None
    no_new_privileges: bool | None = None
    ulimits: list[str] | None = None
    sysctls: dict[str, str] | None = None
    devices: list[str] | None = None
    shm_size: int | None = None
    init: bool | None = None
    log_driver: str | None = None
    annotations: dict[str, str] | None = None
    userns: str | None = None
    ports: list[str] | None = None
    publish_all: bool | None = None
    expose: list[str] | None = None
    ip: str | None = None
    mac_address: str | None = None
    dns: list[str] | None = None
    dns_search: list[str] | None = None
    dns_option: list[str] | None = None
    add_hosts: list[str] | None = None
    network_aliases: list[str] | None = None
    volumes: list[str] | None = None
    mounts: list[str] | None = None
    tmpfs: list[str] | None = None
    image_volume: str | None = None


class RestartPolicy(msgspec.Struct):
    Name: str
    MaximumRetryCount: int


class ContainerState(msgspec.Struct):
    OciVersion: str
    Status: str
    Running: bool
    Paused: bool
    Restarting: bool
    OOMKilled: bool
    Dead: bool
    Pid: int
    ExitCode: int
    ExitCodeKnown: bool
    Error: str
    StartedAt: str
    FinishedAt: str
    StoppedByUser: bool


class ContainerConfig(msgspec.Struct):
    Hostname: str
    User: str
    Env: list[str]
    Cmd: list[str]
    WorkingDir: str
    Labels: dict[str, str]
    StopSignal: int
    StopTimeout: int
    Tty: bool
    OpenStdin: bool
    CreateCommand: list[str]
    Entrypoint: list[str] = []
    Image: str = ""
    Annotations: dict[str, str] = {}


class Ulimit(msgspec.Struct):
    Name: str
    Soft: int
    Hard: int


class Device(msgspec.Struct):
    PathOnHost: str
    PathInContainer: str
    CgroupPermissions: str


class LogConfig(msgspec.Struct):
    Type: str
    Path: str


class HostConfig(msgspec.Struct):
    RestartPolicy: RestartPolicy
    NetworkMode: str
    ReadonlyRootfs: bool
    AutoRemove: bool
    LogSizeMax: int
    Memory: int
    NanoCpus: int
    CpuPeriod: int
    CpuQuota: int
    CpuShares: int
    PidsLimit: int
    CapAdd: list[str] = []
    CapDrop: list[str] = []
    Privileged: bool = False
    SecurityOpt: list[str] = []
    Ulimits: list[Ulimit] = []
    Sysctls: dict[str, str] = {}
    Devices: list[Device] = []
    ShmSize: int = 0
    Init: bool = False
    LogConfig: LogConfig | None = None
    UsernsMode: str = ""
    Binds: list[str] = []
    Tmpfs: dict[str, str] = {}


class InspectMount(msgspec.Struct):
    Type: str
    Name: str
    Source: str
    Destination: str
    Driver: str
    Mode: str
    Options: list[str]
    RW: bool
    Propagation: str


class HostPort(msgspec.Struct):
    HostIp: str
    HostPort: str


class EndpointSettings(msgspec.Struct):
    EndpointID: str = ""
    Gateway: str = ""
    IPAddress: str = ""
    IPPrefixLen: int = 0
    IPv6Gateway: str = ""
    GlobalIPv6Address: str = ""
    GlobalIPv6PrefixLen: int = 0
    MacAddress: str = ""
    NetworkID: str = ""
    Aliases: list[str] = []


class NetworkSettings(msgspec.Struct):
    EndpointID: str = ""
    Gateway: str = ""
    IPAddress: str = ""
    IPPrefixLen: int = 0
    IPv6Gateway: str = ""
    GlobalIPv6Address: str = ""
    GlobalIPv6PrefixLen: int = 0
    MacAddress: str = ""
    Bridge: str = ""
    SandboxID: str = ""
    HairpinMode: bool = False
    LinkLocalIPv6Address: str = ""
    LinkLocalIPv6PrefixLen: int = 0
    Ports: dict[str, list[HostPort] | None] = {}
    SandboxKey: str = ""
    Networks: dict[str, EndpointSettings] = {}


class ContainerInspect(msgspec.Struct):
    Id: str
    Created: str
    Path: str
    Args: list[str]
    State: ContainerState
    Image: str
    Rootfs: str
    Name: str
    RestartCount: int
    Driver: str
    OCIRuntime: str
    LogPath: str
    BundlePath: str
    Config: ContainerConfig
    HostConfig: HostConfig
    Pod: str = ""
    IsInfra: bool = False
    ImageName: str = ""
    NetworkSettings: NetworkSettings = msgspec.field(default_factory=NetworkSettings)
    Mounts: list[InspectMount] = []


class PortSummary(msgspec.Struct):
    host_ip: str
    container_port: int
    host_port: int
    range: int
    protocol: str


class ContainerSummary(msgspec.Struct):
    Id: str
    Names: list[str]
    Image: str
    Command: list[str]
    Created: int
    CreatedAt: str
    State: str
    Status: str
    ExitCode: int
    Exited: bool
    ExitedAt: int
    StartedAt: int
    Pid: int
    Labels: dict[str, str]
    AutoRemove: bool
    Pod: str = ""
    IsInfra: bool = False
    ImageID: str = ""
    Ports: list[PortSummary] = []
    Networks: list[str] = []
    PodName: str = ""
    Mounts: list[str] = []
    MountSources: list[str] = []


class CreateParams(msgspec.Struct, forbid_unknown_fields=True):
    spec: CreateSpec


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


class UpdateParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    cpu_shares: int | None = None


class StateReply(msgspec.Struct):
    id: str
    state: str


class WaitParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    conditions: list[str] | None = None


class WaitReply(msgspec.Struct):
    id: str = ""
    state: str = ""
    exit_code: int = 0
    exit_code_known: bool = True


class RemoveParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    force: bool | None = None
    timeout: int | None = None
    volumes: bool | None = None


class RemoveReply(msgspec.Struct):
    id: str


class InspectReply(msgspec.Struct):
    container: ContainerInspect


class ListParams(msgspec.Struct, forbid_unknown_fields=True):
    all: bool | None = None


class ListReply(msgspec.Struct):
    containers: list[ContainerSummary]


class LogsParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    follow: bool | None = None
    tail: int | None = None
    since: int | None = None
    until: int | None = None
    stdout: bool | None = None
    stderr: bool | None = None
    timestamps: bool | None = None


class LogsReply(msgspec.Struct):
    id: str
    tty: bool


class AttachParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    stdin: bool | None = None
    stdout: bool | None = None
    stderr: bool | None = None
    detach_keys: str | None = None
    logs: bool | None = None
    stream: bool | None = None
    start: bool | None = None
    height: int | None = None
    width: int | None = None


class AttachReply(msgspec.Struct):
    id: str
    tty: bool


class ResizeParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    height: int
    width: int


class Empty(msgspec.Struct):
    pass


class ExecSpec(msgspec.Struct, forbid_unknown_fields=True):
    command: list[str]
    env: list[str] | None = None
    workdir: str | None = None
    user: str | None = None
    tty: bool | None = None
    stdin: bool | None = None
    privileged: bool | None = None
    cap_add: list[str] | None = None
    detach_keys: str | None = None
    preserve_fds: int | None = None


class ExecProcessConfig(msgspec.Struct):
    entrypoint: str
    arguments: list[str]
    tty: bool
    user: str
    privileged: bool


class ExecSession(msgspec.Struct):
    ID: str
    ContainerID: str
    Running: bool
    ExitCode: int
    ExitCodeKnown: bool
    Pid: int
    OpenStdin: bool
    DetachKeys: str
    CanRemove: bool
    CreatedAt: str
    StartedAt: str
    FinishedAt: str
    ProcessConfig: ExecProcessConfig


class ExecCreateParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    spec: ExecSpec


class IdReply(msgspec.Struct):
    id: str


class ExecStartParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    attach: bool | None = None
    height: int | None = None
    width: int | None = None


class ExecResizeParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    height: int
    width: int


class ExecIdParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str


class ExecInspectReply(msgspec.Struct):
    exec: ExecSession


class ExecStopParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    timeout: int | None = None


class ExecRemoveParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    force: bool | None = None


class ExecListReply(msgspec.Struct):
    sessions: list[ExecSession]


class CheckpointParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    keep: bool | None = None
    leave_running: bool | None = None
    tcp_established: bool | None = None


class DiskUsageReply(msgspec.Struct):
    id: str
    rw: int
    rootfs: int


class RestoreParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    keep: bool | None = None
    tcp_established: bool | None = None


class StatsParams(msgspec.Struct, forbid_unknown_fields=True):
    names: list[str] | None = None
    stream: bool | None = None
    interval: float | None = None


class ContainerStats(msgspec.Struct):
    ContainerID: str
    Name: str
    Pod: str
    CPU: float
    AvgCPU: float
    CPUNano: int
    SystemNano: int
    UpTime: int
    MemUsage: int
    MemLimit: int
    MemPerc: float
    PIDs: int
    BlockInput: int
    BlockOutput: int
    NetInput: int
    NetOutput: int


class StatsReply(msgspec.Struct):
    stats: list[ContainerStats]


class TopParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    descriptors: list[str] | None = None


class TopReply(msgspec.Struct):
    titles: list[str]
    processes: list[list[str]]


# -- filesystems: mount, export, copies, diff, commit, artifacts ------------------------------


class MountReply(msgspec.Struct):
    id: str
    path: str


class UnmountParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    force: bool | None = None


class UnmountReply(msgspec.Struct):
    id: str
    mounted: bool


class MountListParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class MountedContainer(msgspec.Struct):
    id: str
    names: list[str]
    path: str


class MountListReply(msgspec.Struct):
    mounts: list[MountedContainer]


class ExportReply(msgspec.Struct):
    id: str = ""


class PathParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    path: str


class PathStat(msgspec.Struct):
    name: str
    path: str
    size: int
    mode: int
    mtime: int
    link_target: str


class StatReply(msgspec.Struct):
    id: str
    stat: PathStat


class CopyOutParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    path: str
    rename: str | None = None
    contents: bool | None = None


class CopyOutReply(msgspec.Struct):
    id: str = ""
    stat: PathStat | None = None


class CopyInParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    path: str
    source_name: str | None = None
    target_name: str | None = None
    directory: bool | None = None
    contents: bool | None = None
    chown: bool | None = None
    overwrite: bool | None = None


class CopyInReply(msgspec.Struct):
    id: str = ""


class Change(msgspec.Struct):
    Path: str
    Kind: str


class DiffReply(msgspec.Struct):
    id: str
    changes: list[Change]


class CommitParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    image: str | None = None
    author: str | None = None
    message: str | None = None
    changes: list[str] | None = None
    pause: bool | None = None
    format: str | None = None


class CommitReply(msgspec.Struct):
    id: str
    names: list[str]


class ArtifactParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    artifact: str


class ArtifactAddParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    artifact: str
    data: bytes


class ArtifactReply(msgspec.Struct):
    data: bytes


class Artifact(msgspec.Struct):
    name: str
    size: int


class ArtifactListReply(msgspec.Struct):
    artifacts: list[Artifact]
