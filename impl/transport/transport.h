/*
 * transport.h - the byte pipe a migration stream or a QMP/SPICE connection
 * runs over, as a vtable, and its constructors.
 *
 * Owns: MigTransport and the backends unix (connected AF_UNIX socket), fd (an
 * fd handed to the process), file (save to / restore from a file) and local
 * (page flipping, transport-local.c: the one backend with a page channel).
 * The simulator's in-memory link ("mem") is a backend of this interface that
 * lives with the simulator (harness/sim/link.c): the engine only ever drives
 * it through these ops.
 * Called by: impl/stream (codec), impl/migration, impl/monitor.
 *
 * Invariants: every operation is non-blocking for socket/pipe/mem backends:
 * read/writev return -EAGAIN when nothing can move now, and the caller asks
 * watch() to be called back.  Regular files may block (they never EAGAIN).
 * read returns >0 bytes, 0 at EOF (peer closed), or a negative errno.
 */
#ifndef MIGCERT_TRANSPORT_H
#define MIGCERT_TRANSPORT_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../common/common.h"
#include "../common/loop.h"

typedef struct MigTransport MigTransport;
typedef void (*MigTransportCb)(MigTransport *t, uint32_t events, void *opaque);

typedef struct MigTransportOps {
    const char *kind; /* "unix", "fd", "file", "local"; the simulator's "mem" */
    ssize_t (*read)(MigTransport *t, void *buf, size_t len);
    /* Optional: read into several places at once, as read does into one. */
    ssize_t (*readv)(MigTransport *t, const struct iovec *iov, int iovcnt);
    ssize_t (*write)(MigTransport *t, const void *buf, size_t len);
    ssize_t (*writev)(MigTransport *t, const struct iovec *iov, int iovcnt);
    /* Optional: writev where guest[i] says iov[i] is guest RAM
     * (mig_stream_put_guest_ref: mapped for the transport's life, allowed
     * to change), which the backend may hand to the kernel by reference
     * instead of copying (a unix socket: vmsplice and splice).  The other
     * iovs are copied before it returns, as writev's are. */
    ssize_t (*writev_guest)(MigTransport *t, const struct iovec *iov, const bool *guest,
                            int iovcnt);
    /* Optional: push out bytes writev accepted but the backend still holds
     * itself (a splice pipe): 0 when none is left, -EAGAIN (wait for
     * MIG_LOOP_OUT), or an error.  mig_stream_flush() calls it. */
    int (*flush)(MigTransport *t);
    /* Optional: bytes the peer has not read yet that still reference the
     * writer's memory (pages that went by reference); 0: none, the writer's
     * memory may change without changing what the peer reads. */
    uint64_t (*held)(MigTransport *t);
    /* Optional (NULL when the backend cannot pass fds). */
    int (*send_fd)(MigTransport *t, int fd);
    int (*recv_fd)(MigTransport *t); /* fd >= 0 or -errno (-EAGAIN: not yet) */
    /* Optional: the fd that came with the byte at read offset `at`, which a
     * plain read already consumed (a buffered stream reads a marker byte
     * before it asks).  The fd, -EPROTO when none came with that byte,
     * -EEXIST when more than one did (they are closed). */
    int (*claim_fd)(MigTransport *t, uint64_t at);
    /* Optional page channel: page bytes that travel beside the byte stream
     * (the "local" transport's pipe).  NULL: the stream carries pages inline.
     * The stream (stream.h, mig_stream_put_page_ref and friends) is the only
     * caller; offsets are stream offsets, which count from the transport's
     * first byte.  Source: page_channel_open says that stream byte `at` (a
     * MIG_TRANSPORT_FD_MARKER byte the stream puts next) carries the channel
     * to the peer; page_put says that the `len` stream bytes from `at` (put
     * next, by reference to `page`: the memory writev's iov will hold for
     * them) go into the channel, and reach the peer before stream byte
     * `ahead_of` (< at) does.  0, or -EINVAL when the call breaks
     * stream order.  Destination: page_channel_accept adopts the channel
     * that came with the marker byte the stream just read; page_get reads
     * the next `len` page bytes into dst. */
    int (*page_channel_open)(MigTransport *t, uint64_t at);
    int (*page_put)(MigTransport *t, uint64_t at, const void *page, size_t len,
                    uint64_t ahead_of);
    int (*page_channel_accept)(MigTransport *t, MigErr **errp);
    int (*page_get)(MigTransport *t, void *dst, size_t len, MigErr **errp);
    /* Optional: the next pages, straight into each iov's memory (a run of
     * pages whose records were read; lengths are page sizes).  0 or an error
     * as page_get. */
    int (*page_getv)(MigTransport *t, const struct iovec *iov, int n, MigErr **errp);
    /* Call cb when any of `events` (MIG_LOOP_IN/OUT) may succeed; events 0
     * stops watching.  One watch per transport; a new call replaces it. */
    int (*watch)(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque);
    /* Shut down the write side so the peer reads EOF (optional). */
    int (*shutdown_write)(MigTransport *t);
    void (*close)(MigTransport *t); /* frees t */
    /* Optional: bytes writev accepted that the peer has not read yet (fd
     * sockets: the kernel's send queue, SIOCOUTQ; mem: the link's fill in
     * this end's direction).  NULL: cannot tell. */
    uint64_t (*queued)(MigTransport *t);
    /* Optional: bytes a read would get now without waiting (sockets and
     * pipes: SIOCINQ/FIONREAD), or a negative errno when it cannot tell.
     * NULL: cannot tell. */
    ssize_t (*readable)(MigTransport *t);
} MigTransportOps;

struct MigTransport {
    const MigTransportOps *ops;
    MigLoop *loop;
    uint64_t bytes_read;
    uint64_t bytes_written;
    /* The peer can answer on this connection (a socket, the simulator's
     * link, a local transport over its socket), as opposed to a file or a
     * pipe, which carry bytes one way.  Set by the constructor, never
     * changed; a backend that wraps another copies its inner one's. */
    bool duplex;
    /* writev knows this side's guest RAM and sends a keyed page
     * (impl/ram/ram.h) as its key, read at write time, and readv gives a
     * whole keyed page that lands on a page of the peer's RAM to that RAM
     * as a key (the simulator's link with RAM attached:
     * mig_transport_mem_set_ram).  False for every real transport. */
    bool keyed_ram;
};

/* The fault gate of t's loop (impl/common/faults.h, MigLoop.faults), for
 * the points hit once per transport call; NULL when none is set. */
static inline const MigFaultGate *mig_transport_fault_gate(const MigTransport *t)
{
    return t->loop ? t->loop->faults : NULL;
}

static inline ssize_t mig_transport_read(MigTransport *t, void *b, size_t n)
{
    return t->ops->read(t, b, n);
}
static inline ssize_t mig_transport_writev(MigTransport *t, const struct iovec *iov, int n)
{
    return t->ops->writev(t, iov, n);
}
static inline ssize_t mig_transport_write(MigTransport *t, const void *b, size_t n)
{
    return t->ops->write(t, b, n);
}
static inline void mig_transport_close(MigTransport *t)
{
    if (t)
        t->ops->close(t);
}
/* Can the peer send bytes back on t (what a return path needs)?  False for
 * NULL. */
static inline bool mig_transport_is_duplex(const MigTransport *t)
{
    return t && t->duplex;
}

/* An already-open fd (socket, pipe or file); the transport owns it and sets
 * it non-blocking unless it is a regular file. */
MigTransport *mig_transport_fd_new(MigLoop *loop, int fd, const char *kind);
/* A regular file opened for writing (truncating) or reading. */
MigTransport *mig_transport_file_open(MigLoop *loop, const char *path, bool for_write,
                                      MigErr **errp);
/* Connect to a listening unix socket at `path`. */
MigTransport *mig_transport_unix_connect(MigLoop *loop, const char *path, MigErr **errp);

/* ---- optional operations (-ENOTSUP when the backend lacks them) ---- */
static inline int mig_transport_watch(MigTransport *t, uint32_t events, MigTransportCb cb,
                                      void *opaque)
{
    return t->ops->watch ? t->ops->watch(t, events, cb, opaque) : -ENOTSUP;
}
static inline int mig_transport_shutdown_write(MigTransport *t)
{
    return t->ops->shutdown_write ? t->ops->shutdown_write(t) : -ENOTSUP;
}
/* Bytes written on t and still on their way to the peer's reader (what a
 * sender must still push through the link before the peer has them all); 0
 * when the backend cannot tell (files, pipes, backends without the op). */
static inline uint64_t mig_transport_queued(MigTransport *t)
{
    return t && t->ops->queued ? t->ops->queued(t) : 0;
}
/* Bytes on their way to the peer that still read the writer's memory
 * (MigTransportOps.held); 0 for backends that always copy. */
static inline uint64_t mig_transport_held(MigTransport *t)
{
    return t && t->ops->held ? t->ops->held(t) : 0;
}
/* Bytes t holds for its reader right now, or -ENOTSUP when it cannot tell
 * (a loader sizes a scattered read to the records that are whole). */
static inline ssize_t mig_transport_readable(MigTransport *t)
{
    return t && t->ops->readable ? t->ops->readable(t) : -ENOTSUP;
}
/* Pass an fd over a unix socket (SCM_RIGHTS).  send_fd writes one marker byte
 * (MIG_TRANSPORT_FD_MARKER) into the byte stream carrying `fd` (the caller
 * keeps its own fd); the peer calls recv_fd at the point of the stream where
 * it expects the fd, and recv_fd consumes that one byte.  An fd that arrived
 * with bytes a plain read consumed is kept and returned by the next recv_fd. */
#define MIG_TRANSPORT_FD_MARKER 0x46u /* 'F' */
static inline int mig_transport_send_fd(MigTransport *t, int fd)
{
    return t->ops->send_fd ? t->ops->send_fd(t, fd) : -ENOTSUP;
}
static inline int mig_transport_recv_fd(MigTransport *t)
{
    return t->ops->recv_fd ? t->ops->recv_fd(t) : -ENOTSUP;
}
/* The fd that came with byte `at` of what t read (see claim_fd above). */
static inline int mig_transport_claim_fd(MigTransport *t, uint64_t at)
{
    return t->ops->claim_fd ? t->ops->claim_fd(t, at) : -ENOTSUP;
}
/* The fd under an fd/unix/file transport (still owned by t), -1 otherwise. */
int mig_transport_get_fd(MigTransport *t);
/* The oldest fd that arrived (SCM_RIGHTS) with bytes already read, now owned
 * by the caller; -ENOENT when none did (nothing is read to look for one),
 * -ENOTSUP on a transport that cannot carry fds.  QMP's getfd takes the fd
 * that came with its own request this way. */
int mig_transport_take_passed_fd(MigTransport *t);

/* ---- local: page flipping over a unix socket (transport-local.c;
 * docs/protocol-qemu-stream.md, page flipping)
 * A "local" transport wraps a connected unix socket (taking it over).  The
 * byte stream still runs on the socket; page bytes travel on a pipe whose
 * read end the source passes with SCM_RIGHTS: it is the page channel of the
 * ops above, and knows stream offsets, not record formats.
 *   source: page_channel_open queues the pipe's read end on the marker
 *     byte; page_put queues a 4096-byte page.  writev moves each page into
 *     the pipe (vmsplice) before stream byte `ahead_of` into the socket, so
 *     the destination always finds a page's data in the pipe once it has
 *     read what precedes it there.  A full pipe makes writev stop short
 *     (-EAGAIN when nothing moved) and watch(MIG_LOOP_OUT) then waits for
 *     the pipe.  Page bytes count as written like socket bytes, so the
 *     stream's pending bytes, offsets and the engine's rate limit see them
 *     as in a plain stream.
 *   destination: page_channel_accept adopts the fd that came with the
 *     marker byte (-EPROTO when none came, -EEXIST for a second one);
 *     page_get reads one page (-EPROTO when the pipe holds less than a page:
 *     the source writes a page before what follows it, so that is a broken
 *     source; -EPIPE at EOF).
 * bytes_written/bytes_read count socket and pipe bytes; local_stats splits
 * them.  (The destination's stream offsets count socket bytes only.) */
/* Can t pass fds (a connected AF_UNIX socket under an fd/unix transport)? */
bool mig_transport_can_pass_fds(MigTransport *t);
/* Wrap a unix-socket transport (owned from now on, also on error).  for_send:
 * the source side, which creates the pipe.  NULL with *errp on failure. */
MigTransport *mig_transport_local_new(MigTransport *sock, bool for_send, MigErr **errp);
bool mig_transport_is_local(const MigTransport *t);
typedef struct MigLocalStats {
    uint64_t socket_bytes; /* stream bytes through the socket (both ways) */
    uint64_t pipe_bytes;   /* page bytes through the pipe */
    uint64_t pages;        /* pages through the pipe */
    uint64_t splices;      /* source: vmsplice calls, those the full pipe refused included */
} MigLocalStats;
void mig_transport_local_stats(const MigTransport *t, MigLocalStats *out);

/* ---- unix listener (the destination side of unix:PATH) ----
 * Accepts without blocking from a loop fd watch (epoll loop only).  Each
 * accepted connection becomes a non-blocking "unix" transport handed to cb,
 * which owns it from then on. */
typedef struct MigListener MigListener;
typedef void (*MigListenerCb)(MigListener *l, MigTransport *t, void *opaque);
/* Bind and listen at `path` (a stale socket file there is replaced). */
MigListener *mig_listener_unix_new(MigLoop *loop, const char *path, MigListenerCb cb,
                                   void *opaque, MigErr **errp);
/* Stop accepting, close the socket and unlink its path.  NULL is a no-op. */
void mig_listener_free(MigListener *l);

#endif
