"""Shared fixtures: a busybox rootfs and real daemons (real runc) in temporary directories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mkrootfs

from varpod.core.errors import DaemonNotRunning
from varpod.rpc.client import Client

pytest_plugins = ["images_fixtures"]  # registries, test images and a daemon that knows them


def pytest_collection_modifyitems(config, items):
    # Every behaviour is tested against real runc; there is no skipping in CI.
    if os.geteuid() != 0:
        raise pytest.UsageError("the varpod tests drive runc and must run as root")


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory) -> str:
    return mkrootfs.build(str(tmp_path_factory.mktemp("rootfs")))


class Daemon:
    """A `varpod serve` process with its own root, run root and socket."""

    def __init__(self, base: Path, config: str | None = None, env: dict[str, str] | None = None,
                 netns: NetNamespace | None = None) -> None:
        self.base = base
        self.env = env  # extra environment (registries.conf, auth file) on top of ours
        self.netns = netns  # run inside this network namespace (its bridges and rules stay there)
        self.root = str(base / "root")
        self.run_root = str(base / "run")
        self.socket = str(base / "run" / "varpod.sock")
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.log_path = base / "daemon.log"
        base.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 15.0) -> Daemon:
        cmd = [*(self.netns.enter() if self.netns else ()), sys.executable, "-m", "varpod.rpc.cli",
               "serve", "--root", self.root,
               "--run-root", self.run_root, "--socket", self.socket, "--log-level", "debug"]
        if self.config:
            cmd += ["--config", self.config]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{self.log()}")
            try:
                with Client(self.socket) as c:
                    c.ping()
                return self
            except DaemonNotRunning:
                time.sleep(0.05)
        raise RuntimeError(f"daemon did not come up:\n{self.log()}")

    def client(self, **kw) -> Client:
        return Client(self.socket, **kw)

    def wrap_runtime(self, name: str, script: str) -> None:
        """Before start: the default runtime becomes ``name``, a shell script that runs
        ``script`` (it sees runc's arguments) and then execs runc with them."""
        wrapper = self.base / f"{name}-runc"
        wrapper.write_text(f'#!/bin/sh\n{script}\nexec runc "$@"\n')
        wrapper.chmod(0o755)
        config = self.base / "varpod.toml"
        config.write_text(f'default_runtime = "{name}"\n[runtimes]\n{name} = ["{wrapper}"]\n')
        self.config = str(config)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def remove_all(self) -> None:
        with self.client() as c:
            for pod in c.pod_list():  # first: their infra containers go only with them
                try:
                    c.pod_remove(pod.Id, force=True, timeout=0)
                except Exception as e:
                    print(f"teardown: removing pod {pod.Id[:12]} failed: {e}", file=sys.stderr)
            for ctr in c.list(all=True):
                try:
                    c.remove(ctr.Id, force=True, timeout=0)
                except Exception as e:
                    print(f"teardown: removing {ctr.Id[:12]} failed: {e}", file=sys.stderr)
            for vol in c.volume_list():  # after the containers: none is in use now
                try:
                    c.volume_remove(vol.Name, force=True, timeout=0)
                except Exception as e:
                    print(f"teardown: removing volume {vol.Name[:12]} failed: {e}", file=sys.stderr)

    def runtime_containers(self) -> list[str]:
        root = os.path.join(self.run_root, "runtime", "runc")
        return sorted(os.listdir(root)) if os.path.isdir(root) else []


class NetNamespace:
    """A network namespace the test makes (a file under tmp with the namespace mounted on it),
    loopback up: daemons run in it, so bridges and firewall rules never touch the host's."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        path.touch()
        subprocess.run(["unshare", f"--net={self.path}", "true"], check=True)
        self.run("ip", "link", "set", "lo", "up", check=True)

    def enter(self) -> list[str]:
        return ["nsenter", f"--net={self.path}"]

    def run(self, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([*self.enter(), *argv], capture_output=True, text=True, check=check,
                              timeout=timeout)

    def destroy(self) -> None:
        subprocess.run(["umount", self.path], capture_output=True, check=False)
        os.unlink(self.path)


def _cleanup(d: Daemon) -> None:
    try:
        if d.proc is not None and d.proc.poll() is None:
            d.remove_all()
    finally:
        d.stop()
        # Containers that survive a daemon (by design) still must not outlive the test.
        root = os.path.join(d.run_root, "runtime", "runc")
        for cid in d.runtime_containers():
            subprocess.run(["runc", "--root", root, "delete", "--force", cid],
                           capture_output=True, check=False)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    from varpod.core.images.rootfs import mount_points

    host_network = _host_network()
    d = Daemon(tmp_path_factory.mktemp("daemon")).start()
    yield d
    _cleanup(d)
    assert not d.runtime_containers(), "containers left behind in the runtime"
    assert not [m for m in mount_points() if m.startswith(str(d.base))], "mounts left behind"
    # Networks are tested only in namespaces of the tests' own (net_daemon): nothing the
    # suite did may show in the host's interfaces or firewall.
    assert _host_network() == host_network, "the tests changed the host's network"


def _host_network() -> tuple[list[str], list[str]]:
    """The host's interface names and its firewall rules that name CNI or varpod (VARPOD-MASQ-...)."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = sorted(line.split(": ")[1].split("@")[0] for line in links.splitlines() if ": " in line)
    rules = []
    for table in ("filter", "nat"):
        dump = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
        rules += [r for r in dump.splitlines() if "CNI" in r or "varpod" in r.lower()]
    return names, sorted(rules)


@pytest.fixture
def fresh_daemon(tmp_path):
    """A daemon of the test's own, for restarts and crashes."""
    d = Daemon(tmp_path / "d")
    yield d
    if d.proc is None:
        d.start()
    _cleanup(d)


def _cleanup_network(d: Daemon) -> None:
    """After _cleanup: what a daemon in a namespace may leave when a test failed or killed it."""
    pidfile = os.path.join(d.run_root, "aardvark-dns", "aardvark.pid")
    try:
        with open(pidfile) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    netns_dir = os.path.join(d.run_root, "netns")
    if os.path.isdir(netns_dir):
        subprocess.run(["umount", "-R", "-l", netns_dir], capture_output=True, check=False)


def _net_daemon(base: Path, *, start: bool):
    ns = NetNamespace(base / "netns")
    d = Daemon(base / "d", netns=ns)
    try:
        yield d.start() if start else d
    finally:
        try:
            if d.proc is None:
                d.start()
            _cleanup(d)
        finally:
            _cleanup_network(d)
            ns.destroy()


@pytest.fixture(scope="module")
def net_daemon(tmp_path_factory):
    """A daemon of the module's own inside a network namespace of its own (networks, ports)."""
    yield from _net_daemon(tmp_path_factory.mktemp("netd"), start=True)


@pytest.fixture
def fresh_net_daemon(tmp_path):
    """As fresh_daemon, inside a network namespace of the test's own (not yet started)."""
    yield from _net_daemon(tmp_path, start=False)


@pytest.fixture
def client(daemon):
    with daemon.client() as c:
        yield c
    daemon.remove_all()


@pytest.fixture
def varpod(daemon, client):
    """The `varpod` command line, run as a separate process like a user would."""
    env = {**os.environ, "VARPOD_SOCKET": daemon.socket}

    def run(*args, input: bytes | None = None, timeout: float = 60,
            env_extra: dict[str, str] | None = None, **popen: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "varpod.rpc.cli", *args],
                              env={**env, **(env_extra or {})}, input=input,
                              capture_output=True, timeout=timeout, check=False, **popen)

    return run


@pytest.fixture(params=[pytest.param({}, id="asyncio"),
                        pytest.param({"use_uvloop": True}, id="uvloop")])
def anyio_backend(request):
    return ("asyncio", request.param)
