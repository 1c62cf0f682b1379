"""Images end to end against a real registry (docker-registry on 127.0.0.1) and real runc:
pull, run, the image config in the container, names, removal, sharing, platforms."""

from __future__ import annotations

import asyncio
import os
import threading

import imagetools as it
import pytest

from varpod.core.errors import (
    ImageInUse,
    InvalidConfig,
    InvalidReference,
    NoMatchingPlatform,
    NoSuchImage,
    RegistryError,
    ShortNameUnresolved,
    Unsupported,
)
from varpod.rpc.client import AsyncClient


def run(client, image: str, command: list[str] | None = None, **kw) -> tuple[bytes, bytes, int]:
    ctr = client.create(image=image, command=command, **kw)
    session = client.attach(ctr.id, start=True)
    out, err = session.read()
    code = session.exit_code
    client.remove(ctr.id, force=True)
    return out, err, code


def fresh_image(env, tmp_path, name: str, layers=None, **run_config) -> tuple[str, str]:
    """A new image (layers no other test has) pushed as NAME; returns (reference, image ID)."""
    layout = tmp_path / f"layout-{name.replace('/', '-')}"
    if layers is None:
        unique = it.Layer()
        unique.file("unique", os.urandom(64 << 10))
        layers = [(it.base_layer(), "gzip"), (unique.raw(), "gzip")]
    iid = it.build_layout(layout, "t", layers, **run_config)
    ref = f"{env.host}/{name}:t"
    it.push(layout, "t", ref)
    return ref, iid[7:]


def test_pull_reports_progress_and_records_the_image(image_env, iclient):
    try:
        iclient.image_remove(image_env.ref, force=True)
    except NoSuchImage:
        pass
    replies = list(iclient.pull_progress(image_env.ref))
    final = replies[-1]
    assert final.id == image_env.image_id and final.names == [image_env.ref]
    kinds = {(r.progress.kind, r.progress.state) for r in replies[:-1]}
    assert {("resolve", ""), ("blob", "start"), ("blob", "done"), ("config", "done")} <= kinds
    (summary,) = [i for i in iclient.images() if i.Id == image_env.image_id]
    assert summary.RepoTags == [image_env.ref] and summary.Size > 2_000_000 and not summary.Dangling
    assert summary.RepoDigests == [f"{image_env.host}/test/bb@{summary.Digest}"]
    # Again: nothing is fetched, the image is the same.
    again = list(iclient.pull_progress(image_env.ref))
    assert again[-1].id == final.id
    assert {r.progress.state for r in again[:-1] if r.progress.kind == "blob"} == {"exists"}


def test_the_image_config_becomes_the_containers(image_env, iclient):
    image_env.ensure(iclient)
    out, _, code = run(iclient, image_env.ref)
    assert (out, code) == (b"image-cmd\n", 0)  # the image's Cmd
    script = "pwd; id -u; echo $IMAGEVAR $SHARED; cat /etc/motd; test -e /gone || echo gone"
    out, _, _ = run(iclient, image_env.ref, ["/bin/sh", "-c", script], env=["SHARED=user"], user="app")
    assert out.decode().split("\n")[:-1] == ["/work", "1000", "from-image user", "top", "gone"]
    assert run(iclient, image_env.ref, ["/bin/ls", "/opq"])[0] == b"c\n"  # opaque: a and b are hidden
    ctr = iclient.create(image=image_env.ref, name="cfg", labels={"shared": "user"})
    info = iclient.inspect("cfg")
    assert info.Image == image_env.image_id and info.ImageName == image_env.ref
    assert info.Config.Image == image_env.ref and info.Config.Entrypoint == []
    assert info.Config.Cmd == ["/bin/sh", "-c", "echo image-cmd"] and info.Path == "/bin/sh"
    assert info.Config.WorkingDir == "/work" and info.Config.StopSignal == 10  # SIGUSR1
    assert info.Config.Labels == {"org.test.origin": "fixture", "shared": "user"}
    assert info.Rootfs == "" and info.Driver == "overlay"
    assert "SHARED=image" in info.Config.Env
    (summary,) = [c for c in iclient.list(all=True) if c.Id == ctr.id]
    assert summary.Image == image_env.ref and summary.ImageID == image_env.image_id


def test_entrypoint_override_and_the_users_settings_win(image_env, iclient):
    image_env.ensure(iclient)
    out, _, _ = run(iclient, image_env.ref, ["a", "b"], entrypoint=["/bin/echo"])
    assert out == b"a b\n"
    out, _, _ = run(iclient, image_env.ref, None, entrypoint=["/bin/echo", "only"])
    assert out == b"only\n"  # an entrypoint of the user's drops the image's Cmd, as podman
    out, _, _ = run(iclient, image_env.ref, ["/bin/pwd"], entrypoint=[""], workdir="/tmp")
    assert out == b"/tmp\n"
    ctr = iclient.create(image=image_env.ref, stop_signal="SIGTERM", user="0")
    assert iclient.inspect(ctr.id).Config.StopSignal == 15
    with pytest.raises(InvalidConfig, match="not found"):
        iclient.start(iclient.create(image=image_env.ref, user="nosuchuser").id)


def test_bad_requests_are_named_errors_and_the_daemon_keeps_serving(image_env, iclient):
    image_env.ensure(iclient)
    with pytest.raises(InvalidConfig, match="not both"):
        iclient.create(rootfs="/", command=["true"], image=image_env.ref)
    with pytest.raises(NoSuchImage):
        iclient.create(image="nosuch:1")
    with pytest.raises(InvalidReference):
        iclient.pull("Bad Name")
    with pytest.raises(Unsupported):
        iclient.pull(f"{image_env.host}/test/bb@md5:" + "0" * 32)
    with pytest.raises(RegistryError, match="manifest unknown"):
        iclient.pull(f"{image_env.host}/test/nothere:1")
    with pytest.raises(RegistryError) as e:
        iclient.pull("127.0.0.1:1/x:1")
    assert e.value.rpc_name == "io.varpod.Image.RegistryUnreachable"
    assert iclient.ping() == "pong"


def test_plain_http_only_where_allowed(image_env, iclient):
    image_env.write_conf(plain_http=False)  # the registry speaks HTTP; nothing says that is fine
    with pytest.raises(RegistryError) as e:
        iclient.pull(image_env.ref)
    assert e.value.rpc_name == "io.varpod.Image.RegistryUnreachable" and "https" in e.value.message
    assert iclient.pull(image_env.ref, tls_verify=False).id == image_env.image_id


def test_pull_by_digest_names_the_digest(image_env, iclient):
    iid = image_env.ensure(iclient)
    digest = iclient.image_inspect(iid).Digest
    by_digest = f"{image_env.host}/test/bb@{digest}"
    assert iclient.pull(by_digest).names == sorted([image_env.ref, by_digest])
    assert iclient.image_inspect(by_digest).Id == iid
    assert iclient.image_inspect(iid).RepoTags == [image_env.ref]  # a digest is not a tag
    with pytest.raises(Exception) as e:
        iclient.pull(f"{image_env.host}/test/bb@sha256:" + "0" * 64)
    assert e.value.rpc_name == "io.varpod.Image.RegistryError"
    assert iclient.untag(iid, [by_digest]).removed == [by_digest]


def test_short_names_resolve_through_registries_conf(image_env, iclient):
    image_env.ensure(iclient)
    assert iclient.pull("test/bb:v1").names == [image_env.ref]  # the search registry
    assert iclient.pull("aliased:v1").names == [image_env.ref]  # an alias
    assert iclient.image_inspect("bb:v1").Id == image_env.image_id  # local: by the repository's tail
    image_env.write_conf(search=False, aliases={"x": "quay.io/x"})
    with pytest.raises(ShortNameUnresolved, match="no unqualified-search registries"):
        iclient.pull("test/bb:v1")


def test_names_tags_and_removal(image_env, iclient):
    iid = image_env.ensure(iclient)
    assert iclient.tag(image_env.ref, "mine").name == "localhost/mine:latest"
    iclient.tag("mine", "quay.io/other/name:2")
    names = sorted(iclient.image_inspect(iid).RepoTags)
    assert names == sorted([image_env.ref, "localhost/mine:latest", "quay.io/other/name:2"])
    with pytest.raises(ImageInUse, match="multiple repositories"):
        iclient.image_remove(iid[:12])  # by ID, with several names: only with force
    steps = iclient.image_remove("mine").steps  # by one of several names: untagged
    assert [(s.action, s.value) for s in steps] == [("Untagged", "localhost/mine:latest")]
    assert iclient.untag(iid, ["quay.io/other/name:2"]).removed == ["quay.io/other/name:2"]
    with pytest.raises(NoSuchImage, match="tag not known"):
        iclient.untag(iid, ["nothere"])
    ctr = iclient.create(image=image_env.ref, name="user-of-it")
    with pytest.raises(ImageInUse) as e:
        iclient.image_remove(image_env.ref)
    assert e.value.containers == [ctr.id]
    reply = iclient.image_remove(image_env.ref, force=True)
    assert reply.containers == [ctr.id] and reply.steps[-1].action == "Deleted"
    assert not iclient.image_exists(iid) and iclient.list(all=True) == []


def test_layers_are_shared_and_freed_with_their_last_image(image_env, iclient, tmp_path):
    image_env.ensure(iclient)  # its base layer is the one the new images share
    images_dir = os.path.join(image_env.daemon.root, "images")
    before_layers = set(os.listdir(os.path.join(images_dir, "layers")))
    a, a_id = fresh_image(image_env, tmp_path, "share/a")
    b, b_id = fresh_image(image_env, tmp_path, "share/b")
    iclient.pull(a)
    iclient.pull(b)
    layers = set(os.listdir(os.path.join(images_dir, "layers"))) - before_layers
    assert len(layers) == 2  # one unique layer each; the base layer is shared
    iclient.image_remove(a)
    assert iclient.image_inspect(b).Id == b_id
    iclient.image_remove(b)
    assert set(os.listdir(os.path.join(images_dir, "layers"))) - before_layers == set()
    # The untagged image prune removes; a named one stays (and -a takes it too).
    iclient.pull(a)
    iclient.untag(a)
    iclient.pull(b)
    assert iclient.image_prune() == [a_id]
    assert iclient.image_prune(all=True) and not iclient.image_exists(b)


def test_concurrent_pulls_fetch_each_layer_once(image_env, iclient, tmp_path):
    ref, iid = fresh_image(image_env, tmp_path, "concurrent/x")
    proxy = it.Proxy(image_env.host)
    image_env.extra.append(proxy)
    image_env.write_conf(insecure=[proxy.host])
    via = ref.replace(image_env.host, proxy.host)

    async def pulls():
        async with await AsyncClient.connect(image_env.daemon.socket) as ac:
            return await asyncio.gather(*(ac.pull(via) for _ in range(4)))

    results = asyncio.run(pulls())
    assert {r.id for r in results} == {iid}
    blob_paths = [p for p in proxy.hits if "/blobs/" in p]
    assert blob_paths and all(proxy.hits[p] == 1 for p in blob_paths), proxy.hits


def test_a_corrupt_blob_is_a_digest_mismatch_and_nothing_is_recorded(image_env, iclient, tmp_path):
    ref, iid = fresh_image(image_env, tmp_path, "corrupt/x")
    proxy = it.Proxy(image_env.host)
    proxy.corrupt = True
    image_env.extra.append(proxy)
    image_env.write_conf(insecure=[proxy.host])
    via = ref.replace(image_env.host, proxy.host)
    with pytest.raises(Exception) as e:
        iclient.pull(via)
    assert e.value.rpc_name == "io.varpod.Image.DigestMismatch"
    assert not iclient.image_exists(iid)
    tmp = os.path.join(image_env.daemon.root, "images", "tmp")
    assert os.listdir(tmp) == []
    proxy.corrupt = False
    assert iclient.pull(via).id == iid  # the next pull starts clean


def test_manifest_lists_choose_the_platform(image_env, iclient, tmp_path):
    layout = tmp_path / "multi"
    configs = it.build_index_layout(layout, "m", {"amd64": [(it.base_layer(), "gzip")],
                                                  "arm64": [(it.top_layer(), "gzip")]})
    ref = f"{image_env.host}/test/multi:m"
    it.push(layout, "m", ref, "--all")
    host_arch = "amd64" if os.uname().machine == "x86_64" else "arm64"
    assert iclient.pull(ref).id == configs[host_arch][7:]
    assert iclient.pull(ref, platform="linux/arm64").id == configs["arm64"][7:]
    with pytest.raises(NoMatchingPlatform, match="linux/s390x"):
        iclient.pull(ref, platform="linux/s390x")


def test_docker_schema2_and_zstd_layers(image_env, iclient, tmp_path):
    it.push(image_env.layout, "v1", f"{image_env.host}/test/bb:v2s2", "--format", "v2s2")
    rec = iclient.image_inspect(iclient.pull(f"{image_env.host}/test/bb:v2s2").id)
    assert rec.ManifestType == "application/vnd.docker.distribution.manifest.v2+json"
    assert rec.Id == image_env.image_id  # the same config: the same image, one more name
    ref, _ = fresh_image(image_env, tmp_path, "test/zstd",
                         layers=[(it.base_layer(), "zstd"), (it.top_layer(), "plain")])
    iclient.pull(ref)
    assert run(iclient, ref, ["/bin/cat", "/etc/motd"])[0] == b"top\n"


def test_an_image_of_many_layers_mounts(image_env, iclient, tmp_path):
    # 60 layers of absolute paths under this root are over mount(2)'s one page of options:
    # the relative short-link mount is what makes it work.
    layers = [(it.base_layer(), "gzip")]
    for i in range(59):
        layer = it.Layer()
        layer.file(f"layer{i:02d}", str(i).encode())
        layers.append((layer.raw(), "gzip"))
    ref, _ = fresh_image(image_env, tmp_path, "test/deep", layers=layers)
    iclient.pull(ref)
    out, _, code = run(iclient, ref, ["/bin/sh", "-c", "cat /layer00 /layer58; ls / | grep -c layer"])
    assert (out, code) == (b"05859\n", 0)
    one = os.path.join(image_env.daemon.root, "images", "layers", "f" * 64, "diff")
    assert 60 * (len(one) + 1) > 4096  # so this did take the relative mount


def test_many_containers_share_one_image(image_env, iclient):
    image_env.ensure(iclient)
    ids = [iclient.create(image=image_env.ref, command=["/bin/sleep", "60"]).id for _ in range(5)]
    def start(cid: str) -> None:
        with image_env.daemon.client() as c:
            c.start(cid)

    threads = [threading.Thread(target=start, args=(c,)) for c in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    roots = [os.path.join(image_env.daemon.root, "images", "containers", c) for c in ids]
    from varpod.core.images.rootfs import mount_points

    mounted = mount_points()
    assert all(os.path.join(r, "merged") in mounted for r in roots)
    for c in ids:
        iclient.remove(c, force=True, timeout=0)
    mounted = mount_points()
    assert not any(os.path.join(r, "merged") in mounted or os.path.exists(r) for r in roots)
