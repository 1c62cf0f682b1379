"""A container's files from outside, against real runc: cp both ways (running and stopped, the
API and the CLI), symlink escapes, hostile archives, export, mount/unmount counting, diff,
commit then run, artifacts, and what a killed daemon leaves mounted (nothing)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
import threading

import mkrootfs
import pytest

from varpod.core.errors import (
    InvalidArchive,
    InvalidArtifact,
    InvalidCopy,
    InvalidParameter,
    InvalidState,
    NoImageRootfs,
    NoSuchArtifact,
    NoSuchPath,
    ReadOnlyPath,
)
from varpod.core.images.rootfs import mount_points


@pytest.fixture
def own_rootfs(tmp_path):
    """A rootfs of the test's own: copies write into it."""
    return mkrootfs.build(str(tmp_path / "rootfs"))


def sleeper(client, rootfs, name, **kw):
    ctr = client.create(rootfs, ["/bin/sleep", "1000"], name=name, **kw)
    return ctr.id


def exec_out(client, cid, *command) -> str:
    sid = client.exec_create(cid, list(command))
    session = client.exec_start(sid, attach=True)
    out, err = session.read()
    assert session.exit_code == 0, err
    return out.decode()


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: m for m in t.getmembers()}


def read_out(client, ref, path, **kw) -> tuple[bytes, object]:
    """copy_out into a pipe read by a thread: the daemon streams, nothing is staged."""
    r, w = os.pipe()
    chunks: list[bytes] = []

    def drain():
        while data := os.read(r, 1 << 16):
            chunks.append(data)

    t = threading.Thread(target=drain)
    t.start()
    try:
        stat = client.copy_out(ref, path, w, **kw)
    finally:
        os.close(w)
        t.join()
        os.close(r)
    return b"".join(chunks), stat


def host_tree(base) -> str:
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("file\n")
    os.link(src / "sub" / "f", src / "sub" / "hard")
    (src / "link").symlink_to("sub/f")
    (src / "top").write_text("top\n")
    for p in (src, src / "sub", src / "sub" / "f", src / "top"):
        os.chown(p, 1234, 5678, follow_symlinks=False)
    os.chmod(src / "top", 0o640)
    return str(src)


def test_cp_in_and_out_of_a_stopped_then_running_container(client, own_rootfs, tmp_path):
    src = host_tree(tmp_path)
    vol_host = tmp_path / "bind"
    vol_host.mkdir()
    cid = sleeper(client, own_rootfs, "cpc", volumes=[f"{vol_host}:/bound", "cpvol:/vol"],
                  tmpfs=["/scratch"])
    # stopped (configured): the rootfs, and the host directories of the mounts
    client.copy_in(cid, "/tmp", _tar_dir(src), source_name=".", target_name="src", directory=True)
    st = os.stat(os.path.join(own_rootfs, "tmp", "src", "top"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o640)  # podman's --archive: the user
    client.copy_in(cid, "/kept", _tar_dir(src), source_name=".", directory=True, chown=False)
    st = os.stat(os.path.join(own_rootfs, "kept", "top"))
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    client.copy_in(cid, "/bound", _tar_file("hello", b"into the bind\n"))
    assert (vol_host / "hello").read_bytes() == b"into the bind\n"
    client.copy_in(cid, "/vol", _tar_file("v", b"into the volume\n"))
    data, stat = read_out(client, cid, "/vol/v")
    assert stat.path == "/vol/v" and tar_members(data)["v"].size == 16
    # running: through the process, which sees its tmpfs too
    client.start(cid)
    client.copy_in(cid, "/scratch", _tar_file("t", b"tmp\n"))
    assert exec_out(client, cid, "/bin/cat", "/scratch/t", "/vol/v", "/bound/hello", "/tmp/src/sub/f") == \
        "tmp\ninto the volume\ninto the bind\nfile\n"
    data, stat = read_out(client, cid, "/tmp/src")
    members = tar_members(data)
    assert sorted(members) == ["src", "src/link", "src/sub", "src/sub/f", "src/sub/hard", "src/top"]
    assert members["src/sub/hard"].islnk() and members["src/link"].linkname == "sub/f"
    assert stat.name == "src" and stat.link_target == ""
    data, _ = read_out(client, cid, "/tmp/src/.", contents=True)
    assert "top" in tar_members(data) and "src" not in tar_members(data)
    data, _ = read_out(client, cid, "/", contents=True)
    members = tar_members(data)
    assert "proc" in members and "proc/self" not in members and "scratch/t" in members
    # the container's own writes come out with their owners
    exec_out(client, cid, "/bin/sh", "-c", "echo made > /tmp/made; chown 7:8 /tmp/made")
    made = tar_members(read_out(client, cid, "/tmp/made", rename="other")[0])["other"]
    assert (made.uid, made.gid, made.size) == (7, 8, 5)
    with pytest.raises(NoSuchPath):
        client.path_stat(cid, "/nope")
    with pytest.raises(NoSuchPath):
        read_out(client, cid, "/nope/x")
    client.remove(cid, force=True, timeout=0)
    client.volume_remove("cpvol")


def _tar_dir(path: str) -> bytes:
    return subprocess.run(["tar", "-C", path, "-c", "--numeric-owner", "."], check=True,
                          capture_output=True).stdout


def _tar_file(name: str, data: bytes, **attrs) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        for k, v in attrs.items():
            setattr(info, k, v)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cp_rules_and_refusals(client, own_rootfs):
    cid = sleeper(client, own_rootfs, "rules")
    client.copy_in(cid, "/etc/newname", _tar_file("f", b"1"), source_name="f")
    assert open(os.path.join(own_rootfs, "etc", "newname"), "rb").read() == b"1"  # noqa: SIM115
    client.copy_in(cid, "/etc/newname", _tar_file("f", b"2"), source_name="f")  # a file is overwritten
    assert open(os.path.join(own_rootfs, "etc", "newname"), "rb").read() == b"2"  # noqa: SIM115
    with pytest.raises(NoSuchPath):
        client.copy_in(cid, "/nodir/x", _tar_file("f", b"1"), source_name="f")
    with pytest.raises(NoSuchPath):
        client.copy_in(cid, "/newdir/", _tar_file("f", b"1"), source_name="f")
    with pytest.raises(NoSuchPath):
        client.copy_in(cid, "/missing", _tar_file("f", b"1"))  # a tar stream needs a directory
    with pytest.raises(InvalidCopy):
        client.copy_in(cid, "/etc/newname", _tar_file("f", b"1"))
    with pytest.raises(InvalidCopy):  # a directory onto a file
        client.copy_in(cid, "/etc/newname", _tar_file("d/x", b"1"), source_name="d", directory=True)
    with pytest.raises(InvalidCopy):  # a file over a directory
        client.copy_in(cid, "/", _tar_file("etc", b"1"))
    assert os.path.isdir(os.path.join(own_rootfs, "etc"))
    # the client's fd must be one the tar can go to, or come from
    wrong = os.open(os.path.join(own_rootfs, "etc", "passwd"), os.O_RDONLY)
    try:
        with pytest.raises(InvalidParameter, match="cannot be written"):
            client.export(cid, wrong)
    finally:
        os.close(wrong)
    wrong = os.open(os.path.join(own_rootfs, "tmp", "w"), os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(InvalidParameter, match="cannot be read"):
            client.copy_in(cid, "/tmp", wrong)
    finally:
        os.close(wrong)
    ro = client.create(own_rootfs, ["/bin/sleep", "1000"], read_only=True)
    with pytest.raises(ReadOnlyPath):
        client.copy_in(ro.id, "/tmp", _tar_file("f", b"1"))
    client.start(ro.id)
    with pytest.raises(ReadOnlyPath):
        client.copy_in(ro.id, "/", _tar_file("f", b"1"))


def test_symlink_escapes_stay_inside_the_container(client, own_rootfs, tmp_path):
    (tmp_path / "secret").write_text("host secret\n")
    os.symlink("/", os.path.join(own_rootfs, "esc"))
    os.symlink("../../../../../../../..", os.path.join(own_rootfs, "tmp", "up"))
    os.symlink(str(tmp_path), os.path.join(own_rootfs, "hostdir"))
    with open(os.path.join(own_rootfs, "etc", "passwd")) as f:
        inside = f.read()
    cid = sleeper(client, own_rootfs, "esc")
    for running in (False, True):
        if running:
            client.start(cid)
        for path in ("/esc/etc/passwd", "/tmp/up/etc/passwd", "/esc/../../etc/passwd"):
            data, stat = read_out(client, cid, path)
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                assert t.extractfile("passwd").read().decode() == inside, (running, path)
            assert stat.path == "/etc/passwd"
        with pytest.raises(NoSuchPath):  # the host path the link names is not in the container
            read_out(client, cid, "/hostdir/secret")
        client.copy_in(cid, "/tmp/up/tmp", _tar_file("landed", b"x"))
        assert os.path.exists(os.path.join(own_rootfs, "tmp", "landed"))
        assert not os.path.exists("/tmp/landed")
        os.unlink(os.path.join(own_rootfs, "tmp", "landed"))
        with pytest.raises(NoSuchPath):
            client.copy_in(cid, "/hostdir/evil", _tar_file("evil", b"x"), source_name="evil")
        assert not (tmp_path / "evil").exists()
        # hostile archives: refused by name, nothing written outside, and the daemon serves on
        for name in ("../../../../evil", "/evil"):
            with pytest.raises(InvalidArchive):
                client.copy_in(cid, "/tmp", _tar_file(name, b"x"))
        with pytest.raises(InvalidArchive):  # through a symlink already in the container
            client.copy_in(cid, "/", _tar_file("esc/evil", b"x"))
        with pytest.raises(InvalidArchive):
            client.copy_in(cid, "/tmp", b"not a tar at all" * 40)
        assert not os.path.exists("/evil") and not (tmp_path / "evil").exists()
    assert client.ping() == "pong"


def test_export_of_rootfs_and_image_containers(client, own_rootfs, iclient, image_env, tmp_path):
    cid = sleeper(client, own_rootfs, "exp", volumes=["expvol:/vol"])
    out = tmp_path / "r.tar"
    assert client.export(cid, str(out)) == cid
    names = tar_members(out.read_bytes())
    assert "bin/busybox" in names and "etc/passwd" in names and not any(n.startswith("/") for n in names)
    client.remove(cid)
    client.volume_remove("expvol")
    image_env.ensure(iclient)
    script = "echo w > /written; echo v > /data/in-volume; sleep 1000"
    ctr = iclient.create(image=image_env.ref, command=["/bin/sh", "-c", script])
    iclient.start(ctr.id)
    exec_out(iclient, ctr.id, "/bin/sh", "-c", "while [ ! -e /data/in-volume ]; do sleep 0.05; done")
    with open(out, "wb") as f:
        iclient.export(ctr.id, f)
    members = tar_members(out.read_bytes())
    assert members["written"].size == 2 and "etc/motd" in members and "gone" not in members
    assert members["bin/suid"].mode == 0o4755 and members["data/f2"].islnk()
    assert "data/in-volume" not in members  # /data is a volume: export is of the rootfs, as podman's
    iclient.stop(ctr.id, timeout=0)
    with open(out, "wb") as f:
        iclient.export(ctr.id, f)  # stopped: mounted for the export, unmounted after
    assert "written" in tar_members(out.read_bytes())
    assert not [m for m in mount_points() if ctr.id in m]


def test_mount_and_unmount_are_counted(image_env, iclient):
    image_env.ensure(iclient)
    ctr = iclient.create(image=image_env.ref, command=["/bin/sleep", "1000"], name="mnt")
    path = iclient.mount("mnt")
    assert path in mount_points() and os.path.exists(os.path.join(path, "etc", "motd"))
    assert iclient.mount("mnt") == path
    assert [m.id for m in iclient.mount_list()] == [ctr.id]
    assert iclient.unmount("mnt") is True  # one of two
    assert path in mount_points()
    assert iclient.unmount("mnt") is False
    assert path not in mount_points()
    assert iclient.unmount("mnt") is False  # nothing mounted: nothing to do
    iclient.start("mnt")
    with pytest.raises(InvalidState, match="running"):
        iclient.unmount("mnt")  # its last mount is its own
    iclient.mount("mnt")
    assert iclient.unmount("mnt") is True  # the run holds it
    iclient.mount("mnt")
    iclient.stop("mnt", timeout=0)
    assert path in mount_points()  # the user's mount outlives the run
    assert iclient.unmount("mnt", force=True) is False and path not in mount_points()
    events = [e.action for e in iclient.events(stream=False, since_seq=0, filters={"container": "mnt"})]
    assert events.count("mount") == 4 and events.count("unmount") == 5


def test_unmount_refused_with_exec_sessions_and_rootfs_containers(client, own_rootfs):
    cid = sleeper(client, own_rootfs, "rmnt")
    assert client.mount(cid) == own_rootfs  # a directory: nothing to mount
    assert client.unmount(cid) is False
    client.start(cid)
    with pytest.raises(InvalidState):
        client.unmount(cid)
    sid = client.exec_create(cid, ["/bin/sleep", "1000"])
    client.exec_start(sid)
    client.pause(cid)
    with pytest.raises(InvalidState, match="paused"):
        client.unmount(cid)
    client.unpause(cid)
    with pytest.raises(NoImageRootfs):
        client.diff(cid)
    with pytest.raises(NoImageRootfs):
        client.commit(cid, "nope")


def test_diff_commit_and_run_the_new_image(image_env, iclient, ivarpod):
    image_env.ensure(iclient)
    script = ("echo new > /new; echo more >> /etc/motd; rm /keep/file; rm -rf /opq; mkdir /opq; "
              "echo n > /opq/n; mkdir -p /made/deep; sleep 1000")
    ctr = iclient.create(image=image_env.ref, command=["/bin/sh", "-c", script], name="dc")
    iclient.start("dc")
    exec_out(iclient, ctr.id, "/bin/sh", "-c", "while [ ! -e /made/deep ]; do sleep 0.05; done")
    changes = {(c.Kind, c.Path) for c in iclient.diff("dc")}
    assert {("A", "/new"), ("C", "/etc"), ("C", "/etc/motd"), ("C", "/keep"), ("D", "/keep/file"),
            ("C", "/opq"), ("D", "/opq/c"), ("A", "/opq/n"), ("A", "/made"), ("A", "/made/deep")} <= changes
    r = ivarpod("diff", "dc")
    assert r.returncode == 0 and b"A /new\n" in r.stdout and b"D /keep/file\n" in r.stdout
    doc = json.loads(ivarpod("diff", "--format", "json", "dc").stdout)
    assert "/new" in doc["added"] and "/keep/file" in doc["deleted"]
    reply = iclient.commit("dc", "committed:v1", author="tester", message="a commit",
                           changes=['CMD ["/bin/cat", "/new"]', "ENV COMMITTED=yes"])
    assert reply.names == ["localhost/committed:v1"]
    assert iclient.inspect("dc").State.Status == "running"  # paused for the commit, then unpaused
    info = iclient.image_inspect("committed:v1")
    assert info.Author == "tester" and info.Comment == "a commit" and info.Config.Cmd == ["/bin/cat", "/new"]
    assert "COMMITTED=yes" in info.Config.Env and len(info.RootFS.Layers) == 3
    run = iclient.create(image="committed:v1")
    session = iclient.attach(run.id, start=True)
    assert session.read()[0] == b"new\n"
    script = "cat /etc/motd; test -e /keep/file || echo nofile; ls /opq; echo $COMMITTED"
    run = iclient.create(image="committed:v1", command=["/bin/sh", "-c", script])
    session = iclient.attach(run.id, start=True)
    assert session.read()[0] == b"top\nmore\nnofile\nn\nyes\n"
    # the CLI: an untagged commit, --iidfile, refusals by name
    r = ivarpod("commit", "-q", "--pause=false", "-c", "LABEL a=b", "dc")
    assert r.returncode == 0 and len(r.stdout.strip()) == 64
    untagged = r.stdout.strip().decode()
    assert iclient.image_inspect(untagged).Labels["a"] == "b"
    r = ivarpod("commit", "--squash", "dc", "x")
    assert r.returncode == 125 and b"--squash is not supported" in r.stderr
    r = ivarpod("commit", "-c", "ONBUILD RUN x", "dc", "x")
    assert r.returncode == 125 and b"ONBUILD" in r.stderr
    r = ivarpod("commit", "--format", "docker", "dc", "x")
    assert r.returncode == 125 and b"oci" in r.stderr
    # stopped: the same changes, and a commit needs no pause
    iclient.stop("dc", timeout=0)
    assert {(c.Kind, c.Path) for c in iclient.diff("dc")} == changes
    stopped = iclient.commit("dc", "committed:stopped")
    assert iclient.image_inspect(stopped.id).RootFS.Layers == info.RootFS.Layers  # the same layer
    for c in iclient.list(all=True):
        iclient.remove(c.Id, force=True, timeout=0)
    iclient.image_remove("committed:v1")
    iclient.image_remove("committed:stopped")
    iclient.image_remove(untagged)


def test_the_cli_cp_export_mount(varpod, client, own_rootfs, tmp_path):
    cid = sleeper(client, own_rootfs, "clicp")
    src = host_tree(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    assert varpod("cp", src, "clicp:/tmp/").returncode == 0
    assert varpod("cp", "../src/.", "clicp:/tmp/contents", cwd=work).returncode == 0
    assert varpod("cp", "-a=false", "../src/top", "clicp:/tmp/renamed", cwd=work).returncode == 0
    assert sorted(os.listdir(os.path.join(own_rootfs, "tmp", "contents"))) == ["link", "sub", "top"]
    assert os.stat(os.path.join(own_rootfs, "tmp", "renamed")).st_uid == 1234
    client.start(cid)
    assert varpod("cp", "clicp:/tmp/src", "out", cwd=work).returncode == 0
    assert sorted(os.listdir(work / "out")) == ["link", "sub", "top"]
    assert os.readlink(work / "out" / "link") == "sub/f"
    assert os.stat(work / "out" / "sub" / "f").st_ino == os.stat(work / "out" / "sub" / "hard").st_ino
    assert varpod("cp", "clicp:/tmp/src/top", ".", cwd=work).returncode == 0
    assert (work / "top").read_text() == "top\n"
    r = varpod("cp", "clicp:/etc/passwd", "-")
    assert list(tar_members(r.stdout)) == ["passwd"]
    r = varpod("cp", "-", "clicp:/tmp", input=_tar_file("streamed", b"s\n"))
    assert r.returncode == 0 and exec_out(client, cid, "/bin/cat", "/tmp/streamed") == "s\n"
    other = sleeper(client, own_rootfs, "clicp2")
    client.start(other)
    assert varpod("cp", "clicp:/tmp/src", "clicp2:/var/copied").returncode == 0
    assert exec_out(client, other, "/bin/cat", "/var/copied/sub/f") == "file\n"
    r = varpod("cp", "clicp:/nope", "x", cwd=work)
    assert r.returncode == 125 and b"no such file" in r.stderr
    r = varpod("cp", "./a", "./b")
    assert r.returncode == 125 and b"name a container" in r.stderr
    r = varpod("export", "-o", str(work / "e.tar"), "clicp")
    assert r.returncode == 0 and "bin/busybox" in tar_members((work / "e.tar").read_bytes())
    r = varpod("export", "clicp")
    assert r.returncode == 0 and r.stdout[257:262] == b"ustar"
    r = varpod("mount", "clicp")
    assert r.stdout.decode().strip() == own_rootfs
    assert varpod("container", "umount", "clicp").returncode == 125  # running: its own mount only


def test_artifacts(client, own_rootfs):
    cid = sleeper(client, own_rootfs, "art")
    client.artifact_add(cid, "notes.txt", b"\x00binary\xff")
    client.artifact_add(cid, "b", b"")
    assert client.artifact_get(cid, "notes.txt") == b"\x00binary\xff"
    assert [(a.name, a.size) for a in client.artifact_list(cid)] == [("b", 0), ("notes.txt", 8)]
    client.artifact_add(cid, "b", b"replaced")
    assert client.artifact_get(cid, "b") == b"replaced"
    client.artifact_remove(cid, "b")
    with pytest.raises(NoSuchArtifact):
        client.artifact_get(cid, "b")
    with pytest.raises(NoSuchArtifact):
        client.artifact_remove(cid, "b")
    for bad in ("../x", ".hidden", "", "a/b", "x" * 200):
        with pytest.raises(InvalidArtifact):
            client.artifact_add(cid, bad, b"x")
    with pytest.raises(InvalidArtifact, match="limit"):
        client.artifact_add(cid, "big", bytes((1 << 20) + 1))
    data_dir = os.path.dirname(client.inspect(cid).LogPath)
    assert os.listdir(os.path.join(data_dir, "artifacts")) == ["notes.txt"]
    client.remove(cid)
    assert not os.path.exists(data_dir)


def test_user_mounts_survive_a_daemon_kill_and_nothing_leaks(fresh_daemon, rootfs, tmp_path):
    d = fresh_daemon.start()
    tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], check=True, capture_output=True).stdout
    with d.client() as c:
        c.import_image(tar, "fsimg")
        stopped = c.create(image="fsimg", command=["/bin/true"])
        path = c.mount(stopped.id)
        running = c.create(image="fsimg", command=["/bin/sleep", "1000"])
        c.start(running.id)
        run_path = c.mount(running.id)
        idle = c.create(image="fsimg", command=["/bin/true"])
        c.copy_in(idle.id, "/", _tar_file("x", b"x"))  # mounted for the copy only
    d.stop(signal.SIGKILL)
    d.start()
    with d.client() as c:
        assert {m.id for m in c.mount_list()} == {stopped.id, running.id}
        assert c.unmount(stopped.id) is False and path not in mount_points()
        assert c.unmount(running.id) is True  # its run still holds it
        c.remove(running.id, force=True, timeout=0)
        assert run_path not in mount_points()
        c.mount(idle.id)
        c.remove(idle.id)  # a mounted container goes with its mounts
        c.remove(stopped.id)
    assert not [m for m in mount_points() if m.startswith(d.root)]
