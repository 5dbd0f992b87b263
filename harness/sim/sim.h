/*
 * sim.h - the deterministic simulator backend of MigLoop.
 *
 * Owns: the sim loop: a virtual clock in nanoseconds, a timer heap ordered by
 * (deadline, creation sequence), a FIFO of deferred callbacks, and a
 * scheduler that runs exactly one callback per step.
 * Called by: the scenario runner (harness/runner), unit tests, and, through
 * the MigLoop interface, every engine module and fake running in a simulated
 * run; the simulator's links (mig_transport_mem_pair, harness/sim/link.c):
 * in-memory transports with their fault controls, which work on any loop
 * and whose timing is virtual on this one.
 *
 * Scheduling: when nothing is due the clock jumps to the earliest deadline.
 * Among the callbacks due at the current virtual time (every due timer, and
 * the oldest pending defer) the loop's PRNG picks which runs next; that is
 * what gives different interleavings for different seeds.  Defers keep their
 * FIFO order among themselves (as on epoll), so "defer A then defer B" still
 * runs A first, but timers may run between them.
 *
 * Invariants: no real fds (fd_watch returns NULL); nothing reads the wall
 * clock; no choice depends on an address; the same seed and the same calls
 * give the same sequence of callbacks, bit for bit.
 */
#ifndef MIGCERT_SIM_H
#define MIGCERT_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "transport/transport.h"

/* A new sim loop at virtual time 0; `seed` seeds loop->prng (the scheduler's
 * choices are drawn from it too).  Free with mig_loop_free. */
MigLoop *mig_sim_loop_new(uint64_t seed);
/* True when l is a sim loop (the helpers below need one). */
bool mig_loop_is_sim(const MigLoop *l);

/* Run every callback due at or before virtual time t_ns (including those they
 * schedule up to t_ns), then leave the clock at t_ns (never moves it back).
 * Stops early on mig_loop_stop() (returns -ECANCELED, stop flag cleared) or
 * when the step limit is hit (-ELOOP).  Returns 0 otherwise. */
int mig_sim_run_until_time(MigLoop *l, uint64_t t_ns);
/* Same, for `delta_ns` from the current virtual time. */
int mig_sim_run_for(MigLoop *l, uint64_t delta_ns);
/* The virtual time of the next pending callback; false when none. */
bool mig_sim_next_time(MigLoop *l, uint64_t *t_ns);
/* Callbacks run so far (one per step). */
uint64_t mig_sim_steps(const MigLoop *l);
/* Timers, defers and watches not yet fired or removed: the leak oracle. */
long mig_sim_live_sources(const MigLoop *l);
/* Livelock guard: once `max_steps` callbacks ran, run_once returns -ELOOP
 * (0 = no limit, the default). */
void mig_sim_set_step_limit(MigLoop *l, uint64_t max_steps);

/* ---- links: the simulator's in-memory duplex transport ("mem") ----
 * Two transports joined by a link with, per direction, a serialising
 * bandwidth, a latency and a bounded buffer of bytes written but not yet read
 * by the peer (writev accepts what fits, -EAGAIN when nothing fits).  Timing
 * runs on the loop clock, so under the sim loop it is virtual and exact.
 * Readiness is level-triggered like epoll and always delivered from loop
 * callbacks (defers and timers), never from inside read/writev/watch.
 *
 * End of stream: closing or shutting down one end makes the peer read the
 * bytes still in flight, then 0.  Writing to a closed peer gives -EPIPE.
 * Faults the harness drives through a MigLink handle:
 *   drop_at(dir, N): the writer of `dir` can write N bytes in all; at byte N
 *     the connection resets: the peer still reads exactly those N bytes, then
 *     -ECONNRESET; every later write on either end gives -ECONNRESET, and
 *     reads on the other direction give what was already written, then
 *     -ECONNRESET;
 *   drop_now: reset now, bytes in flight are lost, both ends get -ECONNRESET;
 *   partition(true): no byte arrives, writes are accepted until the buffer is
 *     full, nothing errors; partition(false) heals: transmission restarts;
 *   set_params: change bandwidth/latency for bytes written from now on. */
typedef struct MigLinkParams {
    uint64_t bandwidth;  /* bytes per second of loop time; 0 = unlimited */
    uint64_t latency_ns; /* one-way, added to every byte */
    size_t buffer;       /* per-direction bound; 0 = MIG_LINK_DEFAULT_BUFFER */
} MigLinkParams;
#define MIG_LINK_DEFAULT_BUFFER ((size_t)4 << 20)

typedef struct MigLink MigLink;
enum { MIG_LINK_A_TO_B = 0, MIG_LINK_B_TO_A = 1 };

/* Create a connected pair: bytes written on *a are read on *b and back.  p
 * may be NULL (unlimited, no latency, default buffer).  Returns 0 or -errno.
 * Both ends are "mem" transports; close each with mig_transport_close. */
int mig_transport_mem_pair(MigLoop *loop, const MigLinkParams *p, MigTransport **a,
                           MigTransport **b);
/* Keyed pages (impl/ram/ram.h): `ram` is the guest RAM of the machine that
 * uses `end` (NULL: none).  From now on a keyed page of it that end writes
 * travels as its key, read at write time, and a whole referenced page that
 * end reads onto a page of it arrives as the key (MigTransport.keyed_ram);
 * every other byte, and every byte read elsewhere, is the page's bytes.
 * The RAM must outlive the end's use (the machine closes its transports
 * before it frees its RAM).  No-op for other transports. */
struct MigRam;
void mig_transport_mem_set_ram(MigTransport *end, struct MigRam *ram);
/* A new reference to the link under a mem transport (NULL for other kinds);
 * it stays valid after both ends closed, until mig_link_unref. */
MigLink *mig_transport_mem_link(MigTransport *end);
void mig_link_unref(MigLink *link);
void mig_link_drop_at(MigLink *link, int dir, uint64_t byte);
void mig_link_drop_now(MigLink *link);
void mig_link_partition(MigLink *link, bool partitioned);
void mig_link_set_params(MigLink *link, const MigLinkParams *p);
bool mig_link_is_broken(const MigLink *link);
/* Bytes written into direction `dir` so far. */
uint64_t mig_link_bytes(const MigLink *link, int dir);
/* Bytes written into direction `dir` and not yet read by its reader (in
 * transit or arrived and unread): what mig_transport_queued reports for the
 * end that writes `dir`. */
uint64_t mig_link_queued(const MigLink *link, int dir);

#endif
