"""The image calls of both clients (a mixin of ``rpc.api.API``).

Files are the client's: ``load``, ``save`` and ``import_image`` take a path
(opened here, with this process's permissions), an open file or an fd, and
hand the daemon the descriptor; the archive's bytes never pass through the
client. Credentials are the client's too, as with podman-remote: the client's
auth file (``authfile``, ``$REGISTRY_AUTH_FILE``, its runtime dir, docker's
config) is read here and sent with a pull.

``pull``/``load``/``import_image`` return the final reply; their ``*_progress``
twins iterate every reply (progress events, then the final one).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # from typing, which itself costs ~3 ms of CLI start-up
if TYPE_CHECKING:
    from typing import Any

IMAGE = "io.varpod.Image."


def _opts(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class _Source:
    """An fd to pass for a path, file or fd (or, to read from, bytes: a memfd holding them);
    ``owned`` when opened here (the client closes it once sent)."""

    def __init__(self, target: Any, write: bool) -> None:
        self.owned = False
        if isinstance(target, (bytes, bytearray, memoryview)) and not write:
            self.fd = os.memfd_create("varpod-source", os.MFD_CLOEXEC)
            self.owned = True
            view = memoryview(target)
            while view:
                view = view[os.write(self.fd, view):]
            os.lseek(self.fd, 0, os.SEEK_SET)
        elif isinstance(target, int):
            self.fd = target
        elif hasattr(target, "fileno"):
            if write and hasattr(target, "flush"):
                target.flush()
            self.fd = target.fileno()
        else:
            path = os.fspath(target)
            flags = (os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if write else os.O_RDONLY
            self.fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
            self.owned = True



def _pull_params(reference: str, platform: str | None, tls_verify: bool | None,
                 credentials: str | None, authfile: str | None) -> dict[str, Any]:
    from ..core.images.auth import all_credentials

    return _opts(reference=reference, platform=platform, tls_verify=tls_verify, credentials=credentials,
                 auths=all_credentials(authfile) or None)


class ImageAPI:
    def pull(self, reference: str, *, platform: str | None = None, tls_verify: bool | None = None,
             credentials: str | None = None, authfile: str | None = None) -> Any:
        """Pull an image; returns ``PullReply`` (``id``, ``names``)."""
        params = _pull_params(reference, platform, tls_verify, credentials, authfile)
        return self._call(IMAGE + "Pull", params, "image.PullReply")

    def pull_progress(self, reference: str, *, platform: str | None = None, tls_verify: bool | None = None,
                      credentials: str | None = None, authfile: str | None = None) -> Any:
        """Iterate a pull's replies: ``.progress`` events, then the final one with ``.id``."""
        return self._stream(IMAGE + "Pull",
                            _pull_params(reference, platform, tls_verify, credentials, authfile),
                            "image.PullReply")

    def login(self, registry: str, username: str, password: str, *, tls_verify: bool | None = None) -> Any:
        """Check credentials with the registry (through the daemon); ``store_login`` saves them."""
        return self._call(IMAGE + "Login", _opts(registry=registry, username=username, password=password,
                                                  tls_verify=tls_verify), "image.Empty")

    def load(self, source: Any) -> Any:
        """Load an oci-archive or docker-archive (path, file or fd); returns ``LoadReply.images``."""
        src = _Source(source, write=False)
        return self._fd_call(IMAGE + "Load", {}, src.fd, "image.LoadReply", "images", src.owned)

    def load_progress(self, source: Any) -> Any:
        src = _Source(source, write=False)
        return self._fd_stream(IMAGE + "Load", {}, src.fd, "image.LoadReply", None, src.owned)

    def save(self, name: str, dest: Any, *, format: str | None = None) -> Any:
        """Write the image as docker-archive (default) or oci-archive into ``dest``; returns its ID."""
        src = _Source(dest, write=True)
        return self._fd_call(IMAGE + "Save", _opts(name=name, format=format), src.fd,
                             "image.SaveReply", "id", src.owned)

    def import_image(self, source: Any, name: str | None = None, *, changes: list[str] | None = None,
                     message: str | None = None) -> Any:
        """A root filesystem tar (path, file or fd) as a one-layer image; returns ``ImportReply``."""
        src = _Source(source, write=False)
        return self._fd_call(IMAGE + "Import", _opts(name=name, changes=changes, message=message),
                             src.fd, "image.ImportReply", None, src.owned)

    def import_progress(self, source: Any, name: str | None = None, *, changes: list[str] | None = None,
                        message: str | None = None) -> Any:
        src = _Source(source, write=False)
        return self._fd_stream(IMAGE + "Import", _opts(name=name, changes=changes, message=message),
                               src.fd, "image.ImportReply", None, src.owned)

    def images(self, all: bool = False) -> Any:
        return self._call(IMAGE + "List", _opts(all=all or None), "image.ListReply", "images")

    def image_inspect(self, name: str) -> Any:
        return self._call(IMAGE + "Inspect", {"name": name}, "image.InspectReply", "image")

    def image_exists(self, name: str) -> Any:
        return self._call(IMAGE + "Exists", {"name": name}, "image.ExistsReply", "exists")

    def tag(self, name: str, new_name: str) -> Any:
        return self._call(IMAGE + "Tag", {"name": name, "new_name": new_name}, "image.TagReply")

    def untag(self, name: str, names: list[str] | None = None) -> Any:
        return self._call(IMAGE + "Untag", _opts(name=name, names=names or None), "image.UntagReply")

    def image_remove(self, name: str, *, force: bool = False) -> Any:
        """podman's rmi; returns ``RemoveReply`` (``steps``: Untagged/Deleted, ``containers`` removed)."""
        return self._call(IMAGE + "Remove", _opts(name=name, force=force or None), "image.RemoveReply")

    def image_prune(self, all: bool = False) -> Any:
        return self._call(IMAGE + "Prune", _opts(all=all or None), "image.PruneReply", "removed")


def store_login(registry: str, username: str, password: str, authfile: str | None = None) -> str:
    """Save credentials in the client's auth file (after ``login`` checked them); returns its path."""
    from ..core.images.auth import store

    return store(registry, username, password, authfile)
