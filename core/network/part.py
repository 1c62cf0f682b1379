"""NetworkPart: networking's hooks in a container's life (see ``core/parts.py``).

    create    --network, -p/-P/--expose, --ip, --mac-address, --dns*, --add-host and
              --network-alias checked and stored; a bridge-mode container's endpoints saved
    prepare   bridge: ports reserved, namespace made; then, while the runtime creates
              the container, CNI ADD per network, DNS told, the etc files written;
              container:CTR: that container's namespace joined; every mode: the etc files
    release   CNI DEL, ports and namespace freed
    discard   endpoints dropped
    recover   running containers' sandboxes re-adopted, everything else collected

Modes: ``private`` (the default: a namespace of its own with loopback only), ``none``
(the same, as podman names it), ``host``, ``container:CTR``, and ``bridge`` (the CNI
networks in ``ContainerConfig.net.networks``). Publishing a port without --network
means bridge: a podman user's ``run -p 8080:80`` works as written.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Collection, Sequence

import msgspec

from ..errors import InvalidConfig, InvalidState, NoSuchContainer
from ..model import ContainerConfig, ContainerRecord, CreateOptions
from ..monitor import alive
from ..parts import Launch, Part
from ..states import State
from ..store import Store
from . import etcfiles
from .checks import check_alias, check_mac
from .networks import Networks
from .ports import check_all, parse_expose, parse_publish
from .types import CONTAINER_PREFIX, NetOptions, PortMapping, Sandbox

MAX_LIST = 64  # --dns, --dns-search, --add-host ... entries a container may give
_DOWN = (State.CONFIGURED, State.STOPPED, State.EXITED)  # states in which no process runs


class NetworkPart(Part):
    name = "network"

    def __init__(self, networks: Networks, containers: Store, owned_roots: Sequence[str] = ()) -> None:
        self.networks = networks
        self._containers = containers
        # A rootfs under these is the daemon's own (an image's): etc files are bound even
        # where it has none (see etcfiles).
        self._owned = [os.path.realpath(r) + os.sep for r in owned_roots]

    # -- create ---------------------------------------------------------------------------------

    async def create(self, opts: CreateOptions, config: ContainerConfig) -> ContainerConfig:
        ports = [m for spec in _listed(opts.ports, "ports") for m in parse_publish(spec)]
        # An earlier part (an image's EXPOSE) may have filled config.net.expose already.
        expose = sorted({*config.net.expose,
                         *(p for spec in _listed(opts.expose, "expose") for p in parse_expose(spec))})
        wants_bridge = bool(ports or opts.publish_all or opts.ip or opts.mac_address
                            or opts.network_aliases)
        # An earlier part may have chosen already: a pod member joins its infra container's.
        mode = config.network or ("bridge" if wants_bridge else self.networks.config.default_mode)
        names: list[str] = []
        if mode.startswith(CONTAINER_PREFIX):
            mode = self._container_mode(mode, opts, wants_bridge)
        elif mode in ("private", "none", "host"):
            if wants_bridge:
                raise InvalidConfig(f"network mode {mode} has no network to publish ports on or to "
                                    "give an address, MAC or alias in: use a bridge network",
                                    field="network")
        else:
            names = [self.networks.get(n).name for n in _network_names(mode)]
            mode = "bridge"
        if opts.publish_all:
            ports += [PortMapping(container_port=int(p.partition("/")[0]), protocol=p.partition("/")[2])
                      for p in expose]
        check_all(ports)
        if ports and names and self.networks.get(names[0]).internal:
            raise InvalidConfig(f"network {names[0]} is internal: no port can be published from it",
                                field="ports")
        net = NetOptions(
            networks=names, ports=ports, expose=expose, ip=opts.ip,
            mac=check_mac(opts.mac_address) if opts.mac_address else "",
            aliases=[check_alias(a) for a in _listed(opts.network_aliases, "network_aliases")],
            dns=[_dns_server(s) for s in _listed(opts.dns, "dns")],
            dns_search=[_search_domain(d) for d in _listed(opts.dns_search, "dns_search")],
            dns_options=[_dns_option(o) for o in _listed(opts.dns_option, "dns_option")],
            add_hosts=[_add_host(h) for h in _listed(opts.add_hosts, "add_hosts")],
        )
        config = msgspec.structs.replace(config, network=mode, net=net)
        if mode == "bridge":
            endpoints = self.networks.plan_endpoints(config.id, names, ip=net.ip, mac=net.mac,
                                                     aliases=net.aliases)
            self.networks.add_endpoints(endpoints)
        return config

    def _container_mode(self, mode: str, opts: CreateOptions, wants_bridge: bool) -> str:
        ref = mode[len(CONTAINER_PREFIX):]
        other = self._containers.find(ref)
        if other.config.network.startswith(CONTAINER_PREFIX):
            # podman joins the namespace's owner too; one level keeps teardown order simple.
            raise InvalidConfig(f"container {other.name} itself joins another container's network; "
                                "join that one instead", field="network")
        if wants_bridge or opts.dns or opts.dns_search or opts.dns_option or opts.add_hosts:
            raise InvalidConfig("a container that joins another's network takes its ports, "
                                "addresses, DNS and hosts from that one", field="network")
        return CONTAINER_PREFIX + other.id

    async def discard(self, config: ContainerConfig, *, volumes: bool = False) -> None:
        await self.networks.forget(config.id)

    # -- prepare / release ------------------------------------------------------------------

    async def prepare(self, rec: ContainerRecord, launch: Launch) -> None:
        mode = rec.config.network
        if mode == "bridge":
            sandbox = await self.networks.open_sandbox(rec, launch.bundle)
            try:
                # Mount sources for the runtime; written with the addresses once attached.
                etcfiles.write(launch.bundle, dict.fromkeys(etcfiles.ETC_FILES, ""))
            except BaseException:
                await self.networks.teardown(rec.id)
                raise
            launch.namespaces["network"] = sandbox.netns
            launch.mounts.extend(self._etc_mounts(rec, launch.bundle))
            # The CNI ADDs run while the runtime creates the container in the namespace,
            # which starts once they are done (a failure is torn down by ``release``).
            launch.gate(lambda: self._attach(rec, sandbox, launch.bundle))
        elif mode.startswith(CONTAINER_PREFIX):
            path, source = self._joined(rec, mode[len(CONTAINER_PREFIX):], launch.bundle)
            self.networks.write_etc(rec, None, launch.bundle)
            launch.namespaces["network"] = path
            launch.mounts.extend(self._etc_mounts(rec, launch.bundle, names=("hostname",)))
            launch.mounts.extend(self._etc_mounts(rec, launch.bundle, names=("hosts", "resolv.conf"),
                                                  source_dir=source))
        else:
            self.networks.write_etc(rec, None, launch.bundle)
            launch.mounts.extend(self._etc_mounts(rec, launch.bundle))

    async def _attach(self, rec: ContainerRecord, sandbox: Sandbox, bundle: str) -> None:
        await self.networks.attach(rec, sandbox)
        self.networks.write_etc(rec, sandbox, bundle)

    def _joined(self, rec: ContainerRecord, other_id: str, bundle: str) -> tuple[str, str]:
        """The namespace to join and the directory of the etc files to share."""
        try:
            other = self._containers.get(other_id)
        except NoSuchContainer:
            raise NoSuchContainer(f"container {rec.name} joins the network of container "
                                  f"{other_id[:12]}, which no longer exists", name=other_id) from None
        sandbox = self.networks.sandbox(other.id)
        if sandbox is not None:
            return sandbox.netns, sandbox.bundle
        if other.state.state not in (State.RUNNING, State.PAUSED, State.CREATED) \
                or not alive(other.state.pid):
            raise InvalidState(f"container {other.name} is not running: container {rec.name} cannot "
                               "join its network namespace", id=other.id, state=other.state.state.value)
        return f"/proc/{other.state.pid}/ns/net", os.path.join(os.path.dirname(bundle), other.id)

    def _etc_mounts(self, rec: ContainerRecord, bundle: str, *,
                    names: tuple[str, ...] = etcfiles.ETC_FILES, source_dir: str | None = None) -> list[dict]:
        rootfs = rec.config.rootfs
        owned = any(os.path.realpath(rootfs).startswith(r) for r in self._owned)
        return etcfiles.mounts(bundle, rootfs, owned=owned, read_only=rec.config.read_only,
                               names=names, source_dir=source_dir)

    async def exited(self, rec: ContainerRecord) -> None:
        # The DEL overlaps the runtime's delete.
        await self._teardown(rec)

    async def release(self, rec: ContainerRecord) -> None:
        await self._teardown(rec)

    async def _teardown(self, rec: ContainerRecord) -> None:
        # Only a bridge container has a namespace of the daemon's to drop first: the scan
        # of every container for one still in it is not made for the others.
        unused = rec.config.network == "bridge" and not self._shared(rec.id)
        await self.networks.teardown(rec.id, unused=unused)

    def _shared(self, cid: str) -> bool:
        """Whether a container that may still run is in this one's network namespace: its
        interfaces must then be deleted while it watches, as before (see Networks.teardown)."""
        mode = CONTAINER_PREFIX + cid
        return any(r.config.network == mode and r.state.state not in _DOWN for r in self._containers.all())

    async def recover(self, records: Sequence[ContainerRecord], alive: Collection[str]) -> None:
        await self.networks.recover([r.id for r in records], alive)


# -- checks of the create options ---------------------------------------------------------------


def _listed(values: list[str], field: str) -> list[str]:
    if len(values) > (4096 if field in ("ports", "expose") else MAX_LIST):
        raise InvalidConfig(f"too many {field} entries ({len(values)})", field=field)
    for v in values:
        if not v or "\0" in v or "\n" in v or len(v) > 255:
            raise InvalidConfig(f"invalid {field} entry {v[:60]!r}", field=field)
    return list(values)


def _network_names(mode: str) -> list[str]:
    names = [n.strip() for n in mode.split(",")]
    if not all(names) or len(names) > 32:
        raise InvalidConfig(f"invalid --network {mode[:80]!r}", field="network")
    return names


def _dns_server(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidConfig(f"--dns {text[:60]!r} is not an IP address", field="dns") from None


def _search_domain(text: str) -> str:
    if text != "." and not etcfiles.check_hostname(text):
        raise InvalidConfig(f"--dns-search {text[:60]!r} is not a domain", field="dns_search")
    return text


def _dns_option(text: str) -> str:
    if any(c.isspace() for c in text) or len(text) > 100:
        raise InvalidConfig(f"--dns-option {text[:60]!r} is not a resolver option", field="dns_option")
    return text


def _add_host(text: str) -> str:
    name, ip = etcfiles.split_add_host(text)
    return f"{name}:{ip}"
