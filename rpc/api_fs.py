"""The client's filesystem calls on containers (a mixin of ``rpc.api.API``): mount, unmount,
export, stat, copies as tar streams, diff, commit, artifacts.

Tar streams are the client's files: ``export``, ``copy_out`` and ``copy_in`` take a path
(opened here, with this process's permissions), an open file or an fd (a pipe, stdout),
or for ``copy_in`` bytes, and pass the descriptor to the daemon, which writes or reads
the tar there directly. ``copy_out``/``copy_in`` are docker's get/put archive; the
host-side rules of ``varpod cp`` (paths, renames) are the CLI's (``rpc/cli/fs.py``).
"""

from __future__ import annotations

from .api_images import _Source

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

CONTAINER = "io.varpod.Container."


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class FsAPI:
    def _call(self, method: str, params: dict[str, Any], rtype: str, pick: str | None = None) -> Any:
        raise NotImplementedError

    def mount(self, name: str) -> Any:
        """Mount the container's rootfs on the host; returns its path (``unmount`` to undo)."""
        return self._call(CONTAINER + "Mount", {"name": name}, "container.MountReply", "path")

    def unmount(self, name: str, *, force: bool = False) -> Any:
        """One mount fewer (``force``: all); returns whether the rootfs stays mounted."""
        return self._call(CONTAINER + "Unmount", _given(name=name, force=force or None),
                          "container.UnmountReply", "mounted")

    def mount_list(self) -> Any:
        return self._call(CONTAINER + "MountList", {}, "container.MountListReply", "mounts")

    def export(self, name: str, dest: Any) -> Any:
        """The container's rootfs as a tar into ``dest`` (path, file or fd); returns its ID."""
        out = _Source(dest, write=True)
        return self._fd_call(CONTAINER + "Export", {"name": name}, out.fd, "container.ExportReply", "id",
                             out.owned)

    def path_stat(self, name: str, path: str) -> Any:
        """What ``path`` leads to in the container: a ``PathStat`` (mode, size, link_target ...)."""
        return self._call(CONTAINER + "Stat", {"name": name, "path": path}, "container.StatReply", "stat")

    def copy_out(self, name: str, path: str, dest: Any, *, rename: str | None = None,
                 contents: bool = False) -> Any:
        """``path`` of the container as a tar into ``dest`` (path, file or fd), its top entry
        named ``rename`` (default: its own name), or (``contents``) a directory's entries
        only; returns the ``PathStat`` of what was copied."""
        out = _Source(dest, write=True)
        return self._fd_call(CONTAINER + "CopyOut",
                             _given(name=name, path=path, rename=rename, contents=contents or None),
                             out.fd, "container.CopyOutReply", "stat", out.owned)

    def copy_in(self, name: str, path: str, source: Any, *, source_name: str | None = None,
                target_name: str | None = None, directory: bool = False, contents: bool = False,
                chown: bool = True, overwrite: bool = False) -> Any:
        """Unpack a tar (path, file, fd or bytes; plain or compressed) at ``path`` in the
        container. Without ``source_name``, ``path`` is a directory to unpack into; with it,
        the tar's top entry is the source (``directory`` or not; ``"."``: the tar holds a
        directory's entries) and podman's cp rules place it: as ``target_name`` (default
        ``source_name``) inside an existing directory, its entries only with ``contents``, as
        ``path`` itself when that is new or a file. ``chown``
        (podman's --archive, default): entries get the container user's owner."""
        src = _Source(source, write=False)
        params = _given(name=name, path=path, source_name=source_name, target_name=target_name,
                        directory=directory or None,
                        contents=contents or None, chown=None if chown else False,
                        overwrite=overwrite or None)
        return self._fd_call(CONTAINER + "CopyIn", params, src.fd, "container.CopyInReply", "id", src.owned)

    def diff(self, name: str) -> Any:
        """The container's changes to its image: ``Change(Path, Kind)`` with Kind A, C or D."""
        return self._call(CONTAINER + "Diff", {"name": name}, "container.DiffReply", "changes")

    def commit(self, name: str, image: str | None = None, *, author: str | None = None,
               message: str | None = None, changes: list[str] | None = None, pause: bool = True,
               format: str | None = None) -> Any:
        """A new image of the container's image and changes; returns ``CommitReply(id, names)``."""
        params = _given(name=name, image=image, author=author, message=message, changes=changes,
                        pause=None if pause else False, format=format)
        return self._call(CONTAINER + "Commit", params, "container.CommitReply")

    def artifact_add(self, name: str, artifact: str, data: bytes) -> Any:
        params = {"name": name, "artifact": artifact, "data": bytes(data)}
        return self._call(CONTAINER + "ArtifactAdd", params, "container.Empty")

    def artifact_get(self, name: str, artifact: str) -> Any:
        return self._call(CONTAINER + "ArtifactGet", {"name": name, "artifact": artifact},
                          "container.ArtifactReply", "data")

    def artifact_remove(self, name: str, artifact: str) -> Any:
        return self._call(CONTAINER + "ArtifactRemove", {"name": name, "artifact": artifact},
                          "container.Empty")

    def artifact_list(self, name: str) -> Any:
        return self._call(CONTAINER + "ArtifactList", {"name": name}, "container.ArtifactListReply",
                          "artifacts")
