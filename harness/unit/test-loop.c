/*
 * test-loop.c - the MigLoop interface on the real backend (impl/common/loop.c,
 * loop-epoll.c): timer and defer order, remove semantics, run/run_until and
 * fd watches over pipes; and the timer heap both backends share
 * (impl/common/timer-heap.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/loop.h"
#include "common/prng.h"
#include "common/timer-heap.h"

#define MS 1000000ull

/* A log of which callback ran, in order. */
typedef struct Log {
    MigLoop *loop;
    int seq[64];
    int n;
    MigLoopSource *victim; /* removed by the callback that has id 100 */
} Log;

typedef struct Rec {
    Log *log;
    int id;
} Rec;

static void rec_cb(void *opaque)
{
    Rec *r = opaque;
    r->log->seq[r->log->n++] = r->id;
    if (r->id == 100) {
        mig_loop_remove(r->log->loop, r->log->victim);
        r->log->victim = NULL;
    }
}

static void test_loop_timers_run_by_deadline_then_creation(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    Log log = {.loop = l};
    uint64_t now = mig_loop_now_ns(l);
    /* deadlines in the past: all due in one batch, so only the order counts */
    uint64_t dl[6] = {now - 3 * MS, now - 5 * MS, now - 3 * MS, now - 9 * MS, now - 5 * MS,
                      now - 3 * MS};
    Rec r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = (Rec){&log, i};
        mig_loop_timer_add(l, dl[i], rec_cb, &r[i]);
    }
    assert_int_equal(l->live_sources, 6);
    assert_int_equal(mig_loop_run(l), 0);
    int want[6] = {3, 1, 4, 0, 2, 5};
    assert_int_equal(log.n, 6);
    assert_memory_equal(log.seq, want, sizeof(want));
    assert_int_equal(l->live_sources, 0);
    mig_loop_free(l);
}

typedef struct Heap {
    MigLoopSource *src[1000];
    uint64_t deadline[1000];
    int order[1000];
    int n;
} Heap;

typedef struct HeapRec {
    Heap *h;
    int i;
} HeapRec;

static void heap_cb(void *opaque)
{
    HeapRec *r = opaque;
    r->h->order[r->h->n++] = r->i;
    r->h->src[r->i] = NULL;
}

static void test_loop_many_timers_keep_deadline_then_creation_order(void **state)
{
    (void)state;
    static Heap h;
    static HeapRec r[1000];
    MigLoop *l = mig_loop_epoll_new(1);
    MigPrng p;
    uint64_t now = mig_loop_now_ns(l);
    bool removed[1000] = {false};
    memset(&h, 0, sizeof(h));
    mig_prng_seed(&p, 7);
    for (int i = 0; i < 1000; i++) {
        r[i] = (HeapRec){&h, i};
        h.deadline[i] = now - 1000 * MS + mig_prng_below(&p, 50) * MS;
        h.src[i] = mig_loop_timer_add(l, h.deadline[i], heap_cb, &r[i]);
    }
    for (int i = 0; i < 1000; i += 1 + (int)mig_prng_below(&p, 9)) {
        mig_loop_remove(l, h.src[i]);
        removed[i] = true;
    }
    assert_int_equal(mig_loop_run(l), 0);
    int expect = 0;
    for (int i = 0; i < 1000; i++)
        expect += !removed[i];
    assert_int_equal(h.n, expect);
    for (int k = 1; k < h.n; k++) {
        int a = h.order[k - 1], b = h.order[k];
        assert_true(h.deadline[a] < h.deadline[b] || (h.deadline[a] == h.deadline[b] && a < b));
    }
    for (int k = 0; k < h.n; k++)
        assert_false(removed[h.order[k]]);
    assert_int_equal(l->live_sources, 0);
    mig_loop_free(l);
}

typedef struct Chain {
    Log log;
    Rec recs[8];
    int left;
} Chain;

static void chain_cb(void *opaque)
{
    Chain *c = opaque;
    c->log.seq[c->log.n++] = 50 + c->left;
    if (c->left-- > 0)
        mig_loop_defer(c->log.loop, chain_cb, c);
}

static void test_loop_defers_run_fifo_and_requeued_ones_later(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    Chain c = {.log = {.loop = l}, .left = 1};
    for (int i = 0; i < 4; i++)
        c.recs[i] = (Rec){&c.log, i};
    mig_loop_defer(l, rec_cb, &c.recs[0]);
    mig_loop_defer(l, chain_cb, &c);
    mig_loop_defer(l, rec_cb, &c.recs[1]);
    mig_loop_defer(l, rec_cb, &c.recs[2]);
    /* one batch: the four queued defers in order; the re-queued one waits */
    assert_int_equal(l->ops->run_once(l), 1);
    int want1[4] = {0, 51, 1, 2};
    assert_int_equal(c.log.n, 4);
    assert_memory_equal(c.log.seq, want1, sizeof(want1));
    assert_int_equal(l->live_sources, 1);
    assert_int_equal(mig_loop_run(l), 0);
    assert_int_equal(c.log.n, 5);
    assert_int_equal(c.log.seq[4], 50);
    mig_loop_free(l);
}

static void test_loop_removed_source_never_fires(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    Log log = {.loop = l};
    uint64_t now = mig_loop_now_ns(l);
    Rec r[5];
    for (int i = 0; i < 4; i++)
        r[i] = (Rec){&log, i};
    r[4] = (Rec){&log, 100};

    MigLoopSource *t0 = mig_loop_timer_add(l, now - MS, rec_cb, &r[0]);
    MigLoopSource *d1 = mig_loop_defer(l, rec_cb, &r[1]);
    mig_loop_timer_add(l, now - 2 * MS, rec_cb, &r[4]); /* runs first, removes r[2]'s */
    log.victim = mig_loop_timer_add(l, now - MS, rec_cb, &r[2]);
    mig_loop_defer(l, rec_cb, &r[3]);
    assert_int_equal(l->live_sources, 5);
    mig_loop_remove(l, t0);
    mig_loop_remove(l, d1);
    mig_loop_remove(l, NULL);
    assert_int_equal(l->live_sources, 3);

    assert_int_equal(mig_loop_run(l), 0);
    int want[2] = {100, 3};
    assert_int_equal(log.n, 2);
    assert_memory_equal(log.seq, want, sizeof(want));
    assert_int_equal(l->live_sources, 0);
    mig_loop_free(l);
}

static bool flag_set(void *opaque)
{
    return *(bool *)opaque;
}

static void set_flag(void *opaque)
{
    *(bool *)opaque = true;
}

static void stop_cb(void *opaque)
{
    mig_loop_stop(opaque);
}

static void test_loop_run_until_pred_deadline_stop_and_idle(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    bool flag = false;
    uint64_t t0 = mig_loop_now_ns(l);

    /* the predicate becomes true from a timer 2 ms ahead */
    mig_loop_timer_add(l, t0 + 2 * MS, set_flag, &flag);
    assert_int_equal(mig_loop_run_until(l, flag_set, &flag, t0 + 1000 * MS), 0);
    assert_true(mig_loop_now_ns(l) >= t0 + 2 * MS);
    assert_int_equal(l->live_sources, 0); /* the deadline guard is gone */

    /* a deadline with a later timer pending: -ETIMEDOUT, at or after it */
    flag = false;
    t0 = mig_loop_now_ns(l);
    MigLoopSource *late = mig_loop_timer_add(l, t0 + 3600000 * MS, set_flag, &flag);
    assert_int_equal(mig_loop_run_until(l, flag_set, &flag, t0 + 5 * MS), -ETIMEDOUT);
    uint64_t t1 = mig_loop_now_ns(l);
    assert_true(t1 >= t0 + 5 * MS);
    assert_true(t1 < t0 + 3600000 * MS); /* not the late timer's (an hour: any host) */
    assert_false(flag);
    mig_loop_remove(l, late);

    /* nothing left that could make the predicate true */
    assert_int_equal(mig_loop_run_until(l, flag_set, &flag, 0), -EDEADLK);
    assert_int_equal(mig_loop_run_until(l, flag_set, &flag, mig_loop_now_ns(l) + 1000 * MS),
                     -EDEADLK);

    /* mig_loop_stop from a callback */
    mig_loop_defer(l, stop_cb, l);
    late = mig_loop_timer_add(l, mig_loop_now_ns(l) + 10000 * MS, set_flag, &flag);
    assert_int_equal(mig_loop_run_until(l, flag_set, &flag, 0), -ECANCELED);
    assert_false(l->stop);
    mig_loop_remove(l, late);
    assert_int_equal(l->live_sources, 0);
    mig_loop_free(l);
}

typedef struct PipeCtx {
    MigLoop *loop;
    int rfd[2];
    MigLoopSource *watch[2];
    char got[2][16];
    int calls[2];
} PipeCtx;

static void pipe_cb(int fd, uint32_t events, void *opaque)
{
    PipeCtx *p = opaque;
    int i = fd == p->rfd[0] ? 0 : 1;
    assert_true(events & MIG_LOOP_IN);
    ssize_t n = read(fd, p->got[i], sizeof(p->got[i]) - 1);
    assert_true(n > 0);
    p->calls[i]++;
    /* each callback removes both watches: the other one, ready in the same
     * batch, must not run */
    mig_loop_remove(p->loop, p->watch[0]);
    mig_loop_remove(p->loop, p->watch[1]);
    p->watch[0] = p->watch[1] = NULL;
}

static void test_loop_fd_watch_pipe_and_removal_in_batch(void **state)
{
    (void)state;
    MigLoop *l = mig_loop_epoll_new(1);
    PipeCtx p = {.loop = l};
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    p.rfd[0] = a[0];
    p.rfd[1] = b[0];
    p.watch[0] = mig_loop_fd_watch(l, a[0], MIG_LOOP_IN, pipe_cb, &p);
    p.watch[1] = mig_loop_fd_watch(l, b[0], MIG_LOOP_IN, pipe_cb, &p);
    assert_non_null(p.watch[0]);
    assert_non_null(p.watch[1]);
    assert_int_equal(l->live_sources, 2);

    /* nothing readable: a run_until with a short deadline times out */
    assert_int_equal(mig_loop_run_until(l, NULL, NULL, mig_loop_now_ns(l) + 3 * MS), -ETIMEDOUT);
    assert_int_equal(p.calls[0] + p.calls[1], 0);

    assert_int_equal(write(a[1], "ping", 4), 4);
    assert_int_equal(write(b[1], "pong", 4), 4);
    assert_int_equal(mig_loop_run(l), 0);
    assert_int_equal(p.calls[0] + p.calls[1], 1);
    assert_string_equal(p.calls[0] ? p.got[0] : p.got[1], p.calls[0] ? "ping" : "pong");
    assert_int_equal(l->live_sources, 0);

    /* fd_update changes what a live watch waits for; removing it ends it */
    p.watch[0] = mig_loop_fd_watch(l, a[1], MIG_LOOP_IN, pipe_cb, &p);
    assert_non_null(p.watch[0]);
    assert_int_equal(mig_loop_fd_update(l, p.watch[0], MIG_LOOP_OUT), 0);
    mig_loop_remove(l, p.watch[0]);
    assert_int_equal(l->live_sources, 0);
    /* a regular fd that epoll refuses gives NULL, not a crash */
    assert_null(mig_loop_fd_watch(l, -1, MIG_LOOP_IN, pipe_cb, &p));
    assert_int_equal(l->live_sources, 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    mig_loop_free(l);
}

static void test_loop_free_releases_pending_sources(void **state)
{
    (void)state;
    /* leaked sources are the caller's bug, but freeing the loop frees them
     * (valgrind/ASan would flag a leak here) */
    MigLoop *l = mig_loop_epoll_new(1);
    bool flag = false;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    mig_loop_timer_add(l, mig_loop_now_ns(l) + 1000 * MS, set_flag, &flag);
    mig_loop_defer(l, set_flag, &flag);
    mig_loop_fd_watch(l, fds[0], MIG_LOOP_IN, pipe_cb, NULL);
    assert_int_equal(l->live_sources, 3);
    assert_string_equal(l->ops->name, "epoll");
    mig_loop_free(l);
    close(fds[0]);
    close(fds[1]);
    assert_false(flag);
}

/* The heap both backends share: whatever the order of pushes and removals,
 * timers come out by (deadline, seq), and each node knows its own index. */
static void test_loop_timer_heap_pops_by_deadline_then_seq(void **state)
{
    (void)state;
    enum { N = 300 };
    static MigTimerNode nodes[N];
    static bool removed[N];
    MigTimerHeap h = {0};
    MigPrng p;
    mig_prng_seed(&p, 7);
    for (size_t i = 0; i < N; i++) {
        nodes[i] = (MigTimerNode){.deadline = mig_prng_below(&p, 20), .seq = i};
        mig_timer_heap_push(&h, &nodes[i]);
    }
    for (size_t i = 0; i < N; i += 3) { /* cancel a third, from anywhere */
        mig_timer_heap_remove(&h, &nodes[i]);
        removed[i] = true;
    }
    for (size_t i = 0; i < h.len; i++)
        assert_int_equal(mig_timer_heap_at(&h, i)->idx, i);
    size_t out = 0;
    const MigTimerNode *prev = NULL;
    MigTimerNode *top;
    while ((top = mig_timer_heap_top(&h))) {
        assert_false(removed[top->seq]);
        if (prev)
            assert_true(prev->deadline < top->deadline ||
                        (prev->deadline == top->deadline && prev->seq < top->seq));
        mig_timer_heap_remove(&h, top);
        prev = top;
        out++;
    }
    assert_int_equal(out, N - (N + 2) / 3);
    mig_timer_heap_clear(&h);
    assert_null(h.v);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_timers_run_by_deadline_then_creation),
        cmocka_unit_test(test_loop_many_timers_keep_deadline_then_creation_order),
        cmocka_unit_test(test_loop_defers_run_fifo_and_requeued_ones_later),
        cmocka_unit_test(test_loop_removed_source_never_fires),
        cmocka_unit_test(test_loop_run_until_pred_deadline_stop_and_idle),
        cmocka_unit_test(test_loop_fd_watch_pipe_and_removal_in_batch),
        cmocka_unit_test(test_loop_free_releases_pending_sources),
        cmocka_unit_test(test_loop_timer_heap_pops_by_deadline_then_seq),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
