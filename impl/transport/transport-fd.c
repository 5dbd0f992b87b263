/*
 * transport-fd.c - a transport over one fd: a socket, a pipe or a regular
 * file.  The "unix", "fd" and "file" kinds all live here; transport-unix.c
 * and transport-file.c only open the fd.
 *
 * Sockets and pipes are switched to non-blocking and watched through the
 * loop's fd watch (epoll); a regular file stays blocking, is always ready, and
 * its watch is emulated with defers (level-triggered, like epoll would be).
 * writev goes straight to the kernel (sendmsg with MSG_NOSIGNAL on sockets,
 * so a vanished peer is -EPIPE, not a signal): no copy on the hot path.
 * Writing to a pipe whose reader is gone still raises SIGPIPE: processes that
 * use pipes ignore it (migcert vm does).
 *
 * On unix sockets reads go through recvmsg so that an fd passed with
 * SCM_RIGHTS is never lost: fds that arrive with ordinary data are queued and
 * handed out by the next recv_fd.
 *
 * Guest pages by reference (writev_guest, on unix sockets of the "unix" and
 * "fd" kinds; elsewhere it is writev).  A socket
 * copies what sendmsg gives it; on the source of a migration that copy of
 * every guest page is most of the CPU it spends (perf: _copy_from_iter
 * about two thirds).  A page vmspliced into a pipe and spliced from the
 * pipe into a unix socket is not copied: the socket's buffers hold
 * references to the guest's pages, and the destination's read is the only
 * copy.  writev_guest does that for the iovs the stream marks as guest RAM
 * (mig_stream_put_guest_ref); every other byte (record headers, device
 * state) is first copied into `arena`, whose bytes are never written again
 * while the kernel may hold them: a full arena is dropped with
 * MADV_DONTNEED (the kernel's references keep the old pages; our next
 * writes fault in fresh ones) and filled from its start.  Without
 * SPLICE_F_GIFT no page is ever stolen or moved: the source's memory stays
 * its own.  What the peer reads is what a guest page holds when it reads:
 *   - pre-copy runs the guest, but a page written after it was queued is
 *     dirty and goes again later (the last copy wins, as it would anyway);
 *   - the final pass runs with the guest stopped, and the source completes
 *     only once the peer has read every such byte (MigTransportOps.held:
 *     the socket's unread bytes), so a `cont` on the completed source
 *     cannot change what the destination loads;
 *   - a failed or cancelled migration discards what the peer read.
 * Bytes in the pipe come before any later byte: every other write (writev,
 * send_fd) first empties the pipe into the socket, or returns -EAGAIN.
 * splice() into a socket whose peer is gone raises SIGPIPE (it has no
 * MSG_NOSIGNAL), so the path is taken only while the process ignores
 * SIGPIPE (migcert vm does); otherwise, and where the kernel refuses to
 * vmsplice or splice, writev_guest is writev.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "transport.h"

#define FD_QUEUE 8
/* The splice pipe (see the top of the file): 1 MiB, what the host's own
 * probes use (harness/bench/link-probe.c); a bigger pipe pins more of the
 * guest's huge folios at once while the destination releases others. */
#define SPLICE_PIPE (1u << 20)
#define SPLICE_ARENA ((size_t)256 << 10) /* copied bytes between two MADV_DONTNEEDs */
#define SPLICE_IOV 512                   /* pieces per vmsplice (a record is two) */

typedef enum SpliceState { SPLICE_UNTRIED, SPLICE_ON, SPLICE_OFF } SpliceState;

typedef struct FdTransport {
    MigTransport base;
    int fd;
    bool is_file;
    bool is_socket;
    bool is_unix;
    MigLoopSource *watch;     /* fd watch (sockets, pipes) */
    MigLoopSource *file_kick; /* emulated readiness (regular files) */
    uint32_t events;
    MigTransportCb cb;
    void *opaque;
    int fds[FD_QUEUE]; /* passed fds received with plain reads */
    uint64_t fd_at[FD_QUEUE]; /* the read offset of the byte each came with */
    int nfds;
    int busy;  /* inside a callback of this transport */
    bool dead; /* closed from inside a callback: free on return */
    /* guest pages by reference (writev_guest) */
    SpliceState splice;
    int pipe_r, pipe_w;
    size_t piped;      /* bytes in the pipe, not yet in the socket */
    size_t pipe_size;  /* what the kernel gave the pipe */
    uint8_t *arena;    /* SPLICE_ARENA bytes, mmap'd */
    size_t arena_used;
    bool spliced;      /* a guest page went by reference */
} FdTransport;

static const MigTransportOps fd_ops, unix_ops, file_ops;

static FdTransport *F(MigTransport *t)
{
    return (FdTransport *)t;
}

static bool is_fd_transport(const MigTransport *t)
{
    return t->ops == &fd_ops || t->ops == &unix_ops || t->ops == &file_ops;
}

/* Queue the fds that came with a read; `at` is the read offset of the
 * read's last byte, the one the fds rode on (the kernel ends a read at a
 * byte that carries fds). */
static void queue_fds(FdTransport *f, struct msghdr *msg, uint64_t at)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, &fds[i], sizeof(fd));
            if (f->nfds < FD_QUEUE) {
                f->fd_at[f->nfds] = at;
                f->fds[f->nfds++] = fd;
            } else {
                close(fd); /* a peer flooding us with fds: drop the excess */
            }
        }
    }
}

static ssize_t unix_recvv(FdTransport *f, const struct iovec *iov, int iovcnt)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * FD_QUEUE)];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)iovcnt,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n;

    do {
        n = recvmsg(f->fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && msg.msg_controllen)
        queue_fds(f, &msg, f->base.bytes_read + (uint64_t)n - 1);
    return n;
}

static ssize_t unix_recv(FdTransport *f, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    return unix_recvv(f, &iov, 1);
}

/* Scattered read: straight into the caller's places (the RAM loader's
 * guest pages), as read() would into one buffer. */
static ssize_t fd_readv(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    FdTransport *f = F(t);
    ssize_t n;

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_READ);
    if (f->fd < 0)
        return -EBADF;
    if (iovcnt > IOV_MAX)
        iovcnt = IOV_MAX;
    if (f->is_unix) {
        n = unix_recvv(f, iov, iovcnt);
    } else {
        do {
            n = readv(f->fd, iov, iovcnt);
        } while (n < 0 && errno == EINTR);
    }
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    t->bytes_read += (uint64_t)n;
    return n;
}

static ssize_t fd_read(MigTransport *t, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    return fd_readv(t, &iov, 1);
}

/* Move what the pipe holds into the socket: 0 when it is empty, -EAGAIN
 * (the socket is full), or the socket's error. */
static int pipe_out(FdTransport *f)
{
    while (f->piped) {
        ssize_t m = splice(f->pipe_r, NULL, f->fd, NULL, f->piped,
                           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (m > 0) {
            f->piped -= (size_t)m;
            continue;
        }
        if (m < 0 && errno == EINTR)
            continue;
        if (m == 0)
            return -EPIPE;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
    return 0;
}

static int fd_flush(MigTransport *t)
{
    FdTransport *f = F(t);
    if (f->fd < 0)
        return f->piped ? -EBADF : 0;
    return pipe_out(f);
}

/* writev once the fault point has had its say (fd_writev, and
 * fd_writev_guest where it copies after all: one hit per call). */
static ssize_t fd_writev_copy(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    FdTransport *f = F(t);
    ssize_t n;

    if (f->fd < 0)
        return -EBADF;
    if (f->piped) {
        int r = pipe_out(f);
        if (r < 0)
            return r;
    }
    if (iovcnt > IOV_MAX)
        iovcnt = IOV_MAX; /* a short write; the caller sends the rest */
    if (f->is_socket) {
        struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        do {
            n = sendmsg(f->fd, &msg, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
    } else {
        do {
            n = writev(f->fd, iov, iovcnt);
        } while (n < 0 && errno == EINTR);
    }
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    t->bytes_written += (uint64_t)n;
    return n;
}

static ssize_t fd_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_WRITE);
    return fd_writev_copy(t, iov, iovcnt);
}

/* Can guest pages go by reference on f?  Set up on first use: the pipe,
 * the arena, and whether SIGPIPE is ignored (see the top of the file). */
static bool splice_ready(FdTransport *f)
{
    if (f->splice != SPLICE_UNTRIED)
        return f->splice == SPLICE_ON;
    f->splice = SPLICE_OFF;
    struct sigaction sa;
    if (!f->is_unix || sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_IGN)
        return false;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return false;
    int got = fcntl(p[1], F_SETPIPE_SZ, (int)SPLICE_PIPE);
    if (got <= 0)
        got = fcntl(p[1], F_GETPIPE_SZ);
    void *a = mmap(NULL, SPLICE_ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (got <= 0 || a == MAP_FAILED) {
        close(p[0]);
        close(p[1]);
        if (a != MAP_FAILED)
            munmap(a, SPLICE_ARENA);
        return false;
    }
    madvise(a, SPLICE_ARENA, MADV_NOHUGEPAGE); /* dropped a page at a time, never a folio */
    f->pipe_r = p[0];
    f->pipe_w = p[1];
    f->pipe_size = (size_t)got;
    f->arena = a;
    f->arena_used = 0;
    f->splice = SPLICE_ON;
    return true;
}

static void splice_free(FdTransport *f)
{
    if (f->splice != SPLICE_ON)
        return;
    close(f->pipe_r);
    close(f->pipe_w);
    munmap(f->arena, SPLICE_ARENA);
    f->piped = 0;
    f->splice = SPLICE_OFF;
}

/* Room for n copied bytes: the arena from its start once it is full
 * (MADV_DONTNEED: what the kernel still references keeps its old pages). */
static uint8_t *arena_take(FdTransport *f, size_t n)
{
    if (f->arena_used + n > SPLICE_ARENA) {
        madvise(f->arena, SPLICE_ARENA, MADV_DONTNEED);
        f->arena_used = 0;
    }
    uint8_t *p = f->arena + f->arena_used;
    f->arena_used += n;
    return p;
}

static ssize_t fd_writev_guest(MigTransport *t, const struct iovec *iov, const bool *guest,
                               int iovcnt)
{
    FdTransport *f = F(t);

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_WRITE);
    if (f->fd < 0 || !splice_ready(f))
        return fd_writev_copy(t, iov, iovcnt);
    int r = pipe_out(f);
    if (r < 0 && r != -EAGAIN)
        return r;
    if (f->piped >= f->pipe_size)
        return -EAGAIN;
    /* What the pipe has room for, the copied pieces into the arena */
    struct iovec v[SPLICE_IOV];
    size_t room = f->pipe_size - f->piped, offered = 0;
    int k = 0;
    for (int i = 0; i < iovcnt && k < SPLICE_IOV && offered < room; i++) {
        size_t len = MIG_MIN(iov[i].iov_len, room - offered);
        if (guest[i]) {
            v[k].iov_base = iov[i].iov_base;
        } else {
            len = MIG_MIN(len, SPLICE_ARENA);
            if (k > 0 && f->arena_used + len > SPLICE_ARENA)
                break; /* the arena starts over with the next call */
            v[k].iov_base = arena_take(f, len);
            memcpy(v[k].iov_base, iov[i].iov_base, len);
        }
        v[k++].iov_len = len;
        offered += len;
        if (len < iov[i].iov_len)
            break;
    }
    ssize_t n;
    do {
        n = vmsplice(f->pipe_w, v, (unsigned long)k, SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN)
            return -EAGAIN;
        if (f->piped)
            return -errno;
        /* the kernel will not: copy from now on */
        splice_free(f);
        return fd_writev_copy(t, iov, iovcnt);
    }
    f->piped += (size_t)n;
    f->spliced = true;
    t->bytes_written += (uint64_t)n;
    r = pipe_out(f);
    if (r < 0 && r != -EAGAIN)
        return r;
    return n;
}

static ssize_t fd_write(MigTransport *t, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return fd_writev(t, &iov, 1);
}

static int fd_send_fd(MigTransport *t, int fd)
{
    FdTransport *f = F(t);
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    uint8_t marker = MIG_TRANSPORT_FD_MARKER;
    struct iovec iov = {.iov_base = &marker, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *c;
    ssize_t n;

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_WRITE);
    if (!f->is_unix || f->fd < 0)
        return -ENOTSUP;
    int r = f->piped ? pipe_out(f) : 0;
    if (r < 0)
        return r;
    memset(&ctl, 0, sizeof(ctl));
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    do {
        n = sendmsg(f->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    t->bytes_written += 1;
    return 0;
}

static int pop_fd_at(FdTransport *f, int i)
{
    int fd = f->fds[i];
    memmove(&f->fds[i], &f->fds[i + 1], (size_t)(f->nfds - 1 - i) * sizeof(int));
    memmove(&f->fd_at[i], &f->fd_at[i + 1], (size_t)(f->nfds - 1 - i) * sizeof(uint64_t));
    f->nfds--;
    return fd;
}

static int pop_fd(FdTransport *f)
{
    return pop_fd_at(f, 0);
}

/* The one fd that came with byte `at` (read already).  Fds that came with
 * earlier bytes were never claimed: closed.  -EPROTO none came with it,
 * -EEXIST more than one did (all closed). */
static int fd_claim_fd(MigTransport *t, uint64_t at)
{
    FdTransport *f = F(t);
    int found = -1, count = 0;

    for (int i = 0; i < f->nfds;) {
        if (f->fd_at[i] < at) {
            close(pop_fd_at(f, i));
            continue;
        }
        if (f->fd_at[i] == at) {
            count++;
            if (found >= 0)
                close(found);
            found = pop_fd_at(f, i);
            continue;
        }
        i++;
    }
    if (count > 1) {
        close(found);
        return -EEXIST;
    }
    return count ? found : -EPROTO;
}

static int fd_recv_fd(MigTransport *t)
{
    FdTransport *f = F(t);
    uint8_t marker;
    ssize_t n;

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_READ);
    if (!f->is_unix || f->fd < 0)
        return -ENOTSUP;
    if (f->nfds)
        return pop_fd(f);
    n = unix_recv(f, &marker, 1);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == 0)
        return -EPIPE; /* the peer closed before passing an fd */
    t->bytes_read += 1;
    if (!f->nfds)
        return -EPROTO; /* a data byte where an fd was expected */
    return pop_fd(f);
}

static void fd_io(int fd, uint32_t events, void *opaque)
{
    FdTransport *f = opaque;

    f->busy++;
    f->cb(&f->base, events, f->opaque);
    f->busy--;
    if (f->dead && !f->busy)
        free(f);
}

static void file_ready(void *opaque)
{
    FdTransport *f = opaque;

    f->file_kick = NULL;
    f->busy++;
    f->cb(&f->base, f->events & (MIG_LOOP_IN | MIG_LOOP_OUT), f->opaque);
    f->busy--;
    if (f->dead) {
        if (!f->busy)
            free(f);
        return;
    }
    /* A regular file stays ready: level-triggered, as long as it is watched. */
    if (f->cb && !f->file_kick)
        f->file_kick = mig_loop_defer(f->base.loop, file_ready, f);
}

static int fd_watch(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque)
{
    FdTransport *f = F(t);

    events &= MIG_LOOP_IN | MIG_LOOP_OUT;
    if (!events || !cb) {
        mig_loop_remove(t->loop, f->watch);
        mig_loop_remove(t->loop, f->file_kick);
        f->watch = f->file_kick = NULL;
        f->cb = NULL;
        f->events = 0;
        return 0;
    }
    if (f->fd < 0)
        return -EBADF;
    if (f->is_file) {
        if (!f->file_kick)
            f->file_kick = mig_loop_defer(t->loop, file_ready, f);
    } else if (f->watch) {
        int ret = mig_loop_fd_update(t->loop, f->watch, events);
        if (ret < 0)
            return ret;
    } else {
        f->watch = mig_loop_fd_watch(t->loop, f->fd, events, fd_io, f);
        if (!f->watch)
            return t->loop->ops->fd_watch ? -errno : -ENOTSUP;
    }
    f->events = events;
    f->cb = cb;
    f->opaque = opaque;
    return 0;
}

static int fd_shutdown_write(MigTransport *t)
{
    FdTransport *f = F(t);

    if (!f->is_socket || f->fd < 0)
        return -ENOTSUP;
    int r = f->piped ? pipe_out(f) : 0; /* the pipe's bytes come first */
    if (r < 0)
        return r;
    return shutdown(f->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void fd_close(MigTransport *t)
{
    FdTransport *f = F(t);

    fd_watch(t, 0, NULL, NULL);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    splice_free(f);
    while (f->nfds)
        close(pop_fd(f));
    if (f->busy)
        f->dead = true;
    else
        free(f);
}

/* A socket's unsent (TCP) or unread (unix) bytes, and what the splice pipe
 * holds; files and pipes: 0. */
static uint64_t fd_queued(MigTransport *t)
{
    FdTransport *f = F(t);
    int q = 0;

    if (!f->is_socket || f->fd < 0 || ioctl(f->fd, SIOCOUTQ, &q) != 0)
        return f->piped;
    return (q > 0 ? (uint64_t)q : 0) + f->piped;
}

/* Once a page went by reference, the peer's unread bytes may be pages. */
static uint64_t fd_held(MigTransport *t)
{
    return F(t)->spliced ? fd_queued(t) : 0;
}

/* What a read gets now: a socket's or a pipe's unread bytes (FIONREAD,
 * SIOCINQ for sockets); a regular file cannot tell. */
static ssize_t fd_readable(MigTransport *t)
{
    FdTransport *f = F(t);
    int n = 0;

    if (f->is_file || f->fd < 0)
        return -ENOTSUP;
    if (ioctl(f->fd, FIONREAD, &n) != 0)
        return -errno;
    return n > 0 ? n : 0;
}

#define FD_OPS(k)                                                                              \
    {                                                                                          \
        .kind = k, .read = fd_read, .readv = fd_readv, .write = fd_write,                      \
        .writev = fd_writev, .writev_guest = fd_writev_guest,                                  \
        .send_fd = fd_send_fd, .recv_fd = fd_recv_fd, .claim_fd = fd_claim_fd,                 \
        .watch = fd_watch,                                                                     \
        .shutdown_write = fd_shutdown_write, .close = fd_close, .queued = fd_queued,           \
        .readable = fd_readable, .flush = fd_flush, .held = fd_held,                           \
    }
static const MigTransportOps fd_ops = FD_OPS("fd");
static const MigTransportOps unix_ops = FD_OPS("unix");
static const MigTransportOps file_ops = FD_OPS("file");

MigTransport *mig_transport_fd_new(MigLoop *loop, int fd, const char *kind)
{
    struct stat st;
    FdTransport *f;

    if (fd < 0 || fstat(fd, &st) < 0)
        return NULL;
    f = mig_malloc0(sizeof(*f));
    f->fd = fd;
    f->pipe_r = f->pipe_w = -1;
    f->is_file = !S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode);
    f->is_socket = S_ISSOCK(st.st_mode);
    if (f->is_socket) {
        int domain = 0;
        socklen_t dl = sizeof(domain);
        f->is_unix = getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) == 0 &&
                     domain == AF_UNIX;
    }
    if (!f->is_file) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && !(fl & O_NONBLOCK))
            fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    if (kind && strcmp(kind, "unix") == 0)
        f->base.ops = &unix_ops;
    else if (kind && strcmp(kind, "file") == 0)
        f->base.ops = &file_ops;
    else
        f->base.ops = &fd_ops;
    f->base.loop = loop;
    f->base.duplex = f->is_socket; /* a file or a pipe carries bytes one way */
    return &f->base;
}

int mig_transport_get_fd(MigTransport *t)
{
    return t && is_fd_transport(t) ? F(t)->fd : -1;
}

int mig_transport_take_passed_fd(MigTransport *t)
{
    if (!t || !is_fd_transport(t) || !F(t)->is_unix)
        return -ENOTSUP;
    return F(t)->nfds ? pop_fd(F(t)) : -ENOENT;
}
