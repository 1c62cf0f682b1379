#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
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

static int append_record(int log_fd, int stream, const char *buf, size_t n, uint64_t ts_ns)
{
    unsigned char hdr[8] = {(unsigned char)stream, 0, 0, 0};
    unsigned char trl[12];
    put_be32(hdr + 4, (uint32_t)n);
    put_be64(trl, ts_ns);
    put_be32(trl + 8, (uint32_t)n);
    struct iovec iov[3] = {{hdr, 8}, {(void *)buf, n}, {trl, 12}};
    return writev_all(log_fd, iov, 3);
}

/* What is in the pipe now becomes one record: reads are gathered into buf while
 * FIONREAD says more is there, until buf is full. A PTY hands out a few KiB per read and a
 * line-by-line producer a line: a record per read would multiply headers,
 * writes and every reader's work. The record's time is its first read's. */
long long vp_pump(int src, int log_fd, int stream, long long budget,
                  char *buf, size_t bufsize, int *eof)
{
    long long total = 0;
    *eof = 0;
    while (total < budget && !*eof) {
        size_t filled = 0;
        uint64_t ts_ns = 0;
        int drained = 0;
        while (filled < bufsize) {
            size_t want = bufsize - filled;
            if (filled) {
                /* Gather only what is already there: never block, nor spend a read on EAGAIN. */
                int avail = 0;
                if (ioctl(src, FIONREAD, &avail) < 0 || avail <= 0)
                    break; /* the next read says whether it is EAGAIN or EOF */
                if ((size_t)avail < want)
                    want = (size_t)avail;
            }
            ssize_t n = read(src, buf + filled, want);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN) {
                    drained = 1;
                    break;
                }
                if (filled == 0)
                    return -errno;
                drained = 1; /* report the error on the next call, after this data is kept */
                break;
            }
            if (n == 0) {
                *eof = 1;
                break;
            }
            if (filled == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            }
            filled += (size_t)n;
        }
        if (filled) {
            int rc = append_record(log_fd, stream, buf, filled, ts_ns);
            if (rc < 0)
                return rc;
            total += (long long)filled + 20;
        }
        if (drained)
            break;
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

/* Close the merged entry whose header is at buf[at]: its header gets the
 * merged length and, for records, a trailer with the first record's time
 * goes after the payload at buf[w]. Returns the new write position. */
static size_t close_merged(char *buf, size_t at, size_t w, int mode, unsigned stream,
                           uint32_t length, uint64_t t)
{
    unsigned char *h = (unsigned char *)buf + at;
    h[0] = (unsigned char)stream;
    h[1] = h[2] = h[3] = 0;
    put_be32(h + 4, length);
    if (mode != VP_RECORDS)
        return w;
    put_be64((unsigned char *)buf + w, t);
    put_be32((unsigned char *)buf + w + 8, length);
    return w + TRAILER;
}

/* convert() for merge: consecutive selected records of one stream become one
 * entry, so a log written a line at a time (one small record per read of the
 * container's pipe) replays as a few large entries, and the client pays per
 * entry, not per read.
 * Merging is done here, on the read side, and not when the log is written:
 * the log keeps one record per read, with that read's time, which
 * `--timestamps` prints and --since/--until select by. A merged record carries
 * its first record's time; the followers that asked for merging do not print
 * times. Only records converted together merge: output already pending from
 * an earlier pass is never reopened, so the batches are the same as without
 * merging (and the Python twin's the same as these).
 * The compaction argument of convert() still holds: an open entry's output so
 * far plus the trailer it will get (8 + payloads + 12) is no longer than its
 * input records (payloads + 20 each), so the write position, trailer included,
 * stays behind the read position. Headers are written anew (reserved bytes
 * zero), since a merged one needs the merged length anyway. RAW mode has no
 * boundaries to merge and goes through convert(). */
static int convert_merged(char *buf, size_t len, int mode, unsigned mask, uint64_t since,
                          uint64_t until, size_t *used, size_t *out, int *past_until)
{
    size_t r = 0, w = 0, at = 0;
    int open = 0, rc = 0;
    unsigned open_stream = 0;
    uint32_t open_length = 0;
    uint64_t open_time = 0;
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
            if (open && stream == open_stream && open_length + n <= MAX_PAYLOAD) {
                memmove(buf + w, buf + r + HEADER, n);
                w += n;
                open_length += n;
            } else {
                if (open)
                    w = close_merged(buf, at, w, mode, open_stream, open_length, open_time);
                open = 1;
                at = w;
                open_stream = stream;
                open_length = n;
                open_time = t;
                memmove(buf + w, buf + r, HEADER + (size_t)n);
                w += HEADER + (size_t)n;
            }
        }
        r += (size_t)size;
    }
    if (open)
        w = close_merged(buf, at, w, mode, open_stream, open_length, open_time);
    *used = r;
    *out = w;
    return rc;
}

long long vp_relay(struct vp_cursor *c, char *buf, size_t bufsize, int log_fd,
                   long long end, int dst, int mode, unsigned mask,
                   uint64_t since, uint64_t until, int merge)
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
        int rc = merge && mode != VP_RAW
                     ? convert_merged(buf, (size_t)got, mode, mask, since, until, &used, &out,
                                      &c->past_until)
                     : convert(buf, (size_t)got, mode, mask, since, until, &used, &out, &c->past_until);
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

/* -- demux_from: one stream, read as it arrives -------------------------------------------- */

/* Where the stream's bytes come from: first what the caller already read from
 * src (what came with the upgrade reply), then src, read ahead into the
 * demuxer's `ahead` buffer a read at a time, so that small entries cost a
 * write each and not three system calls. Large payloads bound for a pipe are
 * spliced straight from src instead. */
struct source {
    const char *in;
    size_t len;
    size_t pos;
    int fd;
    int wake;    /* the signal wakeup pipe, or -1 */
    char *ahead; /* ahead[d->ahead_pos, d->ahead_len): read from fd, not yet consumed */
    size_t aheadsize;
};

enum { PART_HEADER, PART_PAYLOAD, PART_TRAILER };
#define SPLICE_MIN (64u << 10) /* a payload remainder at least this large skips the read-ahead */

void vp_demuxer_init(struct vp_demuxer *d, int fmt)
{
    memset(d, 0, sizeof *d);
    d->fmt = fmt;
    d->part = PART_HEADER;
    d->out_fd[0] = d->out_fd[1] = -1;
}

/* Inside the demuxer a step returns 0 to go on, or stops with -errno or a
 * VP_* status carried as STOP(status), clear of every errno. */
#define STOP(status) (-1000 - (status))
#define IS_STOP(rc) ((rc) <= -1000)
#define STATUS_OF(rc) ((int)(-1000 - (rc)))

/* A read/write/splice result: bytes (> 0) pass through; EOF and EINTR stop. */
static ssize_t io_result(ssize_t n)
{
    if (n > 0)
        return n;
    if (n == 0)
        return STOP(VP_EOF);
    return errno == EINTR ? STOP(VP_INTERRUPTED) : -errno;
}

/* src is non-blocking for the call (the caller sees to it): a read or splice that
 * would block returns EAGAIN, and only then do we wait, in a poll that includes the
 * signal wakeup pipe. A signal that lands while no system call runs interrupts none;
 * it only leaves its number in that pipe, and a blocking read begun after it would
 * wait for more data, maybe forever. With data there, nothing is polled. Without a
 * pipe (not the main thread, where no handler runs) the poll waits for src alone. */
static ssize_t wait_readable(const struct source *s)
{
    struct pollfd p[2] = {{s->fd, POLLIN, 0}, {s->wake, POLLIN, 0}};
    for (;;) {
        if (poll(p, s->wake >= 0 ? 2 : 1, -1) < 0)
            return errno == EINTR ? STOP(VP_INTERRUPTED) : -errno;
        if (s->wake >= 0 && p[1].revents)
            return STOP(VP_INTERRUPTED);
        if (p[0].revents)
            return 0; /* readable, or in error: the next call says which */
    }
}

/* The bytes at hand without a system call (the caller's, else the read-ahead's):
 * how many, and *p where they are. */
static size_t at_hand(const struct vp_demuxer *d, const struct source *s, const char **p)
{
    if (s->pos < s->len) {
        *p = s->in + s->pos;
        return s->len - s->pos;
    }
    *p = s->ahead + d->ahead_pos;
    return d->ahead_len - d->ahead_pos;
}

static void consume(struct vp_demuxer *d, struct source *s, size_t n)
{
    if (s->pos < s->len)
        s->pos += n;
    else
        d->ahead_pos += n;
    d->offset += (long long)n;
}

/* Nothing is at hand: read what src has (up to the read-ahead's size), waiting
 * for it (or a signal) if it has nothing yet. */
static ssize_t read_ahead(struct vp_demuxer *d, const struct source *s)
{
    for (;;) {
        ssize_t n = read(s->fd, s->ahead, s->aheadsize);
        if (n > 0) {
            d->ahead_pos = 0;
            d->ahead_len = (size_t)n;
            return n;
        }
        if (n == 0 || errno != EAGAIN)
            return io_result(n);
        if ((n = wait_readable(s)) < 0)
            return n;
    }
}

/* Exactly `want` bytes into p across calls: d->done says how many are there. */
static ssize_t take_exact(struct vp_demuxer *d, struct source *s, unsigned char *p,
                          uint32_t want)
{
    while (d->done < want) {
        const char *from;
        size_t n = at_hand(d, s, &from);
        if (n == 0) {
            ssize_t rc = read_ahead(d, s);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n > want - d->done)
            n = want - d->done;
        memcpy(p + d->done, from, n);
        consume(d, s, n);
        d->done += (uint32_t)n;
    }
    return 0;
}

/* Is out (stream 1 or 2's fd) a pipe? fstat once per fd, remembered. */
static int out_is_pipe(struct vp_demuxer *d, int slot, int out)
{
    if (d->out_fd[slot] != out) {
        struct stat st;
        d->out_fd[slot] = out;
        d->out_pipe[slot] = fstat(out, &st) == 0 && S_ISFIFO(st.st_mode);
    }
    return d->out_pipe[slot];
}

/* The current entry's payload (stream 0-2) to out, -1 discarding. Bytes at hand
 * are written from where they are, and count as consumed only once written, so
 * an interrupted write loses nothing; a large remainder for a pipe is spliced
 * from src, and no byte of it passes through user space. Returns 0 once it is
 * all out. */
static ssize_t move_payload(struct vp_demuxer *d, struct source *s, int slot, int out)
{
    while (d->done < d->length) {
        size_t want = d->length - d->done;
        const char *from;
        size_t n = at_hand(d, s, &from);
        ssize_t rc;
        if (n) {
            if (n > want)
                n = want;
            if (out >= 0) {
                if ((rc = io_result(write(out, from, n))) < 0)
                    return rc;
                n = (size_t)rc;
            }
            consume(d, s, n);
            d->done += (uint32_t)n;
            continue;
        }
        if (out < 0 || want < SPLICE_MIN || !out_is_pipe(d, slot, out)) {
            if ((rc = read_ahead(d, s)) < 0)
                return rc;
            continue;
        }
        rc = splice(s->fd, NULL, out, NULL, want, SPLICE_F_MOVE);
        if (rc < 0 && errno == EINVAL) {
            d->out_pipe[slot] = 0; /* src cannot be spliced from: read and write */
            continue;
        }
        if (rc < 0 && errno == EAGAIN) { /* src is empty (a full pipe blocks: it is blocking) */
            if ((rc = wait_readable(s)) < 0)
                return rc;
            continue;
        }
        if ((rc = io_result(rc)) < 0)
            return rc;
        d->done += (uint32_t)rc;
        d->offset += rc;
    }
    return 0;
}

/* The whole header is in: judge it before waiting for a payload that garbage
 * may never send. */
static int check_header(struct vp_demuxer *d, size_t bufsize)
{
    const unsigned char *h = d->header;
    uint32_t n = get_be32(h + 4);
    if (h[0] > 3 || h[1] || h[2] || h[3] || n > MAX_PAYLOAD)
        return -EBADMSG;
    d->length = n;
    if (h[0] == 3 && n > bufsize) {
        d->need = n;
        return STOP(VP_NEED_BUFFER);
    }
    return 0;
}

static ssize_t demux_step(struct vp_demuxer *d, struct source *s, char *buf, size_t bufsize,
                          int out1, int out2)
{
    ssize_t rc;
    unsigned stream = d->header[0];
    switch (d->part) {
    case PART_HEADER:
        if (d->done == 0)
            d->entry = d->offset;
        if ((rc = take_exact(d, s, d->header, HEADER)) < 0 || (rc = check_header(d, bufsize)) < 0)
            return rc;
        d->part = PART_PAYLOAD;
        d->done = 0;
        return 0;
    case PART_PAYLOAD:
        if (stream == 3)
            rc = take_exact(d, s, (unsigned char *)buf, d->length);
        else
            rc = move_payload(d, s, stream == 2, stream == 1 ? out1 : stream == 2 ? out2 : -1);
        if (rc < 0)
            return rc;
        d->part = d->fmt == VP_RECORDS ? PART_TRAILER : PART_HEADER;
        d->done = 0;
        return d->part == PART_HEADER && stream == 3 ? STOP(VP_CONTROL) : 0;
    default:
        if ((rc = take_exact(d, s, d->trailer, TRAILER)) < 0)
            return rc;
        if (get_be32(d->trailer + 8) != d->length)
            return -EBADMSG;
        d->part = PART_HEADER;
        d->done = 0;
        return stream == 3 ? STOP(VP_CONTROL) : 0;
    }
}

int vp_demux_from(struct vp_demuxer *d, char *buf, size_t bufsize, char *ahead, size_t aheadsize,
                  const char *in, size_t inlen, size_t *used,
                  int src, int out1, int out2, long long budget, int wake_fd)
{
    struct source s = {in, inlen, 0, src, wake_fd, ahead, aheadsize};
    long long start = d->offset;
    ssize_t rc = 0;
    d->need = 0;
    if ((d->fmt != VP_RECORDS && d->fmt != VP_FRAMES) || aheadsize == 0
        || d->ahead_pos > d->ahead_len || d->ahead_len > aheadsize)
        rc = -EINVAL;
    /* The budget bounds one call even when nothing blocks (a long replay):
     * a signal that arrived between system calls interrupted none of them,
     * and its Python handler only runs once this returns. */
    while (rc == 0 && d->offset - start < budget)
        rc = demux_step(d, &s, buf, bufsize, out1, out2);
    *used = s.pos;
    if (rc == 0)
        return VP_INTERRUPTED;
    return IS_STOP(rc) ? STATUS_OF(rc) : (int)rc;
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
