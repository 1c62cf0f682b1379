"""The long fuzz run: the unit fuzzers with many more examples, then a live daemon
fed mutated and random frames on many connections for N seconds.

    python benchmarks/fuzz.py --examples 100000 --seconds 300

The daemon must answer every connection with a reply or a named error (or close
it after garbage), keep answering pings on a clean connection throughout, log
no traceback, and hold no more fds at the end than at the start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
from _common import REPO, build_rootfs, fd_count, log, start_daemon, tempdir

METHODS = [
    ("io.varpod.System.Ping", {"ping": "x"}),
    ("io.varpod.System.Info", {}),
    ("io.varpod.Container.List", {"all": True}),
    ("io.varpod.Container.Inspect", {"name": "nope"}),
    ("io.varpod.Container.Stop", {"name": "nope", "timeout": 1}),
    ("io.varpod.Container.Create", {"spec": {"rootfs": "/nope", "command": ["/bin/true"]}}),
    ("io.varpod.Container.Logs", {"name": "nope", "tail": 3}),
    ("io.varpod.Container.Wait", {"name": "nope"}),
    ("org.varlink.service.GetInterfaceDescription", {"interface": "io.varpod.Container"}),
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6 and b:
            del b[rng.randrange(len(b))]
        elif op < 0.8:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        else:
            b += os.urandom(rng.randint(1, 32))
    return bytes(b)


def frame_for(rng: random.Random) -> bytes:
    method, params = rng.choice(METHODS)
    call = {"method": method, "parameters": params}
    if rng.random() < 0.2:
        call["more"] = rng.random() < 0.5
        call["upgrade"] = rng.random() < 0.5
    if rng.random() < 0.3:  # varlink JSON framing
        body = msgspec.json.encode(call)
        body = mutate(rng, body) if rng.random() < 0.7 else body
        return body + b"\0"
    body = msgspec.msgpack.encode(call)
    if rng.random() < 0.7:
        body = mutate(rng, body)
    length = len(body) if rng.random() < 0.9 else rng.choice([0, 1, 2**31, 2**32 - 1, len(body) + 5])
    return struct.pack(">I", length & 0xFFFFFFFF) + body


def poke(path: str, data: bytes) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except OSError:
        pass  # closing on garbage, or refusing, is a defined answer
    finally:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=20000, help="hypothesis examples per unit property")
    ap.add_argument("--seconds", type=float, default=60.0, help="live-daemon fuzzing time")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    log(f"unit fuzzers with {a.examples} examples each")
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(REPO / "tests" / "rpc" / "test_fuzz_decoder.py"),
                          str(REPO / "tests" / "rpc" / "test_minipack.py"),
                          str(REPO / "tests" / "rpc" / "test_framing.py")],
                         env={**os.environ, "VARPOD_FUZZ_EXAMPLES": str(a.examples)}, cwd=REPO)
    if rc:
        return rc
    problems: list[str] = []
    rng = random.Random(a.seed)
    with contextlib.ExitStack() as stack:
        base = tempdir(stack, "varpod-fuzz-")
        build_rootfs(base / "rootfs")
        d = start_daemon(stack, base / "daemon", problems)
        fds0 = fd_count(d.pid)
        clean = d.client(timeout=10)
        sent = 0
        deadline = time.monotonic() + a.seconds
        log(f"live daemon fuzzing for {a.seconds:.0f} s")
        while time.monotonic() < deadline:
            poke(d.socket, b"".join(frame_for(rng) for _ in range(rng.randint(1, 4))))
            sent += 1
            if sent % 50 == 0 and clean.ping("alive") != "alive":
                problems.append("the daemon stopped answering pings")
                break
        if clean.list(all=True):
            problems.append("garbage created containers")
        clean.close()
        time.sleep(0.5)
        fds1 = fd_count(d.pid)
        if fds1 > fds0 + 2:
            problems.append(f"fds grew from {fds0} to {fds1}")
        tracebacks = d.log().count("Traceback")
        if tracebacks:
            problems.append(f"{tracebacks} tracebacks in the daemon log")
        log(f"{sent} connections fuzzed; fds {fds0} -> {fds1}")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
