"""The auth file of containers-auth.json(5): where it is, what wins, login and logout."""

from __future__ import annotations

import base64
import json
import stat

import pytest

from varpod.core.errors import InvalidConfig
from varpod.core.images import auth


def _entry(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_store_and_remove_round_trip(tmp_path):
    path = str(tmp_path / "sub" / "auth.json")
    assert auth.store("reg.io:5000", "u", "p:w", path) == path
    assert stat.S_IMODE((tmp_path / "sub" / "auth.json").stat().st_mode) == 0o600
    assert auth.all_credentials(path) == {"reg.io:5000": "u:p:w"}
    assert auth.lookup(auth.all_credentials(path), "reg.io:5000/ns/repo") == ("u", "p:w")
    assert not auth.remove("other.io", path)
    assert auth.remove("reg.io:5000", path)
    assert auth.all_credentials(path) == {}


def test_most_specific_key_wins_and_docker_keys_are_normalised(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"auths": {
        "reg.io": _entry("a", "1"), "reg.io/team": _entry("b", "2"),
        "https://index.docker.io/v1/": _entry("d", "3")}}))
    creds = auth.all_credentials(str(path))
    assert auth.lookup(creds, "reg.io/team/app") == ("b", "2")
    assert auth.lookup(creds, "reg.io/other/app") == ("a", "1")
    assert auth.lookup(creds, "docker.io/library/alpine") == ("d", "3")
    assert auth.lookup(creds, "none.io/x") is None


def test_default_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "x.json"))
    assert auth.default_path() == str(tmp_path / "x.json")
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert auth.default_path() == "/run/user/1000/containers/auth.json"
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert auth.read_paths()[1:] == ["/home/u/.config/containers/auth.json", "/home/u/.docker/config.json"]


def test_a_corrupt_file_is_a_named_error(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text("{not json")
    with pytest.raises(InvalidConfig, match="cannot read auth file"):
        auth.all_credentials(str(path))


def test_creds_flag():
    assert auth.parse_creds("u:p") == ("u", "p")
    assert auth.parse_creds("u") == ("u", "")
    with pytest.raises(InvalidConfig):
        auth.parse_creds(":p")
