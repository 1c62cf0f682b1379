"""Checks of what users give for networks (names, subnets, addresses), and what the host has."""

from __future__ import annotations

import ipaddress
import os

from ..errors import InvalidConfig, InvalidNetworkConfig
from ..model import NAME_MAX, NAME_RE
from . import etcfiles
from .types import RESERVED_NAMES, Network


def check_network_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or not NAME_RE.match(name):
        raise InvalidNetworkConfig(f"invalid network name {str(name)[:80]!r}: names are 1-{NAME_MAX} "
                                   "characters of [a-zA-Z0-9_.-] and start with a letter or digit",
                                   field="name")
    if name in RESERVED_NAMES:
        raise InvalidNetworkConfig(f"network name {name!r} is reserved for a network mode", field="name")
    return name


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise InvalidNetworkConfig(f"invalid subnet {text[:60]!r}: {e}", field="subnet") from None
    if net.version != 4:
        raise InvalidNetworkConfig(f"subnet {text[:60]!r}: IPv6 networks are not supported",
                                   field="subnet")
    if net.prefixlen > 30:
        raise InvalidNetworkConfig(f"subnet {net} is too small: at most /30", field="subnet")
    if net.is_loopback or net.is_multicast or net.is_link_local:
        raise InvalidNetworkConfig(f"subnet {net} is not usable for containers", field="subnet")
    return net


def parse_gateway(net: ipaddress.IPv4Network, text: str) -> ipaddress.IPv4Address:
    try:
        gw = ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidNetworkConfig(f"invalid gateway {text[:60]!r}", field="gateway") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise InvalidNetworkConfig(f"gateway {gw} is not a host address of subnet {net}",
                                   field="gateway")
    return gw


def check_static_ip(net: Network, text: str) -> str:
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidConfig(f"--ip {text[:60]!r} is not an IPv4 address", field="ip") from None
    subnet = ipaddress.IPv4Network(net.subnet)
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address) \
            or str(ip) == net.gateway:
        raise InvalidConfig(f"--ip {ip} is not a free host address of network {net.name} "
                            f"({net.subnet}, gateway {net.gateway})", field="ip")
    return str(ip)


def check_mac(text: str) -> str:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p)
                                  for p in parts):
        raise InvalidConfig(f"--mac-address {text[:40]!r} is not a MAC address", field="mac_address")
    if int(parts[0], 16) & 1:
        raise InvalidConfig(f"--mac-address {text} is a multicast address", field="mac_address")
    return text.lower()


def check_alias(text: str) -> str:
    if not etcfiles.check_hostname(text):
        raise InvalidConfig(f"network alias {text[:60]!r} is not a valid name", field="aliases")
    return text


def host_routes() -> list[tuple[str, ipaddress.IPv4Network]]:
    """(device, destination) of this network namespace's IPv4 routes, default route aside."""
    out = []
    try:
        with open("/proc/self/net/route") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue
                addr = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
                prefix = bin(mask).count("1")
                out.append((fields[0], ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False)))
    except (OSError, ValueError, IndexError):
        pass
    return out


def interfaces() -> list[str]:
    """This network namespace's interfaces (/sys/class/net shows the one sysfs was mounted in)."""
    try:
        with open("/proc/self/net/dev") as f:
            return [line.split(":", 1)[0].strip() for line in f.readlines()[2:]]
    except OSError:
        return []


def binary(name: str) -> str:
    return next((path for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
                 if os.path.exists(path := os.path.join(d, name))), name)
