"""Each container's /etc/hosts, /etc/hostname and /etc/resolv.conf.

Written into the container's bundle and bind-mounted over the rootfs' own. In a rootfs
the user gave (``--rootfs``) a file is bound only where the rootfs already has one: the
runtime would otherwise create the mount point, and varpod never writes into a user's
directory. A rootfs the daemon owns (an image's, under its root) gets all three.
Rewrites after start (a network connected or disconnected) keep the inode, so the
container sees them through its bind mount.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from ..errors import InvalidConfig
from ..model import ContainerConfig
from ..paths import read_in_root, resolve_in_root
from ..spec import hostname
from .dns import SEARCH_DOMAIN

ETC_FILES = ("hostname", "hosts", "resolv.conf")
# podman's fallback when the host has no resolver a container could reach.
FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]
HOST_RESOLV = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"
LOCALHOST = ("127.0.0.1\tlocalhost localhost.localdomain localhost4 localhost4.localdomain4\n"
             "::1\tlocalhost localhost.localdomain localhost6 localhost6.localdomain6\n")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


class Resolver:
    """nameserver, search and options lines of a resolv.conf."""

    def __init__(self, nameservers: list[str], search: list[str], options: list[str]) -> None:
        self.nameservers = nameservers
        self.search = search
        self.options = options

    @classmethod
    def parse(cls, text: str) -> Resolver:
        servers, search, options = [], [], []
        for line in text.splitlines():
            words = line.split("#", 1)[0].split(";", 1)[0].split()
            if not words:
                continue
            if words[0] == "nameserver" and len(words) > 1:
                servers.append(words[1])
            elif words[0] in ("search", "domain"):
                search = words[1:]
            elif words[0] == "options":
                options.extend(words[1:])
        return cls(servers, search, options)

    def text(self) -> str:
        lines = []
        if self.search:
            lines.append("search " + " ".join(self.search))
        lines.extend(f"nameserver {s}" for s in self.nameservers)
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def host_resolver() -> Resolver:
    try:
        with open(HOST_RESOLV, errors="replace") as f:
            return Resolver.parse(f.read(1 << 16))
    except OSError:
        return Resolver([], [], [])


def reachable(servers: list[str]) -> list[str]:
    """Without the host's loopback ones (systemd-resolved's 127.0.0.53): a container's
    loopback is its own."""
    out = []
    for s in servers:
        try:
            if not ipaddress.ip_address(s.partition("%")[0]).is_loopback:
                out.append(s)
        except ValueError:
            continue
    return out


def resolv_conf(*, host_network: bool, aardvark: list[str], dns: list[str], search: list[str],
                options: list[str]) -> str:
    """``aardvark``: the resolvers of the container's DNS-enabled networks (their gateways)."""
    base = host_resolver()
    if dns:
        servers = list(dns)
    elif aardvark:
        servers = list(aardvark)
    elif host_network:
        servers = base.nameservers
    else:
        servers = reachable(base.nameservers) or list(FALLBACK_NAMESERVERS)
    if search == ["."]:
        domains: list[str] = []
    else:
        domains = list(search) if search else list(base.search)
        if aardvark and not dns:
            domains = [SEARCH_DOMAIN, *(d for d in domains if d != SEARCH_DOMAIN)]
    return Resolver(servers, domains, list(options) if options else base.options).text()


def hosts(*, hostname: str, name: str, addresses: list[str], gateway: str, add_hosts: list[str],
          host_network: bool) -> str:
    """``addresses``: the container's own IPs (none: its hostname goes on 127.0.1.1)."""
    extra = "".join(f"{ip}\t{host}\n" for host, ip in (split_add_host(h) for h in add_hosts))
    if host_network:
        try:
            with open(HOST_HOSTS, errors="replace") as f:
                base = f.read(1 << 20)
        except OSError:
            base = LOCALHOST
        return (base if base.endswith("\n") or not base else base + "\n") + extra
    names = hostname if name == hostname else f"{hostname} {name}"
    own = "".join(f"{ip}\t{names}\n" for ip in addresses) if addresses else f"127.0.1.1\t{names}\n"
    host_entry = f"{gateway}\thost.containers.internal host.docker.internal\n" if gateway else ""
    return LOCALHOST + extra + own + host_entry


def split_add_host(entry: str) -> tuple[str, str]:
    """``NAME:IP`` (the IP may be IPv6: ``db:fd00::1``) -> (name, ip), both checked."""
    name, sep, ip = entry.partition(":")
    if not sep or not check_hostname(name):
        raise InvalidConfig(f"--add-host {entry[:80]!r} is not NAME:IP", field="add_hosts")
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        raise InvalidConfig(f"--add-host {entry[:80]!r}: {ip[:60]!r} is not an IP address",
                            field="add_hosts") from None
    return name, ip


def check_hostname(name: str) -> bool:
    return 0 < len(name) <= 253 and all(c in _HOST_CHARS for c in name) and name[0] not in "-."


def texts(config: ContainerConfig, *, addresses: Sequence[str] = (), gateway: str = "",
          aardvark: Sequence[str] = ()) -> dict[str, str]:
    """The three files of a container: ``addresses`` its IPs, ``gateway`` its first network's,
    ``aardvark`` the resolvers of its DNS-enabled networks."""
    net, host = config.net, config.network == "host"
    name = hostname(config)
    return {
        "hostname": f"{name}\n",
        "hosts": hosts(hostname=name, name=config.name, addresses=list(addresses), gateway=gateway,
                       add_hosts=net.add_hosts, host_network=host),
        "resolv.conf": resolv_conf(host_network=host, aardvark=list(aardvark), dns=net.dns,
                                   search=net.dns_search, options=net.dns_options),
    }


def write(bundle: str, files: dict[str, str]) -> None:
    """Write (or rewrite in place, same inode) the etc files in the bundle."""
    for name, text in files.items():
        path = os.path.join(bundle, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            data = text.encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)


def mounts(bundle: str, rootfs: str, *, owned: bool, read_only: bool,
           names: tuple[str, ...] = ETC_FILES, source_dir: str | None = None) -> list[dict]:
    """Bind mounts for the etc files the rootfs can take (see the module's docstring)."""
    out = []
    etc_is_dir = os.path.isdir(resolve_in_root(rootfs, "/etc"))
    for name in names:
        present = read_in_root(rootfs, f"/etc/{name}", limit=1) is not None
        if present or (owned and etc_is_dir):
            out.append({"destination": f"/etc/{name}", "type": "bind",
                        "source": os.path.join(source_dir or bundle, name),
                        "options": ["bind", "ro" if read_only else "rw"]})
    return out
