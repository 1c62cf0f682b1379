/* varpod stream I/O: the hot copy loops, called from Python through cffi.
 * Every function returns >= 0 on success or -errno; none holds Python state,
 * so cffi releases the GIL around each call. */
#ifndef VARPOD_STREAMIO_H
#define VARPOD_STREAMIO_H
#include <stddef.h>
#include <stdint.h>

/* Read src until EAGAIN, EOF or `budget` bytes; append each read to log_fd as
 * one log record (8-byte frame header, payload, 12-byte time/length trailer).
 * Returns bytes appended to the log; *eof is set to 1 when src hit EOF. */
long long vp_pump(int src, int log_fd, int stream, long long budget,
                  char *buf, size_t bufsize, int *eof);

#endif
