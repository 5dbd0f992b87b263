/*
 * test-migration.c - the migration state machines (every from x to arc of
 * both tables), capability negotiation and parameter validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* Shortest path of allowed arcs from none to `to` (BFS); returns its length
 * or -1 when unreachable; path[0..len) are the states after none. */
static int path_to(bool incoming, MigStatus to, MigStatus path[MIG_STATUS__COUNT])
{
    int prev[MIG_STATUS__COUNT];
    bool seen[MIG_STATUS__COUNT] = {false};
    MigStatus q[MIG_STATUS__COUNT];
    int qh = 0, qt = 0;
    for (int i = 0; i < MIG_STATUS__COUNT; i++)
        prev[i] = -1;
    q[qt++] = MIG_STATUS_NONE;
    seen[MIG_STATUS_NONE] = true;
    while (qh < qt) {
        MigStatus s = q[qh++];
        for (int t = 0; t < MIG_STATUS__COUNT; t++) {
            if (!seen[t] && mig_status_arc_allowed(incoming, s, t)) {
                seen[t] = true;
                prev[t] = s;
                q[qt++] = t;
            }
        }
    }
    if (!seen[to])
        return -1;
    int len = 0;
    MigStatus rev[MIG_STATUS__COUNT];
    for (int s = to; s != MIG_STATUS_NONE; s = prev[s])
        rev[len++] = s;
    for (int i = 0; i < len; i++)
        path[i] = rev[len - 1 - i];
    return len;
}

static void walk_table(Fixture *f, bool incoming)
{
    int allowed_count = 0;
    for (int from = 0; from < MIG_STATUS__COUNT; from++) {
        MigStatus path[MIG_STATUS__COUNT];
        int len = path_to(incoming, from, path);
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
            mig__migration_set_direction(mm, incoming);
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
    mig__migration_set_status(mm, MIG_STATUS_SETUP);
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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migration_source_table_every_arc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_destination_table_every_arc, setup,
                                        teardown),
        cmocka_unit_test(test_migration_status_names_are_qemus),
        cmocka_unit_test(test_migration_caps_intersection),
        cmocka_unit_test_setup_teardown(test_migration_caps_query_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_params_validation, setup, teardown),
        cmocka_unit_test(test_migration_info_json_shape),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
