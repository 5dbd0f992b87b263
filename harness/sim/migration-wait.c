/*
 * migration-wait.c - wait for a machine pair's migration to end
 * (migration-wait.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migration/migration.h"
#include "sim/migration-wait.h"

typedef struct Pair {
    MigMachine *src, *dst;
} Pair;

static bool ended(MigMachine *m)
{
    return mig_status_is_terminal(mig_migration_status(mig_machine_migration(m)));
}

static bool both_ended(void *opaque)
{
    Pair *p = opaque;
    return ended(p->src) && ended(p->dst);
}

int sim_migration_wait(MigLoop *loop, MigMachine *src, MigMachine *dst, uint64_t timeout_ns, MigErr **errp)
{
    Pair p = {src, dst};
    uint64_t deadline = timeout_ns ? mig_loop_now_ns(loop) + timeout_ns : 0;
    int rc = mig_loop_run_until(loop, both_ended, &p, deadline);
    if (rc == 0)
        return 0;
    char why[64];
    if (rc == -ETIMEDOUT)
        snprintf(why, sizeof(why), "within %llu ms of loop time", (unsigned long long)(timeout_ns / 1000000));
    else if (rc == -EDEADLK)
        snprintf(why, sizeof(why), "(the loop had nothing left to run)");
    else
        snprintf(why, sizeof(why), "(the loop stopped: %s)", strerror(-rc));
    MigMigration *s = mig_machine_migration(src), *d = mig_machine_migration(dst);
    return mig_err_set(errp, rc, "the migration did not end on both sides %s: source %s (%s), destination %s (%s)", why,
                       mig_status_name(mig_migration_status(s)), mig_migration_error(s),
                       mig_status_name(mig_migration_status(d)), mig_migration_error(d));
}
