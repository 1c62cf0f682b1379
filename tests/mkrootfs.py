"""Build a busybox root filesystem from Debian's busybox-static (tests, demo, benchmarks).

    python tests/mkrootfs.py DIR
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            return path
    raise SystemExit("busybox not found: apt-get install busybox-static")


def build(root: str) -> str:
    busybox = find_busybox()
    root = os.path.abspath(root)
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)  # non-root users in the container must traverse "/"
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "root", "var/log"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    target = os.path.join(root, "bin", "busybox")
    if not os.path.exists(target):
        shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        link = os.path.join(root, "bin", applet)
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "etc/hostname": "",
        "etc/hosts": "",
        "etc/resolv.conf": "",
    }
    for rel, text in files.items():
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text)
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(build(sys.argv[1]))
