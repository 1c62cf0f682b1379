"""What ``run``/``create`` take besides the container's command, turned into a create spec:
the environment (``-e VAR`` from this client's, ``--env-file``, ``--env-host``), labels
from files, security options, and podman's flags that varpod refuses by name.

Paths on the command line are this client's (``--rootfs ./rootfs``, ``--env-file``,
``--cidfile``): they are resolved here, against the client's working directory,
before the daemon sees them.
"""

from __future__ import annotations

import os
import sys

from .common import CLIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import Parser

# podman's run/create flags that varpod does not implement: flag -> whether it takes a value.
# argparse knows them (hidden from --help) so that using one is a clear error naming it,
# instead of a parse error, or its value being read as the command.
UNSUPPORTED = {
    "--arch": True, "--attach": True, "--authfile": True, "--blkio-weight": True,
    "--blkio-weight-device": True, "--cgroup-conf": True, "--cgroup-parent": True,
    "--cgroupns": True, "--cgroups": True, "--chrootdirs": True, "--conmon-pidfile": True,
    "--cpu-period": True, "--cpu-quota": True, "--cpu-rt-period": True,
    "--cpu-rt-runtime": True, "--cpuset-cpus": True, "--cpuset-mems": True,
    "--device-cgroup-rule": True, "--device-read-bps": True, "--device-read-iops": True,
    "--device-write-bps": True, "--device-write-iops": True, "--disable-content-trust": False,
    "--env-merge": True, "--gidmap": True, "--group-add": True, "--health-cmd": True,
    "--health-interval": True, "--health-on-failure": True, "--health-retries": True,
    "--health-start-period": True, "--health-timeout": True, "--hostuser": True,
    "--http-proxy": True, "--init-path": True, "--ipc": True, "--log-opt": True,
    "--memory-reservation": True, "--memory-swap": True, "--memory-swappiness": True,
    "--no-healthcheck": False, "--oom-kill-disable": False, "--oom-score-adj": True,
    "--os": True, "--passwd-entry": True, "--personality": True, "--pid": True,
    "--pidfile": True, "--read-only-tmpfs": True, "--requires": True,
    "--sdnotify": True, "--seccomp-policy": True, "--secret": True, "--subgidname": True,
    "--subuidname": True, "--systemd": True, "--timeout": True, "--tz": True, "--uidmap": True,
    "--umask": True, "--unsetenv": True, "--unsetenv-all": False, "--uts": True,
    "--variant": True, "--volumes-from": True,
}


def declare(p: Parser) -> None:
    """The everyday flags of podman's run/create that varpod supports, then the refused ones."""
    p.add_argument("--env-host", action="store_true", help="pass this client's whole environment")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="KEY=VALUE lines (# comments; KEY alone: from this client's environment)")
    p.add_argument("--label-file", action="append", default=[], metavar="FILE",
                   help="KEY=VALUE lines of labels")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP")
    p.add_argument("--privileged", action="store_true",
                   help="every capability, every host device, no masked paths")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="no-new-privileges (the only one varpod has)")
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="an rlimit (-1: unlimited), never above the daemon's own hard limit")
    p.add_argument("--sysctl", action="append", default=[], metavar="NAME=VALUE",
                   help="a namespaced sysctl (kernel.msg*, kernel.shm*, fs.mqueue.*, net.*)")
    p.add_argument("--device", action="append", default=[], metavar="HOST[:CONTAINER][:PERMS]")
    p.add_argument("--shm-size", metavar="SIZE", help="size of /dev/shm (default 64m; 0: no limit)")
    p.add_argument("--init", action="store_true", help="run catatonit as PID 1 (reaps, forwards signals)")
    p.add_argument("--cidfile", metavar="FILE", help="write the container ID to FILE (must not exist)")
    p.add_argument("--log-driver", metavar="DRIVER", help="k8s-file (default) or none")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--replace", action="store_true", help="remove a container of the same --name first")
    p.add_argument("--userns", metavar="MODE", help="host (default) or ns:PATH")
    # Only argparse has the refused ones in full: fastargs just declines them (so argparse
    # reads such an argv, and the run stops with the error), and every other run pays
    # nothing for sixty more declarations. Their names still make abbreviations ambiguous.
    argparse = sys.modules.get("argparse")
    if argparse is None or not isinstance(p, argparse.ArgumentParser):
        p.add_declined(*UNSUPPORTED)  # a fastargs.Recorder
        return
    for flag, takes_value in UNSUPPORTED.items():
        if takes_value:
            # hidden from --help, and no attribute unless given (as fastargs has none)
            p.add_argument(flag, help=argparse.SUPPRESS, default=argparse.SUPPRESS)
        else:
            p.add_argument(flag, action="store_true", help=argparse.SUPPRESS,
                           default=argparse.SUPPRESS)


def refuse_unsupported(a: object) -> None:
    for flag in UNSUPPORTED:
        value = getattr(a, flag[2:].replace("-", "_"), None)
        if value is not None and value is not False:
            raise CLIError(f"{flag} is not supported by varpod (see `varpod run --help` for the "
                           "flags it has)")


# -- the environment ---------------------------------------------------------------------------


def environment(env_host: bool, env_files: list[str], env: list[str],
                source: dict[str, str] | None = None) -> list[str]:
    """podman's order: --env-host, then --env-file, then -e (later ones win). ``KEY`` alone
    takes this client's value (nothing if it has none); ``KEY*`` every variable so named."""
    source = os.environ if source is None else source
    out: list[str] = []
    if env_host:
        out += [f"{k}={v}" for k, v in source.items()]
    for path in env_files:
        out += [item for line in _lines(path, "--env-file") for item in _env_item(line, source, path)]
    for item in env:
        out += _env_item(item, source, None)
    return out


def _env_item(item: str, source: dict[str, str], path: str | None) -> list[str]:
    name, sep, _ = item.partition("=")
    where = f" in {path}" if path else ""
    if not name:
        raise CLIError(f"invalid environment variable {item!r}{where}: it has no name")
    if any(c in name for c in " \t\n"):
        raise CLIError(f"environment variable {name!r}{where} contains whitespace")
    if sep:
        return [item]
    if name.endswith("*"):
        prefix = name[:-1]
        return [f"{k}={v}" for k, v in source.items() if k.startswith(prefix)]
    return [f"{name}={source[name]}"] if name in source else []


def labels_from_files(paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        for line in _lines(path, "--label-file"):
            key, _, value = line.partition("=")
            if not key:
                raise CLIError(f"invalid label {line!r} in {path}: it has no key")
            out[key] = value
    return out


def _lines(path: str, flag: str) -> list[str]:
    """A file's meaningful lines: leading blanks trimmed, empty lines and # comments skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CLIError(f"{flag} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise CLIError(f"{flag} {path}: not UTF-8 text") from None
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


# -- the rest ---------------------------------------------------------------------------------


def no_new_privileges(opts: list[str]) -> bool:
    """--security-opt: only no-new-privileges (=true/false) means something to varpod."""
    nnp = False
    for opt in opts:
        name, _, value = opt.replace(":", "=", 1).partition("=")
        if name == "no-new-privileges" and value in ("", "true", "false"):
            nnp = value != "false"
            continue
        raise CLIError(f"--security-opt {opt!r} is not supported by varpod: only "
                       "no-new-privileges is (varpod applies no SELinux, AppArmor or seccomp "
                       "profile, and masks the same paths podman does)")
    return nnp


def keyvalues(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"{flag} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def client_path(path: str | None) -> str | None:
    """A path the user typed, made absolute against this client's working directory."""
    return None if path is None else os.path.abspath(path)
