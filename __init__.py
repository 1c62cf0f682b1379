"""varpod: a programmable container engine daemon driving runc.

Users import the clients from here; nothing heavy is imported until asked for,
so ``from varpod import Client`` stays cheap (no asyncio, no anyio)::

    from varpod import Client, AsyncClient
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "VarpodError", "__version__"]


def __getattr__(name: str):
    if name == "Client":
        from .rpc.client import Client

        return Client
    if name == "AsyncClient":
        from .rpc.client import AsyncClient

        return AsyncClient
    if name == "VarpodError":
        from .core.errors import VarpodError

        return VarpodError
    raise AttributeError(f"module 'varpod' has no attribute {name!r}")
