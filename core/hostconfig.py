"""What a container may do on its host, as podman's run flags set it: capabilities
(--cap-add/--cap-drop, --privileged), no-new-privileges, rlimits (--ulimit), sysctls,
devices, the size of /dev/shm, an init process (--init: catatonit), the log driver,
annotations and the user namespace.

``config_fields(opts)`` checks what a caller asked for at create and returns the
ContainerConfig fields; ``apply(config, spec)`` and ``apply_exec(config, process)``
write them into the OCI spec at each start and exec. Every refusal names the option
and says why; nothing asked for is dropped quietly.
"""

from __future__ import annotations

import os
import resource
import stat
from typing import TYPE_CHECKING

from .errors import InvalidConfig

if TYPE_CHECKING:
    from .model import ContainerConfig, CreateOptions

# The rlimits a container may set (podman's --ulimit names), by Linux's numbers
# (Python's resource module lacks RLIMIT_LOCKS).
ULIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
    "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13,
    "rtprio": 14, "rttime": 15,
}
UNLIMITED = (1 << 64) - 1  # RLIM_INFINITY as the OCI spec (uint64) carries it

# Sysctls a container may set: those of the namespaces it has of its own (podman's list).
SYSCTLS_IPC = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                         "kernel.shm_rmid_forced"))
SYSCTLS_UTS = frozenset(("kernel.domainname", "kernel.hostname"))

LOG_DRIVERS = {"k8s-file": "k8s-file", "json-file": "k8s-file", "none": "none"}
DEFAULT_SHM_SIZE = 64 << 20  # podman's 65536k
INIT_PATHS = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/libexec/catatonit/catatonit")
# Inside the container's own /dev tmpfs, so a --rootfs directory is never written to
# (podman mounts it at /run/podman-init, which creates that file in the rootfs).
INIT_DEST = "/dev/init"
TTY_GID = 5  # the tty group devpts gives terminals


def config_fields(opts: CreateOptions) -> dict:
    """The ContainerConfig fields for these options, each checked."""
    from .spec import bounding_caps

    held = bounding_caps()
    add = [_cap_name(c, "cap_add") for c in opts.cap_add]
    drop = [_cap_name(c, "cap_drop") for c in opts.cap_drop]
    merge_capabilities(held if opts.privileged else default_caps(held), add, drop, held)
    if opts.init:
        init_path()
    return {
        "cap_add": add, "cap_drop": drop, "privileged": opts.privileged,
        "no_new_privileges": opts.no_new_privileges,
        "ulimits": {name: list(v) for name, v in (parse_ulimit(u) for u in opts.ulimits)},
        "sysctls": check_sysctls(opts.sysctls, opts.network),
        "devices": [check_device(d) for d in opts.devices],
        "shm_size": check_shm_size(opts.shm_size),
        "init": opts.init,
        "log_driver": check_log_driver(opts.log_driver),
        "annotations": check_annotations(opts.annotations),
        "userns": check_userns(opts.userns),
    }


# -- capabilities ------------------------------------------------------------------------------


def _cap_name(name: str, field: str) -> str:
    from .spec import ALL_CAPS

    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    cap = upper if upper.startswith("CAP_") else "CAP_" + upper
    if cap not in ALL_CAPS:
        raise InvalidConfig(f"unknown capability {name[:40]!r} (--{field.replace('_', '-')})",
                            field=field)
    return cap


def default_caps(held: list[str]) -> list[str]:
    from .spec import DEFAULT_CAPS

    return [c for c in DEFAULT_CAPS if c in held]


def merge_capabilities(base: list[str], add: list[str], drop: list[str], held: list[str]) -> list[str]:
    """podman's MergeCapabilities: ``drop ALL`` keeps only what is added, ``add ALL`` is
    everything the daemon holds; a capability both added and dropped is an error."""
    for cap in add:
        if cap != "ALL" and cap not in held:
            raise InvalidConfig(f"capability {cap} is not in the daemon's bounding set, so no "
                                "container can have it", field="cap_add")
    if "ALL" in drop:
        if "ALL" in add:
            raise InvalidConfig("adding all caps and removing all caps not allowed", field="cap_add")
        return sorted(set(add))
    if "ALL" in add:
        base, add = list(held), []
    for cap in add:
        if cap in drop:
            raise InvalidConfig(f"capability {cap} cannot be dropped and added", field="cap_add")
    caps = [c for c in base if c not in drop]
    caps += [c for c in add if c not in caps]
    return sorted(caps)


def container_caps(config: ContainerConfig) -> list[str]:
    from .spec import bounding_caps

    held = bounding_caps()
    base = held if config.privileged else default_caps(held)
    return merge_capabilities(base, list(config.cap_add), list(config.cap_drop), held)


# -- rlimits, sysctls, devices, /dev/shm -----------------------------------------------------------


def parse_ulimit(text: str) -> tuple[str, tuple[int, int]]:
    """``nofile=1024:2048`` (``-1`` unlimited) -> ("RLIMIT_NOFILE", (soft, hard)), never above
    the daemon's own hard limit: raising one needs CAP_SYS_RESOURCE, which it may lack."""
    name, sep, values = text.partition("=")
    key = name.strip().lower()
    if not sep or key not in ULIMITS:
        raise InvalidConfig(f"invalid ulimit {text[:80]!r}: give NAME=SOFT[:HARD] with NAME one "
                            f"of {', '.join(sorted(ULIMITS))}", field="ulimits")
    soft_text, _, hard_text = values.partition(":")
    soft = _limit(soft_text, text)
    hard = _limit(hard_text, text) if hard_text else soft
    if soft > hard:
        raise InvalidConfig(f"ulimit {text!r}: the soft limit is above the hard limit",
                            field="ulimits")
    _, daemon_hard = resource.getrlimit(ULIMITS[key])
    ceiling = UNLIMITED if daemon_hard == resource.RLIM_INFINITY else daemon_hard
    if hard > ceiling:
        shown = "unlimited" if hard == UNLIMITED else hard
        raise InvalidConfig(f"ulimit {text!r}: {shown} is above the daemon's own hard limit of "
                            f"{ceiling} for {key}; raising it needs CAP_SYS_RESOURCE",
                            field="ulimits")
    return "RLIMIT_" + key.upper(), (soft, hard)


def _limit(text: str, whole: str) -> int:
    text = text.strip()
    if text in ("-1", "unlimited"):
        return UNLIMITED
    if not text.isdigit():
        raise InvalidConfig(f"ulimit {whole!r}: {text!r} is not a number (or -1 for unlimited)",
                            field="ulimits")
    return int(text)


def rlimits(config: ContainerConfig, defaults: list[dict]) -> list[dict]:
    """The default rlimits with the container's --ulimit values over them."""
    given = {name: v for name, v in config.ulimits.items()}
    out = [d for d in defaults if d["type"] not in given]
    out += [{"type": name, "soft": v[0], "hard": v[1]} for name, v in given.items()]
    return out


def check_sysctls(sysctls: dict[str, str], network: str) -> dict[str, str]:
    for name in sysctls:
        if name in SYSCTLS_IPC or name.startswith("fs.mqueue."):
            continue
        if name in SYSCTLS_UTS:
            continue
        if name.startswith("net."):
            if network == "host":
                raise InvalidConfig(f"sysctl {name!r} is not allowed with --network host: the "
                                    "container shares the host's network namespace",
                                    field="sysctls")
            continue
        raise InvalidConfig(f"sysctl {name!r} is not allowed: only the namespaced ones "
                            "(kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*, "
                            "kernel.hostname, kernel.domainname) can be set", field="sysctls")
    return dict(sysctls)


def check_device(text: str) -> str:
    """``/dev/HOST[:/dev/CONTAINER][:PERMISSIONS]``: the host path must be a device (or a
    directory of them); permissions are some of ``rwm``."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise InvalidConfig(f"invalid device {text[:80]!r}: give HOST[:CONTAINER][:PERMISSIONS]",
                            field="devices")
    host = parts[0]
    target, perms = host, "rwm"
    if len(parts) == 2:
        if _is_perms(parts[1]):
            perms = parts[1]
        else:
            target = parts[1]
    elif len(parts) == 3:
        target, perms = parts[1], parts[2]
    if not _is_perms(perms):
        raise InvalidConfig(f"device {text!r}: permissions {perms!r} are not some of r, w, m",
                            field="devices")
    if not host.startswith("/") or not target.startswith("/"):
        raise InvalidConfig(f"device {text!r}: paths must be absolute", field="devices")
    if not host_devices(host):
        raise InvalidConfig(f"device {host!r} is not a device on this host", field="devices")
    return f"{host}:{target}:{perms}"


def _is_perms(text: str) -> bool:
    return bool(text) and all(c in "rwm" for c in text) and len(set(text)) == len(text)


def host_devices(path: str) -> list[tuple[str, os.stat_result]]:
    """The device nodes at path (one, or every one under a directory)."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return [(path, st)]
    if not stat.S_ISDIR(st.st_mode):
        return []
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not (root == "/dev" and d in ("pts", "shm", "mqueue"))]
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append((full, st))
    return found


def check_shm_size(size: int | None) -> int:
    if size is None:
        return DEFAULT_SHM_SIZE
    if size < 0:
        raise InvalidConfig(f"shm size {size} is negative", field="shm_size")
    return size


def check_log_driver(name: str) -> str:
    if name not in LOG_DRIVERS:
        raise InvalidConfig(f"log driver {name[:40]!r} is not supported by varpod: use k8s-file "
                            "(the default; json-file is the same) or none", field="log_driver")
    return LOG_DRIVERS[name]


def check_annotations(annotations: dict[str, str]) -> dict[str, str]:
    for key in annotations:
        if not key or "\0" in key or "\0" in annotations[key]:
            raise InvalidConfig(f"invalid annotation {key[:80]!r}", field="annotations")
        if key.startswith("io.varpod."):
            raise InvalidConfig(f"annotation {key!r}: the io.varpod. prefix is varpod's own",
                                field="annotations")
    return dict(annotations)


def check_userns(mode: str) -> str:
    """"" or host: the host's user namespace (podman's default as root); ns:PATH joins one."""
    if mode in ("", "host"):
        return ""
    if mode.startswith("ns:"):
        path = mode[3:]
        if not path.startswith("/") or not os.path.exists(path):
            raise InvalidConfig(f"--userns {mode!r}: {path!r} is not a user namespace path",
                                field="userns")
        userns_mappings(path)
        return mode
    name = mode.partition(":")[0]
    if name in ("keep-id", "nomap"):
        why = "it exists for rootless podman, and varpod runs containers as root"
    elif name in ("auto", "private"):
        why = ("it needs the root filesystem owned by the mapped IDs (podman chowns image "
               "layers for it); varpod never rewrites a rootfs it was given")
    else:
        why = "it is not one of podman's modes"
    raise InvalidConfig(f"--userns {mode!r} is not supported by varpod: {why}; use host "
                        "(the default) or ns:PATH", field="userns")


def userns_mappings(path: str) -> tuple[list[dict], list[dict]]:
    """The ID mappings of the user namespace at /proc/PID/ns/user (runc 1.1 wants them stated
    even when it joins a namespace, and reads them from nowhere else)."""
    head, _, tail = path.rpartition("/ns/")
    if tail != "user" or not head.startswith("/proc/"):
        raise InvalidConfig(f"--userns ns:{path}: varpod joins user namespaces given as "
                            "/proc/PID/ns/user (runc needs the process's ID mappings)",
                            field="userns")
    maps = []
    for name in ("uid_map", "gid_map"):
        try:
            with open(os.path.join(head, name)) as f:
                rows = [line.split() for line in f if line.strip()]
        except OSError as e:
            raise InvalidConfig(f"--userns ns:{path}: cannot read its {name}: {e.strerror}",
                                field="userns") from None
        maps.append([{"containerID": int(r[0]), "hostID": int(r[1]), "size": int(r[2])}
                     for r in rows])
    return maps[0], maps[1]


def init_path() -> str:
    for path in INIT_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise InvalidConfig("--init needs catatonit, which is not installed "
                        "(apt-get install catatonit)", field="init")


# -- into the OCI spec ------------------------------------------------------------------------


def apply(config: ContainerConfig, spec: dict) -> dict:
    """The container's host settings written into its OCI spec (each start)."""
    process, linux = spec["process"], spec["linux"]
    caps = container_caps(config)
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    process["noNewPrivileges"] = config.no_new_privileges
    process["rlimits"] = rlimits(config, process["rlimits"])
    if config.sysctls:
        linux["sysctl"] = dict(config.sysctls)
    for m in spec["mounts"]:
        if m["destination"] == "/dev/shm":
            m["options"] = [o for o in m["options"] if not o.startswith("size=")]
            if config.shm_size:
                m["options"].append(f"size={config.shm_size // 1024}k")
    if config.privileged:
        _privileged(spec)
    devices = [d for item in config.devices for d in _oci_devices(item)]
    if devices:
        linux.setdefault("devices", []).extend(devices)
        linux["resources"]["devices"].extend(
            {"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
             "access": d.pop("access")} for d in devices)
    if config.init:
        spec["mounts"].append({"destination": INIT_DEST, "type": "bind", "source": init_path(),
                               "options": ["bind", "ro"]})
        process["args"] = [INIT_DEST, "--", *process["args"]]
    if config.annotations:
        spec["annotations"] = {**config.annotations, **spec["annotations"]}
    if config.userns:
        path = config.userns[3:]
        linux["namespaces"].append({"type": "user", "path": path})
        linux["uidMappings"], linux["gidMappings"] = userns_mappings(path)
        if not any(m["containerID"] <= TTY_GID < m["containerID"] + m["size"]
                   for m in linux["gidMappings"]):
            for m in spec["mounts"]:  # the kernel refuses a devpts gid the namespace lacks
                if m["destination"] == "/dev/pts":
                    m["options"] = [o for o in m["options"] if o != f"gid={TTY_GID}"]
    return spec


def apply_exec(config: ContainerConfig, process: dict, privileged: bool, cap_add: list[str]) -> dict:
    """An exec session gets the container's capabilities (plus its own), rlimits and
    no-new-privileges, as podman's do."""
    from .spec import bounding_caps

    held = bounding_caps()
    base = held if privileged else container_caps(config)
    caps = merge_capabilities(base, [_cap_name(c, "cap_add") for c in cap_add], [], held)
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    process["noNewPrivileges"] = config.no_new_privileges
    process["rlimits"] = rlimits(config, process["rlimits"])
    return process


def _privileged(spec: dict) -> None:
    """podman's --privileged: no masked or read-only paths, /sys writable, every host device."""
    linux = spec["linux"]
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    for m in spec["mounts"]:
        if m["destination"] in ("/sys", "/sys/fs/cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"] + ["rw"]
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    have = {d["path"] for d in linux.get("devices", [])}
    for path, st in host_devices("/dev"):
        if path in have or path in ("/dev/console", "/dev/ptmx", "/dev/tty"):
            continue
        linux.setdefault("devices", []).append(_device(path, st, path))


def _oci_devices(item: str) -> list[dict]:
    host, target, perms = item.split(":")
    found = host_devices(host)
    if not found:
        raise InvalidConfig(f"device {host!r} is no longer a device on this host", field="devices")
    out = []
    for path, st in found:
        dest = target if path == host else os.path.join(target, os.path.relpath(path, host))
        dev = _device(path, st, dest)
        dev["access"] = perms
        out.append(dev)
    return out


def _device(path: str, st: os.stat_result, dest: str) -> dict:
    return {"path": dest, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
            "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
