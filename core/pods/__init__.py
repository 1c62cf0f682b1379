"""Pods: containers that share namespaces through an infra container, and a cgroup.

    store.py    pod records in SQLite (their own table)
    model.py    PodConfig (sharing flags, pod cgroup), derive_pod_status()
    infra.py    the infra container's rootfs (catatonit) and its create options
    part.py     PodPart: membership as the engine's Part (join namespaces, guard the infra)
    manager.py  Pods: the pod operations, through the engine's container operations
"""

from .manager import PodOptions, Pods, PodView
from .model import PodConfig, PodRecord, PodState, SharedNamespaces, derive_pod_status
from .store import PodStore

__all__ = ["PodConfig", "PodOptions", "PodRecord", "PodState", "PodStore", "PodView", "Pods",
           "SharedNamespaces", "derive_pod_status"]
