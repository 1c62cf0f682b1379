"""A real terminal session driven through a pty: the CLI as a user would run it."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

import pytest


class Terminal:
    """The CLI on the slave side of a pty we hold the master of."""

    def __init__(self, args: list[str], socket_path: str) -> None:
        self.master, slave = os.openpty()
        self.saved = termios.tcgetattr(slave)
        self.set_size(24, 80)
        env = {**os.environ, "VARPOD_SOCKET": socket_path, "TERM": "xterm"}

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([sys.executable, "-m", "varpod.rpc.cli", *args], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, start_new_session=True,
                                     preexec_fn=controlling_tty)
        self.slave = slave
        self.seen = b""

    def set_size(self, rows: int, cols: int) -> None:
        # On the master: the kernel sends SIGWINCH to the terminal's foreground group.
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def _fill(self, timeout: float) -> bool:
        """Read what the CLI wrote; answer cursor-position queries as a terminal would."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, timeout))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the CLI is gone
            return False
        self.seen += data
        return True

    def expect(self, needle: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not self._fill(left):
                break
        assert needle in self.seen, f"{needle!r} not seen; got {self.seen[-500:]!r}"
        before, _, self.seen = self.seen.partition(needle)
        return before

    def prompt(self) -> None:
        """Wait for the shell's prompt and for it to settle.

        busybox sh asks for the cursor position (ESC [6n) after its prompt and waits a
        moment for an answer, switching the terminal mode meanwhile; input typed in
        that moment is taken for the answer or flushed. A user types later than that.
        """
        self.expect(b"# ")
        self._read_for(0.5)

    def _read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and self._fill(left):
            pass

    def wait(self, timeout: float = 30.0) -> int:
        rc = self.proc.wait(timeout)
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminals(daemon, client):
    opened: list[Terminal] = []

    def open_(*args: str) -> Terminal:
        t = Terminal(list(args), daemon.socket)
        opened.append(t)
        return t

    yield open_
    for t in opened:
        t.close()


def test_interactive_tty_session(terminals, client, rootfs):
    t = terminals("run", "-it", "--rm", "--name", "tty1", "--rootfs", rootfs, "/bin/sh")
    t.prompt()
    t.type(b"echo $((6*7))\r")
    t.expect(b"42")
    t.prompt()
    # line editing happens in the container's shell, on a real terminal
    t.type(b"echo abcX\x7fd\r")
    t.expect(b"abcd")
    t.prompt()
    # a resize of the local terminal reaches the container
    t.set_size(30, 100)
    time.sleep(0.3)
    t.type(b"stty size\r")
    t.expect(b"30 100")
    t.prompt()
    # ctrl-p ctrl-q detaches; the container keeps running
    t.type(b"\x10\x11")
    assert t.wait() == 0
    assert termios.tcgetattr(t.slave) == t.saved  # raw mode undone
    assert client.inspect("tty1").State.Status == "running"
    # attach again, see the shell, leave it
    t2 = terminals("attach", "tty1")
    t2.prompt()  # SIGWINCH after attach: the shell redraws its prompt
    t2.type(b"echo back-$((1+1))\r")
    t2.expect(b"back-2")
    t2.prompt()
    t2.type(b"exit 3\r")
    assert t2.wait() == 3
    assert termios.tcgetattr(t2.slave) == t2.saved
    # --rm is the daemon's, as podman's: the container is removed once it exits, detached or not
    deadline = time.monotonic() + 10
    while any(c.Names == ["tty1"] for c in client.list(all=True)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(c.Names == ["tty1"] for c in client.list(all=True))


def test_exec_with_a_tty(terminals, client, rootfs):
    c = client.create(rootfs, ["/bin/sleep", "1000"], name="ttyexec")
    client.start(c.id)
    # `read`, not the line editor: the point is the exec's own terminal, its size and stdin
    t = terminals("exec", "-it", "ttyexec", "/bin/sh", "-c",
                  "echo ready; read x; echo got-$x; tty; stty size; exit 4")
    t.expect(b"ready")  # the CLI relays: its terminal is raw, nothing typed now is flushed
    t.type(b"hello\r")
    t.expect(b"got-hello")
    t.expect(b"/dev/pts/")
    t.expect(b"24 80")
    assert t.wait() == 4
    client.stop(c.id, timeout=0)


def test_piped_stdin_without_tty(daemon, rootfs):
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}
    r = subprocess.run([sys.executable, "-m", "varpod.rpc.cli", "run", "-i", "--rm", "--rootfs",
                        rootfs, "/bin/cat"], input=b"abc\n", env=env, capture_output=True,
                       timeout=60, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"abc\n", b"")
    r = subprocess.run([sys.executable, "-m", "varpod.rpc.cli", "run", "-i", "--rm", "--rootfs",
                        rootfs, "/bin/sh", "-c", "wc -c; exit 9"], input=b"x" * 3_000_000, env=env,
                       capture_output=True, timeout=60, check=False)
    assert (r.returncode, r.stdout.strip()) == (9, b"3000000")


def test_attach_without_stdin_still_detaches_with_the_keys(terminals, client, rootfs):
    # No -i: the container gets no input, but this terminal's keys are watched for the
    # detach sequence; ctrl-c goes to the container (--sig-proxy), which ignores it.
    c = client.create(rootfs, ["/bin/sh", "-c", "echo ready; exec sleep 1000"], name="nostdin")
    client.start(c.id)
    t = terminals("attach", "nostdin")
    _attached(client, "nostdin", 1)
    t.type(b"\x03")  # ctrl-c: proxied, and PID 1 ignores SIGINT
    time.sleep(0.3)
    assert t.proc.poll() is None
    t.type(b"x\x10\x11")
    assert t.wait() == 0
    assert termios.tcgetattr(t.slave) == t.saved  # the terminal's mode is back
    assert client.inspect("nostdin").State.Status == "running"
    t2 = terminals("attach", "--detach-keys", "ctrl-a", "nostdin")
    _attached(client, "nostdin", 2)
    t2.type(b"\x01")
    assert t2.wait() == 0


def _attached(client, name: str, times: int) -> None:
    """Until the daemon has seen ``times`` attaches to the container (and the CLI a moment
    more to set up its terminal)."""
    deadline = time.monotonic() + 20
    def seen() -> int:
        return sum(e.action == "attach" and e.name == name
                   for e in client.events(since_seq=0, stream=False))

    while time.monotonic() < deadline and seen() < times:
        time.sleep(0.05)
    time.sleep(0.2)
