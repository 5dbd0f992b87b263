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

/* Register the device's state ("fake-vmc", version 1: the bytes written to and read from the client so far, so that the sequence goes on) as a FULL section. */
struct MigSavevm;
int fake_vmc_register(FakeVmc *d, struct MigSavevm *sv, MigErr **errp);

#endif
