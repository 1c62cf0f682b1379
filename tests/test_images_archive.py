"""Archives and independent checks: what we save, skopeo and podman read; what podman saves, we load;
import; hostile archives; and our unpacked rootfs against `umoci unpack` of the same image."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import imagetools as it
import pytest

from varpod.core.errors import DigestMismatch, InvalidArchive

PODMAN = shutil.which("podman")


def _nothing_left(image_env) -> None:
    tmp = os.path.join(image_env.daemon.root, "images", "tmp")
    assert os.listdir(tmp) == []


@pytest.fixture
def podman():
    """podman with storage of its own (vfs): the host's images are never touched."""
    if PODMAN is None:
        pytest.skip("podman is not installed (the skopeo checks still run)")
    root = Path(tempfile.mkdtemp(prefix="vp-podman-"))  # podman wants a run root under 50 characters

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PODMAN, "--root", str(root / "root"), "--runroot", str(root / "run"),
                               "--storage-driver", "vfs", *args], capture_output=True, text=True,
                              timeout=120, check=False)

    yield run
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_what_we_save_skopeo_reads_and_we_load_back(image_env, iclient, ivarpod, tmp_path, fmt):
    iid = image_env.ensure(iclient)
    path = tmp_path / "image.tar"
    saved = ivarpod("save", "--format", fmt, "-o", str(path), image_env.ref)
    assert saved.returncode == 0, saved.stderr
    info = json.loads(it.skopeo("inspect", f"{fmt}:{path}").stdout)
    assert len(info["Layers"]) == 2 and info["Env"][1] == "IMAGEVAR=from-image"
    config = json.loads(it.skopeo("inspect", "--config", f"{fmt}:{path}").stdout)
    assert config["config"]["Cmd"] == ["/bin/sh", "-c", "echo image-cmd"]
    it.skopeo("copy", "--quiet", f"{fmt}:{path}", f"oci:{tmp_path / 'copied'}:x")
    index = json.loads((tmp_path / "copied" / "index.json").read_text())
    assert len(index["manifests"]) == 1
    # Through stdout too, as `varpod save IMAGE > file`.
    with open(tmp_path / "stdout.tar", "wb") as f:
        piped = ivarpod("save", "--format", fmt, image_env.ref, stdout=f)
    assert piped.returncode == 0 and (tmp_path / "stdout.tar").stat().st_size == path.stat().st_size
    iclient.image_remove(image_env.ref, force=True)
    loaded = ivarpod("load", "-i", str(path))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.decode() == f"Loaded image: {image_env.ref}\n"
    assert iclient.image_inspect(image_env.ref).Id == iid
    with open(tmp_path / "stdout.tar", "rb") as f:
        again = ivarpod("load", stdin=f)
    assert again.returncode == 0, again.stderr
    out = iclient.create(image=image_env.ref)
    assert iclient.attach(out.id, start=True).read()[0] == b"image-cmd\n"
    _nothing_left(image_env)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_loads_what_we_save(image_env, iclient, podman, tmp_path, fmt):
    iid = image_env.ensure(iclient)
    path = tmp_path / "image.tar"
    iclient.save(image_env.ref, str(path), format=fmt)
    out = podman("load", "-i", str(path))
    assert out.returncode == 0, out.stderr
    listed = json.loads(podman("images", "--format", "json").stdout)
    assert [i["Id"] for i in listed] == [iid]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_we_load_what_podman_saves(image_env, iclient, podman, tmp_path, fmt):
    iid = image_env.ensure(iclient)
    assert podman("pull", "-q", "--tls-verify=false", image_env.ref).returncode == 0
    path = tmp_path / "podman.tar"
    out = podman("save", "--format", fmt, "-o", str(path), image_env.ref)
    assert out.returncode == 0, out.stderr
    iclient.image_remove(image_env.ref, force=True)
    (loaded,) = iclient.load(str(path))
    assert loaded.id == iid and loaded.names == [image_env.ref]
    _nothing_left(image_env)


def test_import_a_root_filesystem(image_env, iclient, ivarpod, tmp_path, rootfs):
    data = it.tar_of_dir(rootfs)
    out = ivarpod("import", "-c", "CMD /bin/echo imported", "-c", "ENV WHO=me", "-c", "WORKDIR /tmp",
                  "-m", "a message", "-", "imported", input=data)
    assert out.returncode == 0, out.stderr
    iid = out.stdout.decode().strip()
    info = iclient.image_inspect("imported")
    assert info.Id == iid and info.RepoTags == ["localhost/imported:latest"]
    assert info.Config.Cmd == ["/bin/sh", "-c", "/bin/echo imported"] and info.Comment == "a message"
    ctr = iclient.create(image="imported", command=["/bin/sh", "-c", "echo $WHO; pwd"])
    assert iclient.attach(ctr.id, start=True).read()[0] == b"me\n/tmp\n"
    bad = ivarpod("import", "-c", "RUN rm -rf /", "-", input=data)
    assert bad.returncode == 125 and b"varpod applies CMD" in bad.stderr


def _layers_dir(image_env) -> set[str]:
    return set(os.listdir(os.path.join(image_env.daemon.root, "images", "layers")))


def _docker_archive(layer: bytes, config_diff: str | None = None) -> bytes:
    import hashlib

    diff = config_diff or "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(it.image_config([diff])).encode()
    members = {"layer.tar": layer, "config.json": config,
               "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": ["hostile:1"],
                                             "Layers": ["layer.tar"]}]).encode()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _hostile_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("../../../../tmp/varpod-escaped")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def test_hostile_archives_are_refused_and_leave_nothing(image_env, iclient, ivarpod, tmp_path):
    before = _layers_dir(image_env)
    blobs = os.path.join(image_env.daemon.root, "images", "blobs", "sha256")
    blobs_before = set(os.listdir(blobs))
    with pytest.raises(InvalidArchive, match=r"'\.\.'"):
        iclient.load(_write(tmp_path / "a.tar", _docker_archive(_hostile_layer())))
    assert not os.path.exists("/tmp/varpod-escaped")
    with pytest.raises(DigestMismatch):  # a layer that is not what the config says
        iclient.load(_write(tmp_path / "b.tar", _docker_archive(it.top_layer(), "sha256:" + "0" * 64)))
    with pytest.raises(InvalidArchive, match="neither an oci-archive"):
        iclient.load(_write(tmp_path / "c.tar", b"\0" * 10240))
    with pytest.raises(InvalidArchive, match="not a tar archive"):
        iclient.load(_write(tmp_path / "d.tar", os.urandom(4096)))
    # An OCI blob whose content is not its name.
    layout = tmp_path / "layout"
    it.build_layout(layout, "t", [(it.top_layer(), "gzip")])
    victim = next(p for p in (layout / "blobs" / "sha256").iterdir() if p.read_bytes()[:2] == b"\x1f\x8b")
    victim.write_bytes(victim.read_bytes()[:-1] + b"!")
    with tarfile.open(tmp_path / "e.tar", "w") as t:
        t.add(layout, arcname=".")
    with pytest.raises(DigestMismatch):
        iclient.load(str(tmp_path / "e.tar"))
    hostile_import = ivarpod("import", "-", input=_hostile_layer())
    assert hostile_import.returncode == 125 and b"'..'" in hostile_import.stderr
    assert _layers_dir(image_env) == before and set(os.listdir(blobs)) == blobs_before
    _nothing_left(image_env)
    assert iclient.ping() == "pong"


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_the_rootfs_matches_umoci_unpack(image_env, iclient, tmp_path):
    image_env.ensure(iclient)
    reference = it.umoci_unpack(image_env.layout, "v1", tmp_path / "bundle")
    ctr = iclient.create(image=image_env.ref, command=["/bin/true"])
    iclient.init(ctr.id)  # mounted, not started: nothing has written to it
    merged = os.path.join(image_env.daemon.root, "images", "containers", ctr.id, "merged")
    ours, theirs = it.os_walk_tree(merged), it.os_walk_tree(str(reference))
    # The files varpod binds into every image container are made (empty) where the image has none.
    for made in ("etc/hostname", "etc/hosts", "etc/resolv.conf"):
        if made not in theirs:
            assert ours.pop(made)["mode"].startswith("0o100"), made  # a regular file
    assert sorted(ours) == sorted(theirs)
    for path in theirs:
        assert ours[path] == theirs[path], path
    assert theirs["bin/capped"]["xattrs"] == {"security.capability": it.CAP_NET_RAW}
    assert theirs["data2/h1"]["nlink"] == 2 and "gone" not in theirs and "opq/a" not in theirs
