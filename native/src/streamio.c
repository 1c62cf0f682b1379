#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void record_ends(unsigned char hdr[8], unsigned char trl[12], int stream, uint32_t n,
                        uint64_t ts_ns)
{
    memset(hdr, 0, 8);
    hdr[0] = (unsigned char)stream;
    put_be32(hdr + 4, n);
    put_be64(trl, ts_ns);
    put_be32(trl + 8, n);
}

/* pwritev that finishes the job at off (a disk that fills up may take less). */
static int pwritev_all(int fd, struct iovec *iov, int cnt, long long off)
{
    while (cnt > 0) {
        ssize_t n = pwritev(fd, iov, cnt, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += n;
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

static int append_record(int log_fd, long long off, int stream, const char *buf, size_t n,
                         uint64_t ts_ns)
{
    unsigned char hdr[8], trl[12];
    record_ends(hdr, trl, stream, (uint32_t)n, ts_ns);
    struct iovec iov[3] = {{hdr, 8}, {(void *)buf, n}, {trl, 12}};
    return pwritev_all(log_fd, iov, 3, off);
}

/* -- pump, spliced: pipe -> staging pipe -> log --------------------------------------------- */

/* p[0, n) into the staging pipe, without waiting: -EAGAIN when it is full. *done says
 * how much went in so far (across calls). */
static int stage_bytes(int pipe_w, const unsigned char *p, size_t n, size_t *done)
{
    while (*done < n) {
        struct iovec v = {(void *)(p + *done), n - *done};
        ssize_t k = vmsplice(pipe_w, &v, 1, SPLICE_F_NONBLOCK);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        *done += (size_t)k;
    }
    return 0;
}

/* The staging pipe's `n` bytes to the log at *off. */
static int flush_staged(int stage_r, int log_fd, long long *off, size_t n)
{
    while (n) {
        loff_t at = *off;
        ssize_t k = splice(stage_r, NULL, log_fd, &at, n, SPLICE_F_MOVE);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        *off = at;
        n -= (size_t)k;
    }
    return 0;
}

/* After a failure the staging pipe must be empty again for the next record. */
static void drop_staged(int stage_r, char *buf, size_t bufsize)
{
    while (read(stage_r, buf, bufsize) > 0)
        ;
}

/* One record of exactly n bytes (FIONREAD said src holds them) from src into the log at *off.
 * The header is vmspliced first (the length is known), then the payload is spliced over;
 * when the staging pipe fills up (it has as many slots as src, less the header's), what is
 * staged goes to the log and the rest follows. vmsplice maps hdr and trl rather than
 * copying them: they stay untouched until flushed, before this returns. */
static int splice_record(int src, int log_fd, long long *off, int stream, size_t n,
                         int stage_r, int stage_w, uint64_t ts_ns)
{
    unsigned char hdr[8], trl[12];
    record_ends(hdr, trl, stream, (uint32_t)n, ts_ns);
    long long at = *off;
    size_t staged = 0, left = n, hdr_done = 0, trl_done = 0;
    int rc = 0;
    /* Header, payload, trailer: whenever the staging pipe is full, what is in it goes
     * to the log and the record goes on. */
    while (rc == 0 && trl_done < sizeof trl) {
        ssize_t k;
        size_t before;
        if (hdr_done < sizeof hdr) {
            before = hdr_done;
            k = stage_bytes(stage_w, hdr, sizeof hdr, &hdr_done);
            staged += hdr_done - before;
        } else if (left) {
            k = splice(src, NULL, stage_w, NULL, left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (k > 0) {
                left -= (size_t)k;
                staged += (size_t)k;
                continue;
            }
            if (k == 0) {
                k = -1;
                errno = EIO; /* src emptied under us: not ours alone */
            }
            if (errno == EINTR)
                continue;
            k = -errno;
        } else {
            before = trl_done;
            k = stage_bytes(stage_w, trl, sizeof trl, &trl_done);
            staged += trl_done - before;
        }
        if (k == -EAGAIN && staged) { /* the staging pipe is full: src has data, FIONREAD said */
            rc = flush_staged(stage_r, log_fd, &at, staged);
            staged = 0;
        } else if (k < 0) {
            rc = (int)k;
        }
    }
    if (rc == 0)
        rc = flush_staged(stage_r, log_fd, &at, staged);
    if (rc == 0)
        *off = at;
    return rc;
}

/* What is in the pipe now becomes one record: reads are gathered into buf while
 * FIONREAD says more is there, until buf is full. A PTY hands out a few KiB per read and a
 * line-by-line producer a line: a record per read would multiply headers,
 * writes and every reader's work. The record's time is its first read's.
 * A pipe with a staging pipe: FIONREAD says how much is there, and that much is spliced. */
long long vp_pump(int src, int log_fd, long long *offset, int stream, long long budget,
                  char *buf, size_t bufsize, int stage_r, int stage_w, int *eof)
{
    long long total = 0;
    *eof = 0;
    while (total < budget && !*eof) {
        if (stage_w >= 0) {
            int avail = 0;
            if (ioctl(src, FIONREAD, &avail) == 0 && avail > 0) {
                size_t n = (size_t)avail < bufsize ? (size_t)avail : bufsize;
                int rc = splice_record(src, log_fd, offset, stream, n, stage_r, stage_w, now_ns());
                if (rc < 0) {
                    drop_staged(stage_r, buf, bufsize);
                    return total ? total : rc; /* a lasting error comes again on the next call */
                }
                total += (long long)n + 20;
                continue;
            }
            /* Nothing there: the read below says whether that is EAGAIN or EOF. */
        }
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
                    return total ? total : -errno;
                drained = 1; /* report the error on the next call, after this data is kept */
                break;
            }
            if (n == 0) {
                *eof = 1;
                break;
            }
            if (filled == 0)
                ts_ns = now_ns();
            filled += (size_t)n;
        }
        if (filled) {
            int rc = append_record(log_fd, *offset, stream, buf, filled, ts_ns);
            if (rc < 0)
                return total ? total : rc;
            *offset += (long long)filled + 20;
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

/* Does a record sent from the file (VP_SENDFILE_MIN payload bytes or more, or
 * larger than the window) start at p? Judged on its header alone: a corrupt one is
 * entry_at's to refuse. */
static int starts_big(const char *p, size_t avail, size_t window)
{
    if (avail < HEADER)
        return 0;
    const unsigned char *h = (const unsigned char *)p;
    uint32_t n = get_be32(h + 4);
    if (h[0] > 3 || n > MAX_PAYLOAD)
        return 0;
    return n >= VP_SENDFILE_MIN || HEADER + (size_t)n + TRAILER > window;
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
static int convert(char *buf, size_t len, size_t window, int mode, unsigned mask, uint64_t since,
                   uint64_t until, size_t *used, size_t *out, int *past_until, int *big)
{
    size_t r = 0, w = 0;
    int rc = 0;
    while (r < len) {
        unsigned stream;
        uint32_t n;
        if ((*big = starts_big(buf + r, len - r, window)))
            break;
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
static int convert_merged(char *buf, size_t len, size_t window, int mode, unsigned mask,
                          uint64_t since, uint64_t until, size_t *used, size_t *out, int *past_until,
                          int *big)
{
    size_t r = 0, w = 0, at = 0;
    int open = 0, rc = 0;
    unsigned open_stream = 0;
    uint32_t open_length = 0;
    uint64_t open_time = 0;
    while (r < len) {
        unsigned stream;
        uint32_t n;
        if ((*big = starts_big(buf + r, len - r, window)))
            break;
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

void vp_cursor_release(struct vp_cursor *c)
{
    free(c->pending);
    c->pending = NULL;
    c->head = c->tail = 0;
}

/* p[0, n) to dst; what dst does not take now is kept in the cursor. -EAGAIN then. */
static long long write_out(struct vp_cursor *c, int dst, const char *p, size_t n, long long *total)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(dst, p + done, n - done);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -errno;
        }
        done += (size_t)k;
        *total += k;
    }
    if (done == n)
        return 0;
    if (!(c->pending = malloc(n - done)))
        return -ENOMEM;
    memcpy(c->pending, p + done, n - done);
    c->head = 0;
    c->tail = n - done;
    return -EAGAIN;
}

/* A payload from the log when dst takes no sendfile: through the scratch buffer. */
static long long copy_from_file(struct vp_cursor *c, int log_fd, int dst, char *scratch,
                                size_t window, long long *total)
{
    size_t want = c->file_left < (long long)window ? (size_t)c->file_left : window;
    ssize_t got;
    do
        got = pread(log_fd, scratch, want, c->file_pos);
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return got < 0 ? -errno : -EIO;
    c->file_pos += got;
    c->file_left -= got;
    return write_out(c, dst, scratch, (size_t)got, total);
}

/* Everything the cursor owes dst, in order: pending output, a payload from the
 * file, the trailer that follows it. 0 when all is out, -EAGAIN when dst is full. */
static long long pay_debts(struct vp_cursor *c, int log_fd, int dst, char *scratch, size_t window,
                           long long *total)
{
    while (c->head < c->tail) {
        ssize_t k = write(dst, c->pending + c->head, c->tail - c->head);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -EAGAIN : -errno;
        }
        c->head += (size_t)k;
        *total += k;
    }
    vp_cursor_release(c);
    while (c->file_left > 0) {
        off_t pos = c->file_pos;
        ssize_t k = sendfile(dst, log_fd, &pos, c->file_left < (1 << 30) ? (size_t)c->file_left : 1 << 30);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EINVAL || errno == ENOSYS)) { /* dst takes no sendfile */
            long long rc = copy_from_file(c, log_fd, dst, scratch, window, total);
            if (rc < 0)
                return rc;
            continue;
        }
        if (k < 0)
            return errno == EAGAIN ? -EAGAIN : -errno;
        if (k == 0)
            return -EIO; /* the log is shorter than its records say: it was cut under us */
        c->file_pos = pos;
        c->file_left -= k;
        *total += k;
    }
    while (c->owed_pos < c->owed_len) {
        ssize_t k = write(dst, c->owed + c->owed_pos, (size_t)(c->owed_len - c->owed_pos));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -EAGAIN : -errno;
        }
        c->owed_pos += (int)k;
        *total += k;
    }
    c->owed_pos = c->owed_len = 0;
    return 0;
}

/* The record at log offset `at` (its header at hdr) is sent from the file. Reads its
 * trailer, checks it and the selection; when selected, its output header goes to
 * out[0, *n) and the cursor owes its payload (and, for records, its trailer).
 * Returns the record's size (consumed), 0 when it is past `until` (nothing consumed),
 * -EBADMSG when corrupt, -EIO when the file is shorter than the record. */
static long long take_big(struct vp_cursor *c, const unsigned char *hdr, long long at, int log_fd,
                          int mode, unsigned mask, uint64_t since, uint64_t until, char *out,
                          size_t *n)
{
    unsigned stream = hdr[0];
    uint32_t len = get_be32(hdr + 4);
    unsigned char trl[TRAILER];
    ssize_t got;
    *n = 0;
    if (stream > 3 || len > MAX_PAYLOAD)
        return -EBADMSG;
    do
        got = pread(log_fd, trl, TRAILER, at + HEADER + len);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return -errno;
    if (got < TRAILER)
        return -EIO;
    if (get_be32(trl + 8) != len)
        return -EBADMSG;
    uint64_t t = get_be64(trl);
    if (t > until) {
        c->past_until = 1;
        return 0;
    }
    if ((mask >> stream & 1) && t >= since) {
        if (mode != VP_RAW) {
            memset(out, 0, HEADER);
            out[0] = (char)stream;
            put_be32((unsigned char *)out + 4, len);
            *n = HEADER;
        }
        c->file_pos = at + HEADER;
        c->file_left = len;
        if (mode == VP_RECORDS) {
            memcpy(c->owed, trl, TRAILER);
            c->owed_len = TRAILER;
            c->owed_pos = 0;
        }
    }
    return HEADER + (long long)len + TRAILER;
}

long long vp_relay(struct vp_cursor *c, char *scratch, size_t window, int log_fd,
                   long long end, int dst, int mode, unsigned mask,
                   uint64_t since, uint64_t until, int merge)
{
    long long total = 0;
    c->blocked = 0;
    if (mode < VP_RECORDS || mode > VP_RAW || window < HEADER + TRAILER || c->head > c->tail)
        return -EINVAL;
    for (;;) {
        long long rc = pay_debts(c, log_fd, dst, scratch, window, &total);
        if (rc == -EAGAIN) {
            c->blocked = 1;
            return total;
        }
        if (rc < 0)
            return rc;
        if (c->past_until || c->offset >= end)
            return total;
        size_t want = (unsigned long long)(end - c->offset) < window ? (size_t)(end - c->offset) : window;
        ssize_t got;
        do
            got = pread(log_fd, scratch, want, c->offset);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return -errno;
        size_t used, out;
        int big = 0;
        int crc = merge && mode != VP_RAW
                      ? convert_merged(scratch, (size_t)got, window, mode, mask, since, until, &used,
                                       &out, &c->past_until, &big)
                      : convert(scratch, (size_t)got, window, mode, mask, since, until, &used, &out,
                                &c->past_until, &big);
        if (big && !c->past_until) {
            /* The output so far is behind the big record's header (compaction), and
             * its own output header fits where that header was. */
            size_t hn;
            long long size = take_big(c, (unsigned char *)scratch + used, c->offset + (long long)used,
                                      log_fd, mode, mask, since, until, scratch + out, &hn);
            if (size < 0 && used == 0)
                return size; /* else what came before it goes out first; the next pass reports it */
            if (size > 0) {
                used += (size_t)size;
                out += hn;
            }
        } else if (used == 0 && !c->past_until) {
            /* Nothing whole at the start: a corrupt record, or a short read, which `end`
             * being a record boundary rules out unless the file shrank under us: stop
             * quietly rather than spin. Records converted before a corrupt one still
             * went out; this pass starts at it and reports it. */
            return crc < 0 ? crc : total;
        }
        c->offset += (long long)used;
        rc = write_out(c, dst, scratch, out, &total);
        if (rc == -EAGAIN) {
            c->blocked = 1;
            return total;
        }
        if (rc < 0)
            return rc;
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
