"""Name resolution among the containers of a network: Debian's aardvark-dns, driven as netavark does.

One aardvark-dns process serves every network. Its configuration directory holds a file
per network: the first line the addresses it listens on (the network's gateway), then a
line per container: ``ID IPv4s IPv6s NAMES``. aardvark-dns forks itself into the
background, writes its pid to ``aardvark.pid`` there, re-reads the files on SIGHUP, and
answers every other name from the host's resolvers. varpod starts it when the first
container joins a DNS-enabled network, signals it on every change, and stops it when no
container is left on one. Being a daemonised grandchild it is re-parented to the daemon
(a child subreaper) and reaped by the monitor when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import time

from ..errors import Unsupported
from ..monitor import Monitor

log = logging.getLogger("varpod.network.dns")

AARDVARK_PATHS = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns",
                  "/usr/local/lib/podman/aardvark-dns")
DNS_PORT = 53
SEARCH_DOMAIN = "dns.podman"  # what podman's containers search, so their scripts work here too
READY_TIMEOUT = 5.0
PID_FILE = "aardvark.pid"  # aardvark-dns writes it beside the network files (a reserved name)


def find_aardvark(paths: tuple[str, ...] = AARDVARK_PATHS) -> str | None:
    return next((p for p in paths if os.path.isfile(p) and os.access(p, os.X_OK)), None)


# (container ID, its IPv4 address on the network, the names it answers to)
Entry = tuple[str, str, tuple[str, ...]]


class DnsServer:
    """The aardvark-dns process and its configuration directory (under the run root)."""

    def __init__(self, monitor: Monitor, config_dir: str, binary: str | None,
                 port: int = DNS_PORT) -> None:
        self._monitor = monitor
        self.config_dir = config_dir
        self.binary = binary
        self.port = port

    def require(self) -> str:
        if self.binary is None:
            raise Unsupported("aardvark-dns is not installed (Debian: apt-get install aardvark-dns); "
                              "without it a network needs --disable-dns", feature="dns")
        return self.binary

    async def update(self, networks: dict[str, tuple[str, list[Entry]]]) -> None:
        """Serve exactly ``networks``: name -> (gateway, entries). Empty: stop serving.

        One call at a time (the caller's lock): files, then the signal.
        """
        os.makedirs(self.config_dir, mode=0o755, exist_ok=True)
        wanted = {name: v for name, v in networks.items() if v[1]}
        for name in os.listdir(self.config_dir):
            if name != PID_FILE and name not in wanted:
                os.unlink(os.path.join(self.config_dir, name))
        for name, (gateway, entries) in wanted.items():
            _write_atomically(os.path.join(self.config_dir, name), _config_text(gateway, entries))
        pid = self.pid()
        if not wanted:
            if pid:
                os.kill(pid, signal.SIGTERM)
                log.info("stopped aardvark-dns (pid %d): no container needs it", pid)
            return
        if pid:
            os.kill(pid, signal.SIGHUP)
        else:
            await self._start()
        await self._wait_listening([gw for gw, _ in wanted.values()])

    def pid(self) -> int:
        """The running aardvark-dns of this directory, or 0."""
        try:
            with open(os.path.join(self.config_dir, PID_FILE)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0
        if pid <= 0:
            return 0
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return 0
        mine = any(a.endswith(b"aardvark-dns") for a in argv[:1]) and os.fsencode(self.config_dir) in argv
        return pid if mine and not zombie else 0

    async def _start(self) -> None:
        binary = self.require()
        done = await self._monitor.run([binary, "--config", self.config_dir, "-p", str(self.port), "run"])
        if not done.ok:
            text = done.stderr.decode(errors="replace").strip().splitlines()
            raise Unsupported(f"aardvark-dns did not start: {text[-1] if text else done.exit}",
                              feature="dns")
        log.info("started aardvark-dns for %s", self.config_dir)

    async def _wait_listening(self, addresses: list[str]) -> None:
        # It forks before it binds, and binds a new network's address only after SIGHUP:
        # a container must not start before its resolver answers.
        deadline = time.monotonic() + READY_TIMEOUT
        missing = set(addresses)
        while True:
            missing -= _udp_listening(self.port)
            if not missing:
                return
            if time.monotonic() > deadline or not self.pid():
                raise Unsupported(f"aardvark-dns is not answering on {', '.join(sorted(missing))} "
                                  f"port {self.port} (is another DNS server bound there?)",
                                  feature="dns")
            await asyncio.sleep(0.005)


def _config_text(gateway: str, entries: list[Entry]) -> str:
    lines = [gateway]
    for cid, ip, names in sorted(entries):
        lines.append(f"{cid} {ip}  {','.join(names)}")
    return "\n".join(lines) + "\n"


def _write_atomically(path: str, text: str) -> None:
    # A dot name: no network can have it (names start with a letter or digit).
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _udp_listening(port: int) -> set[str]:
    """IPv4 addresses with a UDP socket bound to ``port`` in this network namespace."""
    found = set()
    try:
        with open("/proc/self/net/udp") as f:
            next(f, None)
            for line in f:
                local = line.split()[1]
                hex_ip, _, hex_port = local.partition(":")
                if int(hex_port, 16) == port:
                    found.add(socket.inet_ntoa(struct.pack("<I", int(hex_ip, 16))))
    except OSError:
        pass
    return found
