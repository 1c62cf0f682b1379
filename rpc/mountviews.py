"""A container's mounts as inspect (``Mounts``, ``HostConfig.Binds``/``Tmpfs``) and ps
(``Mounts``, ``MountSources``) show them."""

from __future__ import annotations

from typing import Any

from ..core.model import ContainerConfig
from ..core.volumes.model import BIND, TMPFS, VOLUME
from ..core.volumes.volumes import data_dir
from .interfaces import container as C


def inspect_mounts(root: str, cfg: ContainerConfig) -> list[C.InspectMount]:
    """podman's inspect ``Mounts``: volumes with their names and directories, binds, tmpfs."""
    out = []
    for m in cfg.mounts:
        if m.type == VOLUME:
            out.append(C.InspectMount(Type="volume", Name=m.source, Source=data_dir(root, m.source),
                                      Destination=m.destination, Driver="local", Mode="",
                                      Options=_shown(m.options), RW=m.rw, Propagation=m.propagation))
        elif m.type == BIND:
            out.append(C.InspectMount(Type="bind", Name="", Source=m.source, Destination=m.destination,
                                      Driver="", Mode="", Options=_shown(m.options), RW=m.rw,
                                      Propagation=m.propagation))
        else:
            out.append(C.InspectMount(Type="tmpfs", Name="", Source="tmpfs", Destination=m.destination,
                                      Driver="", Mode="", Options=list(m.options), RW=m.rw, Propagation=""))
    return out


def _shown(options: list[str]) -> list[str]:
    # podman lists the mount flags; rw/ro and the propagation have fields of their own
    return [o for o in options if o not in ("ro", "rw") and "private" not in o and "shared" not in o
            and "slave" not in o and "unbindable" not in o]


def host_config_mounts(cfg: ContainerConfig) -> dict[str, Any]:
    """HostConfig's Binds (``SRC:DEST[:OPTIONS]`` of binds and named volumes) and Tmpfs."""
    binds, tmpfs = [], {}
    for m in cfg.mounts:
        if m.type == TMPFS:
            tmpfs[m.destination] = ",".join(o for o in m.options if o != "tmpcopyup")
        elif not m.anonymous:
            flags = [o for o in m.options if o in ("ro", "rw", "nocopy") or "private" in o
                     or "shared" in o or "slave" in o]
            binds.append(":".join([m.source, m.destination, *([",".join(flags)] if flags else [])]))
    return {"Binds": binds, "Tmpfs": tmpfs}


def summary_mounts(cfg: ContainerConfig) -> dict[str, list[str]]:
    """ps's ``Mounts`` (destinations, as podman) and ``MountSources`` (volume names, host
    paths, tmpfs), side by side, for ``ps --filter volume=NAME|SRC:DEST``."""
    return {"Mounts": [m.destination for m in cfg.mounts],
            "MountSources": [m.source or m.type for m in cfg.mounts]}
