"""cffi (API mode) build of varpod.native._streamio; run by setup.py's cffi_modules."""

from cffi import FFI

# Relative to setup.py, which is where setuptools runs builds from (it refuses absolute paths).
SRC = "native/src"

ffi = FFI()
ffi.cdef(
    """
    long long vp_pump(int src, int log_fd, int stream, long long budget,
                      char *buf, size_t bufsize, int *eof);

    struct vp_cursor {
        long long offset;
        size_t head;
        size_t tail;
        size_t need;
        int past_until;
        int blocked;
    };
    long long vp_relay(struct vp_cursor *c, char *buf, size_t bufsize, int log_fd,
                       long long end, int dst, int mode, unsigned mask,
                       uint64_t since, uint64_t until);
    int vp_demux(const char *buf, size_t len, int fmt, int out1, int out2,
                 size_t *consumed, int *control);
    long long vp_scan(const char *buf, size_t len, size_t start, int fmt,
                      uint32_t *out, size_t max, size_t *next);
    """
)
ffi.set_source(
    "varpod.native._streamio",
    '#include "streamio.h"',
    sources=[f"{SRC}/streamio.c"],
    include_dirs=[SRC],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
