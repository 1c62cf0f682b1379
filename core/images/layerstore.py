"""Unpacked layers on disk: ``<root>/layers/<chain-id>/diff``, one per chain, shared by all.

A layer is unpacked into a fresh directory under ``<root>/tmp``, checked
against its diff ID, and renamed into place; only then is it recorded. Each
layer also gets a short link ``<root>/l/<16 hex>`` -> its diff, which keeps
the overlay mount options of a many-layer image under the kernel's one-page
limit (see rootfs.py).
"""

from __future__ import annotations

import os
import shutil
import threading

from ..errors import DigestMismatch
from .layers import Unpacked, unpack_layer
from .reference import HEX64

SHORT = 16  # hex digits of the chain ID in a short link name


class LayerStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.layers_dir = os.path.join(root, "layers")
        self.links_dir = os.path.join(root, "l")
        self.tmp = os.path.join(root, "tmp")
        for d in (self.layers_dir, self.links_dir, self.tmp):
            os.makedirs(d, mode=0o700, exist_ok=True)
        # An empty lower layer for images without layers (overlayfs needs one).
        self.empty = os.path.join(root, "empty")
        os.makedirs(self.empty, mode=0o755, exist_ok=True)

    def diff(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, _hex(chain_id), "diff")

    def short_link(self, chain_id: str) -> str:
        """The layer's diff as ``l/<16 hex>``, relative to the root."""
        return os.path.join("l", _hex(chain_id)[:SHORT])

    def exists(self, chain_id: str) -> bool:
        return os.path.isdir(self.diff(chain_id))

    def unpack(self, blob_path: str, chain_id: str | None, diff_id: str | None, what: str,
               cancel: threading.Event | None = None) -> tuple[Unpacked, str]:
        """Unpack a blob as layer ``chain_id`` (blocking: run it in a thread); returns what
        unpacking found and the chain ID (hex).

        ``diff_id`` is checked before the layer is moved into place; with neither given (an
        imported tar: a bottom layer whose digest nobody announced) the chain is the digest
        found. On any failure nothing of it is left.
        """
        label = _hex(chain_id)[:16] if chain_id else "new"
        staging = os.path.join(self.tmp, f"layer-{label}-{os.urandom(4).hex()}")
        os.mkdir(staging, 0o700)
        try:
            diff = os.path.join(staging, "diff")
            os.mkdir(diff, 0o755)
            with open(blob_path, "rb") as f:
                result = unpack_layer(f, diff, what=what, cancel=cancel)
            if diff_id is not None and result.diff_id != diff_id:
                raise DigestMismatch(f"{what}: unpacked content has digest {result.diff_id}, the "
                                     f"image config says {diff_id}", expected=diff_id,
                                     actual=result.diff_id)
            chain = _hex(chain_id) if chain_id else result.diff_id[7:]
            final = os.path.dirname(self.diff(chain))
            try:
                os.rename(staging, final)
            except OSError:
                if not self.exists(chain):
                    raise
                shutil.rmtree(staging, ignore_errors=True)  # unpacked meanwhile by another pull
            self.link(chain)
            return result, chain
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def link(self, chain_id: str) -> None:
        link = os.path.join(self.root, self.short_link(chain_id))
        target = os.path.join("..", "layers", _hex(chain_id), "diff")
        try:
            os.symlink(target, link)
        except FileExistsError:
            if os.readlink(link) != target:
                os.unlink(link)
                os.symlink(target, link)

    def delete(self, chain_id: str) -> None:
        link = os.path.join(self.root, self.short_link(chain_id))
        try:
            if os.readlink(link).endswith(_hex(chain_id) + "/diff"):
                os.unlink(link)
        except OSError:
            pass
        # Renamed aside first: a crash mid-delete leaves a tmp dir, not half a layer.
        doomed = os.path.join(self.tmp, f"gone-{_hex(chain_id)[:16]}-{os.urandom(4).hex()}")
        try:
            os.rename(os.path.dirname(self.diff(chain_id)), doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def on_disk(self) -> list[str]:
        return [n for n in os.listdir(self.layers_dir) if HEX64.match(n)]


def _hex(chain_id: str) -> str:
    text = chain_id[7:] if chain_id.startswith("sha256:") else chain_id
    if not HEX64.match(text):
        raise ValueError(f"invalid chain ID {chain_id[:80]!r}")
    return text
