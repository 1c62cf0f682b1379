"""Where a process's cgroups are on this host, for reading them (stats, top) and for
removing a pod's cgroup once its containers are gone.

Both layouts are handled: cgroup v1 (one hierarchy per controller, plus
``name=systemd``; this machine) and v2 (one unified hierarchy), and the hybrid of
the two, where v1 controllers win. Paths come from ``/proc/<pid>/cgroup`` as the
host sees them, so a container's cgroup is found wherever its runtime put it.
"""

from __future__ import annotations

import logging
import os
import re

from .errors import InvalidPodConfig

log = logging.getLogger("varpod.cgroups")

MOUNTINFO = "/proc/self/mountinfo"
# A cgroup path the daemon makes or is given: absolute, plain components only.
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
PATH_MAX = 1024
# Options of a v1 cgroup mount that are not controllers.
_MOUNT_FLAGS = frozenset({"rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode"})


class Hierarchy:
    """One mounted cgroup hierarchy: v1 (with its controllers) or the v2 unified one."""

    __slots__ = ("controllers", "mountpoint", "root", "v2")

    def __init__(self, mountpoint: str, root: str, controllers: frozenset[str], v2: bool) -> None:
        self.mountpoint = mountpoint
        self.root = root  # the cgroup this mount shows as its top (not "/" inside a cgroupns)
        self.controllers = controllers
        self.v2 = v2

    def host_dir(self, path: str) -> str | None:
        """The directory of cgroup ``path`` (as /proc/PID/cgroup names it); None if outside."""
        root = self.root.rstrip("/")
        if root and path != root and not path.startswith(root + "/"):
            return None
        return os.path.join(self.mountpoint, path[len(root):].lstrip("/"))


def parse_mountinfo(text: str) -> list[Hierarchy]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3] if len(fields) > sep + 3 else ""
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup":
            names = {o for o in options.split(",")
                     if o.startswith("name=") or (o not in _MOUNT_FLAGS and "=" not in o)}
            found.append(Hierarchy(mountpoint, root, frozenset(names), False))
        elif fstype == "cgroup2":
            found.append(Hierarchy(mountpoint, root, _v2_controllers(mountpoint), True))
    return found


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _v2_controllers(mountpoint: str) -> frozenset[str]:
    try:
        with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
            return frozenset(f.read().split())
    except OSError:
        return frozenset()


_hierarchies: list[Hierarchy] | None = None


def hierarchies() -> list[Hierarchy]:
    """The host's cgroup mounts (read once: they do not change under a running daemon)."""
    global _hierarchies
    if _hierarchies is None:
        with open(MOUNTINFO) as f:
            _hierarchies = parse_mountinfo(f.read())
    return _hierarchies


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/PID/cgroup`` -> {controller list ("" for v2): path}."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2]
    return out


def controller_dirs(pid: int, mounts: list[Hierarchy] | None = None) -> dict[str, str]:
    """Controller name -> the directory of ``pid``'s cgroup for it; ``""`` -> its v2 cgroup.

    A controller mounted as v1 is read there; the others from the unified hierarchy,
    where the controllers enabled at its root are.
    """
    with open(f"/proc/{pid}/cgroup") as f:
        paths = parse_proc_cgroup(f.read())
    dirs: dict[str, str] = {}
    for h in mounts if mounts is not None else hierarchies():
        if h.v2:
            path = paths.get("")
            where = h.host_dir(path) if path is not None else None
            if where is not None:
                dirs[""] = where
                for c in h.controllers:
                    dirs.setdefault(c, where)
            continue
        for key, path in paths.items():
            if key and h.controllers & set(key.split(",")):
                where = h.host_dir(path)
                if where is not None:
                    for c in h.controllers:
                        dirs[c] = where  # v1 wins over v2 for the same controller
    return dirs


def check_path(path: str, field: str = "cgroup_parent") -> str:
    """A cgroup path given by a user: absolute, of plain components (the cgroupfs driver)."""
    if not isinstance(path, str) or not path.startswith("/") or len(path) > PATH_MAX:
        raise InvalidPodConfig(f"cgroup parent {str(path)[:80]!r} is not an absolute path such "
                               "as /varpod-pods", field=field)
    parts = [p for p in path.split("/") if p]
    if not parts or not all(_COMPONENT.match(p) for p in parts):
        raise InvalidPodConfig(f"cgroup parent {path[:80]!r} must be made of components of "
                               "[A-Za-z0-9_.-] (not . or ..), such as /varpod-pods", field=field)
    return "/" + "/".join(parts)


def remove(path: str, mounts: list[Hierarchy] | None = None) -> list[str]:
    """Remove cgroup ``path`` (and any empty child left in it) from every hierarchy.

    Returns the directories that could not go (a process is still in them); a cgroup
    that is already gone counts as removed.
    """
    failed = []
    for h in mounts if mounts is not None else hierarchies():
        top = h.host_dir(path)
        if top is None or not os.path.isdir(top):
            continue
        for where, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):  # children first
            try:
                os.rmdir(where)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove cgroup %s: %s", where, e.strerror)
                failed.append(where)
    return failed


def exists(path: str, mounts: list[Hierarchy] | None = None) -> list[str]:
    """The directories of cgroup ``path`` that exist, over every hierarchy."""
    found = []
    for h in mounts if mounts is not None else hierarchies():
        top = h.host_dir(path)
        if top is not None and os.path.isdir(top):
            found.append(top)
    return found
