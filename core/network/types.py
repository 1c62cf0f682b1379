"""The Structs of networking: what is persisted, what a container asked for, what it holds."""

from __future__ import annotations

from typing import Any

import msgspec

# --network values that are modes rather than network names (podman reserves these too).
MODES = ("private", "host", "none", "bridge")
CONTAINER_PREFIX = "container:"
# ... and aardvark-dns's pid file, which lives among the per-network files.
RESERVED_NAMES = frozenset((*MODES, "container", "default", "ns", "slirp4netns", "pasta", "aardvark.pid"))


class PortMapping(msgspec.Struct, frozen=True, omit_defaults=True):
    """One published port: host_port 0 means any free port, chosen when the container starts."""

    container_port: int
    host_port: int = 0
    protocol: str = "tcp"
    host_ip: str = ""  # "": every address of the host

    def key(self) -> tuple[str, int, str]:
        return (self.host_ip or "0.0.0.0", self.host_port, self.protocol)

    def text(self) -> str:
        host = f"{self.host_ip or '0.0.0.0'}:{self.host_port}"
        return f"{self.container_port}/{self.protocol} -> {host}"


class NetOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """A container's network requests besides its mode (``ContainerConfig.net``)."""

    networks: list[str] = []  # bridge mode: the networks joined at create, first is eth0
    ports: list[PortMapping] = []
    expose: list[str] = []  # "80/tcp": published on random host ports with publish_all
    ip: str = ""
    mac: str = ""
    aliases: list[str] = []
    dns: list[str] = []
    dns_search: list[str] = []
    dns_options: list[str] = []
    add_hosts: list[str] = []  # "name:ip"


class Network(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    id: str
    driver: str = "bridge"
    interface: str  # the bridge
    subnet: str
    gateway: str
    internal: bool = False
    dns_enabled: bool = True
    labels: dict[str, str] = {}
    created_at: int = 0  # ns since the epoch


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A container's place on one network; ``attached`` while its interface exists.

    ``conflist`` and ``result`` are what the last CNI ADD ran and returned (updated after
    every plugin of the chain): DEL runs exactly that chain with that result, even after
    a daemon restart or a change of the network.
    """

    container_id: str
    network: str
    ifname: str
    static_ip: str = ""
    static_mac: str = ""
    aliases: list[str] = []
    attached: bool = False
    names: list[str] = []  # what the network's DNS answers for it while attached
    conflist: dict[str, Any] | None = None
    runtime_config: dict[str, Any] = {}
    result: dict[str, Any] | None = None

    @property
    def address(self) -> tuple[str, int, str]:
        """(ip, prefix length, gateway) of the interface, from the CNI result."""
        for ip in (self.result or {}).get("ips", []):
            addr, _, prefix = str(ip.get("address", "")).partition("/")
            if ":" not in addr:
                return addr, int(prefix or 0), str(ip.get("gateway", ""))
        return "", 0, ""

    @property
    def mac(self) -> str:
        for iface in (self.result or {}).get("interfaces", []):
            if iface.get("name") == self.ifname and iface.get("sandbox"):
                return str(iface.get("mac", ""))
        return ""


class Masquerade(msgspec.Struct, frozen=True, kw_only=True):
    """A network's nat rules (see ``firewall``), saved before they are made: what to remove
    later, even once the network's record is gone."""

    network: str
    chain: str
    subnet: str


class Sandbox(msgspec.Struct, frozen=True, kw_only=True):
    """The network namespace a bridge-mode container runs in, and the host ports it holds."""

    container_id: str
    netns: str
    bundle: str  # where its etc files are (rewritten when a network is connected)
    ports: list[PortMapping] = []  # as reserved: every host_port is the real one
