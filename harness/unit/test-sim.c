/*
 * test-sim.c - the deterministic simulator loop (harness/sim): seeded
 * interleavings, the virtual clock, run-until-time, the leak counter and the
 * step limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/loop.h"
#include "sim/sim.h"

#define MS 1000000ull
#define NCB 12

typedef struct Order {
    MigLoop *loop;
    int seq[256];
    uint64_t at[256];
    int n;
} Order;

typedef struct Rec {
    Order *o;
    int id;
} Rec;

static void rec_cb(void *opaque)
{
    Rec *r = opaque;
    r->o->at[r->o->n] = mig_loop_now_ns(r->o->loop);
    r->o->seq[r->o->n++] = r->id;
}

/* Twelve callbacks due at the same virtual time (8 timers, 4 defers) plus
 * one later timer; returns the order they ran in. */
static void run_scenario(uint64_t seed, Order *o)
{
    MigLoop *l = mig_sim_loop_new(seed);
    Rec r[NCB + 1];
    memset(o, 0, sizeof(*o));
    o->loop = l;
    for (int i = 0; i <= NCB; i++)
        r[i] = (Rec){o, i};
    for (int i = 0; i < 8; i++)
        mig_loop_timer_add(l, 10 * MS, rec_cb, &r[i]);
    for (int i = 8; i < NCB; i++)
        mig_loop_defer(l, rec_cb, &r[i]);
    mig_loop_timer_add(l, 20 * MS, rec_cb, &r[NCB]);
    assert_int_equal(mig_loop_run(l), 0);
    assert_int_equal(mig_sim_steps(l), NCB + 1);
    mig_loop_free(l);
}

static void test_sim_same_seed_same_order(void **state)
{
    (void)state;
    Order a, b;
    run_scenario(0x5eed, &a);
    run_scenario(0x5eed, &b);
    assert_int_equal(a.n, NCB + 1);
    assert_memory_equal(a.seq, b.seq, sizeof(a.seq));
    assert_memory_equal(a.at, b.at, sizeof(a.at));
}

static void test_sim_different_seeds_reorder_equal_time_events(void **state)
{
    (void)state;
    Order base, other;
    int differ = 0;
    run_scenario(1, &base);
    for (uint64_t seed = 2; seed < 12; seed++) {
        run_scenario(seed, &other);
        differ += memcmp(base.seq, other.seq, sizeof(base.seq)) != 0;
        /* whatever the seed: defers keep FIFO among themselves, the later
         * timer comes last, and every callback ran exactly once */
        int last_defer = 7, seen = 0;
        for (int i = 0; i < NCB; i++) {
            if (other.seq[i] >= 8) {
                assert_true(other.seq[i] > last_defer);
                last_defer = other.seq[i];
            }
            seen |= 1 << other.seq[i];
        }
        assert_int_equal(seen, (1 << NCB) - 1);
        assert_int_equal(other.seq[NCB], NCB);
        assert_int_equal(other.at[NCB], 20 * MS);
    }
    assert_true(differ >= 9);
}

static void test_sim_clock_jumps_to_next_timer(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(7);
    Order o = {.loop = l};
    Rec r[3] = {{&o, 0}, {&o, 1}, {&o, 2}};
    struct timespec w0, w1;

    assert_string_equal(l->ops->name, "sim");
    assert_true(mig_loop_is_sim(l));
    assert_int_equal(mig_loop_now_ns(l), 0);
    /* an hour of virtual time passes without any real waiting */
    mig_loop_timer_add(l, 3600000 * MS, rec_cb, &r[1]);
    mig_loop_timer_add(l, 5 * MS, rec_cb, &r[0]);
    uint64_t next;
    assert_true(mig_sim_next_time(l, &next));
    assert_int_equal(next, 5 * MS);
    clock_gettime(CLOCK_MONOTONIC, &w0);
    assert_int_equal(l->ops->run_once(l), 1);
    assert_int_equal(mig_loop_now_ns(l), 5 * MS);
    assert_int_equal(l->ops->run_once(l), 1);
    assert_int_equal(mig_loop_now_ns(l), 3600000 * MS);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    assert_true(w1.tv_sec - w0.tv_sec < 1800); /* not the hour: a hang guard, not a speed */
    assert_int_equal(o.n, 2);
    assert_int_equal(o.seq[0], 0);
    /* a timer in the past is due now; the clock never goes back */
    mig_loop_timer_add(l, 1 * MS, rec_cb, &r[2]);
    assert_int_equal(l->ops->run_once(l), 1);
    assert_int_equal(o.at[2], 3600000 * MS);
    assert_int_equal(l->ops->run_once(l), 0);
    assert_false(mig_sim_next_time(l, &next));
    /* no real fds in the simulator */
    assert_null(mig_loop_fd_watch(l, 0, MIG_LOOP_IN, NULL, NULL));
    mig_loop_free(l);
}

static void test_sim_run_until_time_stops_at_t(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(7);
    Order o = {.loop = l};
    Rec r[3] = {{&o, 0}, {&o, 1}, {&o, 2}};
    mig_loop_timer_add(l, 1 * MS, rec_cb, &r[0]);
    mig_loop_timer_add(l, 2 * MS, rec_cb, &r[1]);
    mig_loop_timer_add(l, 3 * MS, rec_cb, &r[2]);

    assert_int_equal(mig_sim_run_until_time(l, 2 * MS), 0);
    assert_int_equal(o.n, 2);
    assert_int_equal(mig_loop_now_ns(l), 2 * MS);
    assert_int_equal(mig_sim_live_sources(l), 1);
    /* idle time still passes */
    assert_int_equal(mig_sim_run_for(l, 500000), 0);
    assert_int_equal(mig_loop_now_ns(l), 2 * MS + 500000);
    assert_int_equal(o.n, 2);

    /* mig_loop_run_until with a virtual deadline */
    assert_int_equal(mig_loop_run_until(l, NULL, NULL, 2 * MS + 700000), -ETIMEDOUT);
    assert_int_equal(mig_loop_now_ns(l), 2 * MS + 700000);
    assert_int_equal(mig_loop_run_until(l, NULL, NULL, 10 * MS), -EDEADLK);
    assert_int_equal(o.n, 3);
    assert_int_equal(o.at[2], 3 * MS);
    assert_int_equal(mig_sim_live_sources(l), 0);
    mig_loop_free(l);
}

static void test_sim_live_sources_count_leaks(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(3);
    Order o = {.loop = l};
    Rec r[4] = {{&o, 0}, {&o, 1}, {&o, 2}, {&o, 3}};
    MigLoopSource *t = mig_loop_timer_add(l, 4 * MS, rec_cb, &r[0]);
    MigLoopSource *d = mig_loop_defer(l, rec_cb, &r[1]);
    mig_loop_timer_add(l, 4 * MS, rec_cb, &r[2]);
    mig_loop_defer(l, rec_cb, &r[3]);
    assert_int_equal(mig_sim_live_sources(l), 4);
    mig_loop_remove(l, t);
    mig_loop_remove(l, d);
    assert_int_equal(mig_sim_live_sources(l), 2);
    assert_int_equal(mig_loop_run(l), 0);
    assert_int_equal(o.n, 2);
    assert_true((o.seq[0] == 2 && o.seq[1] == 3) || (o.seq[0] == 3 && o.seq[1] == 2));
    assert_int_equal(mig_sim_live_sources(l), 0);
    /* a forgotten timer is still counted: the resource oracle sees it */
    mig_loop_timer_add(l, 9 * MS, rec_cb, &r[0]);
    assert_int_equal(mig_sim_live_sources(l), 1);
    mig_loop_free(l);
}

typedef struct Victims {
    MigLoop *loop;
    MigLoopSource *src[4];
    int fired[4];
} Victims;

typedef struct Victim {
    Victims *v;
    int i;
} Victim;

static void kill_others(void *opaque)
{
    Victim *me = opaque;
    me->v->fired[me->i]++;
    me->v->src[me->i] = NULL;
    for (int i = 1; i < 4; i++) {
        mig_loop_remove(me->v->loop, me->v->src[i]);
        me->v->src[i] = NULL;
    }
}

static void victim_cb(void *opaque)
{
    Victim *me = opaque;
    me->v->fired[me->i]++;
    me->v->src[me->i] = NULL; /* fired one-shots are freed: forget them */
}

static void test_sim_removed_due_timer_never_fires(void **state)
{
    (void)state;
    int killed_some = 0, fired_some = 0;
    /* all due at the same time: whichever order the seed picks, once
     * kill_others ran the others never do, and before it they may */
    for (uint64_t seed = 0; seed < 20; seed++) {
        MigLoop *l = mig_sim_loop_new(seed);
        Victims v = {.loop = l};
        Victim who[4];
        for (int i = 0; i < 4; i++) {
            who[i] = (Victim){&v, i};
            v.src[i] = mig_loop_timer_add(l, 1 * MS, i ? victim_cb : kill_others, &who[i]);
        }
        assert_int_equal(mig_loop_run(l), 0);
        assert_int_equal(v.fired[0], 1);
        assert_int_equal(mig_sim_live_sources(l), 0);
        int total = 0;
        for (int i = 1; i < 4; i++) {
            assert_true(v.fired[i] <= 1);
            total += v.fired[i];
        }
        assert_int_equal((int)mig_sim_steps(l), 1 + total);
        killed_some += total < 3;
        fired_some += total > 0;
        mig_loop_free(l);
    }
    assert_true(killed_some > 0);
    assert_true(fired_some > 0);
}

typedef struct Many {
    MigLoop *loop;
    MigLoopSource *src[2000];
    uint64_t deadline[2000];
    int fired[2000];
    uint64_t last;
    int bad_order;
} Many;

typedef struct ManyRec {
    Many *m;
    int i;
} ManyRec;

static void many_cb(void *opaque)
{
    ManyRec *r = opaque;
    Many *m = r->m;
    uint64_t now = mig_loop_now_ns(m->loop);
    m->fired[r->i]++;
    m->src[r->i] = NULL;
    m->bad_order += now < m->last || now != m->deadline[r->i];
    m->last = now;
    /* every 7th callback cancels a pseudo-random other timer */
    if (r->i % 7 == 0) {
        int j = (int)(mig_loop_random(m->loop) % 2000);
        mig_loop_remove(m->loop, m->src[j]);
        if (m->src[j])
            m->fired[j] = -1; /* cancelled: must never fire */
        m->src[j] = NULL;
    }
}

static void test_sim_many_timers_fire_once_in_time_order(void **state)
{
    (void)state;
    static Many m;
    static ManyRec r[2000];
    MigLoop *l = mig_sim_loop_new(99);
    MigPrng p;
    memset(&m, 0, sizeof(m));
    m.loop = l;
    mig_prng_seed(&p, 42);
    for (int i = 0; i < 2000; i++) {
        r[i] = (ManyRec){&m, i};
        m.deadline[i] = mig_prng_below(&p, 300) * MS; /* many equal deadlines */
        m.src[i] = mig_loop_timer_add(l, m.deadline[i], many_cb, &r[i]);
    }
    /* cancel a few up front too */
    for (int i = 1; i < 2000; i += 97) {
        mig_loop_remove(l, m.src[i]);
        m.src[i] = NULL;
        m.fired[i] = -1;
    }
    assert_int_equal(mig_loop_run(l), 0);
    assert_int_equal(m.bad_order, 0);
    int cancelled = 0;
    for (int i = 0; i < 2000; i++) {
        assert_true(m.fired[i] == 1 || m.fired[i] == -1);
        cancelled += m.fired[i] == -1;
    }
    assert_true(cancelled > 21);
    assert_int_equal((int)mig_sim_steps(l), 2000 - cancelled);
    assert_int_equal(mig_sim_live_sources(l), 0);
    mig_loop_free(l);
}

static void forever(void *opaque)
{
    mig_loop_defer(opaque, forever, opaque);
}

static void test_sim_step_limit_catches_livelock(void **state)
{
    (void)state;
    MigLoop *l = mig_sim_loop_new(1);
    mig_sim_set_step_limit(l, 1000);
    mig_loop_defer(l, forever, l);
    assert_int_equal(mig_loop_run(l), -ELOOP);
    assert_int_equal(mig_sim_steps(l), 1000);
    assert_int_equal(mig_loop_now_ns(l), 0);
    assert_int_equal(mig_sim_run_for(l, MS), -ELOOP);
    mig_loop_free(l);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_same_seed_same_order),
        cmocka_unit_test(test_sim_different_seeds_reorder_equal_time_events),
        cmocka_unit_test(test_sim_clock_jumps_to_next_timer),
        cmocka_unit_test(test_sim_run_until_time_stops_at_t),
        cmocka_unit_test(test_sim_live_sources_count_leaks),
        cmocka_unit_test(test_sim_removed_due_timer_never_fires),
        cmocka_unit_test(test_sim_many_timers_fire_once_in_time_order),
        cmocka_unit_test(test_sim_step_limit_catches_livelock),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
