/*
 * fake-input.h - the guest's keyboard, mouse and pointer cursor behind a
 * SPICE server's INPUTS and CURSOR channels (spice-inputs.h).
 *
 * Keyboard and mouse: every event a client sends arrives here, and is held
 * to the sequence of fake-media.h (groups of MOUSE, KEY_DOWN, KEY_UP):
 * a group out of place is a loss (gap) or a repeat (dup), a key out of
 * its group's place is out of order.  A stopped guest queues what comes
 * (QEMU's input layer drops it: a migration that fails after the guest
 * stopped would lose keys) and takes the queue when it runs again; the
 * queue migrates with the machine.  What a source receives after its
 * state went out is lost with it: the stats count it (`after_save`), and
 * a target counts the loss it sees at its first event (`restart_gaps`),
 * so the oracle can check that a loss is exactly there and nowhere else.
 *
 * Cursor: while the guest runs it moves its cursor every 30 ms of loop
 * time, hides it a quarter of the time and changes its shape (an ALPHA
 * image of 8, 16 or 24 pixels square) every 24 steps, all a function of
 * the step count, which migrates: the target's cursor is the source's.
 *
 * State: section "fake-input", version 1 (the next group and its phase,
 * events taken, the queue, the cursor's step).  The SPICE devices have no
 * release history: every release's machine has it (releases.h).
 * Called by: fake-spice.c (machine assembly).  Free it before the server.
 */
#ifndef MIGCERT_FAKE_INPUT_H
#define MIGCERT_FAKE_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "spice/spice-inputs.h"
#include "spice/spice-server.h"

typedef struct FakeInput FakeInput;

/* The counts include what the guest will make of its queue. */
typedef struct FakeInputStats {
    uint64_t events;       /* taken by the guest, in order or not */
    uint64_t next_group;   /* the group the guest expects next */
    uint64_t seen_next;    /* the group after the newest that came, taken or queued */
    uint64_t gaps;         /* groups lost anywhere but at a target's first event */
    uint64_t restart_gaps; /* groups lost at a target's first event after it loaded */
    uint64_t dups;         /* groups that came again or went back */
    uint64_t out_of_order; /* keys out of their group's place */
    uint64_t queued;       /* events waiting for the stopped guest */
    uint64_t after_save;   /* groups that came after the state went out (lost with a source) */
    uint64_t overflow;     /* events a full queue could not take */
    uint64_t motions, positions; /* mouse events by mode (server, client) */
} FakeInputStats;

/* The guest's cursor as the oracle compares it with a client's. */
typedef struct FakeInputCursor {
    int16_t x, y;
    bool visible;
    uint64_t unique;
    uint16_t width, height, hot_x, hot_y;
    uint32_t digest; /* FNV-1a of the shape's bytes */
} FakeInputCursor;

/* -ENOENT (errp set) when the server lacks the INPUTS or CURSOR channel. */
FakeInput *fake_input_new(MigLoop *loop, SpiceServer *server, MigErr **errp);
void fake_input_free(FakeInput *d);
void fake_input_set_running(FakeInput *d, bool running);
void fake_input_stats(const FakeInput *d, FakeInputStats *out);
void fake_input_cursor(const FakeInput *d, FakeInputCursor *out);
/* FNV-1a over `len` bytes (the client digests its shape the same way). */
uint32_t fake_input_digest(const uint8_t *p, size_t len);

struct MigSavevm;
int fake_input_register(FakeInput *d, struct MigSavevm *sv, MigErr **errp);

#endif
