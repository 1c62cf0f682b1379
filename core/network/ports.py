"""Published ports: podman's ``-p``/``--expose`` specs, and the reservation of host ports.

Reservation (libpod's ``bindPorts``): before a container's network is set up the
daemon binds every host port it publishes, TCP and UDP, and holds the sockets while
the container runs. Another program already on the port makes the start fail with
``PortInUse`` instead of having its traffic silently captured by the DNAT rules; and
nobody can take the port while the container has it. TCP sockets listen (a bound but
not listening socket does not stop a second bind with SO_REUSEADDR) but are never
accepted on: the DNAT rules send the traffic to the container before it could queue.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable

from ..errors import InvalidPortSpec, PortInUse
from .types import PortMapping

log = logging.getLogger("varpod.network.ports")

PROTOCOLS = ("tcp", "udp")
MAX_PORTS = 1024  # per container: each is a held socket and a firewall rule


def parse_publish(spec: str) -> list[PortMapping]:
    """``[[HOSTIP:]HOSTPORT[-END]:]CTRPORT[-END][/tcp|udp|tcp,udp]`` -> mappings.

    A missing or 0 host port means any free port, chosen at start. Ranges map one to one.
    """
    if not isinstance(spec, str) or not spec or len(spec) > 200 or "\0" in spec:
        raise InvalidPortSpec(f"invalid port spec {str(spec)[:80]!r}", spec=str(spec)[:200])
    body, _, protos = spec.partition("/")
    protocols = _protocols(protos or "tcp", spec)
    if body.startswith("["):
        raise InvalidPortSpec(f"port spec {spec!r}: IPv6 host addresses are not supported "
                              "(varpod's networks are IPv4)", spec=spec)
    fields = body.split(":")
    if len(fields) > 3:
        raise InvalidPortSpec(f"port spec {spec!r} has too many colons", spec=spec)
    host_ip = fields[0] if len(fields) == 3 else ""
    host = fields[-2] if len(fields) >= 2 else ""
    if len(fields) == 2 and not host:
        raise InvalidPortSpec(f"port spec {spec!r} has an empty host port (IP::PORT means any)",
                              spec=spec)
    if host_ip:
        host_ip = _host_ip(host_ip, spec)
    ctr_lo, ctr_hi = _range(fields[-1], spec, allow_zero=False)
    if host:
        host_lo, host_hi = _range(host, spec, allow_zero=True)
        if host_lo == 0 and host_hi != 0:
            raise InvalidPortSpec(f"port spec {spec!r}: a host range cannot start at 0", spec=spec)
        if host_lo and host_hi - host_lo != ctr_hi - ctr_lo:
            raise InvalidPortSpec(f"port spec {spec!r}: the host range and the container range "
                                  "must be of the same length", spec=spec)
    else:
        host_lo = host_hi = 0
    out = []
    for i in range(ctr_hi - ctr_lo + 1):
        for proto in protocols:
            out.append(PortMapping(container_port=ctr_lo + i,
                                   host_port=host_lo + i if host_lo else 0,
                                   protocol=proto, host_ip=host_ip))
    return out


def parse_expose(spec: str) -> list[str]:
    """``PORT[-END][/tcp|udp]`` -> ["80/tcp", ...]."""
    if not isinstance(spec, str) or not spec or len(spec) > 100 or "\0" in spec:
        raise InvalidPortSpec(f"invalid exposed port {str(spec)[:80]!r}", spec=str(spec)[:200])
    body, _, protos = spec.partition("/")
    lo, hi = _range(body, spec, allow_zero=False)
    return [f"{p}/{proto}" for p in range(lo, hi + 1) for proto in _protocols(protos or "tcp", spec)]


def check_all(mappings: list[PortMapping]) -> list[PortMapping]:
    """No host port twice; not too many."""
    if len(mappings) > MAX_PORTS:
        raise InvalidPortSpec(f"{len(mappings)} published ports; at most {MAX_PORTS} per container",
                              spec="")
    seen: set[tuple[str, int, str]] = set()
    for m in mappings:
        if not m.host_port:
            continue
        if m.key() in seen or _overlaps_wildcard(m, seen):
            raise InvalidPortSpec(f"host port {m.host_port}/{m.protocol} is published twice",
                                  spec=m.text())
        seen.add(m.key())
    return mappings


def _overlaps_wildcard(m: PortMapping, seen: set[tuple[str, int, str]]) -> bool:
    ip, port, proto = m.key()
    if ip == "0.0.0.0":
        return any(p == port and pr == proto for _, p, pr in seen)
    return ("0.0.0.0", port, proto) in seen


def _protocols(text: str, spec: str) -> list[str]:
    out = []
    for proto in text.lower().split(","):
        if proto == "sctp":
            raise InvalidPortSpec(f"port spec {spec!r}: SCTP is not supported", spec=spec)
        if proto not in PROTOCOLS:
            raise InvalidPortSpec(f"port spec {spec!r}: unknown protocol {proto!r}", spec=spec)
        if proto not in out:
            out.append(proto)
    return out


def _range(text: str, spec: str, *, allow_zero: bool) -> tuple[int, int]:
    lo_text, dash, hi_text = text.partition("-")
    lo = _port(lo_text, spec, allow_zero)
    hi = _port(hi_text, spec, allow_zero) if dash else lo
    if hi < lo:
        raise InvalidPortSpec(f"port spec {spec!r}: range {text!r} ends before it starts", spec=spec)
    return lo, hi


def _port(text: str, spec: str, allow_zero: bool) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise InvalidPortSpec(f"port spec {spec!r}: {text!r} is not a port number", spec=spec)
    value = int(text)
    if value > 65535 or (value == 0 and not allow_zero):
        raise InvalidPortSpec(f"port spec {spec!r}: port {value} is out of range (1-65535)", spec=spec)
    return value


def _host_ip(text: str, spec: str) -> str:
    try:
        addr = ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidPortSpec(f"port spec {spec!r}: {text!r} is not an IPv4 address", spec=spec) from None
    return "" if addr.is_unspecified else str(addr)


class Reservations:
    """The host ports each container holds; touched only on the event loop (no awaits inside)."""

    def __init__(self) -> None:
        self._held: dict[str, list[socket.socket]] = {}

    def reserve(self, cid: str, mappings: Iterable[PortMapping]) -> list[PortMapping]:
        """Bind every mapping's host port; returns them with the real ports (0 replaced).

        All or nothing: on a conflict whatever this call bound is closed again.
        """
        taken: list[socket.socket] = []
        out: list[PortMapping] = []
        try:
            for m in mappings:
                sock = _bind(m)
                taken.append(sock)
                out.append(PortMapping(container_port=m.container_port,
                                       host_port=sock.getsockname()[1],
                                       protocol=m.protocol, host_ip=m.host_ip))
        except BaseException:
            for sock in taken:
                sock.close()
            raise
        self._held.setdefault(cid, []).extend(taken)
        return out

    def release(self, cid: str) -> None:
        for sock in self._held.pop(cid, []):
            sock.close()

    def holds(self, cid: str) -> bool:
        return bool(self._held.get(cid))

    def close(self) -> None:
        for cid in list(self._held):
            self.release(cid)


def _bind(m: PortMapping) -> socket.socket:
    kind = socket.SOCK_STREAM if m.protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    try:
        if kind == socket.SOCK_STREAM:
            # Lets a restarted container take its port back while old connections linger
            # in TIME_WAIT; a listening holder still conflicts with every other bind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((m.host_ip or "0.0.0.0", m.host_port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1)
    except OSError as e:
        sock.close()
        where = f"{m.host_ip or '0.0.0.0'}:{m.host_port}/{m.protocol}"
        if e.errno == errno.EADDRINUSE:
            raise PortInUse(f"host port {where} is already in use by another program or container",
                            host_ip=m.host_ip, port=m.host_port, protocol=m.protocol) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InvalidPortSpec(f"cannot publish on {where}: {m.host_ip} is not an address of "
                                  "this host", spec=m.text()) from None
        if e.errno == errno.EACCES:
            raise PortInUse(f"host port {where} may not be bound: {e.strerror}",
                            host_ip=m.host_ip, port=m.host_port, protocol=m.protocol) from None
        raise
    return sock
