"""Handlers of io.varpod.Image: each method bound to core/images, records turned into wire Structs.

Pull streams its progress as ``more`` replies. Load, Save and Import take the
archive as a file descriptor the client passes over the upgraded connection
(SCM_RIGHTS), so the files are the client's own (its permissions, its paths,
its stdin/stdout) and the bytes never pass through the client; after the fd
the connection carries ordinary replies again (``ReplyChannel``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from ..core import events as core_events
from ..core.engine import Engine
from ..core.errors import InternalError, InvalidParameter, ShuttingDown, VarpodError
from ..core.images import archive
from ..core.images.auth import parse_creds
from ..core.images.images import Images
from ..core.images.model import ImageRecord, parse_platform
from ..core.images.progress import Progress
from .interfaces import image as I
from .registry import Kind, Registry
from .service import rfc3339
from .streams import RawChannel, receive_fds

log = logging.getLogger("varpod.images")
IMG = "io.varpod.Image."


class ReplyChannel(RawChannel):
    """An upgraded connection that carries replies again once the client's fd has arrived."""

    proto: Any = None

    async def reply(self, result: Any, continues: bool = False) -> None:
        await self.send(self.proto.reply(result, continues))

    async def error(self, e: VarpodError) -> None:
        await self.send(self.proto.error(e.rpc_name, e.parameters()))

    def shutdown(self) -> None:
        if not self.closed:
            err = ShuttingDown("the daemon is shutting down; the call was not completed")
            try:
                os.write(self.fd, self.proto.error(err.rpc_name, err.parameters()))
            except OSError:
                pass
            self.close()
            if self.task is not None:
                self.task.cancel()


def _wire(event: Progress) -> I.Progress:
    return I.Progress(kind=event.kind, id=event.id, state=event.state, current=event.current,
                      total=event.total, text=event.text)


async def _with_progress(job: Callable[[Callable[[Progress], None]], Coroutine[Any, Any, Any]],
                         report: bool) -> AsyncIterator[tuple[Progress | None, Any]]:
    """Run ``job(sink)``; yield (event, None) as it reports, then (None, its result)."""
    queue: asyncio.Queue[Progress | None] = asyncio.Queue()
    task = asyncio.ensure_future(job(queue.put_nowait if report else _ignore))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event, None
        yield None, task.result()
    finally:
        if not task.done():
            task.cancel()


def _ignore(event: Progress) -> None:
    pass


async def fd_takeover(ctx: Any, what: str, run: Callable[[ReplyChannel, int], Coroutine[Any, Any, None]]):
    """The takeover of a call that receives one fd after its reply, then replies again:
    ``run(channel, fd)`` (the fd is closed after it); its VarpodError goes to the client."""
    if not ctx.upgrade:
        raise InvalidParameter(f"{what} takes a file descriptor after its reply; call it with upgrade",
                               parameter="upgrade")

    async def takeover(conn: Any) -> None:
        chan = await ReplyChannel.detach(conn)
        chan.proto = conn.proto
        try:
            fds = await receive_fds(chan, 1)
            try:
                await run(chan, fds[0])
            finally:
                for fd in fds:
                    os.close(fd)
        except VarpodError as e:
            await _quietly(chan.error(e))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("%s failed", what, exc_info=e)
            await _quietly(chan.error(InternalError(f"internal error in {what}: {type(e).__name__}; "
                                                    "the daemon log has details")))
        finally:
            chan.close()

    return takeover


class ImageService:
    def __init__(self, images: Images, engine: Engine, bus: core_events.EventBus) -> None:
        self.images = images
        self.engine = engine
        self.bus = bus

    def register(self, reg: Registry) -> None:
        add = reg.add
        add(IMG + "Pull", I.PullParams, self.pull, Kind.STREAM, mutating=True)
        add(IMG + "Login", I.LoginParams, self.login, mutating=True)
        add(IMG + "Load", I.LoadParams, self.load, Kind.UPGRADE, mutating=True)
        add(IMG + "Save", I.SaveParams, self.save, Kind.UPGRADE)
        add(IMG + "Import", I.ImportParams, self.import_, Kind.UPGRADE, mutating=True)
        add(IMG + "List", I.ListParams, self.list, Kind.SYNC)
        add(IMG + "Inspect", I.NameParams, self.inspect, Kind.SYNC)
        add(IMG + "Exists", I.NameParams, self.exists, Kind.SYNC)
        add(IMG + "Tag", I.TagParams, self.tag, Kind.SYNC, mutating=True)
        add(IMG + "Untag", I.UntagParams, self.untag, Kind.SYNC, mutating=True)
        add(IMG + "Remove", I.RemoveParams, self.remove, mutating=True)
        add(IMG + "Prune", I.PruneParams, self.prune, mutating=True)

    def _emit(self, action: str, rec: ImageRecord, name: str = "") -> None:
        self.bus.emit("image", action, rec.id, name or next(iter(self.images.names_of(rec.id)), ""))

    # -- transfers ------------------------------------------------------------------------

    async def pull(self, p: I.PullParams, ctx: Any):
        platform = parse_platform(p.platform) if p.platform else None
        creds = parse_creds(p.credentials) if p.credentials else None
        auths = None
        if p.auths:
            from ..core.images.auth import all_credentials

            auths = {**all_credentials(), **p.auths}  # the client's own win

        def job(sink: Callable[[Progress], None]):
            return self.images.pull(p.reference, platform=platform, tls_verify=p.tls_verify,
                                    credentials=creds, auths=auths, progress=sink)

        async for event, rec in _with_progress(job, bool(ctx.more)):
            if event is not None:
                yield I.PullReply(progress=_wire(event)), True
            else:
                names = self.images.names_of(rec.id)
                self._emit("pull", rec, p.reference)
                yield I.PullReply(id=rec.id, names=names), False

    async def login(self, p: I.LoginParams, ctx: Any) -> I.Empty:
        await self.images.login(p.registry, p.username, p.password, p.tls_verify)
        return I.Empty()

    async def _with_fd(self, ctx: Any, what: str,
                       run: Callable[[ReplyChannel, int], Coroutine[Any, Any, None]]):
        return await fd_takeover(ctx, what, run)

    async def load(self, p: I.LoadParams, ctx: Any):
        async def run(chan: ReplyChannel, fd: int) -> None:
            async for event, loaded in _with_progress(lambda sink: archive.load(self.images, fd, sink), True):
                if event is not None:
                    await chan.reply(I.LoadReply(progress=_wire(event)), True)
                    continue
                for rec, _ in loaded:
                    self._emit("load", rec)
                await chan.reply(I.LoadReply(images=[
                    I.LoadedImage(id=rec.id, names=names) for rec, names in loaded]))

        return I.LoadReply(), await self._with_fd(ctx, "Load", run)

    async def save(self, p: I.SaveParams, ctx: Any):
        self.images.find(p.name)  # an unknown image is an ordinary error, before any fd moves

        async def run(chan: ReplyChannel, fd: int) -> None:
            rec = await archive.save(self.images, p.name, fd, p.format or "docker-archive")
            self._emit("save", rec, p.name)
            await chan.reply(I.SaveReply(id=rec.id))

        if p.format is not None and p.format not in archive.FORMATS:
            raise InvalidParameter(f"format {p.format!r}: choose {' or '.join(archive.FORMATS)}",
                                   parameter="format")
        return I.SaveReply(), await self._with_fd(ctx, "Save", run)

    async def import_(self, p: I.ImportParams, ctx: Any):
        async def run(chan: ReplyChannel, fd: int) -> None:
            def job(sink: Callable[[Progress], None]):
                return archive.import_tar(self.images, fd, p.name or "", p.changes or [], p.message or "",
                                          sink)

            async for event, rec in _with_progress(job, True):
                if event is not None:
                    await chan.reply(I.ImportReply(progress=_wire(event)), True)
                    continue
                self._emit("import", rec)
                await chan.reply(I.ImportReply(id=rec.id, names=self.images.names_of(rec.id)))

        if p.changes:
            archive.apply_changes(archive.RunConfig(), p.changes)  # refused before any fd moves
        return I.ImportReply(), await self._with_fd(ctx, "Import", run)

    # -- queries ---------------------------------------------------------------------------

    def list(self, p: I.ListParams, ctx: Any) -> I.ListReply:
        return I.ListReply(images=[self._summary(rec) for rec in self.images.list()])

    def _summary(self, rec: ImageRecord) -> I.ImageSummary:
        names = self.images.names_of(rec.id)
        labels = dict(self.images.config(rec).config.Labels or {})
        return I.ImageSummary(
            Id=rec.id, ParentId="", RepoTags=[n for n in names if "@" not in n],
            RepoDigests=self.images.repo_digests(rec), Created=rec.created // 10**9,
            CreatedAt=rfc3339(rec.created), Size=rec.size, SharedSize=0, VirtualSize=rec.size,
            Labels=labels, Containers=len(self.images.users.get(rec.id, ())), Names=names,
            Digest=rec.digest, Dangling=not any("@" not in n for n in names))

    def inspect(self, p: I.NameParams, ctx: Any) -> I.InspectReply:
        images = self.images
        rec = images.find(p.name)
        cfg = images.config(rec)
        run = cfg.config
        names = images.names_of(rec.id)
        diffs = [images.layers.diff(c) for c in reversed(rec.layers)]
        data = {"UpperDir": diffs[0], "LowerDir": ":".join(diffs[1:])} if diffs else {}
        if diffs and not data["LowerDir"]:
            del data["LowerDir"]
        return I.InspectReply(image=I.ImageInspect(
            Id=rec.id, Digest=rec.digest, RepoTags=[n for n in names if "@" not in n],
            RepoDigests=images.repo_digests(rec), Parent="", Comment=next(
                (h.comment for h in cfg.history if h.comment), ""),
            Created=rfc3339(rec.created), Config=I.ImageRunConfig(
                User=run.User, ExposedPorts={k: I.Nothing() for k in run.ExposedPorts or {}},
                Env=list(run.Env or []), Entrypoint=list(run.Entrypoint or []), Cmd=list(run.Cmd or []),
                Volumes={k: I.Nothing() for k in run.Volumes or {}}, WorkingDir=run.WorkingDir,
                Labels=dict(run.Labels or {}), StopSignal=run.StopSignal),
            Version="", Author=cfg.author, Architecture=cfg.architecture, Os=cfg.os, Variant=cfg.variant,
            Size=rec.size, VirtualSize=rec.size, GraphDriver=I.GraphDriver(Name="overlay", Data=data),
            RootFS=I.ImageRootFS(Type=cfg.rootfs.type, Layers=list(cfg.rootfs.diff_ids)),
            Labels=dict(run.Labels or {}), Annotations={}, ManifestType=rec.manifest_type, User=run.User,
            History=[I.ImageHistory(created=h.created, created_by=h.created_by, comment=h.comment,
                                    empty_layer=h.empty_layer) for h in cfg.history],
            NamesHistory=names))

    def exists(self, p: I.NameParams, ctx: Any) -> I.ExistsReply:
        return I.ExistsReply(exists=self.images.exists(p.name))

    # -- names and removal ------------------------------------------------------------------

    def tag(self, p: I.TagParams, ctx: Any) -> I.TagReply:
        name = self.images.tag(p.name, p.new_name)
        rec = self.images.find(name)
        self._emit("tag", rec, name)
        return I.TagReply(id=rec.id, name=name)

    def untag(self, p: I.UntagParams, ctx: Any) -> I.UntagReply:
        rec = self.images.find(p.name)
        removed = self.images.untag(p.name, list(p.names or []))
        for name in removed:
            self._emit("untag", rec, name)
        return I.UntagReply(id=rec.id, removed=removed)

    async def remove(self, p: I.RemoveParams, ctx: Any) -> I.RemoveReply:
        rec = self.images.find(p.name)
        removed: list[str] = []
        if p.force:
            # As podman's rmi -f: the containers using it go first.
            for cid in sorted(self.images.users.get(rec.id, ())):
                await self.engine.remove(cid, force=True, timeout=0)
                removed.append(cid)
        steps = self.images.remove(p.name, bool(p.force))
        for action, value in steps:
            if action == "Deleted":
                self.bus.emit("image", "remove", value, p.name)
            else:
                self._emit("untag", rec, value)
        return I.RemoveReply(steps=[I.RemovalStep(action=a, value=v) for a, v in steps], containers=removed)

    async def prune(self, p: I.PruneParams, ctx: Any) -> I.PruneReply:
        removed = self.images.prune(bool(p.all))
        for iid in removed:
            self.bus.emit("image", "remove", iid, "")
        return I.PruneReply(removed=removed)


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except VarpodError:
        pass  # the client went away: nobody is left to tell
    except Exception:
        log.exception("could not send an error to the client")

