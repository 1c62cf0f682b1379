"""The client's volume calls (io.varpod.Volume), a mixin of ``rpc.api.API``.

``client.volume_create("cache")``, ``client.volume_list(filters={"dangling": ["true"]})``
...; the async client returns the same as coroutines.
"""

from __future__ import annotations

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

VOLUME = "io.varpod.Volume."


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class VolumeAPI:
    def _call(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def volume_create(self, name: str | None = None, *, driver: str | None = None,
                      labels: dict[str, str] | None = None, options: dict[str, str] | None = None,
                      ignore: bool = False) -> Any:
        """A volume on the local driver (a random name when none is given); its ``VolumeInfo``."""
        params = _given(name=name, driver=driver, labels=labels, options=options, ignore=ignore or None)
        return self._call(VOLUME + "Create", params, "volume.VolumeReply", "volume")

    def volume_inspect(self, name: str) -> Any:
        return self._call(VOLUME + "Inspect", {"name": name}, "volume.VolumeReply", "volume")

    def volume_list(self, filters: dict[str, list[str]] | None = None) -> Any:
        """Volumes; ``filters``: name, label, driver, dangling, anonymous (each a list of values)."""
        return self._call(VOLUME + "List", _given(filters=filters), "volume.ListReply", "volumes")

    def volume_exists(self, name: str) -> Any:
        return self._call(VOLUME + "Exists", {"name": name}, "volume.ExistsReply", "exists")

    def volume_remove(self, name: str, *, force: bool = False, timeout: int | None = None) -> Any:
        """Refused while containers use it, unless ``force`` (which removes them first)."""
        return self._call(VOLUME + "Remove", _given(name=name, force=force or None, timeout=timeout),
                          "volume.RemoveReply")

    def volume_prune(self, filters: dict[str, list[str]] | None = None) -> Any:
        """Remove every volume no container uses; returns their names."""
        return self._call(VOLUME + "Prune", _given(filters=filters), "volume.PruneReply", "names")
