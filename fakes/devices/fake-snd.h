/*
 * fake-snd.h - the fake sound device: while the machine runs it plays
 * sequence-numbered PCM (fake-media.h) at 48 kHz, 480 frames every 10 ms of
 * loop time, and records: what the client sends is checked against the same
 * sequence (record may lose frames, as the protocol allows; it must never
 * repeat or reorder them).
 * Owns: its SPICE playback and record channels (added to the server given).
 * Called by: machine assembly in the harness and `migcert vm`.
 */
#ifndef MIGCERT_FAKE_SND_H
#define MIGCERT_FAKE_SND_H

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "spice/spice-server.h"

typedef struct FakeSnd FakeSnd;

typedef struct FakeSndStats {
    uint64_t played;                 /* frames handed to the playback channel */
    uint64_t recorded, rec_gaps, rec_dups;
} FakeSndStats;

FakeSnd *fake_snd_new(MigLoop *loop, SpiceServer *server);
void fake_snd_free(FakeSnd *s);
/* The guest runs (plays and records) or is stopped (STOP on both). */
void fake_snd_set_running(FakeSnd *s, bool running);
void fake_snd_stats(const FakeSnd *s, FakeSndStats *out);

/* Register the device's state ("fake-snd", version 1: the next playback frame, frames played, the next record frame expected, frames recorded) as a FULL section. */
struct MigSavevm;
int fake_snd_register(FakeSnd *d, struct MigSavevm *sv, MigErr **errp);

#endif
