/*
 * exec-side-view.c - side views of the sim loop and of a mem transport.
 *
 * Owns: SideLoop (a MigLoop over the run's sim loop) and the side
 * transport (a MigTransport over one end of the run's mem link).
 * Called by: exec-side.c (a machine runs on its side's loop), exec-steps.c
 * (a migrate wraps the link's two ends), exec-selftest.c.
 *
 * Why: fault specs count hits per side (src:..., dst:...), and both
 * machines share one sim loop.  Every callback a side registers goes
 * through a trampoline that makes its side the injector's current one and
 * restores the previous side after.  A killed side (`dead`) gets no more
 * callbacks: its timers, defers and transport watches fire into nothing,
 * as a killed process would (a timer or defer that came due stays valid
 * for its owner to remove, until the side loop is freed).  The views own no events of their own: a
 * side loop's live_sources counts what its side registered, so the
 * resource oracle sees a side that leaks a timer.
 */
#include <stdlib.h>

#include "exec-internal.h"

/* ---- side views of the sim loop ---- */

typedef struct SideSrc {
    SideLoop *sl;
    MigLoopCb cb;
    void *opaque;
    MigLoopSource *inner; /* NULL: came due on a dead side (a zombie) */
    struct SideSrc *next; /* on sl->zombies */
} SideSrc;

void exec__side_enter(SideLoop *sl, MigFaultSide *prev)
{
    *prev = fault_injector_side(sl->inj);
    fault_injector_set_side(sl->inj, sl->side);
}

static void side_tramp(void *p)
{
    SideSrc *s = p;
    SideLoop *sl = s->sl;
    MigLoopCb cb = s->cb;
    void *opaque = s->opaque;
    sl->base.live_sources--;
    if (sl->dead) {
        /* Fires into nothing; its owner (the killed side's code) still
         * holds it and may remove it later: it stays valid until the side
         * loop goes. */
        s->inner = NULL;
        s->next = sl->zombies;
        sl->zombies = s;
        return;
    }
    free(s);
    MigFaultSide prev;
    exec__side_enter(sl, &prev);
    cb(opaque);
    fault_injector_set_side(sl->inj, prev);
}

static uint64_t side_now(MigLoop *l)
{
    return mig_loop_now_ns(((SideLoop *)l)->inner);
}

static MigLoopSource *side_timer_add(MigLoop *l, uint64_t deadline, MigLoopCb cb, void *opaque)
{
    SideLoop *sl = (SideLoop *)l;
    SideSrc *s = mig_malloc0(sizeof(*s));
    *s = (SideSrc){sl, cb, opaque, NULL};
    s->inner = mig_loop_timer_add(sl->inner, deadline, side_tramp, s);
    if (!s->inner) {
        free(s);
        return NULL;
    }
    l->live_sources++;
    return (MigLoopSource *)s;
}

static MigLoopSource *side_defer(MigLoop *l, MigLoopCb cb, void *opaque)
{
    SideLoop *sl = (SideLoop *)l;
    SideSrc *s = mig_malloc0(sizeof(*s));
    *s = (SideSrc){sl, cb, opaque, NULL};
    s->inner = mig_loop_defer(sl->inner, side_tramp, s);
    if (!s->inner) {
        free(s);
        return NULL;
    }
    l->live_sources++;
    return (MigLoopSource *)s;
}

static void side_remove(MigLoop *l, MigLoopSource *src)
{
    SideSrc *s = (SideSrc *)src;
    if (!s->inner) /* a zombie: counted out already, freed with the side loop */
        return;
    mig_loop_remove(((SideLoop *)l)->inner, s->inner);
    l->live_sources--;
    free(s);
}

static int side_run_once(MigLoop *l)
{
    return ((SideLoop *)l)->inner->ops->run_once(((SideLoop *)l)->inner);
}

static void side_free(MigLoop *l)
{
    SideLoop *sl = (SideLoop *)l;
    while (sl->zombies) {
        SideSrc *z = sl->zombies;
        sl->zombies = z->next;
        free(z);
    }
    free(l);
}

static const MigLoopOps side_ops = {
    .name = "sim-side",
    .now_ns = side_now,
    .timer_add = side_timer_add,
    .defer = side_defer,
    .remove = side_remove,
    .run_once = side_run_once,
    .free = side_free,
};

SideLoop *exec__side_loop_new(MigLoop *inner, FaultInjector *inj, MigFaultSide side)
{
    SideLoop *sl = mig_malloc0(sizeof(*sl));
    sl->base.ops = &side_ops;
    sl->base.trace = inner->trace;
    sl->base.faults = inner->faults; /* the injector's gate, whatever side runs */
    mig_prng_fork(&inner->prng, &sl->base.prng);
    sl->inner = inner;
    sl->inj = inj;
    sl->side = side;
    return sl;
}

/* ---- side views of a mem transport (watch callbacks carry the side) ---- */

typedef struct SideTransport {
    MigTransport base;
    MigTransport *inner;
    long *live; /* the run's count of open harness transports */
    SideLoop *sl;
    MigTransportCb cb;
    void *opaque;
} SideTransport;

static ssize_t st_read(MigTransport *t, void *buf, size_t len)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = mig_transport_read(st->inner, buf, len);
    if (n > 0)
        t->bytes_read += (uint64_t)n;
    return n;
}

static ssize_t st_readv(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = st->inner->ops->readv(st->inner, iov, iovcnt);
    if (n > 0)
        t->bytes_read += (uint64_t)n;
    return n;
}

static ssize_t st_write(MigTransport *t, const void *buf, size_t len)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = mig_transport_write(st->inner, buf, len);
    if (n > 0)
        t->bytes_written += (uint64_t)n;
    return n;
}

static ssize_t st_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = mig_transport_writev(st->inner, iov, iovcnt);
    if (n > 0)
        t->bytes_written += (uint64_t)n;
    return n;
}

static void st_tramp(MigTransport *inner, uint32_t events, void *opaque)
{
    (void)inner;
    SideTransport *st = opaque;
    SideLoop *sl = st->sl; /* the callback may close (free) st */
    if (sl->dead) {
        /* a killed process's sockets wake nobody: stop the (level-triggered)
         * readiness, or a reset link would re-deliver it forever */
        mig_transport_watch(st->inner, 0, NULL, NULL);
        st->cb = NULL;
        return;
    }
    if (!st->cb)
        return;
    MigFaultSide prev;
    exec__side_enter(sl, &prev);
    st->cb(&st->base, events, st->opaque);
    fault_injector_set_side(sl->inj, prev);
}

static int st_watch(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque)
{
    SideTransport *st = (SideTransport *)t;
    st->cb = events ? cb : NULL;
    st->opaque = opaque;
    return mig_transport_watch(st->inner, events, events ? st_tramp : NULL, st);
}

static int st_shutdown_write(MigTransport *t)
{
    return mig_transport_shutdown_write(((SideTransport *)t)->inner);
}

static void st_close(MigTransport *t)
{
    SideTransport *st = (SideTransport *)t;
    mig_transport_close(st->inner);
    (*st->live)--;
    free(st);
}

static const MigTransportOps st_ops = {
    .kind = "mem",
    .read = st_read,
    .readv = st_readv,
    .write = st_write,
    .writev = st_writev,
    .watch = st_watch,
    .shutdown_write = st_shutdown_write,
    .close = st_close,
};

MigTransport *exec__side_transport_new(SideLoop *sl, MigTransport *inner, long *live)
{
    SideTransport *st = mig_malloc0(sizeof(*st));
    st->base.ops = &st_ops;
    st->base.loop = &sl->base;
    st->base.duplex = mig_transport_is_duplex(inner);
    st->base.keyed_ram = inner->keyed_ram;
    st->inner = inner;
    st->sl = sl;
    st->live = live;
    (*live)++;
    return &st->base;
}

void exec__side_transport_close_orphan(MigTransport *t)
{
    SideTransport *st = (SideTransport *)t;
    st->sl = NULL;
    mig_transport_close(t);
}
