/*
 * exec-side.c - side assembly: one source or destination machine of a case
 * with its fake devices.
 *
 * Owns: exec__side_create / exec__side_destroy and the side's VFIO-style
 * device (fake-gpu: its arc recorder, and on the source a shadow and the
 * guest writing device memory).
 * Called by: exec-case.c (both sides at the start of a case, freed at its
 * end), exec-steps.c (`restart` builds a new destination).
 *
 * A side runs on its side view of the run's loop (exec-side-view.c), so
 * everything the machine and its devices do is counted on that side.
 * Devices are created as their release and machine type have them
 * (fakes/devices/releases.h); a destination release that does not ship a
 * device is started without it, as management would.  The fake-gpu follows
 * docs/protocol-vfio.md.
 * Invariants: a side is either all built or destroyed by
 * exec__side_destroy, which also takes a half-built one; the fake-gpu's
 * device section goes before the machine's section registry.
 */
#include <stdlib.h>
#include <string.h>

#include "devices/fake-gpu.h"
#include "exec-internal.h"

/* ---- the VFIO-style device of a side ---- */

#define GPU_TICK_NS 1000000ull /* the guest writes device memory every 1 ms, */
#define GPU_OPS 4u             /* 4 writes each: ~16 MB/s of dirty pages */

/* The guest writes the source's device memory while the source runs; the
 * shadow gets the same writes (same seed), so it is what the source device
 * must hold after a failed or cancelled migration. */
static void gpu_tick(void *opaque)
{
    Side *sd = opaque;
    sd->gpu_dirtier = NULL;
    if (sd->killed)
        return;
    if (mig_machine_run_state(sd->m) == MIG_RUN_STATE_RUNNING) {
        MigDevBackend *be = mig_device_backend(sd->gpu);
        MigFaultSide prev;
        exec__side_enter(sd->sl, &prev);
        if (be->ops->guest_run(be, GPU_OPS, NULL) == 0)
            sd->gpu_shadow->ops->guest_run(sd->gpu_shadow, GPU_OPS, NULL);
        fault_injector_set_side(sd->sl->inj, prev);
    }
    MigLoop *loop = sd->sl->inner;
    sd->gpu_dirtier = mig_loop_timer_add(loop, mig_loop_now_ns(loop) + GPU_TICK_NS, gpu_tick, sd);
}

static int gpu_create(Run *run, Side *sd, uint64_t seed, MigErr **errp)
{
    if (sd->gpu)
        return mig_err_set(errp, -EINVAL, "fake-gpu: one per machine");
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, seed, FAKE_GPU_MACHINE_MEM};
    MigDevBackend *be = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", errp);
    if (!be)
        return -EINVAL;
    sd->gpu_rec = exec__arc_rec_new(be);
    sd->gpu_rec->trace = run->trace;
    sd->gpu_rec->loop = run->loop;
    sd->gpu = mig_device_new("fake-gpu", &sd->gpu_rec->base, errp);
    if (!sd->gpu) {
        sd->gpu_rec = NULL;
        return -EINVAL;
    }
    mig_device_set_trace(sd->gpu, run->trace, &sd->sl->base);
    sd->gpu_sec = mig_dev_section_register(mig_machine_savevm(sd->m), sd->gpu, "fake-gpu", 0,
                                           errp);
    if (!sd->gpu_sec)
        return -EINVAL;
    if (sd->sl->side == MIG_FAULT_SIDE_SRC) {
        sd->gpu_rec->mig = mig_machine_migration(sd->m);
        sd->gpu_rec->on_read = exec__drop_on_read;
        sd->gpu_rec->opaque = run;
        sd->gpu_shadow = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", errp);
        if (!sd->gpu_shadow)
            return -EINVAL;
        MigLoop *loop = sd->sl->inner;
        sd->gpu_dirtier =
            mig_loop_timer_add(loop, mig_loop_now_ns(loop) + GPU_TICK_NS, gpu_tick, sd);
    }
    return 0;
}

static void gpu_destroy(Side *sd)
{
    if (sd->gpu_dirtier)
        mig_loop_remove(sd->sl->inner, sd->gpu_dirtier);
    sd->gpu_dirtier = NULL;
    mig_dev_section_free(sd->gpu_sec);
    sd->gpu_sec = NULL;
}

static void gpu_free(Side *sd)
{
    if (sd->gpu)
        mig_device_free(sd->gpu);
    if (sd->gpu_shadow)
        sd->gpu_shadow->ops->free(sd->gpu_shadow);
    sd->gpu = NULL;
    sd->gpu_rec = NULL;
    sd->gpu_shadow = NULL;
}

int exec__side_create(Run *run, Side *sd, MigFaultSide side, const ScnMachine *sm,
                      const char *release, const char *machine_type, bool incoming,
                      uint64_t dev_seed, MigErr **errp)
{
    const MigRelease *rel = mig_release_find(release);
    sd->release = rel->name;
    snprintf(sd->machine_type, sizeof(sd->machine_type), "%s", machine_type);
    sd->sl = exec__side_loop_new(run->loop, run->inj, side);
    MigMachineOptions o = {
        .name = mig_fault_side_names[side],
        .machine_type = sd->machine_type,
        .ram_size = sm->ram,
        .incoming = incoming,
        .start_paused = incoming, /* -S: management resumes it (exec__mgmt_watch) */
        .caps_known = exec__caps_mask(rel->caps),
    };
    MigFaultSide prev;
    exec__side_enter(sd->sl, &prev);
    sd->m = mig_machine_new(&sd->sl->base, &o, errp);
    fault_injector_set_side(run->inj, prev);
    if (!sd->m) {
        mig_err_prepend(errp, "%s machine", mig_fault_side_names[side]);
        return -EINVAL;
    }
    sd->run = run;
    for (size_t i = 0; i < sm->ndevices && i < MIG_ARRAY_SIZE(sd->devs); i++) {
        const char *type = sm->devices[i];
        if (side == MIG_FAULT_SIDE_DST && !mig_release_has_device(release, type)) {
            /* management cannot give a release a device it does not ship */
            exec__log(run, "dst release %s has no %s: started without it", release, type);
            continue;
        }
        if (!strcmp(type, "fake-gpu")) {
            exec__side_enter(sd->sl, &prev);
            int rc = gpu_create(run, sd, dev_seed + i * 7919, errp);
            fault_injector_set_side(run->inj, prev);
            if (rc < 0) {
                mig_err_prepend(errp, "%s", mig_fault_side_names[side]);
                return -EINVAL;
            }
            continue;
        }
        MigFakeDevice *d = mig_fake_device_new(type, release, machine_type,
                                               dev_seed + i * 7919, errp);
        if (!d) {
            mig_err_prepend(errp, "%s", mig_fault_side_names[side]);
            return -ENODEV;
        }
        sd->devs[sd->ndevs++] = d;
        if (mig_fake_device_register(d, mig_machine_savevm(sd->m), errp) < 0)
            return -EINVAL;
    }
    return exec__spice_side_create(run, sd, errp);
}

void exec__side_destroy(Side *sd)
{
    gpu_destroy(sd); /* the section goes before the machine's registry */
    exec__spice_side_destroy(sd); /* so do the SPICE devices */
    if (sd->m) {
        MigFaultSide prev;
        exec__side_enter(sd->sl, &prev);
        mig_machine_free(sd->m);
        fault_injector_set_side(sd->sl->inj, prev);
        sd->m = NULL;
    }
    for (size_t i = 0; i < sd->ndevs; i++) {
        mig_fake_device_free(sd->devs[i]);
        mig_fake_device_free(sd->before[i]);
        sd->devs[i] = sd->before[i] = NULL;
    }
    sd->ndevs = 0;
    gpu_free(sd);
    if (sd->sl)
        mig_loop_free(&sd->sl->base);
    sd->sl = NULL;
}

MigStatus exec__side_status(const Side *sd)
{
    return sd->m ? mig_migration_status(mig_machine_migration(sd->m)) : MIG_STATUS_NONE;
}

