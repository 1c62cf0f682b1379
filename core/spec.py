"""The OCI ``config.json`` for a container, generated from its ContainerConfig."""

from __future__ import annotations

import resource

from . import hostconfig
from .errors import InvalidConfig
from .model import CPU_PERIOD_US, ContainerConfig, Resources
from .paths import read_in_root

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# podman's default capability set for root containers.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT",
]

# Every capability the kernel knows, in number order (for privileged execs).
ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


def bounding_caps() -> list[str]:
    """The capabilities this daemon may hand out: its own bounding set (a sandbox may lack some)."""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return list(ALL_CAPS)
    return [cap for bit, cap in enumerate(ALL_CAPS) if mask >> bit & 1]


def capabilities(privileged: bool = False, add: list[str] | tuple[str, ...] = ()) -> list[str]:
    """podman's default set, or (privileged) every one we hold; plus ``add`` (``NET_ADMIN``)."""
    held = bounding_caps()
    caps = list(held) if privileged else [c for c in DEFAULT_CAPS if c in held]
    for name in add:
        cap = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
        if cap not in ALL_CAPS:
            raise InvalidConfig(f"unknown capability {name[:40]!r}", field="cap_add")
        if cap not in held:
            raise InvalidConfig(f"capability {cap} is not in the daemon's bounding set",
                                field="cap_add")
        if cap not in caps:
            caps.append(cap)
    return caps


MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# (resource, wanted) — clamped to the daemon's own hard limit: without
# CAP_SYS_RESOURCE a higher value makes the runtime fail ("error setting rlimit").
RLIMITS = [
    ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE, 1048576),
    ("RLIMIT_NPROC", resource.RLIMIT_NPROC, 4194304),
]


def rlimits() -> list[dict]:
    out = []
    for name, res, wanted in RLIMITS:
        _, hard = resource.getrlimit(res)
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        out.append({"type": name, "hard": value, "soft": value})
    return out


def resolve_user(rootfs: str, user: str) -> tuple[int, int, list[int]]:
    """``uid[:gid]`` or ``name[:group]``, names looked up in the rootfs' passwd/group."""
    name, _, group = user.partition(":")
    passwd = _table(rootfs, "/etc/passwd")
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if e[2] == name), None)
    else:
        entry = next((e for e in passwd if e[0] == name), None)
        if entry is None:
            raise InvalidConfig(f"user {name!r} not found in the container's /etc/passwd", field="user")
        uid = int(entry[2])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = next((e for e in _table(rootfs, "/etc/group") if e[0] == group), None)
            if found is None:
                raise InvalidConfig(f"group {group!r} not found in the container's /etc/group", field="user")
            gid = int(found[2])
    else:
        gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    return uid, gid, []


def _table(rootfs: str, path: str) -> list[list[str]]:
    data = read_in_root(rootfs, path)
    if not data:
        return []
    rows = []
    for line in data.decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit():
            rows.append(fields)
    return rows


def environment(config: ContainerConfig, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    base = {
        "PATH": DEFAULT_PATH.partition("=")[2],
        "HOSTNAME": hostname(config),
        "HOME": "/root",
        "container": "varpod",
    }
    if config.tty:
        base["TERM"] = "xterm"
    for item in (*config.env, *extra):
        key, _, value = item.partition("=")
        base[key] = value
    return [f"{k}={v}" for k, v in base.items()]


def hostname(config: ContainerConfig) -> str:
    return config.hostname or config.id[:12]


def mounts(config: ContainerConfig, bundle: str) -> list[dict]:
    out = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
    ]
    if config.network == "host":
        # sysfs cannot be mounted fresh without a network namespace of our own.
        out.append({"destination": "/sys", "type": "bind", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    else:
        out.append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]})
    out.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    # /etc/hosts, /etc/hostname and /etc/resolv.conf come from core/network (NetworkPart).
    return out


def exec_process(config: ContainerConfig, *, command: list[str], env: list[str], workdir: str,
                 user: str, tty: bool, privileged: bool, cap_add: list[str],
                 tty_size: tuple[int, int] = (0, 0)) -> dict:
    """The OCI process of an exec session: the container's settings unless overridden."""
    uid, gid, extra_gids = resolve_user(config.rootfs, user or config.user)
    user_spec: dict = {"uid": uid, "gid": gid}
    if extra_gids:
        user_spec["additionalGids"] = extra_gids
    environ = environment(config, env)
    if tty and not any(e.startswith("TERM=") for e in environ):
        environ.append("TERM=xterm")
    process = {
        "terminal": tty,
        "user": user_spec,
        "args": list(command),
        "env": environ,
        "cwd": workdir or config.workdir or "/",
        "rlimits": rlimits(),
    }
    _console_size(process, tty, tty_size)
    return hostconfig.apply_exec(config, process, privileged, cap_add)


def _console_size(process: dict, tty: bool, size: tuple[int, int]) -> None:
    # The runtime sizes the terminal before the process starts: a size set on the
    # master afterwards could come too late for a quick `stty size`.
    if tty and size[0] and size[1]:
        process["consoleSize"] = {"height": size[0], "width": size[1]}


DEFAULT_CPU_SHARES = 1024  # the kernel's


def resource_limits(res: Resources) -> dict:
    """The limits that are set, as OCI ``linux.resources`` members (config.json at create)."""
    out: dict = {}
    if res.memory:
        out["memory"] = {"limit": res.memory}
    cpu: dict = {}
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.nano_cpus:
        cpu.update(quota=res.cpu_quota, period=CPU_PERIOD_US)
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit:
        out["pids"] = {"limit": res.pids_limit}
    return out


def update_resources(res: Resources) -> dict:
    """Every limit, for ``runc update --resources``: there an absent or 0 value means "leave
    as it is", so no limit is stated as -1 and default shares as the kernel's 1024."""
    return {
        "memory": {"limit": res.memory or -1},
        "cpu": {"shares": res.cpu_shares or DEFAULT_CPU_SHARES, "quota": res.cpu_quota or -1,
                "period": CPU_PERIOD_US},
        "pids": {"limit": res.pids_limit or -1},
    }


def oci_config(config: ContainerConfig, bundle: str, tty_size: tuple[int, int] = (0, 0)) -> dict:
    uid, gid, extra_gids = resolve_user(config.rootfs, config.user)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if config.network != "host":
        namespaces.append({"type": "network"})
    user: dict = {"uid": uid, "gid": gid}
    if extra_gids:
        user["additionalGids"] = extra_gids
    caps = capabilities()
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": config.tty,
            "user": user,
            "args": list(config.command),
            "env": environment(config),
            "cwd": config.workdir or "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits(),
            "noNewPrivileges": False,
        },
        "root": {"path": config.rootfs, "readonly": config.read_only},
        "hostname": hostname(config),
        "mounts": mounts(config, bundle),
        "annotations": {"io.varpod.name": config.name},
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": f"/varpod/{config.id}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}],
                          **resource_limits(config.resources)},
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }
    _console_size(spec["process"], config.tty, tty_size)
    return hostconfig.apply(config, spec)
