"""Image archives in and out: oci-archive and docker-archive, as podman, docker and skopeo write
them; and ``import`` of a plain root filesystem tar as a one-layer image.

Archives come and go as file descriptors the client opened (its own files, or
its stdin/stdout), read and written front to back, never whole in memory.
Loading stages every member under ``<root>/tmp/load-*`` while hashing it,
checks the image documents against the hashes, and only then moves blobs into
the store and unpacks layers; a refused archive leaves nothing behind.

Saving writes what podman writes: docker-archive has one uncompressed
``<diff-id>.tar`` per layer, the config as ``<id>.json`` and ``manifest.json``
(``RepoTags``); oci-archive has ``oci-layout``, ``index.json`` (its
``org.opencontainers.image.ref.name`` is the image's name) and the blobs as
stored, so digests (and so the image ID) survive the round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import shutil
import tarfile
import time
from typing import Any, BinaryIO

import msgspec

from ..errors import (
    DigestMismatch,
    InvalidArchive,
    InvalidConfig,
    InvalidImage,
    InvalidReference,
    Unsupported,
)
from . import policy
from .blobs import check_digest
from .compression import NONE, ZSTD, Decompressed, Hashing, detect
from .images import Images, parse_time
from .model import (
    CONFIG_MAX,
    INDEXES,
    MANIFEST_MAX,
    MANIFESTS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    History,
    ImageConfig,
    ImageRecord,
    Manifest,
    RootFS,
    RunConfig,
    chain_ids,
    choose,
    host_platform,
    media_type_of,
    parse_config,
    parse_index,
    parse_manifest,
)
from .progress import Progress, Reporter, Sink
from .reference import local_name, parse
from .tarstream import CHUNK, DIRECTORY, HARDLINK, REGULAR, SYMLINK, TarReader

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
FORMATS = ("docker-archive", "oci-archive")
_encode = msgspec.json.Encoder().encode


class _Staged:
    """An archive's members on disk: archive name -> (path, sha256 digest, size)."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.files: dict[str, tuple[str, str, int]] = {}
        self._links: dict[str, str] = {}

    def get(self, name: str) -> tuple[str, str, int] | None:
        name = _clean(name)
        for _ in range(40):
            if name in self.files:
                return self.files[name]
            if name not in self._links:
                return None
            name = self._links[name]
        raise InvalidArchive(f"too many links resolving {name!r} in the archive", entry=name)

    def json(self, name: str, limit: int = MANIFEST_MAX) -> Any:
        try:
            return json.loads(self.read(name, limit))
        except ValueError as e:
            raise InvalidArchive(f"{name} in the archive is not JSON: {e}", entry=name) from None

    def read(self, name: str, limit: int) -> bytes:
        found = self.get(name)
        if found is None:
            raise InvalidArchive(f"the archive has no {name}", entry=name)
        if found[2] > limit:
            raise InvalidArchive(f"{name} in the archive is over {limit} bytes", entry=name)
        with open(found[0], "rb") as f:
            return f.read()


def _clean(name: str) -> str:
    norm = posixpath.normpath("/" + name).lstrip("/")
    return norm


def _stage(f: BinaryIO, directory: str) -> _Staged:
    """Read the whole (possibly compressed) archive into ``directory`` (blocking)."""
    staged = _Staged(directory)
    reader = TarReader(Decompressed(f, "archive").read)
    n = 0
    for entry in reader:
        name = entry.name
        if name.startswith("/") or ".." in name.split("/"):
            raise InvalidArchive(f"archive member {name[:200]!r} has an unsafe path", entry=name[:4096])
        name = _clean(name)
        if entry.type == DIRECTORY:
            continue
        if entry.type == REGULAR:
            n += 1
            path = os.path.join(directory, f"m{n}")
            sha = hashlib.sha256()
            with open(path, "wb") as out:
                for chunk in reader.chunks():
                    sha.update(chunk)
                    out.write(chunk)
            staged.files[name] = (path, "sha256:" + sha.hexdigest(), entry.size)
        elif entry.type in (SYMLINK, HARDLINK):
            target = entry.linkname
            if entry.type == SYMLINK:
                target = posixpath.join(posixpath.dirname(name), target)
            if target.startswith("/") or posixpath.normpath(target).startswith(".."):
                raise InvalidArchive(f"archive member {name[:200]!r} links outside the archive",
                                     entry=name[:4096])
            staged._links[name] = _clean(target)
        else:
            raise InvalidArchive(f"archive member {name[:200]!r} is a device or fifo", entry=name[:4096])
    reader.drain()
    return staged


class _Found:
    """One image found in an archive, checked, ready to be stored."""

    def __init__(self, manifest: Manifest, manifest_bytes: bytes, media_type: str, digest: str,
                 config: ImageConfig, blob_paths: dict[str, str], names: list[str]) -> None:
        self.manifest = manifest
        self.manifest_bytes = manifest_bytes
        self.media_type = media_type
        self.digest = digest
        self.config = config
        self.blob_paths = blob_paths  # digest -> staged path (blobs we lack)
        self.names = names


# -- load --------------------------------------------------------------------------------------


async def load(images: Images, fd: int, progress: Sink | None = None) -> list[tuple[ImageRecord, list[str]]]:
    """Load every image of an oci-archive or docker-archive read from ``fd``."""
    report = Reporter(progress)
    directory = images.blobs.temp_path("load")
    os.mkdir(directory, 0o700)
    try:
        report.note("Getting image source signatures")
        f = os.fdopen(os.dup(fd), "rb", buffering=CHUNK)
        try:
            staged = await asyncio.to_thread(_stage, f, directory)
        finally:
            f.close()
        if staged.get("index.json") is not None and staged.get("manifest.json") is None:
            policy.check(None, "oci-archive")
            found = _oci_images(staged, images)
        elif staged.get("manifest.json") is not None:
            policy.check(None, "docker-archive")
            found = _docker_images(staged, images)
        else:
            raise InvalidArchive("neither an oci-archive (no index.json) nor a docker-archive "
                                 "(no manifest.json)", entry="")
        if not found:
            raise InvalidArchive("the archive holds no image", entry="")
        return [(await _store(images, item, report), item.names) for item in found]
    except BaseException:
        images.collect_unused()  # blobs and layers of a refused archive: nothing left behind
        raise
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _oci_images(staged: _Staged, images: Images) -> list[_Found]:
    index = parse_index(_json_bytes(staged, "index.json"), "index.json")
    out = []
    for desc in index.manifests:
        names = []
        annotations = desc.annotations or {}
        for key in (CONTAINERD_NAME, REF_NAME):
            name = _oci_name(annotations.get(key, ""))
            if name and name not in names:
                names.append(name)
                break
        if desc.mediaType in INDEXES:
            nested = parse_index(_blob(staged, images, desc.digest, MANIFEST_MAX)[0], desc.digest)
            desc = choose(nested, host_platform(), desc.digest)
        out.append(_image(staged, images, desc.digest, names))
    return out


def _oci_name(text: str) -> str:
    """The name an OCI ref.name stands for: a full reference keeps it; a bare tag names nothing."""
    if not text or ("/" not in text and ":" not in text):
        return ""
    try:
        return str(local_name(text))
    except InvalidReference:
        return ""


def _json_bytes(staged: _Staged, name: str) -> bytes:
    return staged.read(name, MANIFEST_MAX)


def _blob(staged: _Staged, images: Images, digest: str, limit: int | None = None) -> tuple[bytes, str]:
    """(content if ``limit``, staged path or "") of a blob in the archive or already in the store."""
    check_digest(digest)
    found = staged.get(f"blobs/sha256/{digest[7:]}")
    if found is not None:
        if found[1] != digest:
            raise DigestMismatch(f"archive blob {digest} has content with digest {found[1]}",
                                 expected=digest, actual=found[1])
        data = b""
        if limit is not None:
            data = staged.read(f"blobs/sha256/{digest[7:]}", limit)
        return data, found[0]
    if images.blobs.has(digest):
        return (images.blobs.read(digest, limit) if limit is not None else b""), ""
    raise InvalidArchive(f"the archive lacks blob {digest}", entry=f"blobs/sha256/{digest[7:]}")


def _image(staged: _Staged, images: Images, digest: str, names: list[str]) -> _Found:
    data, mpath = _blob(staged, images, digest, MANIFEST_MAX)
    media_type = media_type_of(data)
    if media_type not in MANIFESTS:
        raise Unsupported(f"archive manifest {digest} has media type {media_type[:100]!r}",
                          feature="media type")
    manifest = parse_manifest(data, digest)
    config_bytes, cpath = _blob(staged, images, manifest.config.digest, CONFIG_MAX)
    config = parse_config(config_bytes, manifest.config.digest)
    paths = {digest: mpath, manifest.config.digest: cpath}
    for layer in manifest.layers:
        paths[layer.digest] = _blob(staged, images, layer.digest)[1]
    _check_layers(manifest, config, digest)
    return _Found(manifest, data, media_type, digest, config, {d: p for d, p in paths.items() if p}, names)


def _check_layers(manifest: Manifest, config: ImageConfig, digest: str) -> None:
    if len(manifest.layers) != len(config.rootfs.diff_ids):
        raise InvalidImage(f"image {digest}: {len(manifest.layers)} layers in its manifest but "
                           f"{len(config.rootfs.diff_ids)} in its config", digest=digest)


def _docker_images(staged: _Staged, images: Images) -> list[_Found]:
    entries = staged.json("manifest.json")
    if not isinstance(entries, list):
        raise InvalidArchive("manifest.json is not a list", entry="manifest.json")
    out = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise InvalidArchive("manifest.json entry without Config and Layers", entry="manifest.json")
        config_name = entry["Config"]
        config_bytes = staged.read(config_name, CONFIG_MAX)
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        config = parse_config(config_bytes, config_digest)
        layers, paths = [], {}
        for name in entry["Layers"]:
            found = staged.get(str(name))
            if found is None:
                raise InvalidArchive(f"manifest.json names layer {str(name)[:200]!r}, which is not in "
                                     "the archive", entry=str(name)[:4096])
            path, digest, size = found
            with open(path, "rb") as f:
                kind = detect(f.read(6))
            media = {NONE: OCI_LAYER, ZSTD: OCI_LAYER_ZSTD}.get(kind, OCI_LAYER_GZIP)
            if kind not in (NONE, ZSTD, "gzip"):
                raise Unsupported(f"layer {name!r} is {kind}-compressed; store it as tar, gzip or zstd",
                                  feature="compression")
            layers.append(Descriptor(mediaType=media, digest=digest, size=size))
            paths[digest] = path
        manifest = Manifest(schemaVersion=2, mediaType=OCI_MANIFEST,
                            config=Descriptor(mediaType=OCI_CONFIG, digest=config_digest,
                                              size=len(config_bytes)), layers=layers)
        data = _encode(manifest)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _check_layers(manifest, config, digest)
        paths[config_digest] = staged.get(config_name)[0]
        names = []
        for tag in entry.get("RepoTags") or []:
            try:
                ref = parse(str(tag))
            except InvalidReference:
                continue
            name = str((ref.with_domain("docker.io") if ref.short else ref).tagged())  # docker's names
            if name not in names:
                names.append(name)
        out.append(_Found(manifest, data, OCI_MANIFEST, digest, config, paths, names))
    return out


async def _store(images: Images, item: _Found, report: Reporter) -> ImageRecord:
    """Move the image's blobs into the store, unpack its layers, record it."""
    manifest, config = item.manifest, item.config
    chains = chain_ids(config.rootfs.diff_ids)
    pins = images.pin([*item.blob_paths, *chains])
    try:
        for digest, path in item.blob_paths.items():
            if not images.blobs.has(digest):
                os.rename(path, images.blobs.path(digest))
        if not images.blobs.has(item.digest):
            images.blobs.put(item.manifest_bytes, item.digest, f"manifest {item.digest}")
        sizes = []
        for i, layer in enumerate(manifest.layers):
            report(Progress("blob", layer.digest, "extract", layer.size, layer.size))
            rec = await images.unpack(layer.digest, chains[i], config.rootfs.diff_ids[i],
                                      chains[i - 1] if i else "", layer.mediaType, f"layer {layer.digest}")
            sizes.append(rec.size)
            report(Progress("blob", layer.digest, "done", layer.size, layer.size))
        report(Progress("config", manifest.config.digest, "done"))
        report(Progress("manifest", item.digest, text="Writing manifest to image destination"))
        rec = ImageRecord(id=manifest.config.digest[7:], digest=item.digest, digests=[item.digest],
                          manifest_type=item.media_type, layers=chains,
                          blobs=[item.digest, manifest.config.digest, *(d.digest for d in manifest.layers)],
                          size=sum(sizes), created=parse_time(config.created), added=time.time_ns(),
                          architecture=config.architecture, os=config.os)
        rec = images.commit(rec, item.names)
        for name in item.names or [f"sha256:{rec.id}"]:
            report(Progress("image", rec.id, "done", text=f"Loaded image: {name}"))
        return rec
    finally:
        images.unpin(pins)


# -- save --------------------------------------------------------------------------------------


async def save(images: Images, ref: str, fd: int, fmt: str = "docker-archive") -> ImageRecord:
    """Write ``ref`` as ``fmt`` into ``fd`` (a file or pipe the client opened)."""
    if fmt not in FORMATS:
        raise Unsupported(f"save format {fmt!r}: varpod writes {' and '.join(FORMATS)}", feature="format")
    rec = images.find(ref)
    names = images.names_of(rec.id)
    name = _saved_name(ref, names)
    pins = images.pin([*rec.blobs, *rec.layers])
    try:
        manifest = images.manifest(rec)
        config_bytes = images.blobs.read("sha256:" + rec.id, CONFIG_MAX)
        sizes = [images.store.layers[c].size for c in rec.layers]
        job = _write_docker if fmt == "docker-archive" else _write_oci
        await asyncio.to_thread(job, images, rec, manifest, config_bytes, sizes, name, fd)
    finally:
        images.unpin(pins)
    return rec


def _saved_name(ref: str, names: list[str]) -> str:
    """The name the archive carries: the one asked for, if it is one of the image's names."""
    try:
        parsed = parse(ref)
        for n in names:
            if n == str(parsed.tagged()) or (parsed.short and n.endswith("/" + str(parsed.tagged()))):
                return n
    except InvalidReference:
        pass
    return next((n for n in names if "@" not in n), "")


class _Out:
    """A blocking writer on the client's fd (never closed here: it is the client's)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, True)

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        return len(data)

    def flush(self) -> None:
        pass


def _tar(fd: int) -> tarfile.TarFile:
    return tarfile.open(fileobj=_Out(fd), mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK)


def _member(t: tarfile.TarFile, name: str, size: int, source: Any) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o444
    info.mtime = 0
    t.addfile(info, _Full(source.read))


class _Full:
    """``read(n)`` that returns n bytes unless the stream ends: tarfile takes a short read
    for the end of the data, and decompressors return what one block gives."""

    def __init__(self, read: Any) -> None:
        self._read = read

    def read(self, n: int) -> bytes:
        first = self._read(n)
        if len(first) == n or not first:
            return first
        parts, got = [first], len(first)
        while got < n and (more := self._read(n - got)):
            parts.append(more)
            got += len(more)
        return b"".join(parts)


def _bytes(t: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    _member(t, name, len(data), io.BytesIO(data))


def _write_docker(images: Images, rec: ImageRecord, manifest: Manifest, config_bytes: bytes,
                  sizes: list[int], name: str, fd: int) -> None:
    config = parse_config(config_bytes)
    layer_files = []
    with _tar(fd) as t:
        for layer, diff_id, size in zip(manifest.layers, config.rootfs.diff_ids, sizes, strict=True):
            member = f"{diff_id[7:]}.tar"
            with open(images.blobs.path(layer.digest), "rb") as f:
                stream = Decompressed(f, f"layer {layer.digest}")
                hashing = Hashing(stream.read)
                _member(t, member, size, hashing)
            if hashing.digest != diff_id:
                raise DigestMismatch(f"layer {layer.digest} no longer matches its diff ID {diff_id}",
                                     expected=diff_id, actual=hashing.digest)
            layer_files.append(member)
        _bytes(t, f"{rec.id}.json", config_bytes)
        tags = [name] if name else []
        _bytes(t, "manifest.json", json.dumps(
            [{"Config": f"{rec.id}.json", "RepoTags": tags, "Layers": layer_files}]).encode())
        if name:
            repo, _, tag = name.rpartition(":")
            _bytes(t, "repositories", json.dumps({repo: {tag: rec.id}}).encode())


def _write_oci(images: Images, rec: ImageRecord, manifest: Manifest, config_bytes: bytes,
               sizes: list[int], name: str, fd: int) -> None:
    manifest_bytes = images.blobs.read(rec.digest, MANIFEST_MAX)
    desc: dict[str, Any] = {"mediaType": rec.manifest_type, "digest": rec.digest, "size": len(manifest_bytes)}
    if name:
        desc["annotations"] = {REF_NAME: name}
    with _tar(fd) as t:
        _bytes(t, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _bytes(t, f"blobs/sha256/{rec.digest[7:]}", manifest_bytes)
        _bytes(t, f"blobs/sha256/{rec.id}", config_bytes)
        for layer in manifest.layers:
            path = images.blobs.path(layer.digest)
            with open(path, "rb") as f:
                _member(t, f"blobs/sha256/{layer.digest[7:]}", os.fstat(f.fileno()).st_size, f)
        _bytes(t, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                            "manifests": [desc]}).encode())


# -- import ------------------------------------------------------------------------------------


async def import_tar(images: Images, fd: int, name: str = "", changes: list[str] | None = None,
                     message: str = "", progress: Sink | None = None) -> ImageRecord:
    """A root filesystem tar (plain or compressed) from ``fd`` as a one-layer image."""
    report = Reporter(progress)
    target = str(local_name(name)) if name else ""
    run = apply_changes(RunConfig(), changes or [])
    report.note("Getting image source signatures")
    writer = images.blobs.writer(None, None, "imported tar")

    def copy() -> None:
        with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
            while data := f.read(CHUNK):
                writer.write(data)

    try:
        await asyncio.to_thread(copy)
        blob = writer.commit()
    except BaseException:
        writer.abort()
        raise
    pins = images.pin([blob])
    try:
        with open(images.blobs.path(blob), "rb") as f:
            kind = detect(f.read(6))
        media = {NONE: OCI_LAYER, ZSTD: OCI_LAYER_ZSTD, "gzip": OCI_LAYER_GZIP}.get(kind)
        if media is None:
            raise Unsupported(f"the tar is {kind}-compressed; give a plain, gzip or zstd tar",
                              feature="compression")
        size = images.blobs.size(blob)
        report(Progress("blob", blob, "extract", size, size))
        layer = await images.unpack_new(blob, media, f"imported tar {blob}")
        report(Progress("blob", blob, "done", size, size))
        now_ns = time.time_ns()
        secs, frac = divmod(now_ns, 10**9)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
        platform = host_platform()
        config = ImageConfig(created=stamp, architecture=platform.architecture, os="linux",
                             variant=platform.variant, config=run,
                             rootfs=RootFS(type="layers", diff_ids=[layer.diff_id]),
                             history=[History(created=stamp, created_by="varpod import", comment=message)])
        config_bytes = _encode(config)
        config_digest = images.blobs.put(config_bytes, None, "config")
        manifest = Manifest(schemaVersion=2, mediaType=OCI_MANIFEST,
                            config=Descriptor(mediaType=OCI_CONFIG, digest=config_digest,
                                              size=len(config_bytes)),
                            layers=[Descriptor(mediaType=media, digest=blob, size=size)])
        manifest_bytes = _encode(manifest)
        digest = images.blobs.put(manifest_bytes, None, "manifest")
        rec = ImageRecord(id=config_digest[7:], digest=digest, digests=[digest], manifest_type=OCI_MANIFEST,
                          layers=[layer.chain_id], blobs=[digest, config_digest, blob], size=layer.size,
                          created=now_ns, added=time.time_ns(),
                          architecture=platform.architecture, os="linux")
        rec = images.commit(rec, [target] if target else [])
        report(Progress("image", rec.id, "done", text=f"Imported image: {target or rec.id}"))
        return rec
    except BaseException:
        images.unpin(pins)
        pins = []
        images.collect_unused()  # the blob of a refused tar: nothing left behind
        raise
    finally:
        images.unpin(pins)


def apply_changes(run: RunConfig, changes: list[str]) -> RunConfig:
    """Dockerfile instructions (``--change 'CMD ["sh"]'``) applied to an image's run config."""
    fields = msgspec.structs.asdict(run)
    for change in changes:
        word, _, rest = change.strip().partition(" ")
        key, rest = word.upper(), rest.strip()
        if key in ("CMD", "ENTRYPOINT"):
            fields["Cmd" if key == "CMD" else "Entrypoint"] = _exec_form(rest, change)
        elif key == "ENV":
            env = list(fields["Env"] or [])
            for k, v in _pairs(rest, change, allow_space=True):
                env = [e for e in env if e.partition("=")[0] != k] + [f"{k}={v}"]
            fields["Env"] = env
        elif key == "LABEL":
            fields["Labels"] = {**(fields["Labels"] or {}), **dict(_pairs(rest, change, allow_space=False))}
        elif key == "EXPOSE":
            ports = dict(fields["ExposedPorts"] or {})
            for p in rest.split():
                ports[p if "/" in p else f"{p}/tcp"] = {}
            fields["ExposedPorts"] = ports
        elif key == "VOLUME":
            vols = dict(fields["Volumes"] or {})
            for v in (_exec_form(rest, change) if rest.startswith("[") else rest.split()):
                vols[v] = {}
            fields["Volumes"] = vols
        elif key in ("USER", "WORKDIR", "STOPSIGNAL"):
            if not rest:
                raise InvalidConfig(f"--change {change[:100]!r} needs a value", field="change")
            fields[{"USER": "User", "WORKDIR": "WorkingDir", "STOPSIGNAL": "StopSignal"}[key]] = rest
        else:
            raise InvalidConfig(f"--change {change[:100]!r}: varpod applies CMD, ENTRYPOINT, ENV, "
                                "EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME and WORKDIR", field="change")
    return RunConfig(**fields)


def _exec_form(text: str, change: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidConfig(f"--change {change[:100]!r}: not a JSON list of strings", field="change")
        return value
    return ["/bin/sh", "-c", text] if text else []


def _pairs(text: str, change: str, *, allow_space: bool) -> list[tuple[str, str]]:
    import shlex

    if allow_space and "=" not in text.split(" ", 1)[0]:
        key, _, value = text.partition(" ")
        if not key:
            raise InvalidConfig(f"--change {change[:100]!r} needs KEY=VALUE", field="change")
        return [(key, value.strip())]
    out = []
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise InvalidConfig(f"--change {change[:100]!r}: {e}", field="change") from None
    for word in words:
        key, eq, value = word.partition("=")
        if not key or not eq:
            raise InvalidConfig(f"--change {change[:100]!r}: {word!r} is not KEY=VALUE", field="change")
        out.append((key, value))
    return out

