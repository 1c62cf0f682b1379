#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "streamio.h"

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* writev that finishes the job: a regular file or a blocking fd may take less. */
static int writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return 0;
}

long long vp_pump(int src, int log_fd, int stream, long long budget,
                  char *buf, size_t bufsize, int *eof)
{
    long long total = 0;
    *eof = 0;
    while (total < budget) {
        ssize_t n = read(src, buf, bufsize);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -errno;
        }
        if (n == 0) {
            *eof = 1;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned char hdr[8] = {(unsigned char)stream, 0, 0, 0};
        unsigned char trl[12];
        put_be32(hdr + 4, (uint32_t)n);
        put_be64(trl, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
        put_be32(trl + 8, (uint32_t)n);
        struct iovec iov[3] = {{hdr, 8}, {buf, (size_t)n}, {trl, 12}};
        int rc = writev_all(log_fd, iov, 3);
        if (rc < 0)
            return rc;
        total += n + 20;
    }
    return total;
}
