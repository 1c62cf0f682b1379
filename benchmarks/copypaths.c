/* The daemon's copy path, every way this kernel offers, measured against each other.
 *
 *   copypaths PUMP RELAY CHUNK MIB FILE [new|overwrite]
 *
 * Three processes, as in an attach: a producer writes MIB MiB in CHUNK-byte
 * writes into a pipe (1 MiB, as the daemon sizes a container's FIFO); the
 * "daemon" (this process) appends each batch it finds in the pipe to the log
 * FILE as a record (8-byte header, payload, 12-byte trailer) and relays new
 * records as 8-byte-header frames to a Unix socket; a reader drains the socket.
 * One thread, one poll loop, non-blocking socket: the daemon's own shape.
 *
 * PUMP (pipe -> log):
 *   readwrite  read (FIONREAD-gathered, up to 1 MiB) + writev(header, payload, trailer)
 *   splice     pwrite(header) + splice(pipe -> file at offset) + pwrite(trailer)
 *   staged     vmsplice(header) + splice(pipe -> staging pipe) + vmsplice(trailer) +
 *              one splice(staging pipe -> file) per record
 * RELAY (log -> socket):
 *   copy       pread 2 MiB + drop trailers in place + write (what varpod did)
 *   sendfile   pread a 64 KiB window for headers; small payloads copied, large ones
 *              sendfile'd from the page cache (header written first)
 *   tee        no log reads: tee(pipe -> a live pipe) before the pump, then header +
 *              splice(live pipe -> socket); needs PUMP=splice (the tee'd bytes stay in
 *              the pipe for it)
 * FILE mode: new (a fresh file, as a new container's log) or overwrite (a file whose
 * pages are already in the page cache: the copy cost alone, without allocating pages).
 *
 * Prints one JSON line: the daemon's user and system CPU seconds, the wall time,
 * the bytes the reader got (checked against what frames of the records make).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HDR 8
#define TRL 12
#define BIG (1 << 20)
#define WINDOW (64 << 10)
#define SENDFILE_MIN (16 << 10)

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void header(unsigned char *h, uint32_t n)
{
    memset(h, 0, HDR);
    h[0] = 1;
    put32(h + 4, n);
}

static void trailer(unsigned char *t, uint32_t n)
{
    memset(t, 0, TRL);
    put32(t + 8, n);
}

/* -- state ------------------------------------------------------------------------------------ */

static int pump_mode, relay_mode;
static int src, logfd, sock, staging[2], live[2];
static long long log_end;       /* committed log size */
static long long cursor;        /* relay: next record */
static char *buf, *rbuf;
static size_t pend_pos, pend_len; /* relay output waiting in rbuf */
static off_t sf_off;
static long long sf_left; /* sendfile: payload still to send */
static unsigned char sf_hdr[HDR];
static size_t sf_hdr_done = HDR;
static long long tee_left;      /* tee: live bytes still to splice to the socket */
static unsigned char tee_hdr[HDR];
static size_t tee_hdr_done = HDR;
static long long sent;

static void pwrite_all(const void *p, size_t n, long long off)
{
    while (n) {
        ssize_t k = pwrite(logfd, p, n, off);
        if (k < 0) die("pwrite");
        p = (const char *)p + k;
        n -= k;
        off += k;
    }
}

/* -- pump: returns 1 at EOF ---------------------------------------------------------------------- */

static int pump_readwrite(void)
{
    for (;;) {
        size_t filled = 0;
        int eof = 0, drained = 0;
        while (filled < BIG) {
            size_t want = BIG - filled;
            if (filled) {
                int avail = 0;
                if (ioctl(src, FIONREAD, &avail) < 0 || avail <= 0) break;
                if ((size_t)avail < want) want = avail;
            }
            ssize_t n = read(src, buf + filled, want);
            if (n < 0) { if (errno == EAGAIN) { drained = 1; break; } die("read"); }
            if (n == 0) { eof = 1; break; }
            filled += n;
        }
        if (filled) {
            unsigned char h[HDR], t[TRL];
            header(h, filled);
            trailer(t, filled);
            struct iovec iov[3] = {{h, HDR}, {buf, filled}, {t, TRL}};
            size_t want = HDR + filled + TRL;
            ssize_t k = pwritev(logfd, iov, 3, log_end);
            if (k != (ssize_t)want) die("pwritev");
            log_end += want;
        }
        if (eof) return 1;
        if (drained) return 0;
    }
}

/* The live pipe for tee must have room for what is tee'd: tee moves at most what fits. */
static long long tee_take(int avail)
{
    if (relay_mode != 'T' || tee_left) return avail;
    ssize_t m = tee(src, live[1], avail, SPLICE_F_NONBLOCK);
    if (m <= 0) return avail; /* live pipe full: the log alone (a real daemon reads it back) */
    tee_left = m;
    header(tee_hdr, m);
    tee_hdr_done = 0;
    return m;
}

static int pump_splice(void)
{
    for (;;) {
        int avail = 0;
        if (ioctl(src, FIONREAD, &avail) < 0) die("FIONREAD");
        if (avail <= 0) {
            char c;
            ssize_t n = read(src, &c, 0);
            (void)n;
            /* 0 bytes and nothing there: EOF if the writer is gone, else wait */
            struct pollfd p = {src, POLLIN, 0};
            poll(&p, 1, 0);
            return (p.revents & POLLHUP) && !(p.revents & POLLIN) ? 1 : 0;
        }
        long long n = tee_take(avail);
        unsigned char h[HDR], t[TRL];
        header(h, n);
        trailer(t, n);
        pwrite_all(h, HDR, log_end);
        off_t off = log_end + HDR; long long left = n;
        while (left) {
            ssize_t k = splice(src, NULL, logfd, &off, left, SPLICE_F_MOVE);
            if (k <= 0) die("splice to file");
            left -= k;
        }
        pwrite_all(t, TRL, off);
        log_end = off + TRL;
        if (relay_mode == 'T') return 0; /* one record per tee: relay it first */
    }
}

static void vmsplice_all(const void *p, size_t n)
{
    struct iovec v = {(void *)p, n};
    while (v.iov_len) {
        ssize_t k = vmsplice(staging[1], &v, 1, 0);
        if (k <= 0) die("vmsplice");
        v.iov_base = (char *)v.iov_base + k;
        v.iov_len -= k;
    }
}

static int pump_staged(void)
{
    for (;;) {
        int avail = 0;
        if (ioctl(src, FIONREAD, &avail) < 0) die("FIONREAD");
        if (avail <= 0) {
            struct pollfd p = {src, POLLIN, 0};
            poll(&p, 1, 0);
            return (p.revents & POLLHUP) && !(p.revents & POLLIN) ? 1 : 0;
        }
        if (avail > BIG - 2 * 4096) avail = BIG - 2 * 4096; /* room in the staging pipe */
        unsigned char h[HDR], t[TRL];
        header(h, avail);
        trailer(t, avail);
        vmsplice_all(h, HDR);
        for (long long left = avail; left;) {
            ssize_t m = splice(src, NULL, staging[1], NULL, left, SPLICE_F_MOVE);
            if (m <= 0) die("splice to staging");
            left -= m;
        }
        vmsplice_all(t, TRL);
        off_t off = log_end; long long left = HDR + avail + TRL;
        while (left) {
            ssize_t k = splice(staging[0], NULL, logfd, &off, left, SPLICE_F_MOVE);
            if (k <= 0) die("splice staging to file");
            left -= k;
        }
        log_end = off;
    }
}

/* -- relay: returns 1 when the socket is full ---------------------------------------------------- */

static int write_pending(void)
{
    while (pend_pos < pend_len) {
        ssize_t k = write(sock, rbuf + pend_pos, pend_len - pend_pos);
        if (k < 0) { if (errno == EAGAIN) return 1; die("write socket"); }
        pend_pos += k;
        sent += k;
    }
    pend_pos = pend_len = 0;
    return 0;
}

static int relay_copy(void)
{
    for (;;) {
        if (write_pending()) return 1;
        if (cursor >= log_end) return 0;
        size_t want = log_end - cursor < 2 * BIG ? (size_t)(log_end - cursor) : 2 * BIG;
        ssize_t got = pread(logfd, rbuf, want, cursor);
        if (got <= 0) die("pread");
        size_t r = 0, w = 0;
        while (r + HDR <= (size_t)got) {
            uint32_t n = get32((unsigned char *)rbuf + r + 4);
            if (r + HDR + n + TRL > (size_t)got) break;
            if (r != w) memmove(rbuf + w, rbuf + r, HDR + n);
            w += HDR + n;
            r += HDR + n + TRL;
        }
        if (r == 0) die("record larger than the relay buffer");
        cursor += r;
        pend_len = w;
    }
}

static int relay_sendfile(void)
{
    for (;;) {
        if (write_pending()) return 1;
        while (sf_hdr_done < HDR) {
            ssize_t k = write(sock, sf_hdr + sf_hdr_done, HDR - sf_hdr_done);
            if (k < 0) { if (errno == EAGAIN) return 1; die("write header"); }
            sf_hdr_done += k;
            sent += k;
        }
        while (sf_left) {
            ssize_t k = sendfile(sock, logfd, &sf_off, sf_left);
            if (k < 0) { if (errno == EAGAIN) return 1; die("sendfile"); }
            sf_left -= k;
            sent += k;
        }
        if (cursor >= log_end) return 0;
        size_t want = log_end - cursor < WINDOW ? (size_t)(log_end - cursor) : WINDOW;
        ssize_t got = pread(logfd, rbuf, want, cursor);
        if (got < HDR) die("pread");
        size_t r = 0, w = 0;
        while (r + HDR <= (size_t)got) {
            uint32_t n = get32((unsigned char *)rbuf + r + 4);
            if (n >= SENDFILE_MIN) {
                if (w == 0) { /* the large one first: header, then the payload from the file */
                    memcpy(sf_hdr, rbuf + r, HDR);
                    sf_hdr_done = 0;
                    sf_off = cursor + r + HDR;
                    sf_left = n;
                    r += HDR + n + TRL;
                }
                break;
            }
            if (r + HDR + n + TRL > (size_t)got) break;
            if (r != w) memmove(rbuf + w, rbuf + r, HDR + n);
            w += HDR + n;
            r += HDR + n + TRL;
        }
        cursor += r;
        pend_len = w;
    }
}

static int relay_tee(void)
{
    while (tee_left) {
        while (tee_hdr_done < HDR) {
            ssize_t k = write(sock, tee_hdr + tee_hdr_done, HDR - tee_hdr_done);
            if (k < 0) { if (errno == EAGAIN) return 1; die("write header"); }
            tee_hdr_done += k;
            sent += k;
        }
        ssize_t k = splice(live[0], NULL, sock, NULL, tee_left, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (k < 0) { if (errno == EAGAIN) return 1; die("splice live to socket"); }
        tee_left -= k;
        sent += k;
    }
    cursor = log_end;
    return 0;
}

/* -- roles ---------------------------------------------------------------------------------------- */

static void produce(int fd, size_t chunk, long long total)
{
    char *p = malloc(chunk);
    memset(p, 'x', chunk);
    while (total > 0) {
        size_t n = total < (long long)chunk ? (size_t)total : chunk;
        ssize_t k = write(fd, p, n);
        if (k < 0) die("producer write");
        total -= k;
    }
    _exit(0);
}

static void drain(int fd)
{
    char *p = malloc(BIG);
    long long got = 0;
    ssize_t n;
    while ((n = read(fd, p, BIG)) > 0) got += n;
    if (write(3, &got, sizeof got) != sizeof got) _exit(3);
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: copypaths readwrite|splice|staged copy|sendfile|tee CHUNK MIB FILE [new|overwrite]\n");
        return 2;
    }
    pump_mode = argv[1][1] == 'e' ? 'R' : argv[1][1] == 'p' ? 'S' : 'G';
    relay_mode = argv[2][0] == 'c' ? 'C' : argv[2][0] == 's' ? 'F' : 'T';
    size_t chunk = strtoul(argv[3], NULL, 0);
    long long total = strtoll(argv[4], NULL, 0) << 20;
    const char *path = argv[5];
    int overwrite = argc > 6 && strcmp(argv[6], "overwrite") == 0;
    if (relay_mode == 'T' && pump_mode != 'S') {
        fprintf(stderr, "tee needs the splice pump\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    buf = malloc(BIG);
    rbuf = malloc(2 * BIG + 4096);
    memset(buf, 0, BIG);
    memset(rbuf, 0, 2 * BIG + 4096);

    int p[2], s[2], res[2];
    if (pipe2(p, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0
        || pipe(res) < 0)
        die("pipes");
    fcntl(p[1], F_SETPIPE_SZ, BIG);
    if (pipe2(staging, O_CLOEXEC) < 0 || pipe2(live, O_CLOEXEC) < 0) die("pipes");
    fcntl(staging[1], F_SETPIPE_SZ, BIG);
    fcntl(live[1], F_SETPIPE_SZ, BIG);
    logfd = open(path, O_RDWR | O_CREAT | (overwrite ? 0 : O_TRUNC) | O_CLOEXEC, 0600);
    if (logfd < 0) die("open log");
    if (overwrite) { /* the pages exist: write the whole size once, untimed */
        long long need = total + (total / 4096 + 16) * (HDR + TRL);
        struct stat st;
        fstat(logfd, &st);
        for (long long off = st.st_size; off < need; off += BIG)
            pwrite_all(buf, BIG, off);
        fsync(logfd);
    }

    pid_t prod = fork();
    if (prod == 0) { close(p[0]); close(s[0]); close(s[1]); produce(p[1], chunk, total); }
    pid_t rd = fork();
    if (rd == 0) { close(p[0]); close(p[1]); close(s[0]); dup2(res[1], 3); drain(s[1]); }
    close(p[1]);
    close(s[1]);
    close(res[1]);
    src = p[0];
    sock = s[0];
    fcntl(src, F_SETFL, O_NONBLOCK);
    fcntl(sock, F_SETFL, O_NONBLOCK);

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now();
    int eof = 0, blocked = 0;
    while (!eof || blocked || cursor < log_end || tee_left || pend_len || sf_left || sf_hdr_done < HDR) {
        struct pollfd fds[2] = {{src, POLLIN, 0}, {sock, POLLOUT, 0}};
        int n = 0;
        if (!eof && !blocked) fds[n++] = fds[0];
        if (blocked) fds[n++] = (struct pollfd){sock, POLLOUT, 0};
        if (n && poll(fds, n, -1) < 0) die("poll");
        if (!eof && !blocked)
            eof = pump_mode == 'R' ? pump_readwrite() : pump_mode == 'S' ? pump_splice() : pump_staged();
        blocked = relay_mode == 'C' ? relay_copy() : relay_mode == 'F' ? relay_sendfile() : relay_tee();
    }
    close(sock);
    double t1 = now();
    getrusage(RUSAGE_SELF, &r1);
    long long got = 0;
    if (read(res[0], &got, sizeof got) != sizeof got) die("reader result");
    waitpid(prod, NULL, 0);
    waitpid(rd, NULL, 0);
    if (!overwrite) unlink(path);
    double user = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6;
    double sys = (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    long long records = (log_end - total) / (HDR + TRL);
    printf("{\"pump\": \"%s\", \"relay\": \"%s\", \"chunk\": %zu, \"bytes\": %lld, \"file\": \"%s\", "
           "\"user_s\": %.3f, \"sys_s\": %.3f, \"wall_s\": %.3f, \"records\": %lld, \"received\": %lld, "
           "\"ok\": %s}\n",
           argv[1], argv[2], chunk, total, overwrite ? "overwrite" : "new", user, sys, t1 - t0, records,
           got, got == total + records * HDR ? "true" : "false");
    return got == total + records * HDR ? 0 : 1;
}
