"""The same socket speaks standard varlink: the PyPI `varlink` client, which parses our IDL
and checks every reply against it, drives the API as an independent implementation."""

from __future__ import annotations

import pytest
import varlink

from varpod.rpc.interfaces import INTERFACES, idl


@pytest.fixture
def vclient(daemon):
    with varlink.Client(address=f"unix:{daemon.socket}") as c:
        yield c
    daemon.remove_all()


def test_introspection(vclient):
    assert vclient.get_interfaces() == list(INTERFACES)
    for name in INTERFACES:
        iface = vclient.get_interface(name)
        assert iface.name == name
        assert iface.get_description() == idl(name)


def test_ping_and_info(vclient):
    with vclient.open("io.varpod.System") as s:
        assert s.Ping("hello") == {"pong": "hello"}
        info = s.Info()["info"]
        assert info["runtimes"][0]["name"] == "runc"
        assert info["native"] in ("c", "python")


def test_container_lifecycle_over_json(vclient, rootfs):
    with vclient.open("io.varpod.Container") as ct:
        created = ct.Create({"rootfs": rootfs, "command": ["/bin/sh", "-c", "exit 4"], "name": "vl"})
        assert created["name"] == "vl"
        assert ct.Start("vl")["state"] == "running"
        waited = ct.Wait("vl", None)
        assert waited["exit_code"] == 4
        summary = ct.List(True)["containers"]
        assert [c["Names"] for c in summary] == [["vl"]]
        inspected = ct.Inspect("vl")["container"]
        assert inspected["Id"] == created["id"] and inspected["State"]["ExitCode"] == 4
        assert ct.Remove("vl", None, None) == {"id": created["id"]}


def test_limits_and_update_over_json(vclient, rootfs):
    # cpus is the IDL's only float: JSON clients may send it as 0.5 or as 1.
    with vclient.open("io.varpod.Container") as ct:
        ct.Create({"rootfs": rootfs, "command": ["/bin/true"], "name": "vlim", "memory": 64 << 20,
                   "cpus": 0.5, "pids_limit": 10})
        assert ct.Update("vlim", None, 1, -1, 512) == {"id": ct.Inspect("vlim")["container"]["Id"],
                                                       "state": "configured"}
        host = ct.Inspect("vlim")["container"]["HostConfig"]
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"], host["CpuShares"]) == (
            64 << 20, 10**9, 0, 512)
        with pytest.raises(varlink.VarlinkError) as e:
            ct.Update("vlim", -1, None, None, None)
        assert e.value.error() == "io.varpod.Container.InvalidConfig"
        assert e.value.parameters()["field"] == "memory"


def test_errors_carry_qualified_names(vclient):
    with vclient.open("io.varpod.Container") as ct:
        with pytest.raises(varlink.VarlinkError) as e:
            ct.Stop("ghost", None)
        assert e.value.error() == "io.varpod.Container.NoSuchContainer"
        assert e.value.parameters()["name"] == "ghost"


def test_unknown_method_is_the_varlink_error(daemon):
    import json
    import socket

    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.socket)
    s.sendall(json.dumps({"method": "io.varpod.Container.Nope", "parameters": {}}).encode() + b"\0")
    buf = b""
    while not buf.endswith(b"\0"):
        buf += s.recv(4096)
    reply = json.loads(buf[:-1])
    assert reply["error"] == "org.varlink.service.MethodNotFound"
    assert reply["parameters"]["method"] == "io.varpod.Container.Nope"
    s.close()


def test_streaming_events_with_more(vclient, rootfs):
    with vclient.open("io.varpod.Container") as ct:
        ct.Create({"rootfs": rootfs, "command": ["/bin/true"], "name": "vlev"})
    with vclient.open("io.varpod.System") as s:
        seen = [r["event"]["action"] for r in s.Events(0, None, None, False, {"container": "vlev"},
                                                        _more=True) if r.get("event")]
    assert seen == ["create"]
