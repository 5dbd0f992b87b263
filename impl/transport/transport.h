/*
 * transport.h - the byte pipe a migration stream or a QMP/SPICE connection
 * runs over, as a vtable, and its constructors.
 *
 * Owns: MigTransport and the backends unix (connected AF_UNIX socket), fd (an
 * fd handed to the process), file (save to / restore from a file), mem (the
 * simulator's in-memory link, in impl/transport/transport-mem.c, driven by the
 * sim loop) and local (page flipping, later).
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
    const char *kind; /* "unix", "fd", "file", "mem", "local" */
    ssize_t (*read)(MigTransport *t, void *buf, size_t len);
    ssize_t (*write)(MigTransport *t, const void *buf, size_t len);
    ssize_t (*writev)(MigTransport *t, const struct iovec *iov, int iovcnt);
    /* Optional (NULL when the backend cannot pass fds). */
    int (*send_fd)(MigTransport *t, int fd);
    int (*recv_fd)(MigTransport *t); /* fd >= 0 or -errno (-EAGAIN: not yet) */
    /* Call cb when any of `events` (MIG_LOOP_IN/OUT) may succeed; events 0
     * stops watching.  One watch per transport; a new call replaces it. */
    int (*watch)(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque);
    /* Shut down the write side so the peer reads EOF (optional). */
    int (*shutdown_write)(MigTransport *t);
    void (*close)(MigTransport *t); /* frees t */
} MigTransportOps;

struct MigTransport {
    const MigTransportOps *ops;
    MigLoop *loop;
    uint64_t bytes_read;
    uint64_t bytes_written;
};

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

/* An already-open fd (socket, pipe or file); the transport owns it and sets
 * it non-blocking unless it is a regular file. */
MigTransport *mig_transport_fd_new(MigLoop *loop, int fd, const char *kind);
/* A regular file opened for writing (truncating) or reading. */
MigTransport *mig_transport_file_open(MigLoop *loop, const char *path, bool for_write,
                                      MigErr **errp);
/* Connect to a listening unix socket at `path`. */
MigTransport *mig_transport_unix_connect(MigLoop *loop, const char *path, MigErr **errp);

#endif
