"""cffi (API mode) build of varpod.native._streamio; run by setup.py's cffi_modules."""

from cffi import FFI

# Relative to setup.py, which is where setuptools runs builds from (it refuses absolute paths).
SRC = "native/src"

ffi = FFI()
ffi.cdef(
    """
    long long vp_pump(int src, int log_fd, long long *offset, int stream, long long budget,
                      char *buf, size_t bufsize, int stage_r, int stage_w, int *eof);

    struct vp_cursor {
        long long offset;
        long long file_pos;
        long long file_left;
        char *pending;
        size_t head;
        size_t tail;
        int owed_pos;
        int owed_len;
        int past_until;
        int blocked;
        ...;
    };
    #define VP_SENDFILE_MIN ...
    long long vp_relay(struct vp_cursor *c, char *scratch, size_t window, int log_fd,
                       long long end, int dst, int mode, unsigned mask,
                       uint64_t since, uint64_t until, int merge);
    void vp_cursor_release(struct vp_cursor *c);
    int vp_demux(const char *buf, size_t len, int fmt, int out1, int out2,
                 size_t *consumed, int *control);

    struct vp_demuxer {
        long long offset;
        long long entry;
        size_t ahead_pos;
        size_t ahead_len;
        size_t need;
        uint32_t length;
        int fmt;
        ...;
    };
    #define VP_CONTROL ...
    #define VP_EOF ...
    #define VP_INTERRUPTED ...
    #define VP_NEED_BUFFER ...
    void vp_demuxer_init(struct vp_demuxer *d, int fmt);
    int vp_demux_from(struct vp_demuxer *d, char *buf, size_t bufsize, char *ahead, size_t aheadsize,
                      const char *in, size_t inlen, size_t *used,
                      int src, int out1, int out2, long long budget, int wake_fd);
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
