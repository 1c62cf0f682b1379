"""Client calls for pods, stats and top: a mixin of ``rpc.api.API`` (sync and async clients)."""

from __future__ import annotations

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

POD = "io.varpod.Pod."
CONTAINER = "io.varpod.Container."


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class PodAPI:
    # Supplied by the clients (as for rpc.api.API).
    def _call(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def pod_create(self, name: str | None = None, *, labels: dict[str, str] | None = None,
                   hostname: str | None = None, cgroup_parent: str | None = None,
                   pod_cgroup: bool | None = None, share: list[str] | str | None = None,
                   infra: bool | None = None, publish: list[str] | None = None,
                   networks: list[str] | None = None) -> Any:
        """Create a pod; returns ``CreateReply(id, name)``.

        ``share``: namespaces members join (``["net", "uts"]``, ``"net,uts"``, ``"none"``;
        default ipc, net, uts). ``pod_cgroup=False``: members' cgroups are not put
        under one of the pod's. ``publish`` (-p specs) and ``networks`` (names) are the pod's
        network, which its infra container owns and members sharing ``net`` join.
        """
        if isinstance(share, str):
            share = [share]
        spec = _given(name=name, labels=labels, hostname=hostname, cgroup_parent=cgroup_parent,
                      pod_cgroup=pod_cgroup, share=share, infra=infra, publish=publish,
                      networks=networks)
        return self._call(POD + "Create", {"spec": spec}, "pod.CreateReply")

    def pod_start(self, name: str) -> Any:
        return self._call(POD + "Start", {"name": name}, "pod.IdReply", "id")

    def pod_stop(self, name: str, timeout: int | None = None) -> Any:
        return self._call(POD + "Stop", _given(name=name, timeout=timeout), "pod.IdReply", "id")

    def pod_kill(self, name: str, signal: str | int | None = None) -> Any:
        sig = None if signal is None else str(signal)
        return self._call(POD + "Kill", _given(name=name, signal=sig), "pod.IdReply", "id")

    def pod_pause(self, name: str) -> Any:
        return self._call(POD + "Pause", {"name": name}, "pod.IdReply", "id")

    def pod_unpause(self, name: str) -> Any:
        return self._call(POD + "Unpause", {"name": name}, "pod.IdReply", "id")

    def pod_restart(self, name: str, timeout: int | None = None) -> Any:
        return self._call(POD + "Restart", _given(name=name, timeout=timeout), "pod.IdReply", "id")

    def pod_remove(self, name: str, *, force: bool = False, timeout: int | None = None) -> Any:
        return self._call(POD + "Remove", _given(name=name, force=force or None, timeout=timeout),
                          "pod.IdReply", "id")

    def pod_inspect(self, name: str) -> Any:
        return self._call(POD + "Inspect", {"name": name}, "pod.InspectReply", "pod")

    def pod_list(self) -> Any:
        return self._call(POD + "List", {}, "pod.ListReply", "pods")

    def pod_stats(self, names: list[str] | None = None, *, stream: bool = False,
                  interval: float | None = None) -> Any:
        """Stats of the pods' running containers: a list, or (``stream``) an iterator of lists."""
        return self._stats(POD + "Stats", names, stream, interval)

    def pod_top(self, name: str, descriptors: list[str] | None = None) -> Any:
        return self._call(POD + "Top", _given(name=name, descriptors=descriptors),
                          "container.TopReply")

    # -- containers ---------------------------------------------------------------------

    def stats(self, names: list[str] | None = None, *, stream: bool = False,
              interval: float | None = None) -> Any:
        """Stats of the named (or all running) containers: a list of ``ContainerStats``, or
        (``stream``) an iterator yielding such a list every ``interval`` seconds (default 5)."""
        return self._stats(CONTAINER + "Stats", names, stream, interval)

    def top(self, name: str, descriptors: list[str] | None = None) -> Any:
        """``TopReply(titles, processes)``: podman's top descriptors, or ps(1) arguments."""
        return self._call(CONTAINER + "Top", _given(name=name, descriptors=descriptors),
                          "container.TopReply")

    def _stats(self, method: str, names: list[str] | None, stream: bool,
               interval: float | None) -> Any:
        params = _given(names=list(names) if names else None, stream=stream or None,
                        interval=interval)
        if stream:
            return self._stream(method, params, "container.StatsReply", "stats")
        return self._call(method, params, "container.StatsReply", "stats")
