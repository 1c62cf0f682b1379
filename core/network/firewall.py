"""The firewall rules varpod makes itself, and knowing when iptables' rules have changed.

Masquerade per network, as netavark does it: a non-internal network has one nat chain,
``VARPOD-MASQ-<id>``, that masquerades what leaves the subnet (multicast aside), and one
jump to it from POSTROUTING for its subnet. The CNI bridge plugin's ``ipMasq`` makes the
same rules per container address instead: a chain and three rules at every ADD (eight
iptables runs), as many runs again deleting them at every DEL, each nf_tables deletion
waiting for an RCU grace period: most of what a bridge container cost. Here the rules
are checked with one ``iptables -S`` and, where missing or wrong, made with one
``iptables-restore --noflush``: one transaction that replaces the chain's rules and
leaves exactly one jump, so a repeat, a crash or a half-flushed table never leaves a
duplicate.

``RulesetWatch``: nf_tables tells every change of the ruleset to netlink listeners
(NFNLGRP_NFTABLES, what ``nft monitor`` reads). Draining them says whether a chain
whose contents were read may have changed since, so the answer can be kept until
then instead of being asked again, an iptables run, at every attachment.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Sequence

from ..errors import FirewallFailed, Unsupported
from ..monitor import Monitor
from .checks import binary
from .cni import memfd
from .types import Masquerade

log = logging.getLogger("varpod.network.firewall")

CHAIN_PREFIX = "VARPOD-MASQ-"
MULTICAST = "224.0.0.0/4"
# iptables -w waits for the xtables lock (iptables-legacy) as long as it takes: a run
# stuck on it fails its container's start after this long instead of holding it for ever.
TIMEOUT = 60.0


def masq_chain(network_id: str) -> str:
    # 24 of the 28 characters iptables allows a chain name; the ID is random, so two
    # daemons sharing a network namespace never share a chain.
    return CHAIN_PREFIX + network_id[:12]


def masq_rules(m: Masquerade) -> tuple[list[str], str]:
    """The chain's rules and the jump to it, as ``iptables -S`` prints them."""
    body = [f"-A {m.chain} -d {m.subnet} -j ACCEPT",
            f"-A {m.chain} ! -d {MULTICAST} -j MASQUERADE"]
    return body, f"-A POSTROUTING -s {m.subnet} -j {m.chain}"


def _jumps_to(lines: Sequence[str], chain: str) -> list[str]:
    return [line for line in lines
            if line.startswith("-A POSTROUTING ") and line.split()[-2:] == ["-j", chain]]


def _deleted(rule: str) -> str:
    return "-D" + rule[2:]  # "-A CHAIN spec" -> "-D CHAIN spec"


async def ensure_masquerade(monitor: Monitor, m: Masquerade) -> bool:
    """Make the network's rules where they are missing or not as they should be; True
    when they had to be (re)made."""
    lines = await _nat_rules(monitor)
    body, jump = masq_rules(m)
    have = [line for line in lines if line.startswith(f"-A {m.chain} ")]
    jumps = _jumps_to(lines, m.chain)
    if f"-N {m.chain}" in lines and have == body and jumps == [jump]:
        return False
    # ":CHAIN" makes the chain, or empties it where it exists.
    await _restore(monitor, [f":{m.chain} - [0:0]", *body, *map(_deleted, jumps), jump])
    log.info("masquerade of network %s (%s) %s", m.network, m.subnet,
             "repaired" if f"-N {m.chain}" in lines else "made")
    return True


async def remove_masquerade(monitor: Monitor, m: Masquerade) -> None:
    lines = await _nat_rules(monitor)
    script = list(map(_deleted, _jumps_to(lines, m.chain)))
    if f"-N {m.chain}" in lines:
        script += [f"-F {m.chain}", f"-X {m.chain}"]
    if script:
        await _restore(monitor, script)
        log.info("masquerade of network %s (%s) removed", m.network, m.subnet)


async def forward_open(monitor: Monitor) -> bool:
    """True when the FORWARD chain passes every packet: policy ACCEPT, no rule but the
    firewall plugin's own jump."""
    done = await _run(monitor, [binary("iptables"), "-w", "-S", "FORWARD"])
    log.debug("iptables -S FORWARD: exit %s", done.exit.code)
    if not done.ok:
        return False
    for line in done.stdout.decode(errors="replace").splitlines():
        if line.startswith("-P ") and line.split()[-1] != "ACCEPT":
            return False
        if line.startswith("-A ") and not line.rstrip().endswith("-j CNI-FORWARD"):
            return False
    return True


async def _nat_rules(monitor: Monitor) -> list[str]:
    argv = [binary("iptables"), "-w", "-t", "nat", "-S"]
    done = await _run(monitor, argv)
    log.debug("iptables -t nat -S: exit %s", done.exit.code)
    if not done.ok:
        raise _failed(argv, done.stderr)
    return [line.strip() for line in done.stdout.decode(errors="replace").splitlines()]


async def _restore(monitor: Monitor, lines: list[str]) -> None:
    argv = [binary("iptables-restore"), "-w", "--noflush"]
    fd = memfd("iptables-restore", "\n".join(["*nat", *lines, "COMMIT", ""]).encode())
    try:
        done = await _run(monitor, argv, stdin=fd)
    finally:
        os.close(fd)
    if not done.ok:
        raise _failed(argv, done.stderr)


async def _run(monitor: Monitor, argv: list[str], stdin: int | None = None):
    try:
        return await monitor.run(argv, stdin=stdin, timeout=TIMEOUT)
    except FileNotFoundError:
        raise Unsupported(f"{os.path.basename(argv[0])} not found: bridge networks masquerade "
                          "through iptables (Debian: apt-get install iptables)", feature="network") from None
    except TimeoutError:
        raise FirewallFailed(f"{' '.join(argv)} did not finish within {TIMEOUT:g} s and was killed",
                             command=os.path.basename(argv[0])) from None


def _failed(argv: list[str], stderr: bytes) -> FirewallFailed:
    text = stderr.decode(errors="replace").strip()[:500] or "failed"
    return FirewallFailed(f"{' '.join(argv)}: {text}", command=os.path.basename(argv[0]))


# -- what changed ------------------------------------------------------------------------------

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFPROTO_IPV4 = 2  # iptables-nft's tables; ip6tables and nft's own families are not read here
# nf_tables message types (the low byte of nlmsg_type) whose chain is known; every other
# one (a table, a set, an object ...) counts as a change of its whole table.
NFT_MSG_NEWCHAIN, NFT_MSG_DELCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE, NFT_MSG_NEWGEN = 3, 5, 6, 8, 15
# The attribute naming the chain: NFTA_CHAIN_NAME, NFTA_RULE_CHAIN; the table is attribute 1
# in every message but NEWGEN's.
CHAIN_ATTR = {NFT_MSG_NEWCHAIN: 3, NFT_MSG_DELCHAIN: 3, NFT_MSG_NEWRULE: 2, NFT_MSG_DELRULE: 2}

Key = tuple[str, str]  # (table, chain); chain "" for a change to the table as a whole
MAX_READS = 4096  # notifications read per look


def touched(keys: set[Key] | None, table: str, chain: str) -> bool:
    return keys is None or (table, chain) in keys or (table, "") in keys


def parse_notifications(data: bytes, keys: set[Key]) -> bool:
    """Add the (table, chain) of each nf_tables message in a datagram; False if it is malformed."""
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16 or off + length > len(data):
            return False
        if kind >> 8 == NFNL_SUBSYS_NFTABLES and length >= 20 and data[off + 16] == NFPROTO_IPV4 \
                and kind & 0xFF != NFT_MSG_NEWGEN:
            attrs = _attributes(data[off + 20:off + length])
            chain = CHAIN_ATTR.get(kind & 0xFF)
            keys.add((_text(attrs.get(1)), _text(attrs.get(chain)) if chain else ""))
        off += (length + 3) & ~3
    return True


def _attributes(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4:
            break
        out.setdefault(kind & 0x3FFF, data[off + 4:off + length])  # without NLA_F_NESTED etc.
        off += (length + 3) & ~3
    return out


def _text(value: bytes | None) -> str:
    return (value or b"").split(b"\0", 1)[0].decode(errors="replace")


def iptables_is_nft() -> bool:
    """Whether `iptables` is iptables-nft (the alternatives link, read at every call: it can be
    switched while the daemon runs). iptables-legacy's changes are told to nobody."""
    return "nft" in os.path.basename(os.path.realpath(binary("iptables")))


class RulesetWatch:
    """The daemon's netlink listener for nf_tables' changes, opened at first use, in the
    daemon's network namespace (the one its bridges and rules are in)."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._unavailable = False
        self._buf = bytearray(1 << 16)

    @property
    def active(self) -> bool:
        return self._sock is not None

    def changes(self) -> set[Key] | None:
        """What changed since the last call; None when that cannot be known (watching only
        from now on, notifications lost, iptables-legacy): anything may have."""
        if not iptables_is_nft():
            self.close()
            return None
        if self._sock is None:
            self._open()
            return None
        keys: set[Key] = set()
        complete = True
        for _ in range(MAX_READS):
            try:
                n = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
            except BlockingIOError:
                return keys if complete else None
            except OSError as e:
                if e.errno != errno.ENOBUFS:  # anything else: stop watching, ask every time
                    log.warning("nf_tables notifications: %s; iptables is asked at every attachment", e)
                    self.close()
                    self._unavailable = True
                    return None
                complete = False  # the kernel dropped some: read on, but trust nothing
                continue
            if n > len(self._buf) or not parse_notifications(bytes(self._buf[:n]), keys):
                complete = False
        return None  # changes faster than they can be read: nothing is kept meanwhile

    def _open(self) -> None:
        if self._unavailable:
            return
        try:
            kind = socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            sock = socket.socket(socket.AF_NETLINK, kind, NETLINK_NETFILTER)
            try:
                sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
            except OSError:
                sock.close()
                raise
        except OSError as e:
            log.info("no nf_tables notifications (%s): iptables is asked at every attachment", e)
            self._unavailable = True
            return
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
