"""Image references: the docker reference grammar, and the names podman stores.

    reference := name [":" tag] ["@" digest]
    name      := [domain "/"] path-component ["/" path-component]*

The first component is a domain when it has a ``.`` or ``:``, is ``localhost``
or has an upper-case letter (the distribution rule). A name without a domain
is a *short name*: where it is pulled from is decided by registries.conf
(``shortnames.py``), never assumed to be docker.io. ``docker.io`` names are
normalised as docker does (``docker.io/library/alpine``), and a short name the
user gives to ``tag``/``import`` becomes ``localhost/NAME``, as podman does.
"""

from __future__ import annotations

import re

from ..errors import InvalidReference

DEFAULT_TAG = "latest"
DOCKER_DOMAIN = "docker.io"
LOCAL_DOMAIN = "localhost"
NAME_MAX = 255  # the distribution spec's limit on a repository name with its domain

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")
HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class Reference:
    """A parsed reference. ``domain`` is "" for a short name."""

    __slots__ = ("digest", "domain", "path", "tag")

    def __init__(self, domain: str, path: str, tag: str = "", digest: str = "") -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    @property
    def repository(self) -> str:
        """``domain/path`` (just ``path`` for a short name)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def short(self) -> bool:
        return not self.domain

    def with_domain(self, domain: str) -> Reference:
        path = self.path
        if domain == DOCKER_DOMAIN and "/" not in path:
            path = "library/" + path
        return Reference(domain, path, self.tag, self.digest)

    def tagged(self) -> Reference:
        """With ``latest`` when neither a tag nor a digest was given."""
        if self.tag or self.digest:
            return self
        return Reference(self.domain, self.path, DEFAULT_TAG)

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse(text: str) -> Reference:
    """Parse a reference; ``InvalidReference`` names what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise InvalidReference("an image reference cannot be empty", reference="")
    shown = text[:300]
    if len(text) > NAME_MAX + 200 or any(c.isspace() or c == "\0" for c in text):
        raise InvalidReference(f"invalid image reference {shown!r}", reference=shown)
    name, at, digest = text.partition("@")
    if at and not _DIGEST.match(digest):
        raise InvalidReference(f"invalid digest {digest[:100]!r} in reference {shown!r}", reference=shown)
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid tag {tag[:130]!r} in reference {shown!r}", reference=shown)
    domain, path = split_domain(name)
    if domain and not _DOMAIN.match(domain):
        raise InvalidReference(f"invalid registry {domain[:100]!r} in reference {shown!r}",
                               reference=shown)
    components = path.split("/")
    for comp in components:
        if not _PATH_COMPONENT.match(comp):
            hint = " (repository names must be lowercase)" if comp.lower() != comp else ""
            raise InvalidReference(f"invalid repository name {path[:255]!r} in reference "
                                   f"{shown!r}{hint}", reference=shown)
    if len(name) > NAME_MAX:
        raise InvalidReference(f"repository name in {shown!r} is longer than {NAME_MAX} characters",
                               reference=shown)
    if domain == "index.docker.io":
        domain = DOCKER_DOMAIN
    ref = Reference(domain, path, tag, digest)
    return ref.with_domain(domain) if domain == DOCKER_DOMAIN else ref


def split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and (("." in first or ":" in first) or first == LOCAL_DOMAIN or first.lower() != first):
        return first, rest
    return "", name


def parse_qualified(text: str) -> Reference:
    """A reference with a registry: what ``pull`` needs once short names are resolved."""
    ref = parse(text)
    if ref.short:
        raise InvalidReference(f"{text[:300]!r} names no registry", reference=text[:300])
    return ref.tagged()


def local_name(text: str) -> Reference:
    """A name to give an image (tag, import, load): a short name lands in ``localhost/``."""
    ref = parse(text)
    if ref.digest:
        raise InvalidReference(f"{text[:300]!r}: an image can only be tagged with a name, not a digest",
                               reference=text[:300])
    if ref.short:
        ref = ref.with_domain(LOCAL_DOMAIN)
    return ref.tagged()


def is_digest(text: str) -> bool:
    return bool(_SHA256.match(text))


def id_prefix(text: str) -> str | None:
    """The hex an image ID (or unique prefix) is given as: ``abc123`` or ``sha256:abc...``."""
    if text.startswith("sha256:"):
        text = text[7:]
    if 3 <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text):
        return text
    return None
