"""Attach, exec and logs over upgraded connections, against real runc."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import threading
import time

import pytest
from test_lifecycle import eventually, output

from varpod.core.errors import InvalidParameter, InvalidState, NoSuchExecSession


def test_200_foreground_runs_each_print_their_line(client, rootfs):
    for i in range(200):
        c = client.create(rootfs, ["/bin/echo", f"line {i}"])
        session = client.attach(c.id, start=True)
        out, err = session.read()
        assert (out, err) == (f"line {i}\n".encode(), b"")
        assert session.exit_code == 0
        client.remove(c.id)


def test_stdout_and_stderr_stay_apart_and_in_order(client, rootfs):
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 5"
    c = client.create(rootfs, ["/bin/sh", "-c", script])
    session = client.attach(c.id, start=True)
    chunks = list(session)
    assert session.end == {"end": "exit", "exit_code": 5, "exit_code_known": True}
    out = b"".join(d for s, d in chunks if s == 1)
    err = b"".join(d for s, d in chunks if s == 2)
    assert (out, err) == (b"out1\nout2\nout3\n", b"err1\nerr2\nerr3\n")


def test_stdin_is_relayed_and_eof_delivered(client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "cat; echo done"], stdin=True)
    session = client.attach(c.id, stdin=True, start=True)
    session.send(b"abc\n")
    session.send(b"def")
    session.close_stdin()
    assert session.read() == (b"abc\ndefdone\n", b"")
    assert session.exit_code == 0


def test_attach_to_a_running_container_and_detach(daemon, client, rootfs):
    script = "while read line; do echo got:$line; done"
    c = client.create(rootfs, ["/bin/sh", "-c", script], stdin=True)
    client.start(c.id)
    session = client.attach(c.id, stdin=True)
    session.send(b"one\n")
    it = iter(session)
    assert next(it) == (1, b"got:one\n")
    session.send(b"\x10\x11")  # ctrl-p ctrl-q
    assert list(it) == []
    assert session.end == {"end": "detached"}
    assert client.inspect(c.id).State.Status == "running"
    # another attach with detaching disabled sees new output and passes ctrl-p through
    again = client.attach(c.id, stdin=True, detach_keys="")
    again.send(b"\x10two\n")
    assert next(iter(again)) == (1, b"got:\x10two\n")
    again.close()  # may end the container: closing its input is EOF on its stdin
    client.remove(c.id, force=True)


def test_attach_errors_come_before_the_stream(client, rootfs):
    c = client.create(rootfs, ["/bin/true"])
    with pytest.raises(InvalidState):
        client.attach(c.id)  # configured: nothing to attach to yet
    with pytest.raises(InvalidParameter) as e:
        client.attach(c.id, start=True, detach_keys="ctrl-nope")
    assert e.value.parameter == "detach_keys"
    with pytest.raises(InvalidParameter):
        client.attach(c.id, stdin=True, start=True)  # created without stdin
    with pytest.raises(InvalidParameter):
        client.attach(c.id, stdout=False, stderr=False, start=True)
    assert client.inspect(c.id).State.Status == "configured"


def test_attach_with_logs_replays_first(client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "echo early; sleep 0.3; echo late; sleep 30"])
    client.start(c.id)
    eventually(lambda: output(client, c.id)[0] == b"early\n")
    session = client.attach(c.id, logs=True)
    it = iter(session)
    assert next(it) == (1, b"early\n")
    assert next(it) == (1, b"late\n")
    session.close()
    client.stop(c.id, timeout=0)


def test_a_stalled_attach_client_does_not_stop_the_container(daemon, client, rootfs):
    size = 64 << 20
    c = client.create(rootfs, ["/bin/sh", "-c", f"head -c {size} /dev/zero; echo end >&2"])
    stalled = client.attach(c.id, start=True)  # never read from
    assert client.wait(c.id).exit_code == 0
    total = sum(len(r.payload) for r in client.logs(c.id, stderr=False))
    assert total == size
    assert output(client, c.id, stdout=False)[1] == b"end\n"
    stalled.close()


def test_one_gib_end_to_end_with_a_checksum(client, rootfs):
    script = "exec 3>&1; head -c 1073741824 /dev/urandom | tee /dev/fd/3 | md5sum >&2"
    c = client.create(rootfs, ["/bin/sh", "-c", script])
    session = client.attach(c.id, start=True)
    digest, n, err = hashlib.md5(), 0, b""
    for stream, data in session:
        if stream == 1:
            digest.update(data)
            n += len(data)
        else:
            err += data
    assert session.exit_code == 0
    assert n == 1 << 30
    assert err.split()[0].decode() == digest.hexdigest()


# -- exec ------------------------------------------------------------------------------------------


@pytest.fixture
def sleeper(client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], name="sleeper")
    client.start(c.id)
    yield c.id
    client.stop(c.id, timeout=0)


def run_exec(client, cid, command, **kw):
    sid = client.exec_create(cid, command, **kw)
    session = client.exec_start(sid, attach=True)
    return sid, session


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exec_exit_codes(client, sleeper, code):
    sid, session = run_exec(client, sleeper, ["/bin/sh", "-c", f"echo in-exec; exit {code}"])
    assert session.read() == (b"in-exec\n", b"")
    assert session.exit_code == code
    info = client.exec_inspect(sid)
    assert (info.Running, info.ExitCode) == (False, code)


def test_exec_stdin_env_workdir_user(client, sleeper):
    _, session = run_exec(client, sleeper, ["/bin/sh", "-c", 'cat; echo "$A|$(pwd)|$(id -u)"'],
                          stdin=True, env=["A=b c"], workdir="/tmp", user="65534")
    session.send(b"piped\n")
    session.close_stdin()
    assert session.read() == (b"piped\nb c|/tmp|65534\n", b"")


def test_exec_detached_then_inspect_and_stop(client, sleeper):
    sid = client.exec_create(sleeper, ["/bin/sleep", "1000"])
    client.exec_start(sid)
    info = client.exec_inspect(sid)
    assert info.Running and info.Pid > 0
    stopped = client.exec_stop(sid, timeout=1)
    assert not stopped.Running and stopped.ExitCode == 128 + 15
    client.exec_remove(sid)
    with pytest.raises(NoSuchExecSession):
        client.exec_inspect(sid)


def test_exec_requires_a_running_container(client, rootfs):
    c = client.create(rootfs, ["/bin/true"])
    with pytest.raises(InvalidState):
        client.exec_create(c.id, ["/bin/true"])


def test_exec_privileged_and_cap_add(client, sleeper):
    script = "grep CapEff /proc/self/status"
    _, s = run_exec(client, sleeper, ["/bin/sh", "-c", script])
    default = int(s.read()[0].split()[1], 16)
    _, s = run_exec(client, sleeper, ["/bin/sh", "-c", script], cap_add=["NET_ADMIN"])
    assert int(s.read()[0].split()[1], 16) == default | (1 << 12)
    _, s = run_exec(client, sleeper, ["/bin/sh", "-c", script], privileged=True)
    assert int(s.read()[0].split()[1], 16) > default | (1 << 12)


def test_exec_preserves_fds(client, sleeper):
    r, w = os.pipe()
    os.write(w, b"through an fd\n")
    os.close(w)
    sid = client.exec_create(sleeper, ["/bin/sh", "-c", "cat <&3"], preserve_fds=1)
    session = client.exec_start(sid, attach=True, fds=(r,))
    os.close(r)
    assert session.read() == (b"through an fd\n", b"")


def test_concurrent_execs_do_not_serialise(daemon, client, sleeper):
    # A long exec must not hold up others (podman#26588): they finish while it runs.
    long_sid = client.exec_create(sleeper, ["/bin/sleep", "30"])
    client.exec_start(long_sid)
    codes = []

    def quick(i):
        with daemon.client() as c:
            _, s = run_exec(c, sleeper, ["/bin/sh", "-c", f"exit {i}"])
            s.read()
            codes.append(s.exit_code)

    threads = [threading.Thread(target=quick, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == list(range(8))
    assert client.exec_inspect(long_sid).Running
    client.exec_stop(long_sid, timeout=0)


# -- logs ------------------------------------------------------------------------------------------


def test_logs_tail_since_until_timestamps(client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "echo a; sleep 0.3; echo b; sleep 0.3; echo c"])
    client.start(c.id)
    client.wait(c.id)
    recs = list(client.logs(c.id, timestamps=True))  # one record per read, each with its time
    assert [r.payload for r in recs] == [b"a\n", b"b\n", b"c\n"]
    assert [r.payload for r in client.logs(c.id)] == [b"a\nb\nc\n"]  # merged by default
    assert recs[0].time < recs[1].time < recs[2].time
    assert b"".join(r.payload for r in client.logs(c.id, tail=2)) == b"b\nc\n"
    assert list(client.logs(c.id, tail=0)) == []
    t_b = next(r.time for r in recs if r.payload == b"b\n")
    assert b"".join(r.payload for r in client.logs(c.id, since=t_b)) == b"b\nc\n"
    assert b"".join(r.payload for r in client.logs(c.id, until=t_b)) == b"a\nb\n"


def test_logs_follow_ends_after_exit_with_every_line(client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "seq 1 200000"])
    client.start(c.id)
    got = b"".join(r.payload for r in client.logs(c.id, follow=True))
    assert got == b"".join(b"%d\n" % i for i in range(1, 200001))


def test_logs_rotation_with_a_follower(client, rootfs):
    c = client.create(rootfs, ["/bin/sh", "-c", "seq 1 300000"], log_size_max=256 * 1024)
    stream = client.logs(c.id, follow=True)
    client.start(c.id)
    got = b"".join(r.payload for r in stream)
    assert got == b"".join(b"%d\n" % i for i in range(1, 300001))
    # rotated, never truncated: the latest files together end with the last line
    tail = b"".join(r.payload for r in client.logs(c.id, tail=3))
    assert tail == b"299998\n299999\n300000\n"


def test_a_logging_container_has_log_space_reserved_until_it_stops(daemon, client, rootfs):
    # The daemon allocates log space ahead of the write position (ext4); the log's
    # size must stay the records' bytes for every reader, and the room goes at the end.
    root = os.path.join(daemon.root, "containers")
    os.makedirs(root, exist_ok=True)
    kind = subprocess.run(["stat", "-f", "-c", "%T", root], capture_output=True, text=True).stdout.strip()
    if kind != "ext2/ext3":
        pytest.skip(f"log space is reserved on ext4 only; the daemon's root is on {kind}")
    size = 8 << 20
    c = client.create(rootfs, ["/bin/sh", "-c", f"head -c {size} /dev/zero; echo done >&2; exec sleep 1000"])
    client.start(c.id)
    path = os.path.join(root, c.id, "ctr.log")
    try:
        eventually(lambda: output(client, c.id, stdout=False)[1] == b"done\n")
        records = list(client.logs(c.id, timestamps=True))  # one per record stored, not merged
        st = os.stat(path)
        assert st.st_size == sum(len(r.payload) + 20 for r in records)
        assert sum(len(r.payload) for r in records if r.stream == 1) == size
        assert st.st_blocks * 512 - st.st_size > 1 << 20  # reserved ahead
        assert [r.payload for r in client.logs(c.id, tail=1, stdout=False)] == [b"done\n"]
        client.kill(c.id, "KILL")
        client.wait(c.id)
        st2 = os.stat(path)
        assert st2.st_size == st.st_size
        assert st2.st_blocks * 512 - st2.st_size < 64 << 10  # given back once the run ended
        again = [(r.stream, r.time, r.payload) for r in client.logs(c.id, timestamps=True)]
        assert again == [(r.stream, r.time, r.payload) for r in records]
    finally:
        client.remove(c.id, force=True)
    assert not os.path.exists(path)


def test_async_client_attach_and_logs(daemon, rootfs):
    import anyio

    from varpod.rpc.client import AsyncClient

    async def main():
        async with await AsyncClient.connect(daemon.socket) as ac:
            created = await ac.create(rootfs, ["/bin/sh", "-c", "cat; echo bye >&2"], stdin=True)
            session = await ac.attach(created.id, stdin=True, start=True)
            await session.send(b"async\n")
            await session.close_stdin()
            out, err = await session.read()
            assert (out, err) == (b"async\n", b"bye\n")
            assert session.exit_code == 0
            lines = [r.payload async for r in ac.logs(created.id)]
            assert b"".join(lines) == b"async\nbye\n"
            await ac.remove(created.id)

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})


def test_async_client_holds_a_bounded_backlog_for_a_slow_reader(daemon, rootfs):
    import anyio

    from varpod.rpc.client import RAW_BACKLOG, AsyncClient

    size = 4 * RAW_BACKLOG
    dd = ["dd", "if=/dev/zero", "bs=64k", f"count={size // 65536}"]

    async def main():
        async with await AsyncClient.connect(daemon.socket) as ac:
            created = await ac.create(rootfs, dd)
            session = await ac.attach(created.id, start=True)
            await ac.wait(created.id)  # all of it written while nobody reads
            await anyio.sleep(0.2)
            held = session._conn._raw_size
            assert 0 < held <= RAW_BACKLOG + (1 << 20)
            got = sum(len(d) for s, d in [x async for x in session] if s == 1)
            assert got == size and session.exit_code == 0
            await ac.remove(created.id)

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})


def test_raw_socket_frames_have_the_documented_header(daemon, client, rootfs):
    import msgspec

    c = client.create(rootfs, ["/bin/sh", "-c", "echo hi; echo ho >&2"])
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.socket)
    body = msgspec.msgpack.encode({"method": "io.varpod.Container.Attach",
                                   "parameters": {"name": c.id, "start": True}, "upgrade": True})
    s.sendall(struct.pack(">I", len(body)) + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    n = struct.unpack(">I", data[:4])[0]
    assert msgspec.msgpack.decode(data[4 : 4 + n])["parameters"]["tty"] is False
    rest = data[4 + n :]
    frames = []
    while rest:
        stream, length = struct.unpack(">B3xI", rest[:8])
        frames.append((stream, rest[8 : 8 + length]))
        rest = rest[8 + length :]
    assert (1, b"hi\n") in frames and (2, b"ho\n") in frames
    assert frames[-1][0] == 3
    assert msgspec.msgpack.decode(frames[-1][1])["exit_code"] == 0
    s.close()
    time.sleep(0)


def test_tty_output_right_before_exit_is_never_lost(client, sleeper):
    # A pty's master reports EOF when the last slave closes; output written just
    # before the exit used to be lost in about one run of three.
    for _ in range(50):
        sid = client.exec_create(sleeper, ["/bin/sh", "-c", "tty; stty size; exit 4"], tty=True)
        session = client.exec_start(sid, attach=True, size=(24, 80))
        out = b"".join(data for _, data in session)
        assert out.endswith(b"24 80\r\n") and out.startswith(b"/dev/pts/")
        assert client.exec_inspect(sid).ExitCode == 4
