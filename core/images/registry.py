"""A client of the OCI distribution API (one registry host at a time), over httpx.

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic``
sends the credentials on every request; ``Bearer`` fetches a token for the
repository's scope from the realm (with the credentials, if any) and caches
it until it expires. TLS is verified unless the registry is insecure (from
``--tls-verify=false`` or registries.conf), and only then does plain HTTP
get a chance: https is tried first without verification, then http, as
containers/image does. CA certificates in ``/etc/containers/certs.d/HOST/``
are trusted for that host.

Every error carries the registry's own message (``RegistryError``,
``Unauthorized``, ``RegistryUnreachable``). Manifests are read whole (4 MiB
at most); blobs are streamed into a writer chunk by chunk.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from ..errors import DigestMismatch, InvalidImage, RegistryError, RegistryUnreachable, Unauthorized
from .model import ACCEPT, MANIFEST_MAX, media_type_of

log = logging.getLogger("varpod.images.registry")
# Their debug logs carry every header (tokens included) and dwarf the daemon's own.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

CERTS_D = "/etc/containers/certs.d"
DOCKER_HUB_API = "registry-1.docker.io"
TIMEOUT = httpx.Timeout(connect=30.0, read=300.0, write=60.0, pool=60.0)
USER_AGENT = "varpod"


class Http:
    """The daemon's HTTP clients: connection pools shared by every pull."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}

    def client(self, host: str, verify: bool) -> httpx.AsyncClient:
        certs = os.path.join(CERTS_D, host)
        key = (host if os.path.isdir(certs) else "", verify)
        found = self._clients.get(key)
        if found is None:
            tls: ssl.SSLContext | bool = verify
            if verify and key[0]:
                tls = _host_context(certs)
            found = self._clients[key] = httpx.AsyncClient(
                verify=tls, timeout=TIMEOUT, follow_redirects=True, trust_env=True,
                headers={"User-Agent": USER_AGENT})
        return found

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()


def _host_context(certs: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    for ca in sorted(glob.glob(os.path.join(certs, "*.crt"))):
        ctx.load_verify_locations(ca)
    for cert in sorted(glob.glob(os.path.join(certs, "*.cert"))):
        key = cert[:-5] + ".key"
        if os.path.exists(key):
            ctx.load_cert_chain(cert, key)
    return ctx


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="...",scope="..."`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            value = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(value)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return scheme.lower(), params


class Registry:
    """One registry host: its scheme, credentials and tokens.

    ``credentials`` is ``(user, password)`` or None for anonymous access.
    """

    def __init__(self, http: Http, host: str, *, insecure: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.host = host
        self.api_host = DOCKER_HUB_API if host == "docker.io" else host
        self.insecure = insecure
        self.credentials = credentials
        self._http = http
        self._scheme = "https"
        self._scheme_known = not insecure
        self._basic = False
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, expiry)

    # -- requests ---------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return self._http.client(self.api_host, verify=not self.insecure)

    def _url(self, path: str) -> str:
        return f"{self._scheme}://{self.api_host}{path}"

    def _authorization(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token is not None and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        if self._basic and self.credentials:
            return "Basic " + _basic(*self.credentials)
        return None

    async def _send(self, method: str, path: str, scope: str, what: str,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        """Send with whatever auth is known; on a 401 answer the challenge once and retry."""
        for attempt in range(2):
            h = dict(headers or {})
            auth = self._authorization(scope)
            if auth:
                h["Authorization"] = auth
            resp = await self._raw_send(method, path, h, what)
            if resp.status_code != 401 or attempt:
                return resp
            challenge = resp.headers.get("www-authenticate", "")
            await resp.aread()
            await resp.aclose()
            if not await self._answer(challenge, scope, what, resp):
                return resp
        raise AssertionError("unreachable")

    async def _raw_send(self, method: str, path: str, headers: dict[str, str], what: str) -> httpx.Response:
        client = self._client()
        while True:
            try:
                req = client.build_request(method, self._url(path), headers=headers)
                resp = await client.send(req, stream=True)
            except httpx.HTTPError as e:
                if not self._scheme_known and self._scheme == "https":
                    # Insecure registries may speak plain HTTP (podman's --tls-verify=false).
                    log.debug("%s over https failed (%s); trying http", self.host, e)
                    self._scheme = "http"
                    continue
                hint = ""
                if self._scheme == "https" and not self.insecure and "SSL" in _reason(e):
                    hint = (" (a registry without TLS needs --tls-verify=false, or insecure = true for it "
                            "in registries.conf)")
                raise RegistryUnreachable(f"{what}: cannot reach {self.host} over {self._scheme}: "
                                          f"{_reason(e)}{hint}", registry=self.host, status=0,
                                          code="") from None
            self._scheme_known = True
            return resp

    async def _answer(self, challenge: str, scope: str, what: str, resp: httpx.Response) -> bool:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials or self._basic:
                raise self._unauthorized(what, resp)
            self._basic = True
            return True
        if scheme != "bearer" or "realm" not in params:
            raise self._unauthorized(what, resp)
        await self._fetch_token(params, params.get("scope") or scope, scope, what)
        return True

    async def _fetch_token(self, params: dict[str, str], want: str, key: str, what: str) -> None:
        query = {k: v for k, v in (("service", params.get("service", "")), ("scope", want)) if v}
        headers = {}
        if self.credentials:
            headers["Authorization"] = "Basic " + _basic(*self.credentials)
        client = self._http.client(httpx.URL(params["realm"]).host, verify=not self.insecure)
        try:
            resp = await client.get(params["realm"], params=query, headers=headers)
        except httpx.HTTPError as e:
            raise RegistryUnreachable(f"{what}: cannot reach the token service {params['realm']}: "
                                      f"{_reason(e)}", registry=self.host, status=0, code="") from None
        if resp.status_code in (401, 403):
            told = _message(resp) or resp.reason_phrase
            text = (f"the token service refused the credentials: {told}" if self.credentials else
                    f"authentication required (the token service refused anonymous access: {told}; "
                    "varpod login, or --creds)")
            raise Unauthorized(f"{what}: {text}", registry=self.host, status=resp.status_code,
                               code="UNAUTHORIZED")
        if resp.status_code != 200:
            raise RegistryError(f"{what}: token service answered {resp.status_code}: {_message(resp)}",
                                registry=self.host, status=resp.status_code, code="")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
            expires = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: the token service sent no token", registry=self.host,
                                status=resp.status_code, code="")
        # Refresh a little early: a token that expires mid-blob fails the pull.
        self._tokens[key] = (token, time.monotonic() + max(expires - 10, 5))

    def _unauthorized(self, what: str, resp: httpx.Response) -> Unauthorized:
        told = _message(resp) or "authentication required"
        hint = "" if self.credentials else " (no credentials for it: varpod login, or --creds)"
        return Unauthorized(f"{what}: {told}{hint}", registry=self.host, status=resp.status_code,
                            code="UNAUTHORIZED")

    async def _fail(self, resp: httpx.Response, what: str) -> RegistryError:
        await resp.aread()
        await resp.aclose()
        if resp.status_code in (401, 403):
            return self._unauthorized(what, resp)
        code, message = _error(resp)
        return RegistryError(f"{what}: {message or resp.reason_phrase or resp.status_code}",
                             registry=self.host, status=resp.status_code, code=code)

    # -- the API ------------------------------------------------------------------------

    async def check_login(self) -> None:
        """``GET /v2/`` with the credentials: raises ``Unauthorized`` if they are refused."""
        resp = await self._send("GET", "/v2/", "", f"logging in to {self.host}")
        if resp.status_code == 200:
            await resp.aclose()
            return
        raise await self._fail(resp, f"logging in to {self.host}")

    async def manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest by tag or digest; a digest is checked."""
        what = f"reading manifest {reference} in {self.host}/{repo}"
        resp = await self._send("GET", f"/v2/{repo}/manifests/{reference}", f"repository:{repo}:pull",
                                what, {"Accept": ", ".join(ACCEPT)})
        if resp.status_code != 200:
            raise await self._fail(resp, what)
        try:
            chunks, size = [], 0
            async for chunk in resp.aiter_raw():
                size += len(chunk)
                if size > MANIFEST_MAX:
                    raise InvalidImage(f"{what}: manifest over {MANIFEST_MAX} bytes", digest=reference)
                chunks.append(chunk)
        except httpx.HTTPError as e:
            raise RegistryUnreachable(f"{what}: {_reason(e)}", registry=self.host, status=0,
                                      code="") from None
        finally:
            await resp.aclose()
        data = b"".join(chunks)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"{what}: the registry sent a manifest with digest {digest}",
                                 expected=reference, actual=digest)
        claimed = resp.headers.get("docker-content-digest", "")
        if claimed.startswith("sha256:") and claimed != digest:
            raise DigestMismatch(f"{what}: the registry says {claimed} but sent {digest}",
                                 expected=claimed, actual=digest)
        return data, media_type_of(data, resp.headers.get("content-type", "")), digest

    async def blob(self, repo: str, digest: str, write: Callable[[bytes], Any],
                   progress: Callable[[int], Awaitable[None] | None] | None = None) -> None:
        """Stream a blob into ``write`` (the caller verifies what it wrote)."""
        what = f"fetching blob {digest} from {self.host}/{repo}"
        resp = await self._send("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", what)
        if resp.status_code != 200:
            raise await self._fail(resp, what)
        done = 0
        try:
            async for chunk in resp.aiter_raw():
                write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done)
        except httpx.HTTPError as e:
            raise RegistryUnreachable(f"{what}: {_reason(e)}", registry=self.host, status=0,
                                      code="") from None
        finally:
            await resp.aclose()


def _basic(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text[:500]


def _error(resp: httpx.Response) -> tuple[str, str]:
    """(code, message) from a distribution error body, as the registry wrote them."""
    try:
        errors = resp.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code", ""))
        message = str(first.get("message", "") or code.lower().replace("_", " "))
        if code and code.lower().replace("_", " ") != message:
            message = f"{code.lower().replace('_', ' ')}: {message}"
        return code, message[:1000]
    text = resp.text.strip() if resp.content else ""
    return "", text[:300]


def _message(resp: httpx.Response) -> str:
    return _error(resp)[1]
