"""Networks, endpoints, sandboxes and masquerades in SQLite (WAL), next to the containers' database.

A file of its own (``network.db``): its rows change with CNI calls, not with container
states, and the two never need one transaction. Reads come from a write-through cache.
"""

from __future__ import annotations

import threading

import msgspec

from ..errors import NetworkExists, NoSuchNetwork
from ..store import connect
from .types import Endpoint, Masquerade, Network, Sandbox

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    name   TEXT PRIMARY KEY,
    id     TEXT NOT NULL UNIQUE,
    record BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    container_id TEXT NOT NULL,
    network      TEXT NOT NULL,
    record       BLOB NOT NULL,
    PRIMARY KEY (container_id, network)
);
CREATE TABLE IF NOT EXISTS sandboxes (
    container_id TEXT PRIMARY KEY,
    record       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS masquerades (
    chain  TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode
_network = msgspec.json.Decoder(Network).decode
_endpoint = msgspec.json.Decoder(Endpoint).decode
_sandbox = msgspec.json.Decoder(Sandbox).decode
_masquerade = msgspec.json.Decoder(Masquerade).decode


class NetworkStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db = connect(path, SCHEMA)
        self._lock = threading.Lock()  # guards the connection (the loop writes, close may race)
        self._networks = {name: _network(r) for name, r in self._db.execute(
            "SELECT name, record FROM networks")}
        self._endpoints: dict[str, dict[str, Endpoint]] = {}
        for cid, net, r in self._db.execute("SELECT container_id, network, record FROM endpoints"):
            self._endpoints.setdefault(cid, {})[net] = _endpoint(r)
        self._sandboxes = {cid: _sandbox(r) for cid, r in self._db.execute(
            "SELECT container_id, record FROM sandboxes")}
        # By chain, not network name: a network removed while its rules could not be, and
        # another of the same name made since, both keep theirs.
        self._masquerades = {chain: _masquerade(r) for chain, r in self._db.execute(
            "SELECT chain, record FROM masquerades")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple) -> None:
        with self._lock:
            self._db.execute(sql, args)

    # -- networks -------------------------------------------------------------------

    def add_network(self, net: Network) -> None:
        if net.name in self._networks:
            raise NetworkExists(f"network {net.name} already exists", name=net.name)
        self._run("INSERT INTO networks (name, id, record) VALUES (?, ?, ?)",
                  (net.name, net.id, _encode(net)))
        self._networks[net.name] = net

    def delete_network(self, name: str) -> None:
        self._networks.pop(name, None)
        self._run("DELETE FROM networks WHERE name = ?", (name,))

    def networks(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: (n.created_at, n.name))

    def find_network(self, ref: str) -> Network:
        """By name, full ID or unique ID prefix, as podman resolves networks."""
        net = self._networks.get(ref)
        if net is not None:
            return net
        if ref and len(ref) <= 64 and all(c in "0123456789abcdef" for c in ref):
            found = [n for n in self._networks.values() if n.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
        raise NoSuchNetwork(f"no network with name or ID {ref[:100]!r}", name=ref[:253])

    # -- endpoints ------------------------------------------------------------------------

    def save_endpoint(self, ep: Endpoint) -> None:
        self._run("INSERT OR REPLACE INTO endpoints (container_id, network, record) VALUES (?, ?, ?)",
                  (ep.container_id, ep.network, _encode(ep)))
        self._endpoints.setdefault(ep.container_id, {})[ep.network] = ep

    def delete_endpoint(self, cid: str, network: str) -> None:
        eps = self._endpoints.get(cid)
        if eps is not None:
            eps.pop(network, None)
            if not eps:
                del self._endpoints[cid]
        self._run("DELETE FROM endpoints WHERE container_id = ? AND network = ?", (cid, network))

    def endpoints_of(self, cid: str) -> list[Endpoint]:
        """In interface order (eth0 first)."""
        eps = self._endpoints.get(cid, {})
        return sorted(eps.values(), key=lambda e: _ifindex(e.ifname))

    def endpoint(self, cid: str, network: str) -> Endpoint | None:
        return self._endpoints.get(cid, {}).get(network)

    def endpoints_on(self, network: str) -> list[Endpoint]:
        return [eps[network] for eps in self._endpoints.values() if network in eps]

    def containers_with_endpoints(self) -> list[str]:
        return list(self._endpoints)

    # -- sandboxes ------------------------------------------------------------------------

    def save_sandbox(self, sb: Sandbox) -> None:
        self._run("INSERT OR REPLACE INTO sandboxes (container_id, record) VALUES (?, ?)",
                  (sb.container_id, _encode(sb)))
        self._sandboxes[sb.container_id] = sb

    def delete_sandbox(self, cid: str) -> None:
        self._sandboxes.pop(cid, None)
        self._run("DELETE FROM sandboxes WHERE container_id = ?", (cid,))

    def sandbox(self, cid: str) -> Sandbox | None:
        return self._sandboxes.get(cid)

    def sandboxes(self) -> list[Sandbox]:
        return list(self._sandboxes.values())

    # -- masquerades --------------------------------------------------------------------

    def save_masquerade(self, m: Masquerade) -> None:
        if self._masquerades.get(m.chain) == m:
            return
        self._run("INSERT OR REPLACE INTO masquerades (chain, record) VALUES (?, ?)",
                  (m.chain, _encode(m)))
        self._masquerades[m.chain] = m

    def delete_masquerade(self, chain: str) -> None:
        if self._masquerades.pop(chain, None) is not None:
            self._run("DELETE FROM masquerades WHERE chain = ?", (chain,))

    def masquerades(self) -> list[Masquerade]:
        return list(self._masquerades.values())


def _ifindex(ifname: str) -> int:
    digits = ifname[3:]
    return int(digits) if ifname.startswith("eth") and digits.isdigit() else 1 << 30
