/*
 * transport-unix.c - unix:PATH, both sides: connect (source) and a listener
 * that accepts from the loop without blocking (destination).  The connected
 * sockets become "unix" fd transports (transport-fd.c).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport.h"

struct MigListener {
    MigLoop *loop;
    int fd;
    char *path;
    MigLoopSource *watch;
    MigListenerCb cb;
    void *opaque;
    int busy;
    bool dead;
};

/* Socket buffers sized for a migration stream rather than for messages.
 * A unix stream socket queues at most SO_SNDBUF bytes (the kernel doubles
 * the figure for its bookkeeping) between writer and reader, in skbs of up
 * to half of it: the default (~208 KiB) makes the source stop and wait for
 * the destination every ~100 KiB, a wakeup and a sendmsg each.  1 MiB, what
 * the host's own socketpair probe (harness/bench/link-probe.c) uses: the
 * reader takes a run of up to 1 MiB per recvmsg.  Larger buffers measured
 * no better (2 and 4 MiB: more CPU per GiB on both sides, the bytes in
 * flight no longer in cache).  The kernel clamps it to net.core.wmem_max /
 * rmem_max; failing is harmless (advice). */
#define MIG_UNIX_SOCKBUF (1 << 20)

static void size_for_stream(int fd)
{
    int sz = MIG_UNIX_SOCKBUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static int unix_addr(struct sockaddr_un *sa, const char *path, MigErr **errp)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (!path || !*path)
        return mig_err_set(errp, -EINVAL, "unix socket path is empty");
    if (strlen(path) >= sizeof(sa->sun_path))
        return mig_err_set(errp, -ENAMETOOLONG, "unix socket path %s is longer than %zu bytes",
                           path, sizeof(sa->sun_path) - 1);
    memcpy(sa->sun_path, path, strlen(path));
    return 0;
}

MigTransport *mig_transport_unix_connect(MigLoop *loop, const char *path, MigErr **errp)
{
    struct sockaddr_un sa;
    MigTransport *t;
    int fd, ret;

    if (unix_addr(&sa, path, errp) < 0)
        return NULL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mig_err_set(errp, -errno, "cannot create a unix socket: %s", strerror(errno));
        return NULL;
    }
    /* A unix connect completes at once or fails at once; EAGAIN means the
     * listener's backlog is full, which we report rather than wait on. */
    do {
        ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        int err = errno;
        close(fd);
        mig_err_set(errp, -err, "cannot connect to unix:%s: %s", path,
                    err == EAGAIN ? "listener backlog is full" : strerror(err));
        return NULL;
    }
    size_for_stream(fd);
    t = mig_transport_fd_new(loop, fd, "unix");
    if (!t) {
        close(fd);
        mig_err_set(errp, -EBADF, "cannot wrap the socket connected to unix:%s", path);
    }
    return t;
}

static void listener_io(int fd, uint32_t events, void *opaque)
{
    MigListener *l = opaque;

    l->busy++;
    while (!l->dead) {
        int cfd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* EAGAIN: drained; anything else: try again on the next event */
        }
        size_for_stream(cfd);
        MigTransport *t = mig_transport_fd_new(l->loop, cfd, "unix");
        if (!t) {
            close(cfd);
            continue;
        }
        l->cb(l, t, l->opaque);
    }
    l->busy--;
    if (l->dead && !l->busy)
        free(l);
}

MigListener *mig_listener_unix_new(MigLoop *loop, const char *path, MigListenerCb cb,
                                   void *opaque, MigErr **errp)
{
    struct sockaddr_un sa;
    struct stat st;
    MigListener *l;
    int fd;

    if (unix_addr(&sa, path, errp) < 0)
        return NULL;
    if (!loop->ops->fd_watch) {
        mig_err_set(errp, -ENOTSUP, "unix:%s: the %s loop has no real fds", path,
                    loop->ops->name);
        return NULL;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mig_err_set(errp, -errno, "cannot create a unix socket: %s", strerror(errno));
        return NULL;
    }
    /* Replace a socket file left by an earlier run, never any other file. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        int err = errno;
        close(fd);
        mig_err_set(errp, -err, "cannot listen on unix:%s: %s", path, strerror(err));
        return NULL;
    }
    l = mig_malloc0(sizeof(*l));
    l->loop = loop;
    l->fd = fd;
    l->path = mig_strdup(path);
    l->cb = cb;
    l->opaque = opaque;
    l->watch = mig_loop_fd_watch(loop, fd, MIG_LOOP_IN, listener_io, l);
    if (!l->watch) {
        int err = errno;
        mig_err_set(errp, -err, "cannot watch unix:%s: %s", path, strerror(err));
        unlink(path);
        close(fd);
        free(l->path);
        free(l);
        return NULL;
    }
    return l;
}

void mig_listener_free(MigListener *l)
{
    if (!l || l->dead)
        return;
    mig_loop_remove(l->loop, l->watch);
    l->watch = NULL;
    close(l->fd);
    unlink(l->path);
    free(l->path);
    l->path = NULL;
    if (l->busy)
        l->dead = true;
    else
        free(l);
}
