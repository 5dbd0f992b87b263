/*
 * sim.c - the deterministic simulator backend of MigLoop (see sim.h).
 *
 * One run_once is one step: one callback.  The candidates of a step are the
 * timers due at the virtual time (found by walking the top of the heap, whose
 * shape depends only on the sequence of calls, never on addresses) plus the
 * head of the defer FIFO; the scheduler's PRNG picks one when there are
 * several.  The scheduler draws from its own generator forked from the loop's
 * seed at creation, so an engine module drawing one more number from
 * loop->prng does not reshuffle every later scheduling choice.
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/timer-heap.h"
#include "sim.h"

enum { SRC_TIMER, SRC_DEFER };
enum { ST_PENDING, ST_FIRING };

struct MigLoopSource {
    uint8_t kind;
    uint8_t state;
    MigTimerNode timer; /* deadline (timers) and seq: creation order (all) */
    MigLoopCb cb;
    void *opaque;
    MigLoopSource *prev, *next; /* defer FIFO */
};

typedef struct SimLoop {
    MigLoop base;
    uint64_t now;
    uint64_t seq;
    uint64_t steps;
    uint64_t step_limit;
    MigPrng sched;
    MigTimerHeap timers;
    MigLoopSource *dhead, *dtail;
    MigLoopSource **cand; /* scratch: due timers of the current step */
    size_t cand_cap;
    size_t *stack; /* scratch: heap walk */
    size_t stack_cap;
} SimLoop;

static const MigLoopOps sim_ops;

static SimLoop *S(MigLoop *l)
{
    return (SimLoop *)l;
}

/* ---- timers (impl/common/timer-heap.c, ordered by (deadline, seq)) ---- */

static MigLoopSource *timer_src(MigTimerNode *n)
{
    return MIG_CONTAINER_OF(n, MigLoopSource, timer);
}

static void timer_push(SimLoop *s, MigLoopSource *src)
{
    mig_timer_heap_push(&s->timers, &src->timer);
    /* the heap walk's scratch arrays hold up to every timer */
    MIG_GROW(s->cand, s->cand_cap, s->timers.len, 64);
    MIG_GROW(s->stack, s->stack_cap, s->timers.len, 64);
}

/* ---- defer FIFO ---- */

static void defer_unlink(SimLoop *s, MigLoopSource *src)
{
    if (src->prev)
        src->prev->next = src->next;
    else
        s->dhead = src->next;
    if (src->next)
        src->next->prev = src->prev;
    else
        s->dtail = src->prev;
    src->prev = src->next = NULL;
}

/* ---- ops ---- */

static uint64_t sim_now_ns(MigLoop *l)
{
    return S(l)->now;
}

static MigLoopSource *src_new(SimLoop *s, int kind, MigLoopCb cb, void *opaque)
{
    MigLoopSource *src = mig_malloc0(sizeof(*src));
    src->kind = kind;
    src->state = ST_PENDING;
    src->timer.seq = s->seq++;
    src->cb = cb;
    src->opaque = opaque;
    s->base.live_sources++;
    return src;
}

static MigLoopSource *sim_timer_add(MigLoop *l, uint64_t deadline_ns, MigLoopCb cb, void *opaque)
{
    SimLoop *s = S(l);
    MigLoopSource *src = src_new(s, SRC_TIMER, cb, opaque);
    src->timer.deadline = deadline_ns;
    timer_push(s, src);
    return src;
}

static MigLoopSource *sim_defer(MigLoop *l, MigLoopCb cb, void *opaque)
{
    SimLoop *s = S(l);
    MigLoopSource *src = src_new(s, SRC_DEFER, cb, opaque);
    src->prev = s->dtail;
    if (s->dtail)
        s->dtail->next = src;
    else
        s->dhead = src;
    s->dtail = src;
    return src;
}

static int sim_fd_update(MigLoop *l, MigLoopSource *src, uint32_t events)
{
    return -ENOTSUP;
}

static void sim_remove(MigLoop *l, MigLoopSource *src)
{
    SimLoop *s = S(l);

    if (src->state == ST_FIRING)
        return; /* removing itself from its own callback: freed on return */
    if (src->kind == SRC_TIMER)
        mig_timer_heap_remove(&s->timers, &src->timer);
    else
        defer_unlink(s, src);
    free(src);
    l->live_sources--;
}

/* Due timers, in heap-walk order (a function of the call sequence only). */
static size_t collect_due(SimLoop *s)
{
    const MigTimerHeap *h = &s->timers;
    MigTimerNode *top = mig_timer_heap_top(h);
    size_t n = 0, sp = 0;

    if (!top || top->deadline > s->now)
        return 0;
    s->stack[sp++] = 0;
    while (sp) {
        size_t i = s->stack[--sp];
        s->cand[n++] = timer_src(mig_timer_heap_at(h, i));
        for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < h->len; c++)
            if (mig_timer_heap_at(h, c)->deadline <= s->now)
                s->stack[sp++] = c;
    }
    return n;
}

static int sim_run_once(MigLoop *l)
{
    SimLoop *s = S(l);
    MigLoopSource *src;
    size_t ndue, total;

    if (s->step_limit && s->steps >= s->step_limit)
        return -ELOOP;
    MigTimerNode *top = mig_timer_heap_top(&s->timers);
    if (!s->dhead && !top)
        return 0;
    if (!s->dhead && top->deadline > s->now)
        s->now = top->deadline; /* idle: jump to the next event */

    ndue = collect_due(s);
    total = ndue + (s->dhead ? 1 : 0);
    size_t pick = total > 1 ? (size_t)mig_prng_below(&s->sched, total) : 0;
    if (pick < ndue) {
        src = s->cand[pick];
        mig_timer_heap_remove(&s->timers, &src->timer);
    } else {
        src = s->dhead;
        defer_unlink(s, src);
    }
    l->live_sources--;
    s->steps++;
    src->state = ST_FIRING;
    src->cb(src->opaque);
    free(src);
    return 1;
}

static void sim_free(MigLoop *l)
{
    SimLoop *s = S(l);
    for (size_t i = 0; i < s->timers.len; i++)
        free(timer_src(mig_timer_heap_at(&s->timers, i)));
    while (s->dhead) {
        MigLoopSource *src = s->dhead;
        defer_unlink(s, src);
        free(src);
    }
    mig_timer_heap_clear(&s->timers);
    free(s->cand);
    free(s->stack);
    free(s);
}

static const MigLoopOps sim_ops = {
    .name = "sim",
    .now_ns = sim_now_ns,
    .timer_add = sim_timer_add,
    .defer = sim_defer,
    .fd_watch = NULL,
    .fd_update = sim_fd_update,
    .remove = sim_remove,
    .run_once = sim_run_once,
    .free = sim_free,
};

MigLoop *mig_sim_loop_new(uint64_t seed)
{
    SimLoop *s = mig_malloc0(sizeof(*s));
    s->base.ops = &sim_ops;
    mig_prng_seed(&s->base.prng, seed);
    mig_prng_fork(&s->base.prng, &s->sched);
    return &s->base;
}

bool mig_loop_is_sim(const MigLoop *l)
{
    return l && l->ops == &sim_ops;
}

bool mig_sim_next_time(MigLoop *l, uint64_t *t_ns)
{
    SimLoop *s = S(l);
    if (s->dhead) {
        *t_ns = s->now;
        return true;
    }
    MigTimerNode *top = mig_timer_heap_top(&s->timers);
    if (top) {
        *t_ns = MIG_MAX(top->deadline, s->now);
        return true;
    }
    return false;
}

int mig_sim_run_until_time(MigLoop *l, uint64_t t_ns)
{
    SimLoop *s = S(l);
    uint64_t next;

    while (mig_sim_next_time(l, &next) && next <= t_ns) {
        if (l->stop) {
            l->stop = false;
            return -ECANCELED;
        }
        int ret = sim_run_once(l);
        if (ret < 0)
            return ret;
    }
    if (s->now < t_ns)
        s->now = t_ns;
    return 0;
}

int mig_sim_run_for(MigLoop *l, uint64_t delta_ns)
{
    return mig_sim_run_until_time(l, S(l)->now + delta_ns);
}

uint64_t mig_sim_steps(const MigLoop *l)
{
    return ((const SimLoop *)l)->steps;
}

long mig_sim_live_sources(const MigLoop *l)
{
    return l->live_sources;
}

void mig_sim_set_step_limit(MigLoop *l, uint64_t max_steps)
{
    S(l)->step_limit = max_steps;
}
