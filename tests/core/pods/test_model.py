"""core/pods/model.py: sharing flags, the pod cgroup (a separate setting), derived status."""

from __future__ import annotations

import pytest

from varpod.core.errors import InvalidPodConfig, Unsupported
from varpod.core.pods.model import PodConfig, SharedNamespaces, derive_pod_status
from varpod.core.states import State as S


def test_share_defaults_to_podmans_and_none_shares_nothing():
    assert SharedNamespaces.parse(None).names() == ["ipc", "net", "uts"]
    assert SharedNamespaces.parse(["none"]) == SharedNamespaces()
    assert SharedNamespaces.parse([]) == SharedNamespaces()
    assert not SharedNamespaces.parse(["none"]).any()


@pytest.mark.parametrize("given, names", [
    (["net,uts"], ["net", "uts"]),
    (["net", "pid"], ["net", "pid"]),
    (["+pid"], ["ipc", "net", "pid", "uts"]),
    (["cgroup"], ["cgroup"]),
    (["cgroupns"], ["cgroup"]),
    ([" ipc , net "], ["ipc", "net"]),
])
def test_share_lists(given, names):
    assert SharedNamespaces.parse(given).names() == names


def test_the_cgroup_namespace_flag_is_not_the_pod_cgroup():
    # podman#6149: a pod with its own cgroup (the default) shares only what it says.
    pod = PodConfig(id="a" * 64, name="p", shares=SharedNamespaces.parse(["net"]))
    assert pod.pod_cgroup and not pod.shares.cgroupns and not pod.shares.shares("cgroup")
    assert pod.shares.names() == ["net"]
    shared = PodConfig(id="a" * 64, name="p", pod_cgroup=False,
                       shares=SharedNamespaces.parse(["cgroup"]))
    assert shared.shares.cgroupns and not shared.pod_cgroup and shared.cgroup_path == ""


@pytest.mark.parametrize("word, error", [("mnt", InvalidPodConfig), ("user", Unsupported),
                                         ("bogus", InvalidPodConfig), ("net,nope", InvalidPodConfig)])
def test_share_refusals(word, error):
    with pytest.raises(error):
        SharedNamespaces.parse([word])


def test_cgroup_paths():
    pod = PodConfig(id="b" * 64, name="p")
    assert pod.cgroup_path == "/varpod/" + "b" * 64
    assert pod.member_cgroup("c" * 64) == f"/varpod/{'b' * 64}/{'c' * 64}"
    flat = PodConfig(id="b" * 64, name="p", pod_cgroup=False, cgroup_parent="/mine")
    assert flat.cgroup_path == "" and flat.member_cgroup("c" * 64) == "/mine/" + "c" * 64


def test_an_infra_container_only_when_something_is_shared():
    assert not PodConfig(id="b" * 64, name="p").has_infra  # shares nothing
    assert PodConfig(id="b" * 64, name="p", shares=SharedNamespaces(net=True)).has_infra
    assert not PodConfig(id="b" * 64, name="p", shares=SharedNamespaces(net=True), infra=False).has_infra


@pytest.mark.parametrize("states, status", [
    ([], "Created"),
    ([S.CREATED, S.CONFIGURED], "Created"),
    ([S.RUNNING, S.RUNNING], "Running"),
    ([S.RUNNING, S.EXITED], "Degraded"),
    ([S.RUNNING, S.PAUSED], "Degraded"),
    ([S.PAUSED, S.PAUSED], "Paused"),
    ([S.EXITED, S.STOPPED], "Exited"),
    ([S.EXITED, S.CREATED], "Stopped"),
    ([S.STOPPING, S.RUNNING], "Running"),
    ([S.UNKNOWN, S.CREATED], "Error"),
])
def test_pod_status_is_derived_from_the_containers(states, status):
    assert derive_pod_status(states) == status
