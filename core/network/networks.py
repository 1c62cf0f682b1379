"""The networks and what containers hold on them: the public verbs of ``core.network``.

A bridge network is a CNI conflist (bridge with host-local IPAM, portmap, firewall)
generated from its stored record, and a masquerade of its own (``firewall``). A
bridge-mode container gets a named network namespace, its published host ports
reserved, and one CNI attachment per network (eth0, eth1, ...); each step is persisted
before and after it runs, so a DEL after a crash knows what the ADD did. Everything
here runs on the event loop; the caller holds the container's lock for the
per-container verbs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from ..errors import (
    AlreadyConnected,
    CNIFailed,
    InvalidConfig,
    InvalidNetworkConfig,
    NetworkExists,
    NetworkInUse,
    NoSuchNetwork,
    NotConnected,
    SubnetOverlap,
    Unsupported,
    VarpodError,
)
from ..model import ContainerRecord
from ..monitor import Monitor
from . import etcfiles, firewall
from .checks import (
    binary,
    check_alias,
    check_mac,
    check_network_name,
    check_static_ip,
    host_routes,
    interfaces,
    parse_gateway,
    parse_subnet,
)
from .cni import CNI, CNI_VERSION, DEFAULT_PLUGIN_DIRS, Attachment
from .dns import DnsServer, Entry, find_aardvark
from .firewall import CHAIN_PREFIX, RulesetWatch, masq_chain, touched
from .netns import NetnsDir, link_down
from .ports import Reservations
from .store import NetworkStore
from .types import Endpoint, Masquerade, Network, Sandbox

log = logging.getLogger("varpod.network")

IPAM_PLUGIN = "host-local"
PLUGINS = ("bridge", IPAM_PLUGIN, "portmap", "firewall")
AUTO_SUBNETS = ipaddress.IPv4Network("10.90.0.0/15")  # /24s for networks created without --subnet
BRIDGE_PREFIX = "varpod"


class NetworkConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The daemon configuration's ``[network]`` table."""

    # What `run` does without --network (and without -p/-P, which mean "bridge"):
    # "private" (loopback only, varpod's default) or "bridge" (podman's).
    default_mode: Literal["private", "bridge"] = "private"
    default_network: str = "varpod"  # what --network bridge means
    default_subnet: str = "10.87.0.0/16"
    plugin_dirs: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_PLUGIN_DIRS))
    aardvark: str = ""  # aardvark-dns; "": where Debian or Fedora install it
    dns_port: int = 53
    # The CNI firewall plugin (FORWARD rules accepting a container's traffic): "always", as
    # podman's conflists have it, or "auto": only when the FORWARD chain would not pass that
    # traffic anyway (a policy other than ACCEPT, or rules of its own, e.g. Docker's). Its
    # rules cost ~20 ms to add and ~40 ms to delete per container here (nf_tables deletions).
    firewall: Literal["auto", "always"] = "auto"


class Networks:
    def __init__(self, config: NetworkConfig, *, root: str, run_root: str, monitor: Monitor) -> None:
        self.config = config
        self._monitor = monitor
        self.store = NetworkStore(os.path.join(root, "network.db"))
        self.cni = CNI(monitor, config.plugin_dirs)
        self.ipam_dir = os.path.join(root, "ipam")
        self.netns = NetnsDir(os.path.join(run_root, "netns"))
        self.ports = Reservations()
        aardvark = config.aardvark or find_aardvark()
        self.dns = DnsServer(monitor, os.path.join(run_root, "aardvark-dns"), aardvark or None,
                             config.dns_port)
        self._dns_lock = asyncio.Lock()
        # What iptables was found to hold, kept while nf_tables reports no change that could
        # make it untrue (see _note_changes): FORWARD's openness, the masquerade chains checked.
        self._watch = RulesetWatch()
        self._forward: bool | None = None
        self._masq_ok: set[str] = set()
        self._epoch = 0  # counts such changes: an answer asked across one is not kept
        self._masq_lock = asyncio.Lock()
        if config.default_network not in {n.name for n in self.store.networks()}:
            self._add_default()

    def close(self) -> None:
        self._watch.close()
        self.ports.close()
        self.netns.close()
        self.store.close()

    # -- networks -------------------------------------------------------------------------

    def _add_default(self) -> None:
        subnet = parse_subnet(self.config.default_subnet)
        self.store.add_network(Network(
            name=self.config.default_network, id=secrets.token_hex(32),
            interface=f"{BRIDGE_PREFIX}0", subnet=str(subnet), gateway=str(subnet[1]),
            dns_enabled=False, created_at=time.time_ns()))

    def get(self, ref: str) -> Network:
        if ref == "bridge":
            ref = self.config.default_network
        return self.store.find_network(ref)

    def list(self) -> list[Network]:
        return self.store.networks()

    def create(self, name: str, *, subnet: str = "", gateway: str = "", internal: bool = False,
               labels: dict[str, str] | None = None, dns: bool = True, driver: str = "bridge") -> Network:
        check_network_name(name)
        if driver != "bridge":
            raise Unsupported(f"network driver {driver[:40]!r} is not supported: varpod's networks "
                              "are CNI bridges", feature=f"network driver {driver[:40]}")
        if dns:
            self.dns.require()
        self.cni.check_installed(PLUGINS)
        if any(n.name == name for n in self.store.networks()):
            raise NetworkExists(f"network {name} already exists", name=name)
        if subnet:
            net = parse_subnet(subnet)
            self._check_overlap(net)
        elif gateway:
            raise InvalidNetworkConfig("--gateway needs --subnet", field="gateway")
        else:
            net = self._freeparse_subnet()
        gw = parse_gateway(net, gateway) if gateway else net[1]
        record = Network(name=name, id=secrets.token_hex(32), interface=self._free_interface(),
                         subnet=str(net), gateway=str(gw), internal=internal, dns_enabled=dns,
                         labels=dict(labels or {}), created_at=time.time_ns())
        self.store.add_network(record)
        return record

    def _check_overlap(self, net: ipaddress.IPv4Network) -> None:
        for other in self.store.networks():
            if net.overlaps(ipaddress.IPv4Network(other.subnet)):
                raise SubnetOverlap(f"subnet {net} overlaps network {other.name}'s {other.subnet}",
                                    field="subnet", subnet=str(net), other=other.name)
        ours = {n.interface for n in self.store.networks()}
        for dev, route in host_routes():
            if dev not in ours and net.overlaps(route):
                raise SubnetOverlap(f"subnet {net} overlaps the host's route {route} on {dev}",
                                    field="subnet", subnet=str(net), other=f"route on {dev}")

    def _freeparse_subnet(self) -> ipaddress.IPv4Network:
        for candidate in AUTO_SUBNETS.subnets(new_prefix=24):
            try:
                self._check_overlap(candidate)
            except SubnetOverlap:
                continue
            return candidate
        raise InvalidNetworkConfig(f"no free /24 left in {AUTO_SUBNETS}: give --subnet", field="subnet")

    def _free_interface(self) -> str:
        used = {n.interface for n in self.store.networks()} | set(interfaces())
        n = 1
        while f"{BRIDGE_PREFIX}{n}" in used:
            n += 1
        return f"{BRIDGE_PREFIX}{n}"

    def users(self, ref: str) -> list[str]:
        """IDs of the containers with an endpoint on the network."""
        net = self.get(ref)
        return [ep.container_id for ep in self.store.endpoints_on(net.name)]

    async def remove(self, ref: str) -> Network:
        net = self.get(ref)
        if net.name == self.config.default_network:
            raise InvalidNetworkConfig(f"the default network {net.name} cannot be removed", field="name")
        users = self.users(net.name)
        if users:
            raise NetworkInUse(f"network {net.name} is used by {len(users)} container(s): "
                               f"{', '.join(u[:12] for u in users[:5])}; remove them or use --force",
                               name=net.name)
        self.store.delete_network(net.name)
        for m in self.store.masquerades():
            if m.network == net.name:
                await self._unmasquerade(m)
        if net.interface in interfaces():
            # The CNI bridge plugin makes the bridge on first use and never deletes it.
            done = await self._monitor.run([binary("ip"), "link", "del", net.interface])
            if not done.ok and net.interface in interfaces():
                log.error("deleting bridge %s of network %s: %s", net.interface, net.name,
                          done.stderr.decode(errors="replace").strip())
        shutil.rmtree(os.path.join(self.ipam_dir, net.name), ignore_errors=True)
        return net

    async def prune(self) -> list[Network]:
        gone = []
        for net in self.store.networks():
            if net.name != self.config.default_network and not self.users(net.name):
                gone.append(await self.remove(net.name))
        return gone

    def conflist(self, net: Network, *, ports: bool, firewall: bool = True) -> dict[str, Any]:
        """The CNI chain for one attachment: portmap only where ports are published, firewall
        where it is needed (see NetworkConfig.firewall)."""
        subnet = ipaddress.IPv4Network(net.subnet)
        ipam: dict[str, Any] = {
            "type": IPAM_PLUGIN, "dataDir": self.ipam_dir,
            "ranges": [[{"subnet": str(subnet), "gateway": net.gateway}]],
        }
        if not net.internal:
            ipam["routes"] = [{"dst": "0.0.0.0/0"}]
        plugins: list[dict[str, Any]] = [{
            # ipMasq off: the network masquerades as a whole (_masquerade), not per container.
            "type": "bridge", "bridge": net.interface, "isGateway": True,
            "ipMasq": False, "hairpinMode": True,
            "capabilities": {"ips": True, "mac": True}, "ipam": ipam,
        }]
        if ports:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
        if firewall:
            plugins.append({"type": "firewall", "backend": "iptables"})
        return {"cniVersion": CNI_VERSION, "name": net.name, "plugins": plugins}

    # -- a container's endpoints (create, discard) ---------------------------------------------

    def plan_endpoints(self, cid: str, names: list[str], *, ip: str, mac: str,
                       aliases: list[str]) -> list[Endpoint]:
        """Check the networks a new container asks for; the endpoints it will have."""
        nets = [self.get(n) for n in names]
        if len({n.name for n in nets}) != len(nets):
            raise InvalidConfig("a network is given twice", field="network")
        if (ip or mac) and len(nets) != 1:
            raise InvalidConfig("--ip and --mac-address need exactly one network", field="network")
        if ip:
            check_static_ip(nets[0], ip)
        return [Endpoint(container_id=cid, network=n.name, ifname=f"eth{i}", static_ip=ip,
                         static_mac=mac, aliases=list(aliases)) for i, n in enumerate(nets)]

    def add_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        for ep in endpoints:
            self.store.save_endpoint(ep)

    def endpoints(self, cid: str) -> list[Endpoint]:
        return self.store.endpoints_of(cid)

    def sandbox(self, cid: str) -> Sandbox | None:
        return self.store.sandbox(cid)

    async def forget(self, cid: str) -> None:
        """The container is gone: its attachments torn down (again, if need be) and dropped.

        Dropped even when a DEL fails again: a ghost endpoint would keep its network from
        ever being removed. The failure is logged; recover() collects the IP it held.
        """
        try:
            await self.teardown(cid)
        finally:
            for ep in self.store.endpoints_of(cid):
                self.store.delete_endpoint(cid, ep.network)

    # -- setup and teardown (prepare, release) -------------------------------------------------

    async def open_sandbox(self, rec: ContainerRecord, bundle: str) -> Sandbox:
        """Reserve the ports and make the namespace: the container's sandbox, no network in
        it yet (``attach``). On failure whatever was done is torn down before the error rises.
        """
        cid = rec.id
        if self.store.sandbox(cid) is not None or any(e.attached for e in self.store.endpoints_of(cid)):
            await self.teardown(cid)  # a release that did not finish (crash, failed DEL)
        ports = self.ports.reserve(cid, rec.config.net.ports)
        sandbox = Sandbox(container_id=cid, netns=self.netns.path_of(cid), bundle=bundle, ports=ports)
        try:
            self.store.save_sandbox(sandbox)
            await self.netns.create(cid)
        except BaseException:
            try:
                await self.teardown(cid)
            except Exception:
                log.exception("tearing down the network of %s after a failed setup", rec.name)
            raise
        return sandbox

    async def attach(self, rec: ContainerRecord, sandbox: Sandbox) -> None:
        """Attach every network of the container to its sandbox (CNI ADD), and tell DNS.

        What a failure leaves is recorded, for the ``teardown`` that must follow it.
        """
        endpoints = self.store.endpoints_of(rec.id)
        for i, ep in enumerate(endpoints):
            await self._attach(rec, ep, sandbox, primary=i == 0)
        if any(self._dns_network(ep.network) for ep in endpoints):
            await self.update_dns()

    async def _attach(self, rec: ContainerRecord, ep: Endpoint, sandbox: Sandbox, *,
                      primary: bool) -> Endpoint:
        net = self.get(ep.network)
        runtime: dict[str, Any] = {}
        if primary and sandbox.ports:
            runtime["portMappings"] = [{"hostPort": p.host_port, "containerPort": p.container_port,
                                        "protocol": p.protocol, "hostIP": p.host_ip}
                                       for p in sandbox.ports]
        if ep.static_ip:
            runtime["ips"] = [f"{ep.static_ip}/{ipaddress.IPv4Network(net.subnet).prefixlen}"]
        if ep.static_mac:
            runtime["mac"] = ep.static_mac
        await self._masquerade(net)
        conflist = self.conflist(net, ports="portMappings" in runtime,
                                 firewall=self.config.firewall == "always" or not await self._forward_open())
        names = [rec.name, rec.id[:12], *ep.aliases]
        # Saved before the plugins run: a DEL after a crash mid-ADD knows the chain.
        ep = msgspec.structs.replace(ep, attached=True, conflist=conflist, runtime_config=runtime,
                                     result=None, names=names)
        self.store.save_endpoint(ep)

        def progress(result: dict[str, Any]) -> None:
            self.store.save_endpoint(msgspec.structs.replace(ep, result=result))

        result = await self.cni.add(conflist, self._attachment(ep, sandbox.netns), on_result=progress)
        ep = msgspec.structs.replace(ep, result=result)
        self.store.save_endpoint(ep)
        return ep

    async def _forward_open(self) -> bool:
        """Whether the FORWARD chain passes every packet (firewall.forward_open).

        The answer is kept until nf_tables reports a change to FORWARD (or to its table):
        nothing else can change it, and every change is reported before the command that
        made it returns, so a kept answer is the one an iptables run would give now. Where
        changes cannot be watched (iptables-legacy) it is asked at every attachment; a
        reload asks again in any case.
        """
        self._note_changes()
        if self._forward is not None:
            return self._forward
        epoch = self._epoch
        answer = await firewall.forward_open(self._monitor)
        if epoch == self._epoch and self._watch.active:
            self._forward = answer
        return answer

    def _note_changes(self) -> None:
        """Forget what iptables' changes since the last look may have made untrue."""
        keys = self._watch.changes()
        if keys is None and not self._watch.active:
            # Not watching: FORWARD is asked every time; a masquerade, once checked, is
            # trusted until a reload or the next daemon start checks it again.
            self._forward = None
            self._epoch += 1
            return
        if keys is not None and not keys:
            return
        forward = touched(keys, "filter", "FORWARD")
        masq = keys is None or touched(keys, "nat", "POSTROUTING") \
            or any(table == "nat" and chain.startswith(CHAIN_PREFIX) for table, chain in keys)
        if forward:
            self._forward = None
        if masq:
            self._masq_ok.clear()
        if forward or masq:
            self._epoch += 1

    async def _masquerade(self, net: Network, *, check: bool = False) -> None:
        """Make sure the network masquerades what leaves it (firewall.ensure_masquerade).

        Checked at its first attachment in the daemon's life, then only after nf_tables
        reported a change to its chain or POSTROUTING, or when ``check`` (network reload,
        daemon start) asks. Kept until the network is removed, as its bridge is.
        """
        if net.internal:
            return
        m = Masquerade(network=net.name, chain=masq_chain(net.id), subnet=net.subnet)
        self._note_changes()
        if not check and m.chain in self._masq_ok:
            return
        async with self._masq_lock:  # one check-and-make at a time: never two jumps
            self._note_changes()
            if not check and m.chain in self._masq_ok:
                return
            if self.get(net.name).id != net.id:
                raise NoSuchNetwork(f"network {net.name} was removed", name=net.name)
            epoch = self._epoch
            # Saved before the rules are made: a crash midway still knows what to remove.
            self.store.save_masquerade(m)
            await firewall.ensure_masquerade(self._monitor, m)
            if epoch == self._epoch:
                self._masq_ok.add(m.chain)

    async def _unmasquerade(self, m: Masquerade) -> None:
        """Remove a masquerade and its record; a failure is logged and the record kept, so
        the next daemon start tries again (the network's removal does not wait for it)."""
        async with self._masq_lock:
            self._masq_ok.discard(m.chain)
            try:
                await firewall.remove_masquerade(self._monitor, m)
            except VarpodError as e:
                log.error("removing the masquerade of network %s (%s): %s", m.network, m.chain, e.message)
                return
            self.store.delete_masquerade(m.chain)

    def _attachment(self, ep: Endpoint, netns: str) -> Attachment:
        return Attachment(container_id=ep.container_id, netns=netns, ifname=ep.ifname,
                          args={"IgnoreUnknown": "1"}, runtime_config=ep.runtime_config)

    async def teardown(self, cid: str, *, unused: bool = False) -> None:
        """DEL every attachment (last first), free the ports and the namespace. Idempotent.

        A DEL that fails keeps its endpoint marked attached, so the next teardown (a start,
        a removal, the next daemon's recovery) tries again; the error rises after the rest
        has been given back.

        ``unused``: no process is left in the namespace (the container's died, none joined
        it). The namespace then goes first and the kernel deletes its interfaces, while the
        DELs run without one (see _drop_namespace_first).
        """
        sandbox = self.store.sandbox(cid)
        attached = [e for e in self.store.endpoints_of(cid) if e.attached]
        if sandbox is None and not attached and not self.ports.holds(cid):
            return
        netns = sandbox.netns if sandbox is not None else self.netns.path_of(cid)
        if unused and sandbox is not None and self._drop_namespace_first(cid, attached):
            netns = ""
        failed: VarpodError | None = None
        for ep in reversed(attached):
            try:
                await self._detach(ep, netns)
            except (CNIFailed, Unsupported) as e:
                log.error("CNI DEL of %s on %s failed: %s", cid[:12], ep.network, e.message)
                failed = failed or e
        self.ports.release(cid)
        self.netns.remove(cid)
        self.store.delete_sandbox(cid)
        if any(self._dns_network(e.network) for e in attached):
            await self.update_dns()
        if failed is not None:
            raise failed

    def _drop_namespace_first(self, cid: str, attached: list[Endpoint]) -> bool:
        """Take the host ends of the container's veths down and remove its namespace.

        A veth's deletion waits 15-20 ms on RCU grace periods in the kernel; the bridge
        plugin's DEL would make ``rm`` wait for it. With the namespace gone the kernel
        deletes the veths in its own time, and the DELs run with CNI_NETNS empty, as CRI-O
        runs them for a namespace that is gone: bridge then only frees the address,
        portmap and firewall only remove rules. The host ends go down first, so until the
        kernel gets to them nothing answers for the container on the bridge (a container
        given its address next cannot meet a twin) and the bridge forgets its MACs.

        Only where every plugin's DEL is complete without the namespace, and every host end
        is known; otherwise nothing is done and the DELs run as ADD left things.
        """
        ends: list[str] = []
        for ep in attached:
            found = _host_ends(ep) if _del_needs_no_netns(ep.conflist) else None
            if not found:
                return False
            ends += found
        try:
            for name in ends:
                link_down(name)
        except OSError as e:
            log.warning("taking %s's veths down failed (%s): deleting them through the plugins",
                        cid[:12], e)
            return False
        self.netns.remove(cid)
        return True

    async def _detach(self, ep: Endpoint, netns: str) -> None:
        if ep.conflist:
            await self.cni.delete(ep.conflist, self._attachment(ep, netns), ep.result)
        self.store.save_endpoint(msgspec.structs.replace(
            ep, attached=False, conflist=None, runtime_config={}, result=None, names=[]))

    def _dns_network(self, name: str) -> bool:
        try:
            return self.store.find_network(name).dns_enabled
        except NoSuchNetwork:
            return True  # gone already: let the DNS configuration drop it

    async def update_dns(self) -> None:
        """Tell aardvark-dns about every attached endpoint on a DNS-enabled network."""
        # The view is taken under the lock: one computed before another update finished
        # could otherwise be written after it, and drop that update's container.
        async with self._dns_lock:
            wanted: dict[str, tuple[str, list[Entry]]] = {}
            for net in self.store.networks():
                if not net.dns_enabled:
                    continue
                entries = [(ep.container_id, ep.address[0], tuple(ep.names))
                           for ep in self.store.endpoints_on(net.name)
                           if ep.attached and ep.address[0] and ep.names]
                wanted[net.name] = (net.gateway, entries)
            if self.dns.binary is None and not any(v[1] for v in wanted.values()):
                return
            await self.dns.update(wanted)

    # -- connect, disconnect, reload (under the container's lock) ------------------------------

    async def connect(self, rec: ContainerRecord, ref: str, *, ip: str = "", mac: str = "",
                      aliases: list[str] | None = None, live: bool) -> Endpoint:
        """Add a network to a bridge-mode container; ``live``: plug it in now."""
        net = self.get(ref)
        if rec.config.network != "bridge":
            raise InvalidConfig(f"container {rec.name} uses network mode {rec.config.network}; only "
                                "bridge-mode containers can be connected to a network", field="network")
        eps = self.store.endpoints_of(rec.id)
        if any(e.network == net.name for e in eps):
            raise AlreadyConnected(f"container {rec.name} is already connected to network {net.name}",
                                   name=net.name, container=rec.name)
        if ip:
            check_static_ip(net, ip)
        if mac:
            check_mac(mac)
        for alias in aliases or []:
            check_alias(alias)
        used = {e.ifname for e in eps}
        ifname = next(f"eth{i}" for i in range(len(eps) + 1) if f"eth{i}" not in used)
        ep = Endpoint(container_id=rec.id, network=net.name, ifname=ifname, static_ip=ip,
                      static_mac=mac, aliases=list(aliases or []))
        self.store.save_endpoint(ep)
        sandbox = self.store.sandbox(rec.id)
        if live and sandbox is not None:
            try:
                ep = await self._attach(rec, ep, sandbox, primary=not eps)
                await self.update_dns()
            except BaseException:
                await self._undo_connect(ep, sandbox)
                raise
            self.write_etc(rec, sandbox)
        return ep

    async def _undo_connect(self, ep: Endpoint, sandbox: Sandbox) -> None:
        current = self.store.endpoint(ep.container_id, ep.network)
        if current is not None and current.attached:
            try:
                await self._detach(current, sandbox.netns)
            except VarpodError as e:
                log.error("undoing connect of %s to %s: %s", ep.container_id[:12], ep.network, e)
                return  # left attached: the container's teardown tries again
        self.store.delete_endpoint(ep.container_id, ep.network)

    async def disconnect(self, rec: ContainerRecord, ref: str) -> None:
        name = ref if self.store.endpoint(rec.id, ref) is not None else self.get(ref).name
        ep = self.store.endpoint(rec.id, name)
        if ep is None:
            raise NotConnected(f"container {rec.name} is not connected to network {name}",
                               name=name, container=rec.name)
        sandbox = self.store.sandbox(rec.id)
        if ep.attached:
            await self._detach(ep, sandbox.netns if sandbox else self.netns.path_of(rec.id))
        self.store.delete_endpoint(rec.id, name)
        if self._dns_network(name):
            await self.update_dns()
        if sandbox is not None:
            self.write_etc(rec, sandbox)

    async def reload(self, rec: ContainerRecord) -> list[Endpoint]:
        """DEL then ADD every attachment with the address and MAC it had: its firewall rules
        are made again (seed 002's ReloadNetwork, after a firewall reload wiped them)."""
        sandbox = self.store.sandbox(rec.id)
        if sandbox is None:
            raise InvalidConfig(f"container {rec.name} has no network of its own to reload "
                                f"(network mode {rec.config.network})", field="network")
        # A reload follows a firewall reload: nothing iptables was found to hold is trusted.
        self._forward = None
        self._epoch += 1
        for ep in self.store.endpoints_of(rec.id):
            if ep.attached:
                await self._masquerade(self.get(ep.network), check=True)
        out = []
        for i, ep in enumerate(self.store.endpoints_of(rec.id)):
            if not ep.attached:
                continue
            ip, mac = ep.address[0], ep.mac
            await self._detach(ep, sandbox.netns)
            keep = msgspec.structs.replace(ep, static_ip=ip or ep.static_ip, static_mac=mac or ep.static_mac)
            new = await self._attach(rec, keep, sandbox, primary=i == 0)
            # The address is kept for this run only; the next start allocates as configured.
            self.store.save_endpoint(msgspec.structs.replace(new, static_ip=ep.static_ip,
                                                             static_mac=ep.static_mac))
            out.append(new)
        return out

    # -- etc files --------------------------------------------------------------------------------

    def write_etc(self, rec: ContainerRecord, sandbox: Sandbox | None, bundle: str = "") -> None:
        addresses, gateway, aardvark = [], "", []
        if sandbox is not None:
            bundle = bundle or sandbox.bundle
            for ep in self.store.endpoints_of(rec.id):
                ip, _, gw = ep.address
                if not ep.attached or not ip:
                    continue
                addresses.append(ip)
                gateway = gateway or gw
                if self._dns_network(ep.network) and gw:
                    aardvark.append(gw)
        etcfiles.write(bundle, etcfiles.texts(rec.config, addresses=addresses, gateway=gateway,
                                              aardvark=aardvark))

    # -- daemon start ---------------------------------------------------------------------------

    async def recover(self, known: Iterable[str], alive: Iterable[str]) -> None:
        """Re-adopt the sandboxes of running containers; tear down every other one; collect
        namespaces, endpoints and IP allocations nobody owns."""
        known, alive = set(known), set(alive)
        for sandbox in self.store.sandboxes():
            cid = sandbox.container_id
            if cid in alive:
                try:
                    self.ports.reserve(cid, sandbox.ports)
                except VarpodError as e:
                    log.error("container %s: its published port could not be reserved again: %s",
                              cid[:12], e.message)
                continue
            await _logged(self.teardown(cid), cid)
        for cid in self.store.containers_with_endpoints():
            if cid not in known:
                await _logged(self.forget(cid), cid)
            elif cid not in alive and any(e.attached for e in self.store.endpoints_of(cid)):
                await _logged(self.teardown(cid), cid)
        owned = {s.container_id for s in self.store.sandboxes()}
        for name in self.netns.names():
            if name not in owned:
                log.info("removing network namespace %s that no container owns", name)
                self.netns.remove(name)
        self._collect_ip_allocations()
        await _logged(self.update_dns(), "dns")
        await _logged(self._recover_masquerades(), "masquerades")

    async def _recover_masquerades(self) -> None:
        """Every masquerade made is there, once (a crash, a firewall flush or a reboot may
        have taken it away); those of networks gone are removed."""
        nets = {masq_chain(n.id): n for n in self.store.networks() if not n.internal}
        for m in self.store.masquerades():
            net = nets.get(m.chain)
            if net is not None:
                await _logged(self._masquerade(net, check=True), net.name)
            else:
                await self._unmasquerade(m)

    def _collect_ip_allocations(self) -> None:
        """host-local's files (one per allocated IP, holding the container ID) of containers
        with no attachment: left by a crash between an ADD and its record."""
        holders = {e.container_id for cid in self.store.containers_with_endpoints()
                   for e in self.store.endpoints_of(cid) if e.attached}
        try:
            nets = os.listdir(self.ipam_dir)
        except FileNotFoundError:
            return
        for net in nets:
            d = os.path.join(self.ipam_dir, net)
            for name in os.listdir(d):
                if name == "lock" or name.startswith("last_reserved_ip"):
                    continue
                path = os.path.join(d, name)
                try:
                    with open(path) as f:
                        owner = f.read().split()[0] if os.path.getsize(path) else ""
                except (OSError, IndexError):
                    continue
                if owner and owner not in holders:
                    log.info("releasing IP %s on %s: container %s holds no attachment", name, net,
                             owner[:12])
                    os.unlink(path)


def _del_needs_no_netns(conflist: dict[str, Any] | None) -> bool:
    """Whether the chain's DEL does all it did with CNI_NETNS empty: bridge without the
    per-container masquerade or MAC-spoofing rules it removes only with the namespace
    (an older varpod's ipMasq), portmap and firewall."""
    if not conflist:
        return False
    for p in conflist.get("plugins") or ():
        kind = p.get("type")
        if kind == "bridge" and (p.get("ipMasq") or p.get("macspoofchk")):
            return False
        if kind not in ("bridge", "portmap", "firewall"):
            return False
    return True


def _host_ends(ep: Endpoint) -> list[str]:
    """The host-side interfaces of an attachment's result: neither in the sandbox nor the
    bridge. Names from a saved result are checked, as an ioctl would truncate a long one."""
    if not isinstance(ep.result, dict) or not ep.conflist:
        return []
    bridges = {p.get("bridge") for p in ep.conflist.get("plugins") or ()}
    out = []
    for iface in ep.result.get("interfaces") or ():
        name = iface.get("name") if isinstance(iface, dict) else None
        if not isinstance(name, str) or iface.get("sandbox") or name in bridges:
            continue
        if not 0 < len(name.encode()) < 16 or any(c in name for c in "/\0 :") or name in (".", ".."):
            return []
        out.append(name)
    return out


async def _logged(coro: Any, what: str) -> None:
    try:
        await coro
    except Exception:
        log.exception("network recovery of %s failed", what[:12])
