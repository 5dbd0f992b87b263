/*
 * test-migration.c - the migration state machines (every from x to arc of
 * both status tables and of the phase table), capability negotiation, QEMU's
 * parameters and their validation, section ids, and the PART-per-call
 * contract of save_iterate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "migration/migration-internal.h"
#include "sim/sim.h"

typedef struct Fixture {
    MigLoop *loop;
    MigTrace *trace;
    MigSavevm *sv;
    int events;
    char last_event[64];
} Fixture;

static void on_event(void *opaque, const char *name, json_t *data)
{
    Fixture *f = opaque;
    f->events++;
    snprintf(f->last_event, sizeof(f->last_event), "%s %s", name,
             json_string_value(json_object_get(data, "status")));
}

static MigMigration *new_mm(Fixture *f, MigCapMask known)
{
    MigMigrationEnv env = {.loop = f->loop, .who = "t", .savevm = f->sv,
                           .machine_type = "mc-2.1", .caps_known = known,
                           .event = on_event, .opaque = f};
    return mig_migration_new(&env);
}

static int setup(void **state)
{
    Fixture *f = mig_malloc0(sizeof(*f));
    f->loop = mig_sim_loop_new(1);
    f->trace = mig_trace_new();
    f->loop->trace = f->trace;
    f->sv = mig_savevm_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    mig_savevm_free(f->sv);
    mig_loop_free(f->loop);
    mig_trace_free(f->trace);
    free(f);
    return 0;
}

/* Shortest path of allowed arcs from state 0 (none, idle) to `to` in a
 * table of n states (BFS over allowed(ctx, from, to)); returns its length or
 * -1 when unreachable; path[0..len) are the states after state 0. */
#define MAX_STATES 32
static int path_in(int n, bool (*allowed)(int ctx, int from, int to), int ctx, int to,
                   int path[MAX_STATES])
{
    int prev[MAX_STATES], q[MAX_STATES], rev[MAX_STATES];
    bool seen[MAX_STATES] = {false};
    int qh = 0, qt = 0;
    assert_true(n <= MAX_STATES);
    q[qt++] = 0;
    seen[0] = true;
    while (qh < qt) {
        int s = q[qh++];
        for (int t = 0; t < n; t++) {
            if (!seen[t] && allowed(ctx, s, t)) {
                seen[t] = true;
                prev[t] = s;
                q[qt++] = t;
            }
        }
    }
    if (!seen[to])
        return -1;
    int len = 0;
    for (int s = to; s != 0; s = prev[s])
        rev[len++] = s;
    for (int i = 0; i < len; i++)
        path[i] = rev[len - 1 - i];
    return len;
}

static bool status_arc(int incoming, int from, int to)
{
    return mig_status_arc_allowed(incoming, from, to);
}

static bool phase_arc(int unused, int from, int to)
{
    return mig__phase_arc_allowed(from, to);
}

static void walk_table(Fixture *f, bool incoming)
{
    int allowed_count = 0;
    for (int from = 0; from < MIG_STATUS__COUNT; from++) {
        int path[MAX_STATES];
        int len = path_in(MIG_STATUS__COUNT, status_arc, incoming, from, path);
        if (len < 0) {
            /* Unreachable states have no way out either. */
            for (int to = 0; to < MIG_STATUS__COUNT; to++)
                assert_false(mig_status_arc_allowed(incoming, from, to));
            continue;
        }
        for (int to = 0; to < MIG_STATUS__COUNT; to++) {
            MigMigration *mm = new_mm(f, 0);
            assert_int_equal(mig_migration_set_caps(mm, MIG_CAP_BIT(MIG_CAP_EVENTS),
                                                    MIG_CAP_BIT(MIG_CAP_EVENTS), NULL),
                             0);
            /* Which table applies is decided by listen or start; a fresh
             * object in none is put on the side under test directly. */
            mm->incoming = incoming;
            for (int i = 0; i < len; i++)
                assert_int_equal(mig__migration_set_status(mm, path[i]), 0);
            assert_int_equal(mig_migration_status(mm), from);
            uint64_t lines = mig_trace_count(f->trace);
            int events = f->events;
            int r = mig__migration_set_status(mm, to);
            bool ok = mig_status_arc_allowed(incoming, from, to);
            if (ok) {
                allowed_count++;
                assert_int_equal(r, 0);
                assert_int_equal(mig_migration_status(mm), to);
                assert_int_equal(f->events, events + 1);
                char want[64];
                snprintf(want, sizeof(want), "MIGRATION %s", mig_status_name(to));
                assert_string_equal(f->last_event, want);
            } else {
                assert_int_equal(r, -EINVAL);
                assert_int_equal(mig_migration_status(mm), from);
                assert_int_equal(f->events, events);
            }
            /* Both outcomes leave one trace line (arc or refusal). */
            assert_int_equal(mig_trace_count(f->trace), lines + 1);
            mig_migration_free(mm);
        }
    }
    assert_int_equal(allowed_count, incoming ? 8 : 18);
}

static void test_migration_source_table_every_arc(void **state)
{
    walk_table(*state, false);
    /* Spot checks of what a user relies on. */
    assert_true(mig_status_arc_allowed(false, MIG_STATUS_DEVICE, MIG_STATUS_CANCELLING));
    assert_false(mig_status_arc_allowed(false, MIG_STATUS_COMPLETED, MIG_STATUS_CANCELLING));
    assert_false(mig_status_arc_allowed(false, MIG_STATUS_SETUP, MIG_STATUS_COMPLETED));
}

static void test_migration_destination_table_every_arc(void **state)
{
    walk_table(*state, true);
    assert_false(mig_status_arc_allowed(true, MIG_STATUS_ACTIVE, MIG_STATUS_DEVICE));
    assert_false(mig_status_arc_allowed(true, MIG_STATUS_COMPLETED, MIG_STATUS_SETUP));
}

static bool is_src_phase(int p)
{
    return p >= MIG_PHASE_SRC_SETUP && p <= MIG_PHASE_SRC_RP_WAIT;
}

static bool is_dst_phase(int p)
{
    return p >= MIG_PHASE_DST_HEADER && p <= MIG_PHASE_DST_VMDESC;
}

static void test_migration_phase_table_every_arc(void **state)
{
    Fixture *f = *state;
    int allowed_count = 0;
    for (int from = 0; from < MIG_PHASE__COUNT; from++) {
        int path[MAX_STATES];
        int len = path_in(MIG_PHASE__COUNT, phase_arc, 0, from, path);
        /* Every phase is reachable from idle, and goes back to it when its
         * migration ends (finish relies on that column). */
        assert_true(len >= 0);
        if (from != MIG_PHASE_IDLE)
            assert_true(mig__phase_arc_allowed(from, MIG_PHASE_IDLE));
        for (int to = 0; to < MIG_PHASE__COUNT; to++) {
            MigMigration *mm = new_mm(f, 0);
            for (int i = 0; i < len; i++)
                assert_int_equal(mig__migration_set_phase(mm, path[i], NULL), 0);
            assert_int_equal(mm->phase, from);
            uint64_t lines = mig_trace_count(f->trace);
            MigErr *err = NULL;
            int r = mig__migration_set_phase(mm, to, &err);
            bool ok = mig__phase_arc_allowed(from, to);
            /* A side never enters the other side's phases. */
            if ((is_src_phase(from) && is_dst_phase(to)) ||
                (is_dst_phase(from) && is_src_phase(to)) || from == to)
                assert_false(ok);
            if (ok) {
                allowed_count++;
                assert_int_equal(r, 0);
                assert_null(err);
                assert_int_equal(mm->phase, to);
            } else {
                /* A refusal is an error that names the arc, never a no-op. */
                assert_int_equal(r, -EINVAL);
                assert_int_equal(mm->phase, from);
                assert_non_null(err);
                char want[96];
                snprintf(want, sizeof(want), "phase %s -> %s is not an arc",
                         mig__phase_name(from), mig__phase_name(to));
                if (!strstr(err->msg, want))
                    fail_msg("%s: %s", want, err->msg);
                mig_err_free(err);
            }
            /* A refusal leaves one trace line, an arc too unless it is one
             * of the destination's per-section loop (taken once per
             * section, so not traced), and those are exactly these four. */
            bool loop_arc = (from == MIG_PHASE_DST_SECTION && to == MIG_PHASE_DST_PAYLOAD) ||
                            (from == MIG_PHASE_DST_SECTION && to == MIG_PHASE_DST_FOOTER) ||
                            (from == MIG_PHASE_DST_PAYLOAD && to == MIG_PHASE_DST_FOOTER) ||
                            (from == MIG_PHASE_DST_FOOTER && to == MIG_PHASE_DST_SECTION);
            if (loop_arc)
                assert_true(ok);
            assert_int_equal(mig__phase_arc_traced(from, to), ok && !loop_arc);
            assert_int_equal(mig_trace_count(f->trace), lines + (ok && loop_arc ? 0 : 1));
            /* No status change, no event: the phase is the engine's own. */
            assert_int_equal(mig_migration_status(mm), MIG_STATUS_NONE);
            assert_int_equal(f->events, 0);
            mig_migration_free(mm);
        }
    }
    assert_int_equal(allowed_count, 31);
    assert_string_equal(mig__phase_name(MIG_PHASE_SRC_RP_WAIT), "return-path-wait");
    assert_string_equal(mig__phase_name(MIG_PHASE_DST_VMDESC), "vmdescription");
    assert_string_equal(mig__phase_name(MIG_PHASE__COUNT), "?");
    for (int p = 0; p < MIG_PHASE__COUNT; p++)
        assert_string_not_equal(mig__phase_name(p), "?");
}

static void test_migration_status_names_are_qemus(void **state)
{
    (void)state;
    assert_string_equal(mig_status_name(MIG_STATUS_NONE), "none");
    assert_string_equal(mig_status_name(MIG_STATUS_PRE_SWITCHOVER), "pre-switchover");
    assert_string_equal(mig_status_name(MIG_STATUS_CANCELLING), "cancelling");
    for (int s = 0; s < MIG_STATUS__COUNT; s++)
        assert_non_null(mig_status_name(s));
}

static void test_migration_caps_intersection(void **state)
{
    (void)state;
    MigCapMask a = MIG_CAP_BIT(MIG_CAP_EVENTS) | MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP) |
                   MIG_CAP_BIT(MIG_CAP_ZERO_BLOCKS);
    MigCapMask b = MIG_CAP_BIT(MIG_CAP_EVENTS) | MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED);
    assert_true(mig_caps_intersect(a, b) == MIG_CAP_BIT(MIG_CAP_EVENTS));
    /* A side without query-migrate-capabilities offers the empty mask. */
    assert_true(mig_caps_intersect(a, 0) == 0);
    assert_true(mig_caps_intersect(0, b) == 0);
    /* Names round trip and are QEMU's. */
    for (int c = 0; c < MIG_CAP__COUNT; c++)
        assert_int_equal(mig_cap_parse(mig_cap_name(c)), c);
    assert_int_equal(mig_cap_parse("pause-before-switchover"), MIG_CAP_PAUSE_BEFORE_SWITCHOVER);
    assert_int_equal(mig_cap_parse("nonsense"), -1);
    assert_true(mig_cap_validatable(MIG_CAP_X_IGNORE_SHARED));
    assert_false(mig_cap_validatable(MIG_CAP_EVENTS));
}

static void test_migration_caps_query_and_set(void **state)
{
    Fixture *f = *state;
    MigCapMask known = MIG_CAP_BIT(MIG_CAP_EVENTS) | MIG_CAP_BIT(MIG_CAP_XBZRLE);
    MigMigration *mm = new_mm(f, known);
    json_t *q = mig_caps_to_json(mig_migration_caps_known(mm), mig_migration_caps(mm));
    char *text = json_dumps(q, JSON_COMPACT);
    assert_string_equal(text, "[{\"capability\":\"xbzrle\",\"state\":false},"
                              "{\"capability\":\"events\",\"state\":false}]");
    free(text);
    json_decref(q);

    json_t *set = json_loads("[{\"capability\":\"events\",\"state\":true}]", 0, NULL);
    MigCapMask named, states;
    assert_int_equal(mig_caps_from_json(set, &named, &states, NULL), 0);
    json_decref(set);
    assert_int_equal(mig_migration_set_caps(mm, named, states, NULL), 0);
    assert_true(mig_migration_caps(mm) == MIG_CAP_BIT(MIG_CAP_EVENTS));

    MigErr *err = NULL;
    /* Known by name, but this machine's release does not offer it. */
    assert_int_equal(mig_migration_set_caps(mm, MIG_CAP_BIT(MIG_CAP_MULTIFD),
                                            MIG_CAP_BIT(MIG_CAP_MULTIFD), &err),
                     -EINVAL);
    assert_non_null(strstr(err->msg, "multifd"));
    mig_err_free(err);
    err = NULL;
    /* Offered, but not something this build can do. */
    assert_int_equal(mig_migration_set_caps(mm, MIG_CAP_BIT(MIG_CAP_XBZRLE),
                                            MIG_CAP_BIT(MIG_CAP_XBZRLE), &err),
                     -ENOTSUP);
    assert_non_null(strstr(err->msg, "xbzrle"));
    mig_err_free(err);
    err = NULL;
    set = json_loads("[{\"capability\":\"bogus\",\"state\":true}]", 0, NULL);
    assert_int_equal(mig_caps_from_json(set, &named, &states, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "capabilities[0]"));
    assert_non_null(strstr(err->msg, "bogus"));
    mig_err_free(err);
    json_decref(set);
    /* Not while migrating. */
    err = NULL;
    assert_int_equal(mig__migration_set_status(mm, MIG_STATUS_SETUP), 0);
    assert_int_equal(mig_migration_set_caps(mm, 0, 0, &err), -EBUSY);
    mig_err_free(err);
    mig_migration_free(mm);
}

static void test_migration_params_validation(void **state)
{
    Fixture *f = *state;
    MigMigration *mm = new_mm(f, 0);
    MigParams p;
    mig_migration_params(mm, &p);
    assert_true(p.max_bandwidth == 134217728ull);
    assert_true(p.downtime_limit == 300);
    assert_true(p.x_max_passes == 0);

    MigErr *err = NULL;
    MigParamsSet set = {.has_downtime_limit = true, .p.downtime_limit = 2000001,
                        .has_max_bandwidth = true, .p.max_bandwidth = 1};
    assert_int_equal(mig_migration_set_params(mm, &set, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "downtime-limit"));
    mig_err_free(err);
    err = NULL;
    mig_migration_params(mm, &p);
    assert_true(p.max_bandwidth == 134217728ull); /* nothing changed */

    set = (MigParamsSet){.has_x_max_passes = true, .p.x_max_passes = MIG_MAX_PASSES_LIMIT + 1};
    assert_int_equal(mig_migration_set_params(mm, &set, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "x-max-passes"));
    mig_err_free(err);
    err = NULL;

    json_t *args = json_loads("{\"max-bandwidth\": 1e12, \"downtime-limit\": 50}", 0, NULL);
    assert_int_equal(mig_params_from_json(args, &set, NULL), 0);
    json_decref(args);
    assert_int_equal(mig_migration_set_params(mm, &set, NULL), 0);
    mig_migration_params(mm, &p);
    assert_true(p.max_bandwidth == 1000000000000ull);
    assert_true(p.downtime_limit == 50);
    json_t *q = mig_params_to_json(&p);
    assert_int_equal(json_integer_value(json_object_get(q, "downtime-limit")), 50);
    json_decref(q);

    args = json_loads("{\"downtime-limit\": -1}", 0, NULL);
    assert_int_equal(mig_params_from_json(args, &set, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "downtime-limit"));
    mig_err_free(err);
    err = NULL;
    json_decref(args);
    args = json_loads("{\"no-such\": 1}", 0, NULL);
    assert_int_equal(mig_params_from_json(args, &set, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "no-such"));
    mig_err_free(err);
    json_decref(args);
    mig_migration_free(mm);
}

static void test_migration_info_json_shape(void **state)
{
    (void)state;
    MigInfo info;
    memset(&info, 0, sizeof(info));
    json_t *j = mig_info_to_json(&info);
    assert_int_equal(json_object_size(j), 0); /* {} before any migration */
    json_decref(j);
    info.status = MIG_STATUS_FAILED;
    info.has_total_time = true;
    info.total_time = 12;
    snprintf(info.error_desc, sizeof(info.error_desc), "boom");
    j = mig_info_to_json(&info);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
    assert_int_equal(json_integer_value(json_object_get(j, "total-time")), 12);
    assert_string_equal(json_string_value(json_object_get(j, "error-desc")), "boom");
    assert_null(json_object_get(j, "ram"));
    json_decref(j);
}

static void test_migration_section_ids_start_at_one(void **state)
{
    Fixture *f = *state;
    static const MigFullOps none = {0};
    static const MigIterOps it = {0};
    /* A QEMU 7.2 loader matches PART/END against load_section_id, which is 0
     * for every handler it has not started: 0 is never a section's id. */
    assert_int_equal(mig_savevm_register_iterative(f->sv, "ram", 0, 4, &it, NULL, NULL), 1);
    assert_int_equal(mig_savevm_register_full(f->sv, "dev", 0, 1, &none, NULL, NULL), 2);
    mig_savevm_unregister(f->sv, "dev", 0);
    assert_int_equal(mig_savevm_register_full(f->sv, "dev", 1, 1, &none, NULL, NULL), 3);
    assert_int_equal(mig_savevm_entry(f->sv, 0)->section_id, 1);
}

static void test_migration_page_flip_not_offered(void **state)
{
    Fixture *f = *state;
    /* Even a release that names it does not offer it on the sim loop: its
     * mem links cannot pass fds (test-pageflip covers real sockets). */
    MigMigration *mm = new_mm(f, MIG_CAP_BIT(MIG_CAP_EVENTS) | MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP));
    assert_false(mig_migration_caps_known(mm) & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP));
    MigErr *err = NULL;
    assert_int_equal(mig_migration_set_caps(mm, MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP),
                                            MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP), &err),
                     -ENOTSUP);
    assert_non_null(strstr(err->msg, "'x-page-flip' needs a unix socket that can pass fds"));
    mig_err_free(err);
    /* Turning it off is fine. */
    assert_int_equal(mig_migration_set_caps(mm, MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP), 0, NULL), 0);
    mig_migration_free(mm);
    /* return-path is offered by default. */
    mm = new_mm(f, 0);
    assert_true(mig_migration_caps_known(mm) & MIG_CAP_BIT(MIG_CAP_RETURN_PATH));
    mig_migration_free(mm);
}

static void test_migration_caps_settable_on_waiting_destination(void **state)
{
    Fixture *f = *state;
    MigMigration *mm = new_mm(f, 0);
    assert_int_equal(mig_migration_listen(mm, NULL), 0);
    assert_int_equal(mig_migration_status(mm), MIG_STATUS_SETUP);
    MigCapMask c = MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED) | MIG_CAP_BIT(MIG_CAP_RETURN_PATH);
    assert_int_equal(mig_migration_set_caps(mm, c, c, NULL), 0);
    assert_true(mig_migration_caps(mm) == c);
    MigParamsSet ps = {.has_downtime_limit = true, .p.downtime_limit = 10};
    assert_int_equal(mig_migration_set_params(mm, &ps, NULL), 0);
    /* Once the stream is being loaded: busy. */
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(f->loop, NULL, &a, &b), 0);
    assert_int_equal(mig_migration_start_incoming(mm, b, NULL), 0);
    MigErr *err = NULL;
    assert_int_equal(mig_migration_set_caps(mm, c, 0, &err), -EBUSY);
    mig_err_free(err);
    assert_int_equal(mig_migration_cancel(mm), 0);
    mig_sim_run_for(f->loop, 1000000);
    mig_transport_close(a);
    mig_migration_free(mm);
}

static void test_migration_params_are_qemus(void **state)
{
    Fixture *f = *state;
    MigMigration *mm = new_mm(f, 0);
    MigParams p;
    mig_migration_params(mm, &p);
    json_t *q = mig_params_to_json(&p);
    /* QEMU 7.2's defaults (docs/protocol-qemu-stream.md section 15 and qapi). */
    static const struct {
        const char *name;
        json_int_t v;
    } ints[] = {
        {"announce-initial", 50},      {"announce-max", 550},
        {"announce-rounds", 5},        {"announce-step", 100},
        {"compress-level", 1},         {"compress-threads", 8},
        {"decompress-threads", 2},     {"throttle-trigger-threshold", 50},
        {"cpu-throttle-initial", 20},  {"cpu-throttle-increment", 10},
        {"max-bandwidth", 134217728},  {"downtime-limit", 300},
        {"x-checkpoint-delay", 20000}, {"multifd-channels", 2},
        {"xbzrle-cache-size", 67108864}, {"max-postcopy-bandwidth", 0},
        {"max-cpu-throttle", 99},      {"multifd-zlib-level", 1},
        {"multifd-zstd-level", 1},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(ints); i++) {
        json_t *v = json_object_get(q, ints[i].name);
        if (!json_is_integer(v) || json_integer_value(v) != ints[i].v)
            fail_msg("%s: expected %lld", ints[i].name, (long long)ints[i].v);
    }
    assert_true(json_is_true(json_object_get(q, "compress-wait-thread")));
    assert_true(json_is_false(json_object_get(q, "cpu-throttle-tailslow")));
    assert_true(json_is_false(json_object_get(q, "block-incremental")));
    assert_string_equal(json_string_value(json_object_get(q, "tls-creds")), "");
    assert_string_equal(json_string_value(json_object_get(q, "multifd-compression")), "none");
    assert_int_equal(json_object_size(q), MIG_PARAM__COUNT);
    json_decref(q);

    /* Set several, as a driver written for QEMU would; read them back. */
    json_t *args = json_loads("{\"multifd-channels\": 4, \"compress-wait-thread\": false,"
                              " \"tls-hostname\": \"peer\", \"multifd-compression\": \"zstd\","
                              " \"xbzrle-cache-size\": 1048576, \"downtime-limit\": 100}",
                              0, NULL);
    MigParamsSet set;
    assert_int_equal(mig_params_from_json(args, &set, NULL), 0);
    json_decref(args);
    assert_int_equal(mig_migration_set_params(mm, &set, NULL), 0);
    mig_migration_params(mm, &p);
    q = mig_params_to_json(&p);
    assert_int_equal(json_integer_value(json_object_get(q, "multifd-channels")), 4);
    assert_true(json_is_false(json_object_get(q, "compress-wait-thread")));
    assert_string_equal(json_string_value(json_object_get(q, "tls-hostname")), "peer");
    assert_string_equal(json_string_value(json_object_get(q, "multifd-compression")), "zstd");
    assert_int_equal(json_integer_value(json_object_get(q, "xbzrle-cache-size")), 1048576);
    assert_int_equal(p.downtime_limit, 100);
    assert_int_equal(json_integer_value(json_object_get(q, "compress-threads")), 8); /* kept */
    json_decref(q);

    /* QEMU's ranges; a refused set changes nothing. */
    static const char *const bad[][2] = {
        {"{\"compress-level\": 10, \"multifd-channels\": 9}", "compress-level"},
        {"{\"multifd-channels\": 0}", "multifd-channels"},
        {"{\"cpu-throttle-initial\": 100}", "cpu-throttle-initial"},
        {"{\"max-cpu-throttle\": 0}", "max-cpu-throttle"},
        {"{\"multifd-zstd-level\": 21}", "multifd-zstd-level"},
        {"{\"xbzrle-cache-size\": 5000}", "xbzrle-cache-size"},
        {"{\"announce-step\": 0}", "announce-step"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
        args = json_loads(bad[i][0], 0, NULL);
        MigErr *err = NULL;
        assert_int_equal(mig_params_from_json(args, &set, NULL), 0);
        json_decref(args);
        assert_int_equal(mig_migration_set_params(mm, &set, &err), -EINVAL);
        if (!strstr(err->msg, bad[i][1]))
            fail_msg("%s: %s", bad[i][0], err->msg);
        mig_err_free(err);
    }
    mig_migration_params(mm, &p);
    assert_int_equal(p.multifd_channels, 4);
    /* Wrong JSON types name the parameter. */
    static const char *const badtype[][2] = {
        {"{\"block-incremental\": 1}", "block-incremental"},
        {"{\"tls-creds\": 5}", "tls-creds"},
        {"{\"multifd-compression\": \"lz4\"}", "multifd-compression"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(badtype); i++) {
        args = json_loads(badtype[i][0], 0, NULL);
        MigErr *err = NULL;
        assert_int_equal(mig_params_from_json(args, &set, &err), -EINVAL);
        json_decref(args);
        assert_non_null(strstr(err->msg, badtype[i][1]));
        mig_err_free(err);
    }
    mig_migration_free(mm);
}

/* ---- save_iterate: one PART per call ---- */

typedef struct Counter {
    uint32_t calls;
} Counter;

static int it_save_iterate(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    Counter *c = opaque;
    mig_stream_put_be32(s, ++c->calls);
    return c->calls < 3 ? 0 : 1;
}

static bool done_or_failed(void *opaque)
{
    return mig_status_is_terminal(mig_migration_status(opaque));
}

static void test_migration_each_save_iterate_call_is_one_part(void **state)
{
    Fixture *f = *state;
    static const MigIterOps ops = {.save_iterate = it_save_iterate};
    Counter c = {0};
    assert_int_equal(mig_savevm_register_iterative(f->sv, "counter", 0, 1, &ops, &c, NULL), 1);
    MigMigration *mm = new_mm(f, 0);
    char path[] = "/tmp/migcert-parts-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    MigTransport *t = mig_transport_file_open(f->loop, path, true, NULL);
    assert_int_equal(mig_migration_start(mm, t, NULL), 0);
    assert_int_equal(mig_loop_run_until(f->loop, done_or_failed, mm, 0), 0);
    assert_int_equal(mig_migration_status(mm), MIG_STATUS_COMPLETED);
    mig_migration_free(mm);
    FILE *fp = fopen(path, "rb");
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    unlink(path);
    MigStream *s = mig_stream_new_mem_reader(buf, len);
    assert_int_equal(mig_stream_get_file_header(s, NULL), 0);
    MigStreamConfig cfg;
    assert_int_equal(mig_stream_get_configuration(s, &cfg, NULL), 0);
    uint32_t parts = 0;
    for (;;) {
        MigSectionHeader h;
        assert_int_equal(mig_stream_get_section_header(s, &h, NULL), 0);
        if (h.type == MIG_SECTION_EOF)
            break;
        assert_int_equal(h.section_id, 1);
        if (h.type == MIG_SECTION_PART)
            assert_int_equal(mig_stream_get_be32(s), ++parts);
        /* every section, PART included, is closed by its own footer */
        assert_int_equal(mig_stream_get_section_footer(s, 1, "counter", NULL), 0);
    }
    assert_int_equal(parts, 3);
    mig_stream_free(s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_source_table_every_arc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_destination_table_every_arc, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migration_phase_table_every_arc, setup, teardown),
        cmocka_unit_test(test_migration_status_names_are_qemus),
        cmocka_unit_test(test_migration_caps_intersection),
        cmocka_unit_test_setup_teardown(test_migration_caps_query_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_params_validation, setup, teardown),
        cmocka_unit_test(test_migration_info_json_shape),
        cmocka_unit_test_setup_teardown(test_migration_section_ids_start_at_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_page_flip_not_offered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_caps_settable_on_waiting_destination, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_migration_params_are_qemus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_each_save_iterate_call_is_one_part, setup,
                                        teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
