"""core/network/ports.py: podman's port specs, and host ports held by the daemon (loopback only)."""

from __future__ import annotations

import socket

import pytest

from varpod.core.errors import InvalidPortSpec, PortInUse
from varpod.core.network.ports import Reservations, check_all, parse_expose, parse_publish
from varpod.core.network.types import PortMapping as P


@pytest.mark.parametrize(("spec", "want"), [
    ("80", [P(80)]),
    ("8080:80", [P(80, 8080)]),
    ("0:80", [P(80)]),
    ("8080:80/udp", [P(80, 8080, "udp")]),
    ("8080:80/tcp,udp", [P(80, 8080, "tcp"), P(80, 8080, "udp")]),
    ("127.0.0.1:8080:80", [P(80, 8080, "tcp", "127.0.0.1")]),
    ("127.0.0.1::80", [P(80, 0, "tcp", "127.0.0.1")]),
    ("0.0.0.0:8080:80", [P(80, 8080)]),
    ("8000-8001:80-81", [P(80, 8000), P(81, 8001)]),
    ("80-81", [P(80), P(81)]),
    ("65535:1/UDP", [P(1, 65535, "udp")]),
])
def test_publish_specs(spec, want):
    assert parse_publish(spec) == want


@pytest.mark.parametrize("spec", [
    "", "x", "80:", ":80", "1:2:3:4", "65536", "8080:65536", "70000:80", "8080:0", "-1:80", "80/sctp",
    "80/icmp", "80-79", "8000-8002:80-81", "0-5:80-85", "1.2.3:80:80", "300.0.0.1:80:80", "[::1]:80:80",
    "\uff18\uff10", "80\0", "8" * 300, "80/tcp,", "1e3",
])
def test_bad_publish_specs_are_named_errors(spec):
    with pytest.raises(InvalidPortSpec) as e:
        parse_publish(spec)
    assert e.value.spec == spec[:200]


def test_expose_specs():
    assert parse_expose("80") == ["80/tcp"]
    assert parse_expose("53/udp") == ["53/udp"]
    assert parse_expose("80-81/tcp,udp") == ["80/tcp", "80/udp", "81/tcp", "81/udp"]
    for bad in ("0", "65536", "x/tcp", "80/sctp"):
        with pytest.raises(InvalidPortSpec):
            parse_expose(bad)


def test_a_host_port_published_twice_is_refused():
    check_all([P(80, 8080), P(81, 8080, "udp"), P(82), P(83)])  # other protocol, random ports: fine
    for ports in ([P(80, 8080), P(81, 8080)],
                  [P(80, 8080, host_ip="127.0.0.1"), P(81, 8080)],
                  [P(80, 8080), P(81, 8080, host_ip="127.0.0.1")]):
        with pytest.raises(InvalidPortSpec):
            check_all(ports)
    check_all([P(80, 8080, host_ip="127.0.0.1"), P(81, 8080, host_ip="127.0.0.2")])
    with pytest.raises(InvalidPortSpec):
        check_all([P(80, 1000 + i) for i in range(1025)])


def test_reservation_holds_ports_and_gives_real_ones_for_zero():
    r = Reservations()
    try:
        got = r.reserve("a", [P(80, 0, "tcp", "127.0.0.1"), P(53, 0, "udp", "127.0.0.1")])
        tcp, udp = got[0].host_port, got[1].host_port
        assert tcp > 0 and udp > 0 and got[0].container_port == 80 and got[1].protocol == "udp"
        with pytest.raises(PortInUse) as e:  # another container
            r.reserve("b", [P(80, tcp, "tcp", "127.0.0.1")])
        assert (e.value.port, e.value.protocol, e.value.host_ip) == (tcp, "tcp", "127.0.0.1")
        with pytest.raises(PortInUse):
            r.reserve("b", [P(53, udp, "udp", "127.0.0.1")])
        with socket.socket() as s, pytest.raises(OSError):  # another program
            s.bind(("127.0.0.1", tcp))
        assert r.holds("a") and not r.holds("b")
        r.release("a")
        assert not r.holds("a")
        with socket.socket() as s:
            s.bind(("127.0.0.1", tcp))
    finally:
        r.close()


def test_reservation_is_all_or_nothing():
    r = Reservations()
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    taken = other.getsockname()[1]
    try:
        with pytest.raises(PortInUse):
            r.reserve("a", [P(80, 0, "tcp", "127.0.0.1"), P(81, taken, "tcp", "127.0.0.1")])
        assert not r.holds("a")
    finally:
        other.close()
        r.close()


def test_a_host_address_that_is_not_ours_is_a_bad_spec():
    r = Reservations()
    with pytest.raises(InvalidPortSpec):
        r.reserve("a", [P(80, 0, "tcp", "192.0.2.1")])  # TEST-NET-1: on no interface
    assert not r.holds("a")
