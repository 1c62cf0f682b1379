"""registries.conf as podman reads it: aliases, search registries, modes, insecure, blocked, mirrors."""

from __future__ import annotations

import pytest

from varpod.core.errors import InvalidConfig, RegistryError, ShortNameUnresolved
from varpod.core.images.reference import parse
from varpod.core.images.registries_conf import RegistriesConf


@pytest.fixture
def conf(tmp_path, monkeypatch):
    path = tmp_path / "registries.conf"

    def load(text: str) -> RegistriesConf:
        path.write_text(text)
        monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(path))
        return RegistriesConf.load()

    return load


def test_an_alias_wins_and_keeps_the_tag(conf):
    c = conf('unqualified-search-registries = ["a.io", "b.io"]\n[aliases]\n"tool" = "quay.io/org/tool"\n')
    assert [str(r) for r in c.candidates(parse("tool:1.2"))] == ["quay.io/org/tool:1.2"]


def test_search_registries_in_order_with_docker_io_normalised(conf):
    c = conf('unqualified-search-registries = ["a.io", "docker.io"]\n')
    assert [str(r) for r in c.candidates(parse("busybox"))] == ["a.io/busybox:latest",
                                                                 "docker.io/library/busybox:latest"]


def test_no_search_registries_is_podmans_error(conf):
    c = conf("")
    with pytest.raises(ShortNameUnresolved, match="did not resolve to an alias and no unqualified-search"):
        c.candidates(parse("busybox"))


def test_enforcing_mode_with_several_registries_cannot_prompt(conf):
    c = conf('short-name-mode = "enforcing"\nunqualified-search-registries = ["a.io", "b.io"]\n')
    with pytest.raises(ShortNameUnresolved, match="cannot prompt"):
        c.candidates(parse("busybox"))
    one = conf('short-name-mode = "enforcing"\nunqualified-search-registries = ["a.io"]\n')
    assert [str(r) for r in one.candidates(parse("busybox"))] == ["a.io/busybox:latest"]


def test_insecure_blocked_and_location_rewrites(conf):
    c = conf('[[registry]]\nlocation = "local:5000"\ninsecure = true\n'
             '[[registry]]\nprefix = "bad.io"\nlocation = "bad.io"\nblocked = true\n'
             '[[registry]]\nprefix = "example.com/foo"\nlocation = "internal.net/bar"\n'
             '[[registry.mirror]]\nlocation = "mirror.local/m"\ninsecure = true\n')
    assert c.insecure("local:5000") and not c.insecure("other:5000")
    with pytest.raises(RegistryError, match="blocked"):
        c.endpoints(parse("bad.io/x:1"))
    eps = c.endpoints(parse("example.com/foo/img:latest"))
    assert [(str(e.ref), e.insecure) for e in eps] == [("mirror.local/m/img:latest", True),
                                                        ("internal.net/bar/img:latest", False)]
    assert [str(e.ref) for e in c.endpoints(parse("elsewhere.io/x:1"))] == ["elsewhere.io/x:1"]


def test_version_1_files(conf):
    c = conf('[registries.search]\nregistries = ["one.io"]\n[registries.insecure]\nregistries = ["one.io"]\n'
             '[registries.block]\nregistries = ["evil.io"]\n')
    assert [str(r) for r in c.candidates(parse("x"))] == ["one.io/x:latest"]
    assert c.insecure("one.io")
    with pytest.raises(RegistryError):
        c.endpoints(parse("evil.io/x:1"))


def test_a_broken_file_is_a_named_error(conf):
    with pytest.raises(InvalidConfig, match="cannot read"):
        conf("this is = = not toml")
