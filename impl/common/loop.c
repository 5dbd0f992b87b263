/*
 * loop.c - the backend-independent part of MigLoop (see loop.h): forwarding
 * to the backend's ops, and the run loops built on run_once.
 *
 * Live-source accounting (loop->live_sources) is done by each backend, since
 * only the backend knows when a one-shot source has fired.
 */
#include "loop.h"

MigLoopSource *mig_loop_timer_add(MigLoop *l, uint64_t deadline_ns, MigLoopCb cb, void *opaque)
{
    return l->ops->timer_add(l, deadline_ns, cb, opaque);
}

MigLoopSource *mig_loop_defer(MigLoop *l, MigLoopCb cb, void *opaque)
{
    return l->ops->defer(l, cb, opaque);
}

MigLoopSource *mig_loop_fd_watch(MigLoop *l, int fd, uint32_t events, MigLoopFdCb cb,
                                 void *opaque)
{
    if (!l->ops->fd_watch)
        return NULL;
    return l->ops->fd_watch(l, fd, events, cb, opaque);
}

int mig_loop_fd_update(MigLoop *l, MigLoopSource *src, uint32_t events)
{
    if (!l->ops->fd_update || !src)
        return -EINVAL;
    return l->ops->fd_update(l, src, events);
}

void mig_loop_remove(MigLoop *l, MigLoopSource *src)
{
    if (src)
        l->ops->remove(l, src);
}

int mig_loop_run(MigLoop *l)
{
    int ret = 0;
    while (!l->stop) {
        ret = l->ops->run_once(l);
        if (ret <= 0)
            break;
    }
    l->stop = false;
    return ret < 0 ? ret : 0;
}

static void deadline_reached(void *opaque)
{
    *(bool *)opaque = true;
}

int mig_loop_run_until(MigLoop *l, bool (*pred)(void *opaque), void *opaque,
                       uint64_t deadline_ns)
{
    bool expired = false;
    MigLoopSource *guard = NULL;
    int ret;

    /* A guard timer makes a waiting backend wake up at the deadline even
     * when nothing else would happen before it. */
    if (deadline_ns) {
        guard = mig_loop_timer_add(l, deadline_ns, deadline_reached, &expired);
        if (!guard)
            return -ENOMEM;
    }
    for (;;) {
        if (pred && pred(opaque)) {
            ret = 0;
            break;
        }
        if (l->stop) {
            l->stop = false;
            ret = -ECANCELED;
            break;
        }
        if (expired || (deadline_ns && mig_loop_now_ns(l) >= deadline_ns)) {
            ret = -ETIMEDOUT;
            break;
        }
        /* Only our own guard left: nothing else can ever make pred true. */
        if (l->live_sources - (guard && !expired ? 1 : 0) <= 0) {
            ret = -EDEADLK;
            break;
        }
        ret = l->ops->run_once(l);
        if (ret < 0)
            break;
        if (ret == 0) {
            ret = -EDEADLK;
            break;
        }
    }
    if (!expired)
        mig_loop_remove(l, guard);
    return ret;
}

void mig_loop_free(MigLoop *l)
{
    if (l)
        l->ops->free(l);
}
