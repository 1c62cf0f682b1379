"""Image references: the docker grammar, docker.io normalisation, short names, local names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from varpod.core.errors import InvalidReference, ShortNameUnresolved
from varpod.core.images.reference import id_prefix, local_name, parse, parse_qualified

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, expected", [
    ("docker.io/alpine", "docker.io/library/alpine"),
    ("docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"),
    ("index.docker.io/user/app", "docker.io/user/app"),
    ("localhost:5000/x@" + DIGEST, "localhost:5000/x@" + DIGEST),
    ("localhost/foo", "localhost/foo"),
    ("quay.io/a/b/c:v1.0-rc_1", "quay.io/a/b/c:v1.0-rc_1"),
    ("127.0.0.1:5000/test/bb:v1", "127.0.0.1:5000/test/bb:v1"),
    ("[::1]:5000/x", "[::1]:5000/x"),
    ("Registry.Example/x", "Registry.Example/x"),  # upper case: a domain, never a path
    ("alpine", "alpine"),
    ("library/alpine:edge", "library/alpine:edge"),
    ("a__b/c-d.e:t", "a__b/c-d.e:t"),
])
def test_valid_references_normalise_as_docker_does(text, expected):
    assert str(parse(text)) == expected


def test_short_names_have_no_domain_and_tagged_adds_latest():
    ref = parse("busybox")
    assert ref.short and ref.domain == "" and ref.path == "busybox"
    assert str(ref.tagged()) == "busybox:latest"
    assert str(parse("x@" + DIGEST).tagged()) == "x@" + DIGEST  # a digest needs no tag
    assert str(ref.with_domain("docker.io")) == "docker.io/library/busybox"
    assert str(parse_qualified("docker.io/busybox")) == "docker.io/library/busybox:latest"
    with pytest.raises(InvalidReference):
        parse_qualified("busybox")


@pytest.mark.parametrize("text", [
    "", "lower/UPPER", "a b", "a//b", "-leading", "x:", "x@sha256:abc", "x@md5:" + "0" * 31,
    "x:" + "t" * 129, "a/" + "b" * 300, "x\0y", "docker.io/Alpine", "a:b:c", "/abs",
])
def test_invalid_references_are_named_errors(text):
    with pytest.raises(InvalidReference) as e:
        parse(text)
    assert e.value.rpc_name == "io.varpod.Image.InvalidReference"


def test_local_names_land_in_localhost_and_refuse_digests():
    assert str(local_name("mine")) == "localhost/mine:latest"
    assert str(local_name("mine:2")) == "localhost/mine:2"
    assert str(local_name("quay.io/x/y")) == "quay.io/x/y:latest"
    assert str(local_name("docker.io/busybox")) == "docker.io/library/busybox:latest"
    with pytest.raises(InvalidReference):
        local_name("x@" + DIGEST)


def test_id_prefixes():
    assert id_prefix("abc123") == "abc123"
    assert id_prefix("sha256:" + "f" * 64) == "f" * 64
    assert id_prefix("ab") is None  # too short to be taken for an ID
    assert id_prefix("busybox") is None
    assert id_prefix("f" * 65) is None


def test_short_name_error_is_a_reference_error():
    assert issubclass(ShortNameUnresolved, InvalidReference)


@given(st.text(max_size=300))
def test_parse_never_fails_other_than_by_its_named_error(text):
    try:
        ref = parse(text)
    except InvalidReference:
        return
    # What parses, prints back as something that parses to the same.
    assert parse(str(ref)) == ref
