"""registries.conf (containers-registries.conf(5)): short names, insecure and blocked
registries, location rewrites and mirrors, as podman reads them.

Files: ``$CONTAINERS_REGISTRIES_CONF`` alone when set; else
``/etc/containers/registries.conf`` then the drop-ins in
``/etc/containers/registries.conf.d/*.conf`` in name order, a later file
overriding what it sets. Version 1 files (``[registries.search]``...) are read too.

Short names: an alias wins; otherwise the unqualified-search registries are
tried in order. varpod is a daemon and cannot prompt, so ``short-name-mode =
"enforcing"`` with more than one search registry is refused, as podman does
without a terminal; ``permissive`` (the default) and ``disabled`` try them all.
"""

from __future__ import annotations

import glob
import os
import tomllib

from ..errors import InvalidConfig, RegistryError, ShortNameUnresolved
from .reference import DOCKER_DOMAIN, Reference, parse

MAIN = "/etc/containers/registries.conf"
DROP_INS = "/etc/containers/registries.conf.d"


class Endpoint:
    """Where to fetch ``ref`` from: the reference rewritten to a mirror or location."""

    __slots__ = ("insecure", "ref")

    def __init__(self, ref: Reference, insecure: bool) -> None:
        self.ref = ref
        self.insecure = insecure

    def __repr__(self) -> str:
        return f"Endpoint({self.ref}, insecure={self.insecure})"


class _Registry:
    def __init__(self, prefix: str, location: str, insecure: bool, blocked: bool,
                 mirrors: list[tuple[str, bool, str]], mirror_by_digest_only: bool) -> None:
        self.prefix = prefix
        self.location = location
        self.insecure = insecure
        self.blocked = blocked
        self.mirrors = mirrors  # (location, insecure, pull-from-mirror)
        self.mirror_by_digest_only = mirror_by_digest_only


class RegistriesConf:
    def __init__(self) -> None:
        self.search: list[str] = []
        self.aliases: dict[str, str] = {}
        self.mode = "permissive"
        self.registries: dict[str, _Registry] = {}
        self.files: list[str] = []

    # -- reading ----------------------------------------------------------------------

    @classmethod
    def load(cls) -> RegistriesConf:
        conf = cls()
        env = os.environ.get("CONTAINERS_REGISTRIES_CONF")
        paths = [env] if env else [MAIN, *sorted(glob.glob(os.path.join(DROP_INS, "*.conf")))]
        for path in paths:
            try:
                with open(path, "rb") as f:
                    data = tomllib.load(f)
            except FileNotFoundError:
                continue
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise InvalidConfig(f"cannot read {path}: {e}", field="registries.conf") from None
            conf._merge(data, path)
            conf.files.append(path)
        return conf

    def _merge(self, data: dict, path: str) -> None:
        v1 = data.get("registries")
        if isinstance(v1, dict):
            self._merge_v1(v1)
        if "unqualified-search-registries" in data:
            self.search = [str(r) for r in data["unqualified-search-registries"]]
        if data.get("short-name-mode"):
            mode = str(data["short-name-mode"])
            if mode not in ("enforcing", "permissive", "disabled"):
                raise InvalidConfig(f"{path}: unknown short-name-mode {mode!r}", field="registries.conf")
            self.mode = mode
        for name, value in (data.get("aliases") or {}).items():
            if value:
                self.aliases[str(name)] = str(value)
            else:
                self.aliases.pop(str(name), None)
        for entry in data.get("registry") or []:
            if not isinstance(entry, dict):
                continue
            location = str(entry.get("location", ""))
            prefix = str(entry.get("prefix", "") or location)
            if not prefix:
                raise InvalidConfig(f"{path}: a [[registry]] needs a prefix or a location",
                                    field="registries.conf")
            mirrors = [(str(m.get("location", "")), bool(m.get("insecure", False)),
                        str(m.get("pull-from-mirror", "") or "all"))
                       for m in entry.get("mirror") or [] if isinstance(m, dict) and m.get("location")]
            self.registries[prefix] = _Registry(prefix, location, bool(entry.get("insecure", False)),
                                                bool(entry.get("blocked", False)), mirrors,
                                                bool(entry.get("mirror-by-digest-only", False)))

    def _merge_v1(self, v1: dict) -> None:
        def names(key: str) -> list[str]:
            table = v1.get(key)
            return [str(r) for r in table.get("registries", [])] if isinstance(table, dict) else []

        if names("search"):
            self.search = names("search")
        for reg in names("insecure"):
            self._entry(reg).insecure = True
        for reg in names("block"):
            self._entry(reg).blocked = True

    def _entry(self, prefix: str) -> _Registry:
        if prefix not in self.registries:
            self.registries[prefix] = _Registry(prefix, prefix, False, False, [], False)
        return self.registries[prefix]

    # -- answers ------------------------------------------------------------------------

    def find(self, name: str) -> _Registry | None:
        """The [[registry]] whose prefix is the longest match of ``name`` (``host/path[:tag]``)."""
        best: _Registry | None = None
        best_len = -1
        for prefix, reg in self.registries.items():
            if prefix.startswith("*."):
                host = name.split("/", 1)[0]
                if host.endswith(prefix[1:]) and len(prefix) > best_len:
                    best, best_len = reg, len(prefix)
                continue
            matches = name == prefix or (name.startswith(prefix) and name[len(prefix)] in "/:@")
            if matches and len(prefix) > best_len:
                best, best_len = reg, len(prefix)
        return best

    def insecure(self, host: str) -> bool:
        reg = self.find(host)
        return bool(reg and reg.insecure)

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Mirrors in order, then the primary location; ``RegistryError`` if blocked."""
        name = str(ref)
        reg = self.find(name)
        if reg is None:
            return [Endpoint(ref, False)]
        if reg.blocked:
            raise RegistryError(f"registry {ref.domain} is blocked in registries.conf "
                                f"({', '.join(self.files) or MAIN})", registry=ref.domain, status=0,
                                code="BLOCKED")
        out = []
        for location, insecure, when in reg.mirrors:
            if (reg.mirror_by_digest_only or when == "digest-only") and not ref.digest:
                continue
            if when == "tag-only" and ref.digest:
                continue
            out.append(Endpoint(_rewrite(ref, reg.prefix, location), insecure))
        primary = _rewrite(ref, reg.prefix, reg.location) if reg.location else ref
        out.append(Endpoint(primary, reg.insecure))
        return out

    def candidates(self, ref: Reference) -> list[Reference]:
        """The qualified references a short name stands for, in the order to try them."""
        alias = self.aliases.get(ref.path)
        if alias:
            target = parse(alias)
            return [Reference(target.domain, target.path, ref.tag, ref.digest).tagged()]
        where = ", ".join(self.files) or MAIN
        if not self.search:
            raise ShortNameUnresolved(
                f"short-name {str(ref)!r} did not resolve to an alias and no unqualified-search "
                f"registries are defined in {where}; use a fully qualified name", reference=str(ref))
        if self.mode == "enforcing" and len(self.search) > 1:
            raise ShortNameUnresolved(
                f"short-name {str(ref)!r} is ambiguous (short-name-mode is enforcing and {where} "
                f"lists {len(self.search)} search registries) and the daemon cannot prompt; "
                "use a fully qualified name or an alias", reference=str(ref))
        return [ref.with_domain(domain).tagged() for domain in self.search]


def _rewrite(ref: Reference, prefix: str, location: str) -> Reference:
    if prefix.startswith("*."):
        return ref
    name = ref.repository
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    target = parse(location + rest) if location else ref
    domain = target.domain or DOCKER_DOMAIN
    return Reference(domain, target.path, ref.tag, ref.digest)
