"""Registry authentication: htpasswd basic auth (docker-registry's own) and bearer tokens (a
token server in front of the registry), through the library and the CLI's login/logout."""

from __future__ import annotations

import json

import imagetools as it
import pytest

from varpod.core.errors import Unauthorized


@pytest.fixture(scope="module")
def basic_registry(image_env, tmp_path_factory):
    """The same storage served again, behind htpasswd basic auth."""
    reg = it.Registry(tmp_path_factory.mktemp("basic"), image_env.storage, htpasswd=("alice", "s3cret"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def token_proxy(image_env):
    proxy = it.Proxy(image_env.host, user="bob", password="t0ken-pass")
    yield proxy
    proxy.stop()


def test_basic_auth_with_credentials(image_env, iclient, basic_registry):
    image_env.write_conf(insecure=[basic_registry.host])
    ref = f"{basic_registry.host}/test/bb:v1"
    with pytest.raises(Unauthorized) as e:
        iclient.pull(ref)
    assert e.value.status == 401 and "login" in e.value.message
    with pytest.raises(Unauthorized):
        iclient.pull(ref, credentials="alice:wrong")
    assert iclient.pull(ref, credentials="alice:s3cret").id == image_env.image_id


def test_bearer_tokens_through_login_and_logout(image_env, iclient, ivarpod, token_proxy, tmp_path):
    image_env.write_conf(insecure=[token_proxy.host])
    ref = f"{token_proxy.host}/test/bb:v1"
    with pytest.raises(Unauthorized, match="authentication required"):
        iclient.pull(ref)
    wrong = ivarpod("login", "-u", "bob", "-p", "nope", token_proxy.host)
    assert wrong.returncode == 125 and b"invalid username or password" in wrong.stderr
    ok = ivarpod("login", "-u", "bob", "--password-stdin", token_proxy.host, input=b"t0ken-pass\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == b"Login Succeeded!\n"
    authfile = tmp_path / "auth.json"
    assert token_proxy.host in json.loads(authfile.read_text())["auths"]
    requests = token_proxy.token_requests
    pulled = ivarpod("pull", "--tls-verify=false", ref)  # the CLI sends what the user's auth file holds
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.decode().strip() == image_env.image_id
    assert token_proxy.token_requests > requests
    assert ivarpod("logout", token_proxy.host).returncode == 0
    assert json.loads(authfile.read_text())["auths"] == {}
    again = ivarpod("logout", token_proxy.host)
    assert again.returncode == 125 and b"not logged into" in again.stderr
    failed = ivarpod("pull", ref)
    assert failed.returncode == 125 and b"authentication required" in failed.stderr


def test_the_library_reads_an_auth_file_it_is_given(image_env, iclient, token_proxy, tmp_path):
    image_env.write_conf(insecure=[token_proxy.host])
    from varpod.rpc.api_images import store_login

    iclient.login(token_proxy.host, "bob", "t0ken-pass")
    path = store_login(token_proxy.host, "bob", "t0ken-pass", str(tmp_path / "mine.json"))
    ref = f"{token_proxy.host}/test/bb:v1"
    assert iclient.pull(ref, authfile=path).id == image_env.image_id
    with pytest.raises(Unauthorized):
        iclient.login(token_proxy.host, "bob", "wrong")
