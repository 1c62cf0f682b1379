"""Test images built offline, and registries on 127.0.0.1 to serve them.

* ``build_layout`` writes an OCI image layout from Debian's busybox-static: two
  layers (or more), with a whiteout, an opaque directory, hard links, a file
  with a ``security.capability`` xattr, devices, a fifo, odd owners and modes.
* ``Registry`` runs Debian's ``docker-registry`` (distribution 2.8) with its
  storage in a temporary directory, optionally behind htpasswd basic auth.
* ``Proxy`` stands in front of a registry: as a bearer-token auth server (401
  with a ``Bearer`` challenge, tokens for good credentials at its ``/token``
  realm), and to count, corrupt or slow down what the registry sends.

Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import mkrootfs

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
UMOCI = shutil.which("umoci") or "/usr/bin/umoci"
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"

# A capability set: cap_net_raw+ep in VFS_CAP_REVISION_2 form (what setcap writes).
CAP_NET_RAW = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")
APPLETS = ("sh", "true", "false", "cat", "echo", "ls", "id", "stat", "sleep", "env", "pwd", "test",
           "readlink", "touch", "mkdir", "rm", "head", "wc", "grep", "kill", "hostname", "sync")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- building layers --------------------------------------------------------------------------


class Layer:
    """A tar built in memory, entry by entry."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def _info(self, name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0,
              mtime: int = 1_600_000_000, **extra) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.mtime = mtime
        for k, v in extra.items():
            setattr(info, k, v)
        return info

    def dir(self, name: str, mode: int = 0o755, **kw) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))

    def file(self, name: str, data: bytes, mode: int = 0o644, xattrs: dict[str, bytes] | None = None,
             **kw) -> None:
        info = self._info(name, tarfile.REGTYPE, mode, size=len(data), **kw)
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, 0o777, linkname=target))

    def hardlink(self, name: str, target: str) -> None:
        self.tar.addfile(self._info(name, tarfile.LNKTYPE, 0o644, linkname=target))

    def device(self, name: str, kind: bytes, major: int, minor: int, mode: int = 0o666) -> None:
        self.tar.addfile(self._info(name, kind, mode, devmajor=major, devminor=minor))

    def fifo(self, name: str, mode: int = 0o600) -> None:
        self.tar.addfile(self._info(name, tarfile.FIFOTYPE, mode))

    def whiteout(self, name: str) -> None:
        head, _, base = name.rpartition("/")
        self.file(f"{head}/.wh.{base}" if head else f".wh.{base}", b"", 0o000)

    def opaque(self, directory: str) -> None:
        self.file(f"{directory}/.wh..wh..opq", b"", 0o000)

    def raw(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def base_layer() -> bytes:
    busybox = Path(mkrootfs.find_busybox()).read_bytes()
    t = Layer()
    for d in ("bin", "etc", "tmp", "root", "home", "home/app", "dev", "proc", "sys", "data", "opq",
              "keep", "work"):
        mode = {"tmp": 0o1777, "root": 0o700}.get(d, 0o755)
        owner = {"home/app": (1000, 1000)}.get(d, (0, 0))
        t.dir(d, mode, uid=owner[0], gid=owner[1])
    t.file("bin/busybox", busybox, 0o755)
    for applet in APPLETS:
        t.symlink(f"bin/{applet}", "busybox")
    t.file("etc/passwd", PASSWD.encode())
    t.file("etc/group", GROUP.encode())
    t.file("etc/motd", b"base\n")
    t.file("opq/a", b"a\n")
    t.file("opq/b", b"b\n")
    t.file("gone", b"to be whited out\n")
    t.file("keep/file", b"kept\n", 0o640, uid=1000, gid=1000, mtime=1_234_567_890)
    t.file("data/f1", b"linked\n", 0o600, uid=7, gid=8)
    t.hardlink("data/f2", "data/f1")
    t.file("bin/suid", b"#!/bin/sh\n", 0o4755)
    t.device("dev/null", tarfile.CHRTYPE, 1, 3)
    t.device("dev/loopx", tarfile.BLKTYPE, 7, 200, 0o660)
    t.fifo("data/pipe")
    t.symlink("abs", "/etc/motd")
    return t.raw()


def top_layer() -> bytes:
    t = Layer()
    t.whiteout("gone")
    t.dir("opq", 0o750)
    t.opaque("opq")
    t.file("opq/c", b"c\n")
    t.file("etc/motd", b"top\n")
    t.file("bin/capped", b"\x7fELF-not-really\n", 0o755, xattrs={"security.capability": CAP_NET_RAW})
    t.dir("data2")
    t.file("data2/h1", b"two names\n", 0o644, uid=1000, gid=1000)
    t.hardlink("data2/h2", "data2/h1")
    t.dir("work", 0o755)
    t.file("work/here", b"workdir\n")
    return t.raw()


def tar_of_dir(root: str) -> bytes:
    """A plain root filesystem tar of a directory (what `import` takes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.add(root, arcname=".")
    return buf.getvalue()


# -- OCI layouts -------------------------------------------------------------------------------


def _blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def compress(raw: bytes, how: str) -> tuple[bytes, str]:
    base = "application/vnd.oci.image.layer.v1.tar"
    if how == "gzip":
        return gzip.compress(raw, 6, mtime=0), base + "+gzip"
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw), base + "+zstd"
    return raw, base


def image_config(diff_ids: list[str], arch: str = "amd64", **run) -> dict:
    cfg = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGEVAR=from-image",
                "SHARED=image"],
        "Cmd": ["/bin/sh", "-c", "echo image-cmd"],
        "WorkingDir": "/work",
        "Labels": {"org.test.origin": "fixture", "shared": "image"},
        "StopSignal": "SIGUSR1",
        "ExposedPorts": {"8080/tcp": {}},
        "Volumes": {"/data": {}},
    }
    cfg.update(run)
    return {"created": "2024-01-02T03:04:05.123456789Z", "architecture": arch, "os": "linux",
            "config": cfg, "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "fixture layer"} for _ in diff_ids]}


def write_manifest(layout: Path, layers: list[tuple[bytes, str]], arch: str = "amd64",
                   **run) -> tuple[dict, str]:
    """Blobs of one image in ``layout``; returns (manifest descriptor, config digest)."""
    descs, diff_ids = [], []
    for raw, how in layers:
        data, media = compress(raw, how)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append({"mediaType": media, **_blob(layout, data)})
    config = json.dumps(image_config(diff_ids, arch, **run)).encode()
    cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cdesc, "layers": descs}).encode()
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(layout, manifest)}
    return mdesc, cdesc["digest"]


def build_layout(layout: Path, tag: str = "latest", layers: list[tuple[bytes, str]] | None = None,
                 **run) -> str:
    """An OCI layout holding one image under ``tag``; returns its config digest (the image ID)."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    if layers is None:
        layers = [(base_layer(), "gzip"), (top_layer(), "gzip")]
    mdesc, config = write_manifest(layout, layers, **run)
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    _add_to_index(layout, mdesc)
    return config


def build_index_layout(layout: Path, tag: str, platforms: dict[str, list[tuple[bytes, str]]]) -> dict:
    """An image index of one image per architecture; returns arch -> config digest."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries, configs = [], {}
    for arch, layers in platforms.items():
        mdesc, configs[arch] = write_manifest(layout, layers, arch=arch)
        mdesc["platform"] = {"architecture": arch, "os": "linux"}
        entries.append(mdesc)
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    idesc = {"mediaType": "application/vnd.oci.image.index.v1+json", **_blob(layout, index),
             "annotations": {"org.opencontainers.image.ref.name": tag}}
    _add_to_index(layout, idesc)
    return configs


def _add_to_index(layout: Path, desc: dict) -> None:
    path = layout / "index.json"
    index = json.loads(path.read_text()) if path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"].append(desc)
    path.write_text(json.dumps(index))


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    out = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {out.stderr}")
    return out


def push(layout: Path, tag: str, dest: str, *extra: str) -> None:
    skopeo("copy", "--quiet", "--dest-tls-verify=false", *extra, f"oci:{layout}:{tag}", f"docker://{dest}")


# -- registries -------------------------------------------------------------------------------


class Registry:
    """``docker-registry serve`` on 127.0.0.1; ``htpasswd`` turns on basic auth."""

    def __init__(self, base: Path, storage: Path, htpasswd: tuple[str, str] | None = None) -> None:
        self.base = base
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        base.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
                 "storage:", "  filesystem:", f"    rootdirectory: {storage}", "  delete:",
                 "    enabled: true", "http:", f"  addr: {self.host}"]
        if htpasswd:
            import bcrypt

            user, password = htpasswd
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (base / "htpasswd").write_text(f"{user}:{hashed}\n")
            lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {base / 'htpasswd'}"]
        (base / "config.yml").write_text("\n".join(lines) + "\n")
        self.log = open(base / "registry.log", "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(base / "config.yml")], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (base / "registry.log").read_text()
                    raise RuntimeError(f"docker-registry did not start: {log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Proxy:
    """A registry front on 127.0.0.1. With ``user``, a bearer-token server: 401 with a
    ``Bearer`` challenge, tokens from its ``/token`` realm for good credentials, requests
    forwarded only with one. It also counts requests (``hits``), can corrupt blobs
    (``corrupt``) and slow them down (``delay`` seconds per 64 KiB)."""

    def __init__(self, upstream: str, user: str | None = None, password: str | None = None) -> None:
        self.upstream = upstream
        self.user, self.password = user, password
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.hits: dict[str, int] = {}
        self.corrupt = False
        self.delay = 0.0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            def do_HEAD(self) -> None:
                proxy.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def blob_gets(self) -> int:
        return sum(n for path, n in self.hits.items() if "/blobs/" in path)

    def handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        if req.path.startswith("/token"):
            self._token(req)
            return
        auth = req.headers.get("Authorization", "")
        if self.user is not None and not (auth.startswith("Bearer ") and auth[7:] in self.tokens):
            parts = req.path.split("/")
            repo = "/".join(parts[2:-2]) if len(parts) > 4 else ""
            scope = f',scope="repository:{repo}:pull"' if repo else ""
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            req.send_response(401)
            req.send_header("WWW-Authenticate",
                            f'Bearer realm="http://{self.host}/token",service="test-registry"{scope}')
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
            return
        with self.lock:
            self.hits[req.path] = self.hits.get(req.path, 0) + 1
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        headers = {k: v for k, v in req.headers.items() if k.lower() not in ("authorization", "host")}
        conn.request(req.command, req.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        blob = "/blobs/" in req.path and resp.status == 200
        if blob and self.corrupt and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        req.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                req.send_header(k, v)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            try:
                for i in range(0, len(body), 65536):
                    req.wfile.write(body[i:i + 65536])
                    if blob and self.delay:
                        time.sleep(self.delay)
            except OSError:
                pass  # the client went away (a killed daemon)
        conn.close()

    def _token(self, req: http.server.BaseHTTPRequestHandler) -> None:
        self.token_requests += 1
        want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if req.headers.get("Authorization") != want:
            body = b'{"errors":[{"code":"DENIED","message":"invalid username or password"}]}'
            req.send_response(401)
        else:
            token = secrets.token_hex(16)
            self.tokens.add(token)
            body = json.dumps({"token": token, "expires_in": 300}).encode()
            req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_http(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    out = subprocess.run([UMOCI, "unpack", "--image", f"{layout}:{tag}", str(bundle)], capture_output=True,
                         text=True, timeout=120, check=False)
    if out.returncode:
        raise RuntimeError(f"umoci unpack failed: {out.stderr}")
    return bundle / "rootfs"


def os_walk_tree(root: str) -> dict[str, dict]:
    """Every path under ``root`` with what the comparison looks at (lstat, xattrs, content)."""
    import stat as st

    out: dict[str, dict] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            s = os.lstat(path)
            # A merged overlay directory's link count is 1 (overlayfs does not count subdirs).
            entry = {"mode": oct(s.st_mode), "uid": s.st_uid, "gid": s.st_gid,
                     "xattrs": {k: os.getxattr(path, k, follow_symlinks=False)
                                for k in sorted(os.listxattr(path, follow_symlinks=False))
                                if not k.startswith("trusted.overlay.")}}
            if not st.S_ISDIR(s.st_mode):
                entry["mtime"] = s.st_mtime_ns // 10**9
                entry["nlink"] = s.st_nlink
            if st.S_ISLNK(s.st_mode):
                entry["target"] = os.readlink(path)
            elif st.S_ISREG(s.st_mode):
                with open(path, "rb") as f:
                    entry["sha"] = hashlib.sha256(f.read()).hexdigest()
            elif st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode):
                entry["rdev"] = (os.major(s.st_rdev), os.minor(s.st_rdev))
            out[rel] = entry
    return out
