/*
 * loop-epoll.c - the real MigLoop backend: epoll for fds, CLOCK_MONOTONIC for
 * time.
 *
 * Ordering: timers run by (deadline, creation sequence), never by address;
 * defers run FIFO; fd callbacks in the order the kernel reports them.  One
 * run_once is one batch: ready fds, then due timers, then the defers queued
 * so far (defers queued by those defers wait for the next batch, so a defer
 * that re-queues itself cannot starve fds and timers).
 *
 * Removal: a removed source never fires.  Timers and defers are unlinked at
 * once; an fd watch is taken out of epoll at once but its memory waits on a
 * zombie list until the end of the batch, because the kernel's event array
 * for this batch may still point at it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "timer-heap.h"

enum { SRC_TIMER, SRC_DEFER, SRC_FD };
enum { ST_PENDING, ST_FIRING, ST_DEAD };

struct MigLoopSource {
    uint8_t kind;
    uint8_t state;
    MigTimerNode timer; /* deadline (timers) and seq: creation order (all) */
    MigLoopCb cb;
    MigLoopFdCb fd_cb;
    void *opaque;
    int fd;
    uint32_t events;
    struct SrcList *list;       /* the list it is on (defers, batch, watches, zombies) */
    MigLoopSource *prev, *next;
};

typedef struct SrcList {
    MigLoopSource *head, *tail;
} SrcList;

typedef struct EpollLoop {
    MigLoop base;
    int epfd;
    uint64_t seq;
    MigTimerHeap timers;
    SrcList defers;
    SrcList batch; /* defers being run by the current batch */
    SrcList watches;
    SrcList zombies;
} EpollLoop;

#define MAX_EVENTS 64

static EpollLoop *E(MigLoop *l)
{
    return (EpollLoop *)l;
}

/* ---- lists ---- */

static void list_push(SrcList *q, MigLoopSource *s)
{
    s->list = q;
    s->next = NULL;
    s->prev = q->tail;
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
}

static void list_unlink(MigLoopSource *s)
{
    SrcList *q = s->list;
    if (s->prev)
        s->prev->next = s->next;
    else
        q->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        q->tail = s->prev;
    s->prev = s->next = NULL;
    s->list = NULL;
}

/* ---- timers (impl/common/timer-heap.c, ordered by (deadline, seq)) ---- */

static MigLoopSource *timer_src(MigTimerNode *n)
{
    return MIG_CONTAINER_OF(n, MigLoopSource, timer);
}

/* ---- ops ---- */

static uint64_t epoll_now_ns(MigLoop *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static MigLoopSource *src_new(EpollLoop *e, int kind, MigLoopCb cb, void *opaque)
{
    MigLoopSource *s = mig_malloc0(sizeof(*s));
    s->kind = kind;
    s->state = ST_PENDING;
    s->timer.seq = e->seq++;
    s->cb = cb;
    s->opaque = opaque;
    s->fd = -1;
    e->base.live_sources++;
    return s;
}

static MigLoopSource *epoll_timer_add(MigLoop *l, uint64_t deadline_ns, MigLoopCb cb,
                                      void *opaque)
{
    EpollLoop *e = E(l);
    MigLoopSource *s = src_new(e, SRC_TIMER, cb, opaque);
    s->timer.deadline = deadline_ns;
    mig_timer_heap_push(&e->timers, &s->timer);
    return s;
}

static MigLoopSource *epoll_defer(MigLoop *l, MigLoopCb cb, void *opaque)
{
    EpollLoop *e = E(l);
    MigLoopSource *s = src_new(e, SRC_DEFER, cb, opaque);
    list_push(&e->defers, s);
    return s;
}

static uint32_t to_epoll(uint32_t ev)
{
    return ((ev & MIG_LOOP_IN) ? EPOLLIN | EPOLLRDHUP : 0) | ((ev & MIG_LOOP_OUT) ? EPOLLOUT : 0);
}

static uint32_t from_epoll(uint32_t ev)
{
    return ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) ? MIG_LOOP_IN : 0) |
           ((ev & EPOLLOUT) ? MIG_LOOP_OUT : 0) | ((ev & EPOLLERR) ? MIG_LOOP_ERR : 0) |
           ((ev & EPOLLHUP) ? MIG_LOOP_HUP : 0);
}

static MigLoopSource *epoll_fd_watch(MigLoop *l, int fd, uint32_t events, MigLoopFdCb cb,
                                     void *opaque)
{
    EpollLoop *e = E(l);
    struct epoll_event ev = {.events = to_epoll(events)};
    MigLoopSource *s = mig_malloc0(sizeof(*s));

    ev.data.ptr = s;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(s);
        return NULL;
    }
    s->kind = SRC_FD;
    s->state = ST_PENDING;
    s->timer.seq = e->seq++;
    s->fd_cb = cb;
    s->opaque = opaque;
    s->fd = fd;
    s->events = events;
    list_push(&e->watches, s);
    l->live_sources++;
    return s;
}

static int epoll_fd_update(MigLoop *l, MigLoopSource *s, uint32_t events)
{
    EpollLoop *e = E(l);
    struct epoll_event ev = {.events = to_epoll(events)};

    if (s->kind != SRC_FD || s->state == ST_DEAD)
        return -EINVAL;
    ev.data.ptr = s;
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        return -errno;
    s->events = events;
    return 0;
}

static void epoll_remove(MigLoop *l, MigLoopSource *s)
{
    EpollLoop *e = E(l);

    if (s->state == ST_DEAD)
        return;
    if (s->state == ST_FIRING) {
        /* A one-shot source removing itself from its own callback: it is
         * freed when the callback returns. */
        return;
    }
    switch (s->kind) {
    case SRC_TIMER:
        mig_timer_heap_remove(&e->timers, &s->timer);
        free(s);
        break;
    case SRC_DEFER:
        list_unlink(s);
        free(s);
        break;
    case SRC_FD:
        /* The fd may already be closed; then the kernel dropped it itself. */
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, s->fd, NULL);
        s->state = ST_DEAD;
        list_unlink(s);
        list_push(&e->zombies, s);
        break;
    }
    l->live_sources--;
}

static void free_list(SrcList *q)
{
    while (q->head) {
        MigLoopSource *s = q->head;
        list_unlink(s);
        free(s);
    }
}

static void fire(EpollLoop *e, MigLoopSource *s)
{
    s->state = ST_FIRING;
    s->cb(s->opaque);
    free(s);
}

static int epoll_run_once(MigLoop *l)
{
    EpollLoop *e = E(l);
    struct epoll_event evs[MAX_EVENTS];
    int timeout, n;
    uint64_t now, batch_seq;

    MigTimerNode *top = mig_timer_heap_top(&e->timers);
    if (!e->defers.head && !top && !e->watches.head)
        return 0;
    if (e->defers.head) {
        timeout = 0;
    } else if (top) {
        now = epoll_now_ns(l);
        uint64_t dl = top->deadline;
        uint64_t wait = dl > now ? dl - now : 0;
        uint64_t ms = (wait + 999999) / 1000000; /* round up: wake at or after dl */
        timeout = ms > 3600000 ? 3600000 : (int)ms;
    } else {
        timeout = -1;
    }

    do {
        n = epoll_wait(e->epfd, evs, MAX_EVENTS, timeout);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;

    for (int i = 0; i < n; i++) {
        MigLoopSource *s = evs[i].data.ptr;
        if (s->state == ST_DEAD)
            continue;
        s->fd_cb(s->fd, from_epoll(evs[i].events), s->opaque);
    }

    /* Timers due now, but not those added by this batch's callbacks. */
    now = epoll_now_ns(l);
    batch_seq = e->seq;
    while ((top = mig_timer_heap_top(&e->timers)) && top->deadline <= now &&
           top->seq < batch_seq) {
        MigLoopSource *s = timer_src(top);
        mig_timer_heap_remove(&e->timers, top);
        l->live_sources--;
        fire(e, s);
    }

    /* Defers queued so far, FIFO. */
    while (e->defers.head) {
        MigLoopSource *s = e->defers.head;
        list_unlink(s);
        list_push(&e->batch, s);
    }
    while (e->batch.head) {
        MigLoopSource *s = e->batch.head;
        list_unlink(s);
        l->live_sources--;
        fire(e, s);
    }

    free_list(&e->zombies);
    /* A wait that ended with nothing due (a spurious wakeup) still counts as
     * progress: sources are left. */
    return 1;
}

static void epoll_free(MigLoop *l)
{
    EpollLoop *e = E(l);
    for (size_t i = 0; i < e->timers.len; i++)
        free(timer_src(mig_timer_heap_at(&e->timers, i)));
    mig_timer_heap_clear(&e->timers);
    free_list(&e->defers);
    free_list(&e->batch);
    free_list(&e->zombies);
    /* Watches still registered are the caller's leak (live_sources reported
     * them); free their memory all the same. */
    free_list(&e->watches);
    close(e->epfd);
    free(e);
}

static const MigLoopOps epoll_ops = {
    .name = "epoll",
    .now_ns = epoll_now_ns,
    .timer_add = epoll_timer_add,
    .defer = epoll_defer,
    .fd_watch = epoll_fd_watch,
    .fd_update = epoll_fd_update,
    .remove = epoll_remove,
    .run_once = epoll_run_once,
    .free = epoll_free,
};

MigLoop *mig_loop_epoll_new(uint64_t seed)
{
    EpollLoop *e = mig_malloc0(sizeof(*e));
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        free(e);
        return NULL;
    }
    e->base.ops = &epoll_ops;
    mig_prng_seed(&e->base.prng, seed);
    return &e->base;
}
