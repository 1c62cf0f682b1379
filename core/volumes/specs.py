"""What users write to mount things into a container, parsed and checked (sans-IO).

    -v [SOURCE:]DEST[:OPTIONS]    SOURCE /host/dir (a bind mount) or NAME (a named volume,
                                  made if missing); no SOURCE: an anonymous volume
    --mount type=bind|volume|tmpfs,KEY[=VALUE],...
    --tmpfs DEST[:OPTIONS]

as podman reads them (its options, its defaults, its words in errors). Host paths
arrive absolute: a relative one is the client's (``hostpaths.py`` resolves it there),
and the daemon's own working directory means nothing to the user. Options varpod does
not have (``U``, ``O``, ``idmap``, ``type=image`` ...) are refused by name; ``z``/``Z``
are accepted where SELinux is off, as podman does (there is nothing to relabel), and
refused where it is on, since varpod does not relabel.

The host side (does the bind source exist, what flags its filesystem has) is checked
by the part (``part.py``); this module only reads text.
"""

from __future__ import annotations

import os
import posixpath

from ..errors import InvalidConfig, InvalidMount, Unsupported
from ..units import parse_size
from .model import BIND, TMPFS, VOLUME, Mount

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                "runbindable")
# flag -> its opposite: the later of the two wins, as mount(8) reads them
_FLAG_PAIRS = {"dev": "nodev", "exec": "noexec", "suid": "nosuid"}
_FLAGS = {**_FLAG_PAIRS, **{v: k for k, v in _FLAG_PAIRS.items()}}
_TMPFS_VALUES = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks")
_TMPFS_FLAGS = ("ro", "rw", *_FLAGS, "noatime", "atime", "relatime", "strictatime", "nodiratime",
                "tmpcopyup", "notmpcopyup")
_NOT_SUPPORTED = {
    "U": "changing the owner of the source (U) is not supported by varpod",
    "O": "overlay volume mounts (O) are not supported by varpod",
    "idmap": "idmapped mounts are not supported by varpod",
}
MAX_MOUNTS = 256
SPEC_MAX = 8192
NAME_MAX = 253
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _NAME_FIRST | frozenset("_.-")


def volume_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a volume (podman's rule for names, plus a length cap), or None."""
    if not name or len(name) > NAME_MAX:
        return f"volume names are 1-{NAME_MAX} characters"
    if name[0] not in _NAME_FIRST or not set(name) <= _NAME_CHARS:
        return "volume names are of [a-zA-Z0-9_.-] and start with a letter or digit"
    return None


def selinux_enabled() -> bool:
    try:
        with open("/sys/fs/selinux/enforce") as f:
            return f.read(1) in ("0", "1")  # permissive labels too: relabeling would still matter
    except OSError:
        return False


def _refuse(spec: str, field: str, why: str) -> InvalidMount:
    return InvalidMount(f"{field} {spec[:200]!r}: {why}", field=field, spec=spec[:SPEC_MAX])


def _destination(text: str, spec: str, field: str) -> str:
    if not text.startswith("/"):
        raise _refuse(spec, field, f"the destination {text[:200]!r} is not an absolute path")
    if "\0" in text or len(text) > 4096:
        raise _refuse(spec, field, "invalid destination path")
    dest = posixpath.normpath(text)
    if dest.startswith("//"):
        dest = "/" + dest.lstrip("/")
    if dest == "/":
        raise _refuse(spec, field, "cannot mount over the container's root directory")
    return dest


def _host_path(text: str, spec: str, field: str) -> str:
    if "\0" in text or len(text) > 4096:
        raise _refuse(spec, field, "invalid host path")
    if not text.startswith("/"):
        raise _refuse(spec, field, f"the host path {text[:200]!r} is relative: resolve it against the "
                                   "client's working directory first (the varpod CLI and client do)")
    return posixpath.normpath(text)


def _check_relabel(spec: str, field: str) -> None:
    if selinux_enabled():
        raise Unsupported(f"{field} {spec[:200]!r}: SELinux is enabled here and varpod does not relabel "
                          "(z/Z)", feature="relabel")


class _Options:
    """Bind and volume options as podman validates them: one of each kind at most."""

    def __init__(self, spec: str, field: str, kind: str) -> None:
        self.spec, self.field, self.kind = spec, field, kind
        self.ro: bool | None = None
        self.propagation = ""
        self.recursive = True
        self.flags: dict[str, str] = {}  # "dev" -> "dev"/"nodev"
        self.copy_up: bool | None = None
        self.relabel = False
        self._seen: set[str] = set()

    def _once(self, kind: str, opt: str) -> None:
        if kind in self._seen:
            raise _refuse(self.spec, self.field, f"option {opt!r} conflicts with an earlier one")
        self._seen.add(kind)

    def add(self, opt: str) -> None:
        if opt in ("ro", "rw"):
            self._once("rw", opt)
            self.ro = opt == "ro"
        elif opt in PROPAGATIONS:
            if self.kind != BIND:
                raise _refuse(self.spec, self.field, f"propagation ({opt}) applies to bind mounts only, "
                                                     "not to volumes")
            self._once("propagation", opt)
            self.propagation = opt
        elif opt in ("bind", "rbind"):
            self._once("bind", opt)
            self.recursive = opt == "rbind"
        elif opt in _FLAGS:
            base = opt[2:] if opt.startswith("no") else opt
            self._once(base, opt)
            self.flags[base] = opt
        elif opt in ("copy", "nocopy"):
            if self.kind != VOLUME:
                raise _refuse(self.spec, self.field, f"{opt} applies to volumes only, not to bind mounts")
            self._once("copy", opt)
            self.copy_up = opt == "copy"
        elif opt in ("z", "Z"):
            self._once("relabel", opt)
            _check_relabel(self.spec, self.field)
            self.relabel = True
        elif opt in _NOT_SUPPORTED:
            raise _refuse(self.spec, self.field, _NOT_SUPPORTED[opt])
        else:
            raise _refuse(self.spec, self.field, f"unknown option {opt[:60]!r}")

    def mount(self, dest: str, source: str, *, anonymous: bool = False) -> Mount:
        opts = ["rbind" if self.recursive else "bind"]
        propagation = ""
        if self.kind == BIND:
            propagation = self.propagation or "rprivate"
            opts.append(propagation)
        else:
            # podman's defaults for volumes: no devices and no setuid unless asked for
            opts.append("rprivate")
            self.flags.setdefault("dev", "nodev")
            self.flags.setdefault("suid", "nosuid")
        opts += [self.flags[k] for k in ("suid", "dev", "exec") if k in self.flags]
        if self.ro:
            opts.append("ro")
        return Mount(type=self.kind, destination=dest, source=source, options=opts, rw=not self.ro,
                     propagation=propagation, anonymous=anonymous,
                     copy_up=self.copy_up is not False, spec=self.spec)


def parse_volume(spec: str) -> Mount:
    """``-v [SOURCE:]DEST[:OPTIONS]``."""
    field = "volume"
    parts = spec.split(":")
    if len(parts) > 3:
        raise _refuse(spec, field, "too many colons")
    if len(parts) == 1:
        source, dest, options = "", parts[0], ""
    else:
        source, dest = parts[0], parts[1]
        options = parts[2] if len(parts) == 3 else ""
        if not source:
            raise _refuse(spec, field, "the host directory or volume name is empty")
    dest = _destination(dest, spec, field)
    kind = BIND if source.startswith(("/", ".")) else VOLUME
    opts = _Options(spec, field, kind)
    if options:
        for opt in options.split(","):
            opts.add(opt)
    if kind == BIND:
        return opts.mount(dest, _host_path(source, spec, field))
    if source:
        problem = volume_name_problem(source)
        if problem:
            raise _refuse(spec, field, f"invalid volume name {source[:100]!r}: {problem}")
        return opts.mount(dest, source)
    return opts.mount(dest, "", anonymous=True)


def _truth(value: str | None, key: str, spec: str) -> bool:
    if value is None or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise _refuse(spec, "mount", f"{key} takes true or false, not {value[:40]!r}")


def parse_mount(spec: str) -> Mount:
    """``--mount type=bind|volume|tmpfs,KEY[=VALUE],...`` (podman's keys)."""
    field = "mount"
    pairs: list[tuple[str, str | None]] = []
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        if not key:
            raise _refuse(spec, field, "an empty option")
        pairs.append((key.strip(), value if eq else None))
    kinds = [v for k, v in pairs if k == "type"]
    if len(kinds) != 1 or not kinds[0]:
        raise _refuse(spec, field, "give exactly one type=bind, type=volume or type=tmpfs")
    kind = kinds[0]
    if kind in ("image", "devpts", "glob", "ramfs"):
        raise _refuse(spec, field, f"mounts of type {kind} are not supported by varpod")
    if kind not in (BIND, VOLUME, TMPFS):
        raise _refuse(spec, field, f"unknown mount type {kind[:40]!r}")
    source, dest = "", ""
    opts = _Options(spec, field, kind) if kind != TMPFS else None
    tmpfs: list[str] = []
    for key, value in pairs:
        if key == "type":
            continue
        if key in ("src", "source"):
            if kind == TMPFS:
                raise _refuse(spec, field, "a tmpfs mount has no source")
            source = value or ""
        elif key in ("dst", "destination", "target"):
            dest = value or ""
        elif key in ("ro", "readonly") or (key in ("rw", "readwrite") and value is not None):
            ro = _truth(value, key, spec) if key in ("ro", "readonly") else not _truth(value, key, spec)
            if opts is None:
                tmpfs.append("ro" if ro else "rw")
            else:
                opts.add("ro" if ro else "rw")
        elif key in ("U", "chown", "idmap") and value is not None and not _truth(value, key, spec):
            continue  # asked to be off, which it is
        elif kind == BIND and key == "bind-propagation":
            if value not in PROPAGATIONS:
                raise _refuse(spec, field, f"bind-propagation {str(value)[:40]!r}: give one of "
                                           f"{', '.join(PROPAGATIONS)}")
            opts.add(value)
        elif kind == BIND and key == "bind-nonrecursive":
            if _truth(value, key, spec):
                opts.add("bind")
        elif kind == BIND and key == "relabel":
            if value not in ("shared", "private"):
                raise _refuse(spec, field, "relabel takes shared or private")
            opts.add("z" if value == "shared" else "Z")
        elif kind == VOLUME and key in ("volume-nocopy", "nocopy"):
            if _truth(value, key, spec):
                opts.add("nocopy")
        elif kind == TMPFS and key == "tmpfs-size":
            tmpfs.append(f"size={value}")
        elif kind == TMPFS and key == "tmpfs-mode":
            tmpfs.append(f"mode={value}")
        elif kind == TMPFS and value is None and key in _TMPFS_FLAGS:
            tmpfs.append(key)
        elif opts is not None and value is None and (key in _FLAGS or key in ("z", "Z")):
            opts.add(key)
        elif key in ("U", "chown", "idmap"):
            raise _refuse(spec, field, _NOT_SUPPORTED["U" if key == "chown" else key])
        else:
            raise _refuse(spec, field, f"unknown option {key[:60]!r} for a {kind} mount")
    if not dest:
        raise _refuse(spec, field, "a destination (dst=, destination= or target=) is required")
    dest = _destination(dest, spec, field)
    if kind == TMPFS:
        return tmpfs_mount(dest, tmpfs, spec, field)
    if kind == BIND:
        if not source:
            raise _refuse(spec, field, "a bind mount needs a source (src= or source=)")
        return opts.mount(dest, _host_path(source, spec, field))
    if source:
        problem = volume_name_problem(source)
        if problem:
            raise _refuse(spec, field, f"invalid volume name {source[:100]!r}: {problem}")
        return opts.mount(dest, source)
    return opts.mount(dest, "", anonymous=True)


def parse_tmpfs(spec: str) -> Mount:
    """``--tmpfs DEST[:OPTIONS]``."""
    dest, _, options = spec.partition(":")
    dest = _destination(dest, spec, "tmpfs")
    return tmpfs_mount(dest, options.split(",") if options else [], spec, "tmpfs")


def tmpfs_mount(dest: str, options: list[str], spec: str, field: str) -> Mount:
    """podman's tmpfs: rw,noexec,nosuid,nodev unless said otherwise, and the image's content at
    that path copied in (tmpcopyup, done by the runtime) unless notmpcopyup."""
    values: dict[str, str] = {}
    flags: dict[str, str] = {"rw": "rw", "exec": "noexec", "suid": "nosuid", "dev": "nodev"}
    copyup = "tmpcopyup"
    extra: list[str] = []
    for opt in options:
        key, eq, value = opt.partition("=")
        if eq:
            if key not in _TMPFS_VALUES:
                raise _refuse(spec, field, f"unknown tmpfs option {key[:60]!r}")
            values[key] = _tmpfs_value(key, value, spec, field)
        elif opt in ("ro", "rw"):
            flags["rw"] = opt
        elif opt in _FLAGS:
            flags[opt[2:] if opt.startswith("no") else opt] = opt
        elif opt in ("tmpcopyup", "notmpcopyup"):
            copyup = opt
        elif opt in ("noatime", "atime", "relatime", "strictatime", "nodiratime"):
            extra.append(opt)
        elif opt in _NOT_SUPPORTED:
            raise _refuse(spec, field, _NOT_SUPPORTED[opt])
        else:
            raise _refuse(spec, field, f"unknown tmpfs option {opt[:60]!r}")
    opts = [flags["rw"], flags["exec"], flags["suid"], flags["dev"], *extra,
            *(f"{k}={v}" for k, v in values.items())]
    if copyup == "tmpcopyup":
        opts.append("tmpcopyup")
    return Mount(type=TMPFS, destination=dest, options=opts, rw=flags["rw"] == "rw", spec=spec)


def _tmpfs_value(key: str, value: str, spec: str, field: str) -> str:
    if key == "size":
        if value.endswith("%") and value[:-1].isdigit() and 0 < int(value[:-1]) <= 100:
            return value
        try:
            size = parse_size(value, "tmpfs size")
        except InvalidConfig:
            raise _refuse(spec, field, f"tmpfs size {value[:40]!r} is not a size (like 64m or 50%)") from None
        if size <= 0:
            raise _refuse(spec, field, "a tmpfs size must be more than 0")
        return str(size)
    if key == "mode":
        if not value or not set(value) <= set("01234567") or int(value, 8) > 0o7777:
            raise _refuse(spec, field, f"tmpfs mode {value[:40]!r} is not an octal mode")
        return value
    digits = value[:-1] if value[-1:].lower() in ("k", "m", "g") else value
    if not digits.isdigit() or len(value) > 20:
        raise _refuse(spec, field, f"tmpfs {key} {value[:40]!r} is not a number")
    return value


def parse_all(volumes: list[str], mounts: list[str], tmpfs: list[str]) -> list[Mount]:
    """Every mount a container asked for, in order; two at one destination are refused."""
    texts = [*volumes, *mounts, *tmpfs]
    if len(texts) > MAX_MOUNTS:
        raise InvalidMount(f"too many mounts ({len(texts)}; at most {MAX_MOUNTS})", field="volume",
                           spec="")
    for text in texts:
        if not isinstance(text, str) or not text or len(text) > SPEC_MAX or "\n" in text:
            raise InvalidMount(f"invalid mount spec {str(text)[:100]!r}", field="volume",
                               spec=str(text)[:SPEC_MAX])
    out = [parse_volume(v) for v in volumes] + [parse_mount(m) for m in mounts] + \
        [parse_tmpfs(t) for t in tmpfs]
    seen: dict[str, str] = {}
    for m in out:
        if m.destination in seen:
            raise InvalidMount(f"{m.spec[:200]!r} and {seen[m.destination][:200]!r} both mount "
                               f"{m.destination}: duplicate mount destination", field="volume",
                               spec=m.spec)
        seen[m.destination] = m.spec
    return out


def ordered(mounts: list[Mount]) -> list[Mount]:
    """Parents before what is mounted inside them (/a before /a/b), as the runtime needs."""
    return sorted(mounts, key=lambda m: m.destination.count("/"))


def under(path: str, dest: str) -> bool:
    return path == dest or path.startswith(dest.rstrip("/") + "/")


def clean_destination(path: str) -> str:
    """An image's VOLUME path as a mount destination (images write them loosely: ``data/``)."""
    return posixpath.normpath("/" + path.strip()).replace("//", "/") if path.strip() else ""


def bind_flags_of(path: str) -> list[str]:
    """nosuid/nodev/noexec where the host filesystem of ``path`` has them: a bind mount
    inherits them anyway, and the runtime's remount (for ro) must keep them, as podman does."""
    try:
        flags = os.statvfs(path).f_flag
    except OSError:
        return []
    out = []
    if flags & os.ST_NOSUID:
        out.append("nosuid")
    if flags & os.ST_NODEV:
        out.append("nodev")
    if flags & os.ST_NOEXEC:
        out.append("noexec")
    return out
