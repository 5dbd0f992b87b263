/*
 * fake-spice.h - the devices a machine with SPICE gets by default (as
 * `migcert vm --spice` and scenarios with `spice:` do; `migcert vm
 * --devices` may choose a subset): fake-qxl (display),
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

/* Which of the devices the machine has (FakeSpiceOptions.devices). */
#define FAKE_SPICE_QXL 1u   /* display: the DISPLAY channel(s) */
#define FAKE_SPICE_SND 2u   /* sound: the PLAYBACK and RECORD channels */
#define FAKE_SPICE_VMC 4u   /* char device: the PORT channel */
#define FAKE_SPICE_INPUT 8u /* the guest's keyboard, mouse and cursor */
#define FAKE_SPICE_ALL 15u

/* The bit of a device name ("fake-qxl"...), 0 when it is not one of them. */
unsigned fake_spice_device_bit(const char *name);

typedef struct FakeSpiceOptions {
    uint32_t width, height;   /* the display; 0: 640 x 480 */
    uint32_t heads;           /* fake-qxl's heads; 0: 1 */
    uint32_t vmc_bytes_per_tick; /* 0: FAKE_VMC_DEFAULT_BYTES_PER_TICK */
    /* the build's release and the machine type it runs (releases.h): the
     * devices write the machine type's section descriptions and read their
     * release's; NULL: MIG_RELEASE_CURRENT and its default machine type */
    const char *release, *machine_type;
    unsigned devices; /* FAKE_SPICE_* bits; 0: all four */
} FakeSpiceOptions;

/* A device the options leave out is NULL (and adds no channel). */
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
