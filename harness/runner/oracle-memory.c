/*
 * oracle-memory.c - the memory oracle: guest RAM after the migration.
 *
 * Called by: exec-case.c, after the outcome oracle.
 *   completed => every destination page equals the source page at stop
 *                time (mig_workload_verify);
 *   otherwise => the source RAM still matches its own generations;
 *   and, when management resumed a source that completed before its
 *   destination failed (no return path), its RAM and devices were
 *   unchanged at that `cont` (exec-mgmt.c found that: run->paused_err).
 */
#include <string.h>

#include "exec-internal.h"

int exec__oracle_memory(Run *run, const char *outcome, MigErr **errp)
{
    if (run->paused_err) /* found before management's `cont` */
        return mig_err_set(errp, run->paused_err->code, "%s", run->paused_err->msg);
    if (!run->wl || run->src.killed)
        return 0;
    int rc;
    if (!strcmp(outcome, "completed")) {
        if (run->dst.killed)
            return 0;
        rc = mig_workload_verify(run->wl, mig_machine_ram(run->dst.m), errp);
        if (rc < 0)
            mig_err_prepend(errp, "memory: destination");
    } else {
        rc = mig_workload_verify(run->wl, mig_machine_ram(run->src.m), errp);
        if (rc < 0)
            mig_err_prepend(errp, "memory: source after %s", outcome);
    }
    return rc;
}
