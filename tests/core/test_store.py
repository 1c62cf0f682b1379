"""The SQLite store: records, lookups, exec rows and the events ring, in memory and on disk."""

from __future__ import annotations

import sqlite3

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpod.core.errors import AmbiguousName, NameInUse, NoSuchContainer
from varpod.core.model import (
    ContainerConfig,
    ContainerRecord,
    ContainerState,
    Resources,
    RestartPolicy,
    new_id,
)
from varpod.core.states import State
from varpod.core.store import BIG_VALUE, Store


def make(name: str, cid: str | None = None, **config: object) -> ContainerRecord:
    cfg = ContainerConfig(id=cid or new_id(), name=name, rootfs="/rootfs", command=["/bin/true"], **config)
    return ContainerRecord(cfg, ContainerState())


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    s = Store(":memory:" if request.param == "memory" else str(tmp_path / "varpod.db"))
    yield s
    s.close()


# -- add / get / save -----------------------------------------------------------------------


def test_add_then_get_and_find(store):
    rec = make("web-1")
    store.add(rec)
    assert store.get(rec.id) == rec
    assert store.find(rec.id) == rec
    assert store.find("web-1") == rec
    assert len(store) == 1
    assert list(store.all()) == [rec]


def test_save_replaces_the_state(store):
    rec = make("web-1")
    store.add(rec)
    running = rec.with_state(state=State.RUNNING, pid=1234)
    assert store.save(running) is running
    assert store.get(rec.id).state.state is State.RUNNING
    assert store.find("web-1").state.pid == 1234


def test_save_record_replaces_config_and_state(store):
    rec = make("web-1")
    store.add(rec)
    config = msgspec.structs.replace(rec.config, resources=Resources(memory=64 << 20))
    new = ContainerRecord(config, rec.state).with_state(state=State.EXITED)
    assert store.save_record(new) is new
    assert store.get(rec.id) == new
    with pytest.raises(NoSuchContainer):
        store.save_record(make("ghost"))


def test_save_never_brings_back_an_older_config(store):
    # A record loaded before an update, saved afterwards, changes the state only.
    rec = make("web-1")
    store.add(rec)
    updated = ContainerRecord(msgspec.structs.replace(rec.config, resources=Resources(pids_limit=5)),
                              rec.state)
    store.save_record(updated)
    saved = store.save(rec.with_state(state=State.RUNNING, pid=7))
    assert saved.config == updated.config and saved.state.pid == 7
    assert store.get(rec.id) == saved


def test_save_record_cannot_rename(store):
    rec = make("web-1")
    store.add(rec)
    with pytest.raises(ValueError):
        store.save_record(ContainerRecord(msgspec.structs.replace(rec.config, name="web-2"),
                                          rec.state))


def test_save_of_unknown_container_is_no_such_container(store):
    with pytest.raises(NoSuchContainer):
        store.save(make("ghost"))
    assert len(store) == 0


def test_get_is_by_full_id_only(store):
    rec = make("web-1")
    store.add(rec)
    for ref in ("web-1", rec.id[:12], rec.id.upper(), ""):
        with pytest.raises(NoSuchContainer):
            store.get(ref)


def test_duplicate_name_is_name_in_use(store):
    first = make("web-1")
    store.add(first)
    with pytest.raises(NameInUse) as info:
        store.add(make("web-1"))
    assert info.value.name == "web-1"
    assert len(store) == 1
    assert store.find("web-1") == first


def test_all_is_a_snapshot(store):
    for i in range(3):
        store.add(make(f"c{i}"))
    it = store.all()
    store.add(make("late"))
    assert {r.name for r in it} == {"c0", "c1", "c2"}


# -- find -----------------------------------------------------------------------------------


def test_find_by_unique_prefix_and_ambiguous_prefix(store):
    a = make("alpha", "ab" + "0" * 62)
    b = make("beta", "ab" + "1" * 62)
    c = make("gamma", "cd" + "2" * 62)
    for rec in (a, b, c):
        store.add(rec)
    assert store.find("ab0") == a
    assert store.find("ab1") == b
    assert store.find("c") == c
    assert store.find(a.id[:63]) == a
    for ref in ("a", "ab"):
        with pytest.raises(AmbiguousName) as info:
            store.find(ref)
        assert info.value.name == ref


def test_find_prefers_full_id_then_exact_name_over_prefix(store):
    target = make("target", "ab" + "0" * 62)
    # a container named like another container's ID prefix: the exact name wins
    named_ab = make("ab", "ef" + "3" * 62)
    # a container whose *name* is another container's full ID: the full ID wins
    impostor = make(target.id, "12" + "4" * 62)
    for rec in (target, named_ab, impostor):
        store.add(rec)
    assert store.find("ab") == named_ab
    assert store.find(target.id) == target
    assert store.find("12") == impostor


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "nope",
        "AB",  # IDs are lowercase; an uppercase prefix is not one
        "%",
        "_",
        "ab%",
        "*",
        "' OR '1'='1",
        "web-1'; DROP TABLE containers; --",
        "../../etc/passwd",
        "\x00",
        "ab\x00",
        "a" * 10_000,
        "f" * 65,
        "\u0661\u0662",
    ],
    ids=repr,
)
def test_find_hostile_refs_are_no_such_container(store, ref):
    store.add(make("web-1", "ab" + "0" * 62))
    store.add(make("web-2", "ab" + "1" * 62))
    with pytest.raises(NoSuchContainer) as info:
        store.find(ref)
    assert len(info.value.name) <= 253
    assert len(info.value.message) < 300
    # and nothing was harmed
    assert len(store) == 2
    assert store.find("web-1").id == "ab" + "0" * 62


def test_find_on_empty_store(store):
    with pytest.raises(NoSuchContainer):
        store.find("a")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text("0123", min_size=3, max_size=3), min_size=1, max_size=8, unique=True),
       st.text("0123", min_size=1, max_size=3))
def test_prefix_resolution_property(prefixes, ref):
    s = Store(":memory:")
    try:
        ids = [p + "f" * 61 for p in prefixes]
        for i, cid in enumerate(ids):
            s.add(make(f"n{i}", cid))
        matches = [cid for cid in ids if cid.startswith(ref)]
        if len(matches) == 1:
            assert s.find(ref).id == matches[0]
        elif matches:
            with pytest.raises(AmbiguousName):
                s.find(ref)
        else:
            with pytest.raises(NoSuchContainer):
                s.find(ref)
    finally:
        s.close()


# -- delete --------------------------------------------------------------------------------


def test_delete_forgets_id_and_name_and_frees_the_name(store):
    rec = make("web-1")
    other = make("web-2")
    store.add(rec)
    store.add(other)
    store.delete(rec.id)
    for ref in (rec.id, "web-1", rec.id[:20]):
        with pytest.raises(NoSuchContainer):
            store.find(ref)
    with pytest.raises(NoSuchContainer):
        store.get(rec.id)
    assert len(store) == 1
    assert store.find("web-2") == other
    again = make("web-1")
    store.add(again)
    assert store.find("web-1") == again


def test_delete_of_unknown_id_is_a_no_op(store):
    rec = make("web-1")
    store.add(rec)
    store.delete(new_id())
    assert store.find("web-1") == rec


def test_exec_rows_are_deleted_with_their_container(store):
    a = make("a")
    b = make("b")
    store.add(a)
    store.add(b)
    store.save_exec("s1", a.id, b"one")
    store.save_exec("s2", a.id, b"two")
    store.save_exec("s3", b.id, b"three")
    store.save_exec("s1", a.id, b"one again")  # replaces
    assert sorted(store.load_execs()) == [
        ("s1", a.id, b"one again"),
        ("s2", a.id, b"two"),
        ("s3", b.id, b"three"),
    ]
    store.delete_exec("s2")
    store.delete(a.id)
    assert store.load_execs() == [("s3", b.id, b"three")]


# -- events ring -------------------------------------------------------------------------------


def test_events_are_numbered_and_read_after_a_sequence(store):
    assert store.last_event_seq() == 0
    assert store.events_after(0) == []
    seqs = [store.append_event(f"e{i}".encode()) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert store.last_event_seq() == seqs[-1]
    assert store.events_after(0) == [(s, f"e{i}".encode()) for i, s in enumerate(seqs)]
    assert store.events_after(seqs[2]) == [(seqs[3], b"e3"), (seqs[4], b"e4")]
    assert store.events_after(seqs[-1]) == []
    assert store.events_after(0, limit=2) == [(seqs[0], b"e0"), (seqs[1], b"e1")]


@pytest.mark.parametrize("kept", [1, 10, 300])
def test_trimming_keeps_the_newest_events(kept):
    store = Store(":memory:", events_kept=kept)
    seqs = [store.append_event(str(i).encode()) for i in range(1000)]
    rows = store.events_after(0, limit=100_000)
    # never loses the newest `kept`, and a trim has happened: far fewer than 1000 remain
    assert rows[-kept:] == [(s, str(i).encode()) for i, s in list(enumerate(seqs))[-kept:]]
    assert len(rows) < 1000
    # after a trim point (every 500 appends here) exactly the newest `kept` remain
    assert [s for s, _ in rows] == seqs[-kept:]
    assert store.last_event_seq() == seqs[-1]
    # sequence numbers keep growing; they are never reused
    assert store.append_event(b"next") == seqs[-1] + 1


def test_trimming_never_drops_newer_events_between_trims():
    store = Store(":memory:", events_kept=10)
    seqs = [store.append_event(str(i).encode()) for i in range(750)]
    rows = store.events_after(0, limit=100_000)
    got = [s for s, _ in rows]
    assert got[-10:] == seqs[-10:]
    # contiguous: a reader resuming from any kept sequence sees no gap
    assert got == list(range(got[0], seqs[-1] + 1))
    assert len(got) < 750


# -- on disk -----------------------------------------------------------------------------------


def test_file_store_persists_across_reopen(tmp_path):
    path = str(tmp_path / "varpod.db")
    s = Store(path)
    a = make("web-1", restart=RestartPolicy(name="on-failure", max_retries=3), labels={"k": "v"})
    b = make("web-2")
    s.add(a)
    s.add(b)
    a_exited = a.with_state(state=State.EXITED, exit_code=7, finished_at=123)
    s.save(a_exited)
    a_exited = s.save_record(ContainerRecord(
        msgspec.structs.replace(a.config, resources=Resources(memory=96 << 20, nano_cpus=10**9)),
        a_exited.state))
    s.save_exec("sess", b.id, b"rec")
    seq = s.append_event(b"hello")
    s.delete(b.id)
    s.close()

    s2 = Store(path)
    try:
        assert len(s2) == 1
        got = s2.find("web-1")
        assert got == a_exited
        assert got.config.restart == RestartPolicy(name="on-failure", max_retries=3)
        assert got.config.resources == Resources(memory=96 << 20, nano_cpus=10**9)
        assert got.state.state is State.EXITED
        with pytest.raises(NoSuchContainer):
            s2.find("web-2")
        assert s2.load_execs() == []
        assert s2.events_after(0) == [(seq, b"hello")]
        assert s2.append_event(b"later") > seq
        with pytest.raises(NameInUse):
            s2.add(make("web-1"))
    finally:
        s2.close()


def test_a_large_config_is_written_whole_and_read_back(tmp_path):
    # Over BIG_VALUE it is written through a blob handle (the statement cache would keep a
    # bound copy of it for good): the row must still hold every byte, also after a reopen,
    # and a config that shrinks back under the limit is bound as usual again.
    path = str(tmp_path / "varpod.db")
    s = Store(path)
    big = make("big", env=["BIG=" + "x" * (2 * BIG_VALUE), "AFTER=1"])
    s.add(big)
    bigger = ContainerRecord(msgspec.structs.replace(big.config, env=["BIG=" + "y" * (3 * BIG_VALUE)]),
                             big.state).with_state(state=State.EXITED)
    s.save_record(bigger)
    s.add(make("small"))
    s.close()
    s2 = Store(path)
    try:
        assert s2.find("big") == bigger
        small = msgspec.structs.replace(bigger.config, env=["SMALL=1"])
        s2.save_record(ContainerRecord(small, bigger.state))
    finally:
        s2.close()
    s3 = Store(path)
    try:
        assert s3.find("big").config.env == ["SMALL=1"]
        assert s3.find("small").config.env == []
    finally:
        s3.close()


def test_a_large_config_that_fails_leaves_nothing(store):
    store.add(make("taken"))
    with pytest.raises(sqlite3.IntegrityError):  # the cache is bypassed: the row itself refuses
        store._write_big(b"x" * (2 * BIG_VALUE), "INSERT INTO containers (id, name, config, state) "
                         "VALUES (?, ?, zeroblob(?), ?)", (new_id(), "taken", 2 * BIG_VALUE, b"{}"), "none")
    assert [r.name for r in store.all()] == ["taken"]
    store.add(make("next"))  # no transaction was left open
    assert len(store) == 2


def test_file_store_uses_wal(tmp_path):
    path = str(tmp_path / "varpod.db")
    s = Store(path)
    s.add(make("web-1"))
    try:
        other = sqlite3.connect(path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
            # a second connection sees committed rows: every write is its own transaction
            assert other.execute("SELECT name FROM containers").fetchall() == [("web-1",)]
        finally:
            other.close()
        assert (tmp_path / "varpod.db-wal").exists()
    finally:
        s.close()


def test_name_in_use_writes_nothing_to_disk(tmp_path):
    path = str(tmp_path / "varpod.db")
    s = Store(path)
    s.add(make("web-1"))
    with pytest.raises(NameInUse):
        s.add(make("web-1"))
    s.close()
    s2 = Store(path)
    try:
        assert len(s2) == 1
    finally:
        s2.close()
