"""The wire API: per interface, its varlink IDL text and the Structs that match it.

``tests/rpc/test_interfaces.py`` parses each IDL text and checks it against the
Structs, so the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent

INTERFACES = ("org.varlink.service", "io.varpod.System", "io.varpod.Container", "io.varpod.Image",
              "io.varpod.Network", "io.varpod.Pod", "io.varpod.Volume")


def idl(interface: str) -> str:
    if interface not in INTERFACES:
        raise KeyError(interface)
    return (_HERE / f"{interface}.varlink").read_text()
