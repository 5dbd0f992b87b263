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

#include "sim.h"

enum { SRC_TIMER, SRC_DEFER };
enum { ST_PENDING, ST_FIRING };

struct MigLoopSource {
    uint8_t kind;
    uint8_t state;
    uint64_t deadline;
    uint64_t seq;
    size_t heap_idx;
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
    MigLoopSource **heap;
    size_t heap_len, heap_cap;
    MigLoopSource *dhead, *dtail;
    MigLoopSource **cand; /* scratch: due timers of the current step */
    size_t cand_cap;
    size_t *stack; /* scratch: heap walk */
} SimLoop;

static const MigLoopOps sim_ops;

static SimLoop *S(MigLoop *l)
{
    return (SimLoop *)l;
}

/* ---- timer heap, ordered by (deadline, seq) ---- */

static bool timer_before(const MigLoopSource *a, const MigLoopSource *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(SimLoop *s, size_t i, MigLoopSource *src)
{
    s->heap[i] = src;
    src->heap_idx = i;
}

static void heap_up(SimLoop *s, size_t i)
{
    MigLoopSource *src = s->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!timer_before(src, s->heap[p]))
            break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, src);
}

static void heap_down(SimLoop *s, size_t i)
{
    MigLoopSource *src = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_len)
            break;
        if (c + 1 < s->heap_len && timer_before(s->heap[c + 1], s->heap[c]))
            c++;
        if (!timer_before(s->heap[c], src))
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, src);
}

static void heap_push(SimLoop *s, MigLoopSource *src)
{
    if (s->heap_len == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 64;
        s->heap = mig_realloc(s->heap, s->heap_cap * sizeof(*s->heap));
        s->cand = mig_realloc(s->cand, s->heap_cap * sizeof(*s->cand));
        s->stack = mig_realloc(s->stack, s->heap_cap * sizeof(*s->stack));
    }
    heap_set(s, s->heap_len++, src);
    heap_up(s, src->heap_idx);
}

static void heap_remove(SimLoop *s, MigLoopSource *src)
{
    size_t i = src->heap_idx;
    MigLoopSource *last = s->heap[--s->heap_len];
    if (i == s->heap_len)
        return;
    heap_set(s, i, last);
    if (i > 0 && timer_before(last, s->heap[(i - 1) / 2]))
        heap_up(s, i);
    else
        heap_down(s, i);
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
    src->seq = s->seq++;
    src->cb = cb;
    src->opaque = opaque;
    s->base.live_sources++;
    return src;
}

static MigLoopSource *sim_timer_add(MigLoop *l, uint64_t deadline_ns, MigLoopCb cb, void *opaque)
{
    SimLoop *s = S(l);
    MigLoopSource *src = src_new(s, SRC_TIMER, cb, opaque);
    src->deadline = deadline_ns;
    heap_push(s, src);
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
        heap_remove(s, src);
    else
        defer_unlink(s, src);
    free(src);
    l->live_sources--;
}

/* Due timers, in heap-walk order (a function of the call sequence only). */
static size_t collect_due(SimLoop *s)
{
    size_t n = 0, sp = 0;

    if (!s->heap_len || s->heap[0]->deadline > s->now)
        return 0;
    s->stack[sp++] = 0;
    while (sp) {
        size_t i = s->stack[--sp];
        s->cand[n++] = s->heap[i];
        for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < s->heap_len; c++)
            if (s->heap[c]->deadline <= s->now)
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
    if (!s->dhead && !s->heap_len)
        return 0;
    if (!s->dhead && s->heap[0]->deadline > s->now)
        s->now = s->heap[0]->deadline; /* idle: jump to the next event */

    ndue = collect_due(s);
    total = ndue + (s->dhead ? 1 : 0);
    size_t pick = total > 1 ? (size_t)mig_prng_below(&s->sched, total) : 0;
    if (pick < ndue) {
        src = s->cand[pick];
        heap_remove(s, src);
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
    for (size_t i = 0; i < s->heap_len; i++)
        free(s->heap[i]);
    while (s->dhead) {
        MigLoopSource *src = s->dhead;
        defer_unlink(s, src);
        free(src);
    }
    free(s->heap);
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
    if (s->heap_len) {
        *t_ns = MIG_MAX(s->heap[0]->deadline, s->now);
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
