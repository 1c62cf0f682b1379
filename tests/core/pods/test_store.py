"""core/pods/store.py: pods persisted in their own table, found like containers are."""

from __future__ import annotations

import pytest

from varpod.core.errors import AmbiguousPodName, NoSuchPod, PodExists
from varpod.core.pods import PodConfig, PodRecord, PodState, PodStore, SharedNamespaces
from varpod.core.store import Store


def pod(pid: str, name: str, **kw) -> PodRecord:
    return PodRecord(PodConfig(id=pid, name=name, **kw), PodState())


def test_pods_survive_reopening_next_to_the_containers(tmp_path):
    path = str(tmp_path / "varpod.db")
    Store(path).close()  # the containers' store made the file
    store = PodStore(path)
    store.add(pod("a" * 64, "one", shares=SharedNamespaces(net=True, cgroupns=True), pod_cgroup=False,
                  labels={"k": "v"}))
    store.save(PodRecord(store.get("a" * 64).config, PodState(removing=True)))
    store.close()
    again = PodStore(path).find("one")
    assert again.config.shares == SharedNamespaces(net=True, cgroupns=True)
    assert not again.config.pod_cgroup and again.config.labels == {"k": "v"}
    assert again.state.removing
    assert Store(path).all() is not None  # the containers' tables are untouched


def test_find_by_id_name_and_unique_prefix():
    store = PodStore(":memory:")
    store.add(pod("ab" + "0" * 62, "x"))
    store.add(pod("ac" + "0" * 62, "y"))
    assert store.find("x").id == "ab" + "0" * 62
    assert store.find("ab").name == "x" and store.find("ac" + "0" * 62).name == "y"
    with pytest.raises(AmbiguousPodName):
        store.find("a")
    with pytest.raises(NoSuchPod):
        store.find("zz")
    with pytest.raises(PodExists):
        store.add(pod("b" * 64, "x"))
    store.delete("ab" + "0" * 62)
    with pytest.raises(NoSuchPod):
        store.find("x")
    assert [p.name for p in store.all()] == ["y"] and not store.has_name("x")
