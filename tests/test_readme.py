"""Every example in README.md runs as written, against a daemon in a network namespace of the
module's own (the examples publish ports and make bridge networks).

Shell blocks run line by line in bash (with the functions the README defined up to
there, as a reader's shell session keeps them), in a
directory where ``./rootfs`` is the test rootfs, ``busybox-image.tar`` the demo's image and
``.venv`` this interpreter's venv;
``VARPOD_SOCKET`` points the CLI at the test daemon, as the README says it may. A line
must exit 0, or with N when its comment says "exits N", and print X when it says
"prints X". Interactive lines (``-it``, ``attach``) run on a pty: a shell gets ``exit``,
anything else the detach keys. ``make`` lines are checked with ``make -n`` (running the
suite from inside itself is not a test). Python blocks run as scripts, TOML blocks are
read as the daemon's configuration.

A block after ``<!-- not run by tests/test_readme.py: needs images -->`` waits for image
support; no other reason is accepted.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP_MARK = "<!-- not run by tests/test_readme.py: "
ALLOWED_SKIPS = {"needs images"}


def blocks() -> list[tuple[int, str, str]]:
    """(line number, language, text) of each fenced block not marked to wait for images."""
    out, lang, start, body, skip = [], None, 0, [], None
    lines = README.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if lang is None and line.startswith(SKIP_MARK):
            skip = line[len(SKIP_MARK):].rstrip(" ->")
            assert skip in ALLOWED_SKIPS, f"README line {n}: examples may only wait for images"
        elif lang is None and line.startswith("```"):
            lang, start, body = line[3:].strip(), n, []
        elif lang is not None and line.startswith("```"):
            if skip is None:
                out.append((start, lang, "\n".join(body)))
            lang, skip = None, None
        elif lang is not None:
            body.append(line)
    return out


BLOCKS = blocks()


@pytest.fixture(scope="session")
def demo_image(tmp_path_factory) -> str:
    """The image `make demo` loads (busybox-image.tar), built the same way."""
    import mkimage

    return mkimage.build(str(tmp_path_factory.mktemp("image") / "busybox-image.tar"))


@pytest.fixture
def readme_daemon(net_daemon):
    """The module's daemon, in a network namespace of its own: the examples make bridges,
    publish ports and add firewall rules, which must never reach the host's. Each example
    starts from a clean daemon, and leaves it so."""
    yield net_daemon
    net_daemon.remove_all()
    with net_daemon.client() as c:
        c.network_prune()
        for image in c.images():
            c.image_remove(image.Id, force=True)


@pytest.fixture
def workdir(tmp_path, rootfs, demo_image, readme_daemon):
    os.symlink(rootfs, tmp_path / "rootfs")
    os.symlink(sys.prefix, tmp_path / ".venv")
    os.symlink(demo_image, tmp_path / "busybox-image.tar")
    return tmp_path


def _comment(line: str) -> str:
    """The trailing comment of a shell line (a # after two spaces, outside quotes enough here)."""
    _, sep, comment = line.partition("  #")
    return comment.strip() if sep else ""


def _shell_lines(text: str) -> tuple[list[str], list[str]]:
    defs, cmds = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        (defs if stripped.split("(")[0].isidentifier() and "() {" in stripped else cmds).append(line)
    return defs, cmds


def _defs_up_to(line: int) -> list[str]:
    """Shell functions the README has defined by this block: a reader's session keeps them."""
    return [d for start, lang, text in BLOCKS if lang == "sh" and start <= line
            for d in _shell_lines(text)[0]]


def _run_line(line: str, defs: list[str], cwd: Path, env: dict[str, str]) -> None:
    comment = _comment(line)
    if line.startswith("make "):
        target = line.split()[1]
        r = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, timeout=120)
        assert r.returncode == 0, f"make -n {target}: {r.stderr.decode()}"
        return
    script = "\n".join([*defs, line])
    if " -it " in line or line.startswith("varpod attach"):
        _run_on_a_pty(script, cwd, env, shell=line.split("#")[0].rstrip().endswith("/bin/sh"))
        return
    r = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    want = 0
    if comment.startswith("exits "):
        want = int(comment.split()[1])
    assert r.returncode == want, f"{line!r} exited {r.returncode}: {r.stderr.decode()}"
    if comment.startswith("prints "):
        assert r.stdout.decode() == comment.split()[1] + "\n", line


def _run_on_a_pty(script: str, cwd: Path, env: dict[str, str], shell: bool) -> None:
    master, slave = os.openpty()
    proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while not seen.strip() and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 65536)
        assert seen.strip(), "no output on the terminal"
        time.sleep(0.5)  # let a shell's line editor settle (see tests/test_tty.py)
        os.write(master, b"exit\r" if shell else b"\x10\x11")
        assert proc.wait(timeout=30) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize(("line", "lang", "text"), BLOCKS, ids=[f"line{b[0]}-{b[1]}" for b in BLOCKS])
def test_readme_example(line, lang, text, workdir, readme_daemon):
    env = {**os.environ, "VARPOD_SOCKET": readme_daemon.socket}
    if lang == "sh":
        _, cmds = _shell_lines(text)
        defs = _defs_up_to(line)
        for cmd in cmds:
            _run_line(cmd, defs, workdir, env)
    elif lang == "python":
        r = subprocess.run([sys.executable, "-c", text], cwd=workdir, env=env, capture_output=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr.decode()
    elif lang == "toml":
        from varpod.rpc.daemon import load_config

        path = workdir / "varpod.toml"
        path.write_text(text)
        load_config(str(path))
    else:
        assert lang == "", f"README line {line}: a {lang!r} block the test does not know how to run"


def test_every_block_is_run():
    langs = {lang for _, lang, _ in BLOCKS}
    assert langs <= {"sh", "python", "toml", ""} and "sh" in langs and "python" in langs
