/*
 * ram-feed.c - a RAM stream fed over a socketpair in chunks (ram-feed.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/loop.h"
#include "sim/ram-feed.h"
#include "stream/stream.h"
#include "transport/transport.h"

/* All of [p, p + n) into fd. */
static int write_all(int fd, const uint8_t *p, size_t n, size_t at, MigErr **errp)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return mig_err_set(errp, w < 0 ? -errno : -EIO, "ram feed: writing the stream at byte %zu: %s", at,
                               w < 0 ? strerror(errno) : "nothing written");
        p += w;
        n -= (size_t)w;
        at += (size_t)w;
    }
    return 0;
}

int sim_ram_feed(const MigSaveEntry *e, const uint8_t *buf, size_t len, SimRamFeed *f, MigErr **errp)
{
    f->fed = 0;
    f->read = 0;
    if (!f->nsizes)
        return mig_err_set(errp, -EINVAL, "ram feed: no chunk sizes");
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return mig_err_set(errp, -errno, "ram feed: socketpair: %s", strerror(errno));
    /* a chunk goes in whole before the loader reads any of it */
    int big = 4 << 20;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    MigLoop *loop = mig_loop_epoll_new(1);
    MigTransport *t = mig_transport_fd_new(loop, sp[1], "unix");
    MigStream *s = mig_stream_new_reader(t);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    size_t i = 0, steps = 0;
    int rc = 0;
    while (steps < f->steps) {
        rc = e->iter->load_state(e->opaque, s, &h, errp);
        if (rc == 0) {
            steps++;
            continue;
        }
        if (rc != -EAGAIN)
            break;
        if (f->fed == len) {
            rc = mig_err_set(errp, -EPROTO, "ram feed: step %zu of %zu wants more than the stream's %zu bytes",
                             steps + 1, f->steps, len);
            break;
        }
        size_t want = f->sizes[i++ % f->nsizes]; /* MIG_MIN evaluates twice */
        size_t c = MIG_MIN(want, len - f->fed);
        rc = write_all(sp[0], buf + f->fed, c, f->fed, errp);
        if (rc)
            break;
        f->fed += c;
    }
    f->read = mig_stream_offset(s);
    mig_stream_free(s);
    mig_transport_close(t);
    close(sp[0]);
    mig_loop_free(loop);
    return rc;
}
