"""core/network/etcfiles.py: /etc/hosts, /etc/hostname, /etc/resolv.conf and their mounts."""

from __future__ import annotations

import os

import pytest

from varpod.core.errors import InvalidConfig
from varpod.core.model import ContainerConfig
from varpod.core.network import etcfiles
from varpod.core.network.types import NetOptions


@pytest.fixture
def host_resolv(tmp_path, monkeypatch):
    path = tmp_path / "resolv.conf"
    monkeypatch.setattr(etcfiles, "HOST_RESOLV", str(path))
    return path


def test_the_host_resolver_is_parsed(host_resolv):
    host_resolv.write_text("# comment\nnameserver 10.0.0.2\nnameserver 127.0.0.53 ; x\n"
                           "search a.example b.example\noptions edns0 trust-ad\n")
    r = etcfiles.host_resolver()
    assert (r.nameservers, r.search, r.options) == (["10.0.0.2", "127.0.0.53"], ["a.example", "b.example"],
                                                     ["edns0", "trust-ad"])


def test_resolv_conf_of_each_kind_of_container(host_resolv):
    host_resolv.write_text("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp\noptions edns0\n")
    kw = {"dns": [], "search": [], "options": []}
    # A bridge container cannot reach the host's loopback resolver.
    assert etcfiles.resolv_conf(host_network=False, aardvark=[], **kw) == \
        "search corp\nnameserver 10.0.0.2\noptions edns0\n"
    assert etcfiles.resolv_conf(host_network=True, aardvark=[], **kw) == \
        "search corp\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"
    # On a DNS-enabled network: its aardvark-dns, which forwards the rest to the host's.
    assert etcfiles.resolv_conf(host_network=False, aardvark=["10.90.0.1"], **kw) == \
        "search dns.podman corp\nnameserver 10.90.0.1\noptions edns0\n"
    assert etcfiles.resolv_conf(host_network=False, aardvark=["10.90.0.1"], dns=["1.1.1.1"],
                                search=["."], options=["ndots:1"]) == "nameserver 1.1.1.1\noptions ndots:1\n"
    host_resolv.write_text("nameserver 127.0.0.1\n")
    assert etcfiles.resolv_conf(host_network=False, aardvark=[], **kw) == \
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_hosts_of_each_kind_of_container(tmp_path, monkeypatch):
    bridge = etcfiles.hosts(hostname="abc", name="web", addresses=["10.87.0.5"], gateway="10.87.0.1",
                            add_hosts=["db:10.1.1.1"], host_network=False)
    assert bridge == (etcfiles.LOCALHOST + "10.1.1.1\tdb\n10.87.0.5\tabc web\n"
                      "10.87.0.1\thost.containers.internal host.docker.internal\n")
    private = etcfiles.hosts(hostname="box", name="box", addresses=[], gateway="", add_hosts=[],
                             host_network=False)
    assert private.endswith("127.0.1.1\tbox\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.9 nas")
    monkeypatch.setattr(etcfiles, "HOST_HOSTS", str(hosts))
    assert etcfiles.hosts(hostname="h", name="n", addresses=[], gateway="", add_hosts=["x:::1"],
                          host_network=True) == "127.0.0.1 localhost\n10.0.0.9 nas\n::1\tx\n"


@pytest.mark.parametrize(("entry", "want"), [("db:10.0.0.1", ("db", "10.0.0.1")),
                                             ("v6.host:fd00::1", ("v6.host", "fd00::1"))])
def test_add_host_entries(entry, want):
    assert etcfiles.split_add_host(entry) == want


@pytest.mark.parametrize("entry", ["db", "db:", ":10.0.0.1", "d b:10.0.0.1", "db:host-gateway", "-x:1.2.3.4",
                                   "db:10.0.0.300"])
def test_bad_add_host_entries(entry):
    with pytest.raises(InvalidConfig):
        etcfiles.split_add_host(entry)


def test_texts_of_a_config():
    config = ContainerConfig(id="c" * 64, name="web", rootfs="/", command=["x"], hostname="h1",
                             net=NetOptions(add_hosts=["a:10.0.0.1"], dns=["9.9.9.9"]))
    files = etcfiles.texts(config, addresses=["10.87.0.2"], gateway="10.87.0.1")
    assert files["hostname"] == "h1\n"
    assert "10.87.0.2\th1 web\n" in files["hosts"] and "10.0.0.1\ta\n" in files["hosts"]
    assert "nameserver 9.9.9.9\n" in files["resolv.conf"]


def test_rewrites_keep_the_inode_a_bind_mount_shows(tmp_path):
    etcfiles.write(str(tmp_path), {"hosts": "a long first version\n"})
    ino = os.stat(tmp_path / "hosts").st_ino
    etcfiles.write(str(tmp_path), {"hosts": "short\n"})
    assert os.stat(tmp_path / "hosts").st_ino == ino and (tmp_path / "hosts").read_text() == "short\n"


def test_mounts_only_where_a_user_rootfs_has_the_file(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "hosts").write_text("")
    (rootfs / "etc" / "resolv.conf").symlink_to("/run/elsewhere/resolv.conf")  # dangling inside
    user = etcfiles.mounts("/b", str(rootfs), owned=False, read_only=False)
    assert [m["destination"] for m in user] == ["/etc/hosts"]
    assert user[0] == {"destination": "/etc/hosts", "type": "bind", "source": "/b/hosts",
                       "options": ["bind", "rw"]}
    owned = etcfiles.mounts("/b", str(rootfs), owned=True, read_only=True)
    assert [m["destination"] for m in owned] == ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    assert all(m["options"] == ["bind", "ro"] for m in owned)
    shared = etcfiles.mounts("/b", str(rootfs), owned=False, read_only=False, names=("hosts",),
                             source_dir="/other")
    assert shared[0]["source"] == "/other/hosts"
