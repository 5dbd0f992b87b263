/*
 * migration-wait.h - run a loop until the migration between two machines
 * has ended on both sides, the wait every whole-migration test makes
 * before it checks the outcome.
 *
 * Called by the unit tests that migrate a machine pair (test-pageflip,
 * test-ram, test-ram-share, test-sim-device, test-sim-migration,
 * test-spice-machine, test-workload).
 *
 * Invariants: "ended" is a terminal status (mig_status_is_terminal) on the
 * source and on the destination, whatever it is: the caller checks which;
 * the timeout is loop time (simulated on a simulator loop), a hang guard;
 * on failure the error names both sides' status and error text.
 */
#ifndef MIGCERT_SIM_MIGRATION_WAIT_H
#define MIGCERT_SIM_MIGRATION_WAIT_H

#include <stdint.h>

#include "common/common.h"
#include "common/loop.h"
#include "machine/machine.h"

/* Run `loop` until both migrations ended, or `timeout_ns` of loop time
 * passed (0: no limit).  Returns 0, or mig_loop_run_until's error
 * (-ETIMEDOUT, -EDEADLK when nothing was left to run, ...) with errp set. */
int sim_migration_wait(MigLoop *loop, MigMachine *src, MigMachine *dst, uint64_t timeout_ns, MigErr **errp);

#endif
