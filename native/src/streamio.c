#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
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

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
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

enum { HEADER = 8, TRAILER = 12 };
#define MAX_PAYLOAD (16u << 20)

/* Size of the record/frame at p (fmt says which) when all of it is in the
 * avail bytes, 0 when not, -EBADMSG when it is corrupt. The header alone is
 * judged as soon as it is there, so garbage is refused without waiting for a
 * "payload" that may never come. */
static long long entry_at(const unsigned char *p, size_t avail, int fmt,
                          unsigned *stream, uint32_t *n)
{
    if (avail < HEADER)
        return 0;
    *stream = p[0];
    *n = get_be32(p + 4);
    if (*stream > 3 || *n > MAX_PAYLOAD)
        return -EBADMSG;
    size_t size = HEADER + (size_t)*n + (fmt == VP_RECORDS ? TRAILER : 0);
    if (avail < size)
        return 0;
    if (fmt == VP_RECORDS && get_be32(p + HEADER + *n + 8) != *n)
        return -EBADMSG;
    return (long long)size;
}

/* Turn the whole records at the start of buf[0, len) into `mode` output,
 * compacted in place at the start of buf: each record's output is no longer
 * than the record, so the write position never passes the read position and
 * memmove is safe. Compacting (rather than writev of iovecs into the read
 * buffer) keeps the output one run, so it goes out in one write() whatever the
 * record sizes, and pending output is just [head, tail). In RECORDS mode with
 * nothing filtered out the two positions coincide and nothing moves.
 * Sets *used (input consumed) and *out (output length); returns -EBADMSG when
 * it stopped at a corrupt record, else 0. */
static int convert(char *buf, size_t len, int mode, unsigned mask, uint64_t since,
                   uint64_t until, size_t *used, size_t *out, int *past_until)
{
    size_t r = 0, w = 0;
    int rc = 0;
    while (r < len) {
        unsigned stream;
        uint32_t n;
        long long size = entry_at((unsigned char *)buf + r, len - r, VP_RECORDS, &stream, &n);
        if (size <= 0) {
            rc = (int)size;
            break;
        }
        uint64_t t = get_be64((unsigned char *)buf + r + HEADER + n);
        if (t > until) {
            *past_until = 1;
            break;
        }
        if ((mask >> stream & 1) && t >= since) {
            size_t from = r + (mode == VP_RAW ? HEADER : 0);
            size_t k = mode == VP_RECORDS ? (size_t)size : mode == VP_FRAMES ? HEADER + n : n;
            if (from != w)
                memmove(buf + w, buf + from, k);
            w += k;
        }
        r += (size_t)size;
    }
    *used = r;
    *out = w;
    return rc;
}

long long vp_relay(struct vp_cursor *c, char *buf, size_t bufsize, int log_fd,
                   long long end, int dst, int mode, unsigned mask,
                   uint64_t since, uint64_t until)
{
    long long total = 0;
    c->need = 0;
    c->blocked = 0;
    if (mode < VP_RECORDS || mode > VP_RAW || c->tail > bufsize || c->head > c->tail)
        return -EINVAL;
    for (;;) {
        while (c->head < c->tail) {
            ssize_t n = write(dst, buf + c->head, c->tail - c->head);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    c->blocked = 1;
                    return total;
                }
                return -errno;
            }
            c->head += (size_t)n;
            total += n;
        }
        c->head = c->tail = 0;
        if (c->past_until || c->offset >= end)
            return total;
        size_t want = (unsigned long long)(end - c->offset) < bufsize
                          ? (size_t)(end - c->offset) : bufsize;
        ssize_t got;
        do
            got = pread(log_fd, buf, want, c->offset);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return -errno;
        size_t used, out;
        int rc = convert(buf, (size_t)got, mode, mask, since, until, &used, &out, &c->past_until);
        if (used == 0 && !c->past_until) {
            /* Nothing whole at the start: a corrupt record, one larger than
             * the buffer (the caller grows it and calls again), or a short
             * read, which `end` being a record boundary rules out unless the
             * file shrank under us: stop quietly rather than spin. */
            if (rc < 0)
                return rc;
            if (got >= HEADER) {
                size_t size = HEADER + get_be32((unsigned char *)buf + 4) + TRAILER;
                if (size > bufsize)
                    c->need = size;
            }
            return total;
        }
        /* Records converted before a corrupt one still go out; the next pass
         * starts at the corrupt record and reports it. */
        c->offset += (long long)used;
        c->tail = out;
    }
}

int vp_demux(const char *buf, size_t len, int fmt, int out1, int out2,
             size_t *consumed, int *control)
{
    /* Runs of payloads for one fd go out in one writev: a terminal sees the
     * same interleaving of stdout and stderr, at one call per run. */
    struct iovec iov[IOV_MAX];
    int cnt = 0, batch_fd = -1, rc = 0;
    size_t pos = 0;
    *consumed = 0;
    *control = 0;
    if (fmt != VP_RECORDS && fmt != VP_FRAMES)
        return -EINVAL;
    while (pos < len) {
        unsigned stream;
        uint32_t n;
        long long size = entry_at((const unsigned char *)buf + pos, len - pos, fmt, &stream, &n);
        if (size <= 0) {
            rc = (int)size;
            break;
        }
        if (stream == 3) {
            *control = 1;
            break;
        }
        int fd = stream == 1 ? out1 : stream == 2 ? out2 : -1;
        if (fd >= 0 && n > 0) {
            if (cnt == IOV_MAX || (cnt > 0 && fd != batch_fd)) {
                int wrc = writev_all(batch_fd, iov, cnt);
                if (wrc < 0) {
                    *consumed = pos;
                    return wrc;
                }
                cnt = 0;
            }
            batch_fd = fd;
            iov[cnt].iov_base = (char *)buf + pos + HEADER;
            iov[cnt].iov_len = n;
            cnt++;
        }
        pos += (size_t)size;
    }
    *consumed = pos;
    if (cnt > 0) {
        int wrc = writev_all(batch_fd, iov, cnt);
        if (wrc < 0)
            return wrc;
    }
    return rc;
}

long long vp_scan(const char *buf, size_t len, size_t start, int fmt,
                  uint32_t *out, size_t max, size_t *next)
{
    size_t pos = start, k = 0;
    *next = start;
    if (fmt != VP_RECORDS && fmt != VP_FRAMES)
        return -EINVAL;
    while (k < max && pos < len) {
        unsigned stream;
        uint32_t n;
        long long size = entry_at((const unsigned char *)buf + pos, len - pos, fmt, &stream, &n);
        if (size < 0) {
            *next = pos;
            return size;
        }
        /* Offsets are relative to start so they fit the caller's uint32s;
         * a chunk ends early rather than overflow one. */
        if (size == 0 || pos + HEADER - start > UINT32_MAX)
            break;
        out[3 * k] = stream;
        out[3 * k + 1] = (uint32_t)(pos + HEADER - start);
        out[3 * k + 2] = n;
        k++;
        pos += (size_t)size;
    }
    *next = pos;
    return (long long)k;
}
