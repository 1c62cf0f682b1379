"""core/network/networks.py: network records, their checks and their CNI chains (no plugin runs here)."""

from __future__ import annotations

import pytest

from varpod.core.errors import InvalidConfig, InvalidNetworkConfig, NetworkExists, SubnetOverlap, Unsupported
from varpod.core.monitor import Monitor
from varpod.core.network.checks import check_mac, check_static_ip
from varpod.core.network.networks import NetworkConfig, Networks

pytestmark = pytest.mark.anyio


@pytest.fixture
async def nets(tmp_path):
    (tmp_path / "root").mkdir()
    n = Networks(NetworkConfig(), root=str(tmp_path / "root"), run_root=str(tmp_path / "run"),
                 monitor=Monitor())
    yield n
    n.close()


async def test_the_default_network_exists_and_bridge_names_it(nets):
    default = nets.get("bridge")
    assert (default.name, default.subnet, default.gateway, default.interface) == \
        ("varpod", "10.87.0.0/16", "10.87.0.1", "varpod0")
    assert not default.dns_enabled  # as podman's default network
    assert nets.get(default.id[:6]) == default


async def test_created_networks_take_free_subnets_and_bridges(nets):
    a = nets.create("a")
    b = nets.create("b", labels={"k": "v"})
    c = nets.create("c", subnet="10.90.2.0/24", gateway="10.90.2.254", internal=True)
    d = nets.create("d")
    assert (a.subnet, a.gateway, b.subnet, d.subnet) == ("10.90.0.0/24", "10.90.0.1", "10.90.1.0/24",
                                                         "10.90.3.0/24")
    assert [n.interface for n in (a, b, c, d)] == ["varpod1", "varpod2", "varpod3", "varpod4"]
    assert c.gateway == "10.90.2.254" and c.internal and b.labels == {"k": "v"} and a.dns_enabled
    with pytest.raises(NetworkExists):
        nets.create("a", subnet="10.99.0.0/24")
    with pytest.raises(SubnetOverlap) as e:
        nets.create("e", subnet="10.90.0.128/25")
    assert (e.value.subnet, e.value.other) == ("10.90.0.128/25", "a")
    await nets.remove("b")
    assert nets.create("f").subnet == "10.90.1.0/24"  # a removed network's subnet is free again


@pytest.mark.parametrize(("kw", "error"), [
    ({"subnet": "10.1.0.0"}, InvalidNetworkConfig),  # a /32
    ({"subnet": "10.1.0.1/16"}, InvalidNetworkConfig),
    ({"subnet": "fd00::/64"}, InvalidNetworkConfig),
    ({"subnet": "127.0.0.0/8"}, InvalidNetworkConfig),
    ({"subnet": "224.0.0.0/24"}, InvalidNetworkConfig),
    ({"subnet": "garbage"}, InvalidNetworkConfig),
    ({"subnet": "10.1.0.0/24", "gateway": "10.1.0.0"}, InvalidNetworkConfig),
    ({"subnet": "10.1.0.0/24", "gateway": "10.1.0.255"}, InvalidNetworkConfig),
    ({"subnet": "10.1.0.0/24", "gateway": "x"}, InvalidNetworkConfig),
    ({"gateway": "10.1.0.1"}, InvalidNetworkConfig),
    ({"driver": "macvlan"}, Unsupported),
])
async def test_bad_network_settings(nets, kw, error):
    with pytest.raises(error):
        nets.create("x", **kw)
    assert [n.name for n in nets.list()] == ["varpod"]


@pytest.mark.parametrize("name", ["", "bridge", "host", "none", "private", "container", "-x", "a/b",
                                  "x" * 254, "é", "a b"])
async def test_bad_network_names(nets, name):
    with pytest.raises(InvalidNetworkConfig):
        nets.create(name)


async def test_the_default_network_cannot_be_removed(nets):
    with pytest.raises(InvalidNetworkConfig):
        await nets.remove("bridge")


async def test_the_chain_of_an_attachment(nets):
    net = nets.create("apps", subnet="10.89.1.0/24")
    chain = nets.conflist(net, ports=True)
    assert [p["type"] for p in chain["plugins"]] == ["bridge", "portmap", "firewall"]
    bridge = chain["plugins"][0]
    assert (chain["name"], chain["cniVersion"]) == ("apps", "1.0.0")
    # The network masquerades as a whole (firewall.py), not the plugin per container.
    assert bridge["bridge"] == net.interface and bridge["ipMasq"] is False and bridge["isGateway"]
    assert bridge["capabilities"] == {"ips": True, "mac": True}
    assert bridge["ipam"]["type"] == "host-local" and bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.89.1.0/24", "gateway": "10.89.1.1"}]]
    internal = nets.conflist(nets.create("in", internal=True), ports=False)
    assert [p["type"] for p in internal["plugins"]] == ["bridge", "firewall"]
    assert not internal["plugins"][0]["ipMasq"] and "routes" not in internal["plugins"][0]["ipam"]


async def test_endpoints_of_a_new_container(nets):
    nets.create("apps", subnet="10.89.1.0/24")
    eps = nets.plan_endpoints("c" * 64, ["varpod", "apps"], ip="", mac="", aliases=["w"])
    assert [(e.network, e.ifname, e.aliases) for e in eps] == [("varpod", "eth0", ["w"]),
                                                               ("apps", "eth1", ["w"])]
    with pytest.raises(InvalidConfig):
        nets.plan_endpoints("c" * 64, ["apps", "apps"], ip="", mac="", aliases=[])
    with pytest.raises(InvalidConfig):
        nets.plan_endpoints("c" * 64, ["varpod", "apps"], ip="10.89.1.9", mac="", aliases=[])
    assert nets.plan_endpoints("c" * 64, ["apps"], ip="10.89.1.9", mac="", aliases=[])[0].static_ip == \
        "10.89.1.9"


async def test_address_checks(nets):
    apps = nets.create("apps", subnet="10.89.1.0/24")
    for bad in ("10.89.1.0", "10.89.1.1", "10.89.1.255", "10.89.2.5", "x", "::1"):
        with pytest.raises(InvalidConfig):
            check_static_ip(apps, bad)
    assert check_mac("02:AB:cd:00:00:01") == "02:ab:cd:00:00:01"
    for bad in ("01:00:5e:00:00:01", "02:00:00:00:00", "02:00:00:00:00:0g", ""):
        with pytest.raises(InvalidConfig):
            check_mac(bad)
