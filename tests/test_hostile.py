"""Bad input of every kind gets a named error; the daemon keeps serving everyone else."""

from __future__ import annotations

import json
import os
import socket
import struct
import time

import msgspec
import pytest

from varpod.core.errors import (
    InterfaceNotFound,
    InvalidConfig,
    InvalidName,
    InvalidParameter,
    InvalidState,
    MethodNotFound,
    NoSuchContainer,
    NoSuchNetwork,
    RootfsNotFound,
    RuntimeNotFound,
)


def raw_conn(daemon) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(daemon.socket)
    return s


def frame(obj) -> bytes:
    body = msgspec.msgpack.encode(obj)
    return struct.pack(">I", len(body)) + body


def read_frame(s: socket.socket) -> dict:
    head = _recv_exact(s, 4)
    return msgspec.msgpack.decode(_recv_exact(s, struct.unpack(">I", head)[0]))


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def assert_closed(s: socket.socket) -> None:
    s.settimeout(10)
    assert s.recv(1) == b""


def still_serving(daemon) -> None:
    with daemon.client() as c:
        assert c.ping("alive") == "alive"


def test_oversized_frame_refused_before_reading_it(daemon):
    s = raw_conn(daemon)
    s.sendall(struct.pack(">I", 0x7FFFFFFF))  # 2 GiB announced, never sent
    reply = read_frame(s)
    assert reply["error"] == "io.varpod.System.FrameTooLarge"
    assert reply["parameters"]["limit"] == 16 << 20
    assert_closed(s)
    still_serving(daemon)


@pytest.mark.parametrize("garbage", [
    b"\xc1",  # a byte msgpack never uses
    b"\x92\x01\x02",  # an array, not a map
    msgspec.msgpack.encode({"parameters": {}}),  # no method
    msgspec.msgpack.encode({"method": 5}),  # wrong type
    b"\x81\xa6method",  # truncated inside the body
])
def test_malformed_messages_close_that_connection_only(daemon, garbage):
    s = raw_conn(daemon)
    s.sendall(struct.pack(">I", len(garbage)) + garbage)
    reply = read_frame(s)
    assert reply["error"] == "io.varpod.System.ProtocolError"
    assert reply["parameters"]["message"]
    assert_closed(s)
    still_serving(daemon)


def test_json_garbage_closes_with_an_error(daemon):
    s = raw_conn(daemon)
    s.sendall(b"{this is not json}\0")
    body = b""
    while not body.endswith(b"\0"):
        body += s.recv(4096)
    reply = json.loads(body[:-1])
    assert reply["error"] == "io.varpod.System.ProtocolError"
    assert_closed(s)
    still_serving(daemon)


def test_unknown_methods_and_interfaces(daemon, client):
    with pytest.raises(MethodNotFound) as e:
        client.call("io.varpod.Container.Explode", {})
    assert e.value.method == "io.varpod.Container.Explode"
    with pytest.raises(InterfaceNotFound) as e:
        client.call("com.example.Nope.Ping", {})
    assert e.value.interface == "com.example.Nope"
    assert client.ping() == "pong"  # the same connection goes on


@pytest.mark.parametrize(("method", "params", "field"), [
    ("io.varpod.Container.Stop", {"name": "x", "timeout": "soon"}, "timeout"),
    ("io.varpod.Container.Inspect", {"name": 12}, "name"),
    ("io.varpod.Container.Inspect", {}, "name"),
    ("io.varpod.Container.Create", {"spec": {"rootfs": "/", "command": "ls"}}, "spec.command"),
    ("io.varpod.Container.List", {"all": True, "bogus": 1}, "bogus"),
    ("io.varpod.System.Ping", {"ping": ["x"]}, "ping"),
])
def test_wrong_parameter_types_name_the_field(client, method, params, field):
    with pytest.raises(InvalidParameter) as e:
        client.call(method, params)
    assert e.value.parameter == field
    assert client.ping() == "pong"


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 254, "-lead", ".hidden", "a b", "nul\0x", "é"])
def test_hostile_names(client, rootfs, name):
    with pytest.raises(InvalidName):
        client.create(rootfs, ["/bin/true"], name=name)
    assert not client.list(all=True)


@pytest.mark.parametrize(("kw", "error"), [
    ({"rootfs": "/no/such/dir"}, RootfsNotFound),
    ({"rootfs": "/etc/hostname"}, RootfsNotFound),
    ({"runtime": "nonesuch"}, RuntimeNotFound),
    ({"env": ["NOEQUALS"]}, InvalidConfig),
    ({"env": ["=value"]}, InvalidConfig),
    ({"workdir": "relative/dir"}, InvalidConfig),
    ({"restart_policy": "sometimes"}, InvalidConfig),
    ({"restart_policy": "on-failure:-2"}, InvalidConfig),
    ({"stop_signal": "SIGNOPE"}, InvalidConfig),
    ({"network": "bridge0"}, NoSuchNetwork),
    ({"user": "nosuchuser"}, InvalidConfig),
    ({"stop_timeout": -1}, InvalidConfig),
    ({"auto_remove": True, "restart_policy": "always"}, InvalidConfig),
])
def test_bad_configs_are_refused_at_create(client, rootfs, kw, error):
    args = {"rootfs": rootfs, **kw}
    with pytest.raises(error):
        client.create(args.pop("rootfs"), ["/bin/true"], **args)
    assert not client.list(all=True)


def test_empty_command_is_refused(client, rootfs):
    with pytest.raises(InvalidConfig):
        client.create(rootfs, [])


def test_unknown_containers_everywhere(client):
    for op in (client.start, client.stop, client.kill, client.pause, client.unpause, client.inspect,
               client.remove, client.wait, client.sync, client.init, client.restart):
        with pytest.raises(NoSuchContainer):
            op("ghost")


def test_bad_state_answers(client, rootfs):
    c = client.create(rootfs, ["/bin/true"])
    with pytest.raises(InvalidState) as e:
        client.pause(c.id)
    assert e.value.state == "configured" and e.value.id == c.id
    with pytest.raises(InvalidState):
        client.kill(c.id)


def test_idle_and_half_sent_connections_block_nobody(daemon):
    idle = raw_conn(daemon)
    half = raw_conn(daemon)
    half.sendall(struct.pack(">I", 100) + b"\x81")  # announces 100 bytes, sends 1
    partial_prefix = raw_conn(daemon)
    partial_prefix.sendall(b"\x00\x00")
    started = time.monotonic()
    for _ in range(20):
        still_serving(daemon)
    assert time.monotonic() - started < 20
    for s in (idle, half, partial_prefix):
        s.close()


def test_a_client_that_never_reads_cannot_stall_others(daemon):
    greedy = raw_conn(daemon)
    greedy.setblocking(False)
    ping = frame({"method": "io.varpod.System.Ping", "parameters": {"ping": "x" * 1000}})
    sent = 0
    try:
        for _ in range(100_000):
            sent += greedy.send(ping * 16)
    except BlockingIOError:
        pass  # the daemon stopped reading from us: that is the bound working
    assert sent < 200 * 1024 * 1024
    still_serving(daemon)
    greedy.close()
    still_serving(daemon)


def test_varpod_keeps_serving_after_a_storm_of_bad_clients(daemon):
    for garbage in (b"\xff" * 64, b"{", os.urandom(256), struct.pack(">I", 5) + b"\xc1" * 5):
        s = raw_conn(daemon)
        try:
            s.sendall(garbage)
            s.shutdown(socket.SHUT_WR)
            s.recv(65536)
        except OSError:
            pass
        s.close()
    still_serving(daemon)
