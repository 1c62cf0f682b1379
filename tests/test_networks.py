"""Networks end to end: real CNI plugins, aardvark-dns and runc, a daemon in a namespace of the test's own.

Traffic goes only to loopback and addresses inside that namespace: "the host side" is the
daemon's namespace, entered with nsenter.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import NetNamespace

from varpod.core.errors import (
    AlreadyConnected,
    InvalidConfig,
    InvalidNetworkConfig,
    InvalidPortSpec,
    InvalidState,
    NetworkExists,
    NetworkInUse,
    NoSuchContainer,
    NoSuchNetwork,
    NotConnected,
    PodNamespaceConflict,
    PortInUse,
    SubnetOverlap,
    Unsupported,
)
from varpod.core.network.cni import DEFAULT_PLUGIN_DIRS, plugin_config

# Rules a CNI plugin makes for one container (the shared CNI-* chains stay, as with podman):
# bridge's masquerade chain, portmap's DN/SN chains and DNAT jumps, firewall's per-address rules.
PER_CONTAINER_RULE = re.compile(r"CNI-[0-9a-f]{24}|CNI-(DN|SN)-|\d+\.\d+\.\d+\.\d+/32")


def leftovers(d) -> dict[str, list[str]]:
    """What a container's network could leave behind in the daemon's namespace and dirs."""
    links = d.netns.run("ip", "-o", "link").stdout.splitlines()
    rules = d.netns.run("iptables-save").stdout.splitlines()
    ipam = []
    for net in _listdir(os.path.join(d.root, "ipam")):
        ipam += [f"{net}/{f}" for f in _listdir(os.path.join(d.root, "ipam", net))
                 if f != "lock" and not f.startswith("last_reserved_ip")]
    return {
        "veths": [line for line in links if "veth" in line],
        "rules": [r for r in rules if not r.startswith("#") and PER_CONTAINER_RULE.search(r)],
        "ipam": ipam,
        "netns": _listdir(os.path.join(d.run_root, "netns")),
    }


def assert_clean(d) -> None:
    clean = {"veths": [], "rules": [], "ipam": [], "netns": []}
    left = leftovers(d)
    # A dead container's veths go with its namespace, which the kernel frees in its own time
    # (Networks.teardown): they go down at once, and away within moments.
    deadline = time.monotonic() + 5
    while left != clean and left["veths"] and time.monotonic() < deadline:
        assert all("state DOWN" in v for v in left["veths"]), left["veths"]
        time.sleep(0.05)
        left = leftovers(d)
    assert left == clean
    with d.client() as c:
        kept = {"VARPOD-MASQ-" + n.id[:12] for n in c.network_list()}
    assert set(masquerades(d)) <= kept  # a removed network's masquerade went with it


def nat_rules(d) -> list[str]:
    return d.netns.run("iptables", "-t", "nat", "-S", check=True).stdout.splitlines()


def masquerades(d) -> dict[str, list[str]]:
    """The networks' masquerade chains: chain -> every nat rule naming it (-N, jumps, its own)."""
    out: dict[str, list[str]] = {}
    for rule in nat_rules(d):
        for word in rule.split():
            if word.startswith("VARPOD-MASQ-"):
                out.setdefault(word, []).append(rule)
    return out


def masq_of(net, chain: str) -> list[str]:
    subnet = net.subnets[0].subnet
    return [f"-N {chain}", f"-A POSTROUTING -s {subnet} -j {chain}", f"-A {chain} -d {subnet} -j ACCEPT",
            f"-A {chain} ! -d 224.0.0.0/4 -j MASQUERADE"]


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def fetch(d, url: str, timeout: float = 10.0) -> str:
    """GET from the host side (the daemon's namespace), retrying while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        # (busybox wget's own -T timeout crashes it: subprocess's timeout stands in)
        try:
            done = d.netns.run("busybox", "wget", "-q", "-O", "-", url, timeout=3)
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess([], 1, "", "timed out")
        if done.returncode == 0 or time.monotonic() > deadline:
            return done.stdout if done.returncode == 0 else f"FAILED: {done.stderr.strip()}"
        time.sleep(0.1)


def logs(c, cid: str) -> str:
    return b"".join(r.payload for r in c.logs(cid)).decode(errors="replace")


def run(c, rootfs, command, **kw):
    """Create, start and wait; (id, exit code, output)."""
    cid = c.create(rootfs, command, **kw).id
    c.start(cid)
    waited = c.wait(cid)
    return cid, waited.exit_code, logs(c, cid)


def serve(c, rootfs, name=None, **kw):
    """A busybox httpd serving /etc: /hostname is its /etc/hostname (its own: the rootfs is shared)."""
    cid = c.create(rootfs, ["httpd", "-f", "-p", "80", "-h", "/etc"], name=name, **kw).id
    c.start(cid)
    return cid


@pytest.fixture
def nc(net_daemon):
    with net_daemon.client() as c:
        yield c
        for ctr in c.list(all=True):
            c.remove(ctr.Id, force=True, timeout=0)
        c.network_prune()
    assert_clean(net_daemon)


def varpod(d, *args, input: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "VARPOD_SOCKET": d.socket}
    return subprocess.run([sys.executable, "-m", "varpod.rpc.cli", *args], env=env, input=input,
                          capture_output=True, text=True, timeout=60, check=False)


# -- published ports ------------------------------------------------------------------------------


def test_publish_reaches_httpd_from_the_host_side(nc, net_daemon, rootfs):
    d = net_daemon
    # -p without --network: the default bridge network, as podman does it.
    cid = serve(nc, rootfs, ports=["8080:80"])
    short = cid[:12]
    assert fetch(d, "http://127.0.0.1:8080/hostname") == f"{short}\n"
    info = nc.inspect(cid)
    assert info.HostConfig.NetworkMode == "bridge"
    settings = info.NetworkSettings
    assert [(p.HostIp, p.HostPort) for p in settings.Ports["80/tcp"]] == [("", "8080")]
    # The container's own address from the host side, and the port from the CLI.
    assert settings.IPAddress.startswith("10.87.") and settings.Gateway == "10.87.0.1"
    assert fetch(d, f"http://{settings.IPAddress}:80/hostname") == f"{short}\n"
    assert varpod(d, "port", cid).stdout == "80/tcp -> 0.0.0.0:8080\n"
    assert varpod(d, "port", cid, "80").stdout == "0.0.0.0:8080\n"
    # The daemon holds the host port (reservation): nobody else can take it.
    held = d.netns.run(sys.executable, "-c", "import socket; socket.socket().bind(('0.0.0.0', 8080))")
    assert "Address already in use" in held.stderr


def test_publish_all_udp_and_a_host_address(nc, net_daemon, rootfs):
    d = net_daemon
    cid = serve(nc, rootfs, ports=["127.0.0.1::80", "5353:5353/udp"], expose=["80", "81/tcp"],
                publish_all=True)
    ports = {(p.container_port, p.protocol, p.host_ip): p.host_port for p in nc.port(cid)}
    assert ports[(5353, "udp", "")] == 5353
    random_local = ports[(80, "tcp", "127.0.0.1")]
    random_any = ports[(80, "tcp", "")]
    assert random_local > 1024 and random_any > 1024 and (81, "tcp", "") in ports
    assert fetch(d, f"http://127.0.0.1:{random_local}/hostname") == f"{cid[:12]}\n"
    assert fetch(d, f"http://127.0.0.1:{random_any}/hostname") == f"{cid[:12]}\n"
    udp = d.netns.run("ss", "-lunH").stdout
    assert "0.0.0.0:5353" in udp
    assert nc.inspect(cid).NetworkSettings.Ports["81/tcp"][0].HostPort == str(ports[(81, "tcp", "")])


def test_a_port_in_use_gives_PortInUse_and_leaves_nothing(nc, net_daemon, rootfs):
    d = net_daemon
    first = serve(nc, rootfs, ports=["8081:80"])
    second = nc.create(rootfs, ["/bin/true"], ports=["8081:80"]).id
    with pytest.raises(PortInUse) as e:
        nc.start(second)
    assert e.value.port == 8081 and e.value.protocol == "tcp"
    # Another program's port, not a container's.
    holder = subprocess.Popen([*d.netns.enter(), "busybox", "nc", "-l", "-p", "8082"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(d, 8082)
        third = nc.create(rootfs, ["/bin/true"], ports=["8082:80"]).id
        with pytest.raises(PortInUse):
            nc.start(third)
        assert nc.inspect(third).State.Status == "configured"
    finally:
        holder.kill()
        holder.wait()
    nc.remove(first, force=True, timeout=0)
    assert_clean(d)  # the failed starts took nothing: no veth, address, rule or namespace
    assert nc.ping() == "pong"


def _wait_listening(d, port: int) -> None:
    for _ in range(100):
        if f":{port} " in d.netns.run("ss", "-ltnH").stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


# -- containers on one network -------------------------------------------------------------------------


def test_two_containers_reach_each_other_by_ip_and_by_name(nc, rootfs):
    net = nc.network_create("apps")
    assert net.dns_enabled and net.subnets[0].subnet.endswith("/24")
    srv = serve(nc, rootfs, name="web", network="apps", network_aliases=["www"])
    ip = nc.inspect(srv).NetworkSettings.Networks["apps"].IPAddress
    script = (f"wget -qO- http://{ip}/hostname; wget -qO- http://web/hostname; wget -qO- http://www/hostname;"
              "nslookup web | grep -c Address; cat /etc/resolv.conf")
    _, code, out = run(nc, rootfs, ["/bin/sh", "-c", script], network="apps")
    lines = out.splitlines()
    assert code == 0, out
    assert lines[:3] == [srv[:12]] * 3
    assert f"nameserver {net.subnets[0].gateway}" in lines and "search dns.podman" in lines


def test_connect_and_disconnect_a_running_container(nc, net_daemon, rootfs):
    nc.network_create("front")
    nc.network_create("back", subnet="10.89.7.0/24", gateway="10.89.7.254")
    db = serve(nc, rootfs, name="db", network="back")
    app = nc.create(rootfs, ["sleep", "60"], name="app", network="front").id
    nc.start(app)
    with pytest.raises(NotConnected):
        nc.network_disconnect("back", app)
    nc.network_connect("back", app, ip="10.89.7.20", aliases=["api"])
    with pytest.raises(AlreadyConnected):
        nc.network_connect("back", app)
    eid = nc.exec_create(app, ["/bin/sh", "-c", "ip -o -4 addr show eth1; wget -qO- http://db/hostname; "
                                                "grep 10.89.7.20 /etc/hosts"])
    stream = nc.exec_start(eid, attach=True)
    out = b"".join(data for _, data in stream).decode()
    assert "10.89.7.20/24" in out and f"{db[:12]}\n" in out and "10.89.7.20\t" in out
    nets = nc.inspect(app).NetworkSettings.Networks
    assert set(nets) == {"front", "back"} and nets["back"].IPAddress == "10.89.7.20"
    assert nets["back"].Gateway == "10.89.7.254"
    # The db container finds the new one by its alias.
    eid = nc.exec_create(db, ["nslookup", "api"])
    out = b"".join(data for _, data in nc.exec_start(eid, attach=True)).decode()
    assert "10.89.7.20" in out
    nc.network_disconnect("back", app)
    eid = nc.exec_create(app, ["ls", "/sys/class/net"])
    out = b"".join(data for _, data in nc.exec_start(eid, attach=True)).decode()
    assert out.split() == ["eth0", "lo"]
    with pytest.raises(NetworkInUse):
        nc.network_remove("back")
    removed = nc.network_remove("back", force=True)
    assert removed.containers == [db] and nc.network_exists("back") is False


def exec_out(c, cid: str, command: list[str]) -> tuple[int, str]:
    eid = c.exec_create(cid, command)
    out = b"".join(data for _, data in c.exec_start(eid, attach=True)).decode(errors="replace")
    return c.exec_inspect(eid).ExitCode, out


def test_a_closed_forward_chain_gets_the_firewall_plugins_rules(nc, net_daemon, rootfs):
    d = net_daemon
    nc.network_create("left")
    nc.network_create("right")
    srv = serve(nc, rootfs, network="right")  # made while FORWARD is open: no firewall plugin
    assert not [r for r in leftovers(d)["rules"] if "CNI-FORWARD" in r]
    d.netns.run("iptables", "-P", "FORWARD", "DROP", check=True)
    try:
        tgt = serve(nc, rootfs, network="left")
        ip = nc.inspect(tgt).NetworkSettings.IPAddress
        assert len([r for r in leftovers(d)["rules"] if "CNI-FORWARD" in r]) == 2
        # Between networks traffic is forwarded: the server, without rules of its own, is dropped.
        fetch = ["timeout", "3", "wget", "-qO-", f"http://{ip}/hostname"]
        assert exec_out(nc, srv, fetch)[0] != 0
        nc.network_reload(srv)  # the reload asks again, and gives it the plugin's rules
        assert len([r for r in leftovers(d)["rules"] if "CNI-FORWARD" in r]) == 4
        assert exec_out(nc, srv, fetch) == (0, f"{tgt[:12]}\n")
    finally:
        d.netns.run("iptables", "-P", "FORWARD", "ACCEPT", check=True)


# -- masquerade ---------------------------------------------------------------------------------------

# Answers a GET with the address the request came from.
WHO_ASKS = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("192.0.2.2", 8099), H).serve_forever()
"""


@pytest.fixture
def outside(net_daemon, tmp_path):
    """Another namespace, wired to the daemon's by a veth (192.0.2.1 on the daemon's side,
    192.0.2.2 there) and serving WHO_ASKS: the world beyond the host, which has no route
    back to the containers' subnets."""
    d = net_daemon
    ns = NetNamespace(tmp_path / "outside")
    server = None
    try:
        d.netns.run("ip", "link", "add", "vout", "type", "veth", "peer", "name", "vin", "netns", ns.path,
                    check=True)
        d.netns.run("ip", "addr", "add", "192.0.2.1/24", "dev", "vout", check=True)
        d.netns.run("ip", "link", "set", "vout", "up", check=True)
        ns.run("ip", "addr", "add", "192.0.2.2/24", "dev", "vin", check=True)
        ns.run("ip", "link", "set", "vin", "up", check=True)
        server = subprocess.Popen([*ns.enter(), sys.executable, "-c", WHO_ASKS])
        for _ in range(200):
            if "192.0.2.2:8099" in ns.run("ss", "-ltnH").stdout:
                break
            time.sleep(0.05)
        yield ns
    finally:
        if server is not None:
            server.kill()
            server.wait()
        d.netns.run("ip", "link", "del", "vout")
        ns.destroy()


def test_a_network_masquerades_what_leaves_it_once_for_all_its_containers(nc, net_daemon, outside, rootfs):
    d = net_daemon
    net = nc.network_create("outbound")
    chain = "VARPOD-MASQ-" + net.id[:12]
    assert chain not in masquerades(d)  # made at the first attachment, not before
    serve(nc, rootfs, network="outbound")
    ask = ["wget", "-qO-", "http://192.0.2.2:8099/"]
    # The outside sees the host's address (the only one it could answer), not the container's.
    assert run(nc, rootfs, ask, network="outbound")[1:] == (0, "192.0.2.1")
    assert run(nc, rootfs, ask, network="outbound")[1:] == (0, "192.0.2.1")
    # One chain, one jump, for the network: three containers attached to it so far.
    assert masquerades(d)[chain] == masq_of(net, chain)
    # An internal network has no way out and nothing to masquerade.
    sealed = nc.network_create("sealed", internal=True)
    _, code, _ = run(nc, rootfs, ["timeout", "3", *ask], network="sealed")
    assert code != 0 and "VARPOD-MASQ-" + sealed.id[:12] not in masquerades(d)
    nc.network_remove("outbound", force=True)
    assert chain not in masquerades(d)


def test_an_attachment_runs_no_iptables_while_the_rules_stand_still(nc, net_daemon, rootfs):
    d = net_daemon

    def asked() -> tuple[int, int]:
        text = d.log()
        return text.count("iptables -S FORWARD: exit"), text.count("iptables -t nat -S: exit")

    nc.network_create("still")
    # The first attachment makes the masquerade; the next one checks once more what nf_tables
    # said had changed (that making).
    for _ in range(2):
        nc.remove(run(nc, rootfs, ["/bin/true"], network="still")[0])
    before = asked()
    for _ in range(3):
        nc.remove(run(nc, rootfs, ["/bin/true"], network="still")[0])
    assert asked() == before
    # A change to FORWARD (a rule added and taken away): asked again, once.
    d.netns.run("iptables", "-I", "FORWARD", "-i", "nosuch0", "-j", "DROP", check=True)
    d.netns.run("iptables", "-D", "FORWARD", "-i", "nosuch0", "-j", "DROP", check=True)
    for _ in range(2):
        nc.remove(run(nc, rootfs, ["/bin/true"], network="still")[0])
    assert asked() == (before[0] + 1, before[1])


def test_a_masquerade_outlives_a_killed_daemon_once_and_comes_back_where_it_went(fresh_net_daemon, rootfs):
    d = fresh_net_daemon.start()
    with d.client() as c:
        net = c.network_create("kept")
        cid = serve(c, rootfs, network="kept")
    chain = "VARPOD-MASQ-" + net.id[:12]
    jump = ["-s", net.subnets[0].subnet, "-j", chain]
    before = nat_rules(d)
    assert masquerades(d) == {chain: masq_of(net, chain)}
    d.stop(signal.SIGKILL)
    d.start()
    assert nat_rules(d) == before  # nothing lost, nothing doubled
    # A firewall flush while no daemon runs, and a second jump made by hand: one of each at start.
    d.stop(signal.SIGKILL)
    d.netns.run("iptables", "-t", "nat", "-F", check=True)
    d.start()
    assert nat_rules(d) == before
    d.stop(signal.SIGKILL)
    d.netns.run("iptables", "-t", "nat", "-A", "POSTROUTING", *jump, check=True)
    d.start()
    assert nat_rules(d) == before
    with d.client() as c:
        # Taken away while the daemon runs: back at the next attachment (nf_tables told it) ...
        d.netns.run("iptables", "-t", "nat", "-D", "POSTROUTING", *jump, check=True)
        c.remove(run(c, rootfs, ["/bin/true"], network="kept")[0])
        assert nat_rules(d) == before
        # ... or at a network reload.
        d.netns.run("iptables", "-t", "nat", "-F", chain, check=True)
        c.network_reload(cid)
        assert nat_rules(d) == before
        c.remove(cid, force=True, timeout=0)
        assert nat_rules(d) == before  # the network keeps it while it exists, as its bridge
        c.network_remove("kept")
    assert masquerades(d) == {}
    assert_clean(d)


def _cni(d, command: str, conflist: dict, cid: str, netns: str, result: dict | None) -> dict | None:
    """Run a chain's plugins by hand in the daemon's namespace, as the CNI protocol says."""
    plugins = conflist["plugins"] if command == "ADD" else reversed(conflist["plugins"])
    plugin_dir = next(p for p in DEFAULT_PLUGIN_DIRS if os.path.isdir(p))
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_PATH": plugin_dir}
    for plugin in plugins:
        conf = plugin_config(conflist, plugin, {}, result)
        done = subprocess.run([*d.netns.enter(), os.path.join(plugin_dir, plugin["type"])], env=env,
                              input=json.dumps(conf), capture_output=True, text=True, check=True)
        if command == "ADD":
            result = json.loads(done.stdout)
    return result


def test_an_endpoint_with_the_plugins_own_masquerade_is_still_torn_down(fresh_net_daemon, rootfs):
    """A container started by an older varpod: its saved conflist has the bridge plugin
    masquerade its address (ipMasq), and its DEL must take that away."""
    d = fresh_net_daemon.start()
    with d.client() as c:
        net = c.network_create("older")
        cid = serve(c, rootfs, network="older")
    d.stop(signal.SIGKILL)
    db = sqlite3.connect(os.path.join(d.root, "network.db"))
    [(record,)] = db.execute("SELECT record FROM endpoints WHERE container_id = ?", (cid,)).fetchall()
    ep = json.loads(record)
    netns = os.path.join(d.run_root, "netns", cid)
    # Its attachment made again as the older daemon made it.
    _cni(d, "DEL", ep["conflist"], cid, netns, ep["result"])
    ep["conflist"]["plugins"][0]["ipMasq"] = True
    ep["result"] = _cni(d, "ADD", ep["conflist"], cid, netns, None)
    db.execute("UPDATE endpoints SET record = ? WHERE container_id = ?", (json.dumps(ep).encode(), cid))
    db.commit()
    db.close()
    own = [r for r in leftovers(d)["rules"] if "MASQUERADE" in r]
    assert len(own) == 1, leftovers(d)["rules"]
    d.start()
    with d.client() as c:
        ip = ep["result"]["ips"][0]["address"].split("/")[0]
        assert c.inspect(cid).NetworkSettings.IPAddress == ip
        c.remove(cid, force=True, timeout=0)
        assert leftovers(d)["rules"] == []  # its own chain went with it
        chain = "VARPOD-MASQ-" + net.id[:12]
        assert masquerades(d) == {chain: masq_of(net, chain)}  # the network's stays
        c.network_remove("older")
    assert_clean(d)


# -- reload -------------------------------------------------------------------------------------------


def test_network_reload_restores_deleted_rules(nc, net_daemon, rootfs):
    d = net_daemon
    cid = serve(nc, rootfs, ports=["8083:80"])
    assert fetch(d, "http://127.0.0.1:8083/hostname") == f"{cid[:12]}\n"
    ip = nc.inspect(cid).NetworkSettings.IPAddress
    # What a firewall reload does to the container's rules.
    d.netns.run("iptables", "-t", "nat", "-F", "CNI-HOSTPORT-DNAT", check=True)
    assert fetch(d, "http://127.0.0.1:8083/hostname", timeout=0.5).startswith("FAILED")
    assert nc.network_reload(cid) == [cid]
    assert fetch(d, "http://127.0.0.1:8083/hostname") == f"{cid[:12]}\n"
    assert nc.inspect(cid).NetworkSettings.IPAddress == ip  # same address after the reload
    stopped = nc.create(rootfs, ["/bin/true"], network="bridge").id
    with pytest.raises(InvalidState):
        nc.network_reload(stopped)
    assert varpod(d, "network", "reload", "--all").stdout.split() == [cid]


# -- modes, addresses and etc files -------------------------------------------------------------------


def test_static_ip_mac_hosts_and_resolver_options(nc, rootfs):
    nc.network_create("fixed", subnet="10.89.9.0/24", disable_dns=True)
    # The CNI ADD runs while runc creates the container: eth0, its address and the etc
    # files are there when runc writes the sysctls and starts the process.
    script = ("ip -o -4 addr show eth0; cat /sys/class/net/eth0/address; cat /etc/hosts; "
              "cat /etc/resolv.conf; echo arp_ignore=$(cat /proc/sys/net/ipv4/conf/eth0/arp_ignore); "
              "hostname")
    _, code, out = run(nc, rootfs, ["/bin/sh", "-c", script], network="fixed", ip="10.89.9.77",
                         mac_address="02:42:0a:59:09:4d", hostname="box", name="fixedbox",
                         add_hosts=["db.local:10.1.2.3"], dns=["10.0.0.53"], dns_search=["corp.example"],
                         dns_option=["ndots:2"], sysctls={"net.ipv4.conf.eth0.arp_ignore": "2"})
    assert code == 0, out
    assert "arp_ignore=2\n" in out
    assert "10.89.9.77/24" in out and "02:42:0a:59:09:4d" in out
    assert "10.1.2.3\tdb.local\n" in out and "10.89.9.77\tbox fixedbox\n" in out
    assert "10.89.9.1\thost.containers.internal" in out
    assert "search corp.example\nnameserver 10.0.0.53\noptions ndots:2\n" in out
    assert out.rstrip().endswith("box")


def test_internal_network_has_no_route_out_and_publishes_nothing(nc, rootfs):
    nc.network_create("inner", internal=True)
    _, code, out = run(nc, rootfs, ["ip", "route"], network="inner")
    assert code == 0 and "default" not in out and "dev eth0" in out
    with pytest.raises(InvalidConfig):
        nc.create(rootfs, ["/bin/true"], network="inner", ports=["8084:80"])


def test_container_mode_shares_the_other_ones_network(nc, rootfs):
    owner = serve(nc, rootfs, network="bridge")
    ip = nc.inspect(owner).NetworkSettings.IPAddress
    _, code, out = run(nc, rootfs, ["/bin/sh", "-c", "ip -o -4 addr show eth0; wget -qO- http://127.0.0.1/hostname"],
                       network=f"container:{owner[:12]}")
    assert code == 0 and f"{ip}/16" in out and out.endswith(f"{owner[:12]}\n")
    stopped = nc.create(rootfs, ["/bin/true"]).id
    joiner = nc.create(rootfs, ["/bin/true"], network=f"container:{stopped}").id
    with pytest.raises(InvalidState):
        nc.start(joiner)


def test_ps_filters_and_shows_networks(nc, net_daemon, rootfs):
    nc.network_create("psnet")
    on_it = nc.create(rootfs, ["/bin/true"], network="psnet", name="on-psnet").id
    nc.create(rootfs, ["/bin/true"], name="off-psnet")
    r = varpod(net_daemon, "ps", "-a", "--filter", "network=psnet", "--format", "{{.Names}} {{.Networks}}")
    assert r.stdout == "on-psnet psnet\n", r.stderr
    assert [c.Networks for c in nc.list(all=True) if c.Id == on_it] == [["psnet"]]


def test_a_pods_published_port_reaches_a_member_that_shares_its_network(nc, net_daemon, rootfs):
    d = net_daemon
    nc.pod_create("webpod", publish=["8090:80"])  # shares ipc, net, uts: podman's default
    try:
        serve(nc, rootfs, pod="webpod")
        # The pod's port is its infra container's; the member serves in the infra's namespace.
        assert fetch(d, "http://127.0.0.1:8090/hostname") == "webpod\n"
        infra = nc.inspect(nc.pod_inspect("webpod").InfraContainerID)
        assert infra.HostConfig.NetworkMode == "bridge"
        assert [p.HostPort for p in infra.NetworkSettings.Ports["80/tcp"]] == ["8090"]
        ip = infra.NetworkSettings.IPAddress
        _, code, out = run(nc, rootfs, ["/bin/sh", "-c", "ip -o -4 addr show eth0; "
                                        "wget -qO- http://127.0.0.1/hostname"], pod="webpod")
        assert code == 0 and f"{ip}/16" in out and out.endswith("webpod\n")
        with pytest.raises(PodNamespaceConflict, match="-p"):
            nc.create(rootfs, ["/bin/true"], pod="webpod", ports=["8091:80"])
    finally:
        nc.pod_remove("webpod", force=True, timeout=0)
    assert fetch(d, "http://127.0.0.1:8090/hostname", timeout=0.5).startswith("FAILED")


def test_private_and_none_have_loopback_only_and_etc_files(nc, rootfs):
    for mode in (None, "none"):
        _, code, out = run(nc, rootfs, ["/bin/sh", "-c", "ls /sys/class/net; cat /etc/hosts"],
                           network=mode, hostname="solo", add_hosts=["x:10.9.9.9"])
        assert code == 0 and out.split()[0] == "lo" and "127.0.1.1\tsolo" in out and "10.9.9.9\tx" in out


def test_a_stopped_and_restarted_container_gets_its_network_back(nc, net_daemon, rootfs):
    d = net_daemon
    cid = serve(nc, rootfs, ports=["8085:80"])
    assert fetch(d, "http://127.0.0.1:8085/hostname") == f"{cid[:12]}\n"
    nc.stop(cid, timeout=0)
    assert leftovers(d)["netns"] == []
    nc.start(cid)
    assert fetch(d, "http://127.0.0.1:8085/hostname") == f"{cid[:12]}\n"
    nc.restart(cid, timeout=0)
    assert fetch(d, "http://127.0.0.1:8085/hostname") == f"{cid[:12]}\n"


# -- hostile input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "error"), [
    ({"network": "nosuchnet"}, NoSuchNetwork),
    ({"ports": ["80:80:80:80"]}, InvalidPortSpec),
    ({"ports": ["70000:80"]}, InvalidPortSpec),
    ({"ports": ["8080:0"]}, InvalidPortSpec),
    ({"ports": ["8080:80/sctp"]}, InvalidPortSpec),
    ({"ports": ["8080:80/icmp"]}, InvalidPortSpec),
    ({"ports": ["8000-8002:80-81"]}, InvalidPortSpec),
    ({"ports": ["x:80"]}, InvalidPortSpec),
    ({"ports": ["300.1.1.1:80:80"]}, InvalidPortSpec),
    ({"ports": ["[::1]:80:80"]}, InvalidPortSpec),
    ({"ports": ["8080:80", "8080:81"]}, InvalidPortSpec),
    ({"ports": ["8080:80"], "network": "host"}, InvalidConfig),
    ({"ports": ["8080:80"], "network": "none"}, InvalidConfig),
    ({"ip": "10.87.0.1"}, InvalidConfig),  # the gateway
    ({"ip": "192.168.1.5"}, InvalidConfig),
    ({"ip": "nope"}, InvalidConfig),
    ({"mac_address": "01:00:5e:00:00:01"}, InvalidConfig),
    ({"mac_address": "zz"}, InvalidConfig),
    ({"dns": ["not-an-ip"]}, InvalidConfig),
    ({"add_hosts": ["noip"]}, InvalidConfig),
    ({"add_hosts": ["h:999.1.1.1"]}, InvalidConfig),
    ({"network": "container:nosuch"}, NoSuchContainer),
    ({"expose": ["99999"], "publish_all": True}, InvalidPortSpec),
])
def test_bad_network_options_are_refused_at_create(nc, rootfs, kw, error):
    with pytest.raises(error) as e:
        nc.create(rootfs, ["/bin/true"], **kw)
    assert type(e.value).__name__ != "InternalError"
    assert nc.list(all=True) == [] and nc.ping() == "pong"


@pytest.mark.parametrize(("kw", "error"), [
    ({"name": "dup"}, NetworkExists),
    ({"name": "x", "subnet": "10.87.3.0/24"}, SubnetOverlap),  # inside the default network's
    ({"name": "x", "subnet": "10.95.0.0/16"}, SubnetOverlap),  # around "dup"'s
    ({"name": "x", "subnet": "10.96.0.1/24"}, InvalidNetworkConfig),  # not a network address
    ({"name": "x", "subnet": "fd00::/64"}, InvalidNetworkConfig),
    ({"name": "x", "subnet": "10.96.0.0/31"}, InvalidNetworkConfig),
    ({"name": "x", "subnet": "10.96.0.0/24", "gateway": "10.97.0.1"}, InvalidNetworkConfig),
    ({"name": "x", "gateway": "10.97.0.1"}, InvalidNetworkConfig),
    ({"name": "bridge"}, InvalidNetworkConfig),
    ({"name": "../etc"}, InvalidNetworkConfig),
    ({"name": "x", "driver": "macvlan"}, Unsupported),
    ({"name": "aardvark.pid"}, InvalidNetworkConfig),
])
def test_bad_networks_are_refused(nc, kw, error):
    nc.network_create("dup", subnet="10.95.1.0/24")
    with pytest.raises(error) as e:
        nc.network_create(**kw)
    assert type(e.value).__name__ not in ("InternalError", "VarpodError")
    assert [n.name for n in nc.network_list()] == ["varpod", "dup"]
    with pytest.raises(NoSuchNetwork):
        nc.network_inspect("nosuchnet")
    with pytest.raises(NoSuchNetwork):
        nc.network_remove("nosuchnet")
    with pytest.raises(InvalidNetworkConfig):
        nc.network_remove("bridge")  # the default network stays


# -- nothing left behind ----------------------------------------------------------------------------------


def test_a_failed_start_leaves_nothing(nc, net_daemon, rootfs):
    nc.network_create("fails")
    # The runtime fails after the network was set up: no such executable.
    cid = nc.create(rootfs, ["/no/such/binary"], network="fails", ports=["8086:80"]).id
    with pytest.raises(Exception, match=r"no such file|not found"):
        nc.start(cid)
    assert_clean(net_daemon)
    # A static address already taken: CNI ADD itself fails, with host-local's own words.
    first = serve(nc, rootfs, network="fails", ip=_free_ip(nc, "fails"))
    clash = nc.create(rootfs, ["/bin/true"], network="fails",
                      ip=nc.inspect(first).NetworkSettings.IPAddress).id
    with pytest.raises(Exception, match=r"host-local|requested IP"):
        nc.start(clash)
    nc.remove(first, force=True, timeout=0)
    assert_clean(net_daemon)


def test_a_dead_containers_network_goes_while_the_runtime_deletes_it(fresh_net_daemon, tmp_path,
                                                                      rootfs):
    """The CNI DEL of an exited container overlaps the runtime's delete: a runtime whose
    delete waits for the container's network namespace to go sees it go."""
    seen = tmp_path / "seen"
    netns_dir = os.path.join(fresh_net_daemon.run_root, "netns")
    fresh_net_daemon.wrap_runtime("slow", f"""case " $* " in *" json delete "*)
    for cid; do :; done
    for i in $(seq 100); do [ -e {netns_dir}/$cid ] || break; sleep 0.05; done
    if [ -e {netns_dir}/$cid ]; then echo waited >> {seen}; else echo gone >> {seen}; fi;;
esac""")
    d = fresh_net_daemon.start()
    with d.client() as c:
        cid, code, _ = run(c, rootfs, ["/bin/true"], network="bridge")
        deadline = time.monotonic() + 30
        while not seen.exists() and time.monotonic() < deadline:  # the exit's clean-up
            time.sleep(0.05)
        assert code == 0 and seen.read_text() == "gone\n"
        c.remove(cid)
    assert_clean(d)


def wrap_plugins(d, directory, before: dict[str, str]) -> None:
    """Before start: the daemon's CNI plugins become shell scripts in ``directory`` that run
    ``before[plugin]`` (it sees the plugin's environment) and then the real plugin."""
    directory.mkdir()
    for plugin in ("bridge", "host-local", "portmap", "firewall"):
        w = directory / plugin
        w.write_text(f"#!/bin/sh\n{before.get(plugin, '')}\nexec /usr/lib/cni/{plugin}\n")
        w.chmod(0o755)
    config = directory / "varpod.toml"
    config.write_text(f'[network]\nplugin_dirs = ["{directory}"]\n')
    d.config = str(config)


def test_a_dead_containers_namespace_goes_first_unless_another_container_is_in_it(fresh_net_daemon,
                                                                               tmp_path, rootfs):
    """A dead container's host-side veth goes down and its namespace away before the DELs,
    which run without one (the kernel deletes the veth); a container that joined its
    network keeps it only until its owner is removed, which DELs with the namespace."""
    d = fresh_net_daemon
    calls = tmp_path / "calls"
    wrap_plugins(d, tmp_path / "plugins", {"bridge": f"""if [ "$CNI_COMMAND" = DEL ]; then
    echo "DEL [$CNI_NETNS] veths up: $(ip -o link show type veth up | grep -c veth)" >> {calls}
fi"""})
    d.start()
    with d.client() as c:
        cid, code, _ = run(c, rootfs, ["/bin/true"], network="bridge", ports=["8088:80"])
        c.remove(cid)
        assert code == 0 and calls.read_text() == "DEL [] veths up: 0\n"
        assert_clean(d)
        calls.unlink()
        owner = serve(c, rootfs, network="bridge")
        joiner = c.create(rootfs, ["sleep", "60"], network=f"container:{owner}").id
        c.start(joiner)
        c.remove(owner, force=True, timeout=0)
        netns = os.path.join(d.run_root, "netns", owner)
        assert calls.read_text() == f"DEL [{netns}] veths up: 1\n"
        assert exec_out(c, joiner, ["cat", "/proc/net/dev"])[1].count("eth0") == 0
        c.remove(joiner, force=True, timeout=0)
    assert_clean(d)


def test_a_daemon_killed_while_runc_waits_for_the_network_fails_that_start_cleanly(fresh_net_daemon,
                                                                                 tmp_path, rootfs):
    """runc waits at a gate for the CNI ADD it runs beside: when the daemon dies first the
    gate fails the create, so the container never runs without its network, and the next
    daemon collects what the ADD did."""
    d = fresh_net_daemon
    adding, added = tmp_path / "adding", tmp_path / "added"
    wrap_plugins(d, tmp_path / "plugins", {"bridge": f"""if [ "$CNI_COMMAND" = ADD ] && [ ! -e {added} ]; then
    touch {adding}; sleep 1; /usr/lib/cni/bridge; rc=$?; touch {added}; exit $rc
fi"""})
    d.start()
    with d.client() as c:
        cid = c.create(rootfs, ["sleep", "60"], network="bridge", name="gated").id
    starting = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "start", cid],
                                env={**os.environ, "VARPOD_SOCKET": d.socket},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not adding.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert adding.exists()
    d.stop(signal.SIGKILL)
    assert starting.wait(20) != 0
    deadline = time.monotonic() + 20
    while not added.exists() and time.monotonic() < deadline:  # the orphaned ADD finishes
        time.sleep(0.02)
    runc_root = os.path.join(d.run_root, "runtime", "runc")
    listed = subprocess.run(["runc", "--root", runc_root, "list", "-q"], capture_output=True, text=True)
    assert cid not in listed.stdout  # the gate failed runc's create, which cleaned up
    d.start()
    with d.client() as c:
        assert c.inspect(cid).State.Status != "running"
        assert leftovers(d)["ipam"] == []
        c.start(cid)
        ip = c.inspect(cid).NetworkSettings.IPAddress
        assert ip and exec_out(c, cid, ["ip", "-o", "-4", "addr", "show", "eth0"])[1].count(ip) == 1
        c.remove(cid, force=True, timeout=0)
    assert_clean(d)


def _free_ip(c, net: str) -> str:
    subnet = c.network_inspect(net).subnets[0].subnet
    return subnet.rsplit(".", 1)[0] + ".200"


def test_nothing_leaks_after_rm_and_a_daemon_killed_mid_life(fresh_net_daemon, rootfs):
    d = fresh_net_daemon.start()
    with d.client() as c:
        c.network_create("survivors")
        kept = serve(c, rootfs, network="survivors", ports=["8087:80"], name="kept")
        doomed = serve(c, rootfs, network="survivors", name="doomed")
        ran = run(c, rootfs, ["/bin/true"], network="survivors")[0]
        c.remove(ran)
        c.wait(doomed, ["running"])
    fetch(d, "http://127.0.0.1:8087/hostname")
    d.stop(signal.SIGKILL)
    # While no daemon runs: one container dies, the other keeps serving.
    pid = json.loads(subprocess.run(["runc", "--root", os.path.join(d.run_root, "runtime", "runc"),
                                     "state", doomed], capture_output=True, text=True).stdout)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert fetch(d, "http://127.0.0.1:8087/hostname") == f"{kept[:12]}\n"
    d.start()
    with d.client() as c:
        assert c.inspect(doomed).State.Status == "exited"
        # The dead one's address, rules and namespace are collected; the live one keeps its
        # port (reserved again) and its name.
        left = leftovers(d)
        assert left["netns"] == [kept] and len(left["ipam"]) == 1 and len(left["veths"]) == 1
        with pytest.raises(PortInUse):
            c.start(c.create(rootfs, ["/bin/true"], ports=["8087:80"]).id)
        _, code, out = run(c, rootfs, ["wget", "-qO-", "http://kept/hostname"], network="survivors")
        assert (code, out) == (0, f"{kept[:12]}\n")
        for ctr in c.list(all=True):
            c.remove(ctr.Id, force=True, timeout=0)
        assert c.network_prune() == ["survivors"]
    assert_clean(d)
    assert d.netns.run("ip", "-o", "link", "show", "type", "bridge").stdout.count("varpod1") == 0


# -- the command line ---------------------------------------------------------------------------------


def test_the_network_commands(nc, net_daemon, rootfs):
    d = net_daemon
    made = varpod(d, "network", "create", "--subnet", "10.89.1.0/24", "--label", "team=a", "web")
    assert made.stdout == "web\n"
    table = varpod(d, "network", "ls").stdout.splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER"]
    assert [row.split()[1:] for row in table[1:]] == [["varpod", "bridge"], ["web", "bridge"]]
    assert varpod(d, "network", "ls", "-q", "--filter", "label=team=a").stdout == "web\n"
    listed = json.loads(varpod(d, "network", "ls", "--format", "json").stdout)
    shown = json.loads(varpod(d, "network", "inspect", "web").stdout)
    assert listed[1] == shown[0]
    assert shown[0]["subnets"] == [{"subnet": "10.89.1.0/24", "gateway": "10.89.1.1"}]
    assert (varpod(d, "network", "exists", "web").returncode,
            varpod(d, "network", "exists", "nope").returncode) == (0, 1)
    dup = varpod(d, "network", "create", "--subnet", "10.89.1.128/25", "other")
    assert dup.returncode == 125 and "overlaps network web" in dup.stderr
    cid = varpod(d, "run", "-d", "--network", "web", "-p", "127.0.0.1:8088:80", "--rootfs", rootfs,
                 "httpd", "-f", "-p", "80", "-h", "/etc").stdout.strip()
    assert fetch(d, "http://127.0.0.1:8088/hostname") == f"{cid[:12]}\n"
    assert varpod(d, "port", cid).stdout == "80/tcp -> 127.0.0.1:8088\n"
    ps = json.loads(varpod(d, "ps", "--format", "json").stdout)
    assert ps[0]["Ports"] == [{"host_ip": "127.0.0.1", "container_port": 80, "host_port": 8088, "range": 1,
                               "protocol": "tcp"}]
    bad = varpod(d, "run", "--rm", "-p", "99999:80", "--rootfs", rootfs, "true")
    assert bad.returncode == 125 and "out of range" in bad.stderr
    in_use = varpod(d, "network", "rm", "web")
    assert in_use.returncode == 125 and "used by 1 container" in in_use.stderr
    assert varpod(d, "network", "rm", "-f", "web").stdout == "web\n"
    varpod(d, "network", "create", "spare")
    assert varpod(d, "network", "prune", input="n\n").stdout.endswith("[y/N] ")
    assert varpod(d, "network", "prune", "-f").stdout == "spare\n"
