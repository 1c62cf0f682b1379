"""The signature policy: accepted, rejected, or refused as unverifiable, by the most specific scope."""

from __future__ import annotations

import json

import pytest

from varpod.core.errors import RegistryError, Unsupported
from varpod.core.images import policy
from varpod.core.images.reference import parse

ACCEPT = [{"type": "insecureAcceptAnything"}]


@pytest.fixture
def write(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / ".config" / "containers" / "policy.json"
    path.parent.mkdir(parents=True)

    def put(doc: dict) -> None:
        path.write_text(json.dumps(doc))

    return put


def test_the_most_specific_scope_decides(write):
    write({"default": [{"type": "reject"}], "transports": {"docker": {
        "reg.io/team": ACCEPT, "reg.io/team/locked": [{"type": "reject"}],
        "*.example.com": ACCEPT,
        "signed.io": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}]}}})
    policy.check(parse("reg.io/team/app:1"))
    policy.check(parse("a.b.example.com/x:1"))
    with pytest.raises(RegistryError, match="rejected by the signature policy"):
        policy.check(parse("reg.io/team/locked:1"))
    with pytest.raises(RegistryError):
        policy.check(parse("other.io/x:1"))  # the default
    with pytest.raises(Unsupported, match="signedBy"):
        policy.check(parse("signed.io/x:1"))


def test_archives_use_their_transports_scope(write):
    write({"default": ACCEPT, "transports": {"docker-archive": {"": [{"type": "reject"}]}}})
    policy.check(None, "oci-archive")
    with pytest.raises(RegistryError):
        policy.check(None, "docker-archive")
