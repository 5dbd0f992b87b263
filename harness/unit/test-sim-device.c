/*
 * test-sim-device.c - whole migrations with a VFIO-style device (fake-gpu,
 * 16 MiB of device memory dirtied by the guest, 80 MiB in one test) riding the stream as
 * iterative sections, on the deterministic simulator: guest RAM verified
 * page by page, device memory and registers byte for byte, the device's
 * snapshot handed out during PRE_COPY (before the arc into STOP_COPY) and
 * taken by the destination device from PART sections; the v1 form of
 * the device through the adapter; cancel leaves the source device running
 * (its session dropped) and the destination device reset; when the guest
 * runs again (`cont` after a completed migration, a source resumed after a
 * late destination failure) the device runs with it, state intact, and
 * guest_resumed takes every device state to the one a running guest needs.
 *
 * Under valgrind (test-scale.h) the device memory is 8 MiB, in the
 * large-device test too: the same records, sections and device states
 * through the same code, half (a tenth) as many pages of them.  At 4 MiB
 * the guest no longer writes a page that is already queued as dirty
 * (fake-gpu's guest_run), so 8 is the least that reaches every branch the
 * full run does (checked with lcov, docs/style.md).  The full sizes run
 * natively and under the sanitizers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device/device-savevm.h"
#include "devices/fake-gpu.h"
#include "machine/machine.h"
#include "sim/migration-wait.h"
#include "sim/sim.h"
#include "workload/workload.h"

#include "test-scale.h"

#define MIB ((uint64_t)1 << 20)
#define GPU_MEM TEST_SCALE(16 * MIB, 8 * MIB) /* device memory of the usual fake-gpu */
/* the large device: over 64 MiB (the old floor of the STOP_COPY bound)
 * natively; under valgrind the usual device's size, which walks the same
 * progress rule (a remaining size that never falls, far below the stall
 * limit) */
#define LARGE_MEM TEST_SCALE(80 * MIB, 8 * MIB)

typedef struct Run {
    MigLoop *loop;
    MigTrace *trace;
    MigMachine *src, *dst;
    MigWorkload *w;
    MigLink *link;
    MigDevice *sgpu, *dgpu;
    MigDevSection *ssec, *dsec;
    MigLoopSource *dirtier;
    uint64_t dirty_calls;
    uint64_t cancel_pass, passes;
    bool cancelled;
    /* at the source device's arc into STOP_COPY: what it had handed out
     * (pre-copy data) and what the destination device had taken by then */
    bool stopped;
    uint64_t src_read_at_stop, dst_written_at_stop;
    /* the source device's digest at its arc into STOP_COPY and when it next
     * ran again */
    uint64_t digest_at_stop, digest_at_run;
    bool ran_again;
    uint64_t mem; /* device memory of each fake-gpu */
} Run;

static uint64_t gpu_digest(MigDevice *d)
{
    MigDevBackend *be = mig_device_backend(d);
    uint64_t v = 0;
    assert_int_equal(be->ops->digest(be, &v, NULL), 0);
    return v;
}

static void on_src_device(MigDevice *dev, MigDevState from, MigDevState to, void *opaque)
{
    Run *r = opaque;
    if (to == MIG_DEV_STOP_COPY && !r->stopped) {
        r->stopped = true;
        r->src_read_at_stop = mig_device_bytes_read(r->sgpu);
        r->dst_written_at_stop = mig_device_bytes_written(r->dgpu);
        r->digest_at_stop = gpu_digest(r->sgpu);
    }
    if (to == MIG_DEV_RUNNING && r->stopped && !r->ran_again) {
        r->ran_again = true;
        r->digest_at_run = gpu_digest(r->sgpu);
    }
}

/* The guest writes device memory every simulated millisecond while the
 * source machine runs. */
static void dirty_tick(void *opaque)
{
    Run *r = opaque;
    r->dirtier = NULL;
    if (mig_machine_run_state(r->src) == MIG_RUN_STATE_RUNNING) {
        MigDevBackend *be = mig_device_backend(r->sgpu);
        if (be->ops->guest_run(be, 64, NULL) == 0)
            r->dirty_calls++;
    }
    r->dirtier = mig_loop_timer_add(r->loop, mig_loop_now_ns(r->loop) + 1000000, dirty_tick, r);
}

static void on_src_event(void *opaque, const char *name, json_t *data)
{
    Run *r = opaque;
    if (strcmp(name, "MIGRATION_PASS") == 0 && r->cancel_pass && ++r->passes == r->cancel_pass &&
        !r->cancelled) {
        r->cancelled = true;
        assert_int_equal(mig_machine_migrate_cancel(r->src), 0);
    }
}

static MigDevice *gpu_mem(const MigcertDevicePlugin *p, uint32_t f, uint64_t seed, uint64_t mem)
{
    MigcertDeviceConfig cfg = {sizeof(cfg), f, seed, mem};
    MigErr *err = NULL;
    MigDevBackend *be = mig_dev_backend_plugin_new(p, &cfg, "fake-gpu", &err);
    if (!be)
        fail_msg("%s", err->msg);
    MigDevice *d = mig_device_new("fake-gpu", be, &err);
    assert_non_null(d);
    return d;
}

static MigDevice *gpu(const MigcertDevicePlugin *p, uint32_t f, uint64_t seed)
{
    return gpu_mem(p, f, seed, GPU_MEM);
}

static void setup_mem(Run *r, uint64_t seed, const MigcertDevicePlugin *p, uint32_t f,
                      uint64_t mem)
{
    memset(r, 0, sizeof(*r));
    r->mem = mem;
    r->loop = mig_sim_loop_new(seed);
    r->trace = mig_trace_new();
    r->loop->trace = r->trace;
    mig_sim_set_step_limit(r->loop, 50000000);
    MigErr *err = NULL;
    MigMachineOptions so = {.name = "src", .ram_size = 32 * MIB, .event = on_src_event,
                            .event_opaque = r};
    MigMachineOptions dopt = {.name = "dst", .ram_size = 32 * MIB, .incoming = true};
    r->src = mig_machine_new(r->loop, &so, &err);
    r->dst = mig_machine_new(r->loop, &dopt, &err);
    assert_non_null(r->src);
    assert_non_null(r->dst);
    MigWorkloadOptions wo = {.seed = seed, .fill = MIG_WORKLOAD_FILL_RANDOM, .dirty_rate = 2000};
    r->w = mig_workload_new(r->src, &wo, &err);
    assert_non_null(r->w);
    r->sgpu = gpu_mem(p, f, seed, mem);
    r->dgpu = gpu_mem(p, f, seed + 1, mem);
    mig_device_set_trace(r->sgpu, r->trace, r->loop);
    mig_device_set_trace(r->dgpu, r->trace, r->loop);
    mig_device_set_event_cb(r->sgpu, on_src_device, r);
    r->ssec = mig_dev_section_register(mig_machine_savevm(r->src), r->sgpu, "0000:00:05.0/vfio", 0,
                                       &err);
    r->dsec = mig_dev_section_register(mig_machine_savevm(r->dst), r->dgpu, "0000:00:05.0/vfio", 0,
                                       &err);
    assert_non_null(r->ssec);
    assert_non_null(r->dsec);
    MigCapMask caps = MIG_CAP_BIT(MIG_CAP_EVENTS);
    assert_int_equal(mig_migration_set_caps(mig_machine_migration(r->src), caps, caps, NULL), 0);
    assert_int_equal(mig_migration_set_caps(mig_machine_migration(r->dst), caps, caps, NULL), 0);
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 0};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(r->src), &ps, NULL), 0);
    r->dirtier = mig_loop_timer_add(r->loop, mig_loop_now_ns(r->loop) + 1000000, dirty_tick, r);
}

static void setup(Run *r, uint64_t seed, const MigcertDevicePlugin *p, uint32_t f)
{
    setup_mem(r, seed, p, f, GPU_MEM);
}

static void start(Run *r, MigMachine *dst)
{
    MigLinkParams lp = {.bandwidth = 1000 * MIB, .latency_ns = 50000};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(r->loop, &lp, &a, &b), 0);
    mig_link_unref(r->link);
    r->link = mig_transport_mem_link(a);
    mig_sim_run_for(r->loop, 20 * 1000000ull);
    assert_int_equal(mig_machine_incoming_transport(dst, b, NULL), 0);
    MigErr *err = NULL;
    if (mig_machine_migrate_transport(r->src, a, &err))
        fail_msg("migrate: %s", err ? err->msg : "?");
}

static void wait_done(Run *r)
{
    MigErr *err = NULL;
    if (sim_migration_wait(r->loop, r->src, r->dst, 600ull * 1000000000ull, &err))
        fail_msg("%s", err->msg);
}

static void teardown(Run *r)
{
    mig_loop_remove(r->loop, r->dirtier);
    mig_dev_section_free(r->ssec);
    mig_dev_section_free(r->dsec);
    mig_device_free(r->sgpu);
    mig_device_free(r->dgpu);
    mig_link_unref(r->link);
    mig_workload_free(r->w);
    mig_machine_free(r->src);
    mig_machine_free(r->dst);
    assert_int_equal(mig_sim_live_sources(r->loop), 0);
    mig_loop_free(r->loop);
    mig_trace_free(r->trace);
}

static void assert_same_gpu(MigDevice *a, MigDevice *b, uint64_t mem)
{
    size_t la, lb;
    const uint8_t *ma = fake_gpu_memory(mig_device_backend(a)->instance, &la);
    const uint8_t *mb = fake_gpu_memory(mig_device_backend(b)->instance, &lb);
    assert_int_equal(la, mem);
    assert_int_equal(la, lb);
    for (size_t i = 0; i < la; i += FAKE_GPU_PAGE)
        if (memcmp(ma + i, mb + i, FAKE_GPU_PAGE))
            fail_msg("device page %zu differs", i / FAKE_GPU_PAGE);
    assert_memory_equal(fake_gpu_regs(mig_device_backend(a)->instance),
                        fake_gpu_regs(mig_device_backend(b)->instance), 4 * FAKE_GPU_NREGS);
}

static void check_completed(Run *r)
{
    MigMigration *sm = mig_machine_migration(r->src), *dm = mig_machine_migration(r->dst);
    if (*mig_migration_error(sm) || *mig_migration_error(dm))
        fail_msg("src: %s / dst: %s", mig_migration_error(sm), mig_migration_error(dm));
    assert_string_equal(mig_migration_error(dm), "");
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_COMPLETED);
    MigErr *err = NULL;
    if (mig_workload_verify(r->w, mig_machine_ram(r->dst), &err))
        fail_msg("guest RAM: %s", err->msg);
    assert_true(r->dirty_calls > 0);
    assert_int_equal(mig_device_state(r->sgpu), MIG_DEV_STOP);
    assert_int_equal(mig_device_state(r->dgpu), MIG_DEV_RUNNING);
    assert_same_gpu(r->sgpu, r->dgpu, r->mem);
    /* every byte the source device handed out reached the destination device */
    assert_true(r->stopped);
    assert_true(mig_device_bytes_read(r->sgpu) > r->mem);
    assert_int_equal(mig_device_bytes_written(r->dgpu), mig_device_bytes_read(r->sgpu));
}

/* A device with PRE_COPY hands out its snapshot while the guest runs: at
 * least the whole initial snapshot (a header and one record per page of
 * the device memory) was read before the arc into STOP_COPY, and the
 * destination device was already taking it from PART sections (the rest of
 * it was in flight; check_completed() shows every byte arrived, in order). */
static void check_precopy_data(Run *r)
{
    uint64_t snapshot = 20 + (r->mem / FAKE_GPU_PAGE) * (1 + 4 + FAKE_GPU_PAGE);
    if (r->src_read_at_stop < snapshot)
        fail_msg("only %llu device bytes were read before STOP_COPY; the snapshot is %llu",
                 (unsigned long long)r->src_read_at_stop, (unsigned long long)snapshot);
    if (r->dst_written_at_stop < snapshot / 2)
        fail_msg("the destination device had taken %llu bytes when the source stopped; the "
                 "snapshot is %llu",
                 (unsigned long long)r->dst_written_at_stop, (unsigned long long)snapshot);
}

static void test_sim_device_v2_gpu_migrates_under_dirtying(void **state)
{
    (void)state;
    Run r;
    setup(&r, 0xd1, fake_gpu_plugin(), MIG_DEV_F_ALL);
    start(&r, r.dst);
    wait_done(&r);
    check_completed(&r);
    check_precopy_data(&r);
    teardown(&r);
}

static void test_sim_device_stop_copy_only_gpu_migrates(void **state)
{
    (void)state;
    Run r;
    setup(&r, 0xd2, fake_gpu_plugin(), MIG_DEV_F_STOP_COPY);
    start(&r, r.dst);
    wait_done(&r);
    check_completed(&r);
    /* no PRE_COPY: nothing moves before the stop */
    assert_int_equal(r.src_read_at_stop, 0);
    assert_int_equal(r.dst_written_at_stop, 0);
    teardown(&r);
}

static void test_sim_device_v1_gpu_migrates_through_adapter(void **state)
{
    (void)state;
    Run r;
    setup(&r, 0xd3, fake_gpu_plugin_v1(), MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY);
    start(&r, r.dst);
    wait_done(&r);
    check_completed(&r);
    check_precopy_data(&r);
    teardown(&r);
}

static void test_sim_device_cancel_returns_devices_to_running(void **state)
{
    (void)state;
    Run r;
    setup(&r, 0xd4, fake_gpu_plugin(), MIG_DEV_F_ALL);
    r.cancel_pass = 1;
    start(&r, r.dst);
    wait_done(&r);
    assert_true(r.cancelled);
    assert_int_equal(mig_migration_status(mig_machine_migration(r.src)), MIG_STATUS_CANCELLED);
    assert_int_equal(mig_device_state(r.sgpu), MIG_DEV_RUNNING);
    assert_int_equal(mig_device_state(r.dgpu), MIG_DEV_RUNNING); /* reset */
    teardown(&r);
}

/* After a completed migration the source device is in STOP (the source is
 * in postmigrate); `cont` runs the guest there again, and its device with
 * it: STOP -> RUNNING by the transition algorithm, nothing of its state lost, and the guest can
 * use it (its writes reach the device again). */
static void test_sim_device_cont_after_completion_runs_the_source_device(void **state)
{
    (void)state;
    Run r;
    setup(&r, 0xd5, fake_gpu_plugin(), MIG_DEV_F_ALL);
    start(&r, r.dst);
    wait_done(&r);
    check_completed(&r);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_POSTMIGRATE);
    /* the destination started its guest, and its device runs */
    assert_int_equal(mig_machine_run_state(r.dst), MIG_RUN_STATE_RUNNING);
    assert_int_equal(mig_device_state(r.dgpu), MIG_DEV_RUNNING);
    uint64_t before = gpu_digest(r.sgpu), calls = r.dirty_calls;
    mig_sim_run_for(r.loop, 10 * 1000000ull);
    assert_int_equal(r.dirty_calls, calls); /* the guest is stopped */
    mig_device_arc_log_clear(r.sgpu);

    assert_int_equal(mig_machine_cont(r.src, NULL), 0);
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    assert_int_equal(mig_device_state(r.sgpu), MIG_DEV_RUNNING);
    /* the transition algorithm's path (with P2P: STOP -> RUNNING_P2P ->
     * RUNNING), arc by arc */
    MigDevState from[8], to[8], path[MIG_DEV_STATE__COUNT];
    size_t npath = 0;
    assert_int_equal(mig_dev_path(MIG_DEV_STOP, MIG_DEV_RUNNING, MIG_DEV_F_ALL, path, &npath), 0);
    assert_int_equal(npath, 2);
    assert_int_equal(mig_device_arc_log(r.sgpu, from, to, 8), npath);
    for (size_t i = 0; i < npath; i++) {
        assert_int_equal(from[i], i ? path[i - 1] : MIG_DEV_STOP);
        assert_int_equal(to[i], path[i]);
    }
    assert_true(gpu_digest(r.sgpu) == before);
    mig_sim_run_for(r.loop, 10 * 1000000ull);
    assert_true(r.dirty_calls > calls);
    assert_true(gpu_digest(r.sgpu) != before);
    /* cont on a running guest changes nothing */
    mig_device_arc_log_clear(r.sgpu);
    assert_int_equal(mig_machine_cont(r.src, NULL), 0);
    assert_int_equal(mig_device_arc_log(r.sgpu, from, to, 8), 0);
    teardown(&r);
}

/* A FULL section the destination refuses: the destination fails after every
 * device byte has arrived and the source device has reached STOP; the return
 * path tells the source, which resumes its guest and its device. */
static int late_save(void *opaque, MigStream *s, MigErr **errp)
{
    mig_stream_put_be32(s, 0x600d);
    return 0;
}

static int late_load(void *opaque, MigStream *s, uint32_t version, MigErr **errp)
{
    mig_stream_get_be32(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    return mig_err_set(errp, -EINVAL, "late-dev: refused");
}

static const MigFullOps late_ops = {.save = late_save, .load = late_load};

static void test_sim_device_late_destination_failure_resumes_source_device(void **state)
{
    (void)state;
    Run r;
    setup(&r, 0xd6, fake_gpu_plugin(), MIG_DEV_F_ALL);
    MigCapMask rp = MIG_CAP_BIT(MIG_CAP_RETURN_PATH);
    assert_int_equal(mig_migration_set_caps(mig_machine_migration(r.src), rp, rp, NULL), 0);
    assert_int_equal(mig_migration_set_caps(mig_machine_migration(r.dst), rp, rp, NULL), 0);
    assert_true(mig_savevm_register_full(mig_machine_savevm(r.src), "late-dev", 0, 1, &late_ops,
                                         NULL, NULL) >= 0);
    assert_true(mig_savevm_register_full(mig_machine_savevm(r.dst), "late-dev", 0, 1, &late_ops,
                                         NULL, NULL) >= 0);
    start(&r, r.dst);
    wait_done(&r);
    MigMigration *sm = mig_machine_migration(r.src), *dm = mig_machine_migration(r.dst);
    assert_int_equal(mig_migration_status(dm), MIG_STATUS_FAILED);
    assert_non_null(strstr(mig_migration_error(dm), "late-dev: refused"));
    assert_int_equal(mig_migration_status(sm), MIG_STATUS_FAILED);
    /* the source device had handed out everything and stopped ... */
    assert_true(r.stopped);
    assert_int_equal(mig_device_bytes_written(r.dgpu), mig_device_bytes_read(r.sgpu));
    MigDevState from[64], to[64];
    size_t n = mig_device_arc_log(r.sgpu, from, to, 64);
    bool reached_stop = false;
    for (size_t i = 0; i < n; i++)
        reached_stop |= from[i] == MIG_DEV_STOP_COPY && to[i] == MIG_DEV_STOP;
    assert_true(reached_stop);
    /* ... and runs again with the guest, its state as it was at the stop */
    assert_int_equal(mig_machine_run_state(r.src), MIG_RUN_STATE_RUNNING);
    assert_int_equal(mig_device_state(r.sgpu), MIG_DEV_RUNNING);
    assert_true(r.ran_again);
    assert_true(r.digest_at_run == r.digest_at_stop);
    /* the destination discarded what it loaded */
    assert_int_equal(mig_device_state(r.dgpu), MIG_DEV_RUNNING);
    uint64_t calls = r.dirty_calls;
    mig_sim_run_for(r.loop, 10 * 1000000ull);
    assert_true(r.dirty_calls > calls);
    mig_savevm_unregister(mig_machine_savevm(r.src), "late-dev", 0);
    mig_savevm_unregister(mig_machine_savevm(r.dst), "late-dev", 0);
    teardown(&r);
}

/* A STOP_COPY-only device larger than 64 MiB whose remaining-size report
 * is low and never falls (data_size always 4096): it hands out 80 MiB (8
 * under valgrind) and
 * then ends with a read of 0, so it migrates; no bound derived from its
 * estimate may cut it off. */
static const MigDevBackendOps *low_real;
static MigDevBackendOps low_ops;

static int low_data_size(MigDevBackend *b, uint64_t *len, MigErr **errp)
{
    *len = 4096;
    return 0;
}

static void low_estimate(MigDevice *d)
{
    MigDevBackend *be = mig_device_backend(d);
    low_real = be->ops;
    low_ops = *be->ops;
    low_ops.data_size = low_data_size;
    be->ops = &low_ops;
}

static void test_sim_device_large_device_with_low_estimate_migrates(void **state)
{
    (void)state;
    Run r;
    setup_mem(&r, 0xd9, fake_gpu_plugin(), MIG_DEV_F_STOP_COPY, LARGE_MEM);
    low_estimate(r.sgpu);
    low_estimate(r.dgpu);
    uint64_t est = 0;
    assert_int_equal(mig_device_data_size(r.sgpu, &est, NULL), 0);
    assert_int_equal(est, 4096);
    start(&r, r.dst);
    wait_done(&r);
    check_completed(&r);
    assert_int_equal(r.src_read_at_stop, 0);
    mig_device_backend(r.sgpu)->ops = low_real;
    mig_device_backend(r.dgpu)->ops = low_real;
    teardown(&r);
}

/* A source whose device section ends without the COMPLETE record (an END
 * section that is empty, or that carries the first bytes of the device's
 * stop-copy data and stops there): the destination must not complete with
 * its device still RESUMING on partial state; the migration fails naming
 * the device and the device is reset. */
typedef struct Cut {
    Run *r;
    bool with_data;
} Cut;

static int cut_setup(void *opaque, MigStream *s, MigErr **errp)
{
    mig_stream_put_u8(s, MIG_DEV_REC_SETUP);
    mig_stream_put_be32(s, MIG_DEV_SECTION_VERSION);
    mig_stream_put_u8(s, MIG_DEV_REC_EOS);
    return 0;
}

static void cut_pending(void *opaque, uint64_t *precopy, uint64_t *stopcopy) {}

static int cut_iterate(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    mig_stream_put_u8(s, MIG_DEV_REC_EOS);
    return 1;
}

static int cut_complete(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    Cut *c = opaque;
    if (c->with_data) {
        uint8_t buf[4096];
        assert_int_equal(mig_device_set_state(c->r->sgpu, MIG_DEV_STOP_COPY, NULL), 0);
        ssize_t n = mig_device_read(c->r->sgpu, buf, sizeof(buf), NULL);
        assert_true(n > 0);
        mig_stream_put_u8(s, MIG_DEV_REC_DATA);
        mig_stream_put_be32(s, (uint32_t)n);
        mig_stream_put_buffer(s, buf, (size_t)n);
    }
    mig_stream_put_u8(s, MIG_DEV_REC_EOS); /* no COMPLETE */
    return 1;
}

static void cut_cleanup(void *opaque, MigOutcome outcome) {}

static const MigIterOps cut_ops = {
    .save_setup = cut_setup,
    .save_pending = cut_pending,
    .save_iterate = cut_iterate,
    .save_complete = cut_complete,
    .save_cleanup = cut_cleanup,
};

static void test_sim_device_stream_without_complete_fails(void **state)
{
    (void)state;
    for (int with_data = 0; with_data < 2; with_data++) {
        Run r;
        setup(&r, 0xd7 + (uint64_t)with_data, fake_gpu_plugin(), MIG_DEV_F_STOP_COPY);
        Cut c = {&r, with_data != 0};
        mig_dev_section_free(r.ssec);
        r.ssec = NULL;
        assert_true(mig_savevm_register_iterative(mig_machine_savevm(r.src), "0000:00:05.0/vfio", 0,
                                                  1, &cut_ops, &c, NULL) >= 0);
        start(&r, r.dst);
        wait_done(&r);
        MigMigration *dm = mig_machine_migration(r.dst);
        assert_int_equal(mig_migration_status(dm), MIG_STATUS_FAILED);
        if (!strstr(mig_migration_error(dm),
                    "device 0000:00:05.0/vfio: stream ended without COMPLETE (device still "
                    "RESUMING)"))
            fail_msg("destination error: %s", mig_migration_error(dm));
        if (with_data)
            assert_true(mig_device_bytes_written(r.dgpu) > 0);
        /* the partial state is dropped: the device was reset, the guest
         * does not run on it */
        assert_int_equal(mig_device_state(r.dgpu), MIG_DEV_RUNNING);
        assert_int_not_equal(mig_machine_run_state(r.dst), MIG_RUN_STATE_RUNNING);
        mig_savevm_unregister(mig_machine_savevm(r.src), "0000:00:05.0/vfio", 0);
        teardown(&r);
    }
}

/* guest_resumed from every state, on a device registered as a section: the
 * states where the device runs stay, PRE_COPY_P2P steps to PRE_COPY,
 * RESUMING is left to the incoming migration, everything else runs again
 * (ERROR through a reset). */
static void test_sim_device_guest_resumed_from_every_state(void **state)
{
    (void)state;
    static const struct {
        MigDevState from, want;
    } cases[] = {
        {MIG_DEV_RUNNING, MIG_DEV_RUNNING},       {MIG_DEV_STOP, MIG_DEV_RUNNING},
        {MIG_DEV_RUNNING_P2P, MIG_DEV_RUNNING},   {MIG_DEV_PRE_COPY, MIG_DEV_PRE_COPY},
        {MIG_DEV_PRE_COPY_P2P, MIG_DEV_PRE_COPY}, {MIG_DEV_STOP_COPY, MIG_DEV_RUNNING},
        {MIG_DEV_RESUMING, MIG_DEV_RESUMING},     {MIG_DEV_ERROR, MIG_DEV_RUNNING},
    };
    assert_int_equal(MIG_ARRAY_SIZE(cases), MIG_DEV_STATE__COUNT);
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        MigSavevm *sv = mig_savevm_new();
        MigDevice *d = gpu(fake_gpu_plugin(), MIG_DEV_F_ALL, 0x51 + i);
        MigDevSection *sec = mig_dev_section_register(sv, d, "0000:00:05.0/vfio", 0, NULL);
        assert_non_null(sec);
        MigDevBackend *be = mig_device_backend(d);
        if (cases[i].from == MIG_DEV_ERROR) {
            assert_int_equal(be->ops->force_error(be, NULL), 0);
            mig_device_refresh(d);
        } else {
            assert_int_equal(mig_device_set_state(d, cases[i].from, NULL), 0);
        }
        assert_int_equal(mig_device_state(d), cases[i].from);
        mig_savevm_guest_resumed(sv);
        if (mig_device_state(d) != cases[i].want)
            fail_msg("guest resumed in %s: device in %s, expected %s",
                     mig_dev_state_name(cases[i].from), mig_dev_state_name(mig_device_state(d)),
                     mig_dev_state_name(cases[i].want));
        mig_dev_section_free(sec);
        mig_device_free(d);
        mig_savevm_free(sv);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_device_v2_gpu_migrates_under_dirtying),
        cmocka_unit_test(test_sim_device_stop_copy_only_gpu_migrates),
        cmocka_unit_test(test_sim_device_v1_gpu_migrates_through_adapter),
        cmocka_unit_test(test_sim_device_cancel_returns_devices_to_running),
        cmocka_unit_test(test_sim_device_cont_after_completion_runs_the_source_device),
        cmocka_unit_test(test_sim_device_late_destination_failure_resumes_source_device),
        cmocka_unit_test(test_sim_device_guest_resumed_from_every_state),
        cmocka_unit_test(test_sim_device_stream_without_complete_fails),
        cmocka_unit_test(test_sim_device_large_device_with_low_estimate_migrates),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
