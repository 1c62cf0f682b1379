"""What a container mounts (``Mount``, part of its config) and what a volume is (``VolumeRecord``)."""

from __future__ import annotations

import msgspec

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"
LOCAL = "local"  # the one volume driver: a directory under the daemon's root


class Mount(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One mount of a container, checked at create; ``options`` are the OCI mount options
    it gets at every start (bind/volume: rbind, propagation, ro ...; tmpfs: size, mode ...)."""

    type: str  # bind, volume or tmpfs
    destination: str  # clean absolute path in the container
    source: str = ""  # bind: the host path; volume: the volume's name; tmpfs: ""
    options: list[str] = []
    rw: bool = True
    propagation: str = ""  # bind and volume: rprivate unless asked
    anonymous: bool = False  # a volume made for this container (-v /dir, an image VOLUME)
    copy_up: bool = True  # volume: fill an empty volume from the image's content at its path
    spec: str = ""  # what the user wrote (errors, inspect's HostConfig.Binds)


class VolumeRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    driver: str = LOCAL
    created_at: int = 0  # ns since the epoch
    labels: dict[str, str] = {}
    options: dict[str, str] = {}
    anonymous: bool = False
    # The container an anonymous volume was made for, while that container exists: after a
    # crash, an anonymous volume whose container never got its record is collected.
    owner: str = ""
    # Set at create; the first container that mounts the volume clears them (podman's
    # NeedsCopyUp/NeedsChown): an empty volume gets the image's files and owner at its path.
    needs_copy_up: bool = True
    needs_chown: bool = True
