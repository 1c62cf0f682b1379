/* varpod stream I/O: the hot copy loops, called from Python through cffi.
 * Every function returns >= 0 on success or -errno; none holds Python state,
 * so cffi releases the GIL around each call. */
#ifndef VARPOD_STREAMIO_H
#define VARPOD_STREAMIO_H
#include <stddef.h>
#include <stdint.h>

/* Output formats of vp_relay, input formats of vp_demux and vp_scan. */
#define VP_RECORDS 0 /* log records as stored: header, payload, trailer */
#define VP_FRAMES 1  /* wire frames: header, payload */
#define VP_RAW 2     /* payloads only (TTY streams) */

/* Move what src has into log_fd as records (8-byte frame header, payload, 12-byte
 * time/length trailer), written at *offset, which is advanced: whatever is in src
 * when a record starts (FIONREAD), up to bufsize, becomes that record. Until
 * EAGAIN, EOF or `budget` bytes appended. With a staging pipe (stage_r/stage_w,
 * empty, stage_r non-blocking; -1: none) and src a pipe, payloads are spliced:
 * header, payload and trailer gather in the staging pipe and go to the log in one
 * splice, and no byte passes through user space. Otherwise reads into buf.
 * Returns bytes appended; *eof is set to 1 when src hit EOF. On an error the
 * record under way may be partly written past *offset: the next one overwrites it. */
long long vp_pump(int src, int log_fd, long long *offset, int stream, long long budget,
                  char *buf, size_t bufsize, int stage_r, int stage_w, int *eof);

/* One log follower's position, and the output it owes its destination: converted
 * bytes not yet written (pending[head, tail), malloc'd here and freed once written,
 * so a follower that waits holds at most one window's worth), then a payload to
 * send from the log file itself (file_left bytes at file_pos), then owed[owed_pos,
 * owed_len) (a trailer that goes after that payload). Zero it to start; release it
 * with vp_cursor_release. */
struct vp_cursor {
    long long offset;    /* log offset of the next record to convert */
    long long file_pos;
    long long file_left;
    char *pending;
    size_t head;
    size_t tail;
    int owed_pos;
    int owed_len;
    unsigned char owed[12];
    int past_until;      /* a record later than `until` was met; nothing more to send */
    int blocked;         /* the last vp_relay stopped on EAGAIN from dst */
};

/* A record whose payload is at least this large is not copied through user space:
 * its payload goes from the log's page cache to dst with sendfile. */
#define VP_SENDFILE_MIN (16u << 10)

/* Write what the cursor owes dst, then convert the records of log_fd in
 * [c->offset, end) selected by stream mask (bit 1 << stream) and time window
 * [since, until] into `mode`, and write them, until end, the until cut-off or
 * EAGAIN on dst. Small records are read `window` bytes at a time into `scratch`
 * (the caller's, shared by every cursor of the thread), converted in place and
 * written; with merge (RECORDS and FRAMES modes) consecutive selected ones of one
 * stream within one window go out as one entry, carrying the first one's time. A
 * record of VP_SENDFILE_MIN payload bytes or more, or larger than the window, goes
 * out alone: its header from memory, its payload by sendfile from the log.
 * Returns bytes written to dst; -EBADMSG for a corrupt record, -ENOMEM. */
long long vp_relay(struct vp_cursor *c, char *scratch, size_t window, int log_fd,
                   long long end, int dst, int mode, unsigned mask,
                   uint64_t since, uint64_t until, int merge);

/* Free what the cursor holds (its pending output); it may be used again. */
void vp_cursor_release(struct vp_cursor *c);

/* Write the payloads of the complete records/frames (fmt) at the start of buf
 * to out1 (stream 1) or out2 (stream 2); fd -1 or stream 0 discards. Stops
 * before a control entry (stream 3), an incomplete tail or a corrupt entry;
 * *consumed is where, and *control is 1 if a whole control entry starts there.
 * Returns 0, or -EBADMSG for a corrupt entry (its offset is *consumed). */
int vp_demux(const char *buf, size_t len, int fmt, int out1, int out2,
             size_t *consumed, int *control);

/* A reader of one record/frame stream (a client's end of Logs or attach),
 * between calls of vp_demux_from: where it is inside the current entry. Its
 * buffers live with the caller: `ahead`, where src is read ahead, holds
 * ahead[ahead_pos, ahead_len) read and not yet consumed; `buf` receives control
 * payloads. Set up with vp_demuxer_init. */
struct vp_demuxer {
    long long offset;     /* stream bytes consumed: the caller's bytes, then src */
    long long entry;      /* stream offset of the current entry (error messages) */
    size_t ahead_pos;
    size_t ahead_len;
    size_t need;          /* with VP_NEED_BUFFER: the control payload needs this much buf */
    uint32_t length;      /* payload length of the current entry, once its header is in */
    uint32_t done;        /* bytes of the current part (header, payload, trailer) consumed */
    int fmt;
    int part;
    int out_fd[2];        /* the fds out_pipe describes (stream 1, stream 2); -1: none yet */
    int out_pipe[2];      /* 1: that fd is a pipe, so payloads are spliced into it */
    unsigned char header[8];
    unsigned char trailer[12];
};

/* What vp_demux_from stopped at. */
#define VP_CONTROL 0      /* a whole control entry; its payload is buf[0, d->length) */
#define VP_EOF 1          /* src reached EOF (perhaps inside an entry) */
#define VP_INTERRUPTED 2  /* a signal interrupted a blocking call, or `budget` was spent */
#define VP_NEED_BUFFER 3  /* a control payload larger than bufsize: d->need; call again */

void vp_demuxer_init(struct vp_demuxer *d, int fmt);

/* Consume the caller's bytes in[0, inlen), then read the non-blocking fd src
 * (ahead into `ahead`, or spliced; waiting in poll when it is empty), and write
 * each payload to blocking out1 (stream 1) / out2 (stream 2), fd -1 or stream 0
 * discarding, until a control entry, EOF, a signal (EINTR, or a byte on
 * wake_fd, the signal wakeup pipe that poll also watches; -1: none) or `budget`
 * stream bytes consumed. *used says how much of `in` was consumed; what was
 * read ahead and not consumed stays in the demuxer for the next call.
 * Returns a VP_* status, -EBADMSG for a corrupt entry (at d->entry; it stays
 * corrupt), or -errno. */
int vp_demux_from(struct vp_demuxer *d, char *buf, size_t bufsize, char *ahead, size_t aheadsize,
                  const char *in, size_t inlen, size_t *used,
                  int src, int out1, int out2, long long budget, int wake_fd);

/* The complete records/frames of buf[start, len) as (stream, payload offset
 * from start, payload length) triples in out, at most max of them. *next is
 * where the walk stopped (on -EBADMSG: the corrupt entry). Returns how many. */
long long vp_scan(const char *buf, size_t len, size_t start, int fmt,
                  uint32_t *out, size_t max, size_t *next);

#endif
