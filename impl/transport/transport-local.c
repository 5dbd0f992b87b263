/*
 * transport-local.c - localhost migration with page flipping (seed 002): the
 * stream runs on a unix socket and carries page addresses only (8-byte HOOK
 * records); page data runs on a pipe whose read end the source passes with
 * SCM_RIGHTS right after the first HOOK record (see transport.h).
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
 * Ordering: each page is in the pipe before the first byte of its record
 * reaches the socket, so a destination that read a record finds the page
 * (causality through two fds of one kernel), and a destination never waits
 * on the pipe.  The source's backpressure is the pipe: writev stops before a
 * record whose page does not fit yet, and watch(OUT) then watches the pipe.
 *
 * Never blocks: the socket and both pipe ends are non-blocking; vmsplice
 * gets SPLICE_F_NONBLOCK.  No global state.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport.h"

#define LOCAL_PAGE 4096u
#define LOCAL_PIPE_SIZE (4u << 20) /* wished for; the kernel's limit may cut it */
#define LOCAL_SPLICE_IOV 64
#define LOCAL_WRITE_IOV 256

typedef enum LocalOpKind { LOCAL_OP_PAGE, LOCAL_OP_FD } LocalOpKind;

typedef struct LocalOp {
    uint64_t at; /* stream offset the op must precede (PAGE) or ride on (FD) */
    LocalOpKind kind;
    const uint8_t *page;
} LocalOp;

typedef struct LocalTransport {
    MigTransport base;
    MigTransport *sock; /* the unix transport underneath (owned) */
    bool for_send;
    int pipe_r, pipe_w; /* source: both until pipe_r is passed; destination: pipe_r */
    uint64_t sent;      /* socket bytes accepted so far (== stream offset) */
    size_t page_done;   /* bytes of the head PAGE op already in the pipe */
    LocalOp *q;         /* FIFO of ops not yet done (ring) */
    size_t qhead, qlen, qcap;
    bool pipe_full;            /* the last vmsplice stopped: OUT waits on the pipe */
    MigLoopSource *pipe_watch; /* fd watch on pipe_w while pipe_full */
    uint32_t events;
    MigTransportCb cb;
    void *opaque;
    MigLocalStats st;
    int busy;
    bool dead;
} LocalTransport;

static const MigTransportOps local_ops;

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

static LocalOp *q_head(LocalTransport *l)
{
    return l->qlen ? &l->q[l->qhead] : NULL;
}

static void q_pop(LocalTransport *l)
{
    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
    l->page_done = 0;
}

static LocalOp *q_at(LocalTransport *l, size_t i)
{
    return &l->q[(l->qhead + i) % l->qcap];
}

static int q_push(LocalTransport *l, LocalOpKind kind, uint64_t at, const void *page)
{
    if (!l->for_send)
        return -EINVAL;
    if (l->qlen && q_at(l, l->qlen - 1)->at >= at)
        return -EINVAL; /* ops come in stream order, one per record */
    if (at < l->sent)
        return -EINVAL; /* that byte already went out */
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
    LocalOp *op = &l->q[(l->qhead + l->qlen) % l->qcap];
    op->at = at;
    op->kind = kind;
    op->page = page;
    l->qlen++;
    return 0;
}

int mig_transport_local_queue_fd(MigTransport *t, uint64_t at)
{
    if (!mig_transport_is_local(t) || L(t)->pipe_r < 0)
        return -EINVAL;
    return q_push(L(t), LOCAL_OP_FD, at, NULL);
}

int mig_transport_local_queue_page(MigTransport *t, uint64_t at, const void *page)
{
    if (!mig_transport_is_local(t) || !page)
        return -EINVAL;
    return q_push(L(t), LOCAL_OP_PAGE, at, page);
}

/* ------------------------------------------------------------- source */

/* Flip the pages whose records start before stream offset `bound` into the
 * pipe, as far as it takes them.  0 (done or the pipe is full: see
 * l->pipe_full) or a negative errno. */
static int splice_upto(LocalTransport *l, uint64_t bound)
{
    for (;;) {
        struct iovec iov[LOCAL_SPLICE_IOV];
        size_t want = 0;
        int n = 0;
        for (size_t i = 0; i < l->qlen && n < LOCAL_SPLICE_IOV; i++) {
            const LocalOp *op = q_at(l, i);
            if (op->kind != LOCAL_OP_PAGE || op->at >= bound)
                break;
            size_t skip = i == 0 ? l->page_done : 0;
            iov[n].iov_base = (void *)(op->page + skip);
            iov[n].iov_len = LOCAL_PAGE - skip;
            want += iov[n].iov_len;
            n++;
        }
        if (n == 0)
            return 0;
        ssize_t got;
        do {
            got = vmsplice(l->pipe_w, iov, (unsigned long)n, SPLICE_F_NONBLOCK);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
            if (errno == EAGAIN) {
                l->pipe_full = true;
                return 0;
            }
            return -errno;
        }
        l->st.pipe_bytes += (uint64_t)got;
        l->base.bytes_written += (uint64_t)got;
        size_t left = (size_t)got;
        while (left) {
            size_t need = LOCAL_PAGE - l->page_done;
            if (left < need) {
                l->page_done += left;
                break;
            }
            left -= need;
            l->st.pages++;
            q_pop(l);
        }
        if ((size_t)got < want) {
            l->pipe_full = true; /* as full as it gets for now */
            return 0;
        }
    }
}

/* Copy the part [off, off + len) of iov into out (at most max entries). */
static int iov_slice(const struct iovec *iov, int iovcnt, size_t off, size_t len,
                     struct iovec *out, int max)
{
    int n = 0;
    for (int i = 0; i < iovcnt && len && n < max; i++) {
        size_t il = iov[i].iov_len;
        if (off >= il) {
            off -= il;
            continue;
        }
        size_t take = MIG_MIN(il - off, len);
        out[n].iov_base = (uint8_t *)iov[i].iov_base + off;
        out[n].iov_len = take;
        n++;
        len -= take;
        off = 0;
    }
    return n;
}

static ssize_t local_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    LocalTransport *l = L(t);
    size_t total = 0, done = 0;

    fiu_return_on("mig/transport/write", -EIO);
    if (!l->for_send)
        return mig_transport_writev(l->sock, iov, iovcnt); /* the return path */
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    l->pipe_full = false;
    while (done < total) {
        int r = splice_upto(l, l->sent + (total - done));
        if (r < 0)
            return done ? (ssize_t)done : r;
        size_t limit = total - done;
        LocalOp *op = q_head(l);
        if (op && op->at < l->sent + limit)
            limit = (size_t)(op->at - l->sent);
        if (limit == 0) {
            if (op->kind == LOCAL_OP_PAGE)
                return done ? (ssize_t)done : -EAGAIN; /* pipe full: its page first */
            /* The marker byte that carries the pipe's read end. */
            int ret = mig_transport_send_fd(l->sock, l->pipe_r);
            if (ret < 0)
                return done ? (ssize_t)done : ret;
            close(l->pipe_r); /* the destination holds it now */
            l->pipe_r = -1;
            q_pop(l);
            l->sent++;
            l->st.socket_bytes++;
            t->bytes_written++;
            done++;
            continue;
        }
        struct iovec part[LOCAL_WRITE_IOV];
        int np = iov_slice(iov, iovcnt, done, limit, part, LOCAL_WRITE_IOV);
        ssize_t n = mig_transport_writev(l->sock, part, np);
        if (n < 0)
            return done ? (ssize_t)done : n;
        l->sent += (uint64_t)n;
        l->st.socket_bytes += (uint64_t)n;
        t->bytes_written += (uint64_t)n;
        done += (size_t)n;
        if ((size_t)n < limit)
            break; /* the socket is full */
    }
    return (ssize_t)done;
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

int mig_transport_local_take_pipe(MigTransport *t, MigErr **errp)
{
    if (!mig_transport_is_local(t) || L(t)->for_send)
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

bool mig_transport_local_has_pipe(const MigTransport *t)
{
    return mig_transport_is_local(t) && !L((MigTransport *)t)->for_send &&
           L((MigTransport *)t)->pipe_r >= 0;
}

int mig_transport_local_read_page(MigTransport *t, void *dst, MigErr **errp)
{
    if (!mig_transport_is_local(t) || L(t)->pipe_r < 0)
        return mig_err_set(errp, -EPROTO, "page-flip: no pipe to read a page from");
    LocalTransport *l = L(t);
    size_t got = 0;
    fiu_return_on("mig/transport/read", -EIO);
    while (got < LOCAL_PAGE) {
        ssize_t n = read(l->pipe_r, (uint8_t *)dst + got, LOCAL_PAGE - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            return mig_err_set(errp, -EPIPE,
                               "page-flip: the pipe closed after %zu of %u page bytes", got,
                               LOCAL_PAGE);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return mig_err_set(errp, -EPROTO,
                               "page-flip: the pipe holds %zu of the %u bytes of a page whose "
                               "record arrived (the source sends the page first)",
                               got, LOCAL_PAGE);
        return mig_err_set(errp, -errno, "page-flip: pipe read failed: %s", strerror(errno));
    }
    l->st.pipe_bytes += LOCAL_PAGE;
    l->st.pages++;
    t->bytes_read += LOCAL_PAGE;
    return 0;
}

void mig_transport_local_stats(const MigTransport *t, MigLocalStats *out)
{
    memset(out, 0, sizeof(*out));
    if (mig_transport_is_local(t))
        *out = L((MigTransport *)t)->st;
}

/* ------------------------------------------------------------- readiness */

static void sock_ready(MigTransport *inner, uint32_t events, void *opaque)
{
    LocalTransport *l = opaque;
    l->busy++;
    l->cb(&l->base, events, l->opaque);
    l->busy--;
    if (l->dead && !l->busy)
        free(l);
}

static void pipe_ready(int fd, uint32_t events, void *opaque)
{
    LocalTransport *l = opaque;
    /* One shot: the writer flips again and re-arms if the pipe fills. */
    mig_loop_remove(l->base.loop, l->pipe_watch);
    l->pipe_watch = NULL;
    l->pipe_full = false;
    if (!l->cb)
        return;
    l->busy++;
    l->cb(&l->base, MIG_LOOP_OUT, l->opaque);
    l->busy--;
    if (l->dead && !l->busy)
        free(l);
}

static int local_watch(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque)
{
    LocalTransport *l = L(t);
    events &= MIG_LOOP_IN | MIG_LOOP_OUT;
    mig_loop_remove(t->loop, l->pipe_watch);
    l->pipe_watch = NULL;
    if (!events || !cb) {
        l->cb = NULL;
        l->events = 0;
        return mig_transport_watch(l->sock, 0, NULL, NULL);
    }
    l->cb = cb;
    l->opaque = opaque;
    l->events = events;
    uint32_t sock_events = events;
    if ((events & MIG_LOOP_OUT) && l->pipe_full && l->pipe_w >= 0) {
        /* What holds the writer back is the pipe, not the socket. */
        sock_events &= ~(uint32_t)MIG_LOOP_OUT;
        l->pipe_watch = mig_loop_fd_watch(t->loop, l->pipe_w, MIG_LOOP_OUT, pipe_ready, l);
        if (!l->pipe_watch)
            return t->loop->ops->fd_watch ? -errno : -ENOTSUP;
    }
    if (!sock_events)
        return mig_transport_watch(l->sock, 0, NULL, NULL);
    return mig_transport_watch(l->sock, sock_events, sock_ready, l);
}

static int local_shutdown_write(MigTransport *t)
{
    return mig_transport_shutdown_write(L(t)->sock);
}

static void local_close(MigTransport *t)
{
    LocalTransport *l = L(t);
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
    }
    return &l->base;
}
