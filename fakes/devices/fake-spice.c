/*
 * fake-spice.c - the SPICE devices of a machine (fake-spice.h).
 */
#include <stdlib.h>
#include <string.h>

#include "devices/fake-spice.h"
#include "devices/releases.h"

static const struct {
    const char *name;
    unsigned bit;
} device_bits[] = {
    {"fake-qxl", FAKE_SPICE_QXL},
    {"fake-snd", FAKE_SPICE_SND},
    {"fake-vmc", FAKE_SPICE_VMC},
    {"fake-input", FAKE_SPICE_INPUT},
};

unsigned fake_spice_device_bit(const char *name)
{
    for (size_t i = 0; name && i < MIG_ARRAY_SIZE(device_bits); i++)
        if (!strcmp(device_bits[i].name, name))
            return device_bits[i].bit;
    return 0;
}

static void run_changed(void *opaque, bool running)
{
    FakeSpice *f = opaque;
    if (f->qxl)
        fake_qxl_set_running(f->qxl, running);
    if (f->snd)
        fake_snd_set_running(f->snd, running);
    if (f->vmc)
        fake_vmc_set_running(f->vmc, running);
    if (f->input)
        fake_input_set_running(f->input, running);
}

static const MigMachineObserver observer = {.run_changed = run_changed};

FakeSpice *fake_spice_new(MigMachine *m, const FakeSpiceOptions *o, MigErr **errp)
{
    SpiceServer *s = mig_machine_spice(m);
    if (!s) {
        mig_err_set(errp, -EINVAL, "machine %s has no SPICE server", mig_machine_name(m));
        return NULL;
    }
    const char *rel = o && o->release ? o->release : MIG_RELEASE_CURRENT;
    const MigRelease *r = mig_release_find(rel);
    const char *mtn = o && o->machine_type && *o->machine_type ? o->machine_type : NULL;
    const MigRelease *mt = r ? mig_machine_type_find(mtn ? mtn : r->machine_type) : NULL;
    if (!r || !mt || mig_release_index(mt->name) > mig_release_index(r->name)) {
        mig_err_set(errp, -EINVAL, "SPICE devices: release %s cannot run machine type %s", rel,
                    mtn ? mtn : "(default)");
        return NULL;
    }
    MigLoop *loop = mig_machine_loop(m);
    FakeSpice *f = mig_malloc0(sizeof(*f));
    f->machine = m;
    unsigned want = o && o->devices ? o->devices : FAKE_SPICE_ALL;
    MigSavevm *sv = mig_machine_savevm(m);
    int rc = 0;
    if (want & FAKE_SPICE_QXL) {
        f->qxl = fake_qxl_new_heads(loop, s, o && o->width ? o->width : 640, o && o->height ? o->height : 480,
                                    o && o->heads ? o->heads : 1);
        rc = f->qxl ? fake_qxl_register(f->qxl, sv, errp) : -EINVAL;
    }
    if (rc == 0 && (want & FAKE_SPICE_SND)) {
        f->snd = fake_snd_new(loop, s);
        rc = fake_snd_register(f->snd, sv, errp);
    }
    if (rc == 0 && (want & FAKE_SPICE_VMC)) {
        f->vmc = fake_vmc_new(loop, s, o && o->vmc_bytes_per_tick ? o->vmc_bytes_per_tick
                                                                  : FAKE_VMC_DEFAULT_BYTES_PER_TICK);
        fake_vmc_set_vmsd(f->vmc, mig_release_device_vmsd(mt->name, "fake-vmc"),
                          mig_release_device_vmsd(r->name, "fake-vmc"));
        rc = fake_vmc_register(f->vmc, sv, errp);
    }
    if (rc == 0 && (want & FAKE_SPICE_INPUT)) {
        f->input = fake_input_new(loop, s, errp);
        rc = f->input ? fake_input_register(f->input, sv, errp) : -EINVAL;
    }
    if (rc < 0) {
        fake_spice_free(f);
        return NULL;
    }
    mig_machine_add_observer(m, &observer, f);
    run_changed(f, mig_machine_running(m));
    return f;
}

void fake_spice_free(FakeSpice *f)
{
    if (!f)
        return;
    mig_machine_remove_observer(f->machine, &observer, f);
    MigSavevm *sv = mig_machine_savevm(f->machine);
    if (f->qxl)
        mig_savevm_unregister(sv, "fake-qxl", 0);
    if (f->snd)
        mig_savevm_unregister(sv, "fake-snd", 0);
    if (f->vmc)
        mig_savevm_unregister(sv, "fake-vmc", 0);
    if (f->input)
        mig_savevm_unregister(sv, "fake-input", 0);
    fake_qxl_free(f->qxl);
    fake_snd_free(f->snd);
    fake_vmc_free(f->vmc);
    fake_input_free(f->input);
    free(f);
}
