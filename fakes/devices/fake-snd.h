/*
 * fake-snd.h - the fake sound device: while the machine runs it plays
 * sequence-numbered PCM (fake-media.h) at 48 kHz, 480 frames every 10 ms of
 * loop time, and records: what the client sends is checked against the same
 * sequence.  Record may lose frames only where the protocol allows it: the
 * frames a client sent before it learnt of a RECORD_STOP reach a server
 * that no longer records (spice_record_dropped), so a loss shows at the
 * first frame after recording started again, here or on a migration's
 * target (rec_restart_gaps); a loss anywhere else (rec_gaps), a repeat or a
 * frame out of order (rec_dups) is a fault.
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
    uint64_t rec_restart_gaps; /* frames missing at the first frame after a (re)start */
    uint64_t rec_dropped;      /* frames this server's record channel dropped after a stop */
} FakeSndStats;

FakeSnd *fake_snd_new(MigLoop *loop, SpiceServer *server);
void fake_snd_free(FakeSnd *s);
/* The guest runs (plays and records) or is stopped (STOP on both). */
void fake_snd_set_running(FakeSnd *s, bool running);
void fake_snd_stats(const FakeSnd *s, FakeSndStats *out);
/* The guest's playback stream jumps `frames` ahead (the harness's self-test:
 * a client then sees that many frames lost). */
void fake_snd_skip_playback(FakeSnd *s, uint64_t frames);

/* Register the device's state ("fake-snd", version 1: the next playback frame, frames played, the next record frame expected, frames recorded) as a FULL section. */
struct MigSavevm;
int fake_snd_register(FakeSnd *d, struct MigSavevm *sv, MigErr **errp);

#endif
