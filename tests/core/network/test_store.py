"""core/network/store.py: networks, endpoints and sandboxes survive a reopen."""

from __future__ import annotations

import pytest

from varpod.core.errors import NetworkExists, NoSuchNetwork
from varpod.core.network.store import NetworkStore
from varpod.core.network.types import Endpoint, Network, PortMapping, Sandbox


def net(name: str, nid: str, at: int) -> Network:
    return Network(name=name, id=nid, interface=f"br-{name}", subnet="10.1.0.0/24", gateway="10.1.0.1",
                   created_at=at)


def test_everything_is_there_after_a_reopen(tmp_path):
    path = str(tmp_path / "network.db")
    s = NetworkStore(path)
    s.add_network(net("b", "bb" * 32, 2))
    s.add_network(net("a", "ab" * 32, 1))
    with pytest.raises(NetworkExists):
        s.add_network(net("a", "cc" * 32, 3))
    for ifname in ("eth10", "eth2", "eth0"):
        s.save_endpoint(Endpoint(container_id="c1", network=ifname, ifname=ifname, attached=True,
                                 result={"ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}]}))
    s.save_sandbox(Sandbox(container_id="c1", netns="/run/x", bundle="/b", ports=[PortMapping(80, 8080)]))
    s.close()
    s = NetworkStore(path)
    assert [n.name for n in s.networks()] == ["a", "b"]  # by creation time
    assert s.find_network("ab").name == "a" and s.find_network("b").name == "b"
    with pytest.raises(NoSuchNetwork):
        s.find_network("zz")
    assert [e.ifname for e in s.endpoints_of("c1")] == ["eth0", "eth2", "eth10"]
    assert s.endpoints_of("c1")[0].address == ("10.1.0.5", 24, "10.1.0.1")
    assert s.sandbox("c1").ports == [PortMapping(80, 8080)]
    assert [e.container_id for e in s.endpoints_on("eth2")] == ["c1"]
    for e in s.endpoints_of("c1"):
        s.delete_endpoint("c1", e.network)
    s.delete_sandbox("c1")
    s.delete_network("a")
    s.close()
    s = NetworkStore(path)
    assert s.containers_with_endpoints() == [] and s.sandboxes() == []
    assert [n.name for n in s.networks()] == ["b"]
    s.close()
