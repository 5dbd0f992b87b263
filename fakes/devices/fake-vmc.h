/*
 * fake-vmc.h - the fake char device behind a SPICE port channel: while the
 * machine runs it writes sequence-numbered bytes (fake-media.h) to the
 * client as fast as the port's pacing lets it, up to `bytes_per_tick` every
 * 10 ms, and checks the client's bytes against the same sequence: a char
 * device must lose, repeat or reorder nothing.
 * Owns: its port channel (PORT:0, named FAKE_VMC_PORT_NAME).
 * Called by: machine assembly in the harness and `migcert vm`.
 */
#ifndef MIGCERT_FAKE_VMC_H
#define MIGCERT_FAKE_VMC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "spice/spice-server.h"
#include "vmstate/vmstate.h"

#define FAKE_VMC_PORT_NAME "org.migcert.vmc.0"

typedef struct FakeVmc FakeVmc;

typedef struct FakeVmcStats {
    uint64_t written;            /* bytes the port took */
    uint64_t read, read_errors;  /* client bytes, and those out of sequence */
    uint64_t held;               /* client bytes the port holds while the guest is stopped */
} FakeVmcStats;

FakeVmc *fake_vmc_new(MigLoop *loop, SpiceServer *server, uint32_t bytes_per_tick);
void fake_vmc_free(FakeVmc *v);
void fake_vmc_set_running(FakeVmc *v, bool running);
void fake_vmc_stats(const FakeVmc *v, FakeVmcStats *out);

/* The device's migration state, "fake-vmc", by release (releases.h):
 *   1.0, 1.1  version 1: written, read (the bytes to and from the client so
 *             far, so that the sequence goes on);
 *   2.0       + subsection fake-vmc/pacing (bytes_per_tick), needed when the
 *             guest's pacing is not FAKE_VMC_DEFAULT_BYTES_PER_TICK; a
 *             destination without it keeps its own pacing;
 *   2.1-dev   version 2 (minimum 1) + field read_errors (the client bytes
 *             out of sequence so far); from a version 1 stream it counts
 *             from 0. */
#define FAKE_VMC_DEFAULT_BYTES_PER_TICK 2048u
extern const VmsDescription fake_vmc_vmsd_1_0, fake_vmc_vmsd_2_0, fake_vmc_vmsd_2_1;
/* What it writes (the machine type's description) and reads (its own
 * release's); NULL: 2.1-dev's.  Before fake_vmc_register. */
void fake_vmc_set_vmsd(FakeVmc *d, const VmsDescription *emit, const VmsDescription *load);
uint32_t fake_vmc_bytes_per_tick(const FakeVmc *v);
/* Register the state as a FULL section at the written description's
 * version. */
struct MigSavevm;
int fake_vmc_register(FakeVmc *d, struct MigSavevm *sv, MigErr **errp);

#endif
