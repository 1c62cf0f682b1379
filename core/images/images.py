"""The local image store and its verbs: find, pull, tag, untag, remove, prune.

Archives (load, save, import) are in archive.py, container roots in rootfs.py;
this class holds the pieces they share and the rules that keep them
consistent:

* a blob is verified before it is stored, a layer before it is recorded, and
  an image is recorded (one transaction, with its names) only once all its
  layers are: an interrupted pull leaves blobs and layers no image uses, which
  the next pull reuses and ``collect()`` (daemon start) or ``prune`` removes;
* a blob or layer is fetched and unpacked once however many pulls want it at
  the same time (``_once``), and transfers pin what they hold so a concurrent
  ``rmi``/``prune`` cannot delete it under them;
* an image is not removed while a container uses it (``users``, kept by the
  ImagePart) unless forced, and its layers and blobs go with their last image.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from ..errors import (
    AmbiguousImage,
    ImageInUse,
    InvalidImage,
    InvalidReference,
    NoSuchImage,
    RegistryError,
    VarpodError,
)
from . import auth, policy
from .blobs import BlobStore, check_digest
from .layerstore import LayerStore
from .model import (
    INDEXES,
    MANIFESTS,
    Descriptor,
    ImageConfig,
    ImageRecord,
    LayerRecord,
    Manifest,
    Platform,
    chain_ids,
    check_manifest_type,
    choose,
    host_platform,
    parse_config,
    parse_index,
    parse_manifest,
)
from .progress import Progress, Reporter, Sink
from .reference import LOCAL_DOMAIN, Reference, id_prefix, local_name, parse
from .registries_conf import RegistriesConf
from .rootfs import Rootfs

log = logging.getLogger("varpod.images")

DOWNLOADS_PER_PULL = 3
UNPACKS = 2  # threads unpacking at once (the machine has 2 cores)


class Images:
    def __init__(self, root: str, db_path: str) -> None:
        from .store import ImageStore

        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.store = ImageStore(db_path)
        self.blobs = BlobStore(root)
        self.layers = LayerStore(root)
        self.rootfs = Rootfs(root, self.layers)
        self._http: Any = None  # registry.Http, made on the first pull (httpx costs start-up time)
        self.users: dict[str, set[str]] = {}  # image ID -> IDs of containers made from it
        self._pins: Counter[str] = Counter()  # blob digests and chain IDs held by transfers
        self._inflight: dict[str, list] = {}  # "blob:…"/"layer:…" -> [task, waiters]
        self._unpack_slots: asyncio.Semaphore | None = None
        self._configs: dict[str, ImageConfig] = {}
        self._closing = threading.Event()

    async def close(self) -> None:
        self._closing.set()
        for task, _ in list(self._inflight.values()):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()
        self.store.close()

    # -- lookups -------------------------------------------------------------------------

    def list(self) -> list[ImageRecord]:
        return sorted(self.store.images.values(), key=lambda r: -r.added)

    def names_of(self, iid: str) -> list[str]:
        return self.store.names_of(iid)

    def find(self, text: str) -> ImageRecord:
        """An image by ID, ID prefix, name, digest or short name, as podman looks them up."""
        if not isinstance(text, str) or not text:
            raise InvalidReference("an image name or ID cannot be empty", reference="")
        images, names = self.store.images, self.store.names
        hexid = id_prefix(text)
        if hexid is not None and len(hexid) == 64 and hexid in images:
            return images[hexid]
        if not text.startswith("sha256:"):
            ref = parse(text)
            if not ref.short:
                found = names.get(str(ref.tagged()))
                if found is not None:
                    return images[found]
        else:
            ref = None
        if hexid is not None:
            matches = [i for i in images if i.startswith(hexid)]
            if len(matches) == 1:
                return images[matches[0]]
            if matches:
                raise AmbiguousImage(f"{text!r} matches {len(matches)} images; use more of the ID",
                                     name=text[:253])
        if ref is not None and ref.short:
            found_id = self._find_short(ref)
            if found_id is not None:
                return images[found_id]
        raise NoSuchImage(f"{text[:300]}: image not known", name=text[:253])

    def _find_short(self, ref: Reference) -> str | None:
        names = self.store.names
        want = ref.tagged()
        try:
            search = RegistriesConf.load().search
        except VarpodError:
            search = []
        for domain in (LOCAL_DOMAIN, *search):
            found = names.get(str(want.with_domain(domain)))
            if found is not None:
                return found
        # As podman: any repository whose last components are the short name.
        tail = "/" + want.path
        suffix = f":{want.tag}" if want.tag else f"@{want.digest}"
        hits = {iid for name, iid in names.items()
                if name.endswith(suffix) and name[: -len(suffix)].endswith(tail)}
        if len(hits) > 1:
            shown = sorted(n for n, i in names.items() if i in hits and n.endswith(suffix)
                           and n[: -len(suffix)].endswith(tail))
            raise AmbiguousImage(f"short name {str(ref)!r} matches several images ({', '.join(shown)}); "
                                 "use a full name", name=str(ref)[:253])
        return next(iter(hits), None)

    def exists(self, text: str) -> bool:
        try:
            self.find(text)
        except NoSuchImage:
            return False
        return True

    def config(self, rec: ImageRecord) -> ImageConfig:
        cfg = self._configs.get(rec.id)
        if cfg is None:
            digest = "sha256:" + rec.id
            cfg = self._configs[rec.id] = parse_config(self.blobs.read(digest), digest)
        return cfg

    def manifest(self, rec: ImageRecord) -> Manifest:
        return parse_manifest(self.blobs.read(rec.digest), rec.digest)

    def repo_digests(self, rec: ImageRecord) -> list[str]:
        repos = []
        for name in self.names_of(rec.id):
            repo = name.split("@", 1)[0]
            if ":" in repo.rsplit("/", 1)[-1]:
                repo = repo.rsplit(":", 1)[0]
            if repo not in repos:
                repos.append(repo)
        return [f"{repo}@{d}" for repo in repos for d in rec.digests]

    # -- shared work -------------------------------------------------------------------------

    async def _once(self, key: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``factory`` once for every caller asking for ``key`` meanwhile; it is cancelled
        only when every one of them has gone."""
        entry = self._inflight.get(key)
        if entry is None:
            task = asyncio.ensure_future(factory())
            entry = self._inflight[key] = [task, 0]

            def forget(_: Any, entry: list = entry) -> None:
                if self._inflight.get(key) is entry:
                    del self._inflight[key]

            task.add_done_callback(forget)
        entry[1] += 1
        try:
            return await asyncio.shield(entry[0])
        finally:
            entry[1] -= 1
            if entry[1] == 0 and not entry[0].done():
                entry[0].cancel()

    def pin(self, keys: Iterable[str]) -> list[str]:
        keys = list(keys)
        self._pins.update(keys)
        return keys

    def unpin(self, keys: Iterable[str]) -> None:
        self._pins.subtract(keys)
        self._pins += Counter()  # drops the zeros

    async def unpack(self, blob: str, chain: str, diff_id: str, parent: str, media_type: str,
                     what: str) -> LayerRecord:
        """The layer ``chain`` from blob ``blob``, unpacked (once) and recorded."""
        found = self.store.layers.get(chain)
        if found is not None and self.layers.exists(chain):
            return found
        return await self._once("layer:" + chain, lambda: self._unpack(blob, chain, diff_id, parent,
                                                                        media_type, what))

    async def _unpack(self, blob: str, chain: str, diff_id: str, parent: str, media_type: str,
                      what: str) -> LayerRecord:
        if self._unpack_slots is None:
            self._unpack_slots = asyncio.Semaphore(UNPACKS)
        result, chain = await self._unpack_thread(blob, chain, diff_id, what)
        rec = LayerRecord(chain_id=chain, diff_id=result.diff_id, parent=parent, size=result.size,
                          blob=blob, media_type=media_type, added=time.time_ns())
        self.store.add_layer(rec)
        return rec

    async def _unpack_thread(self, blob: str, chain: str | None, diff_id: str | None,
                             what: str) -> tuple[Any, str]:
        if self._unpack_slots is None:
            self._unpack_slots = asyncio.Semaphore(UNPACKS)
        cancel = threading.Event()
        async with self._unpack_slots:
            try:
                return await asyncio.to_thread(self.layers.unpack, self.blobs.path(blob), chain, diff_id,
                                               what, cancel)
            except asyncio.CancelledError:
                cancel.set()  # the thread stops at its next entry and cleans up
                raise

    async def unpack_new(self, blob: str, media_type: str, what: str) -> LayerRecord:
        """A bottom layer whose diff ID is whatever unpacking finds (an imported tar)."""
        result, chain = await self._unpack_thread(blob, None, None, what)
        found = self.store.layers.get(chain)
        if found is not None:
            return found
        rec = LayerRecord(chain_id=chain, diff_id=result.diff_id, size=result.size, blob=blob,
                          media_type=media_type, added=time.time_ns())
        self.store.add_layer(rec)
        return rec

    def commit(self, rec: ImageRecord, names: Iterable[str]) -> ImageRecord:
        """Record an image whose layers are all recorded; an image already here gains the names
        and digests (its layers are the same: the config, which is its ID, lists them)."""
        for chain in rec.layers:
            if chain not in self.store.layers:
                raise InvalidImage(f"image {rec.id[:12]}: layer {chain[:12]} is missing", digest=rec.digest)
        old = self.store.images.get(rec.id)
        if old is not None:
            digests = list(old.digests) + [d for d in rec.digests if d not in old.digests]
            blobs = list(old.blobs) + [b for b in rec.blobs if b not in old.blobs]
            rec = ImageRecord(**{**_fields(old), "digests": digests, "blobs": blobs})
        self.store.put_image(rec, names)
        return rec

    # -- pull ---------------------------------------------------------------------------------

    def _registry(self, host: str, insecure: bool, credentials: tuple[str, str] | None) -> Any:
        from .registry import Http, Registry

        if self._http is None:
            self._http = Http()
        return Registry(self._http, host, insecure=insecure, credentials=credentials)

    async def pull(self, text: str, *, platform: Platform | None = None, tls_verify: bool | None = None,
                   credentials: tuple[str, str] | None = None, auths: dict[str, str] | None = None,
                   progress: Sink | None = None) -> ImageRecord:
        """Pull ``text`` (short names resolved by registries.conf) and record it."""
        report = Reporter(progress)
        ref = parse(text)
        if ref.digest:
            check_digest(ref.digest, "the digest in the reference")
        conf = RegistriesConf.load()
        candidates = [ref.tagged()] if not ref.short else conf.candidates(ref)
        if auths is None:
            auths = auth.all_credentials()
        failures: list[tuple[Reference, VarpodError]] = []
        for cand in candidates:
            policy.check(cand)
            report(Progress("resolve", str(cand), text=f"Trying to pull {cand}..."))
            try:
                return await self._pull_endpoints(cand, conf, platform, tls_verify, credentials, auths,
                                                  report)
            except VarpodError as e:
                if len(candidates) == 1:
                    raise
                failures.append((cand, e))
        last = failures[-1][1]
        summary = "; ".join(f"{c}: {e.message}" for c, e in failures)
        err = type(last)(f"pulling {text}: every candidate failed: {summary}",
                         **{f: getattr(last, f, "") for f in last.fields})
        raise err

    async def _pull_endpoints(self, ref: Reference, conf: RegistriesConf, platform: Platform | None,
                              tls_verify: bool | None, credentials: tuple[str, str] | None,
                              auths: dict[str, str], report: Reporter) -> ImageRecord:
        endpoints = conf.endpoints(ref)
        for i, ep in enumerate(endpoints):
            insecure = ep.insecure or conf.insecure(ep.ref.domain) or tls_verify is False
            creds = credentials or auth.lookup(auths, ep.ref.repository)
            registry = self._registry(ep.ref.domain, insecure, creds)
            try:
                return await self._pull_from(registry, ep.ref, ref, platform, report)
            except RegistryError as e:
                if i == len(endpoints) - 1:
                    raise
                log.info("mirror %s failed for %s: %s", ep.ref, ref, e.message)
        raise AssertionError("unreachable")

    async def _pull_from(self, registry: Any, where: Reference, ref: Reference, platform: Platform | None,
                         report: Reporter) -> ImageRecord:
        repo = where.path
        data, media_type, digest = await registry.manifest(repo, where.digest or where.tag)
        check_manifest_type(media_type, f"{where}")
        digests = [digest]
        if media_type in INDEXES:
            want = platform or host_platform()
            desc = choose(parse_index(data, digest), want, digest)
            data, media_type, digest = await registry.manifest(repo, desc.digest)
            check_manifest_type(media_type, f"{where}@{desc.digest}")
            if media_type not in MANIFESTS:
                raise InvalidImage(f"{where}: the index entry for {want} is not an image manifest",
                                   digest=digest)
            digests.append(digest)
        manifest = parse_manifest(data, digest)
        names = [str(ref)]
        iid = manifest.config.digest[7:]
        have = self.store.images.get(iid)
        if have is not None and all(self.layers.exists(c) for c in have.layers):
            report(Progress("note", text="Getting image source signatures"))
            for layer in manifest.layers:
                report(Progress("blob", layer.digest, "exists", layer.size, layer.size))
            report(Progress("config", manifest.config.digest, "done"))
            return self.commit(ImageRecord(**{**_fields(have), "digests": digests}), names)
        pins = self.pin([manifest.config.digest, *(layer.digest for layer in manifest.layers)])
        try:
            report(Progress("note", text="Getting image source signatures"))
            config_bytes = await self._fetch_json_blob(registry, repo, manifest.config, "config")
            config = parse_config(config_bytes, manifest.config.digest)
            want = platform or host_platform()
            if (config.os, config.architecture) != (want.os, want.architecture) and config.architecture:
                report.note(f"image platform ({config.os}/{config.architecture}) does not match the "
                            f"expected platform ({want})")
            return await self._fetch_layers(registry, repo, manifest, config, digest, digests,
                                            (data, media_type), names, report)
        finally:
            self.unpin(pins)

    async def _fetch_layers(self, registry: Any, repo: str, manifest: Manifest, config: ImageConfig,
                            digest: str, digests: list[str], raw: tuple[bytes, str], names: list[str],
                            report: Reporter) -> ImageRecord:
        manifest_bytes, media_type = raw
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise InvalidImage(f"image {digest}: {len(manifest.layers)} layers in its manifest but "
                               f"{len(diff_ids)} in its config", digest=digest)
        chains = chain_ids(diff_ids)
        pins = self.pin(chains)
        slots = asyncio.Semaphore(DOWNLOADS_PER_PULL)

        async def one(i: int, desc: Descriptor) -> LayerRecord:
            found = self.store.layers.get(chains[i])
            if found is not None and self.layers.exists(chains[i]):
                report(Progress("blob", desc.digest, "exists", desc.size, desc.size))
                return found
            async with slots:
                if not self.blobs.has(desc.digest):
                    await self._once("blob:" + desc.digest,
                                     lambda: self._fetch_blob(registry, repo, desc, report))
            report(Progress("blob", desc.digest, "extract", desc.size, desc.size))
            rec = await self.unpack(desc.digest, chains[i], diff_ids[i], chains[i - 1] if i else "",
                                    desc.mediaType, f"layer {desc.digest}")
            report(Progress("blob", desc.digest, "done", desc.size, desc.size))
            return rec

        try:
            tasks = [asyncio.ensure_future(one(i, d)) for i, d in enumerate(manifest.layers)]
            try:
                layers = await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            report(Progress("config", manifest.config.digest, "done"))
            report(Progress("manifest", digest, text="Writing manifest to image destination"))
            if not self.blobs.has(digest):
                self.blobs.put(manifest_bytes, digest, f"manifest {digest}")
            rec = ImageRecord(
                id=manifest.config.digest[7:], digest=digest, digests=digests,
                manifest_type=media_type, layers=chains,
                blobs=[digest, manifest.config.digest, *(d.digest for d in manifest.layers)],
                size=sum(rec.size for rec in layers), created=parse_time(config.created),
                added=time.time_ns(), architecture=config.architecture, os=config.os)
            return self.commit(rec, names)
        finally:
            self.unpin(pins)

    async def _fetch_json_blob(self, registry: Any, repo: str, desc: Descriptor, what: str) -> bytes:
        from .model import CONFIG_MAX

        if desc.size > CONFIG_MAX:
            raise InvalidImage(f"{what} {desc.digest} is over {CONFIG_MAX} bytes", digest=desc.digest)
        if not self.blobs.has(desc.digest):
            await self._once("blob:" + desc.digest, lambda: self._fetch_blob(registry, repo, desc, None))
        return self.blobs.read(desc.digest, CONFIG_MAX)

    async def _fetch_blob(self, registry: Any, repo: str, desc: Descriptor, report: Reporter | None) -> None:
        writer = self.blobs.writer(desc.digest, desc.size, f"blob {desc.digest}")
        if report is not None:
            report(Progress("blob", desc.digest, "start", 0, desc.size))

        def moved(done: int) -> None:
            if report is not None:
                report.bytes("blob", desc.digest, done, desc.size)

        try:
            await registry.blob(repo, desc.digest, writer.write, moved)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    async def login(self, registry: str, user: str, password: str, tls_verify: bool | None = None) -> None:
        """Check credentials against ``registry`` (the client stores them: auth.py)."""
        ref = parse(registry + "/x") if "/" not in registry else parse(registry)
        if ref.short:
            raise InvalidReference(f"{registry!r} is not a registry name", reference=registry[:300])
        conf = RegistriesConf.load()
        insecure = conf.insecure(ref.domain) or tls_verify is False
        await self._registry(ref.domain, insecure, (user, password)).check_login()

    # -- names -----------------------------------------------------------------------------------

    def tag(self, text: str, new: str) -> str:
        rec = self.find(text)
        name = str(local_name(new))
        self.store.put_image(rec, [name])
        return name

    def untag(self, text: str, names: list[str]) -> list[str]:
        """Remove ``names`` from the image (none given: all of them); returns the names removed."""
        rec = self.find(text)
        have = self.names_of(rec.id)
        if not names:
            gone = have
        else:
            gone = []
            for n in names:
                name = str(parse(n)) if "@" in n else str(local_name(n))
                if name not in have:
                    raise NoSuchImage(f"{name}: tag not known on image {rec.id[:12]}", name=name)
                gone.append(name)
        self.store.remove_names(gone)
        return gone

    # -- removal ---------------------------------------------------------------------------------

    def remove(self, text: str, force: bool = False) -> list[tuple[str, str]]:
        """podman's rmi: a name of an image with several names is untagged; otherwise the image
        goes (refused while containers use it: the caller removes them first when forcing).
        Returns ("Untagged", name) and ("Deleted", id) steps."""
        rec = self.find(text)
        names = self.names_of(rec.id)
        name = self.name_in(text, names)
        if name is not None and len(names) > 1:
            self.store.remove_names([name])
            return [("Untagged", name)]
        if name is None and len(names) > 1 and not force:
            raise ImageInUse(f"image {rec.id[:12]} is referenced in multiple repositories "
                             f"({', '.join(names)}); remove it by name, or force", id=rec.id,
                             containers=[])
        users = sorted(self.users.get(rec.id, ()))
        if users:
            raise ImageInUse(f"image {rec.id[:12]} is in use by {len(users)} container(s): "
                             f"{', '.join(u[:12] for u in users)}", id=rec.id, containers=users)
        self.store.delete_image(rec.id)
        self._configs.pop(rec.id, None)
        self.collect_unused()
        return [*(("Untagged", n) for n in names), ("Deleted", rec.id)]

    def name_in(self, text: str, names: list[str]) -> str | None:
        """The name among ``names`` that ``text`` refers to; None when it is an ID."""
        if text.startswith("sha256:"):
            return None
        try:
            ref = parse(text)
        except InvalidReference:
            return None
        want = ref.tagged()
        if not ref.short:
            return str(want) if str(want) in names else None
        local = str(want.with_domain(LOCAL_DOMAIN))
        hits = [n for n in names if n == local or self._matches(n, ref)]
        return hits[0] if hits else None

    @staticmethod
    def _matches(name: str, ref: Reference) -> bool:
        want = ref.tagged()
        suffix = f":{want.tag}" if want.tag else f"@{want.digest}"
        return name.endswith(suffix) and name[: -len(suffix)].endswith("/" + want.path)

    def prune(self, all: bool = False) -> list[str]:
        """Remove images no container uses: untagged ones (``all``: every one). Returns their IDs."""
        gone = []
        for rec in self.list():
            if self.users.get(rec.id):
                continue
            if not all and self.names_of(rec.id):
                continue
            self.store.delete_image(rec.id)
            self._configs.pop(rec.id, None)
            gone.append(rec.id)
        self.collect_unused()
        return gone

    def collect_unused(self) -> tuple[int, int]:
        """Delete layers and blobs no image lists and no transfer holds. (layers, blobs) deleted."""
        used_layers = {c for rec in self.store.images.values() for c in rec.layers}
        used_blobs = {b for rec in self.store.images.values() for b in rec.blobs}
        pinned = set(self._pins)
        # A directory without a record is a crash's leftover, or a transfer's layer between its
        # rename and its record (an import's chain is known only then): only with no transfer.
        on_disk = set(self.layers.on_disk()) if not pinned else set()
        layers = [c for c in set(self.store.layers) | on_disk
                  if c not in used_layers and c not in pinned and f"layer:{c}" not in self._inflight]
        if layers:
            self.store.delete_layers(layers)
            for c in layers:
                self.layers.delete(c)
        blobs = [b for b in self.blobs.all()
                 if b not in used_blobs and b not in pinned and f"blob:{b}" not in self._inflight]
        for b in blobs:
            self.blobs.delete(b)
        return len(layers), len(blobs)

    def collect(self) -> None:
        """Daemon start: what transfers a crash cut short left, and records without a directory."""
        self.blobs.collect_temp()
        missing = [c for c in self.store.layers if not self.layers.exists(c)]
        if missing:
            log.warning("forgetting %d layer record(s) whose directories are gone", len(missing))
            self.store.delete_layers(missing)
        for rec in list(self.store.images.values()):
            if any(c not in self.store.layers for c in rec.layers):
                log.error("image %s lost a layer; removing its record", rec.id[:12])
                self.store.delete_image(rec.id)
        layers, blobs = self.collect_unused()
        if layers or blobs:
            log.info("removed %d unused layer(s) and %d unused blob(s)", layers, blobs)


def _fields(rec: ImageRecord) -> dict[str, Any]:
    return {f: getattr(rec, f) for f in rec.__struct_fields__}


def parse_time(text: str) -> int:
    """An RFC 3339 time (Go's, with nanoseconds) as ns since the epoch; 0 if absent or unreadable."""
    if not text:
        return 0
    stamp = text.strip().replace("Z", "+00:00")
    frac_ns = 0
    if "." in stamp:
        head, _, rest = stamp.partition(".")
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        digits, zone = rest[:n], rest[n:]
        frac_ns = int((digits + "000000000")[:9])
        stamp = head + zone
    try:
        return int(datetime.fromisoformat(stamp).timestamp()) * 10**9 + frac_ns
    except ValueError:
        return 0
