/*
 * spice-keys.h - the SPICE servers' RSA ticket keys for the unit tests,
 * made once per process for each PRNG state that asks for one.
 *
 * Owns: a small table of keys, by the number the server's PRNG fork would
 * draw.  Called by the unit tests that open SPICE servers again and again
 * from the same seed (test-spice-migrate, test-spice-machine): they pass
 * sim_spice_key(loop) as SpiceServerConfig.key just before
 * spice_server_new / mig_machine_add_spice on that loop, and call
 * sim_spice_keys_free() when every test has run.
 *
 * Why: spice_server_new searches two 512-bit primes for its key; a test
 * that opens two servers a case from one seed searches the same primes in
 * every case, which under valgrind is most of its time.  The key here is
 * made exactly as the server would make it (same seed for the child PRNG,
 * same spice_ticket_key_new), and the server still forks the loop's PRNG
 * for it, so every draw and every byte on the wire stays as before.
 *
 * Invariants: a key is looked up by sim_spice_key_seed (nothing drawn);
 * the table is fixed-size and never evicted (past it, NULL: the server
 * makes its own); keys outlive every server that borrows them (freed only
 * by sim_spice_keys_free); no clock.
 */
#ifndef MIGCERT_SIM_SPICE_KEYS_H
#define MIGCERT_SIM_SPICE_KEYS_H

#include "common/loop.h"
#include "spice/spice-ticket.h"

/* The seed of the key the next spice_server_new on `loop` makes: what
 * mig_prng_fork(&loop->prng, &kp) seeds kp with, the loop's next number,
 * peeked at on a copy (nothing drawn).  The executor's key cache
 * (harness/runner/exec-spice-keys.c) looks its keys up by it too. */
uint64_t sim_spice_key_seed(const MigLoop *loop);
/* The key the next spice_server_new on `loop` would make; NULL when the
 * table is full or the key could not be made (the server then makes it). */
const SpiceTicketKey *sim_spice_key(MigLoop *loop);
/* Frees every key of the table. */
void sim_spice_keys_free(void);

#endif
