"""Handlers of io.varpod.Network, and the NetworkSettings of a container's inspect."""

from __future__ import annotations

from typing import Any

from ..core.engine import Engine
from ..core.errors import InvalidConfig, InvalidState, NoSuchNetwork
from ..core.events import EventBus
from ..core.model import ContainerRecord
from ..core.network.networks import Networks
from ..core.network.types import Network
from ..core.states import State
from .interfaces import container as C
from .interfaces import network as N
from .registry import Kind, Registry
from .service import rfc3339

NET = "io.varpod.Network."
RELOADABLE = (State.CREATED, State.RUNNING)  # seed 002: the network must be configured
LIVE = (State.CREATED, State.RUNNING, State.PAUSED, State.STOPPING)


class NetworkService:
    def __init__(self, engine: Engine, networks: Networks, bus: EventBus) -> None:
        self.engine = engine
        self.networks = networks
        self.bus = bus

    def register(self, reg: Registry) -> None:
        add = reg.add
        add(NET + "Create", N.CreateParams, self.create, Kind.SYNC, mutating=True)
        add(NET + "Inspect", N.NameParams, self.inspect, Kind.SYNC)
        add(NET + "List", N.ListParams, self.list, Kind.SYNC)
        add(NET + "Exists", N.NameParams, self.exists, Kind.SYNC)
        add(NET + "Remove", N.RemoveParams, self.remove, mutating=True)
        add(NET + "Prune", N.PruneParams, self.prune, mutating=True)
        add(NET + "Connect", N.ConnectParams, self.connect, mutating=True)
        add(NET + "Disconnect", N.DisconnectParams, self.disconnect, mutating=True)
        add(NET + "Reload", N.ReloadParams, self.reload, mutating=True)
        add(NET + "Ports", N.PortsParams, self.ports, Kind.SYNC)

    def _emit(self, action: str, net: Network, **attributes: str) -> None:
        self.bus.emit("network", action, net.id, net.name, **attributes)

    def create(self, p: N.CreateParams, ctx: Any) -> N.CreateReply:
        net = self.networks.create(p.name, subnet=p.subnet or "", gateway=p.gateway or "",
                                   internal=bool(p.internal), labels=p.labels or {},
                                   dns=not p.disable_dns, driver=p.driver or "bridge")
        self._emit("create", net)
        return N.CreateReply(network=network_info(net))

    def inspect(self, p: N.NameParams, ctx: Any) -> N.InspectReply:
        return N.InspectReply(network=network_info(self.networks.get(p.name)))

    def list(self, p: N.ListParams, ctx: Any) -> N.ListReply:
        nets = [n for n in self.networks.list() if _matches(n, p.filters or {})]
        return N.ListReply(networks=[network_info(n) for n in nets])

    def exists(self, p: N.NameParams, ctx: Any) -> N.ExistsReply:
        try:
            self.networks.get(p.name)
        except NoSuchNetwork:
            return N.ExistsReply(exists=False)
        return N.ExistsReply(exists=True)

    async def remove(self, p: N.RemoveParams, ctx: Any) -> N.RemoveReply:
        net = self.networks.get(p.name)
        removed = []
        if p.force:
            for cid in self.networks.users(net.name):
                await self.engine.remove(cid, force=True, timeout=p.timeout)
                removed.append(cid)
        await self.networks.remove(net.name)
        self._emit("remove", net)
        return N.RemoveReply(name=net.name, containers=removed)

    async def prune(self, p: N.PruneParams, ctx: Any) -> N.PruneReply:
        gone = await self.networks.prune()
        for net in gone:
            self._emit("remove", net)
        return N.PruneReply(names=[n.name for n in gone])

    async def connect(self, p: N.ConnectParams, ctx: Any) -> N.ConnectionReply:
        net = self.networks.get(p.name)
        async with self.engine.locked(p.container) as rec:
            await self.networks.connect(rec, net.name, ip=p.ip or "", mac=p.mac_address or "",
                                        aliases=p.aliases or [], live=rec.state.state in LIVE)
        self._emit("connect", net, container=rec.id)
        return N.ConnectionReply(name=net.name, container=rec.id)

    async def disconnect(self, p: N.DisconnectParams, ctx: Any) -> N.ConnectionReply:
        net = self.networks.get(p.name)
        async with self.engine.locked(p.container) as rec:
            await self.networks.disconnect(rec, net.name)
        self._emit("disconnect", net, container=rec.id)
        return N.ConnectionReply(name=net.name, container=rec.id)

    async def reload(self, p: N.ReloadParams, ctx: Any) -> N.ReloadReply:
        if p.all:
            refs = [r.id for r in self.engine.list(all=False) if self.networks.sandbox(r.id)]
        elif p.container:
            refs = [p.container]
        else:
            raise InvalidConfig("reload needs a container, or all", field="container")
        done = []
        for ref in refs:
            async with self.engine.locked(ref) as rec:
                if rec.state.state not in RELOADABLE:
                    if p.all:
                        continue
                    raise InvalidState(f"container {rec.name} is {rec.state.state.value}: only a "
                                       "created or running container's network can be reloaded",
                                       id=rec.id, state=rec.state.state.value)
                await self.networks.reload(rec)
                done.append(rec.id)
        return N.ReloadReply(containers=done)

    def ports(self, p: N.PortsParams, ctx: Any) -> N.PortsReply:
        rec = self.engine.resolve(p.container)
        sandbox = self.networks.sandbox(rec.id)
        mappings = sandbox.ports if sandbox is not None else rec.config.net.ports
        return N.PortsReply(id=rec.id, ports=[
            N.Port(container_port=m.container_port, protocol=m.protocol, host_ip=m.host_ip,
                   host_port=m.host_port) for m in mappings])


def network_info(net: Network) -> N.NetworkInfo:
    return N.NetworkInfo(
        name=net.name, id=net.id, driver=net.driver, network_interface=net.interface,
        created=rfc3339(net.created_at), subnets=[N.Subnet(subnet=net.subnet, gateway=net.gateway)],
        ipv6_enabled=False, internal=net.internal, dns_enabled=net.dns_enabled,
        labels=dict(net.labels), options={}, ipam_options={"driver": "host-local"})


def _matches(net: Network, filters: dict[str, str]) -> bool:
    for key, want in filters.items():
        if key == "name" and want not in net.name:
            return False
        if key == "id" and not net.id.startswith(want):
            return False
        if key == "driver" and net.driver != want:
            return False
        if key == "label":
            k, sep, v = want.partition("=")
            if k not in net.labels or (sep and net.labels[k] != v):
                return False
        if key not in ("name", "id", "driver", "label"):
            raise InvalidConfig(f"unknown network filter {key[:40]!r} (name, id, driver, label)",
                                field="filters")
    return True


def network_settings(networks: Networks | None, rec: ContainerRecord) -> C.NetworkSettings:
    """podman's NetworkSettings of a container: addresses while attached, ports always."""
    if networks is None:
        return C.NetworkSettings()
    cfg = rec.config
    sandbox = networks.sandbox(rec.id)
    ports: dict[str, list[C.HostPort] | None] = {p: None for p in cfg.net.expose}
    for m in sandbox.ports if sandbox is not None else cfg.net.ports:
        bindings = ports.get(f"{m.container_port}/{m.protocol}") or []
        bindings.append(C.HostPort(HostIp=m.host_ip, HostPort=str(m.host_port) if m.host_port else ""))
        ports[f"{m.container_port}/{m.protocol}"] = bindings
    endpoints: dict[str, C.EndpointSettings] = {}
    for ep in networks.endpoints(rec.id):
        ip, prefix, gateway = ep.address
        endpoints[ep.network] = C.EndpointSettings(
            Gateway=gateway, IPAddress=ip, IPPrefixLen=prefix, MacAddress=ep.mac,
            NetworkID=ep.network, Aliases=[rec.id[:12], *ep.aliases])
    first = next(iter(endpoints.values()), C.EndpointSettings())
    return C.NetworkSettings(
        Gateway=first.Gateway, IPAddress=first.IPAddress, IPPrefixLen=first.IPPrefixLen,
        MacAddress=first.MacAddress, Ports=ports, SandboxID=rec.id if sandbox else "",
        SandboxKey=sandbox.netns if sandbox is not None else "", Networks=endpoints)
