/*
 * oracle-devices.c - the device oracles: the fake devices' state and the
 * VFIO-style fake-gpu's arcs, final state, memory and registers.
 *
 * Called by: exec-case.c, after the memory oracle, for a case that ran a
 * migrate.
 *   fake devices: completed => mig_fake_device_check_migrated (field by
 *     field or the documented transform); otherwise the source devices
 *     equal their state before the migration;
 *   fake-gpu (docs/protocol-vfio.md): every arc it took (recorded in front
 *     of its backend, exec-drop.c) is in the arc table and matches the
 *     engine's arc log; it ends in the state the protocol says; its memory
 *     and registers equal the source's byte for byte (completed) or a
 *     shadow device that got the same guest writes but was never migrated
 *     (failed/cancelled).
 */
#include <string.h>

#include "devices/fake-gpu.h"
#include "exec-internal.h"

int exec__oracle_devices(Run *run, const char *outcome, MigErr **errp)
{
    if (!run->migrating || run->src.killed)
        return 0;
    for (size_t i = 0; i < run->src.ndevs; i++) {
        int rc;
        if (!strcmp(outcome, "completed")) {
            if (run->dst.killed || i >= run->dst.ndevs)
                continue;
            rc = mig_fake_device_check_migrated(run->src.devs[i], run->dst.devs[i], errp);
        } else {
            if (!run->src.before[i])
                continue;
            rc = mig_fake_device_same(run->src.before[i], run->src.devs[i], errp);
            if (rc < 0)
                mig_err_prepend(errp, "source device changed after %s", outcome);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The VFIO-style device: arcs, final state, memory and registers. */
static int gpu_check_arcs(Side *sd, MigErr **errp)
{
    if (!sd->gpu_rec)
        return 0;
    ArcRec *a = sd->gpu_rec;
    uint32_t f = mig_device_features(sd->gpu);
    const char *who = mig_fault_side_names[sd->sl->side];
    for (size_t i = 0; i < a->n; i++)
        if (!mig_dev_arc_allowed(a->from[i], a->to[i], f))
            return mig_err_set(errp, -EPROTO, "device arcs: %s fake-gpu took arc %zu %s -> %s, "
                               "which the arc table does not allow (%s)", who, i + 1,
                               mig_dev_state_name(a->from[i]), mig_dev_state_name(a->to[i]),
                               mig_dev_features_name(f));
    MigDevState from[ARC_REC_MAX], to[ARC_REC_MAX];
    size_t n = mig_device_arc_log(sd->gpu, from, to, ARC_REC_MAX);
    if (a->total <= ARC_REC_MAX && n != a->n)
        return mig_err_set(errp, -EPROTO, "device arcs: %s fake-gpu took %zu arcs, the engine "
                           "logged %zu", who, a->n, n);
    for (size_t i = 0; i < n && i < a->n; i++)
        if (from[i] != a->from[i] || to[i] != a->to[i])
            return mig_err_set(errp, -EPROTO, "device arcs: %s fake-gpu arc %zu was %s -> %s, "
                               "the engine logged %s -> %s", who, i + 1,
                               mig_dev_state_name(a->from[i]), mig_dev_state_name(a->to[i]),
                               mig_dev_state_name(from[i]), mig_dev_state_name(to[i]));
    return 0;
}

/* The first byte of page p that is not zero, or FAKE_GPU_PAGE. */
static size_t first_nonzero(const uint8_t *p)
{
    for (size_t i = 0; i < FAKE_GPU_PAGE; i += 64) {
        static const uint8_t zero[64];
        if (memcmp(p + i, zero, 64))
            for (size_t b = i;; b++)
                if (p[b])
                    return b;
    }
    return FAKE_GPU_PAGE;
}

/* Byte for byte, except where both devices say a page is all zeros
 * (fake_gpu_nonzero_pages): a page that may be non-zero on one side only is
 * checked to be zero there, without reading the other side's. */
static int gpu_compare(MigcertDevice *want, MigcertDevice *got, const char *what, MigErr **errp)
{
    size_t lw, lg;
    const uint8_t *mw = fake_gpu_memory(want, &lw), *mg = fake_gpu_memory(got, &lg);
    if (lw != lg)
        return mig_err_set(errp, -EPROTO, "%s: memory is %zu bytes, expected %zu", what, lg, lw);
    const uint64_t *bw = fake_gpu_nonzero_pages(want), *bg = fake_gpu_nonzero_pages(got);
    for (size_t page = 0; page < lw / FAKE_GPU_PAGE; page++) {
        bool nw = bw[page / 64] >> (page % 64) & 1, ng = bg[page / 64] >> (page % 64) & 1;
        const uint8_t *pw = mw + page * FAKE_GPU_PAGE, *pg = mg + page * FAKE_GPU_PAGE;
        size_t b = FAKE_GPU_PAGE;
        if (nw && ng) {
            if (memcmp(pw, pg, FAKE_GPU_PAGE))
                for (b = 0; pw[b] == pg[b]; b++)
                    ;
        } else if (nw || ng) {
            b = first_nonzero(nw ? pw : pg);
        }
        if (b < FAKE_GPU_PAGE)
            return mig_err_set(errp, -EPROTO, "%s: memory page %zu differs (first at byte "
                               "0x%zx)", what, page, page * FAKE_GPU_PAGE + b);
    }
    const uint32_t *rw = fake_gpu_regs(want), *rg = fake_gpu_regs(got);
    for (unsigned i = 0; i < FAKE_GPU_NREGS; i++)
        if (rw[i] != rg[i])
            return mig_err_set(errp, -EPROTO, "%s: register %u is 0x%08x, expected 0x%08x",
                               what, i, rg[i], rw[i]);
    return 0;
}

int exec__oracle_gpu(Run *run, const char *outcome, MigErr **errp)
{
    Side *src = &run->src, *dst = &run->dst;
    int rc;
    if (!src->killed && (rc = gpu_check_arcs(src, errp)) < 0)
        return rc;
    if (!dst->killed && (rc = gpu_check_arcs(dst, errp)) < 0)
        return rc;
    if (!src->gpu || src->killed)
        return 0;
    bool completed = !strcmp(outcome, "completed");
    MigDevState want_src = completed ? MIG_DEV_STOP : MIG_DEV_RUNNING;
    if (mig_device_state(src->gpu) != want_src)
        return mig_err_set(errp, -EPROTO, "devices: source fake-gpu is %s after the migration "
                           "%s, expected %s", mig_dev_state_name(mig_device_state(src->gpu)),
                           outcome, mig_dev_state_name(want_src));
    if (dst->gpu && !dst->killed && mig_device_state(dst->gpu) != MIG_DEV_RUNNING)
        return mig_err_set(errp, -EPROTO, "devices: destination fake-gpu is %s after the "
                           "migration %s, expected RUNNING",
                           mig_dev_state_name(mig_device_state(dst->gpu)), outcome);
    /* the source holds what its guest wrote, no more, no less */
    rc = gpu_compare(src->gpu_shadow->instance, mig_device_backend(src->gpu)->instance,
                     completed ? "devices: source fake-gpu (saved)"
                               : "devices: source fake-gpu after the migration failed",
                     errp);
    if (rc < 0 || !completed || !dst->gpu || dst->killed)
        return rc;
    return gpu_compare(mig_device_backend(src->gpu)->instance,
                       mig_device_backend(dst->gpu)->instance,
                       "devices: destination fake-gpu (loaded)", errp);
}

