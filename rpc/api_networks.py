"""The client's network calls (io.varpod.Network), a mixin of ``rpc.api.API``.

``client.network_create("web", subnet="10.89.1.0/24")``, ``client.port("ctr")`` ...;
the async client returns the same as coroutines.
"""

from __future__ import annotations

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

NETWORK = "io.varpod.Network."


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class NetworkAPI:
    def _call(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def network_create(self, name: str, *, subnet: str | None = None, gateway: str | None = None,
                       internal: bool = False, labels: dict[str, str] | None = None,
                       disable_dns: bool = False, driver: str | None = None) -> Any:
        """A bridge network; returns its ``NetworkInfo`` (a free /24 when no subnet is given)."""
        params = _given(name=name, subnet=subnet, gateway=gateway, internal=internal or None,
                        labels=labels, disable_dns=disable_dns or None, driver=driver)
        return self._call(NETWORK + "Create", params, "network.CreateReply", "network")

    def network_inspect(self, name: str) -> Any:
        return self._call(NETWORK + "Inspect", {"name": name}, "network.InspectReply", "network")

    def network_list(self, filters: dict[str, str] | None = None) -> Any:
        return self._call(NETWORK + "List", _given(filters=filters), "network.ListReply", "networks")

    def network_exists(self, name: str) -> Any:
        return self._call(NETWORK + "Exists", {"name": name}, "network.ExistsReply", "exists")

    def network_remove(self, name: str, *, force: bool = False, timeout: int | None = None) -> Any:
        """Remove a network; ``force`` removes its containers first. Returns ``RemoveReply``."""
        return self._call(NETWORK + "Remove", _given(name=name, force=force or None, timeout=timeout),
                          "network.RemoveReply")

    def network_prune(self) -> Any:
        """Remove every unused network but the default; returns their names."""
        return self._call(NETWORK + "Prune", {}, "network.PruneReply", "names")

    def network_connect(self, name: str, container: str, *, ip: str | None = None,
                        mac_address: str | None = None, aliases: list[str] | None = None) -> Any:
        params = _given(name=name, container=container, ip=ip, mac_address=mac_address,
                        aliases=aliases)
        return self._call(NETWORK + "Connect", params, "network.ConnectionReply")

    def network_disconnect(self, name: str, container: str, *, force: bool = False) -> Any:
        return self._call(NETWORK + "Disconnect",
                          _given(name=name, container=container, force=force or None),
                          "network.ConnectionReply")

    def network_reload(self, container: str | None = None, *, all: bool = False) -> Any:
        """Set a container's network up again (its firewall rules too); returns the IDs done."""
        return self._call(NETWORK + "Reload", _given(container=container, all=all or None),
                          "network.ReloadReply", "containers")

    def port(self, container: str) -> Any:
        """The ports a container publishes, with the host ports it really holds."""
        return self._call(NETWORK + "Ports", {"container": container}, "network.PortsReply", "ports")
