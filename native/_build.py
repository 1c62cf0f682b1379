"""cffi (API mode) build of varpod.native._streamio; run by setup.py's cffi_modules."""

import os
from pathlib import Path

from cffi import FFI

# setuptools wants paths relative to setup.py, which is where builds run from.
SRC = Path(os.path.relpath(Path(__file__).resolve().parent / "src"))

ffi = FFI()
ffi.cdef(
    """
    long long vp_pump(int src, int log_fd, int stream, long long budget,
                      char *buf, size_t bufsize, int *eof);
    """
)
ffi.set_source(
    "varpod.native._streamio",
    '#include "streamio.h"',
    sources=[str(SRC / "streamio.c")],
    include_dirs=[str(SRC)],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
