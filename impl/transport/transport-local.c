/*
 * transport-local.c - localhost migration with page flipping
 * (docs/protocol-qemu-stream.md, page flipping): the byte stream runs on a
 * unix socket; page data runs on a pipe, the transport's page channel
 * (transport.h), whose read end the source passes with SCM_RIGHTS on the
 * stream's marker byte.  The transport knows stream offsets only: which
 * bytes are a page, and which stream byte must wait for it.  What a record
 * looks like is the RAM format's business (impl/ram, impl/stream).
 *
 * Source: pages go into the pipe with vmsplice, without SPLICE_F_GIFT.  The
 * pipe then references the guest's pages instead of copying them, so a
 * guest write after the vmsplice but before the destination's read changes
 * what the destination reads.  That is safe here because of when pages are
 * flipped, not because of copies:
 *   - during pre-copy the guest runs, but every write it makes also sets the
 *     page's dirty bit, so a page that changed after its flip is sent again
 *     in a later pass and the last copy wins, exactly as with the plain
 *     stream (which also queues pages by reference until the flush);
 *   - the final pass runs with the guest stopped, and a completed source
 *     stays stopped (postmigrate), so nothing changes what is still in the
 *     pipe; with return-path on, completion even waits for the destination
 *     to have read everything;
 *   - a failed or cancelled migration only loses the pipe: vmsplice never
 *     changes the source's memory (no GIFT: no page is stolen or moved), so
 *     the source resumes exactly as it was and the destination discards.
 * SPLICE_F_GIFT is never used: a gifted page may be stolen by the consumer,
 * which would let the source's later writes land in, or vanish from, what
 * the destination reads.
 *
 * Stream layout on the source: a page is put into the stream by reference
 * (mig_stream_put_page_ref) after the record that names it, exactly like a
 * PAGE record's data, so the stream's offsets, pending bytes, budget and
 * rate limit count pages as usual; page_put tells this transport which
 * stream bytes are the page and where its record starts (`ahead_of`), and
 * writev sends the other bytes to the socket and diverts the page bytes
 * into the pipe.
 *
 * Ordering: each page is in the pipe before its `ahead_of` byte (the first
 * byte of its record) reaches the socket, so a destination that read a
 * record finds the page (causality through two fds of one kernel), and a
 * destination never waits on the pipe.  The source's backpressure is the
 * pipe: writev stops before a record whose page does not fit yet, and
 * watch(OUT) then watches the pipe.
 *
 * Destination: a run of pages whose records the RAM loader read (it knows
 * where each goes) is read with one readv straight into guest RAM
 * (page_getv, one iovec per run of contiguous RAM): no copy of ours at all,
 * the kernel's copy out of the source's pages is the only one.  A single
 * page (page_get) is a run of one.
 *
 * Costs (harness/bench/link-probe.c measures the same pipe): the pages'
 * memory comes with page_put, so the pipe's share needs no look at the
 * writev's iov, and one pass over it finds the socket's (IovCur); one
 * vmsplice takes as many
 * pages as the pipe has room for, one iovec per run of contiguous guest
 * RAM; the records between flipped pages go out in one sendmsg.  The pipe
 * is 1 MiB, what one vmsplice fills (the destination reads it a quarter at
 * a time, so the source refills while it copies: FLIP_RUN in
 * impl/ram/ram-section.c): with a bigger
 * one the source pins pages while the destination releases pages of the
 * same huge folio, both at once, and both sides slow down several times
 * (each pipe page holds a reference on the folio).
 * A full pipe (a vmsplice that stopped short or took the pipe's whole
 * size) stays full for the writer until the pipe's watch fires or FIONREAD
 * (queued) shows room: no vmsplice is tried only to fail with EAGAIN.
 * Watches change only after a callback of ours returns, and only what
 * changed costs a system call, so the engine's stop-and-rearm on every
 * wake-up costs no epoll_ctl.  Per MiB of pages the source then makes one
 * vmsplice, one sendmsg and one epoll_wait, the destination one recvmsg
 * for the records, one readv and one epoll_wait (and one recvmsg that
 * finds the socket empty): the probe's one vmsplice and one read, each
 * with its sleep, plus the records.  What is left beyond the probe is the
 * source's per-page work (zero check, record, fault point, stream) and the
 * kernel's release of the pipe's page references on the destination,
 * which costs the probe's reader as much.
 *
 * On a CPU shared with the destination the source would preempt it after
 * each of its reads: the source's thread runs SCHED_BATCH while the
 * transport is open (batch_begin).
 *
 * Never blocks: the socket and both pipe ends are non-blocking; vmsplice
 * gets SPLICE_F_NONBLOCK.  No global state (the thread's policy is put
 * back at close).
 */
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport.h"

#define LOCAL_PAGE 4096u
#define LOCAL_PIPE_SIZE (1u << 20) /* wished for; the kernel's limit may cut it (see Costs) */
#define LOCAL_SPLICE_IOV 256 /* memory runs per vmsplice or readv (a run of guest pages is one) */
#define LOCAL_WRITE_IOV 1024

typedef enum LocalOpKind { LOCAL_OP_PAGE, LOCAL_OP_FD } LocalOpKind;

typedef struct LocalOp {
    const uint8_t *mem; /* PAGE: its memory (what writev's iov holds for it) */
    uint64_t at;    /* PAGE: offset of its 4096 data bytes; FD: of the marker byte */
    uint64_t ahead; /* PAGE: the first stream byte that waits for the page; FD: at */
    LocalOpKind kind;
    uint32_t spliced; /* PAGE: bytes already in the pipe */
} LocalOp;

typedef struct LocalTransport {
    MigTransport base;
    MigTransport *sock; /* the unix transport underneath (owned) */
    bool for_send;
    int pipe_r, pipe_w; /* source: both until pipe_r is passed; destination: pipe_r */
    uint64_t pos;       /* source: stream offset of the next byte writev gets */
    LocalOp *q;         /* FIFO of ops not yet done (ring of qcap, a power of two) */
    size_t qhead, qlen, qcap;
    size_t nflipped; /* the first nflipped ops are pages wholly in the pipe */
    size_t pipe_size;          /* source: the pipe's capacity, the most one vmsplice can take */
    bool pipe_full;            /* the last vmsplice stopped or filled the pipe: no vmsplice
                                * until the reader took pages (pipe_ready, local_queued) */
    MigLoopSource *pipe_watch; /* fd watch on pipe_w while pipe_full */
    uint32_t events;           /* what the user watches (cb) */
    uint32_t sock_events;      /* what is watched on the socket now (sock_ready) */
    int watch_err;             /* a watch that failed after a callback, for the next watch() */
    MigTransportCb cb;
    void *opaque;
    MigLocalStats st;
    int busy;
    bool dead;
    bool damaged; /* source: a stream-damage fault fired: pages count as flipped, none is */
    bool batch;   /* source: this transport made the thread SCHED_BATCH (batch_begin) */
} LocalTransport;

static const MigTransportOps local_ops;
static void pipe_ready(int fd, uint32_t events, void *opaque);
static int apply_watches(struct LocalTransport *l);
static void sock_ready(MigTransport *inner, uint32_t events, void *opaque);

static LocalTransport *L(MigTransport *t)
{
    return (LocalTransport *)t;
}

bool mig_transport_is_local(const MigTransport *t)
{
    return t && t->ops == &local_ops;
}

bool mig_transport_can_pass_fds(MigTransport *t)
{
    if (!t)
        return false;
    if (mig_transport_is_local(t))
        return true;
    int fd = mig_transport_get_fd(t), domain = 0;
    socklen_t dl = sizeof(domain);
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 && domain == AF_UNIX;
}

/* ------------------------------------------------------------- queue */

static LocalOp *q_at(LocalTransport *l, size_t i)
{
    return &l->q[(l->qhead + i) & (l->qcap - 1)]; /* qcap is a power of two */
}

static LocalOp *q_head(LocalTransport *l)
{
    return l->qlen ? q_at(l, 0) : NULL;
}

static void q_pop(LocalTransport *l)
{
    if (l->nflipped)
        l->nflipped--; /* the head page left (an FD op never counts) */
    l->qhead = (l->qhead + 1) & (l->qcap - 1);
    l->qlen--;
}

static int q_push(LocalTransport *l, LocalOpKind kind, uint64_t at, uint64_t ahead,
                  const void *mem)
{
    if (!l->for_send || ahead > at)
        return -EINVAL;
    if (l->qlen) {
        const LocalOp *last = q_at(l, l->qlen - 1);
        if (ahead < last->at + (last->kind == LOCAL_OP_PAGE ? LOCAL_PAGE : 1))
            return -EINVAL; /* ops come in stream order and never overlap */
    }
    if (ahead < l->pos)
        return -EINVAL; /* that byte (or the bytes that wait for the page) already went out */
    if (l->qlen == l->qcap) {
        size_t ncap = l->qcap ? l->qcap * 2 : 1024;
        LocalOp *nq = mig_malloc0(ncap * sizeof(*nq));
        for (size_t i = 0; i < l->qlen; i++)
            nq[i] = *q_at(l, i);
        free(l->q);
        l->q = nq;
        l->qcap = ncap;
        l->qhead = 0;
    }
    LocalOp *op = &l->q[(l->qhead + l->qlen) & (l->qcap - 1)];
    op->mem = mem;
    op->at = at;
    op->ahead = ahead;
    op->kind = kind;
    op->spliced = 0;
    l->qlen++;
    return 0;
}

static int local_page_channel_open(MigTransport *t, uint64_t at)
{
    if (L(t)->pipe_r < 0)
        return -EINVAL;
    return q_push(L(t), LOCAL_OP_FD, at, at, NULL);
}

static int local_page_put(MigTransport *t, uint64_t at, const void *page, size_t len,
                          uint64_t ahead_of)
{
    if (len != LOCAL_PAGE || !page)
        return -EINVAL;
    return q_push(L(t), LOCAL_OP_PAGE, at, ahead_of, page);
}

/* ------------------------------------------------------------- source */

/* A cursor over one writev's iov, which holds stream offsets [base, end):
 * it only moves forward, so splitting a writev into pipe and socket parts
 * costs one pass over its iov, whatever its length. */
typedef struct IovCur {
    const struct iovec *iov;
    int cnt, i;
    size_t off;  /* into iov[i] */
    uint64_t at; /* the stream offset the cursor is at */
} IovCur;

static void cur_init(IovCur *c, const struct iovec *iov, int cnt, uint64_t base)
{
    *c = (IovCur){.iov = iov, .cnt = cnt, .at = base};
}

static void cur_seek(IovCur *c, uint64_t to)
{
    while (c->at < to && c->i < c->cnt) {
        size_t step = (size_t)MIG_MIN((uint64_t)(c->iov[c->i].iov_len - c->off), to - c->at);
        c->off += step;
        c->at += step;
        if (c->off == c->iov[c->i].iov_len) {
            c->i++;
            c->off = 0;
        }
    }
}

/* Append the bytes [c->at, to) to out[0..*n) (at most max entries), one
 * entry per piece of memory: a piece that continues the last entry's
 * memory (the next page of a run of guest RAM) extends it.  Returns the
 * stream offset reached (< to when out filled up). */
static uint64_t cur_take(IovCur *c, uint64_t to, struct iovec *out, int *n, int max)
{
    while (c->at < to && c->i < c->cnt) {
        uint8_t *p = (uint8_t *)c->iov[c->i].iov_base + c->off;
        size_t take = (size_t)MIG_MIN((uint64_t)(c->iov[c->i].iov_len - c->off), to - c->at);
        if (*n && (uint8_t *)out[*n - 1].iov_base + out[*n - 1].iov_len == p) {
            out[*n - 1].iov_len += take;
        } else {
            if (*n == max)
                break;
            out[*n].iov_base = p;
            out[(*n)++].iov_len = take;
        }
        cur_seek(c, c->at + take);
    }
    return c->at;
}

/* Flip into the pipe the page bytes present in this writev (stream offsets
 * up to `end`), from the first page not wholly in the pipe on, as far as
 * the pipe takes them, in one vmsplice: a page always enters the pipe
 * before its record enters the socket, and pages enter it in stream order.
 * Each page's memory is the op's (page_put), so no walk over the iov.
 * 0 or a negative errno; a full pipe sets l->pipe_full. */
static int splice_ahead(LocalTransport *l, uint64_t end)
{
    struct iovec sv[LOCAL_SPLICE_IOV];
    size_t want = 0, first = l->nflipped;
    int n = 0;
    if (l->pipe_full)
        return 0; /* full since the last vmsplice: wait for the reader (pipe_ready) */
    for (size_t i = first; i < l->qlen && want < l->pipe_size; i++) {
        const LocalOp *op = q_at(l, i);
        if (op->kind != LOCAL_OP_PAGE)
            break;
        uint64_t from = op->at + op->spliced, to = MIG_MIN(op->at + LOCAL_PAGE, end);
        if (from >= to)
            break;
        const uint8_t *p = op->mem + op->spliced;
        size_t take = (size_t)(to - from);
        if (n && (const uint8_t *)sv[n - 1].iov_base + sv[n - 1].iov_len == p) {
            sv[n - 1].iov_len += take; /* the next page of a run of guest RAM */
        } else {
            if (n == LOCAL_SPLICE_IOV)
                break;
            sv[n].iov_base = (void *)p;
            sv[n++].iov_len = take;
        }
        want += take;
        if (to < op->at + LOCAL_PAGE)
            break; /* the rest of this page is in a later writev */
    }
    if (n == 0)
        return 0;
    if (!l->damaged && l->pipe_w >= 0) {
        /* Stream damage (faults.h): half a page into the pipe, then the
         * pipe closes (pipe-break) or takes nothing more (splice-short),
         * and the source goes on as if every page had gone in whole: its
         * records reach the destination, which must fail on the page. */
        const MigFaultGate *gate = mig_transport_fault_gate(&l->base);
        bool brk = mig_fault_fire_gated(gate, MIG_FAULT_TRANSPORT_PIPE_BREAK) != 0;
        if (brk || mig_fault_fire_gated(gate, MIG_FAULT_TRANSPORT_SPLICE_SHORT)) {
            struct iovec half = {sv[0].iov_base, MIG_MIN(sv[0].iov_len, LOCAL_PAGE / 2)};
            if (vmsplice(l->pipe_w, &half, 1, SPLICE_F_NONBLOCK) < 0)
                return -errno;
            if (brk) {
                close(l->pipe_w);
                l->pipe_w = -1;
            }
            l->damaged = true;
        }
    }
    ssize_t got = (ssize_t)want;
    while (!l->damaged && (l->st.splices++,
                           got = vmsplice(l->pipe_w, sv, (unsigned long)n, SPLICE_F_NONBLOCK)) < 0 &&
           errno == EINTR)
        ;
    if (got < 0) {
        if (errno == EAGAIN) {
            l->pipe_full = true;
            return 0;
        }
        if (errno == EPIPE)
            return -EPIPE; /* the destination closed its end: the stream fails */
        return -errno;
    }
    if (!l->damaged)
        l->st.pipe_bytes += (uint64_t)got;
    size_t left = (size_t)got;
    for (size_t i = first; i < l->qlen && left; i++) {
        LocalOp *op = q_at(l, i);
        size_t take = MIG_MIN(LOCAL_PAGE - op->spliced, left);
        op->spliced += (uint32_t)take;
        left -= take;
        if (op->spliced == LOCAL_PAGE) {
            l->st.pages++;
            l->nflipped++;
        }
    }
    /* Short, or the pipe's whole size (it cannot hold more): full for now,
     * and the next try waits for the reader instead of failing EAGAIN. */
    if (!l->damaged && ((size_t)got < want || (size_t)got >= l->pipe_size))
        l->pipe_full = true;
    return 0;
}

#define LOCAL_SEGS 1024 /* socket ranges (records between flipped pages) in one writev */

/* One writev's worth of progress: the socket bytes from l->pos up to the
 * first page not yet wholly in the pipe (or the fd's byte), gathered into
 * one sendmsg, the records of pages already flipped included, so a run of
 * flipped pages costs one socket write, not one per record (records that
 * sit side by side in the stream's buffer become one iovec).  The page
 * bytes between those ranges count as written once their record is out.
 * Returns the stream bytes consumed (0: nothing can move now) or -errno. */
static ssize_t gather_write(LocalTransport *l, IovCur *sc, uint64_t end)
{
    uint64_t from[LOCAL_SEGS], to[LOCAL_SEGS];
    struct iovec part[LOCAL_WRITE_IOV];
    int nseg = 0, np = 0;
    cur_seek(sc, l->pos); /* l->pos only grows */
    IovCur c = *sc;
    for (size_t i = 0; c.at < end && nseg < LOCAL_SEGS; i++) {
        const LocalOp *op = i < l->qlen ? q_at(l, i) : NULL;
        /* The socket stops at the fd's byte, at the bytes that wait for a
         * page not wholly in the pipe yet, or (flipped page) where its data
         * starts. */
        bool blocked = op && (op->kind == LOCAL_OP_FD || op->spliced < LOCAL_PAGE);
        uint64_t stop = end;
        if (op && op->kind == LOCAL_OP_PAGE)
            stop = blocked ? op->ahead : op->at;
        else if (op)
            stop = op->at;
        stop = MIG_MIN(stop, end);
        if (stop > c.at) {
            uint64_t s0 = c.at, got = cur_take(&c, stop, part, &np, LOCAL_WRITE_IOV);
            if (got > s0) {
                from[nseg] = s0;
                to[nseg++] = got;
            }
            if (got < stop)
                break; /* part[] is full */
        }
        if (!op || blocked || op->at >= end)
            break;
        cur_seek(&c, op->at + LOCAL_PAGE); /* the page itself is in the pipe */
    }
    if (nseg == 0)
        return 0;
    ssize_t n = mig_transport_writev(l->sock, part, np);
    if (n < 0)
        return n;
    l->st.socket_bytes += (uint64_t)n;
    /* Walk the ranges again: socket bytes written, and the flipped page
     * after each range whose last byte (its record's) went out. */
    uint64_t left = (uint64_t)n, start = l->pos;
    for (int k = 0; k < nseg; k++) {
        uint64_t take = MIG_MIN(to[k] - from[k], left);
        l->pos += take;
        left -= take;
        if (l->pos < to[k])
            break;
        const LocalOp *op = q_head(l);
        if (op && op->kind == LOCAL_OP_PAGE && op->spliced == LOCAL_PAGE && l->pos == op->at) {
            l->pos = MIG_MIN(op->at + LOCAL_PAGE, end);
            if (l->pos == op->at + LOCAL_PAGE)
                q_pop(l);
        }
    }
    return (ssize_t)(l->pos - start);
}

static ssize_t source_writev(LocalTransport *l, const struct iovec *iov, int iovcnt);

static ssize_t local_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    LocalTransport *l = L(t);

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_WRITE);
    if (!l->for_send)
        return mig_transport_writev(l->sock, iov, iovcnt); /* the return path */
    ssize_t n = source_writev(l, iov, iovcnt);
    /* A pipe that filled moves a watch for OUT from the socket to the pipe
     * (inside a callback of ours, dispatched() does it). */
    if (l->cb && !l->busy && (l->events & MIG_LOOP_OUT) && l->pipe_full && !l->pipe_watch) {
        int r = apply_watches(l);
        if (r < 0 && !l->watch_err)
            l->watch_err = r;
    }
    return n;
}

/* The source's writev: pages into the pipe, the rest into the socket. */
static ssize_t source_writev(LocalTransport *l, const struct iovec *iov, int iovcnt)
{
    MigTransport *t = &l->base;
    size_t total = 0, done = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    IovCur sc; /* where the socket's share was last found */
    cur_init(&sc, iov, iovcnt, l->pos);
    while (done < total) {
        uint64_t base = l->pos - done, end = base + total;
        LocalOp *op = q_head(l);
        if (op && op->kind == LOCAL_OP_PAGE && l->pos >= op->at) {
            /* Inside a page whose record is out (an earlier writev ended
             * in it): those bytes are in the pipe, or go there now. */
            if (op->spliced < LOCAL_PAGE) {
                int r = splice_ahead(l, end);
                if (r < 0)
                    return done ? (ssize_t)done : r;
            }
            uint64_t upto = MIG_MIN(op->at + op->spliced, end);
            if (upto <= l->pos)
                break;
            done += (size_t)(upto - l->pos);
            t->bytes_written += upto - l->pos;
            l->pos = upto;
            if (l->pos == op->at + LOCAL_PAGE)
                q_pop(l);
            continue;
        }
        if (op && op->kind == LOCAL_OP_FD && l->pos == op->at) {
            /* The marker byte that carries the pipe's read end. */
            int ret = mig_transport_send_fd(l->sock, l->pipe_r);
            if (ret < 0)
                return done ? (ssize_t)done : ret;
            close(l->pipe_r); /* the destination holds it now */
            l->pipe_r = -1;
            q_pop(l);
            l->st.socket_bytes++;
            l->pos++;
            done++;
            t->bytes_written++;
            continue;
        }
        /* Pages first (each before its record), then the socket's share. */
        int r = splice_ahead(l, end);
        if (r < 0)
            return done ? (ssize_t)done : r;
        ssize_t n = gather_write(l, &sc, end);
        if (n < 0)
            return done ? (ssize_t)done : n;
        if (n == 0)
            break; /* the pipe is full, or the socket is */
        done += (size_t)n;
        t->bytes_written += (uint64_t)n;
    }
    return done ? (ssize_t)done : -EAGAIN;
}

static ssize_t local_write(MigTransport *t, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return local_writev(t, &iov, 1);
}

/* ------------------------------------------------------------- destination */

static ssize_t local_read(MigTransport *t, void *buf, size_t len)
{
    LocalTransport *l = L(t);
    ssize_t n = mig_transport_read(l->sock, buf, len);
    if (n > 0) {
        t->bytes_read += (uint64_t)n;
        l->st.socket_bytes += (uint64_t)n;
    }
    return n;
}

static int local_page_channel_accept(MigTransport *t, MigErr **errp)
{
    if (L(t)->for_send)
        return mig_err_set(errp, -EINVAL, "page-flip: not a receiving local transport");
    LocalTransport *l = L(t);
    if (l->pipe_r >= 0)
        return mig_err_set(errp, -EEXIST, "page-flip: a second pipe fd was offered");
    int fd = mig_transport_recv_fd(l->sock);
    if (fd < 0)
        return mig_err_set(errp, -EPROTO,
                           "page-flip: the pipe marker byte came without a file descriptor (%s)",
                           mig_errno_name(fd));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        close(fd);
        return mig_err_set(errp, -EPROTO, "page-flip: the fd passed by the source is not a pipe");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int err = errno;
        close(fd);
        return mig_err_set(errp, -err, "page-flip: cannot make the pipe non-blocking: %s",
                           strerror(err));
    }
    l->pipe_r = fd;
    return 0;
}

/* An fd passed on the socket for someone else (x-ram-share's RAM fd): the
 * socket's read offsets are the stream's. */
static int local_claim_fd(MigTransport *t, uint64_t at)
{
    return mig_transport_claim_fd(L(t)->sock, at);
}

/* A run of pages straight from the pipe into their places (guest RAM):
 * readv, one iovec per run of contiguous memory, no copy of ours.
 * The source put every page into the pipe before its record, so all of
 * them are there: a pipe that ends (-EPIPE) or runs dry (-EPROTO) inside
 * the run is a broken source, and the error says after how many bytes. */
static int local_page_getv(MigTransport *t, const struct iovec *iov, int n, MigErr **errp)
{
    LocalTransport *l = L(t);
    if (l->pipe_r < 0)
        return mig_err_set(errp, -EPROTO, "page-flip: no pipe to read a page from");
    int fault = mig_fault_fire_gated(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_READ);
    if (fault)
        return mig_err_set(errp, fault, "page-flip: pipe read failed (injected fault)");
    struct iovec v[LOCAL_SPLICE_IOV];
    size_t total = 0, done = 0;
    int nv = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len != LOCAL_PAGE)
            return mig_err_set(errp, -EINVAL, "page-flip: a page is %u bytes, not %zu",
                               LOCAL_PAGE, iov[i].iov_len);
        total += LOCAL_PAGE;
    }
    while (done < total) {
        /* the iovecs from `done` on */
        size_t skip = done;
        nv = 0;
        for (int k = 0; k < n; k++) {
            if (skip >= LOCAL_PAGE) {
                skip -= LOCAL_PAGE;
                continue;
            }
            uint8_t *p = (uint8_t *)iov[k].iov_base + skip;
            if (nv && (uint8_t *)v[nv - 1].iov_base + v[nv - 1].iov_len == p) {
                v[nv - 1].iov_len += LOCAL_PAGE - skip; /* the next page of a run of RAM */
            } else {
                if (nv == LOCAL_SPLICE_IOV)
                    break;
                v[nv].iov_base = p;
                v[nv++].iov_len = LOCAL_PAGE - skip;
            }
            skip = 0;
        }
        ssize_t r = readv(l->pipe_r, v, nv);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        size_t page = done / LOCAL_PAGE, at = done % LOCAL_PAGE;
        if (r == 0)
            return mig_err_set(errp, -EPIPE,
                               "page-flip: the pipe closed after %zu of %u bytes of page %zu of "
                               "a run of %d",
                               at, LOCAL_PAGE, page + 1, n);
        if (errno == EAGAIN)
            return mig_err_set(errp, -EPROTO,
                               "page-flip: the pipe holds %zu of the %u bytes of page %zu of a "
                               "run of %d whose records arrived (the source sends each page "
                               "first)",
                               at, LOCAL_PAGE, page + 1, n);
        return mig_err_set(errp, -errno, "page-flip: pipe read failed: %s", strerror(errno));
    }
    l->st.pipe_bytes += total;
    l->st.pages += (uint64_t)n;
    t->bytes_read += total;
    return 0;
}

static int local_page_get(MigTransport *t, void *dst, size_t len, MigErr **errp)
{
    struct iovec v = {.iov_base = dst, .iov_len = len};
    return local_page_getv(t, &v, 1, errp);
}

void mig_transport_local_stats(const MigTransport *t, MigLocalStats *out)
{
    memset(out, 0, sizeof(*out));
    if (mig_transport_is_local(t))
        *out = L((MigTransport *)t)->st;
}

/* ------------------------------------------------------------- readiness */

/* Put the watches the user asked for (l->cb, l->events) on the socket and
 * the pipe: OUT on the pipe while it is full (the socket then only gets
 * IN), the rest on the socket.  Only what changed costs a system call. */
static int apply_watches(LocalTransport *l)
{
    bool want_pipe = l->cb && (l->events & MIG_LOOP_OUT) && l->pipe_full && l->pipe_w >= 0;
    uint32_t want_sock = l->cb ? l->events & ~(want_pipe ? (uint32_t)MIG_LOOP_OUT : 0u) : 0u;
    if (!want_pipe && l->pipe_watch) {
        mig_loop_remove(l->base.loop, l->pipe_watch);
        l->pipe_watch = NULL;
    } else if (want_pipe && !l->pipe_watch) {
        l->pipe_watch = mig_loop_fd_watch(l->base.loop, l->pipe_w, MIG_LOOP_OUT, pipe_ready, l);
        if (!l->pipe_watch)
            return l->base.loop->ops->fd_watch ? -errno : -ENOTSUP;
    }
    if (want_sock == l->sock_events)
        return 0;
    int r = mig_transport_watch(l->sock, want_sock, want_sock ? sock_ready : NULL, l);
    if (r == 0)
        l->sock_events = want_sock;
    return r;
}

/* After a callback: the watches it left (a callback that stops its watch
 * and asks for it again, as the engine does on every wake-up, costs
 * nothing), or free a transport closed meanwhile. */
static void dispatched(LocalTransport *l)
{
    if (--l->busy)
        return;
    if (l->dead) {
        free(l);
        return;
    }
    int r = apply_watches(l);
    if (r < 0 && !l->watch_err)
        l->watch_err = r; /* the next watch() reports it */
}

static void sock_ready(MigTransport *inner, uint32_t events, void *opaque)
{
    LocalTransport *l = opaque;
    l->busy++;
    if (l->cb)
        l->cb(&l->base, events, l->opaque);
    dispatched(l);
}

static void pipe_ready(int fd, uint32_t events, void *opaque)
{
    LocalTransport *l = opaque;
    l->pipe_full = false; /* the reader took pages: there is room */
    l->busy++;
    if (l->cb)
        l->cb(&l->base, MIG_LOOP_OUT, l->opaque);
    dispatched(l);
}

static int local_watch(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque)
{
    LocalTransport *l = L(t);
    events &= MIG_LOOP_IN | MIG_LOOP_OUT;
    if (!events || !cb) {
        cb = NULL;
        events = 0;
    }
    l->cb = cb;
    l->opaque = opaque;
    l->events = events;
    if (l->watch_err) {
        int r = l->watch_err;
        l->watch_err = 0;
        return r;
    }
    if (l->busy)
        return 0; /* inside our callback: dispatched() applies what is left */
    return apply_watches(l);
}

/* Bytes accepted but not read by the destination yet: the socket's queue
 * and the pages waiting in the pipe. */
static uint64_t local_queued(MigTransport *t)
{
    LocalTransport *l = L(t);
    int inpipe = 0;
    uint64_t q = mig_transport_queued(l->sock);
    if (l->for_send && l->pipe_w >= 0 && ioctl(l->pipe_w, FIONREAD, &inpipe) == 0) {
        if ((size_t)inpipe < l->pipe_size)
            l->pipe_full = false; /* the reader took some: worth another vmsplice */
        q += (uint64_t)(inpipe > 0 ? inpipe : 0);
    }
    return q;
}

static int local_shutdown_write(MigTransport *t)
{
    return mig_transport_shutdown_write(L(t)->sock);
}

/* The source's thread runs SCHED_BATCH while it feeds the pipe, if it ran
 * SCHED_OTHER (a real-time, idle or batch policy someone chose is left
 * alone; nice is kept either way).  Why: every read of the destination
 * frees part of a full pipe and wakes the source.  When the scheduler has
 * put both on one CPU, the woken source preempted the destination after
 * each quarter-pipe read (FLIP_RUN in impl/ram/ram-section.c), and the
 * two switched 4000 times a GiB.  A SCHED_BATCH task does not preempt on
 * wake-up: the destination drains the pipe, then the source refills it
 * whole, 1000 switches a GiB.  Measured with both ends pinned to one CPU
 * (1 GiB of random RAM, source paused, quiet machine, 4 runs each): 159-165
 * ms and 0.060-0.062 source CPU s/GiB before, 124-129 ms and 0.028-0.030
 * after; on two CPUs, and under the scheduler's own placement, no change
 * (96-108 ms either way).  The unix transport's socket wakes its writer
 * far less often (170 switches a GiB on one CPU): nothing to gain there. */
static void batch_begin(LocalTransport *l)
{
    struct sched_param sp = {0};
    if ((sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) == SCHED_OTHER)
        l->batch = sched_setscheduler(0, SCHED_BATCH, &sp) == 0;
}

/* Back to SCHED_OTHER, unless someone changed the policy meanwhile. */
static void batch_end(LocalTransport *l)
{
    struct sched_param sp = {0};
    if (l->batch && (sched_getscheduler(0) & ~SCHED_RESET_ON_FORK) == SCHED_BATCH)
        sched_setscheduler(0, SCHED_OTHER, &sp);
    l->batch = false;
}

static void local_close(MigTransport *t)
{
    LocalTransport *l = L(t);
    batch_end(l);
    mig_loop_remove(t->loop, l->pipe_watch);
    l->pipe_watch = NULL;
    l->cb = NULL;
    mig_transport_close(l->sock);
    l->sock = NULL;
    if (l->pipe_r >= 0)
        close(l->pipe_r);
    if (l->pipe_w >= 0)
        close(l->pipe_w);
    l->pipe_r = l->pipe_w = -1;
    free(l->q);
    l->q = NULL;
    l->qlen = l->qcap = 0;
    if (l->busy)
        l->dead = true;
    else
        free(l);
}

static const MigTransportOps local_ops = {
    .kind = "local",
    .read = local_read,
    .write = local_write,
    .writev = local_writev,
    .watch = local_watch,
    .shutdown_write = local_shutdown_write,
    .close = local_close,
    .queued = local_queued,
    .page_channel_open = local_page_channel_open,
    .page_put = local_page_put,
    .page_channel_accept = local_page_channel_accept,
    .page_get = local_page_get,
    .page_getv = local_page_getv,
    .claim_fd = local_claim_fd,
};

MigTransport *mig_transport_local_new(MigTransport *sock, bool for_send, MigErr **errp)
{
    if (!sock) {
        mig_err_set(errp, -EINVAL, "page-flip: no socket to run over");
        return NULL;
    }
    if (!mig_transport_can_pass_fds(sock) || mig_transport_is_local(sock)) {
        mig_err_set(errp, -ENOTSUP,
                    "capability 'x-page-flip' needs a unix socket that can pass fds; a '%s' "
                    "transport cannot",
                    sock->ops->kind);
        mig_transport_close(sock);
        return NULL;
    }
    LocalTransport *l = mig_malloc0(sizeof(*l));
    l->base.ops = &local_ops;
    l->base.loop = sock->loop;
    l->base.duplex = mig_transport_is_duplex(sock);
    l->sock = sock;
    l->for_send = for_send;
    l->pipe_r = l->pipe_w = -1;
    if (for_send) {
        int p[2];
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
            int err = errno;
            mig_err_set(errp, -err, "page-flip: cannot create the page pipe: %s", strerror(err));
            mig_transport_close(sock);
            free(l);
            return NULL;
        }
        l->pipe_r = p[0];
        l->pipe_w = p[1];
        /* A bigger pipe means fewer waits; the kernel's limit may refuse. */
        for (int sz = (int)LOCAL_PIPE_SIZE; sz >= 65536; sz /= 2)
            if (fcntl(p[1], F_SETPIPE_SZ, sz) >= 0)
                break;
        int got = fcntl(p[1], F_GETPIPE_SZ);
        l->pipe_size = got > 0 ? (size_t)got : 65536;
        batch_begin(l);
    }
    return &l->base;
}
