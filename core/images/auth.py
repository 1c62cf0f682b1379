"""Registry credentials in the auth file podman and skopeo use (containers-auth.json(5)).

``{"auths": {"registry[/namespace...]": {"auth": base64("user:password")}}}``.
Where it is, first that exists: ``--authfile``, ``$REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json`` (``/run/containers/<uid>/auth.json``
for a session without one), then for reading only
``$XDG_CONFIG_HOME/containers/auth.json`` and docker's
``$HOME/.docker/config.json``. The most specific key wins
(``reg/ns/repo``, then ``reg/ns``, then ``reg``), as in containers/image.

Credentials are the client's, as with podman-remote: the CLI reads its own
auth file and hands the daemon what it holds; the daemon falls back to its
own file when a library caller sends none. Kept free of heavy imports: the
CLI imports this module.
"""

from __future__ import annotations

import base64
import json
import os

from ..errors import InvalidConfig


def default_path() -> str:
    """Where login writes: $REGISTRY_AUTH_FILE, else the runtime dir's auth.json."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/containers/{os.getuid()}"
    return os.path.join(runtime, "containers", "auth.json")


def read_paths(authfile: str | None = None) -> list[str]:
    """Every file credentials are read from, in order."""
    if authfile:
        return [authfile]
    paths = [default_path()]
    home = os.environ.get("HOME") or "/root"
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    paths.append(os.path.join(config, "containers", "auth.json"))
    paths.append(os.path.join(home, ".docker", "config.json"))
    return paths


def _normalise_key(key: str) -> str:
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    if key in ("index.docker.io/v1/", "index.docker.io/v1", "index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return key.rstrip("/")


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(4 << 20) or b"{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InvalidConfig(f"cannot read auth file {path}: {e}", field="authfile") from None
    if not isinstance(data, dict):
        raise InvalidConfig(f"auth file {path} is not a JSON object", field="authfile")
    return data


def all_credentials(authfile: str | None = None) -> dict[str, str]:
    """Every key's ``user:password`` from the auth files, the earlier file winning."""
    found: dict[str, str] = {}
    for path in read_paths(authfile):
        auths = _load(path).get("auths")
        if not isinstance(auths, dict):
            continue
        for key, entry in auths.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
                continue
            try:
                pair = base64.b64decode(entry["auth"]).decode()
            except (ValueError, UnicodeDecodeError):
                continue
            if ":" in pair:
                found.setdefault(_normalise_key(key), pair)
    return found


def lookup(auths: dict[str, str], repository: str) -> tuple[str, str] | None:
    """``(user, password)`` for ``registry/path`` from a key -> ``user:password`` map."""
    parts = repository.split("/")
    for n in range(len(parts), 0, -1):
        pair = auths.get("/".join(parts[:n]))
        if pair:
            user, _, password = pair.partition(":")
            return user, password
    return None


def parse_creds(text: str) -> tuple[str, str]:
    """``--creds user[:password]``."""
    user, _, password = text.partition(":")
    if not user:
        raise InvalidConfig("--creds needs user[:password]", field="creds")
    return user, password


def store(registry: str, user: str, password: str, authfile: str | None = None) -> str:
    """Save credentials for ``registry`` (login); returns the file written."""
    path = authfile or default_path()
    data = _load(path)
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise InvalidConfig(f"auth file {path}: 'auths' is not an object", field="authfile")
    auths[registry] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    _write(path, data)
    return path


def remove(registry: str | None, authfile: str | None = None) -> bool:
    """Forget ``registry`` (None: every registry); False if there was nothing to forget."""
    path = authfile or default_path()
    data = _load(path)
    auths = data.get("auths")
    if not isinstance(auths, dict) or not auths:
        return False
    if registry is None:
        data["auths"] = {}
    else:
        keys = [k for k in auths if _normalise_key(k) == registry]
        if not keys:
            return False
        for k in keys:
            del auths[k]
    _write(path, data)
    return True


def _write(path: str, data: dict) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, indent=1) + "\n")
    os.rename(tmp, path)
