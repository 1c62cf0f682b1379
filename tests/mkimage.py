"""Write a busybox image as an oci-archive, offline, from Debian's busybox-static (demo, benchmarks).

    python tests/mkimage.py OUT.tar [NAME]        # NAME defaults to localhost/busybox:latest

`varpod load -i OUT.tar` (or `podman load`, `skopeo copy oci-archive:OUT.tar ...`) takes it.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import imagetools
import mkrootfs

DEFAULT_NAME = "localhost/busybox:latest"


def build(out: str, name: str = DEFAULT_NAME) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = mkrootfs.build(str(Path(tmp) / "rootfs"))
        layout = Path(tmp) / "layout"
        imagetools.build_layout(
            layout, tag=name, layers=[(imagetools.tar_of_dir(rootfs), "gzip")],
            Cmd=["/bin/sh"], Env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            WorkingDir="/", Labels={"org.opencontainers.image.title": "busybox"}, StopSignal="SIGTERM",
            ExposedPorts={}, Volumes={})
        with tarfile.open(out, "w") as archive:
            archive.add(layout, arcname=".")
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    print(build(*sys.argv[1:]))
