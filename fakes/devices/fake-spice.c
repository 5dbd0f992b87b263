/*
 * fake-spice.c - the SPICE devices of a machine (fake-spice.h).
 */
#include <stdlib.h>

#include "devices/fake-spice.h"

static void run_changed(void *opaque, bool running)
{
    FakeSpice *f = opaque;
    fake_qxl_set_running(f->qxl, running);
    fake_snd_set_running(f->snd, running);
    fake_vmc_set_running(f->vmc, running);
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
    MigLoop *loop = mig_machine_loop(m);
    FakeSpice *f = mig_malloc0(sizeof(*f));
    f->machine = m;
    f->qxl = fake_qxl_new_heads(loop, s, o && o->width ? o->width : 640, o && o->height ? o->height : 480,
                                o && o->heads ? o->heads : 1);
    f->snd = fake_snd_new(loop, s);
    f->vmc = fake_vmc_new(loop, s, o && o->vmc_bytes_per_tick ? o->vmc_bytes_per_tick : 2048);
    f->input = fake_input_new(loop, s, errp);
    MigSavevm *sv = mig_machine_savevm(m);
    if (!f->qxl || !f->input || fake_qxl_register(f->qxl, sv, errp) < 0 || fake_snd_register(f->snd, sv, errp) < 0 ||
        fake_vmc_register(f->vmc, sv, errp) < 0 || fake_input_register(f->input, sv, errp) < 0) {
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
    mig_savevm_unregister(sv, "fake-qxl", 0);
    mig_savevm_unregister(sv, "fake-snd", 0);
    mig_savevm_unregister(sv, "fake-vmc", 0);
    mig_savevm_unregister(sv, "fake-input", 0);
    fake_qxl_free(f->qxl);
    fake_snd_free(f->snd);
    fake_vmc_free(f->vmc);
    fake_input_free(f->input);
    free(f);
}
