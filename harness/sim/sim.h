/*
 * sim.h - the deterministic simulator backend of MigLoop.
 *
 * Owns: the sim loop: a virtual clock in nanoseconds, a timer heap ordered by
 * (deadline, creation sequence), a FIFO of deferred callbacks, and a
 * scheduler that runs exactly one callback per step.
 * Called by: the scenario runner (harness/runner), unit tests, and, through
 * the MigLoop interface, every engine module and fake running in a simulated
 * run.  In-memory links come from impl/transport (mig_transport_mem_pair) and
 * work on any loop; on this one their timing is virtual.
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

#endif
