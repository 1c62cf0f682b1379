"""The documented import path, and what it must not pull in."""

import subprocess
import sys

import pytest


def test_the_documented_names_import():
    from varpod import AsyncClient, Client, VarpodError
    from varpod.core.errors import VarpodError as Original
    from varpod.rpc.client import AsyncClient as A
    from varpod.rpc.client import Client as C

    assert (Client, AsyncClient, VarpodError) == (C, A, Original)


def test_unknown_name_is_an_attribute_error():
    import varpod

    with pytest.raises(AttributeError):
        varpod.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("module", ["varpod:Client", "varpod.rpc.cli"])
def test_sync_client_and_cli_never_import_asyncio_or_anyio(module):
    # That import alone costs ~60 ms of start-up; the CLI and sync client avoid it.
    name, _, attr = module.partition(":")
    code = (
        f"import sys, {name}\n"
        + (f"getattr({name}, {attr!r})\n" if attr else "")
        + "print(sorted(m for m in ('asyncio', 'anyio', 'uvloop') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
