/*
 * ram-feed.h - load a RAM section's stream the way a destination over a
 * socket does: the stream's bytes, held in memory, are written into one end
 * of a socketpair in chunks of the sizes given, and the entry's load_state
 * reads the other end (a real fd transport, so the loader's direct reads
 * into guest RAM happen) until the stream runs dry, then the next chunk
 * goes in.  A source's iteration steps each end in an EOS (load_state
 * returns 0 there); the feed stops after the number of steps asked for.
 *
 * Called by the RAM loader's unit tests (test-ram-direct, test-ram-fresh).
 * The caller owns the entry's load_setup and load_cleanup, and checks the
 * RAM the load wrote.
 *
 * Invariants: never writes past the stream's end; the socket, transport,
 * stream and loop it makes are freed before it returns, on every path; an
 * error names what failed and at which byte offset of the stream.  The
 * socket is real (the loader reads direct only from an fd), yet the run
 * depends on no timing: a chunk is whole in the socket before the loader
 * reads, and the loader reads until the socket is empty, nothing else
 * runs (the loop it makes is never run).
 */
#ifndef MIGCERT_SIM_RAM_FEED_H
#define MIGCERT_SIM_RAM_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "savevm/savevm.h"

typedef struct SimRamFeed {
    const size_t *sizes; /* chunk sizes, written in turn: sizes[i % nsizes] */
    size_t nsizes;
    size_t steps; /* load_state returns 0 this many times: the source's steps */
    size_t fed;   /* out: bytes written into the socket */
    uint64_t read; /* out: bytes the loader's stream consumed */
} SimRamFeed;

/* Feed `len` bytes of `buf` to entry `e` (a START section of version 4) as
 * `f` says.  Returns 0 after f->steps steps loaded; load_state's error
 * (with errp set); or -EPROTO when the load wants more than the stream
 * has, -errno when the socket fails, both with errp set. */
int sim_ram_feed(const MigSaveEntry *e, const uint8_t *buf, size_t len, SimRamFeed *f, MigErr **errp);

#endif
