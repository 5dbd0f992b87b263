/*
 * test-sim-migration.c - whole migrations between two machines on the
 * deterministic simulator: memory verified page by page, reproducible trace
 * hashes, cancel at every state (on either side) and every pre-copy pass, the
 * return path (late destination failures), destination discard of device
 * state, x-ignore-shared, convergence on slow links, and load error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "machine/machine.h"
#include "sim/migration-wait.h"
#include "sim/sim.h"
#include "workload/workload.h"
#include "test-scale.h"

#define MIB ((uint64_t)1 << 20)
/* Guest RAM of the whole-migration runs: a quarter under valgrind
 * (test-scale.h): the same statuses, passes, cancels and oracles over fewer
 * random pages, which is where valgrind spends its time. */
#define RAM_BIG TEST_SCALE(64 * MIB, 16 * MIB)
#define RAM_MID TEST_SCALE(16 * MIB, 4 * MIB)

/* A small device with FULL sections, to check device state both ways. */
typedef struct FakeDev {
    uint32_t a;
    uint64_t b;
    bool fail_load; /* destination: refuse the section (a device load error) */
} FakeDev;

static int dev_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeDev *d = opaque;
    mig_stream_put_be32(s, d->a);
    mig_stream_put_be64(s, d->b);
    return 0;
}

static int dev_load(void *opaque, MigStream *s, uint32_t version, MigErr **errp)
{
    FakeDev *d = opaque;
    uint32_t a = mig_stream_get_be32(s);
    uint64_t b = mig_stream_get_be64(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    int r = mig_stream_take_error(s, errp);
    if (r < 0)
        return r;
    if (d->fail_load)
        return mig_err_set(errp, -EINVAL, "fake-dev: field b: value 0x%llx refused",
                           (unsigned long long)b);
    d->a = a;
    d->b = b;
    return 0;
}

static const MigFullOps dev_ops = {.save = dev_save, .load = dev_load};

typedef struct Run {
    MigLoop *loop;
    MigTrace *trace;
    MigMachine *src, *dst;
    MigWorkload *w;
    FakeDev sdev, ddev;
    MigLink *link;
    /* cancel injection */
    MigStatus cancel_at;  /* MIG_STATUS__COUNT: none */
    MigStatus cancel_dst_at; /* destination-side cancel; MIG_STATUS__COUNT: none */
    bool dst_cancelled;
    MigStatus dst_status_at_cancel;
    uint64_t cancel_pass; /* 0: none */
    bool cancelled;
    uint64_t passes_seen;
    char statuses[512];
    uint64_t seed_bw;
    /* source RAM digest when the guest stopped and when migration failed */
    /* the source RAM's digests at its STOP event and when the migration
     * failed: taken only when `digests` is set (the one test that compares
     * them; a digest is a SHA-256 of all guest RAM, most of this file's
     * time under valgrind when every run took them) */
    bool digests;
    char digest_stop[65], digest_failed[65];
    uint64_t stop_ns; /* loop time of the source's STOP */
    size_t link_buffer; /* 0: the default */
    FILE *tracef;       /* the trace's text (run_trace_text) */
    char *tracebuf;
    size_t tracelen;
} Run;

static const char *run_trace_text(Run *r)
{
    if (!r->tracef)
        return "";
    fflush(r->tracef);
    return r->tracebuf;
}

static void on_src_event(void *opaque, const char *name, json_t *data)
{
    Run *r = opaque;
    if (strcmp(name, "STOP") == 0 && r->src) {
        if (r->digests)
            mig_machine_ram_digest(r->src, r->digest_stop);
        r->stop_ns = mig_loop_now_ns(r->loop);
    }
    if (strcmp(name, "MIGRATION") == 0) {
        const char *st = json_string_value(json_object_get(data, "status"));
        if (strcmp(st, "failed") == 0 && r->digests)
            mig_machine_ram_digest(r->src, r->digest_failed);
        strncat(r->statuses, st, sizeof(r->statuses) - strlen(r->statuses) - 2);
        strcat(r->statuses, " ");
        if (r->cancel_at != MIG_STATUS__COUNT && strcmp(st, mig_status_name(r->cancel_at)) == 0 &&
            !r->cancelled) {
            r->cancelled = true;
            assert_int_equal(mig_machine_migrate_cancel(r->src), 0);
        }
    } else if (strcmp(name, "MIGRATION_PASS") == 0) {
        r->passes_seen++;
        if (r->cancel_pass && r->passes_seen == r->cancel_pass && !r->cancelled) {
            r->cancelled = true;
            assert_int_equal(mig_machine_migrate_cancel(r->src), 0);
        }
    }
}

/* Management's migrate_cancel on the destination arrives as a command of
 * its own, after the event that announced the state, never inside it. */
static void dst_cancel_now(void *opaque)
{
    Run *r = opaque;
    r->dst_status_at_cancel = mig_migration_status(mig_machine_migration(r->dst));
    assert_int_equal(mig_machine_migrate_cancel(r->dst), 0);
}

/* The destination's events: cancel the incoming migration once it reaches
 * cancel_dst_at. */
static void on_dst_event(void *opaque, const char *name, json_t *data)
{
    Run *r = opaque;
    if (strcmp(name, "MIGRATION") != 0 || r->cancel_dst_at == MIG_STATUS__COUNT ||
        r->dst_cancelled)
        return;
    const char *st = json_string_value(json_object_get(data, "status"));
    if (st && strcmp(st, mig_status_name(r->cancel_dst_at)) == 0) {
        r->dst_cancelled = true;
        assert_non_null(mig_loop_defer(r->loop, dst_cancel_now, r));
    }
}

static void set_caps(MigMachine *m, MigCapMask caps)
{
    MigErr *err = NULL;
    int rc = mig_migration_set_caps(mig_machine_migration(m), caps, caps, &err);
    if (rc)
        fail_msg("set caps: %s", err ? err->msg : "?");
}

/* Build both machines and a link; migration starts in run_start. */
static void run_setup(Run *r, uint64_t seed, uint64_t ram, uint64_t dirty_rate,
                      uint64_t bandwidth, MigCapMask caps)
{
    memset(r, 0, sizeof(*r));
    r->cancel_at = MIG_STATUS__COUNT;
    r->cancel_dst_at = MIG_STATUS__COUNT;
    r->seed_bw = bandwidth;
    r->loop = mig_sim_loop_new(seed);
    assert_non_null(r->loop);
    r->trace = mig_trace_new();
    r->loop->trace = r->trace;
    if (getenv("MIG_TRACE")) {
        mig_trace_set_echo(r->trace, stderr);
    } else {
        r->tracef = open_memstream(&r->tracebuf, &r->tracelen);
        mig_trace_set_echo(r->trace, r->tracef);
    }
    mig_sim_set_step_limit(r->loop, 50000000);
    MigErr *err = NULL;
    MigMachineOptions so = {.name = "src", .ram_size = ram, .event = on_src_event,
                            .event_opaque = r};
    MigMachineOptions dopt = {.name = "dst", .ram_size = ram, .incoming = true,
                              .event = on_dst_event, .event_opaque = r};
    r->src = mig_machine_new(r->loop, &so, &err);
    r->dst = mig_machine_new(r->loop, &dopt, &err);
    assert_non_null(r->src);
    assert_non_null(r->dst);
    MigWorkloadOptions wo = {.seed = seed, .fill = MIG_WORKLOAD_FILL_RANDOM,
                             .dirty_rate = dirty_rate};
    r->w = mig_workload_new(r->src, &wo, &err);
    assert_non_null(r->w);
    r->sdev = (FakeDev){0x11223344, 0x5566778899aabbccull};
    r->ddev = (FakeDev){0, 0};
    assert_true(mig_savevm_register_full(mig_machine_savevm(r->src), "fake-dev", 0, 1, &dev_ops,
                                         &r->sdev, NULL) >= 0);
    assert_true(mig_savevm_register_full(mig_machine_savevm(r->dst), "fake-dev", 0, 1, &dev_ops,
                                         &r->ddev, NULL) >= 0);
    caps |= MIG_CAP_BIT(MIG_CAP_EVENTS);
    set_caps(r->src, caps);
    set_caps(r->dst, caps);
    /* Unthrottled at the engine; the link sets the pace. */
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 0};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(r->src), &ps, NULL), 0);
}

static void run_start(Run *r)
{
    MigLinkParams lp = {.bandwidth = r->seed_bw, .latency_ns = 50000, .buffer = r->link_buffer};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(r->loop, &lp, &a, &b), 0);
    r->link = mig_transport_mem_link(a);
    /* Let the guest run a little before migrating. */
    mig_sim_run_for(r->loop, 20 * 1000000ull);
    assert_int_equal(mig_machine_incoming_transport(r->dst, b, NULL), 0);
    MigErr *err = NULL;
    int rc = mig_machine_migrate_transport(r->src, a, &err);
    if (rc)
        fail_msg("migrate: %s", err ? err->msg : "?");
}

static void run_wait(Run *r)
{
    MigErr *err = NULL;
    if (sim_migration_wait(r->loop, r->src, r->dst, 600ull * 1000000000ull, &err))
        fail_msg("%s", err->msg);
}

static void run_free(Run *r)
{
    mig_link_unref(r->link);
    mig_workload_free(r->w);
    mig_machine_free(r->src);
    mig_machine_free(r->dst);
    /* Nothing of the migration may be left on the loop. */
    assert_int_equal(mig_sim_live_sources(r->loop), 0);
    mig_loop_free(r->loop);
    mig_trace_free(r->trace);
    if (r->tracef)
        fclose(r->tracef);
    free(r->tracebuf);
}

/* The memory oracle: every destination page equals the source's at stop
 * time (the workload's page function). */
static void assert_dst_memory(Run *r)
{
    MigErr *err = NULL;
    if (mig_workload_verify(r->w, mig_machine_ram(r->dst), &err))
        fail_msg("%s", err->msg);
}

static void test_sim_migration_completes_with_memory_verified(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x5eed, RAM_BIG, 20000, 1000ull * MIB, 0);
    run_start(&r);
    run_wait(&r);
    MigMigration *sm = mig_machine_migration(r.src), *dm = mig_machine_migration(r.dst);
    assert_string_equal(mig_migration_error(sm), "");
    assert_string_equal(mig_migration_error(dm), "");
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_POSTMIGRATE);
    assert_int_equal(mig_machine_run_state(r.dst), MIG_RUN_STATE_RUNNING);
    assert_string_equal(r.statuses, "setup active device completed ");
    /* The guest wrote during pre-copy, so more than one pass happened. */
    assert_true(mig_workload_writes(r.w) > 0);
    assert_dst_memory(&r);
    char d1[65], d2[65];
    mig_machine_ram_digest(r.src, d1);
    mig_machine_ram_digest(r.dst, d2);
    assert_string_equal(d1, d2);
    assert_int_equal(r.ddev.a, r.sdev.a);
    assert_true(r.ddev.b == r.sdev.b);
    MigInfo info;
    mig_machine_query_migrate(r.src, &info);
    assert_true(info.has_ram && info.has_downtime);
    assert_true(info.ram.dirty_sync_count >= 3);
    assert_int_equal(info.ram.total, RAM_BIG);
    assert_true(info.ram.normal + info.ram.duplicate >= RAM_BIG / 4096);
    json_t *j = mig_info_to_json(&info);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "completed");
    assert_non_null(json_object_get(json_object_get(j, "ram"), "dirty-sync-count"));
    json_decref(j);
    run_free(&r);
}

/* A whole 64 MiB migration (RAM_BIG) while the guest dirties 20000 pages/s: it must
 * take several passes, so the trace covers the interleaving of workload,
 * link and engine that a seed decides. */
static void hash_of_run(uint64_t seed, char out[65])
{
    Run r;
    run_setup(&r, seed, RAM_BIG, 20000, 200ull * MIB, 0);
    run_start(&r);
    run_wait(&r);
    assert_int_equal(mig_migration_status(mig_machine_migration(r.dst)), MIG_STATUS_COMPLETED);
    MigInfo info;
    mig_machine_query_migrate(r.src, &info);
    assert_true(info.ram.dirty_sync_count >= 3);
    assert_int_equal(info.ram.total, RAM_BIG);
    assert_true(mig_workload_writes(r.w) > 0);
    MigErr *err = NULL;
    if (mig_workload_verify(r.w, mig_machine_ram(r.dst), &err))
        fail_msg("seed %llu: %s", (unsigned long long)seed, err->msg);
    mig_trace_hash(r.trace, out);
    print_message("seed %llu: %llu MiB, %llu dirty syncs, trace hash %s\n",
                  (unsigned long long)seed, (unsigned long long)(RAM_BIG / MIB),
                  (unsigned long long)info.ram.dirty_sync_count, out);
    run_free(&r);
}

static void test_sim_migration_same_seed_same_trace(void **state)
{
    (void)state;
    char h1[65], h2[65], h3[65];
    hash_of_run(1, h1);
    hash_of_run(1, h2);
    hash_of_run(2, h3);
    assert_string_equal(h1, h2);
    assert_string_not_equal(h1, h3);
}

/* After a cancel: source running, RAM as the guest wrote it, device state
 * untouched; destination failed or cancelled with its RAM zero again. */
static void check_cancelled(Run *r)
{
    MigMigration *sm = mig_machine_migration(r->src), *dm = mig_machine_migration(r->dst);
    assert_true(r->cancelled);
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_CANCELLED);
    assert_true(mig_migration_status(dm) == MIG_STATUS_FAILED ||
                mig_migration_status(dm) == MIG_STATUS_CANCELLED);
    assert_int_equal(mig_machine_run_state(r->src), MIG_RUN_STATE_RUNNING);
    MigErr *err = NULL;
    if (mig_workload_verify(r->w, mig_machine_ram(r->src), &err))
        fail_msg("source RAM changed by a cancelled migration: %s", err->msg);
    assert_int_equal(r->sdev.a, 0x11223344);
    assert_int_equal(mig_machine_run_state(r->dst), MIG_RUN_STATE_INMIGRATE);
    MigRam *dram = mig_machine_ram(r->dst);
    MigRamBlock *b = mig_ram_block(dram, 0);
    for (uint64_t p = 0; p < b->npages; p++)
        if (!mig_ram_page_is_zero(b->host + p * 4096))
            fail_msg("destination kept page %llu", (unsigned long long)p);
    assert_int_equal(r->ddev.a, 0);
    /* The source can migrate again afterwards. */
    MigTransport *a, *bt;
    assert_int_equal(mig_transport_mem_pair(r->loop, NULL, &a, &bt), 0);
    assert_int_equal(mig_machine_migrate_transport(r->src, a, NULL), 0);
    assert_int_equal(mig_machine_migrate_cancel(r->src), 0);
    mig_transport_close(bt);
    mig_sim_run_for(r->loop, 1000000);
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_CANCELLED);
}

/* Management cancels on the destination while it is in `st` (setup or
 * active): the destination discards everything it loaded and ends cancelled;
 * the source fails cleanly (its peer is gone) and runs on, RAM and devices
 * unchanged. */
static void check_cancel_on_destination(MigStatus st, uint64_t seed)
{
    Run r;
    run_setup(&r, seed, RAM_MID, 20000, 200ull * MIB, 0);
    r.cancel_dst_at = st;
    run_start(&r);
    run_wait(&r);
    MigMigration *sm = mig_machine_migration(r.src), *dm = mig_machine_migration(r.dst);
    assert_true(r.dst_cancelled);
    assert_int_equal(r.dst_status_at_cancel, st);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_CANCELLED);
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_FAILED);
    if (!mig_migration_error(sm)[0])
        fail_msg("cancel in %s: the source failed without saying why", mig_status_name(st));
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    MigErr *err = NULL;
    if (mig_workload_verify(r.w, mig_machine_ram(r.src), &err))
        fail_msg("cancel in %s: source RAM changed: %s", mig_status_name(st), err->msg);
    assert_int_equal(r.sdev.a, 0x11223344);
    assert_true(r.sdev.b == 0x5566778899aabbccull);
    /* the destination kept nothing */
    assert_int_equal(mig_machine_run_state(r.dst), MIG_RUN_STATE_INMIGRATE);
    MigRamBlock *b = mig_ram_block(mig_machine_ram(r.dst), 0);
    for (uint64_t p = 0; p < b->npages; p++)
        if (!mig_ram_page_is_zero(b->host + p * 4096))
            fail_msg("cancel in %s: destination kept page %llu", mig_status_name(st),
                     (unsigned long long)p);
    assert_int_equal(r.ddev.a, 0);
    assert_true(r.ddev.b == 0);
    /* the source keeps running: the guest goes on writing */
    uint64_t writes = mig_workload_writes(r.w);
    mig_sim_run_for(r.loop, 10 * 1000000ull);
    assert_true(mig_workload_writes(r.w) > writes);
    run_free(&r);
}

static void test_sim_migration_cancel_in_every_state(void **state)
{
    (void)state;
    const MigStatus states[] = {MIG_STATUS_SETUP, MIG_STATUS_ACTIVE, MIG_STATUS_PRE_SWITCHOVER,
                                MIG_STATUS_DEVICE};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(states); i++) {
        Run r;
        MigCapMask caps = states[i] == MIG_STATUS_PRE_SWITCHOVER
                              ? MIG_CAP_BIT(MIG_CAP_PAUSE_BEFORE_SWITCHOVER)
                              : 0;
        run_setup(&r, 7 + i, RAM_MID, 20000, 200ull * MIB, caps);
        r.cancel_at = states[i];
        run_start(&r);
        run_wait(&r);
        check_cancelled(&r);
        run_free(&r);
    }
    /* migrate_cancel on the destination, in the states it has before the
     * source's device phase */
    check_cancel_on_destination(MIG_STATUS_SETUP, 17);
    check_cancel_on_destination(MIG_STATUS_ACTIVE, 18);
}

static void test_sim_migration_cancel_at_every_pass(void **state)
{
    (void)state;
    /* A baseline run says how many passes there are; then cancel at each. */
    Run r;
    const uint64_t seed = 42;
    /* Slow link + busy guest: several passes, bounded by x-max-passes. */
    run_setup(&r, seed, RAM_MID, 30000, 100ull * MIB, 0);
    MigParamsSet ps = {.has_x_max_passes = true, .p.x_max_passes = 5,
                       .has_downtime_limit = true, .p.downtime_limit = 5};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(r.src), &ps, NULL), 0);
    run_start(&r);
    run_wait(&r);
    assert_int_equal(mig_migration_status(mig_machine_migration(r.dst)), MIG_STATUS_COMPLETED);
    uint64_t passes = r.passes_seen;
    assert_true(passes >= 2);
    run_free(&r);
    for (uint64_t p = 1; p <= passes; p++) {
        run_setup(&r, seed, RAM_MID, 30000, 100ull * MIB, 0);
        assert_int_equal(mig_migration_set_params(mig_machine_migration(r.src), &ps, NULL), 0);
        r.cancel_pass = p;
        run_start(&r);
        run_wait(&r);
        check_cancelled(&r);
        run_free(&r);
    }
}

static void test_sim_migration_link_drop_fails_both_sides(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 99, RAM_MID, 1000, 200ull * MIB, 0);
    run_start(&r);
    mig_link_drop_at(r.link, MIG_LINK_A_TO_B, 3 * MIB);
    run_wait(&r);
    MigMigration *sm = mig_machine_migration(r.src), *dm = mig_machine_migration(r.dst);
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_FAILED);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_FAILED);
    assert_true(strlen(mig_migration_error(sm)) > 0);
    assert_non_null(strstr(mig_migration_error(dm), "ram"));
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    run_free(&r);
}

static void test_sim_migration_capability_mismatch_named(void **state)
{
    (void)state;
    MigLoop *loop = mig_sim_loop_new(5);
    MigMachineOptions so = {.name = "src", .ram_size = 32 * MIB};
    MigMachineOptions dopt = {.name = "dst", .ram_size = 32 * MIB, .incoming = true};
    MigMachine *src = mig_machine_new(loop, &so, NULL), *dst = mig_machine_new(loop, &dopt, NULL);
    set_caps(src, MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED));
    /* Non-zero pages: more than the link buffers, so the source is still
     * sending when the destination gives up, and sees it. */
    MigRamBlock *blk = mig_ram_block(mig_machine_ram(src), 0);
    memset(blk->host, 0xab, blk->length);
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(loop, NULL, &a, &b), 0);
    assert_int_equal(mig_machine_incoming_transport(dst, b, NULL), 0);
    assert_int_equal(mig_machine_migrate_transport(src, a, NULL), 0);
    sim_migration_wait(loop, src, dst, 60ull * 1000000000ull, NULL);
    assert_int_equal(mig_migration_status(mig_machine_migration(dst)), MIG_STATUS_FAILED);
    assert_non_null(strstr(mig_migration_error(mig_machine_migration(dst)), "x-ignore-shared"));
    assert_int_equal(mig_migration_status(mig_machine_migration(src)), MIG_STATUS_FAILED);
    assert_int_equal(mig_machine_run_state(src), MIG_RUN_STATE_RUNNING);
    mig_machine_free(src);
    mig_machine_free(dst);
    assert_int_equal(mig_sim_live_sources(loop), 0);
    mig_loop_free(loop);
}

/* ---- return path ---- */

static const MigCapMask RP = MIG_CAP_BIT(MIG_CAP_RETURN_PATH);

static void test_sim_migration_return_path_completes(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x77, 16 * MIB, 5000, 500ull * MIB, RP);
    run_start(&r);
    run_wait(&r);
    MigMigration *sm = mig_machine_migration(r.src), *dm = mig_machine_migration(r.dst);
    assert_string_equal(mig_migration_error(sm), "");
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_COMPLETED);
    assert_string_equal(r.statuses, "setup active device completed ");
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_POSTMIGRATE);
    assert_int_equal(mig_machine_run_state(r.dst), MIG_RUN_STATE_RUNNING);
    assert_dst_memory(&r);
    /* The destination answered the ping and then reported its load. */
    const char *text = run_trace_text(&r);
    assert_non_null(strstr(text, "src: return path: PONG 1"));
    assert_non_null(strstr(text, "dst: return path: send SHUT 0"));
    assert_non_null(strstr(text, "src: return path: SHUT 0"));
    run_free(&r);
}

/* The destination fails on the last device section, after the source has
 * written its last byte: without the return path the source would already
 * be "completed" and its guest lost. */
static void test_sim_migration_return_path_late_dst_failure_resumes_source(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x78, RAM_MID, 5000, 500ull * MIB, RP);
    r.digests = true;
    r.ddev.fail_load = true;
    run_start(&r);
    run_wait(&r);
    MigMigration *sm = mig_machine_migration(r.src), *dm = mig_machine_migration(r.dst);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_FAILED);
    assert_non_null(strstr(mig_migration_error(dm), "fake-dev: field b"));
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_FAILED);
    assert_non_null(strstr(mig_migration_error(sm), "SHUT 1"));
    assert_string_equal(r.statuses, "setup active device failed ");
    /* The source runs again, with RAM and devices as they were. */
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    assert_true(r.digest_stop[0] != '\0');
    assert_string_equal(r.digest_failed, r.digest_stop);
    MigErr *err = NULL;
    if (mig_workload_verify(r.w, mig_machine_ram(r.src), &err))
        fail_msg("source RAM: %s", err->msg);
    assert_int_equal(r.sdev.a, 0x11223344);
    assert_true(r.sdev.b == 0x5566778899aabbccull);
    /* And it can migrate again. */
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(r.loop, NULL, &a, &b), 0);
    assert_int_equal(mig_machine_migrate_transport(r.src, a, NULL), 0);
    assert_int_equal(mig_machine_migrate_cancel(r.src), 0);
    mig_transport_close(b);
    mig_sim_run_for(r.loop, 1000000);
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_CANCELLED);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    run_free(&r);
}

static bool src_all_sent(void *opaque)
{
    Run *r = opaque;
    return mig_migration_status(mig_machine_migration(r->src)) == MIG_STATUS_DEVICE &&
           mig_machine_run_state(r->src) == MIG_RUN_STATE_FINISH_MIGRATE;
}

/* A peer that reads everything and hangs up without SHUT: the source fails
 * and resumes; so it does when the peer sends something that is not a
 * return-path message. */
static void test_sim_migration_return_path_eof_or_garbage_fails_source(void **state)
{
    (void)state;
    for (int garbage = 0; garbage < 2; garbage++) {
        Run r;
        run_setup(&r, 0x79, 4 * MIB, 0, 0, RP);
        MigTransport *a, *b;
        assert_int_equal(mig_transport_mem_pair(r.loop, NULL, &a, &b), 0);
        assert_int_equal(mig_machine_migrate_transport(r.src, a, NULL), 0);
        uint8_t buf[65536];
        uint64_t got = 0;
        uint64_t deadline = mig_loop_now_ns(r.loop) + 10ull * 1000000000ull;
        for (;;) {
            ssize_t n = mig_transport_read(b, buf, sizeof(buf));
            if (n > 0) {
                got += (uint64_t)n;
                continue;
            }
            if (n == 0 || (src_all_sent(&r) && n == -EAGAIN &&
                           mig_sim_run_for(r.loop, 1000000) == 0 &&
                           mig_transport_read(b, buf, 1) == 0))
                break;
            assert_true(mig_loop_now_ns(r.loop) < deadline);
            mig_sim_run_for(r.loop, 100000);
        }
        assert_true(got > 4 * MIB);
        /* Everything is out, yet no verdict: the source waits for SHUT. */
        mig_sim_run_for(r.loop, 50 * 1000000ull);
        assert_int_equal(mig_migration_status(mig_machine_migration(r.src)), MIG_STATUS_DEVICE);
        if (garbage) {
            static const uint8_t junk[8] = {0x00, 0x07, 0x00, 0x04, 1, 2, 3, 4};
            assert_int_equal(mig_transport_write(b, junk, sizeof(junk)), 8);
        }
        mig_transport_close(b);
        sim_migration_wait(r.loop, r.src, r.dst, 1000000000ull, NULL);
        MigMigration *sm = mig_machine_migration(r.src);
        assert_int_equal(mig_migration_status(sm), MIG_STATUS_FAILED);
        assert_non_null(strstr(mig_migration_error(sm), garbage ? "unknown message type 0x0007"
                                                                : "closed the connection"));
        assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
        /* the destination was never started: tidy it up */
        mig_machine_migrate_cancel(r.dst);
        run_free(&r);
    }
}

static void test_sim_migration_return_path_refused_on_file(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x7a, 4 * MIB, 0, 0, RP);
    char path[] = "/tmp/migcert-rp-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    char uri[64];
    snprintf(uri, sizeof(uri), "file:%s", path);
    MigErr *err = NULL;
    assert_int_equal(mig_machine_migrate(r.src, uri, &err), -ENOTSUP);
    assert_non_null(strstr(err->msg, "return-path"));
    mig_err_free(err);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* no file created */
    /* Through the engine directly: a file transport is refused too. */
    MigTransport *t = mig_transport_file_open(r.loop, path, true, NULL);
    assert_non_null(t);
    err = NULL;
    assert_int_equal(mig_migration_start(mig_machine_migration(r.src), t, &err), -ENOTSUP);
    assert_non_null(strstr(err->msg, "'file' transport"));
    mig_err_free(err);
    unlink(path);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    run_free(&r);
}

/* ---- destination discard of FULL device state ---- */

static void test_sim_migration_failed_load_restores_device_state(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x7b, 8 * MIB, 1000, 500ull * MIB, 0);
    /* A second device after fake-dev, whose load fails: fake-dev was loaded
     * by then and must be put back. */
    static FakeDev s2 = {7, 8, false}, d2;
    d2 = (FakeDev){0, 0, true};
    r.ddev = (FakeDev){0xdead, 0xbeef, false};
    assert_true(mig_savevm_register_full(mig_machine_savevm(r.src), "fake-dev2", 0, 1, &dev_ops,
                                         &s2, NULL) >= 0);
    assert_true(mig_savevm_register_full(mig_machine_savevm(r.dst), "fake-dev2", 0, 1, &dev_ops,
                                         &d2, NULL) >= 0);
    run_start(&r);
    run_wait(&r);
    MigMigration *dm = mig_machine_migration(r.dst);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_FAILED);
    assert_non_null(strstr(mig_migration_error(dm), "'fake-dev2'"));
    assert_int_equal(r.ddev.a, 0xdead);
    assert_true(r.ddev.b == 0xbeef);
    assert_int_equal(d2.a, 0);
    assert_non_null(
        strstr(run_trace_text(&r), "'fake-dev' restored to its state before the migration"));
    run_free(&r);
}

/* ---- x-ignore-shared on both sides ---- */

static void test_sim_migration_ignore_shared_both_sides(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x7c, 16 * MIB, 5000, 500ull * MIB, MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED));
    run_start(&r);
    run_wait(&r);
    assert_string_equal(mig_migration_error(mig_machine_migration(r.dst)), "");
    assert_int_equal(mig_migration_status(mig_machine_migration(r.dst)), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(mig_machine_migration(r.src)), MIG_STATUS_COMPLETED);
    assert_dst_memory(&r);
    run_free(&r);
}

/* ---- convergence counts queued bytes ---- */

static void test_sim_migration_downtime_within_limit_on_slow_link(void **state)
{
    (void)state;
    Run r;
    /* 10 MiB/s, a guest dirtying 1 MiB/s: the stream's high-water mark alone
     * holds 800 ms of data, which stop-and-copy must also push. */
    run_setup(&r, 0x7d, 16 * MIB, 256, 10ull * MIB, 0);
    r.link_buffer = 64 << 10;
    MigParamsSet ps = {.has_downtime_limit = true, .p.downtime_limit = 300};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(r.src), &ps, NULL), 0);
    run_start(&r);
    run_wait(&r);
    MigInfo info;
    mig_machine_query_migrate(r.src, &info);
    assert_int_equal(info.status, MIG_STATUS_COMPLETED);
    assert_true(info.has_downtime);
    /* limit + one 100 ms measuring window */
    if (info.downtime > 400)
        fail_msg("downtime %llu ms over a 300 ms limit", (unsigned long long)info.downtime);
    assert_dst_memory(&r);
    run_free(&r);
}

/* A link that buffers 1.6 s of data (16 MiB at 10 MiB/s, the whole RAM): the
 * bytes the link holds are pending too (mig_transport_queued), or the source
 * stops the guest after the first pass with all of it still on the way.  The
 * guest's real pause runs from the source's STOP to the destination running
 * (the source's own downtime ends with its last write, before the link has
 * delivered it). */
static void test_sim_migration_downtime_within_limit_with_big_link_buffer(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x7f, 16 * MIB, 256, 10ull * MIB, 0);
    r.link_buffer = 16 << 20;
    MigParamsSet ps = {.has_downtime_limit = true, .p.downtime_limit = 300};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(r.src), &ps, NULL), 0);
    run_start(&r);
    run_wait(&r);
    MigInfo info;
    mig_machine_query_migrate(r.src, &info);
    assert_int_equal(info.status, MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(mig_machine_migration(r.dst)), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_machine_run_state(r.dst), MIG_RUN_STATE_RUNNING);
    assert_true(info.has_downtime);
    assert_true(r.stop_ns > 0);
    uint64_t pause_ms = (mig_loop_now_ns(r.loop) - r.stop_ns) / 1000000;
    /* limit + one 100 ms window of measuring slack */
    if (pause_ms > 400 || info.downtime > 400)
        fail_msg("guest paused %llu ms (source downtime %llu ms) over a 300 ms limit with a "
                 "16 MiB link buffer",
                 (unsigned long long)pause_ms, (unsigned long long)info.downtime);
    assert_dst_memory(&r);
    run_free(&r);
}

/* ---- guest resumed hook ---- */

static int resumed_calls;

static void it_resumed(void *opaque)
{
    resumed_calls++;
}

static bool it_inactive(void *opaque)
{
    return false;
}

static const MigIterOps it_ops = {.is_active = it_inactive, .guest_resumed = it_resumed};

static void test_sim_migration_cont_after_completion_resumes_iterative_handlers(void **state)
{
    (void)state;
    Run r;
    run_setup(&r, 0x7e, 4 * MIB, 0, 500ull * MIB, 0);
    assert_true(mig_savevm_register_iterative(mig_machine_savevm(r.src), "vfio-like", 0, 1,
                                              &it_ops, NULL, NULL) >= 0);
    resumed_calls = 0;
    run_start(&r);
    run_wait(&r);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_POSTMIGRATE);
    assert_int_equal(resumed_calls, 0);
    assert_int_equal(mig_machine_cont(r.src, NULL), 0);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    assert_int_equal(resumed_calls, 1);
    /* A failed migration resumes the guest, and the handler hears it. */
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(r.loop, NULL, &a, &b), 0);
    assert_int_equal(mig_machine_migrate_transport(r.src, a, NULL), 0);
    mig_transport_close(b);
    mig_sim_run_for(r.loop, 1000000000ull);
    assert_int_equal(mig_migration_status(mig_machine_migration(r.src)), MIG_STATUS_FAILED);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    assert_true(resumed_calls >= 1);
    run_free(&r);
}

/* ---- load errors name the section ---- */

static char *write_tmp(const void *buf, size_t len, char path[64])
{
    snprintf(path, 64, "/tmp/migcert-e2-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Load `len` bytes of a stream file into a fresh destination (with a
 * "fake-dev" FULL entry when dev is not NULL); returns its error (static
 * buffer), or NULL when the load completed. */
static const char *load_file_result(const void *buf, size_t len, FakeDev *dev, uint64_t ram)
{
    static char msg[600];
    MigLoop *loop = mig_sim_loop_new(1);
    MigTrace *trace = mig_trace_new();
    loop->trace = trace;
    if (getenv("MIG_TRACE"))
        mig_trace_set_echo(trace, stderr);
    MigMachineOptions dopt = {.name = "dst", .ram_size = ram, .incoming = true};
    MigMachine *dst = mig_machine_new(loop, &dopt, NULL);
    if (dev)
        assert_true(mig_savevm_register_full(mig_machine_savevm(dst), "fake-dev", 0, 1, &dev_ops,
                                             dev, NULL) >= 0);
    char path[64], uri[80];
    write_tmp(buf, len, path);
    snprintf(uri, sizeof(uri), "file:%s", path);
    assert_int_equal(mig_machine_migrate_incoming(dst, uri, NULL), 0);
    mig_sim_run_for(loop, 1000000000ull);
    MigMigration *dm = mig_machine_migration(dst);
    MigStatus st = mig_migration_status(dm);
    assert_true(st == MIG_STATUS_FAILED || st == MIG_STATUS_COMPLETED);
    snprintf(msg, sizeof(msg), "%s", st == MIG_STATUS_FAILED ? mig_migration_error(dm) : "");
    unlink(path);
    mig_machine_free(dst);
    mig_loop_free(loop);
    mig_trace_free(trace);
    return st == MIG_STATUS_FAILED ? msg : NULL;
}

/* Load `len` bytes of a stream file into a fresh 4 MiB destination; returns
 * its error (static buffer). */
static const char *load_file_error(const void *buf, size_t len)
{
    const char *msg = load_file_result(buf, len, NULL, 4 * MIB);
    assert_non_null(msg);
    return msg;
}

/* Migrate src (on loop) to a file and read the stream into buf (at most
 * cap bytes); frees src and loop.  Returns the stream's length. */
static size_t save_stream(MigLoop *loop, MigMachine *src, uint8_t *buf, size_t cap)
{
    char path[64], uri[80];
    write_tmp("", 0, path);
    snprintf(uri, sizeof(uri), "file:%s", path);
    assert_int_equal(mig_machine_migrate(src, uri, NULL), 0);
    mig_sim_run_for(loop, 1000000000ull);
    assert_int_equal(mig_migration_status(mig_machine_migration(src)), MIG_STATUS_COMPLETED);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t len = fread(buf, 1, cap, f);
    fclose(f);
    unlink(path);
    mig_machine_free(src);
    mig_loop_free(loop);
    return len;
}

static void test_sim_migration_load_errors_name_the_section(void **state)
{
    (void)state;
    /* A whole stream of a 4 MiB machine, saved to a file. */
    MigLoop *loop = mig_sim_loop_new(1);
    MigMachineOptions so = {.name = "src", .ram_size = 4 * MIB};
    MigMachine *src = mig_machine_new(loop, &so, NULL);
    MigRamBlock *blk = mig_ram_block(mig_machine_ram(src), 0);
    memset(blk->host, 0x5a, blk->length);
    static uint8_t buf[8 << 20];
    size_t len = save_stream(loop, src, buf, sizeof(buf));
    assert_true(len > 4 * MIB);
    /* Truncated in the middle of RAM: inside a page record, inside a
     * section footer (every PART of 256 pages is 1050642 bytes). */
    const size_t cuts[] = {len / 2 + 1000, 72 + 1050649 + 1050642 - 2};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cuts); i++) {
        const char *msg = load_file_error(buf, cuts[i]);
        if (!strstr(msg, "section 'ram' (id 1): truncated"))
            fail_msg("cut at %zu: unexpected error: %s", cuts[i], msg);
    }
    const char *msg;
    /* A START section whose name carries bytes that are not printable:
     * they are escaped in the message.  Header and configuration come from
     * the real stream (up to the first START, at the first 0x01 after the
     * configuration). */
    size_t at = 8 + 1 + 4 + strlen(MIG_MACHINE_DEFAULT_TYPE);
    assert_int_equal(buf[at], MIG_SECTION_START);
    static const uint8_t bad[] = {0x01, 0, 0, 0, 9, 6, 'b', 'a', 'd', 0x01, '\'', 0xff,
                                  0, 0, 0, 0, 0, 0, 0, 1};
    memcpy(buf + at, bad, sizeof(bad));
    msg = load_file_error(buf, at + sizeof(bad));
    if (!strstr(msg, "Unknown savevm section or instance 'bad\\x01\\x27\\xff' 0"))
        fail_msg("unexpected error: %s", msg);
}

/* Every destination error names a stream offset (issue 12: 31 of them
 * named the section only), and a stream that lacks a section its machine
 * has, or RAM pages, never completes.  A stream of 16 pages and one FULL
 * section, each of its first and last 160 bytes (header, configuration,
 * RAM START, the device section, EOF, trailer) and 40 bytes between
 * flipped, and each cut there: every load that fails has "offset" in its
 * error, and no cut stream completes. */
static void test_sim_migration_every_load_error_names_an_offset(void **state)
{
    (void)state;
    const uint64_t ram = 16 * 4096;
    MigLoop *loop = mig_sim_loop_new(1);
    MigMachineOptions so = {.name = "src", .ram_size = ram};
    MigMachine *src = mig_machine_new(loop, &so, NULL);
    FakeDev sdev = {0x11223344, 0x5566778899aabbccull};
    assert_true(mig_savevm_register_full(mig_machine_savevm(src), "fake-dev", 0, 1, &dev_ops,
                                         &sdev, NULL) >= 0);
    MigRamBlock *blk = mig_ram_block(mig_machine_ram(src), 0);
    for (uint64_t i = 0; i < blk->length; i++)
        blk->host[i] = (uint8_t)(i * 7 + 1);
    static uint8_t orig[1 << 20], buf[1 << 20];
    size_t len = save_stream(loop, src, orig, sizeof(orig));
    FakeDev d = {0};
    assert_null(load_file_result(orig, len, &d, ram));
    assert_int_equal(d.b, sdev.b);
    /* without the device on the source side of the stream: the section
     * is missing, the load must not complete */
    const char *msg = load_file_result(orig, len, NULL, ram);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "offset"));
    /* the trailer: 0x06, be32 n, n bytes of JSON to the end; EOF before it */
    size_t eof = 0;
    for (size_t q = len - 5; q > 0 && !eof; q--)
        if (orig[q] == MIG_SECTION_VMDESCRIPTION &&
            ((size_t)orig[q + 1] << 24 | (size_t)orig[q + 2] << 16 | (size_t)orig[q + 3] << 8 |
             orig[q + 4]) == len - q - 5)
            eof = q - 1;
    assert_int_equal(orig[eof], MIG_SECTION_EOF);
    size_t checked = 0;
    for (size_t p = 0; p < len; p++) {
        if (!(p < 160 || p + 160 >= len || p % (len / 40) == 0))
            continue;
        for (int cut = 0; cut < 2; cut++) {
            memcpy(buf, orig, len);
            buf[p] ^= 0xff;
            FakeDev dd = {0};
            msg = load_file_result(buf, cut ? p : len, &dd, ram);
            checked++;
            if (msg && !strstr(msg, "offset"))
                fail_msg("%s at %zu: error without an offset: %s", cut ? "cut" : "flip", p, msg);
            /* a stream cut before its EOF marker never completes (one
             * cut in the trailer may, as in QEMU; a flipped byte of page
             * or device data may too: the format has no checksum) */
            if (!msg && cut && p <= eof)
                fail_msg("cut at %zu (EOF at %zu) completed", p, eof);
        }
    }
    assert_true(checked > 600);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_migration_completes_with_memory_verified),
        cmocka_unit_test(test_sim_migration_same_seed_same_trace),
        cmocka_unit_test(test_sim_migration_cancel_in_every_state),
        cmocka_unit_test(test_sim_migration_cancel_at_every_pass),
        cmocka_unit_test(test_sim_migration_link_drop_fails_both_sides),
        cmocka_unit_test(test_sim_migration_capability_mismatch_named),
        cmocka_unit_test(test_sim_migration_return_path_completes),
        cmocka_unit_test(test_sim_migration_return_path_late_dst_failure_resumes_source),
        cmocka_unit_test(test_sim_migration_return_path_eof_or_garbage_fails_source),
        cmocka_unit_test(test_sim_migration_return_path_refused_on_file),
        cmocka_unit_test(test_sim_migration_failed_load_restores_device_state),
        cmocka_unit_test(test_sim_migration_ignore_shared_both_sides),
        cmocka_unit_test(test_sim_migration_downtime_within_limit_on_slow_link),
        cmocka_unit_test(test_sim_migration_downtime_within_limit_with_big_link_buffer),
        cmocka_unit_test(test_sim_migration_cont_after_completion_resumes_iterative_handlers),
        cmocka_unit_test(test_sim_migration_load_errors_name_the_section),
        cmocka_unit_test(test_sim_migration_every_load_error_names_an_offset),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
