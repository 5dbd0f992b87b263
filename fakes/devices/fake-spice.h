/*
 * fake-spice.h - the devices a machine with SPICE gets by default (as
 * `migcert vm --spice` and scenarios with `spice:` do): fake-qxl (display),
 * fake-snd (playback and record), fake-vmc (a port channel) and
 * fake-input (keyboard, mouse and cursor: INPUTS and CURSOR), on the
 * machine's SPICE server, their state registered as FULL sections so that
 * it migrates with the machine, and running exactly while the guest runs.
 * Owns: the four devices.  Called by: the scenario executor, `migcert vm`,
 * tests.  Free it before the machine.
 */
#ifndef MIGCERT_FAKE_SPICE_H
#define MIGCERT_FAKE_SPICE_H

#include <stdint.h>

#include "devices/fake-input.h"
#include "devices/fake-qxl.h"
#include "devices/fake-snd.h"
#include "devices/fake-vmc.h"
#include "machine/machine.h"

typedef struct FakeSpiceOptions {
    uint32_t width, height;   /* the display; 0: 640 x 480 */
    uint32_t heads;           /* fake-qxl's heads; 0: 1 */
    uint32_t vmc_bytes_per_tick; /* 0: 2048 */
} FakeSpiceOptions;

typedef struct FakeSpice {
    MigMachine *machine;
    FakeQxl *qxl;
    FakeSnd *snd;
    FakeVmc *vmc;
    FakeInput *input;
} FakeSpice;

/* The machine must have a SPICE server (mig_machine_add_spice). */
FakeSpice *fake_spice_new(MigMachine *m, const FakeSpiceOptions *o, MigErr **errp);
void fake_spice_free(FakeSpice *f);

#endif
