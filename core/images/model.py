"""OCI and Docker schema 2 documents as Structs, and the records varpod keeps of images and layers."""

from __future__ import annotations

import hashlib
import platform as _platform

import msgspec

from ..errors import InvalidImage, NoMatchingPlatform, Unsupported
from .blobs import check_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)
LAYERS = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER,
          "application/vnd.oci.image.layer.nondistributable.v1.tar",
          "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
          "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
          "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
# What a registry is asked for, preferred first.
ACCEPT = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_MAX = 4 << 20  # as containers/image: manifests and configs are small JSON
CONFIG_MAX = 4 << 20


class Platform(msgspec.Struct, omit_defaults=True):
    architecture: str = ""
    os: str = ""
    variant: str = ""
    # "os.version" and "os.features" matter to Windows images only.

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Descriptor(msgspec.Struct, omit_defaults=True):
    mediaType: str = ""
    digest: str = ""
    size: int = 0
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None


class Manifest(msgspec.Struct, omit_defaults=True):
    schemaVersion: int = 2
    mediaType: str = ""
    config: Descriptor = msgspec.field(default_factory=Descriptor)
    layers: list[Descriptor] = []
    annotations: dict[str, str] | None = None


class Index(msgspec.Struct, omit_defaults=True):
    schemaVersion: int = 2
    mediaType: str = ""
    manifests: list[Descriptor] = []
    annotations: dict[str, str] | None = None


class RunConfig(msgspec.Struct, omit_defaults=True):
    """The ``config`` member of an image config: what a container of it runs."""

    User: str = ""
    ExposedPorts: dict[str, dict] | None = None
    Env: list[str] | None = None
    Entrypoint: list[str] | None = None
    Cmd: list[str] | None = None
    Volumes: dict[str, dict] | None = None
    WorkingDir: str = ""
    Labels: dict[str, str] | None = None
    StopSignal: str = ""


class RootFS(msgspec.Struct, omit_defaults=True):
    type: str = "layers"
    diff_ids: list[str] = []


class History(msgspec.Struct, omit_defaults=True):
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


class ImageConfig(msgspec.Struct, omit_defaults=True):
    created: str = ""
    author: str = ""
    architecture: str = ""
    os: str = ""
    variant: str = ""
    config: RunConfig = msgspec.field(default_factory=RunConfig)
    rootfs: RootFS = msgspec.field(default_factory=RootFS)
    history: list[History] = []


class ImageRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One image in the store. ``id`` is its config's sha256 hex, as podman's."""

    id: str
    digest: str  # the manifest it was pulled, loaded or built as
    digests: list[str] = []  # every manifest (and manifest list) digest it is known by
    manifest_type: str = OCI_MANIFEST
    layers: list[str] = []  # chain IDs (hex), bottom first
    blobs: list[str] = []  # the manifest, config and layer blobs it holds
    size: int = 0  # uncompressed bytes of its layers
    created: int = 0  # ns since the epoch, from its config
    added: int = 0  # when it came into this store
    architecture: str = ""
    os: str = ""


class LayerRecord(msgspec.Struct, frozen=True, kw_only=True):
    chain_id: str  # hex
    diff_id: str  # sha256:...
    parent: str = ""  # the chain ID below it, "" at the bottom
    size: int = 0  # bytes of its uncompressed tar
    blob: str = ""  # the (compressed) blob it was unpacked from
    media_type: str = ""
    added: int = 0


_decode_manifest = msgspec.json.Decoder(Manifest).decode
_decode_index = msgspec.json.Decoder(Index).decode
_decode_config = msgspec.json.Decoder(ImageConfig).decode


def media_type_of(data: bytes, declared: str = "") -> str:
    """A manifest's media type: its own field, else the Content-Type, else from its shape."""
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise InvalidImage("the manifest is not JSON", digest="") from None
    if not isinstance(doc, dict):
        raise InvalidImage("the manifest is not a JSON object", digest="")
    own = doc.get("mediaType")
    if isinstance(own, str) and own:
        return own
    if doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1[0]
    if declared and declared not in ("application/json", "text/plain"):
        return declared.split(";")[0].strip()
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def parse_manifest(data: bytes, digest: str = "") -> Manifest:
    try:
        m = _decode_manifest(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InvalidImage(f"manifest {digest}: {e}", digest=digest) from None
    check_digest(m.config.digest, "config digest")
    if m.config.mediaType and m.config.mediaType not in CONFIGS:
        raise InvalidImage(f"manifest {digest} is not a container image (its config is "
                           f"{m.config.mediaType[:100]})", digest=digest)
    for layer in m.layers:
        check_digest(layer.digest, "layer digest")
        if layer.mediaType and layer.mediaType not in LAYERS:
            raise Unsupported(f"layer {layer.digest} has media type {layer.mediaType[:100]!r}, "
                              "which varpod does not unpack", feature="media type")
    return m


def parse_index(data: bytes, digest: str = "") -> Index:
    try:
        index = _decode_index(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InvalidImage(f"image index {digest}: {e}", digest=digest) from None
    for d in index.manifests:
        check_digest(d.digest, "manifest digest")
    return index


def parse_config(data: bytes, digest: str = "") -> ImageConfig:
    try:
        cfg = _decode_config(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise InvalidImage(f"image config {digest}: {e}", digest=digest) from None
    for d in cfg.rootfs.diff_ids:
        check_digest(d, "diff ID")
    return cfg


def check_manifest_type(media_type: str, what: str) -> None:
    if media_type in DOCKER_SCHEMA1:
        raise Unsupported(f"{what} is a Docker schema 1 manifest, which varpod does not read "
                          "(it was deprecated in 2017; push the image again with a current tool)",
                          feature="schema1")
    if media_type not in MANIFESTS + INDEXES:
        raise Unsupported(f"{what} has media type {media_type[:100]!r}, which is not an image "
                          "manifest or index", feature="media type")


# -- platforms ---------------------------------------------------------------------------------

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64le"}


def host_platform() -> Platform:
    machine = _platform.machine()
    arch = _ARCH.get(machine, machine)
    variant = {"arm64": "v8", "armv7l": "v7", "armv6l": "v6"}.get(machine if arch == "arm" else arch, "")
    return Platform(architecture=arch, os="linux", variant=variant)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]``, as ``--platform`` takes it."""
    parts = text.split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise NoMatchingPlatform(f"invalid platform {text[:100]!r}: give os/arch[/variant], "
                                 "e.g. linux/amd64", platform=text[:100])
    return Platform(os=parts[0], architecture=_ARCH.get(parts[1], parts[1]),
                    variant=parts[2] if len(parts) == 3 else "")


def choose(index: Index, want: Platform, digest: str = "") -> Descriptor:
    """The index entry for ``want``: os and architecture must match; the variant too when
    both name one (an arm64 entry without a variant is v8)."""
    candidates = []
    for d in index.manifests:
        p = d.platform
        if p is None or d.mediaType in INDEXES:
            continue
        if p.os != want.os or _ARCH.get(p.architecture, p.architecture) != want.architecture:
            continue
        if want.variant and p.variant and p.variant != want.variant:
            continue
        candidates.append(d)
    if not candidates:
        have = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
        raise NoMatchingPlatform(f"no image for {want} in manifest list {digest} (it has: {have})",
                                 platform=str(want))
    exact = [d for d in candidates if d.platform and d.platform.variant == want.variant]
    return (exact or candidates)[0]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain IDs (hex) of a stack of layers: each names a layer with all below it."""
    out: list[str] = []
    chain = ""
    for diff in diff_ids:
        chain = diff if not chain else "sha256:" + hashlib.sha256(f"{chain} {diff}".encode()).hexdigest()
        out.append(chain[7:])
    return out
