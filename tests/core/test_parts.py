"""core/parts.py: the order parts run in, what they give back on failure, and Launch."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from varpod.core.errors import CNIFailed, RuntimeFailed
from varpod.core.gates import Gate
from varpod.core.model import ContainerConfig, ContainerRecord, ContainerState, CreateOptions
from varpod.core.parts import Launch, Part, Parts

pytestmark = pytest.mark.anyio


class Recording(Part):
    def __init__(self, name: str, calls: list, fail: str = "") -> None:
        self.name = name
        self.calls = calls
        self.fail = fail

    def _note(self, hook: str) -> None:
        self.calls.append((self.name, hook))
        if hook == self.fail:
            raise RuntimeError(f"{self.name} {hook} failed")

    async def create(self, opts, config):
        self._note("create")
        return ContainerConfig(**{**_fields(config), "labels": {**config.labels, self.name: "1"}})

    async def discard(self, config, *, volumes=False):
        self._note("discard")

    async def prepare(self, rec, launch):
        self._note("prepare")
        launch.mounts.append({"destination": f"/{self.name}"})

    async def exited(self, rec):
        self._note("exited")

    async def release(self, rec):
        self._note("release")


def _fields(config: ContainerConfig) -> dict:
    return {f: getattr(config, f) for f in config.__struct_fields__}


def _config() -> ContainerConfig:
    return ContainerConfig(id="a" * 64, name="c", rootfs="/r", command=["true"])


async def test_create_runs_every_part_in_order_and_each_sees_the_last_ones_config():
    calls: list = []
    parts = Parts([Recording("images", calls), Recording("net", calls)])
    config = await parts.create(CreateOptions(), _config())
    assert calls == [("images", "create"), ("net", "create")]
    assert config.labels == {"images": "1", "net": "1"}


async def test_a_failed_create_discards_what_the_earlier_parts_took_in_reverse():
    calls: list = []
    parts = Parts([Recording("a", calls), Recording("b", calls), Recording("c", calls, fail="create")])
    with pytest.raises(RuntimeError, match="c create failed"):
        await parts.create(CreateOptions(), _config())
    assert calls == [("a", "create"), ("b", "create"), ("c", "create"), ("b", "discard"),
                     ("a", "discard")]


async def test_a_failed_prepare_releases_the_earlier_parts():
    calls: list = []
    parts = Parts([Recording("a", calls), Recording("b", calls, fail="prepare")])
    rec = ContainerRecord(_config(), ContainerState())
    with pytest.raises(RuntimeError):
        await parts.prepare(rec, Launch("/bundle"))
    assert calls == [("a", "prepare"), ("b", "prepare"), ("a", "release")]


async def test_release_goes_on_past_a_part_that_fails():
    calls: list = []
    parts = Parts([Recording("a", calls), Recording("b", calls, fail="release")])
    await parts.release(ContainerRecord(_config(), ContainerState()))
    assert calls == [("b", "release"), ("a", "release")]


async def test_exited_runs_in_reverse_and_past_a_part_that_fails():
    calls: list[tuple[str, str]] = []
    parts = Parts([Recording("a", calls), Recording("b", calls, fail="exited")])
    await parts.exited(ContainerRecord(_config(), ContainerState()))
    assert calls == [("b", "exited"), ("a", "exited")]


def test_launch_adds_mounts_joins_namespaces_and_applies_edits_last():
    launch = Launch("/bundle")
    launch.mounts.append({"destination": "/data", "type": "bind", "source": "/v"})
    launch.namespaces.update(network="/run/netns/x", cgroup="/proc/1/ns/cgroup")
    launch.annotations["k"] = "v"
    launch.edits.append(lambda spec: spec.__setitem__("hostname", "edited"))
    spec = {"mounts": [{"destination": "/proc"}], "annotations": {},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}, "hostname": "h"}
    out = launch.apply(spec)
    assert [m["destination"] for m in out["mounts"]] == ["/proc", "/data"]
    assert out["linux"]["namespaces"] == [{"type": "pid"}, {"type": "network", "path": "/run/netns/x"},
                                          {"type": "cgroup", "path": "/proc/1/ns/cgroup"}]
    assert out["annotations"] == {"k": "v"} and out["hostname"] == "edited"


# -- gated work: what runs beside the runtime's create (core/gates.py) ----------------------------


def _gated_launch(tmp_path, work) -> tuple[Launch, dict]:
    launch = Launch(str(tmp_path))
    launch.gate(work)
    spec = launch.apply({"mounts": [], "annotations": {}, "linux": {"namespaces": []}})
    return launch, spec


async def _run_hooks(spec: dict, events: list) -> None:
    """What runc does with createRuntime hooks: run each with the state on stdin, and fail
    the create on a non-zero exit."""
    for h in spec["hooks"]["createRuntime"]:
        proc = await asyncio.create_subprocess_exec(*h["args"], executable=h["path"],
                                                    stdin=asyncio.subprocess.PIPE)
        await proc.communicate(b'{"ociVersion": "1.0.2", "status": "creating"}')
        events.append(("hook", proc.returncode))
        if proc.returncode:
            raise RuntimeFailed("OCI runtime create failed: error running hook #0: exit status 1",
                                runtime="runc")


async def test_the_runtimes_create_waits_for_gated_work_and_then_goes_on(tmp_path):
    events: list = []

    async def work():
        await asyncio.sleep(0.2)
        events.append(("work", "done"))

    launch, spec = _gated_launch(tmp_path, work)
    await launch.create(lambda: _run_hooks(spec, events))
    assert events == [("work", "done"), ("hook", 0)]


async def test_failed_gated_work_fails_the_create_with_its_own_error(tmp_path):
    events: list = []

    async def work():
        raise CNIFailed("CNI plugin host-local failed on ADD: requested IP address is in use",
                        plugin="host-local", code=0)

    launch, spec = _gated_launch(tmp_path, work)
    with pytest.raises(CNIFailed, match="requested IP") as raised:
        await launch.create(lambda: _run_hooks(spec, events))
    assert events == [("hook", 1)] and isinstance(raised.value.__cause__, RuntimeFailed)


async def test_a_create_that_fails_first_still_waits_for_the_gated_work(tmp_path):
    events: list = []

    async def work():
        await asyncio.sleep(0.1)
        events.append(("work", "done"))

    async def create():
        raise RuntimeFailed("OCI runtime create failed: no such rootfs", runtime="runc")

    launch, _ = _gated_launch(tmp_path, work)
    with pytest.raises(RuntimeFailed, match="no such rootfs"):
        await launch.create(create)
    assert events == [("work", "done")]


async def test_a_gate_fails_its_hook_when_the_daemons_end_closes_unopened(tmp_path):
    """The daemon died: the hook reads end-of-file, not "ok"."""
    gate = Gate()
    h = gate.hook()
    proc = await asyncio.create_subprocess_exec(*h["args"], executable=h["path"],
                                                stdin=asyncio.subprocess.DEVNULL)
    await asyncio.sleep(0.1)
    gate.close()
    assert await asyncio.wait_for(proc.wait(), 5) == 1


def test_a_gate_whose_daemon_is_gone_fails_at_once():
    h = Gate().hook()
    args = [a.replace(f"/proc/{os.getpid()}/", "/proc/0/") for a in h["args"]]
    assert subprocess.run(args, executable=h["path"], timeout=5).returncode != 0
