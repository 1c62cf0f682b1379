"""core/network/firewall.py: the masquerade's rules against canned iptables listings, and the
reading of nf_tables' notifications (iptables itself runs in tests/test_networks.py, in a
namespace of the test's own)."""

from __future__ import annotations

import os
import struct

import pytest

from varpod.core.errors import FirewallFailed
from varpod.core.monitor import Completed, ExitInfo
from varpod.core.network.firewall import (
    ensure_masquerade,
    masq_chain,
    parse_notifications,
    remove_masquerade,
    touched,
)
from varpod.core.network.types import Masquerade

pytestmark = pytest.mark.anyio

M = Masquerade(network="apps", chain=masq_chain("0123456789abcdef" * 4), subnet="10.89.1.0/24")
BASE = ["-P PREROUTING ACCEPT", "-P INPUT ACCEPT", "-P OUTPUT ACCEPT", "-P POSTROUTING ACCEPT"]
MADE = [*BASE, f"-N {M.chain}", f"-A POSTROUTING -s 10.89.1.0/24 -j {M.chain}",
        f"-A {M.chain} -d 10.89.1.0/24 -j ACCEPT", f"-A {M.chain} ! -d 224.0.0.0/4 -j MASQUERADE"]


class FakeIptables:
    """A monitor whose `iptables -t nat -S` prints ``listing``; records what is restored."""

    def __init__(self, listing: list[str], restore_fails: bool = False) -> None:
        self.listing = listing
        self.restore_fails = restore_fails
        self.restored: list[list[str]] = []

    async def run(self, argv, *, stdin=None, timeout=None, **kw) -> Completed:
        name = os.path.basename(argv[0])
        if name == "iptables":
            assert argv[1:] == ["-w", "-t", "nat", "-S"]
            return Completed(ExitInfo(0), "\n".join(self.listing).encode() + b"\n", b"")
        assert name == "iptables-restore" and argv[1:] == ["-w", "--noflush"]
        self.restored.append(os.pread(stdin, 1 << 16, 0).decode().splitlines())
        if self.restore_fails:
            return Completed(ExitInfo(1), b"", b"iptables-restore: line 3 failed\n")
        return Completed(ExitInfo(0), b"", b"")


def test_the_chain_name_fits_iptables_and_names_the_network_id():
    assert M.chain == "VARPOD-MASQ-0123456789ab" and len(M.chain) <= 28


async def test_rules_in_place_are_left_alone():
    fake = FakeIptables(MADE)
    assert await ensure_masquerade(fake, M) is False
    assert fake.restored == []


async def test_missing_rules_are_made_in_one_transaction():
    fake = FakeIptables([*BASE, "-A POSTROUTING -s 10.87.0.0/16 -j VARPOD-MASQ-ffffffffffff"])
    assert await ensure_masquerade(fake, M) is True
    assert fake.restored == [["*nat", f":{M.chain} - [0:0]", f"-A {M.chain} -d 10.89.1.0/24 -j ACCEPT",
                              f"-A {M.chain} ! -d 224.0.0.0/4 -j MASQUERADE",
                              f"-A POSTROUTING -s 10.89.1.0/24 -j {M.chain}", "COMMIT"]]


@pytest.mark.parametrize("listing", [
    # two jumps (made twice by hand, say)
    [*MADE, f"-A POSTROUTING -s 10.89.1.0/24 -j {M.chain}"],
    # the chain flushed, its jump kept
    [*BASE, f"-N {M.chain}", f"-A POSTROUTING -s 10.89.1.0/24 -j {M.chain}"],
    # a stale jump (another subnet) beside the right one
    [*MADE, f"-A POSTROUTING -s 10.89.2.0/24 -j {M.chain}"],
])
async def test_wrong_rules_are_replaced_leaving_one_jump(listing):
    fake = FakeIptables(listing)
    assert await ensure_masquerade(fake, M) is True
    [script] = fake.restored
    jumps = [line for line in listing if line.startswith("-A POSTROUTING")]
    # Every jump there was is deleted and one added, in the same transaction as the chain's
    # rules: nothing is ever doubled, and no moment is without a masquerade.
    assert script[1] == f":{M.chain} - [0:0]"
    assert script[4:-2] == ["-D" + j[2:] for j in jumps]
    assert script[-2:] == [f"-A POSTROUTING -s 10.89.1.0/24 -j {M.chain}", "COMMIT"]


async def test_removal_takes_the_jumps_and_the_chain_and_nothing_else():
    other = "-A POSTROUTING -s 10.87.0.0/16 -j VARPOD-MASQ-ffffffffffff"
    fake = FakeIptables([*MADE, other])
    await remove_masquerade(fake, M)
    assert fake.restored == [["*nat", f"-D POSTROUTING -s 10.89.1.0/24 -j {M.chain}", f"-F {M.chain}",
                              f"-X {M.chain}", "COMMIT"]]
    gone = FakeIptables([*BASE, other])
    await remove_masquerade(gone, M)
    assert gone.restored == []  # nothing of it left: nothing run


async def test_a_failed_restore_says_so():
    with pytest.raises(FirewallFailed) as e:
        await ensure_masquerade(FakeIptables(BASE, restore_fails=True), M)
    assert e.value.command == "iptables-restore" and "line 3 failed" in e.value.message


# -- nf_tables notifications ---------------------------------------------------------------------


def _attr(kind: int, text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("=HH", 4 + len(data), kind) + data + b"\0" * (-len(data) % 4)


def _message(kind: int, family: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | kind, 0, 0, 0) + body


def test_notifications_name_the_table_and_chain_they_change():
    keys: set = set()
    data = b"".join([
        _message(6, 2, _attr(1, "filter"), _attr(2, "FORWARD")),  # NEWRULE
        _message(3, 2, _attr(1, "nat"), _attr(3, "VARPOD-MASQ-0123456789ab")),  # NEWCHAIN
        _message(2, 2, _attr(1, "mangle")),  # DELTABLE: the whole table
        _message(9, 2, _attr(1, "raw")),  # NEWSET: counted as the whole table
        _message(8, 10, _attr(1, "filter"), _attr(2, "FORWARD")),  # ip6tables: not read here
        _message(15, 0, _attr(3, "iptables")),  # NEWGEN: the end of every batch
    ])
    assert parse_notifications(data, keys)
    assert keys == {("filter", "FORWARD"), ("nat", "VARPOD-MASQ-0123456789ab"), ("mangle", ""),
                    ("raw", "")}
    assert touched(keys, "filter", "FORWARD") and touched(keys, "mangle", "PREROUTING")
    assert not touched(keys, "filter", "INPUT") and not touched(keys, "nat", "POSTROUTING")
    assert touched(None, "nat", "POSTROUTING")  # unknown: anything may have changed


def test_a_malformed_notification_is_not_trusted():
    whole = _message(6, 2, _attr(1, "filter"), _attr(2, "FORWARD"))
    assert parse_notifications(whole, set())
    assert not parse_notifications(whole[:-4], set())  # cut short
    assert not parse_notifications(struct.pack("=IHHII", 400, 10 << 8, 0, 0, 0) + b"\0" * 8, set())
    assert not parse_notifications(struct.pack("=IHHII", 8, 10 << 8, 0, 0, 0), set())


def test_without_iptables_nft_nothing_is_watched(monkeypatch):
    from varpod.core.network import firewall

    monkeypatch.setattr(firewall, "iptables_is_nft", lambda: False)
    watch = firewall.RulesetWatch()
    # iptables-legacy tells nobody of its changes: every look says "anything may have changed".
    assert watch.changes() is None and watch.changes() is None and not watch.active
