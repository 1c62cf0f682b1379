"""Session fixtures for the image tests: one registry, one test image, one daemon that knows them.

The daemon gets a registries.conf of its own (``CONTAINERS_REGISTRIES_CONF``):
the test registry is insecure (plain HTTP) and the only unqualified-search
registry, so short names resolve to it and nothing ever reaches beyond
127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imagetools as it
import pytest
from conftest import Daemon, _cleanup

from varpod.core.images.rootfs import mount_points


class ImageEnv:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.storage = base / "storage"
        self.registry = it.Registry(base / "registry", self.storage)
        self.host = self.registry.host
        self.layout = base / "layout"
        self.image_id = it.build_layout(self.layout, "v1")[7:]
        it.push(self.layout, "v1", f"{self.host}/test/bb:v1")
        self.ref = f"{self.host}/test/bb:v1"
        self.conf = base / "registries.conf"
        self.write_conf()
        self.daemon = Daemon(base / "d", env={"CONTAINERS_REGISTRIES_CONF": str(self.conf),
                                              "REGISTRY_AUTH_FILE": str(base / "daemon-auth.json")})
        self.daemon.start()
        self.extra: list = []  # more registries and proxies, stopped with the session

    def write_conf(self, search: bool = True, aliases: dict[str, str] | None = None,
                   mode: str = "permissive", insecure: list[str] = (), plain_http: bool = True) -> None:
        lines = [f'unqualified-search-registries = ["{self.host}"]' if search
                 else "unqualified-search-registries = []", f'short-name-mode = "{mode}"']
        for host in ((self.host,) if plain_http else ()) + tuple(insecure):
            lines += ["[[registry]]", f'location = "{host}"', "insecure = true"]
        lines.append("[aliases]")
        for name, target in (aliases or {"aliased": f"{self.host}/test/bb"}).items():
            lines.append(f'"{name}" = "{target}"')
        self.conf.write_text("\n".join(lines) + "\n")

    def ensure(self, client, ref: str | None = None) -> str:
        """The test image present (a test may have removed it); returns its ID."""
        ref = ref or self.ref
        if not client.image_exists(ref):
            client.pull(ref)
        return client.image_inspect(ref).Id

    def stop(self) -> None:
        for thing in self.extra:
            thing.stop()
        try:
            _cleanup(self.daemon)
        finally:
            self.registry.stop()


@pytest.fixture(scope="session")
def image_env(tmp_path_factory):
    env = ImageEnv(tmp_path_factory.mktemp("images"))
    yield env
    env.stop()
    root = env.daemon.root
    assert not [m for m in mount_points() if m.startswith(root)], "mounts left behind"


@pytest.fixture
def iclient(image_env):
    """A client of the image daemon; containers are removed after each test."""
    env = image_env
    env.write_conf()
    with env.daemon.client() as c:
        yield c
    env.daemon.remove_all()


@pytest.fixture
def ivarpod(image_env, iclient, tmp_path):
    """The CLI against the image daemon, with an auth file of the test's own."""
    env = {**os.environ, "VARPOD_SOCKET": image_env.daemon.socket,
           "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}

    def run(*args, input: bytes | None = None, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("stdout", subprocess.PIPE)  # or a file of the test's
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.run([sys.executable, "-m", "varpod.rpc.cli", *args], env=env, input=input,
                              timeout=timeout, check=False, **kw)

    run.env = env
    return run
