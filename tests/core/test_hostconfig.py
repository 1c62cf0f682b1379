"""core/hostconfig.py: podman's run flags checked at create and written into the OCI spec."""

from __future__ import annotations

import resource

import pytest

from varpod.core import hostconfig as H
from varpod.core.errors import InvalidConfig
from varpod.core.model import ContainerConfig, CreateOptions
from varpod.core.spec import bounding_caps, exec_process, oci_config

HELD = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_TIME"]


@pytest.mark.parametrize(("base", "add", "drop", "caps"), [
    (["CAP_CHOWN", "CAP_KILL"], ["CAP_NET_RAW"], [], ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]),
    (["CAP_CHOWN", "CAP_KILL"], [], ["CAP_KILL"], ["CAP_CHOWN"]),
    (["CAP_CHOWN", "CAP_KILL"], ["CAP_NET_RAW"], ["ALL"], ["CAP_NET_RAW"]),
    (["CAP_CHOWN"], ["ALL"], ["CAP_SYS_TIME"], ["CAP_CHOWN", "CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_RAW"]),
])
def test_capabilities_merge_as_podmans(base, add, drop, caps):
    assert H.merge_capabilities(base, add, drop, HELD) == caps


@pytest.mark.parametrize(("add", "drop", "message"), [
    (["CAP_NET_RAW"], ["CAP_NET_RAW"], "cannot be dropped and added"),
    (["ALL"], ["ALL"], "adding all caps and removing all caps"),
    (["CAP_SYS_MODULE"], [], "not in the daemon's bounding set"),
])
def test_capability_conflicts_are_refused(add, drop, message):
    with pytest.raises(InvalidConfig, match=message):
        H.merge_capabilities(["CAP_CHOWN"], add, drop, HELD)


def test_unknown_capability_names_the_flag():
    with pytest.raises(InvalidConfig, match=r"unknown capability 'NOPE' \(--cap-add\)"):
        H.config_fields(CreateOptions(cap_add=["NOPE"]))
    assert H.config_fields(CreateOptions(cap_add=["net_admin"], cap_drop=["all"]))["cap_drop"] == ["ALL"]


def test_ulimits_never_above_the_daemons_hard_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert H.parse_ulimit("nofile=64:128") == ("RLIMIT_NOFILE", (64, 128))
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == resource.RLIM_INFINITY:
        assert H.parse_ulimit("core=-1") == ("RLIMIT_CORE", (H.UNLIMITED, H.UNLIMITED))
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(InvalidConfig, match="above the daemon's own hard limit"):
            H.parse_ulimit(f"nofile={hard + 1}")
    for bad in ("nofile", "bogus=1", "nofile=x", "nofile=10:5"):
        with pytest.raises(InvalidConfig, match="ulimit"):
            H.parse_ulimit(bad)


def test_sysctls_only_namespaced_ones():
    ok = {"kernel.shmmax": "1", "fs.mqueue.msg_max": "10", "net.ipv4.ip_forward": "1"}
    assert H.check_sysctls(ok, "private") == ok
    with pytest.raises(InvalidConfig, match=r"vm\.swappiness"):
        H.check_sysctls({"vm.swappiness": "1"}, "private")
    with pytest.raises(InvalidConfig, match="--network host"):
        H.check_sysctls({"net.ipv4.ip_forward": "1"}, "host")


def test_devices_and_their_permissions():
    assert H.check_device("/dev/null") == "/dev/null:/dev/null:rwm"
    assert H.check_device("/dev/null:r") == "/dev/null:/dev/null:r"
    assert H.check_device("/dev/null:/dev/n2:rw") == "/dev/null:/dev/n2:rw"
    for bad, message in (("/etc/passwd", "not a device"), ("/dev/null:/x:rx", "permissions"),
                         ("dev/null", "absolute"), ("/dev/null:a:b:c", "HOST")):
        with pytest.raises(InvalidConfig, match=message):
            H.check_device(bad)


@pytest.mark.parametrize(("mode", "message"), [
    ("keep-id", "rootless"), ("auto", "chowns"), ("private", "chowns"), ("bogus", "not one of"),
    ("ns:/nonexistent", "not a user namespace path"),
])
def test_userns_modes_runc_cannot_have_are_refused_by_name(mode, message):
    with pytest.raises(InvalidConfig, match=message):
        H.check_userns(mode)
    assert H.check_userns("host") == ""


def test_log_drivers_and_annotations():
    assert H.check_log_driver("json-file") == "k8s-file"
    with pytest.raises(InvalidConfig, match="journald"):
        H.check_log_driver("journald")
    with pytest.raises(InvalidConfig, match=r"io\.varpod\."):
        H.check_annotations({"io.varpod.name": "x"})


def _config(tmp_path, **kw) -> ContainerConfig:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    return ContainerConfig(id="a" * 64, name="c", rootfs=str(rootfs), command=["/bin/sh"], **kw)


def test_the_spec_carries_them(tmp_path):
    held = bounding_caps()
    cfg = _config(tmp_path, cap_drop=["ALL"], cap_add=["CAP_KILL"] if "CAP_KILL" in held else [],
                  no_new_privileges=True, ulimits={"RLIMIT_NOFILE": [10, 20]},
                  sysctls={"kernel.shmmax": "1"}, devices=["/dev/null:/dev/n2:r"], shm_size=1 << 20,
                  init=True, annotations={"a": "b"})
    spec = oci_config(cfg, str(tmp_path))
    proc = spec["process"]
    assert proc["capabilities"]["bounding"] == cfg.cap_add
    assert proc["noNewPrivileges"] is True
    assert {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20} in proc["rlimits"]
    assert spec["linux"]["sysctl"] == {"kernel.shmmax": "1"}
    assert [d["path"] for d in spec["linux"]["devices"]] == ["/dev/n2"]
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"} in \
        spec["linux"]["resources"]["devices"]
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert "size=1024k" in shm["options"]
    assert proc["args"] == [H.INIT_DEST, "--", "/bin/sh"]
    assert any(m["destination"] == H.INIT_DEST and m["type"] == "bind" for m in spec["mounts"])
    assert spec["annotations"]["a"] == "b" and spec["annotations"]["io.varpod.name"] == "c"
    # an exec gets the container's capabilities and limits, plus its own
    ex = exec_process(cfg, command=["id"], env=[], workdir="", user="", tty=False,
                      privileged=False, cap_add=[])
    assert ex["capabilities"]["bounding"] == cfg.cap_add and ex["noNewPrivileges"] is True


def test_privileged_unmasks_and_takes_every_device(tmp_path):
    spec = oci_config(_config(tmp_path, privileged=True), str(tmp_path))
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" for d in spec["linux"]["devices"])
    assert spec["process"]["capabilities"]["bounding"] == sorted(bounding_caps())
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


def test_old_records_load_with_podmans_defaults():
    import msgspec

    old = msgspec.json.encode({"id": "a" * 64, "name": "x", "rootfs": "/r", "command": ["sh"]})
    cfg = msgspec.json.decode(old, type=ContainerConfig)
    assert (cfg.shm_size, cfg.log_driver, cfg.cap_add, cfg.init) == (64 << 20, "k8s-file", [], False)
