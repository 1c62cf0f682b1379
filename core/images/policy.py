"""The signature policy (containers-policy.json(5)), as far as varpod can honour it.

varpod verifies digests, not signatures. Where the policy accepts anything
(Debian's default) a pull or load goes ahead; where it rejects the image, the
image is refused; where it asks for signatures (``signedBy``,
``sigstoreSigned``), the image is refused with ``Unsupported`` rather than
taken unverified. The requirement that applies is the most specific scope of
the transport (``host/ns/repo:tag``, ``host/ns/repo``, ``host/ns``, ``host``,
``*.domain``, ``""``), else the default, as in containers/image.
"""

from __future__ import annotations

import json
import os

from ..errors import InvalidConfig, RegistryError, Unsupported
from .reference import Reference

SYSTEM = "/etc/containers/policy.json"
ACCEPT = "insecureAcceptAnything"


def policy_path() -> str | None:
    home = os.environ.get("HOME") or "/root"
    for path in (os.path.join(home, ".config", "containers", "policy.json"), SYSTEM):
        if os.path.exists(path):
            return path
    return None


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError) as e:
        raise InvalidConfig(f"cannot read the signature policy {path}: {e}", field="policy.json") from None
    if not isinstance(data, dict):
        raise InvalidConfig(f"the signature policy {path} is not a JSON object", field="policy.json")
    return data


def _scopes(ref: Reference) -> list[str]:
    out = [str(ref)] if ref.tag or ref.digest else []
    parts = ref.repository.split("/")
    out += ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]
    labels = ref.domain.split(".")
    out += ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
    return [*out, ""]


def check(ref: Reference | None, transport: str = "docker") -> None:
    """Refuse ``ref`` (None: an archive, by its transport's scopes) unless the policy accepts
    anything for it."""
    path = policy_path()
    if path is None:
        return  # no policy installed: nothing asks for more than the digests varpod checks
    data = _load(path)
    scopes = (data.get("transports") or {}).get(transport) or {}
    requirements = data.get("default") or []
    for scope in _scopes(ref) if ref is not None else [""]:
        if scope in scopes:
            requirements = scopes[scope]
            break
    kinds = {r.get("type", "") for r in requirements if isinstance(r, dict)}
    what = str(ref) if ref is not None else f"a {transport} image"
    if "reject" in kinds:
        raise RegistryError(f"{what} is rejected by the signature policy {path}",
                            registry=ref.domain if ref else "", status=0, code="POLICY_REJECTED")
    if not kinds or kinds - {ACCEPT}:
        needs = ", ".join(sorted(kinds - {ACCEPT})) or "an empty requirement list"
        raise Unsupported(f"the signature policy {path} asks for {needs} for {what}; varpod verifies "
                          "digests, not signatures", feature="signatures")
