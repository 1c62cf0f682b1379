"""Volumes, bind mounts and tmpfs against real runc: what the container sees, what outlives it,
what is refused by name, and what `rm -v`, `--rm` and a crashed daemon leave behind."""

from __future__ import annotations

import json
import os
import signal

import pytest

from varpod.core.errors import (
    InvalidMount,
    InvalidVolumeConfig,
    MountSourceNotFound,
    NoSuchVolume,
    VolumeExists,
    VolumeInUse,
)
from varpod.core.images.rootfs import mount_points


def run(client, rootfs, command, **kw) -> tuple[str, str, int]:
    """Create, start attached, collect the output; the container stays (for inspect and rm)."""
    ctr = client.create(rootfs, command, **kw) if rootfs else client.create(command=command, **kw)
    session = client.attach(ctr.id, start=True)
    out, err = session.read()
    return out.decode(), err.decode(), session.exit_code


@pytest.fixture
def vclient(client):
    return client  # the fixture removes containers, then volumes, after each test


@pytest.fixture
def ivclient(iclient):
    return iclient


def test_bind_mounts_ro_rw_and_what_inspect_and_ps_show(vclient, rootfs, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from the host\n")
    out, err, code = run(vclient, rootfs, ["/bin/sh", "-c",
                                           "cat /ro/in; touch /ro/x 2>&1 | grep -c Read-only; "
                                           "echo back > /rw/out; grep -E ' /(ro|rw) ' /proc/mounts"],
                         name="binds", volumes=[f"{host}:/ro:ro", f"{host}:/rw"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:2] == ["from the host", "1"]
    assert (host / "out").read_text() == "back\n"
    ro = next(line for line in lines if " /ro " in line).split()[3].split(",")
    assert "ro" in ro
    info = vclient.inspect("binds")
    assert [(m.Type, m.Source, m.Destination, m.RW, m.Propagation) for m in info.Mounts] == [
        ("bind", str(host), "/ro", False, "rprivate"), ("bind", str(host), "/rw", True, "rprivate")]
    assert info.HostConfig.Binds == [f"{host}:/ro:rprivate,ro", f"{host}:/rw:rprivate"]
    (summary,) = [c for c in vclient.list(all=True) if c.Names == ["binds"]]
    assert summary.Mounts == ["/ro", "/rw"] and summary.MountSources == [str(host), str(host)]


def test_bad_specs_and_missing_sources_are_named_errors(vclient, rootfs, tmp_path):
    with pytest.raises(MountSourceNotFound) as e:
        vclient.create(rootfs, ["/bin/true"], volumes=[f"{tmp_path}/nope:/data"])
    assert e.value.path == f"{tmp_path}/nope" and "does not exist" in e.value.message
    for bad in (["/data:/data:bogus"], ["x:y"], ["/a:/b:ro,rw"]):
        with pytest.raises(InvalidMount):
            vclient.create(rootfs, ["/bin/true"], volumes=bad)
    with pytest.raises(InvalidMount, match="duplicate"):
        vclient.create(rootfs, ["/bin/true"], volumes=["v1:/d"], tmpfs=["/d"])
    with pytest.raises(InvalidMount):
        vclient.create(rootfs, ["/bin/true"], mounts=["type=image,src=x,dst=/x"])
    with pytest.raises(InvalidMount):
        vclient.create(rootfs, ["/bin/true"], image_volume="sometimes")
    # Nothing was left by the refused creates, and the daemon serves on.
    assert vclient.list(all=True) == [] and vclient.volume_list() == []
    # A bind source that disappears before the start: refused then, by name.
    gone = tmp_path / "gone"
    gone.mkdir()
    ctr = vclient.create(rootfs, ["/bin/true"], volumes=[f"{gone}:/g"])
    gone.rmdir()
    with pytest.raises(MountSourceNotFound):
        vclient.start(ctr.id)
    assert vclient.inspect(ctr.id).State.Status == "configured"


def test_named_volumes_outlive_containers_and_refuse_removal_in_use(vclient, rootfs):
    out, _, _ = run(vclient, rootfs, ["/bin/sh", "-c", "echo kept > /cache/f; ls /cache"], name="w",
                    volumes=["cache:/cache"])
    assert out == "f\n"
    vol = vclient.volume_inspect("cache")
    assert vol.Driver == "local" and vol.Containers == [vclient.inspect("w").Id] and not vol.Anonymous
    assert vol.Mountpoint.endswith("/volumes/cache/_data")
    with pytest.raises(VolumeInUse) as e:
        vclient.volume_remove("cache")
    assert e.value.containers == [vclient.inspect("w").Id]
    vclient.remove("w", volumes=True)  # -v takes anonymous volumes only
    out, _, _ = run(vclient, rootfs, ["/bin/cat", "/again/f"], mounts=["type=volume,src=cache,dst=/again,ro"])
    assert out == "kept\n"
    with pytest.raises(VolumeExists):
        vclient.volume_create("cache")
    assert vclient.volume_create("cache", ignore=True).Name == "cache"
    # force removes the containers that use it first
    reply = vclient.volume_remove("cache", force=True)
    assert len(reply.containers) == 1 and vclient.list(all=True) == []
    assert not vclient.volume_exists("cache")
    with pytest.raises(NoSuchVolume):
        vclient.volume_inspect("cache")


def test_volume_create_options_filters_and_prune(vclient, rootfs):
    a = vclient.volume_create("alpha", labels={"tier": "db"})
    vclient.volume_create("beta")
    anon = vclient.volume_create()
    assert len(anon.Name) == 64 and not anon.Anonymous
    for bad in (dict(name="bad/name"), dict(name="x", driver="nfs"), dict(name="x", options={"o": "uid=1"})):
        with pytest.raises(InvalidVolumeConfig):
            vclient.volume_create(**bad)
    assert [v.Name for v in vclient.volume_list(filters={"label": ["tier=db"]})] == ["alpha"]
    assert vclient.volume_inspect("alp").Name == "alpha"  # a unique prefix
    vclient.create(rootfs, ["/bin/true"], volumes=["beta:/b"])
    assert {v.Name for v in vclient.volume_list(filters={"dangling": ["true"]})} == {"alpha", anon.Name}
    assert sorted(vclient.volume_prune(filters={"label": ["tier"]})) == ["alpha"]
    assert sorted(vclient.volume_prune()) == [anon.Name]
    assert [v.Name for v in vclient.volume_list()] == ["beta"]
    assert a.CreatedAt.endswith("Z")


def test_tmpfs_mounts_and_a_default_replaced(vclient, rootfs):
    script = "grep -E ' /(scratch|dev/shm) ' /proc/mounts; echo x > /scratch/f && cat /scratch/f"
    out, err, code = run(vclient, rootfs, ["/bin/sh", "-c", script],
                         tmpfs=["/scratch:size=1m,mode=700", "/dev/shm:size=2m"])
    assert code == 0, err
    scratch = next(line for line in out.splitlines() if " /scratch " in line).split()
    assert scratch[2] == "tmpfs" and "size=1024k" in scratch[3] and "noexec" in scratch[3]
    shm = [line for line in out.splitlines() if " /dev/shm " in line]
    assert len(shm) == 1 and "size=2048k" in shm[0]
    assert out.endswith("x\n")


def test_image_volumes_are_anonymous_copied_up_and_go_with_rm_v(image_env, ivclient):
    image_env.ensure(ivclient)
    # The test image declares VOLUME /data, holding f1 and f2 (one file, two names, 7:8, 0600).
    script = "stat -c '%n %u:%g %a %h' /data/f1 /data/f2; echo mine > /data/new"
    out, err, code = run(ivclient, None, ["/bin/sh", "-c", script], image=image_env.ref, name="iv")
    assert code == 0, err
    assert out.splitlines() == ["/data/f1 7:8 600 2", "/data/f2 7:8 600 2"]
    (mount,) = ivclient.inspect("iv").Mounts
    assert mount.Type == "volume" and mount.Destination == "/data" and len(mount.Name) == 64
    vol = ivclient.volume_inspect(mount.Name)
    assert vol.Anonymous and not vol.NeedsCopyUp and sorted(os.listdir(vol.Mountpoint)) == [
        "f1", "f2", "new", "pipe"]
    # A restart keeps what the container wrote: the copy-up happens once.
    ivclient.start("iv")
    ivclient.wait("iv")
    with open(os.path.join(vol.Mountpoint, "new")) as f:
        assert f.read() == "mine\n"
    ivclient.remove("iv", volumes=True)
    assert not ivclient.volume_exists(mount.Name) and not os.path.exists(vol.Mountpoint)
    # Without -v the anonymous volume stays, dangling; --rm takes it; a user mount wins over it.
    ctr = ivclient.create(image=image_env.ref, command=["/bin/true"])
    name = ivclient.inspect(ctr.id).Mounts[0].Name
    ivclient.remove(ctr.id)
    assert ivclient.volume_inspect(name).Containers == []
    ctr = ivclient.create(image=image_env.ref, command=["/bin/true"], auto_remove=True)
    name2 = ivclient.inspect(ctr.id).Mounts[0].Name
    ivclient.start(ctr.id)
    ivclient.wait(ctr.id)
    _wait_gone(ivclient, ctr.id)
    assert not ivclient.volume_exists(name2) and ivclient.volume_exists(name)
    ctr = ivclient.create(image=image_env.ref, command=["/bin/true"], volumes=["named:/data"])
    assert [m.Name for m in ivclient.inspect(ctr.id).Mounts] == ["named"]
    ctr = ivclient.create(image=image_env.ref, command=["/bin/true"], image_volume="ignore")
    assert ivclient.inspect(ctr.id).Mounts == []
    ctr = ivclient.create(image=image_env.ref, command=["/bin/true"], image_volume="tmpfs")
    assert [m.Type for m in ivclient.inspect(ctr.id).Mounts] == ["tmpfs"]


def _wait_gone(c, cid: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if cid not in {x.Id for x in c.list(all=True)}:
            return
        time.sleep(0.05)
    raise AssertionError(f"container {cid[:12]} was not removed")


def test_the_cli_volume_group_and_run_flags(vclient, varpod, rootfs, tmp_path):
    assert varpod("volume", "create", "--label", "k=v", "clivol").stdout == b"clivol\n"
    assert varpod("volume", "exists", "clivol").returncode == 0
    assert varpod("volume", "exists", "nope").returncode == 1
    r = varpod("volume", "ls")
    assert r.stdout.decode().splitlines() == ["DRIVER      VOLUME NAME", "local       clivol"]
    r = varpod("volume", "ls", "--format", "{{.Name}} {{.Labels}} {{.Driver}}")
    assert r.stdout == b"clivol map[k:v] local\n"
    assert json.loads(varpod("volume", "ls", "--format", "json").stdout)[0]["Name"] == "clivol"
    assert varpod("volume", "ls", "-q", "--filter", "label=k").stdout == b"clivol\n"
    doc = json.loads(varpod("volume", "inspect", "clivol").stdout)
    assert doc[0]["Labels"] == {"k": "v"}
    assert varpod("inspect", "--type", "volume", "-f", "{{.Name}}", "clivol").stdout == b"clivol\n"
    assert varpod("inspect", "-f", "{{.Scope}}", "clivol").stdout == b"local\n"
    # A relative bind source is this directory's, resolved by the CLI.
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "f").write_text("relative\n")
    r = varpod("run", "--name", "clirun", "--rootfs", rootfs, "-v", "./rel:/r:ro", "-v", "clivol:/c",
               "--mount", "type=tmpfs,dst=/t", "--tmpfs", "/u", "/bin/cat", "/r/f", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, b"relative\n"), r.stderr
    r = varpod("ps", "-a", "--filter", "volume=clivol", "--format", "{{.Names}} {{.Mounts}}")
    assert r.stdout == b"clirun [/r /c /t /u]\n"
    assert varpod("ps", "-a", "-q", "--filter", f"volume={tmp_path}/rel:/r").stdout.strip() != b""
    assert varpod("ps", "-a", "-q", "--filter", "volume=other").stdout == b""
    r = varpod("volume", "rm", "clivol")
    assert r.returncode == 2 and b"being used" in r.stderr
    r = varpod("run", "--rootfs", rootfs, "-v", "/does/not/exist:/x", "/bin/true")
    assert r.returncode == 125 and b"does not exist" in r.stderr
    assert varpod("rm", "-v", "clirun").returncode == 0
    assert varpod("volume", "rm", "nope", "clivol").returncode == 1  # clivol went; nope did not exist
    assert varpod("volume", "prune", "-f").returncode == 0


def test_volumes_and_mounts_survive_a_daemon_kill(fresh_daemon, rootfs):
    d = fresh_daemon.start()
    with d.client() as c:
        c.volume_create("kept")
        ctr = c.create(rootfs, ["/bin/sleep", "1000"], volumes=["kept:/k", "/k2"])
        c.start(ctr.id)
        anon = next(m.Name for m in c.inspect(ctr.id).Mounts if m.Destination == "/k2")
    # An anonymous volume whose container never got its record (a crash between the two).
    from varpod.core.volumes.volumes import Volumes

    d.stop(signal.SIGKILL)
    vols = Volumes(d.root, os.path.join(d.root, "varpod.db"))
    vols.create(anonymous=True, owner="f" * 64)
    os.makedirs(os.path.join(d.root, "volumes", "stray", "_data"))
    vols.close()
    d.start()
    with d.client() as c:
        assert {v.Name for v in c.volume_list()} == {"kept", anon}
        assert c.inspect(ctr.id).State.Status == "running"
        with pytest.raises(VolumeInUse):
            c.volume_remove("kept")
        c.remove(ctr.id, force=True, timeout=0, volumes=True)
        assert [v.Name for v in c.volume_list()] == ["kept"]
    assert sorted(os.listdir(os.path.join(d.root, "volumes"))) == ["kept"]
    assert not [m for m in mount_points() if m.startswith(d.root)]


def test_cli_run_refuses_volumes_from_by_name(varpod, rootfs):
    r = varpod("run", "--volumes-from", "x", "--rootfs", rootfs, "/bin/true")
    assert r.returncode == 125 and b"--volumes-from is not supported" in r.stderr
