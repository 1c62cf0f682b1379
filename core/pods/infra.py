"""The infra container: a real container running Debian's ``catatonit -P`` (podman's pause
process) in a minimal root filesystem the daemon keeps under its root directory.

It exists only to hold the namespaces a pod shares; members join them through
``/proc/<infra pid>/ns/<type>`` in their OCI spec.
"""

from __future__ import annotations

import os
import shutil

from ..errors import Unsupported
from ..model import CreateOptions
from .model import PodConfig

CATATONIT = "/usr/bin/catatonit"  # Debian's package installs it here, statically linked
INFRA_COMMAND = ["/catatonit", "-P"]  # -P: pause forever, reaping children (a pid namespace's init)
# Files other parts bind-mount over (hostname, hosts, resolv.conf): they must exist in the rootfs.
ETC_FILES = ("hostname", "hosts", "resolv.conf")


def infra_name(pod: PodConfig) -> str:
    return f"{pod.id[:12]}-infra"  # podman's


def ensure_rootfs(root: str, catatonit: str = CATATONIT) -> str:
    """``<root>/infra/rootfs`` with an up-to-date copy of catatonit; returns its path.

    Shared read-only by every infra container. A newer catatonit on the host
    (a package upgrade) is copied in for the next infra container that starts.
    """
    rootfs = os.path.join(root, "infra", "rootfs")
    try:
        src = os.stat(catatonit)
    except FileNotFoundError:
        raise Unsupported(f"pods with shared namespaces need catatonit at {catatonit} for their "
                          "infra container: apt-get install catatonit", feature="pod infra") from None
    target = os.path.join(rootfs, "catatonit")
    try:
        have = os.stat(target)
        if have.st_size == src.st_size and have.st_mtime_ns == src.st_mtime_ns:
            return rootfs
    except FileNotFoundError:
        pass
    os.makedirs(os.path.join(root, "infra"), mode=0o700, exist_ok=True)
    for d in ("proc", "sys", "dev", "etc"):
        os.makedirs(os.path.join(rootfs, d), mode=0o755, exist_ok=True)
    os.chmod(rootfs, 0o755)
    for name in ETC_FILES:
        path = os.path.join(rootfs, "etc", name)
        if not os.path.exists(path):
            with open(path, "w"):
                pass
    # Copied, then renamed over: a container starting meanwhile sees the old or the new one.
    tmp = target + ".new"
    shutil.copy2(catatonit, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return rootfs


def infra_options(pod: PodConfig, rootfs: str) -> CreateOptions:
    """What the infra container of ``pod`` is created with.

    The pod's network belongs here: its ``--network`` and ``-p`` are this container's, and
    members sharing the network namespace join it (and its /etc/hosts and resolv.conf).
    """
    return CreateOptions(
        rootfs=rootfs, command=list(INFRA_COMMAND), name=infra_name(pod),
        hostname=pod.uts_hostname if pod.shares.uts else "", read_only=True,
        network=",".join(pod.networks), ports=list(pod.publish), stop_signal="SIGTERM",
        labels={}, pod=pod.id, pod_infra=True,
    )
