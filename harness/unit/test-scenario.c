/*
 * test-scenario.c - scenario files (loader, errors with file:line:key), fault
 * specs and the fault injector; the executor: setup failures, management's
 * pre-flight, the pair rules, management's return path and its resume of a
 * source that completed before its destination failed, and every oracle
 * proven able to fail (the executor's self-test breaks one thing per case and
 * the case must turn red naming it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/faults.h"
#include "device/device.h"
#include "runner/exec.h"
#include "runner/faults-spec.h"
#include "runner/heap-count.h"
#include "runner/scenario.h"

static const char good_yaml[] =
    "# scenarios/precopy/transport-write-eio.yaml\n"          /* 1 */
    "summary: EIO on a transport write mid-precopy\n"          /* 2 */
    "machines:\n"                                              /* 3 */
    "  src: {release: \"2.0\", ram: 64M, devices: [fake-serial, fake-nic]}\n" /* 4 */
    "  dst: {release: \"2.1-dev\"}\n"                          /* 5 */
    "workload: {dirty-rate: 2000 pages/s}\n"                   /* 6 */
    "transport: unix\n"                                        /* 7 */
    "link: {bandwidth: 100M/s, latency: 1ms}\n"                /* 8 */
    "capabilities: [events]\n"                                 /* 9 */
    "steps:\n"                                                 /* 10 */
    "  - migrate: {}\n"                                        /* 11 */
    "  - wait: {phase: precopy, iteration: 2}\n"               /* 12 */
    "faults:\n"                                                /* 13 */
    "  - src:mig/transport/write#1 errno=EIO\n"                /* 14 */
    "expect:\n"                                                /* 15 */
    "  outcome: failed\n"                                      /* 16 */
    "  error: EIO\n";                                          /* 17 */

static Scenario *load_str(const char *yaml, MigErr **err)
{
    return scenario_load_data("t.yaml", yaml, strlen(yaml), err);
}

/* Replace the first occurrence of `from` by `to` in good_yaml. */
static char *variant(const char *from, const char *to)
{
    const char *at = strstr(good_yaml, from);
    assert_non_null(at);
    return mig_strdup_printf("%.*s%s%s", (int)(at - good_yaml), good_yaml, to, at + strlen(from));
}

static void expect_error(const char *yaml, const char *want)
{
    MigErr *err = NULL;
    Scenario *s = load_str(yaml, &err);
    assert_null(s);
    assert_non_null(err);
    if (!strstr(err->msg, want))
        fail_msg("error '%s' does not contain '%s'", err->msg, want);
    assert_int_equal(err->code, -EINVAL);
    mig_err_free(err);
}

static void test_scenario_loads_every_key(void **state)
{
    (void)state;
    MigErr *err = NULL;
    Scenario *s = load_str(good_yaml, &err);
    if (!s)
        fail_msg("%s", err->msg);
    assert_string_equal(s->src.release, "2.0");
    assert_int_equal(s->src.ram, 64ull << 20);
    assert_int_equal(s->src.ndevices, 2);
    assert_string_equal(s->src.devices[1], "fake-nic");
    /* dst inherits what it does not say */
    assert_string_equal(s->dst.release, "2.1-dev");
    assert_int_equal(s->dst.ram, 64ull << 20);
    assert_int_equal(s->dst.ndevices, 2);
    assert_int_equal(s->dirty_rate, 2000);
    assert_string_equal(s->transport, "unix");
    assert_int_equal(s->bandwidth, 100ull << 20);
    assert_int_equal(s->latency_ns, 1000000);
    assert_int_equal(s->ncaps, 1);
    assert_int_equal(s->nsteps, 2);
    assert_int_equal(s->steps[0].kind, SCN_STEP_MIGRATE);
    assert_int_equal(s->steps[0].line, 11);
    assert_int_equal(s->steps[1].kind, SCN_STEP_WAIT);
    assert_int_equal(s->steps[1].phase, SCN_PHASE_ACTIVE);
    assert_int_equal(s->steps[1].iteration, 2);
    assert_int_equal(s->nfaults, 1);
    assert_int_equal(s->faults[0].side, MIG_FAULT_SIDE_SRC);
    assert_string_equal(s->faults[0].point, "mig/transport/write");
    assert_int_equal(s->faults[0].nth, 1);
    assert_int_equal(s->outcome, SCN_OUTCOME_FAILED);
    assert_int_equal(s->error, -EIO);
    assert_true(s->return_path); /* management's default */
    assert_null(s->trace_excludes);
    scenario_free(s);
    char *y = variant("  error: EIO\n", "  error: EIO\n  trace-excludes: \"x y\"\n"
                      "return-path: false\n");
    s = load_str(y, &err);
    if (!s)
        fail_msg("%s", err->msg);
    assert_false(s->return_path);
    assert_string_equal(s->trace_excludes, "x y");
    scenario_free(s);
    free(y);
}

static void test_scenario_unknown_key_names_line_and_key(void **state)
{
    (void)state;
    char *y = variant("  dst: {release: \"2.1-dev\"}\n", "  dst: {release: \"2.1-dev\", rom: 1}\n");
    expect_error(y, "t.yaml:5: key 'rom': unknown key in machines.dst");
    free(y);
    y = variant("transport: unix\n", "transprot: unix\n");
    expect_error(y, "t.yaml:7: key 'transprot': unknown key");
    free(y);
    y = variant("  - wait: {phase: precopy, iteration: 2}\n",
                "  - wait: {phase: precopy, iteration: 2}\n  - cancel: {now: 1}\n");
    expect_error(y, "t.yaml:13: key 'now': unknown key in steps[2].cancel");
    free(y);
}

static void test_scenario_wrong_type_names_line_and_key(void **state)
{
    (void)state;
    char *y = variant("devices: [fake-serial, fake-nic]", "devices: fake-nic");
    expect_error(y, "t.yaml:4: key 'devices': ");
    free(y);
    y = variant("iteration: 2", "iteration: two");
    expect_error(y, "t.yaml:12: key 'iteration': ");
    free(y);
    y = variant("  outcome: failed\n", "  outcome: crashed\n");
    expect_error(y, "t.yaml:16: key 'outcome': ");
    free(y);
}

static void test_scenario_bad_values_name_line_and_key(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"ram: 64M", "ram: 64Q", "t.yaml:4: key 'ram': invalid size '64Q'"},
        {"ram: 64M", "ram: 1000", "t.yaml:4: key 'ram': invalid size"},
        {"release: \"2.1-dev\"", "release: \"3.0\"", "t.yaml:5: key 'release': unknown release '3.0'"},
        {"fake-nic]", "fake-nix]", "t.yaml:4: key 'devices[1]': unknown device 'fake-nix'"},
        {"2000 pages/s", "fast", "t.yaml:6: key 'dirty-rate': invalid rate 'fast'"},
        {"transport: unix", "transport: tcp", "t.yaml:7: key 'transport': unknown transport 'tcp'"},
        {"transport: unix", "transport: file", "t.yaml:7: key 'transport': transport 'file' is not modeled"},
        {"transport: unix", "transport: local", "t.yaml:7: key 'transport': transport 'local' is not modeled"},
        {"capabilities: [events]", "capabilities: [events, x-bogus]", "t.yaml:9: key 'capabilities[1]': unknown capability 'x-bogus'"},
        {"  dst: {release: \"2.1-dev\"}\n", "  dst: {release: \"2.1-dev\",\n        capabilities: [evnts]}\n", "t.yaml:6: key 'capabilities[0]': unknown capability 'evnts'"},
        {"workload:", "preflight: maybe\nworkload:", "t.yaml:6: key 'preflight': invalid value 'maybe'"},
        {"workload:", "return-path: 1\nworkload:", "t.yaml:6: key 'return-path': invalid value '1'"},
        {"capabilities: [events]", "requires: [rp]\ncapabilities: [events]", "t.yaml:9: key 'requires[0]': unknown capability 'rp'"},
        {"  - wait: {phase: precopy, iteration: 2}\n", "  - device-error: {side: src, device: fake-nic}\n", "t.yaml:12: key 'device': device-error needs a VFIO-style device (fake-gpu)"},
        {"  - wait: {phase: precopy, iteration: 2}\n", "  - device-error: {side: src, device: fake-gpu, state: BROKEN}\n", "t.yaml:12: key 'state': unknown device state 'BROKEN'"},
        {"  - wait: {phase: precopy, iteration: 2}\n", "  - wait: {device-state: SLEEPING}\n", "t.yaml:12: key 'device-state': unknown device state 'SLEEPING'"},
        {"100M/s", "100M", "t.yaml:8: key 'bandwidth': invalid bandwidth '100M'"},
        {"latency: 1ms", "latency: 1 fortnight", "t.yaml:8: key 'latency': invalid duration"},
        {"phase: precopy", "phase: postcopy", "t.yaml:12: key 'phase': unknown phase 'postcopy'"},
        {"write#1", "write#0", "t.yaml:14: key 'faults': fault 'src:mig/transport/write#0 errno=EIO': hit numbers start at 1"},
        {"error: EIO", "error: EWHAT", "t.yaml:17: key 'error': unknown errno name 'EWHAT'"},
        {"  - migrate: {}\n", "  - migrate: {}\n    cancel: {}\n", "t.yaml:11: key 'steps': step 1 must have exactly one action"},
        {"  - migrate: {}\n", "  - cancel: {}\n", "key 'steps': no migrate step"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        char *y = variant(cases[i].from, cases[i].to);
        expect_error(y, cases[i].want);
        free(y);
    }
}

static void test_scenario_missing_required_key(void **state)
{
    (void)state;
    char *y = variant("expect:\n  outcome: failed\n  error: EIO\n", "");
    expect_error(y, "t.yaml:1: key 'expect': required key missing in the file");
    free(y);
    y = variant("  outcome: failed\n", "");
    expect_error(y, "t.yaml:15: key 'outcome': required key missing in expect");
    free(y);
    expect_error("", "t.yaml:1: the file is empty");
    expect_error("\n# a list is not a scenario\n- migrate: {}\n",
                 "t.yaml:3: the top level must be a mapping of keys");
    expect_error("just a sentence\n", "t.yaml:1: the top level must be a mapping of keys");
    expect_error("summary: [unclosed\n", "t.yaml:");
}

/* drop: {device-data: P%, device-state: S}: the share and the phase load;
 * a bad share, a state without data, or device-data mixed with at-byte is an
 * error naming file, line and key. */
static void test_scenario_drop_device_data(void **state)
{
    (void)state;
    const char *wait = "  - wait: {phase: precopy, iteration: 2}\n";
    MigErr *err = NULL;
    char *y = variant(wait, "  - drop: {device-data: 100%, device-state: STOP_COPY}\n"
                            "  - drop: {device-data: 0%}\n  - drop: {at-byte: 64K}\n");
    Scenario *s = load_str(y, &err);
    if (!s)
        fail_msg("%s", err->msg);
    assert_int_equal(s->nsteps, 4);
    assert_int_equal(s->steps[1].kind, SCN_STEP_DROP);
    assert_int_equal(s->steps[1].device_data, 100);
    assert_int_equal(s->steps[1].device_state, MIG_DEV_STOP_COPY);
    assert_int_equal(s->steps[1].bytes, 0);
    assert_int_equal(s->steps[2].device_data, 0);
    assert_int_equal(s->steps[2].device_state, -1); /* the phase it is in, or the next */
    assert_int_equal(s->steps[3].device_data, -1);  /* a byte-count drop */
    assert_int_equal(s->steps[3].bytes, 64 << 10);
    scenario_free(s);
    free(y);
    static const struct {
        const char *to, *want;
    } cases[] = {
        {"  - drop: {device-data: 150%}\n",
         "t.yaml:12: key 'device-data': invalid share '150%' of the device's data"},
        {"  - drop: {device-data: half}\n",
         "t.yaml:12: key 'device-data': invalid share 'half'"},
        {"  - drop: {device-data: 50}\n", "t.yaml:12: key 'device-data': invalid share '50'"},
        {"  - drop: {device-data: 50%, device-state: RESUMING}\n",
         "t.yaml:12: key 'device-state': invalid device state 'RESUMING' (expected PRE_COPY or "
         "STOP_COPY"},
        {"  - drop: {device-state: PRE_COPY}\n",
         "t.yaml:12: key 'device-state': device-state goes with device-data"},
        {"  - drop: {at-byte: 1M, device-data: 50%}\n",
         "t.yaml:12: key 'device-data': a drop is either at-byte or device-data, not both"},
        {"  - drop:\n      device-data: 10%\n      device-sate: PRE_COPY\n",
         "t.yaml:14: key 'device-sate': unknown key in steps[1].drop"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        y = variant(wait, cases[i].to);
        expect_error(y, cases[i].want);
        free(y);
    }
}

/* Every truncation of a valid file either loads or fails with FILE:LINE. */
static void test_scenario_every_truncation(void **state)
{
    (void)state;
    size_t len = strlen(good_yaml);
    for (size_t n = 0; n < len; n++) {
        char *y = mig_strdup_printf("%.*s", (int)n, good_yaml);
        MigErr *err = NULL;
        Scenario *s = load_str(y, &err);
        if (s) {
            assert_null(err);
            scenario_free(s);
        } else {
            assert_non_null(err);
            if (strncmp(err->msg, "t.yaml:", 7) || err->msg[7] < '0' || err->msg[7] > '9')
                fail_msg("truncation %zu: error without FILE:LINE: %s", n, err->msg);
            mig_err_free(err);
        }
        free(y);
    }
}

static void test_scenario_value_parsers(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(scn_parse_size("64M", &v), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(scn_parse_size("1G", &v), 0);
    assert_int_equal(v, 1ull << 30);
    assert_int_equal(scn_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(scn_parse_size("12X", &v), -EINVAL);
    assert_int_equal(scn_parse_duration("10ms", &v), 0);
    assert_int_equal(v, 10000000);
    assert_int_equal(scn_parse_duration("2s", &v), 0);
    assert_int_equal(v, 2000000000ull);
    assert_int_equal(scn_parse_duration("10", &v), -EINVAL);
    assert_int_equal(scn_parse_bandwidth("unlimited", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(scn_parse_bandwidth("10M/s", &v), 0);
    assert_int_equal(v, 10ull << 20);
    assert_int_equal(scn_parse_rate("500 pages/s", &v), 0);
    assert_int_equal(v, 500);
    assert_int_equal(scn_parse_size("1.5K", &v), 0);
    assert_int_equal(v, 1536);
    /* what strtod alone would take, and what does not fit in 64 bits */
    static const char *const bad[] = {"nan", "nAn", "inf", "-1M", "0x10", "1e30G",
                                      "18446744073709551616", "+4K", ""};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
        if (scn_parse_size(bad[i], &v) != -EINVAL)
            fail_msg("size '%s' accepted as %llu", bad[i], (unsigned long long)v);
        char d[32], b[32];
        snprintf(d, sizeof(d), "%ss", bad[i]);
        snprintf(b, sizeof(b), "%s/s", bad[i]);
        if (scn_parse_duration(d, &v) != -EINVAL)
            fail_msg("duration '%s' accepted as %llu", d, (unsigned long long)v);
        if (scn_parse_bandwidth(b, &v) != -EINVAL)
            fail_msg("bandwidth '%s' accepted as %llu", b, (unsigned long long)v);
    }
    assert_int_equal(scn_parse_duration("1e30s", &v), -EINVAL);
    assert_int_equal(scn_parse_rate("nan pages/s", &v), -EINVAL);
}

static void test_scenario_fault_spec_forms(void **state)
{
    (void)state;
    MigFaultSpec s;
    char buf[128];
    assert_int_equal(mig_fault_spec_parse("dst:mig/vmstate/load#3", &s, NULL), 0);
    assert_int_equal(s.side, MIG_FAULT_SIDE_DST);
    assert_int_equal(s.when, MIG_FAULT_WHEN_NTH);
    assert_int_equal(s.nth, 3);
    assert_int_equal(s.err, -EINVAL);
    mig_fault_spec_format(&s, buf, sizeof(buf));
    assert_string_equal(buf, "dst:mig/vmstate/load#3");
    assert_int_equal(mig_fault_spec_parse("src:mig/stream/flush@stop-copy", &s, NULL), 0);
    assert_int_equal(s.when, MIG_FAULT_WHEN_PHASE);
    assert_int_equal(s.phase, SCN_PHASE_DEVICE);
    mig_fault_spec_format(&s, buf, sizeof(buf));
    assert_string_equal(buf, "src:mig/stream/flush@device");
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write%0.25", &s, NULL), 0);
    assert_int_equal(s.when, MIG_FAULT_WHEN_PROB);
    mig_fault_spec_format(&s, buf, sizeof(buf));
    assert_string_equal(buf, "src:mig/transport/write%0.25");
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/read", &s, NULL), 0);
    assert_int_equal(s.when, MIG_FAULT_WHEN_ALWAYS);
}

static void test_scenario_fault_spec_errors(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *want;
    } cases[] = {
        {"mig/transport/write#1", "expected SIDE:POINT"},
        {"host:mig/transport/write#1", "unknown side 'host'"},
        {"src:#1", "missing fault point"},
        {"src:mig/nope#1", "unknown fault point 'mig/nope'"},
        {"src:mig/transport/write#", "'#' needs a hit number"},
        {"src:mig/transport/write#0", "hit numbers start at 1"},
        {"src:mig/transport/write@later", "unknown phase 'later'"},
        {"src:mig/transport/write%2", "probability in (0, 1]"},
        {"src:mig/ram/iterate#1 errno=EPIPE", "injects EIO, not EPIPE"},
        {"src:mig/transport/write#1 errno=EBOGUS", "unknown errno 'EBOGUS'"},
        {"src:mig/transport/write#1 please", "unexpected 'please'"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        MigFaultSpec s;
        MigErr *err = NULL;
        assert_int_equal(mig_fault_spec_parse(cases[i].spec, &s, &err), -EINVAL);
        assert_non_null(err);
        if (!strstr(err->msg, cases[i].want) || !strstr(err->msg, cases[i].spec))
            fail_msg("'%s': error '%s' lacks '%s'", cases[i].spec, err->msg, cases[i].want);
        mig_err_free(err);
    }
}

static void test_scenario_injector_nth_hit_per_side(void **state)
{
    (void)state;
    MigFaultSpec s;
    assert_int_equal(mig_fault_spec_parse("dst:mig/transport/write#3", &s, NULL), 0);
    FaultInjector *inj = fault_injector_new(&s, 1, 1, NULL, NULL);
    /* src hits never count toward dst's #3 */
    fault_injector_set_side(inj, MIG_FAULT_SIDE_SRC);
    for (int i = 0; i < 5; i++)
        assert_false(fault_injector_decide(inj, "mig/transport/write"));
    fault_injector_set_side(inj, MIG_FAULT_SIDE_DST);
    assert_false(fault_injector_decide(inj, "mig/transport/write"));
    assert_false(fault_injector_decide(inj, "mig/transport/read"));
    assert_false(fault_injector_decide(inj, "mig/transport/write"));
    assert_true(fault_injector_decide(inj, "mig/transport/write"));
    assert_false(fault_injector_decide(inj, "mig/transport/write"));
    assert_int_equal(fault_injector_fired(inj), 1);
    assert_string_equal(fault_injector_first_fired(inj), "dst:mig/transport/write#3");
    size_t idx = (size_t)(mig_faults_find("mig/transport/write") - mig_faults_table(&(size_t){0}));
    assert_int_equal(fault_injector_hits(inj, MIG_FAULT_SIDE_SRC, idx), 5);
    assert_int_equal(fault_injector_hits(inj, MIG_FAULT_SIDE_DST, idx), 4);
    fault_injector_free(inj);
}

static void test_scenario_injector_phase_fires_once(void **state)
{
    (void)state;
    MigFaultSpec s;
    assert_int_equal(mig_fault_spec_parse("src:mig/stream/flush@precopy", &s, NULL), 0);
    FaultInjector *inj = fault_injector_new(&s, 1, 1, NULL, NULL);
    fault_injector_set_phase(inj, SCN_PHASE_SETUP);
    assert_false(fault_injector_decide(inj, "mig/stream/flush"));
    fault_injector_set_phase(inj, SCN_PHASE_ACTIVE);
    assert_true(fault_injector_decide(inj, "mig/stream/flush"));
    assert_false(fault_injector_decide(inj, "mig/stream/flush"));
    fault_injector_free(inj);
}

static uint64_t prob_pattern(uint64_t seed)
{
    MigFaultSpec s;
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/write%0.5", &s, NULL), 0);
    FaultInjector *inj = fault_injector_new(&s, 1, seed, NULL, NULL);
    uint64_t bits = 0;
    for (int i = 0; i < 64; i++)
        bits = bits << 1 | fault_injector_decide(inj, "mig/transport/write");
    fault_injector_free(inj);
    return bits;
}

static void test_scenario_injector_probability_follows_seed(void **state)
{
    (void)state;
    assert_true(prob_pattern(7) == prob_pattern(7));
    assert_true(prob_pattern(7) != prob_pattern(8));
    uint64_t b = prob_pattern(7);
    assert_true(__builtin_popcountll(b) > 16 && __builtin_popcountll(b) < 48);
}

#ifdef FIU_ENABLE
#include <fiu.h>
static void test_scenario_injector_drives_libfiu(void **state)
{
    (void)state;
    MigFaultSpec s;
    assert_int_equal(mig_fault_spec_parse("src:mig/transport/read#2", &s, NULL), 0);
    FaultInjector *inj = fault_injector_new(&s, 1, 1, NULL, NULL);
    assert_int_equal(fault_injector_arm(inj), 0);
    FaultInjector *other = fault_injector_new(NULL, 0, 1, NULL, NULL);
    assert_int_equal(fault_injector_arm(other), -EBUSY);
    fault_injector_free(other);
    assert_int_equal(fiu_fail("mig/transport/read"), 0);
    assert_int_not_equal(fiu_fail("mig/transport/read"), 0);
    assert_int_equal(fiu_fail("mig/transport/read"), 0);
    fault_injector_disarm(inj);
    assert_int_equal(fiu_fail("mig/transport/read"), 0);
    assert_int_equal(fault_injector_fired(inj), 1);
    fault_injector_free(inj);
}
#endif

/* ---- the executor ---- */

static Scenario *scn(const char *yaml)
{
    MigErr *err = NULL;
    Scenario *s = load_str(yaml, &err);
    if (!s)
        fail_msg("%s", err->msg);
    return s;
}

static void run_case(const Scenario *s, const char *ps, const char *pd, ExecSelftest st,
                     RunResult *r)
{
    RunCase c = {.scn = s, .seed = 0x5eed, .pair_src = ps, .pair_dst = pd, .selftest = st};
    assert_int_equal(exec_run_case(&c, r), 0);
}

static void assert_red(const RunResult *r, const char *want)
{
    if (r->passed)
        fail_msg("the case passed; expected it to fail with '%s'", want);
    if (!strstr(r->error, want))
        fail_msg("error '%s' does not contain '%s'", r->error, want);
}

static const char small_yaml[] =
    "summary: small\n"
    "machines:\n"
    "  src: {release: \"2.1-dev\", ram: 4M, devices: [fake-serial, fake-nic]}\n"
    "workload: {dirty-rate: 500 pages/s}\n"
    "steps:\n"
    "  - migrate: {}\n"
    "expect:\n"
    "  outcome: completed\n";

static const char client_without_spice_yaml[] =
    "summary: client without spice\n"
    "machines:\n"
    "  src: {ram: 4M}\n"
    "client: {old: \"true\"}\n"
    "steps:\n"
    "  - migrate: {}\n"
    "expect:\n"
    "  outcome: completed\n";

static const char gpu_yaml[] =
    "summary: gpu\n"
    "machines:\n"
    "  src: {release: \"2.1-dev\", ram: 4M, fill: zero, devices: [fake-serial, fake-gpu]}\n"
    "steps:\n"
    "  - migrate: {}\n"
    "expect:\n"
    "  outcome: completed\n";

/* A case whose setup fails (a parameter out of range) reports it and frees
 * what it built: it once jumped past an uninitialised error and crashed. */
static void test_scenario_exec_setup_failure_is_reported(void **state)
{
    (void)state;
    char *y = mig_strdup_printf("%sparameters: {downtime-limit: 3000s}\n", small_yaml);
    Scenario *s = scn(y);
    RunResult *r = mig_malloc0(sizeof(*r));
    RunCase c = {.scn = s, .seed = 1};
    assert_int_equal(exec_run_case(&c, r), -EINVAL);
    assert_false(r->passed);
    assert_non_null(strstr(r->error, "parameters: "));
    free(r);
    scenario_free(s);
    free(y);
}

/* Every oracle can fail: break one thing, the case turns red naming it. */
static void test_scenario_exec_oracles_can_fail(void **state)
{
    (void)state;
    Scenario *s = scn(small_yaml), *g = scn(gpu_yaml);
    RunResult *r = mig_malloc0(sizeof(*r));
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("baseline: %s", r->error);
    run_case(g, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("baseline with fake-gpu: %s", r->error);
    static const struct {
        ExecSelftest st;
        bool gpu;
        const char *want;
    } cases[] = {
        {EXEC_SELFTEST_PAGE, false, "memory: destination"},
        {EXEC_SELFTEST_FIELD, false, "fake-serial: field scr: destination has"},
        {EXEC_SELFTEST_GPU, true, "devices: destination fake-gpu (loaded): memory page 1365"},
        {EXEC_SELFTEST_GPU_WRITTEN, true, "devices: destination fake-gpu (loaded): memory page "},
        {EXEC_SELFTEST_ARC, true, "device arcs: src fake-gpu took arc"},
        {EXEC_SELFTEST_TIMER, false, "resources: 1 timer(s)/defer(s) left on the loop"},
        {EXEC_SELFTEST_FD, false, "resources: 1 fd(s) more open than before the case"},
        {EXEC_SELFTEST_TRANSPORT, false, "resources: 2 mem transport(s) of the migration link "
                                         "left open"},
        /* the byte figure is told, not judged: it moves with the heap's
         * layout (heap-count.h), so only the block count is matched */
        {EXEC_SELFTEST_HEAP, false, "resources: 1 heap block(s), "},
        {EXEC_SELFTEST_MAP, false, "resources: 8192 byte(s) still mapped (mmap without munmap"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        /* under valgrind the heap count is off (runner/heap-count.h): the
         * valgrind lane's leak check stands in for that oracle */
        if (cases[i].st == EXEC_SELFTEST_HEAP && !heap_count_active())
            continue;
        /* a sanitizer build does not replace mmap: nothing counts mappings */
        if (cases[i].st == EXEC_SELFTEST_MAP && !HEAP_COUNT_REPLACES)
            continue;
        run_case(cases[i].gpu ? g : s, NULL, NULL, cases[i].st, r);
        assert_red(r, cases[i].want);
    }
    free(r);
    scenario_free(s);
    scenario_free(g);
}


/* ---- SPICE ---- */

static const char spice_yaml[] =
    "summary: spice\n"
    "machines:\n"
    "  src: {release: \"2.1-dev\", ram: 4M}\n"
    "spice: {}\n"
    "steps:\n"
    "  - migrate: {}\n"
    "expect:\n"
    "  outcome: completed\n";

static const char spice_seamless_yaml[] =
    "summary: spice seamless\n"
    "machines:\n"
    "  src: {release: \"2.1-dev\", ram: 4M}\n"
    "spice: {seamless: \"true\"}\n"
    "steps:\n"
    "  - migrate: {}\n"
    "expect:\n"
    "  outcome: completed\n"
    "  client-migration: seamless\n";

/* The SPICE keys: defaults, every value read, and errors at their line. */
static void test_scenario_spice_keys(void **state)
{
    (void)state;
    Scenario *s = scn(spice_yaml);
    assert_true(s->spice.on);
    assert_true(s->client.present);
    assert_int_equal(s->spice.width, 160);
    assert_int_equal(s->spice.migrate_info, SCN_MIGRATE_INFO_WAIT);
    assert_int_equal(s->client_end, SCN_CLIENT_END_AUTO);
    assert_null(s->client_error);
    scenario_free(s);
    char *y = mig_strdup_printf(
        "summary: spice\nmachines:\n  src: {ram: 4M}\n"
        "spice: {password: pw, migrate-timeout: 2s, migrate-info: no-wait, display: 64x48, vmc-rate: \"9\"}\n"
        "client: {old: \"true\", pixmap-cache: 4K, target: hang, target-delay: 1s, disconnect-at: end,\n"
        "         migrate-end-delay: 3s, link: {bandwidth: 1M/s, latency: 2ms}}\n"
        "steps:\n  - client-migrate-info: {wait: \"false\"}\n  - migrate: {}\n"
        "  - client: {slow: dst, bandwidth: 2M/s}\n  - client: {send: flush-mark}\n"
        "expect:\n  outcome: completed\n  client: none\n  client-migration: switch-host\n"
        "  client-error: refused\n");
    s = scn(y);
    assert_string_equal(s->spice.password, "pw");
    assert_string_equal(s->client.password, "pw");
    assert_int_equal(s->spice.migrate_timeout_ns, 2000000000ull);
    assert_int_equal(s->spice.migrate_info, SCN_MIGRATE_INFO_NO_WAIT);
    assert_int_equal(s->spice.width * 100 + s->spice.height, 6448);
    assert_int_equal(s->spice.vmc_rate, 9);
    assert_true(s->client.old);
    assert_int_equal(s->client.pixmap_cache, 4096);
    assert_int_equal(s->client.target, SCN_TARGET_HANG);
    assert_int_equal(s->client.disconnect_at, SCN_CLIENT_STEP_END);
    assert_int_equal(s->client.migrate_end_delay_ns, 3000000000ull);
    assert_int_equal(s->client.bandwidth, 1u << 20);
    assert_int_equal(s->steps[0].kind, SCN_STEP_CLIENT_MIGRATE_INFO);
    assert_false(s->steps[0].wait);
    assert_int_equal(s->steps[2].client_action, SCN_CLIENT_SLOW);
    assert_int_equal(s->steps[2].side, MIG_FAULT_SIDE_DST);
    assert_int_equal(s->steps[3].send, SCN_SEND_FLUSH_MARK);
    assert_int_equal(s->client_end, SCN_CLIENT_END_NONE);
    assert_int_equal(s->client_mig, SCN_CLIENT_MIG_SWITCH_HOST);
    assert_string_equal(s->client_error, "refused");
    scenario_free(s);
    free(y);
    static const struct {
        const char *extra;
        const char *want;
        const char *spice; /* the `spice:` mapping, NULL: {} */
    } bad[] = {
        {"client: {old: yes}\n", "t.yaml:5: key 'old': invalid value 'yes' (expected true or false)"},
        {"client: {target: maybe}\n", "key 'target': invalid value 'maybe' (expected one of: accept, refuse, fail, hang)"},
        {"client: {disconnect-at: never}\n", "key 'disconnect-at': invalid value 'never' (expected one of: begin, "
                                                "connected, end, switched, seamless-ack, migrate, flushed, data)"},
        {"client: {blob: garbled}\n", "key 'blob': invalid value 'garbled' (expected one of: none, short, "
                                       "bad-magic, newer-version, older-version, bad-surface, drop)"},
        {"client: {disconnect-at: end, disconnect-at-message: \"3\"}\n", "not both"},
        {"client: {present: \"false\"}\n", "key 'present': a scenario without a client expects nothing of it"},
        /* what a server speaks of migration is its release's: the keys that
         * said it are refused, naming the replacement and where */
        {"", "t.yaml:4: key 'semi-seamless': removed: a server's SEMI_SEAMLESS comes from its release; name one "
             "without it instead (machines.src.release: \"1.0\"", "{semi-seamless: \"false\"}"},
        {"", "t.yaml:4: key 'migration-version-src': removed: the seamless migration protocol version comes from "
             "the release", "{seamless: \"true\", migration-version-src: \"2\"}"},
        {"", "key 'migration-version-dst': removed: the seamless migration protocol version comes from the release; "
             "name the releases instead (machines.src.release / machines.dst.release",
         "{migration-version-dst: \"1\"}"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(bad); i++) {
        const char *sp = bad[i].spice ? bad[i].spice : "{}";
        char *b = mig_strdup_printf("summary: spice\nmachines:\n  src: {ram: 4M}\nspice: %s\n%s"
                                    "steps:\n  - migrate: {}\nexpect:\n  outcome: completed\n  client: src\n",
                                    sp, bad[i].extra);
        MigErr *err = NULL;
        Scenario *z = load_str(b, &err);
        if (z)
            fail_msg("'%s' '%s' loaded", sp, bad[i].extra);
        if (!strstr(err->msg, bad[i].want))
            fail_msg("'%s' '%s': error '%s' lacks '%s'", sp, bad[i].extra, err->msg, bad[i].want);
        mig_err_free(err);
        free(b);
    }
    MigErr *err = NULL;
    assert_null(load_str(client_without_spice_yaml, &err));
    assert_non_null(strstr(err->msg, "needs `spice:`"));
    mig_err_free(err);
}

/* Every SPICE oracle can fail: break what the client sees, it names it. */
static void test_scenario_exec_spice_oracles_can_fail(void **state)
{
    (void)state;
    Scenario *s = scn(spice_yaml);
    RunResult *r = mig_malloc0(sizeof(*r));
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("baseline: %s", r->error);
    /* every channel the client links, each passed */
    assert_int_equal(r->nspice, 7);
    for (size_t k = 0; k < r->nspice; k++)
        assert_int_equal(r->spice[k].verdict, EXEC_CHANNEL_PASSED);
    /* each break fails the channel it broke (`failed`) and no other (the
     * display is not judged when the client is not where it must be) */
    static const struct {
        ExecSelftest st;
        const char *want;
        const char *failed;
        ExecChannelVerdict display;
    } cases[] = {
        {EXEC_SELFTEST_SPICE_SERVER, "spice: the client ended on src, expected on dst", "MAIN",
         EXEC_CHANNEL_NOT_JUDGED},
        {EXEC_SELFTEST_SPICE_SCREEN, "spice: the client's screen differs from the guest framebuffer of dst in 1 pixel",
         "DISPLAY", EXEC_CHANNEL_FAILED},
        {EXEC_SELFTEST_SPICE_IMAGE, "which the client does not hold", "DISPLAY", EXEC_CHANNEL_FAILED},
        {EXEC_SELFTEST_SPICE_PLAYBACK, "spice: playback repeated 1 frame(s)", "PLAYBACK", EXEC_CHANNEL_PASSED},
        /* the guest's stream skips a frame after the switch */
        {EXEC_SELFTEST_SPICE_PLAYBACK_GAP, "spice: playback lost 1 frame(s) over a semi-seamless migration",
         "PLAYBACK", EXEC_CHANNEL_PASSED},
        /* the client closes its port channel on the byte (the sequences
         * oracle would count it had the channel stayed) */
        {EXEC_SELFTEST_SPICE_PORT, "message SPICEVMC_DATA: port byte", "PORT", EXEC_CHANNEL_PASSED},
        {EXEC_SELFTEST_SPICE_LEFTOVER, "the src server still has 0 channel client(s) and 1 link(s) in progress",
         "MAIN", EXEC_CHANNEL_PASSED},
        /* the client records frame 0 again: the guest's sink sees it */
        {EXEC_SELFTEST_SPICE_RECORD, "spice: record: fake-snd on dst got 1 frame(s) again or out of order",
         "RECORD", EXEC_CHANNEL_PASSED},
        /* the client sends group 0's mouse event again: the guest sees it */
        {EXEC_SELFTEST_SPICE_INPUTS, "spice: inputs: the guest on dst got 1 group(s) of key and mouse events again",
         "INPUTS", EXEC_CHANNEL_PASSED},
        /* the server moves the client's cursor a pixel from the guest's */
        {EXEC_SELFTEST_SPICE_CURSOR, "spice: cursor: the client's is at (", "CURSOR", EXEC_CHANNEL_PASSED},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        run_case(s, NULL, NULL, cases[i].st, r);
        assert_red(r, cases[i].want);
        assert_int_equal(r->nspice, 7);
        for (size_t k = 0; k < r->nspice; k++) {
            char name[32];
            exec_spice_channel_name(r->spice[k].type, r->spice[k].id, name, sizeof(name));
            ExecChannelVerdict want = !strcmp(name, cases[i].failed) ? EXEC_CHANNEL_FAILED
                                      : !strcmp(name, "DISPLAY")     ? cases[i].display
                                                                     : EXEC_CHANNEL_PASSED;
            if (r->spice[k].verdict != want)
                fail_msg("%s: channel %s is %s (%s), expected %s", cases[i].want, name,
                         exec_channel_verdict_names[r->spice[k].verdict], r->spice[k].why,
                         exec_channel_verdict_names[want]);
        }
    }
    scenario_free(s);
    /* seamless: the same gap fails the same way (issue 11, section 3) */
    s = scn(spice_seamless_yaml);
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("seamless baseline: %s", r->error);
    run_case(s, NULL, NULL, EXEC_SELFTEST_SPICE_PLAYBACK_GAP, r);
    assert_red(r, "spice: playback lost 1 frame(s) over a seamless migration");
    for (size_t k = 0; k < r->nspice; k++) {
        char name[32];
        exec_spice_channel_name(r->spice[k].type, r->spice[k].id, name, sizeof(name));
        assert_int_equal(r->spice[k].verdict, !strcmp(name, "PLAYBACK") ? EXEC_CHANNEL_FAILED : EXEC_CHANNEL_PASSED);
    }
    free(r);
    scenario_free(s);
}

/* A pair that cannot run a scenario is named with its reason before anything
 * runs: fake-gpu ships with the 2.0 machine type, return-path from 1.1 on. */
static void test_scenario_exec_applicable_names_why_not(void **state)
{
    (void)state;
    static const char rp_yaml[] =
        "summary: needs return-path\n"
        "machines:\n"
        "  src: {release: \"2.1-dev\", ram: 4M}\n"
        "requires: [return-path]\n"
        "steps:\n"
        "  - migrate: {}\n"
        "expect:\n"
        "  outcome: completed\n";
    Scenario *g = scn(gpu_yaml), *rp = scn(rp_yaml);
    char why[256] = "";
    RunCase c = {.scn = g};
    assert_int_equal(exec_case_applicable(&c, why, sizeof(why)), EXEC_APPLICABLE);
    c.pair_src = "2.0", c.pair_dst = "1.0";
    assert_int_equal(exec_case_applicable(&c, why, sizeof(why)), EXEC_APPLICABLE);
    c.pair_src = "1.1", c.pair_dst = "2.1-dev";
    assert_int_equal(exec_case_applicable(&c, why, sizeof(why)), EXEC_NA_DEVICE);
    assert_string_equal(why, "machine type mc-1.1 has no fake-gpu");
    RunCase d = {.scn = rp, .pair_src = "2.0", .pair_dst = "1.0"};
    assert_int_equal(exec_case_applicable(&d, why, sizeof(why)), EXEC_NA_CAPABILITY);
    assert_string_equal(why, "the scenario requires capability return-path, which 2.0 -> 1.0 "
                             "do not both offer");
    d.pair_src = "1.1", d.pair_dst = "2.0";
    assert_int_equal(exec_case_applicable(&d, why, sizeof(why)), EXEC_APPLICABLE);
    scenario_free(g);
    scenario_free(rp);
}

/* New -> old without the old machine type: management's pre-flight refuses
 * before anything is sent, naming device and field; the source runs on.
 * With pre-flight off the destination's own machine-type check refuses. */
static void test_scenario_exec_preflight_names_device_and_field(void **state)
{
    (void)state;
    static const char y[] =
        "summary: new to old\n"
        "machines:\n"
        "  src: {release: \"2.0\", ram: 4M, devices: [fake-nic, fake-serial]}\n"
        "  dst: {release: \"1.1\"}\n"
        "steps:\n"
        "  - migrate: {}\n"
        "expect:\n"
        "  outcome: failed\n";
    Scenario *s = scn(y);
    RunResult *r = mig_malloc0(sizeof(*r));
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "failed");
    assert_non_null(strstr(r->mig_error, "pre-flight: fake-nic: field mtu: "));
    /* the same under pairs: 1.1 -> 1.0 names the offload subsection */
    run_case(s, "1.1", "1.0", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_non_null(strstr(r->mig_error, "pre-flight: fake-nic: subsection fake-nic/offload"));
    /* a pair the rules say completes must complete, whatever the file said */
    run_case(s, "1.1", "2.0", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "completed");
    scenario_free(s);
    char *off = mig_strdup_printf("%spreflight: false\n", y);
    s = scn(off);
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_non_null(strstr(r->mig_error, "Machine type") ? r->mig_error : r->error);
    free(off);
    free(r);
    scenario_free(s);
}

/* The pair rules apply to every scenario: a cancel scenario run new -> old
 * must fail at pre-flight (not time out or claim "cancelled"). */
static void test_scenario_exec_pair_rules_apply_to_every_outcome(void **state)
{
    (void)state;
    static const char y[] =
        "summary: cancel\n"
        "machines:\n"
        "  src: {release: \"2.1-dev\", ram: 32M, devices: [fake-nic]}\n"
        "link: {bandwidth: 100M/s}\n"
        "steps:\n"
        "  - migrate: {}\n"
        "  - wait: {phase: precopy}\n"
        "  - cancel: {}\n"
        "expect:\n"
        "  outcome: cancelled\n";
    Scenario *s = scn(y);
    RunResult *r = mig_malloc0(sizeof(*r));
    run_case(s, "2.0", "1.1", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "failed");
    run_case(s, "1.0", "2.0", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "cancelled");
    free(r);
    scenario_free(s);
}

/* A restarted destination runs the machine type management started it with
 * (its own release's when it does not know the source's): restarting it with
 * the source's mc-2.1 made 1.1 refuse to start at all (a harness error). */
static void test_scenario_exec_restart_keeps_destination_machine_type(void **state)
{
    (void)state;
    static const char y[] =
        "summary: restart\n"
        "machines:\n"
        "  src: {release: \"2.1-dev\", ram: 8M, devices: [fake-serial]}\n"
        "link: {bandwidth: 100M/s}\n"
        "steps:\n"
        "  - migrate: {}\n"
        "  - wait: {ram-progress: 30%}\n"
        "  - kill: {side: dst}\n"
        "  - wait: {phase: failed}\n"
        "  - restart: {side: dst}\n"
        "  - migrate: {}\n"
        "expect:\n"
        "  outcome: completed\n";
    Scenario *s = scn(y);
    RunResult *r = mig_malloc0(sizeof(*r));
    run_case(s, "2.1-dev", "2.1-dev", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "completed");
    /* 1.1 does not know mc-2.1: each attempt fails at the machine type (the
     * pair rules), the restart itself works */
    run_case(s, "2.1-dev", "1.1", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "failed");
    free(r);
    scenario_free(s);
}

/* ---- management: return path, resuming a source after a late failure ---- */

/* The destination fails loading fake-nic (the last section, after the last
 * byte): RAM, fake-serial, fake-nic. */
static const char late_yaml[] =
    "summary: late destination failure\n"
    "machines:\n"
    "  src: {release: \"2.1-dev\", ram: 4M, devices: [fake-serial, fake-nic]}\n"
    "workload: {dirty-rate: 500 pages/s}\n"
    "steps:\n"
    "  - migrate: {}\n"
    "faults:\n"
    "  - dst:mig/migration/load#3\n"
    "expect:\n"
    "  outcome: failed\n"
    "  error: EIO\n";

static const char resume_msg[] = "management: destination failed after the source completed; "
                                 "resuming the source (no return path)";

/* Run a case and keep its trace (free it). */
static char *run_traced(const Scenario *s, const char *ps, const char *pd, ExecSelftest st,
                        RunResult *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    RunCase c = {.scn = s, .seed = 0x5eed, .pair_src = ps, .pair_dst = pd, .selftest = st,
                 .trace_out = f};
    assert_int_equal(exec_run_case(&c, r), 0);
    fclose(f);
    return buf;
}

static void assert_trace(const char *trace, const char *text, bool present)
{
    if (!strstr(trace, text) == present)
        fail_msg("the trace %s '%s':\n%s", present ? "lacks" : "has", text, trace);
}

/* Management enables return-path when both sides offer it: a destination
 * that fails after the last byte tells the source, which fails and resumes
 * by itself with the destination's verdict; management resumes nothing. */
static void test_scenario_exec_return_path_on_by_default(void **state)
{
    (void)state;
    Scenario *s = scn(late_yaml);
    RunResult *r = mig_malloc0(sizeof(*r));
    char *t = run_traced(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "failed");
    assert_non_null(strstr(r->mig_error, "return path: SHUT 1"));
    assert_trace(t, "harness: management: return-path enabled (both sides offer it)", true);
    assert_trace(t, "src: run state finish-migrate -> running", true);
    assert_trace(t, "postmigrate", false);
    assert_trace(t, resume_msg, false);
    free(t);
    /* 1.1 offers it too */
    t = run_traced(s, "1.1", "2.0", EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_trace(t, "management: return-path enabled", true);
    assert_trace(t, resume_msg, false);
    free(t);
    free(r);
    scenario_free(s);
}

/* Without a return path (1.0 does not offer it; or the scenario opts out)
 * the source completes first and sits in postmigrate; when the destination
 * then fails, management resumes the source: outcome failed with the
 * destination's error, the source running with its RAM and devices intact. */
static void test_scenario_exec_management_resumes_source_without_return_path(void **state)
{
    (void)state;
    Scenario *s = scn(late_yaml);
    RunResult *r = mig_malloc0(sizeof(*r));
    static const char *const pairs[][2] = {{"1.0", "1.0"}, {"1.0", "2.1-dev"}, {"2.0", "1.0"}};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(pairs); i++) {
        const char *ps = pairs[i][0], *pd = pairs[i][1];
        char *t = run_traced(s, ps, pd, EXEC_SELFTEST_NONE, r);
        if (!r->passed)
            fail_msg("%s -> %s: %s", ps, pd, r->error);
        if (strcmp(ps, "2.0")) { /* 2.0 -> 1.0 stops at pre-flight */
            assert_string_equal(r->outcome, "failed");
            assert_non_null(strstr(r->mig_error, "loading section 'fake-nic' failed"));
            assert_trace(t, "management: return-path not offered by both sides", true);
            assert_trace(t, "src: run state finish-migrate -> postmigrate", true);
            assert_trace(t, resume_msg, true);
            assert_trace(t, "src: run state postmigrate -> running", true);
        }
        free(t);
    }
    scenario_free(s);
    char *y = mig_strdup_printf("%sreturn-path: false\n", late_yaml);
    s = scn(y);
    char *t = run_traced(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("opted out: %s", r->error);
    assert_string_equal(r->outcome, "failed");
    assert_non_null(strstr(r->mig_error, "loading section 'fake-nic' failed"));
    assert_trace(t, "management: return-path left off (the scenario opts out)", true);
    assert_trace(t, "return path opened", false);
    assert_trace(t, resume_msg, true);
    free(t);
    /* the oracles that judge it can fail: nobody resumes (management is
     * gone), or the paused source's RAM or a device changed before cont */
    run_case(s, NULL, NULL, EXEC_SELFTEST_NO_RESUME, r);
    assert_red(r, "source completed but the destination is failed (stream offset ");
    assert_red(r, ": loading section 'fake-nic' failed (injected fault)): the guest is lost");
    run_case(s, NULL, NULL, EXEC_SELFTEST_PAUSED_PAGE, r);
    assert_red(r, "memory: source while paused after completing: ");
    run_case(s, NULL, NULL, EXEC_SELFTEST_PAUSED_FIELD, r);
    assert_red(r, "devices: source while paused after completing: fake-serial: field scr");
    free(y);
    free(r);
    scenario_free(s);
}

/* The destination is started paused and runs only once the source
 * completed: when the source fails after the destination loaded everything
 * (its return-path read fails), management destroys the destination, which
 * never ran; when both complete it resumes the destination. */
static void test_scenario_exec_destination_runs_only_after_the_source_completed(void **state)
{
    (void)state;
    char *y = mig_strdup_printf("%.*s  - src:mig/transport/read@stop-copy\n"
                                "expect:\n  outcome: failed\n",
                                (int)(strstr(late_yaml, "  - dst:") - late_yaml), late_yaml);
    Scenario *s = scn(y);
    RunResult *r = mig_malloc0(sizeof(*r));
    char *t = run_traced(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "failed");
    assert_trace(t, "dst: run state inmigrate -> paused", true);
    assert_trace(t, "destroying the destination (it never ran)", true);
    assert_trace(t, "dst: run state paused -> running", false);
    free(t);
    scenario_free(s);
    s = scn(small_yaml);
    t = run_traced(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    assert_string_equal(r->outcome, "completed");
    char *paused = strstr(t, "dst: run state inmigrate -> paused");
    char *src_done = strstr(t, "src: migration device -> completed");
    char *resumed = strstr(t, "management: both sides completed; resuming the destination");
    assert_non_null(paused);
    assert_non_null(src_done);
    assert_non_null(resumed);
    assert_true(paused < src_done && src_done < resumed); /* one guest at a time */
    assert_trace(t, "dst: run state paused -> running", true);
    free(t);
    free(y);
    free(r);
    scenario_free(s);
}

/* expect.trace-excludes turns the case red when the text is there. */
static void test_scenario_exec_trace_excludes(void **state)
{
    (void)state;
    char *y = mig_strdup_printf("%s  trace-excludes: \"return-path enabled\"\n", small_yaml);
    Scenario *s = scn(y);
    RunResult *r = mig_malloc0(sizeof(*r));
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    assert_red(r, "the event trace contains 'return-path enabled', which the scenario excludes");
    scenario_free(s);
    free(y);
    y = mig_strdup_printf("%s  trace-excludes: \"return-path left off\"\n", small_yaml);
    s = scn(y);
    run_case(s, NULL, NULL, EXEC_SELFTEST_NONE, r);
    if (!r->passed)
        fail_msg("%s", r->error);
    scenario_free(s);
    free(y);
    free(r);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario_loads_every_key),
        cmocka_unit_test(test_scenario_unknown_key_names_line_and_key),
        cmocka_unit_test(test_scenario_wrong_type_names_line_and_key),
        cmocka_unit_test(test_scenario_bad_values_name_line_and_key),
        cmocka_unit_test(test_scenario_missing_required_key),
        cmocka_unit_test(test_scenario_drop_device_data),
        cmocka_unit_test(test_scenario_every_truncation),
        cmocka_unit_test(test_scenario_value_parsers),
        cmocka_unit_test(test_scenario_fault_spec_forms),
        cmocka_unit_test(test_scenario_fault_spec_errors),
        cmocka_unit_test(test_scenario_injector_nth_hit_per_side),
        cmocka_unit_test(test_scenario_injector_phase_fires_once),
        cmocka_unit_test(test_scenario_injector_probability_follows_seed),
#ifdef FIU_ENABLE
        cmocka_unit_test(test_scenario_injector_drives_libfiu),
#endif
        cmocka_unit_test(test_scenario_exec_setup_failure_is_reported),
        cmocka_unit_test(test_scenario_exec_oracles_can_fail),
        cmocka_unit_test(test_scenario_exec_applicable_names_why_not),
        cmocka_unit_test(test_scenario_exec_preflight_names_device_and_field),
        cmocka_unit_test(test_scenario_exec_pair_rules_apply_to_every_outcome),
        cmocka_unit_test(test_scenario_exec_restart_keeps_destination_machine_type),
        cmocka_unit_test(test_scenario_exec_return_path_on_by_default),
        cmocka_unit_test(test_scenario_exec_management_resumes_source_without_return_path),
        cmocka_unit_test(test_scenario_exec_destination_runs_only_after_the_source_completed),
        cmocka_unit_test(test_scenario_exec_trace_excludes),
        cmocka_unit_test(test_scenario_spice_keys),
        cmocka_unit_test(test_scenario_exec_spice_oracles_can_fail),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
