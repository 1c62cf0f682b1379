"""``commit``: a container's changes as one more layer on its image, recorded as a new image.

The upper directory is written as an uncompressed OCI layer tar straight into the blob
store (hashed as it is written: its digest is the layer's diff ID), unpacked as a layer
like any pulled one (so whiteouts go back to overlayfs form and the diff ID is checked),
then the config (the parent's, with the container's settings and ``--change``s, one more
diff ID and history entry) and the manifest are stored and the image recorded under the
name given. Transfers' pins keep the new blob and layer from a concurrent prune until
the image holds them.

The config follows podman's commit: the container's Env, Entrypoint, Cmd, WorkingDir,
User, Labels, StopSignal and exposed ports replace the image's, then each ``--change``
(CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR; others are
refused by name) applies.
"""

from __future__ import annotations

import asyncio
import signal
import time

import msgspec

from ..images.archive import apply_changes
from ..images.images import Images
from ..images.model import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    History,
    ImageRecord,
    Manifest,
    RunConfig,
    chain_ids,
)
from ..images.reference import local_name
from ..model import ContainerRecord
from .changes import write_layer
from .tarwrite import TarWriter

_encode = msgspec.json.Encoder().encode


def check(name: str, changes_: list[str]) -> str:
    """The image name to record (``localhost/NAME:latest`` for a short one), checked with
    the changes before anything is written."""
    apply_changes(RunConfig(), changes_)
    return str(local_name(name)) if name else ""


def run_config(parent: RunConfig, rec: ContainerRecord) -> RunConfig:
    cfg = rec.config
    ports = dict(parent.ExposedPorts or {})
    for p in (*cfg.exposed_ports, *cfg.net.expose):
        ports.setdefault(p if "/" in p else f"{p}/tcp", {})
    sig = signal.Signals(cfg.stop_signal).name if cfg.stop_signal != signal.SIGTERM else parent.StopSignal
    return msgspec.structs.replace(
        parent, Env=list(cfg.env) or None, Entrypoint=list(cfg.entrypoint) or None,
        Cmd=list(cfg.command[len(cfg.entrypoint):]) or None, WorkingDir=cfg.workdir,
        User="" if cfg.user == "0:0" and not parent.User else cfg.user, Labels=dict(cfg.labels) or None,
        StopSignal=sig, ExposedPorts=ports or None)


def _stamp(ns: int) -> str:
    secs, frac = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


async def commit(images: Images, rec: ContainerRecord, merged: str, *, name: str, author: str,
                 message: str, changes: list[str]) -> ImageRecord:
    target = check(name, changes)
    parent = images.store.images[rec.config.image]
    parent_config = images.config(parent)
    parent_manifest = images.manifest(parent)
    upper = images.rootfs.paths(rec.id)[0]
    writer = images.blobs.writer(None, None, f"the layer committed from {rec.name}")

    def write() -> None:
        write_layer(TarWriter(sink=writer.write), upper, merged)

    try:
        await asyncio.to_thread(write)
        blob = writer.commit()
    except BaseException:
        writer.abort()
        raise
    diff_ids = [*parent_config.rootfs.diff_ids, blob]
    chains = chain_ids(diff_ids)
    pins = images.pin([blob, chains[-1]])
    try:
        layer = await images.unpack(blob, chains[-1], blob, parent.layers[-1] if parent.layers else "",
                                    OCI_LAYER, f"the layer committed from {rec.name}")
        now = time.time_ns()
        stamp = _stamp(now)
        history = [*parent_config.history,
                   History(created=stamp, created_by=f"varpod commit {rec.name}", author=author,
                           comment=message)]
        config = msgspec.structs.replace(
            parent_config, created=stamp, author=author or parent_config.author,
            config=apply_changes(run_config(parent_config.config, rec), changes),
            rootfs=msgspec.structs.replace(parent_config.rootfs, diff_ids=diff_ids), history=history)
        config_bytes = _encode(config)
        config_digest = images.blobs.put(config_bytes, None, "config")
        layers = [*parent_manifest.layers,
                  Descriptor(mediaType=OCI_LAYER, digest=blob, size=images.blobs.size(blob))]
        manifest = Manifest(schemaVersion=2, mediaType=OCI_MANIFEST,
                            config=Descriptor(mediaType=OCI_CONFIG, digest=config_digest,
                                              size=len(config_bytes)), layers=layers)
        manifest_bytes = _encode(manifest)
        digest = images.blobs.put(manifest_bytes, None, "manifest")
        image = ImageRecord(id=config_digest[7:], digest=digest, digests=[digest], manifest_type=OCI_MANIFEST,
                            layers=[*parent.layers, layer.chain_id],
                            blobs=[digest, config_digest, *(d.digest for d in layers)],
                            size=parent.size + layer.size, created=now, added=now,
                            architecture=parent_config.architecture, os=parent_config.os)
        return images.commit(image, [target] if target else [])
    except BaseException:
        images.unpin(pins)
        pins = []
        images.collect_unused()  # the blob and layer of a commit that did not finish
        raise
    finally:
        images.unpin(pins)
