"""What survives a daemon's kill -9: a pull cut short leaves no corrupt store and the next one
works; running image containers keep their overlay mounts and are re-adopted; a container that
ended meanwhile is unmounted at start-up; nothing is leaked."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import imagetools as it
import pytest
from conftest import Daemon, _cleanup

from varpod.core.images.rootfs import mount_points


@pytest.fixture
def own_daemon(image_env, tmp_path):
    d = Daemon(tmp_path / "d", env={"CONTAINERS_REGISTRIES_CONF": str(image_env.conf)})
    yield d
    if d.proc is None:
        d.start()
    _cleanup(d)
    assert not [m for m in mount_points() if m.startswith(d.root)], "mounts left behind"


def _kill9(d: Daemon) -> None:
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.proc = None


def _tree(path: str) -> list[str]:
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_a_pull_killed_mid_way_leaves_no_corrupt_store(image_env, own_daemon, tmp_path):
    big = it.Layer()
    big.file("big", os.urandom(3 << 20))
    layout = tmp_path / "layout"
    iid = it.build_layout(layout, "t", [(it.base_layer(), "gzip"), (big.raw(), "gzip")])[7:]
    it.push(layout, "t", f"{image_env.host}/slow/x:t")
    proxy = it.Proxy(image_env.host)
    proxy.delay = 0.05  # some 2.5 s for the big blob: time to kill the daemon in the middle
    image_env.extra.append(proxy)
    image_env.write_conf(insecure=[proxy.host])
    ref = f"{proxy.host}/slow/x:t"
    own_daemon.start()
    seen = threading.Event()

    def pull() -> None:
        try:
            with own_daemon.client() as c:
                for reply in c.pull_progress(ref):
                    p = reply.progress
                    if p is not None and p.kind == "blob" and p.state == "progress" and p.current > 0 \
                            and p.current < p.total:
                        seen.set()
        except Exception:
            pass  # the daemon dies under it

    worker = threading.Thread(target=pull)
    worker.start()
    assert seen.wait(30), "the pull never got going"
    _kill9(own_daemon)
    worker.join(30)
    images = os.path.join(own_daemon.root, "images")
    assert _tree(os.path.join(images, "tmp"))  # a transfer was cut short
    own_daemon.start()
    with own_daemon.client() as c:
        assert c.images() == []
        assert _tree(os.path.join(images, "tmp")) == []
        assert _tree(os.path.join(images, "layers")) == []
        assert _tree(os.path.join(images, "blobs", "sha256")) == []
        proxy.delay = 0
        assert c.pull(ref).id == iid
        ctr = c.create(image=ref, command=["/bin/sh", "-c", "wc -c < /big"])
        assert c.attach(ctr.id, start=True).read()[0].strip() == str(3 << 20).encode()


def test_running_containers_keep_their_mounts_and_are_readopted(image_env, own_daemon):
    own_daemon.start()
    with own_daemon.client() as c:
        c.pull(image_env.ref)
        keep = c.create(image=image_env.ref, command=["/bin/sleep", "1000"], name="keep").id
        dies = c.create(image=image_env.ref, command=["/bin/sleep", "1000"], name="dies").id
        c.start(keep)
        c.start(dies)
    root = os.path.join(own_daemon.root, "images", "containers")
    merged = {cid: os.path.join(root, cid, "merged") for cid in (keep, dies)}
    _kill9(own_daemon)
    assert set(merged.values()) <= mount_points()  # the mounts outlive the daemon
    runc_root = os.path.join(own_daemon.run_root, "runtime", "runc")
    subprocess.run(["runc", "--root", runc_root, "kill", dies, "KILL"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = subprocess.run(["runc", "--root", runc_root, "state", dies], capture_output=True, text=True)
        if '"stopped"' in state.stdout:
            break
        time.sleep(0.05)
    own_daemon.start()
    with own_daemon.client() as c:
        assert c.inspect("keep").State.Status == "running"
        assert c.inspect("dies").State.Status == "exited"
        mounted = mount_points()
        assert merged[keep] in mounted and merged[dies] not in mounted
        sid = c.exec_create("keep", ["/bin/cat", "/etc/motd"])
        assert c.exec_start(sid, attach=True).read()[0] == b"top\n"
        c.stop("keep", timeout=0)
        assert merged[keep] not in mount_points()
        c.remove("keep")
        c.remove("dies")
        assert _tree(root) == []
