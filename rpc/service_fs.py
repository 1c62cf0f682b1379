"""Handlers of io.varpod.Container's filesystem methods: mount, unmount, export, stat, copies,
diff, commit, artifacts (core/containerfs).

Export, CopyOut and CopyIn move their bytes through a file descriptor the client passes
after the upgrade reply (its own file, pipe, stdin or stdout), as image load and save do
(``fd_takeover``): the daemon writes the tar into it or reads it from it, and nothing
is staged. Every error that can be known before (no such container, a bad state, a
missing path for a copy out) is an ordinary error of the first reply.
"""

from __future__ import annotations

from typing import Any

from ..core.containerfs.fs import ContainerFS, PathStat
from .interfaces import container as C
from .registry import Kind, Registry
from .service_images import ReplyChannel, fd_takeover

CTR = "io.varpod.Container."


def _wire_stat(st: PathStat) -> C.PathStat:
    return C.PathStat(name=st.name, path=st.path, size=st.size, mode=st.mode, mtime=st.mtime,
                      link_target=st.link_target)


class FsService:
    def __init__(self, fs: ContainerFS) -> None:
        self.fs = fs

    def register(self, reg: Registry) -> None:
        add = reg.add
        add(CTR + "Mount", C.NameParams, self.mount, mutating=True)
        add(CTR + "Unmount", C.UnmountParams, self.unmount, mutating=True)
        add(CTR + "MountList", C.MountListParams, self.mount_list, Kind.SYNC)
        add(CTR + "Export", C.NameParams, self.export, Kind.UPGRADE)
        add(CTR + "Stat", C.PathParams, self.stat)
        add(CTR + "CopyOut", C.CopyOutParams, self.copy_out, Kind.UPGRADE)
        add(CTR + "CopyIn", C.CopyInParams, self.copy_in, Kind.UPGRADE, mutating=True)
        add(CTR + "Diff", C.NameParams, self.diff)
        add(CTR + "Commit", C.CommitParams, self.commit, mutating=True)
        add(CTR + "ArtifactAdd", C.ArtifactAddParams, self.artifact_add, mutating=True)
        add(CTR + "ArtifactGet", C.ArtifactParams, self.artifact_get, Kind.SYNC)
        add(CTR + "ArtifactRemove", C.ArtifactParams, self.artifact_remove, mutating=True)
        add(CTR + "ArtifactList", C.NameParams, self.artifact_list, Kind.SYNC)

    async def mount(self, p: C.NameParams, ctx: Any) -> C.MountReply:
        path = await self.fs.mount(p.name)
        return C.MountReply(id=self.fs.engine.resolve(p.name).id, path=path)

    async def unmount(self, p: C.UnmountParams, ctx: Any) -> C.UnmountReply:
        cid = self.fs.engine.resolve(p.name).id
        return C.UnmountReply(id=cid, mounted=await self.fs.unmount(cid, bool(p.force)))

    def mount_list(self, p: C.MountListParams, ctx: Any) -> C.MountListReply:
        return C.MountListReply(mounts=[C.MountedContainer(id=rec.id, names=[rec.name], path=path)
                                        for rec, path in self.fs.mounted()])

    async def export(self, p: C.NameParams, ctx: Any):
        rec = self.fs.engine.resolve(p.name)
        self.fs.check(rec)  # a container being removed is refused before any fd moves

        async def run(chan: ReplyChannel, fd: int) -> None:
            await self.fs.export(rec.id, fd)
            await chan.reply(C.ExportReply(id=rec.id))

        return C.ExportReply(id=rec.id), await fd_takeover(ctx, "Export", run)

    async def stat(self, p: C.PathParams, ctx: Any) -> C.StatReply:
        cid = self.fs.engine.resolve(p.name).id
        return C.StatReply(id=cid, stat=_wire_stat(await self.fs.stat(cid, p.path)))

    async def copy_out(self, p: C.CopyOutParams, ctx: Any):
        cid = self.fs.engine.resolve(p.name).id
        await self.fs.stat(cid, p.path)  # a missing path is an ordinary error, before any fd moves

        async def run(chan: ReplyChannel, fd: int) -> None:
            st = await self.fs.copy_out(cid, p.path, fd, name=p.rename or "", contents=bool(p.contents))
            await chan.reply(C.CopyOutReply(id=cid, stat=_wire_stat(st)))

        return C.CopyOutReply(id=cid), await fd_takeover(ctx, "CopyOut", run)

    async def copy_in(self, p: C.CopyInParams, ctx: Any):
        rec = self.fs.engine.resolve(p.name)
        self.fs.check(rec)

        async def run(chan: ReplyChannel, fd: int) -> None:
            await self.fs.copy_in(rec.id, p.path, fd, name=p.source_name or "",
                                  target=p.target_name or "", directory=bool(p.directory),
                                  contents=bool(p.contents), chown=p.chown is not False,
                                  overwrite=bool(p.overwrite))
            await chan.reply(C.CopyInReply(id=rec.id))

        return C.CopyInReply(id=rec.id), await fd_takeover(ctx, "CopyIn", run)

    async def diff(self, p: C.NameParams, ctx: Any) -> C.DiffReply:
        cid = self.fs.engine.resolve(p.name).id
        found = await self.fs.diff(cid)
        return C.DiffReply(id=cid, changes=[C.Change(Path=path, Kind=kind) for kind, path in found])

    async def commit(self, p: C.CommitParams, ctx: Any) -> C.CommitReply:
        image = await self.fs.commit(p.name, name=p.image or "", author=p.author or "",
                                     message=p.message or "", changes_=p.changes or [],
                                     pause=p.pause is not False, fmt=p.format or "")
        return C.CommitReply(id=image.id, names=self.fs.images.names_of(image.id))

    async def artifact_add(self, p: C.ArtifactAddParams, ctx: Any) -> C.Empty:
        await self.fs.artifact_add(p.name, p.artifact, p.data)
        return C.Empty()

    def artifact_get(self, p: C.ArtifactParams, ctx: Any) -> C.ArtifactReply:
        return C.ArtifactReply(data=self.fs.artifact_get(p.name, p.artifact))

    async def artifact_remove(self, p: C.ArtifactParams, ctx: Any) -> C.Empty:
        await self.fs.artifact_remove(p.name, p.artifact)
        return C.Empty()

    def artifact_list(self, p: C.NameParams, ctx: Any) -> C.ArtifactListReply:
        return C.ArtifactListReply(artifacts=[C.Artifact(name=n, size=s)
                                              for n, s in self.fs.artifact_list(p.name)])
