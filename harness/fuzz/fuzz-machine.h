/*
 * fuzz-machine.h - the machine the stream and device fuzz targets load into
 * (fuzz-stream.c, fuzz-devices.c): a small machine of the current release on
 * the simulator's loop, with the release's devices as `migcert vm --devices
 * default` has them (fake-serial, fake-nic, fake-rng as vmstate FULL
 * sections; fake-gpu as the iterative device section, with a small memory).
 *
 * Also the seed writer both targets share: with MIGCERT_FUZZ_SEEDS=DIR in
 * the environment, LLVMFuzzerInitialize saves a few whole streams of the
 * same machine (RAM zero, RAM patterned, devices from two seeds) into DIR
 * and exits; harness/fuzz/make-seeds.py calls it.
 * Invariants: everything is created per call and freed by fuzz_vm_free
 * (LeakSanitizer checks each run); no global state, no wall clock.
 */
#ifndef MIGCERT_FUZZ_MACHINE_H
#define MIGCERT_FUZZ_MACHINE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device-savevm.h"
#include "device/device.h"
#include "devices/fake-gpu.h"
#include "devices/releases.h"
#include "machine/machine.h"
#include "ram/ram.h"
#include "sim/sim.h"

#define FUZZ_VM_RAM (64u << 10)
#define FUZZ_VM_GPU_MEM (16u << 10)

typedef struct FuzzVm {
    MigLoop *loop;
    MigMachine *m;
    MigFakeDevice *devs[8];
    size_t ndevs;
    MigDevice *gpu;
    MigDevSection *gpu_sec;
} FuzzVm;

static inline void fuzz_vm_free(FuzzVm *v)
{
    mig_dev_section_free(v->gpu_sec);
    mig_device_free(v->gpu);
    for (size_t i = 0; i < v->ndevs; i++)
        mig_fake_device_free(v->devs[i]);
    mig_machine_free(v->m);
    mig_loop_free(v->loop);
    memset(v, 0, sizeof(*v));
}

/* 0, or -1 with everything freed. */
static inline int fuzz_vm_new(FuzzVm *v, bool incoming, uint64_t seed)
{
    memset(v, 0, sizeof(*v));
    v->loop = mig_sim_loop_new(seed);
    mig_sim_set_step_limit(v->loop, 2000000);
    MigMachineOptions o = {.name = incoming ? "dst" : "src", .ram_size = FUZZ_VM_RAM,
                           .incoming = incoming};
    v->m = mig_machine_new(v->loop, &o, NULL);
    if (!v->m)
        goto fail;
    const MigRelease *rel = mig_release_find(MIG_RELEASE_CURRENT);
    for (const char *const *d = rel->devices; d && *d; d++) {
        if (!strcmp(*d, "fake-gpu") || v->ndevs == 8)
            continue;
        MigFakeDevice *fd = mig_fake_device_new(*d, rel->name, NULL, seed + v->ndevs, NULL);
        if (!fd)
            goto fail;
        v->devs[v->ndevs++] = fd;
        if (mig_fake_device_register(fd, mig_machine_savevm(v->m), NULL) < 0)
            goto fail;
    }
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, seed, FUZZ_VM_GPU_MEM};
    MigDevBackend *be = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", NULL);
    if (!be)
        goto fail;
    v->gpu = mig_device_new("fake-gpu", be, NULL);
    if (!v->gpu)
        goto fail;
    v->gpu_sec = mig_dev_section_register(mig_machine_savevm(v->m), v->gpu, "fake-gpu", 0, NULL);
    if (!v->gpu_sec)
        goto fail;
    return 0;
fail:
    fuzz_vm_free(v);
    return -1;
}

/* Save one whole stream of a source machine into DIR/NAME. */
static inline int fuzz_vm_write_stream(const char *dir, const char *name, uint64_t seed, uint8_t fill)
{
    FuzzVm v;
    if (fuzz_vm_new(&v, false, seed) < 0)
        return -1;
    MigRamBlock *blk = mig_ram_block(mig_machine_ram(v.m), 0);
    for (size_t i = 0; i < blk->length; i += 4096)
        memset(blk->host + i, (i / 4096) % 3 ? fill : 0, 4096); /* zero pages too */
    MigDevBackend *be = mig_device_backend(v.gpu);
    be->ops->guest_run(be, 4, NULL); /* some device memory written */
    char path[4096], uri[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(uri, sizeof(uri), "file:%s", path);
    int rc = mig_machine_migrate(v.m, uri, NULL);
    if (rc == 0)
        mig_sim_run_for(v.loop, 10000000000ull);
    MigStatus st = mig_migration_status(mig_machine_migration(v.m));
    fuzz_vm_free(&v);
    if (rc < 0 || st != MIG_STATUS_COMPLETED) {
        fprintf(stderr, "fuzz seeds: %s: the source did not complete\n", path);
        return -1;
    }
    return 0;
}

#endif
