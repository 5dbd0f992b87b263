/*
 * test-faults-spec.c - fault specs with an errno of their own (errno=EPIPE on
 * a transport write) and the injector that makes that errno reach the caller
 * of the faulted operation, without a scenario: the spec parser, the
 * injector's decision, and a real libfiu round trip through the mem and fd
 * transports.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "common/faults.h"
#include "runner/faults-spec.h"
#include "sim/sim.h"
#include "transport/transport.h"

static void expect_parse_error(const char *text, const char *needle)
{
    MigFaultSpec s;
    MigErr *err = NULL;
    assert_int_equal(mig_fault_spec_parse(text, &s, &err), -EINVAL);
    assert_non_null(err);
    if (!strstr(err->msg, needle))
        fail_msg("'%s': error '%s' lacks '%s'", text, err->msg, needle);
    mig_err_free(err);
}

/* The spec that motivated this: a broken pipe on the 5th write. */
static void test_faults_spec_transport_errno_override_parses_and_formats(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int err;
        const char *canonical;
    } cases[] = {
        {"src:mig/transport/write#5 errno=EPIPE", -EPIPE, "src:mig/transport/write#5 errno=EPIPE"},
        {"dst:mig/transport/read#2 errno=ECONNRESET", -ECONNRESET,
         "dst:mig/transport/read#2 errno=ECONNRESET"},
        {"src:mig/transport/write@precopy errno=ECONNRESET", -ECONNRESET,
         "src:mig/transport/write@active errno=ECONNRESET"},
        {"src:mig/transport/write%0.5 errno=EPIPE", -EPIPE,
         "src:mig/transport/write%0.5 errno=EPIPE"},
        /* the registered errno is the default and is not repeated */
        {"src:mig/transport/write#1 errno=EIO", -EIO, "src:mig/transport/write#1"},
        {"src:mig/transport/write#1", -EIO, "src:mig/transport/write#1"},
        /* points with a fixed errno still accept their own */
        {"src:mig/ram/iterate#3 errno=EIO", -EIO, "src:mig/ram/iterate#3"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        MigFaultSpec s;
        MigErr *err = NULL;
        if (mig_fault_spec_parse(cases[i].text, &s, &err) != 0)
            fail_msg("'%s' refused: %s", cases[i].text, err->msg);
        assert_int_equal(s.err, cases[i].err);
        char buf[128];
        mig_fault_spec_format(&s, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].canonical);
        /* the canonical text (a REPRO line's --fault) parses to the same spec */
        MigFaultSpec again;
        assert_int_equal(mig_fault_spec_parse(buf, &again, NULL), 0);
        assert_int_equal(again.err, s.err);
        assert_int_equal(again.when, s.when);
        assert_string_equal(again.point, s.point);
    }
}

static void test_faults_spec_errno_refused_where_the_point_cannot_inject_it(void **state)
{
    (void)state;
    /* a point whose code returns a fixed errno */
    expect_parse_error("src:mig/ram/iterate#1 errno=EPIPE", "point 'mig/ram/iterate' injects EIO, not EPIPE");
    expect_parse_error("dst:mig/vmstate/load#1 errno=EIO", "injects EINVAL, not EIO");
    /* a transport point, but an errno no transport reports */
    expect_parse_error("src:mig/transport/write#1 errno=ENOSPC",
                       "point 'mig/transport/write' injects EIO, EPIPE or ECONNRESET, not ENOSPC");
    expect_parse_error("src:mig/transport/read#1 errno=EINVAL",
                       "injects EIO, ECONNRESET or EPIPE, not EINVAL");
    expect_parse_error("src:mig/transport/write#1 errno=EBOGUS", "unknown errno 'EBOGUS'");
    expect_parse_error("src:mig/transport/write#1 errno=", "errno= needs a name like EIO");
}

/* A hit number past the documented limit is refused, not saturated to
 * 2^64-1 (a fault that can never fire, silently). */
static void test_faults_spec_hit_number_bounded(void **state)
{
    (void)state;
    expect_parse_error("src:mig/transport/write#99999999999999999999", "hit number above");
    expect_parse_error("src:mig/transport/write#1000000000001", "hit number above");
    MigFaultSpec s;
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write#1000000000000", &s, NULL), 0);
    assert_int_equal(s.nth, MIG_FAULT_MAX_NTH);
}

/* Every truncation of a spec either parses (only where the prefix is itself
 * a complete spec) or is refused with an error; none crashes or half-fills. */
static void test_faults_spec_every_truncation(void **state)
{
    (void)state;
    const char *full = "src:mig/transport/write#5 errno=EPIPE";
    const size_t whole[] = {strlen("src:mig/transport/write"), strlen("src:mig/transport/write#5"),
                            strlen("src:mig/transport/write#5 "), strlen(full)};
    for (size_t n = 0; n <= strlen(full); n++) {
        char text[64];
        memcpy(text, full, n);
        text[n] = 0;
        MigFaultSpec s = {.err = 12345};
        MigErr *err = NULL;
        int r = mig_fault_spec_parse(text, &s, &err);
        bool complete = false;
        for (size_t k = 0; k < MIG_ARRAY_SIZE(whole); k++)
            complete |= n == whole[k];
        if (complete) {
            if (r != 0)
                fail_msg("'%s' refused: %s", text, err->msg);
            assert_int_equal(s.err, n == strlen(full) ? -EPIPE : -EIO);
        } else {
            if (r != -EINVAL)
                fail_msg("'%s' accepted", text);
            assert_non_null(err);
            assert_int_equal(s.err, 12345); /* *out untouched on error */
            mig_err_free(err);
        }
    }
}

/* The injector hands out the spec's errno for its own hit only; other specs
 * and other hits keep the registered one. */
static void test_faults_spec_injector_decides_the_spec_errno(void **state)
{
    (void)state;
    MigFaultSpec specs[3];
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write#2 errno=EPIPE", &specs[0], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write#4", &specs[1], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("dst:mig/transport/read#1 errno=ECONNRESET", &specs[2], NULL),
                     0);
    FaultInjector *inj = fault_injector_new(specs, 3, 7, NULL, NULL);
    fault_injector_set_side(inj, MIG_FAULT_SIDE_SRC);
    assert_int_equal(fault_injector_decide_errno(inj, "mig/transport/write"), 0);
    assert_int_equal(fault_injector_decide_errno(inj, "mig/transport/write"), -EPIPE);
    assert_int_equal(fault_injector_decide_errno(inj, "mig/transport/write"), 0);
    assert_int_equal(fault_injector_decide_errno(inj, "mig/transport/write"), -EIO);
    /* the first fired fault, as a REPRO line quotes it, keeps its errno */
    assert_string_equal(fault_injector_first_fired(inj), "src:mig/transport/write#2 errno=EPIPE");
    fault_injector_set_side(inj, MIG_FAULT_SIDE_DST);
    assert_int_equal(fault_injector_decide_errno(inj, "mig/transport/read"), -ECONNRESET);
    assert_int_equal(fault_injector_fired(inj), 3);
    fault_injector_free(inj);
}

/* Each spec's own count: a `#N` whose hit an earlier spec already fails is
 * still credited (its hit came; what a sweep asks), its errno is not used;
 * a `%P` past the failing spec draws nothing, an @PHASE waits for the next
 * hit in its phase; a `#N` never reached stays at 0 however often the
 * others fire. */
static void test_faults_spec_each_spec_counts_its_own_hits(void **state)
{
    (void)state;
    MigFaultSpec specs[5];
    assert_int_equal(mig_fault_spec_parse("dst:mig/stream/read#2", &specs[0], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("dst:mig/stream/read#2", &specs[1], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("dst:mig/stream/read%1", &specs[2], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("dst:mig/stream/read@setup", &specs[3], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("dst:mig/stream/read#99", &specs[4], NULL), 0);
    FaultInjector *inj = fault_injector_new(specs, 5, 7, NULL, NULL);
    fault_injector_set_side(inj, MIG_FAULT_SIDE_DST);
    fault_injector_set_phase(inj, SCN_PHASE_SETUP);
    assert_true(fault_injector_decide(inj, "mig/stream/read")); /* hit 1: %1 */
    assert_int_equal(fault_injector_spec_fired(inj, 2), 1);
    assert_int_equal(fault_injector_spec_fired(inj, 3), 0); /* @setup not looked at */
    assert_true(fault_injector_decide(inj, "mig/stream/read")); /* hit 2: #2, #2 */
    assert_int_equal(fault_injector_spec_fired(inj, 0), 1);
    assert_int_equal(fault_injector_spec_fired(inj, 1), 1);
    assert_int_equal(fault_injector_spec_fired(inj, 2), 1); /* drew nothing */
    assert_true(fault_injector_decide(inj, "mig/stream/read")); /* hit 3: %1 */
    fault_injector_set_phase(inj, SCN_PHASE_ACTIVE);
    assert_true(fault_injector_decide(inj, "mig/stream/read")); /* hit 4: %1 */
    assert_int_equal(fault_injector_spec_fired(inj, 2), 3);
    assert_int_equal(fault_injector_spec_fired(inj, 3), 0);
    assert_int_equal(fault_injector_spec_fired(inj, 4), 0);
    assert_int_equal(fault_injector_spec_fired(inj, 5), 0); /* no such spec */
    assert_int_equal(fault_injector_fired(inj), 4);
    fault_injector_free(inj);
}

#ifdef FIU_ENABLE
/* Armed through libfiu, the chosen errno is what the transport's caller sees:
 * the simulator's mem link and a real socket alike. */
static void test_faults_spec_injected_errno_reaches_the_transport_caller(void **state)
{
    (void)state;
    MigFaultSpec specs[3];
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write#2 errno=EPIPE", &specs[0], NULL), 0);
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/read#1 errno=ECONNRESET", &specs[1], NULL),
                     0);
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write#3", &specs[2], NULL), 0);
    MigLoop *loop = mig_sim_loop_new(1);
    FaultInjector *inj = fault_injector_new(specs, 3, 1, loop, NULL);
    assert_int_equal(fault_injector_arm(inj), 0);
    fault_injector_set_side(inj, MIG_FAULT_SIDE_SRC);

    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(loop, NULL, &a, &b), 0);
    const char msg[4] = "ping";
    char buf[8];
    assert_int_equal(mig_transport_write(a, msg, sizeof(msg)), (ssize_t)sizeof(msg));
    assert_int_equal(mig_transport_write(a, msg, sizeof(msg)), -EPIPE);
    assert_int_equal(mig_transport_read(b, buf, sizeof(buf)), -ECONNRESET);
    /* a spec without errno= keeps the registered EIO */
    assert_int_equal(mig_transport_write(a, msg, sizeof(msg)), -EIO);
    assert_int_equal(mig_transport_write(a, msg, sizeof(msg)), (ssize_t)sizeof(msg));
    mig_transport_close(a);
    mig_transport_close(b);
    fault_injector_free(inj);

    /* a unix socket through the fd transport */
    MigFaultSpec sock_spec;
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write#1 errno=ECONNRESET", &sock_spec, NULL),
                     0);
    inj = fault_injector_new(&sock_spec, 1, 1, loop, NULL);
    assert_int_equal(fault_injector_arm(inj), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    MigTransport *s0 = mig_transport_fd_new(loop, sv[0], "socket");
    MigTransport *s1 = mig_transport_fd_new(loop, sv[1], "socket");
    assert_non_null(s0);
    assert_non_null(s1);
    assert_int_equal(mig_transport_write(s0, msg, sizeof(msg)), -ECONNRESET);
    assert_int_equal(mig_transport_write(s0, msg, sizeof(msg)), (ssize_t)sizeof(msg));
    assert_int_equal(mig_transport_read(s1, buf, sizeof(buf)), (ssize_t)sizeof(msg));
    assert_memory_equal(buf, msg, sizeof(msg));
    mig_transport_close(s0);
    mig_transport_close(s1);
    fault_injector_free(inj);
    mig_loop_free(loop);
}

/* The gate (faults.h) changes what a hit costs, never what it does: hits
 * through an armed injector's gate fire, count and draw exactly as hits
 * that all go to the injector one by one, on every side, for every kind of
 * spec, and a point no spec names passes the gate without libfiu. */
static void test_faults_spec_gated_hits_fire_and_count_as_asked_ones(void **state)
{
    (void)state;
    const char *texts[] = {
        "dst:mig/stream/read#5",     "src:mig/stream/read#2",  "src:mig/stream/read#7",
        "dst:mig/ram/omit-page%0.3", "src:mig/stream/flush@precopy",
        "dst:mig/transport/read",    "src:mig/transport/read#3 errno=EPIPE",
    };
    enum { NSPECS = sizeof(texts) / sizeof(texts[0]) };
    MigFaultSpec specs[NSPECS];
    for (size_t i = 0; i < NSPECS; i++)
        assert_int_equal(mig_fault_spec_parse(texts[i], &specs[i], NULL), 0);
    const MigFaultId ids[] = {MIG_FAULT_STREAM_READ, MIG_FAULT_RAM_OMIT_PAGE,
                              MIG_FAULT_STREAM_FLUSH, MIG_FAULT_TRANSPORT_READ,
                              MIG_FAULT_TRANSPORT_WRITE};
    FaultInjector *gated = fault_injector_new(specs, NSPECS, 11, NULL, NULL);
    FaultInjector *asked = fault_injector_new(specs, NSPECS, 11, NULL, NULL);
    assert_int_equal(fault_injector_arm(gated), 0);
    const MigFaultGate *gate = fault_injector_gate(gated);
    assert_non_null(gate);
    /* no spec names mig/transport/write: its hits never need libfiu */
    assert_true(gate->left[MIG_FAULT_TRANSPORT_WRITE] > 0);
    MigPrng order;
    mig_prng_seed(&order, 3);
    for (int step = 0; step < 4000; step++) {
        MigFaultSide side = (MigFaultSide)(mig_prng_next(&order) % MIG_FAULT_SIDE__COUNT);
        MigFaultId id = ids[mig_prng_next(&order) % (sizeof(ids) / sizeof(ids[0]))];
        if (step == 1000) {
            fault_injector_set_phase(gated, SCN_PHASE_ACTIVE);
            fault_injector_set_phase(asked, SCN_PHASE_ACTIVE);
        }
        fault_injector_set_side(gated, side);
        fault_injector_set_side(asked, side);
        int want = fault_injector_decide_errno(asked, mig_fault_name(id));
        int got = mig_fault_fire_gated(gate, id);
        if (got != want)
            fail_msg("step %d: %s:%s gave %d, asked one by one %d", step,
                     mig_fault_side_names[side], mig_fault_name(id), got, want);
    }
    size_t np;
    mig_faults_table(&np);
    for (int sd = 0; sd < MIG_FAULT_SIDE__COUNT; sd++)
        for (size_t p = 0; p < np; p++)
            assert_int_equal(fault_injector_hits(gated, (MigFaultSide)sd, p),
                             fault_injector_hits(asked, (MigFaultSide)sd, p));
    for (size_t i = 0; i < NSPECS; i++)
        assert_int_equal(fault_injector_spec_fired(gated, i), fault_injector_spec_fired(asked, i));
    assert_true(fault_injector_fired(asked) > 0);
    assert_int_equal(fault_injector_fired(gated), fault_injector_fired(asked));
    assert_string_equal(fault_injector_first_fired(gated), fault_injector_first_fired(asked));
    /* the counts stand after disarming, and a disarmed gate passes nothing */
    uint64_t before = fault_injector_hits(gated, MIG_FAULT_SIDE_SRC, MIG_FAULT_TRANSPORT_WRITE);
    assert_true(before > 0);
    fault_injector_disarm(gated);
    fault_injector_set_side(gated, MIG_FAULT_SIDE_SRC);
    assert_int_equal(gate->left[MIG_FAULT_TRANSPORT_WRITE], 0);
    assert_int_equal(mig_fault_fire_gated(gate, MIG_FAULT_TRANSPORT_WRITE), 0);
    assert_int_equal(fault_injector_hits(gated, MIG_FAULT_SIDE_SRC, MIG_FAULT_TRANSPORT_WRITE),
                     before);
    fault_injector_free(gated);
    fault_injector_free(asked);
}
#else
static void test_faults_spec_injected_errno_reaches_the_transport_caller(void **state)
{
    (void)state;
    skip(); /* built without libfiu (FIU=0): no point can fire */
}

static void test_faults_spec_gated_hits_fire_and_count_as_asked_ones(void **state)
{
    (void)state;
    /* FIU=0: a gate or none, no point fires */
    assert_int_equal(mig_fault_fire_gated(NULL, MIG_FAULT_STREAM_READ), 0);
}
#endif

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_spec_transport_errno_override_parses_and_formats),
        cmocka_unit_test(test_faults_spec_errno_refused_where_the_point_cannot_inject_it),
        cmocka_unit_test(test_faults_spec_every_truncation),
        cmocka_unit_test(test_faults_spec_hit_number_bounded),
        cmocka_unit_test(test_faults_spec_injector_decides_the_spec_errno),
        cmocka_unit_test(test_faults_spec_each_spec_counts_its_own_hits),
        cmocka_unit_test(test_faults_spec_injected_errno_reaches_the_transport_caller),
        cmocka_unit_test(test_faults_spec_gated_hits_fire_and_count_as_asked_ones),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
