"""Who may talk to the daemon, how many at once, and what is readable on disk."""

from __future__ import annotations

import os
import socket
import stat
import struct
import subprocess
import tempfile

import msgspec
import pytest
from test_survival import config

from varpod.core.errors import PermissionDenied, TooManyConnections

NOBODY = 65534  # uid and gid (nogroup) on Debian
STRANGER = 4242  # in no group the daemon knows


def as_user(uid: int, gid: int, socket_path: str, code: str, groups: list[int] | None = None):
    """Run a client snippet in a forked child with another identity; (exit code, output).

    Forked, not executed: the interpreter under /root is not reachable by other users,
    and SO_PEERCRED reports whoever connects, which is all that matters here.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, connect, report, and leave at once
        os.close(r)
        rc, out = 0, ""
        try:
            os.setgroups(groups or [])
            os.setgid(gid)
            os.setuid(uid)
            import contextlib
            import io

            from varpod.rpc.client import Client

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(code, {"c": Client(socket_path)})
            out = buf.getvalue()
        except BaseException as e:
            rc, out = 1, f"{type(e).__name__}: {e}"
        os.write(w, out.encode())
        os._exit(rc)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


@pytest.fixture
def open_socket_dir():
    d = tempfile.mkdtemp(prefix="varpod-access-")
    os.chmod(d, 0o755)  # reachable by anyone; the daemon decides who gets in
    yield d
    subprocess.run(["rm", "-rf", d], check=False)


def test_default_socket_is_root_only(daemon):
    st = os.stat(daemon.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660 and (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.socket)).st_mode) == 0o700


def test_a_directory_that_is_not_the_daemons_is_left_alone(fresh_daemon, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o1777)
    os.chmod(shared, 0o1777)
    sock = str(shared / "varpod.sock")
    fresh_daemon.config = config(tmp_path, socket=sock)
    fresh_daemon.socket = sock
    fresh_daemon.start()
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777  # like /tmp: never chmod-ed
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660


def test_state_logs_and_bundles_are_not_world_readable(daemon, client, rootfs):
    c = client.create(rootfs, ["/bin/echo", "secret"])
    client.start(c.id)
    client.wait(c.id)
    info = client.inspect(c.id)
    for path in (daemon.root, os.path.dirname(info.LogPath), info.BundlePath, daemon.run_root):
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(os.stat(info.LogPath).st_mode) & 0o007 == 0


def test_a_group_may_be_let_in_and_its_calls_are_audited(open_socket_dir, fresh_daemon, tmp_path,
                                                           rootfs):
    sock = os.path.join(open_socket_dir, "varpod.sock")
    fresh_daemon.config = config(tmp_path, socket=sock, access={"group": "nogroup"})
    fresh_daemon.socket = sock
    d = fresh_daemon.start()
    st = os.stat(sock)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, NOBODY)
    code, out = as_user(NOBODY, NOBODY, sock,
                        f"print(c.ping('hi'))\nprint(c.create({rootfs!r}, ['/bin/true'], name='byn').id)")
    assert code == 0 and out.startswith("hi\n"), out
    audit = [line for line in d.log().splitlines() if "varpod.audit" in line and "Create" in line]
    assert any(f"uid={NOBODY}" in line and "byn" in line for line in audit), audit
    # someone outside the group cannot even reach the socket
    code, out = as_user(STRANGER, STRANGER, sock, "c.ping()")
    assert code != 0 and "cannot reach the varpod daemon" in out and "Permission denied" in out


def test_peer_credentials_are_checked_even_when_the_socket_is_open(open_socket_dir, fresh_daemon,
                                                                   tmp_path):
    sock = os.path.join(open_socket_dir, "varpod.sock")
    fresh_daemon.config = config(tmp_path, socket=sock)
    fresh_daemon.socket = sock
    d = fresh_daemon.start()
    os.chmod(open_socket_dir, 0o755)
    os.chmod(sock, 0o666)  # a careless chmod must not let anyone in
    code, out = as_user(STRANGER, STRANGER, sock, "c.ping()")
    assert code != 0 and PermissionDenied.__name__ in out, out
    assert "refusing connection from" in d.log()
    with d.client() as c:
        assert c.ping() == "pong"


def test_connection_limit_is_a_clear_refusal(fresh_daemon, tmp_path):
    fresh_daemon.config = config(tmp_path, limits={"max_connections": 3})
    d = fresh_daemon.start()
    held = [d.client() for _ in range(3)]
    for c in held:
        assert c.ping() == "pong"
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    head = s.recv(4)
    reply = msgspec.msgpack.decode(s.recv(struct.unpack(">I", head)[0]))
    assert reply["error"] == TooManyConnections.rpc_name and reply["parameters"]["limit"] == 3
    assert s.recv(1) == b""
    s.close()
    held.pop().close()
    with d.client() as c:
        assert c.ping() == "pong"
    for c in held:
        c.close()
