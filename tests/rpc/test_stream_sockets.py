"""The daemon's end of a stream socket: a bulk stream gets a bigger send buffer, a short one does not.

A real LogFollower relays a real log into one end of a Unix socketpair that a
thread reads, as a client does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading

from varpod.core.logfile import HEADER_SIZE, LogWriter
from varpod.core.logread import Position, Selection
from varpod.rpc.streams import GROW_AFTER, MODE_FRAMES, SEND_BUFFER, LogFollower, RawChannel


def sndbuf(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        sock.detach()


def relay_log(tmp_path, payload_bytes: int) -> tuple[int, int, int]:
    """A log of ``payload_bytes`` relayed as frames: (bytes the reader got, SO_SNDBUF before, after)."""
    path = str(tmp_path / "ctr.log")
    w = LogWriter(path)
    chunk = 64 << 10
    for i in range(0, payload_bytes, chunk):
        w.append(1, b"x" * min(chunk, payload_bytes - i), ts=i)
    w.finish()
    w.close()
    ours, theirs = socket.socketpair()
    got = 0

    def read():
        nonlocal got
        while data := theirs.recv(1 << 20):
            got += len(data)

    reader = threading.Thread(target=read)
    reader.start()

    async def main() -> tuple[int, int]:
        fd = os.dup(ours.fileno())
        os.set_blocking(fd, False)
        chan = RawChannel(fd, b"", None)
        before = sndbuf(fd)
        try:
            await LogFollower(chan, path, None, Selection(), False, MODE_FRAMES).run(Position(1, 0))
            return before, sndbuf(fd)
        finally:
            chan.close()

    try:
        before, after = asyncio.run(main())
    finally:
        ours.close()
        reader.join(30)
        theirs.close()
    return got, before, after


def test_a_bulk_stream_gets_the_bigger_send_buffer(tmp_path):
    size = 3 * GROW_AFTER
    got, before, after = relay_log(tmp_path, size)
    assert got == size + (size // (64 << 10)) * HEADER_SIZE  # a frame per 64 KiB record
    assert before < 2 * SEND_BUFFER
    assert after >= 2 * SEND_BUFFER  # the kernel books twice what was asked for


def test_a_short_stream_keeps_the_default_send_buffer(tmp_path):
    size = GROW_AFTER // 4
    got, before, after = relay_log(tmp_path, size)
    assert got == size + (size // (64 << 10)) * HEADER_SIZE
    assert after == before


GROW_PAST_WMEM_MAX = """
import socket, sys
from varpod.rpc.streams import grow_send_buffer
a, b = socket.socketpair()
grow_send_buffer(a.fileno(), int(sys.argv[1]))
print(a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
"""


def test_grow_send_buffer_goes_past_wmem_max_only_with_cap_net_admin():
    with open("/proc/sys/net/core/wmem_max") as f:
        wmem_max = int(f.read())
    want = 2 * wmem_max

    def granted(*prefix: str) -> int:
        out = subprocess.run([*prefix, sys.executable, "-c", GROW_PAST_WMEM_MAX, str(want)],
                             capture_output=True, text=True, check=True)
        return int(out.stdout)

    assert granted() == 2 * want  # root: SO_SNDBUFFORCE
    # Without CAP_NET_ADMIN, SO_SNDBUF's cap stands and the refusal is no error.
    assert granted("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin") == 2 * wmem_max
