"""The documented import path, and what it must not pull in."""

import ast
import os
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


# argparse (with re, enum, gettext, locale), signal (enum), threading, contextlib and the
# Python twin of the C loops cost ~15 ms of every CLI start-up together; the CLI's common
# commands need none of them.
SLOW_FOR_THE_CLI = ("argparse", "re", "enum", "gettext", "locale", "signal", "threading", "contextlib",
                    "varpod.native._fallback")


def test_cli_run_exec_ps_logs_inspect_import_nothing_slow():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # whatever site (or an editable install's hook) loaded
        "from varpod.rpc import cli, framing, minipack, terminal\n"
        "from varpod import native\n"
        "for argv in (['run', '--rm', '-it', '--rootfs', '/r', 'sh'], ['exec', '-it', 'c', 'sh'],\n"
        "             ['ps', '-a', '--format', 'json'], ['logs', '-f', '--tail', '10', 'c'],\n"
        "             ['inspect', 'c']):\n"
        "    cli.parse_args(argv)\n"
        f"print(native.IMPLEMENTATION, sorted(set(sys.modules) - before & set({SLOW_FOR_THE_CLI!r})))"
    )
    env = {k: v for k, v in os.environ.items() if k != "VARPOD_NATIVE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    implementation, slow = out.stdout.split(" ", 1)
    slow = ast.literal_eval(slow)
    if implementation == "c" or os.environ.get("CI") == "true":
        assert (implementation, slow) == ("c", [])
    else:  # the twin is live: it needs threading and signal
        assert not set(slow) & {"argparse", "re", "gettext", "locale", "contextlib"}


def test_the_python_twin_is_there_when_asked_for():
    from varpod import native

    assert native._fallback.encode_frame(1, b"x") == native.encode_frame(1, b"x")
    with pytest.raises(AttributeError):
        native.no_such_name  # noqa: B018


def test_the_cli_command_modules_and_templates_import_nothing_slow():
    # Templates are imported whenever --format is given (ps, inspect in scripts): they too
    # must cost no re, enum, typing or argparse.
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from varpod.rpc.cli import containers, lifecycle, ps, inspect, system, filters, runflags\n"
        "from varpod.rpc.cli import template, gotemplate, gofuncs, goprintf, govalues, clilog\n"
        "template.render('table {{.ID}} {{.ID | upper}} {{printf \"%5s\" .ID}}', [{'ID': 'x'}], name='t')\n"
        f"print(sorted(set(sys.modules) - before & set({(*SLOW_FOR_THE_CLI, 'typing')!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_package_in_the_tree_is_installed():
    # pyproject.toml lists the packages by hand (the checkout root is the package): a new
    # one missing there works in an editable install and is absent from a real one.
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"varpod", *("varpod." + ".".join(p.parent.relative_to(root).parts)
                         for top in ("core", "rpc", "native") for p in (root / top).rglob("__init__.py"))}
    assert found == listed
