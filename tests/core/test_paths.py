"""Paths inside a container root: symlinks (absolute or ``..``) never lead out of it."""

from __future__ import annotations

import os
import socket
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpod.core.errors import InvalidConfig
from varpod.core.paths import check_id, read_in_root, resolve_in_root

INSIDE = b"root:x:0:0:inside the container:/root:/bin/sh\n"


def inside(root: str, host: str) -> bool:
    return host == root or host.startswith(root + os.sep)


@pytest.fixture
def root(tmp_path) -> str:
    """A container root whose symlinks all try to reach the host."""
    base = tmp_path / "rootfs"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_bytes(INSIDE)
    (base / "x" / "y").mkdir(parents=True)
    links = {
        "rel-escape": "../../etc/passwd",
        "abs-escape": "/etc/passwd",
        "x/y/deep-escape": "../../../../../../../../etc/passwd",
        "x/up": "../..",
        "slash": "/",
        "dotdot": "..",
        "etc-abs": "/etc",
        "hostname-link": "/etc/hostname",  # absent inside the root, present on the host
        "chain1": "chain2",
        "chain2": "x/../chain3",
        "chain3": "/etc/../etc/./passwd",
        "loop-a": "loop-b",
        "loop-b": "loop-a",
        "self": "self",
        "abs-loop": "/abs-loop",
        "dir-loop": "dir-loop/x",
    }
    for name, target in links.items():
        os.symlink(target, base / name)
    return os.path.realpath(base)


# -- resolve_in_root ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "rel-escape",
        "/rel-escape",
        "abs-escape",
        "x/y/deep-escape",
        "x/up/etc/passwd",
        "x/up/../../../etc/passwd",
        "slash/etc/passwd",
        "slash/../../etc/passwd",
        "dotdot/etc/passwd",
        "etc-abs/passwd",
        "chain1",
        "../../etc/passwd",
        "/../../../etc/passwd",
        "/etc/passwd",
        "./etc//passwd",
        "x/y/../../etc/passwd",
    ],
)
def test_escapes_stay_inside_the_root(root, path):
    host = resolve_in_root(root, path)
    assert host == os.path.join(root, "etc", "passwd")
    assert read_in_root(root, path) == INSIDE


@pytest.mark.parametrize("path", ["", "/", ".", "..", "../..", "x/..", "dotdot", "slash", "x/up"])
def test_paths_naming_the_root_resolve_to_it(root, path):
    assert resolve_in_root(root, path) == root


def test_missing_components_are_kept_lexically(root):
    assert resolve_in_root(root, "/new/dir/file") == os.path.join(root, "new", "dir", "file")
    assert resolve_in_root(root, "new/../etc/passwd") == os.path.join(root, "etc", "passwd")
    # a symlink into the host's tree that does not exist inside still lands inside
    assert resolve_in_root(root, "hostname-link") == os.path.join(root, "etc", "hostname")
    assert read_in_root(root, "hostname-link") is None


def test_root_given_through_a_symlink(root, tmp_path):
    alias = tmp_path / "alias"
    os.symlink(root, alias)
    assert resolve_in_root(str(alias), "rel-escape") == os.path.join(root, "etc", "passwd")


@pytest.mark.parametrize("path", ["loop-a", "loop-b", "self", "abs-loop", "x/loop", "dir-loop"])
def test_symlink_loops_are_invalid_config(root, path):
    if path == "x/loop":
        os.symlink("../x/loop", os.path.join(root, "x", "loop"))
    with pytest.raises(InvalidConfig) as info:
        resolve_in_root(root, path)
    assert info.value.field == "path"
    with pytest.raises(InvalidConfig):
        read_in_root(root, path)


def test_a_long_chain_that_is_not_a_loop_resolves(root):
    for i in range(10):
        os.symlink(f"/hop{i + 1}", os.path.join(root, f"hop{i}"))
    os.symlink("/etc/passwd", os.path.join(root, "hop10"))
    assert resolve_in_root(root, "hop0") == os.path.join(root, "etc", "passwd")


COMPONENTS = [
    "..", ".", "", "etc", "passwd", "x", "y", "up", "rel-escape", "abs-escape", "slash", "dotdot",
    "etc-abs", "chain1", "deep-escape", "loop-a", "nothing",
]


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory) -> str:
    """Built once: hypothesis runs many examples against the same tree."""
    base = tmp_path_factory.mktemp("hostile")
    (base / "etc").mkdir()
    (base / "etc" / "passwd").write_bytes(INSIDE)
    (base / "x" / "y").mkdir(parents=True)
    for name, target in {
        "rel-escape": "../../etc/passwd",
        "abs-escape": "/etc/passwd",
        "x/y/deep-escape": "../../../../../../../../etc/passwd",
        "x/up": "../..",
        "slash": "/",
        "dotdot": "..",
        "etc-abs": "/etc",
        "chain1": "x/../etc",
        "loop-a": "loop-a/..",
    }.items():
        os.symlink(target, base / name)
    return os.path.realpath(base)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(COMPONENTS), max_size=8), absolute=st.booleans())
def test_no_path_resolves_outside_the_root(hostile_root, parts, absolute):
    root = hostile_root
    path = ("/" if absolute else "") + "/".join(parts)
    try:
        host = resolve_in_root(root, path)
    except InvalidConfig:
        return  # a loop: refused, which is also safe
    assert inside(root, host), (path, host)
    # and the kernel agrees: what exists of it has no symlink left to follow
    existing = host
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    assert os.path.realpath(existing) == existing, (path, host)


# -- read_in_root ----------------------------------------------------------------------------------


def test_read_in_root_reads_a_regular_file(root):
    assert read_in_root(root, "/etc/passwd") == INSIDE
    assert read_in_root(root, "/etc/passwd", limit=4) == INSIDE[:4]


def test_read_in_root_absent_is_none(root):
    assert read_in_root(root, "/etc/shadow") is None
    assert read_in_root(root, "/no/such/dir/file") is None


def test_read_in_root_refuses_non_regular_files(root):
    os.mkfifo(os.path.join(root, "fifo"))
    os.mknod(os.path.join(root, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.symlink("/fifo", os.path.join(root, "fifo-link"))
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(root, "sock"))
        # a FIFO with no writer must not block the daemon; a device must not be read
        for path in ("fifo", "fifo-link", "null", "sock", "etc", "/", "x/y", "slash"):
            assert read_in_root(root, path) is None, path
    finally:
        sock.close()


def test_read_in_root_through_a_regular_file_is_none(root):
    assert read_in_root(root, "etc/passwd/x") is None


# -- check_id --------------------------------------------------------------------------------------


def test_check_id_accepts_64_lowercase_hex():
    cid = "0123456789abcdef" * 4
    assert check_id(cid) == cid


@pytest.mark.parametrize(
    "cid",
    [
        "",
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "a" * 64 + "\n",
        "\n" + "a" * 63,
        "a" * 63 + "\x00",
        "../" + "a" * 61,
        "a" * 32 + "/" + "a" * 31,
        "\u0661" * 64,  # non-ASCII digits
        " " + "a" * 63,
    ],
    ids=repr,
)
def test_check_id_rejects_everything_else(cid):
    with pytest.raises(InvalidConfig) as info:
        check_id(cid)
    assert info.value.field == "id"


# -- removal off the event loop ------------------------------------------------------------


@pytest.fixture
def rmtree_threads(monkeypatch) -> list[int]:
    """The threads ``shutil.rmtree`` runs on, one entry per call."""
    import shutil
    import threading

    threads: list[int] = []
    real = shutil.rmtree

    def recording(path, *args, **kwargs):
        threads.append(threading.get_ident())
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", recording)
    return threads


@pytest.mark.anyio
async def test_remove_trees_runs_off_the_event_loop(tmp_path, rmtree_threads) -> None:
    """A big log's unlink frees its page cache where it runs: never on the event loop."""
    import threading

    from varpod.core.paths import remove_trees

    dirs = [tmp_path / "bundle", tmp_path / "data"]
    for d in dirs:
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "log").write_bytes(b"x" * 4096)
    await remove_trees(*map(str, dirs), str(tmp_path / "never-was"))
    assert not any(d.exists() for d in dirs)
    assert len(rmtree_threads) == 3 and threading.get_ident() not in rmtree_threads


@pytest.mark.anyio
async def test_remove_trees_finishes_through_a_cancellation(tmp_path, monkeypatch) -> None:
    import asyncio
    import shutil
    import threading

    from varpod.core.paths import remove_trees

    d = tmp_path / "data"
    d.mkdir()
    started, release = threading.Event(), threading.Event()
    real = shutil.rmtree

    def slow(path, *args, **kwargs):
        started.set()
        release.wait(10)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", slow)
    task = asyncio.ensure_future(remove_trees(str(d)))
    while not started.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # the cancellation waits for the removal
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not d.exists()


def test_discard_tree_removes_a_small_tree_at_once_and_a_big_one_on_a_thread(tmp_path, rmtree_threads):
    import threading
    import time

    from varpod.core.paths import discard_tree

    small, big = tmp_path / "small", tmp_path / "big"
    for d, n in ((small, 100), (big, 5000)):
        d.mkdir()
        (d / "log").write_bytes(b"x" * n)
        (d / "log.1").write_bytes(b"x" * n)
    threads = rmtree_threads
    discard_tree(str(small), big=4096)
    assert not small.exists() and threads == [threading.get_ident()]
    discard_tree(str(big), big=4096)  # 10,000 bytes in its files
    deadline = time.monotonic() + 5
    while big.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not big.exists() and len(threads) == 2 and threads[1] != threading.get_ident()
    discard_tree(str(tmp_path / "never-was"), big=4096)  # nothing there: nothing to do
