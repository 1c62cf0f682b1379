"""The image commands of the CLI, run as a user would: output, exit codes, progress."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys

import imagetools as it


def test_pull_prints_progress_lines_and_the_id(image_env, iclient, ivarpod):
    iclient.image_remove(image_env.ensure(iclient), force=True)
    out = ivarpod("pull", image_env.ref)  # short of a terminal: plain lines on stderr
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == image_env.image_id + "\n"
    lines = out.stderr.decode().splitlines()
    assert lines[0] == f"Trying to pull {image_env.ref}..."
    assert "Getting image source signatures" in lines
    blobs = [line for line in lines if line.startswith("Copying blob ")]
    assert len(blobs) == 2 and all(line.endswith((" done", " skipped: already exists")) for line in blobs)
    assert lines[-1] == "Writing manifest to image destination"  # no signatures: nothing to store
    quiet = ivarpod("pull", "-q", image_env.ref)
    assert (quiet.stdout.decode(), quiet.stderr) == (image_env.image_id + "\n", b"")


def test_pull_draws_bars_on_a_terminal(image_env, iclient, tmp_path):
    big = it.Layer()
    big.file("big", os.urandom(2 << 20))
    layout = tmp_path / "layout"
    it.build_layout(layout, "t", [(big.raw(), "gzip")])
    ref = f"{image_env.host}/tty/x:t"
    it.push(layout, "t", ref)
    master, slave = pty.openpty()
    env = {**os.environ, "VARPOD_SOCKET": image_env.daemon.socket}
    proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", "pull", ref], stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        seen += data
    proc.wait(30)
    os.close(master)
    assert proc.returncode == 0
    assert b"\x1b[2K" in seen and b"MiB / 2.0MiB" in seen, seen[-500:]
    assert b"done" in seen


def test_images_table_json_and_quiet(image_env, iclient, ivarpod):
    iid = image_env.ensure(iclient)
    table = ivarpod("images").stdout.decode().splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = next(line for line in table if line.startswith(f"{image_env.host}/test/bb "))
    assert row.split()[1:3] == ["v1", iid[:12]] and row.endswith("MB")
    listed = json.loads(ivarpod("images", "--format", "json").stdout)
    mine = next(i for i in listed if i["Id"] == iid)
    assert mine["RepoTags"] == [image_env.ref] and mine["Size"] > 0 and mine["Digest"].startswith("sha256:")
    assert iid[:12] in ivarpod("images", "-q").stdout.decode().split()
    assert iid in ivarpod("image", "ls", "-q", "--no-trunc").stdout.decode().split()
    assert "DIGEST" in ivarpod("images", "--digests").stdout.decode()
    listed = ivarpod("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Containers}}").stdout.decode()
    assert f"{image_env.ref} {iid[:12]} " in listed
    table = ivarpod("images", "--format", "table {{.ID}}\t{{.CreatedSince}}").stdout.decode().splitlines()
    assert table[0].split() == ["IMAGE", "ID", "CREATED"] and any(iid[:12] in t for t in table[1:])
    bad = ivarpod("images", "--format", "{{.Nope}}")
    assert bad.returncode == 125 and b"Nope" in bad.stderr and bad.stdout == b""
    inspected = json.loads(ivarpod("image", "inspect", image_env.ref).stdout)
    assert inspected[0]["Id"] == iid and inspected[0]["Config"]["WorkingDir"] == "/work"
    assert inspected[0]["GraphDriver"]["Name"] == "overlay"
    missing = ivarpod("image", "inspect", "nosuch:1")
    assert missing.returncode == 125 and b"image not known" in missing.stderr
    templated = ivarpod("image", "inspect", "--format",
                        "{{.Id}} {{.Config.WorkingDir}} {{.GraphDriver.Name}}", image_env.ref)
    assert (templated.returncode, templated.stdout) == (0, f"{iid} /work overlay\n".encode())
    both = ivarpod("image", "inspect", "-f", "{{.Id}}", image_env.ref, "nosuch:1")
    assert (both.returncode, both.stdout) == (125, f"{iid}\n".encode()) and b"image not known" in both.stderr
    assert ivarpod("image", "exists", image_env.ref).returncode == 0
    assert ivarpod("image", "exists", "nosuch:1").returncode == 1


def test_run_an_image_with_pull_policies_and_entrypoints(image_env, iclient, ivarpod):
    iclient.image_remove(image_env.ensure(iclient), force=True)
    never = ivarpod("run", "--rm", "--pull=never", image_env.ref)
    assert never.returncode == 125 and b"image not known" in never.stderr
    first = ivarpod("run", "--rm", image_env.ref)  # missing: pulled first, progress on stderr
    assert first.returncode == 0 and first.stdout == b"image-cmd\n"
    assert b"Copying blob" in first.stderr
    again = ivarpod("run", "--rm", "bb:v1")  # present: no pull, a short name
    assert (again.stdout, again.stderr) == (b"image-cmd\n", b"")
    always = ivarpod("run", "--rm", "--pull=always", image_env.ref, "/bin/echo", "x")
    assert always.stdout == b"x\n" and b"Trying to pull" in always.stderr
    listed = ivarpod("run", "--rm", "--entrypoint", '["/bin/echo", "a"]', image_env.ref, "b")
    assert listed.stdout == b"a b\n"
    code = ivarpod("run", "--rm", image_env.ref, "/bin/sh", "-c", "exit 3")
    assert code.returncode == 3
    created = ivarpod("create", "--name", "made", image_env.ref)
    assert created.returncode == 0 and iclient.inspect("made").ImageName == image_env.ref
    rootfs = ivarpod("run", "--rm")
    assert rootfs.returncode != 0 and b"an image is required" in rootfs.stderr


def test_tag_untag_rmi_and_prune(image_env, iclient, ivarpod):
    iid = image_env.ensure(iclient)
    assert ivarpod("tag", image_env.ref, "cli-a", "cli-b:2").returncode == 0
    names = iclient.image_inspect(iid).RepoTags
    assert {"localhost/cli-a:latest", "localhost/cli-b:2"} <= set(names)
    assert ivarpod("untag", iid, "cli-b:2").returncode == 0
    out = ivarpod("rmi", "cli-a")
    assert out.stdout == b"Untagged: localhost/cli-a:latest\n"
    ivarpod("create", image_env.ref)
    busy = ivarpod("rmi", image_env.ref)
    assert busy.returncode == 125 and b"in use by 1 container" in busy.stderr
    forced = ivarpod("image", "rm", "-f", image_env.ref)
    assert forced.stdout.decode().splitlines() == [f"Untagged: {image_env.ref}", f"Deleted: {iid}"]
    assert iclient.list(all=True) == []
    ivarpod("pull", "-q", image_env.ref)
    ivarpod("untag", image_env.ref)
    assert iid in ivarpod("image", "prune").stdout.decode().split()
    assert not iclient.image_exists(iid)
    assert ivarpod("rmi", "nosuch").returncode == 125


def test_logout_needs_no_daemon(tmp_path):
    authfile = tmp_path / "auth.json"
    authfile.write_text('{"auths": {"reg.io": {"auth": "dTpw"}}}')
    env = {**os.environ, "VARPOD_SOCKET": str(tmp_path / "nothing.sock")}
    out = subprocess.run([sys.executable, "-m", "varpod.rpc.cli", "logout", "--authfile", str(authfile),
                          "reg.io"], env=env, capture_output=True, check=False)
    assert out.returncode == 0 and json.loads(authfile.read_text()) == {"auths": {}}
