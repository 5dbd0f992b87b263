/*
 * cmd-list-faults.c - `migcert list-faults [--unreached [PATH...]]`: print
 * the fault-point registry; with --unreached, run every scenario under
 * PATH... (default scenarios/) once (seed 0x5eed, with its own faults) and
 * print the registered points that no run hit on any side (hits counted by
 * the injector's libfiu callback, not guessed from the files).  Exit 0 when
 * every point is reached, 1 when any point is unreached or a scenario could
 * not be loaded (CI fails on it: ci/lane-full-faults), 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common/common.h"
#include "common/faults.h"
#include "exec.h"

static int list_unreached(char **paths, size_t npaths)
{
    char **files = NULL;
    MigErr *err = NULL;
    int n = scenario_collect(paths, npaths, &files, &err);
    if (n < 0) {
        fprintf(stderr, "migcert list-faults: %s\n", err->msg);
        mig_err_free(err);
        return 2;
    }
    size_t np;
    const MigFaultInfo *t = mig_faults_table(&np);
    uint64_t *hits = mig_malloc0(sizeof(uint64_t) * (np + 1));
    int rc = 0;
    RunResult *r = mig_malloc0(sizeof(*r));
    for (int f = 0; f < n; f++) {
        Scenario *s = scenario_load(files[f], &err);
        if (!s) {
            fprintf(stderr, "migcert list-faults: %s\n", err->msg);
            mig_err_free(err);
            err = NULL;
            rc = 1;
            continue;
        }
        RunCase c = {.scn = s, .seed = 0x5eed};
        exec_run_case(&c, r);
        for (int side = 0; side < MIG_FAULT_SIDE__COUNT; side++)
            for (size_t i = 0; i < np; i++)
                hits[i] += r->hits[side][i];
        scenario_free(s);
    }
    size_t unreached = 0;
    for (size_t i = 0; i < np; i++) {
        const char *elsewhere = mig_fault_reached_outside_scenarios(t[i].name);
        if (!hits[i] && elsewhere)
            fprintf(stderr, "migcert list-faults: %s needs a real page pipe: reached by %s\n",
                    t[i].name, elsewhere);
        else if (!hits[i]) {
            printf("%-32s %-10s %s\n", t[i].name, mig_errno_name(-t[i].err), t[i].sentence);
            unreached++;
        }
    }
    fprintf(stderr, "migcert list-faults: %zu of %zu point(s) unreached by %d scenario(s)\n",
            unreached, np, n);
    if (unreached)
        rc = 1;
    free(r);
    free(hits);
    scenario_paths_free(files, (size_t)n);
    return rc;
}

int cmd_list_faults(int argc, char **argv)
{
    bool unreached = false;
    char **paths = mig_malloc0(sizeof(char *) * (size_t)(argc + 1));
    size_t npaths = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: migcert list-faults [--unreached [PATH...]]\n"
                   "  Print every registered fault point: name, errno, what it does.\n"
                   "  --unreached: the points no scenario under PATH (default scenarios/)\n"
                   "  reaches.\n");
            free(paths);
            return 0;
        }
        if (!strcmp(argv[i], "--unreached"))
            unreached = true;
        else if (unreached && argv[i][0] != '-')
            paths[npaths++] = argv[i];
        else {
            fprintf(stderr, "migcert list-faults: unknown option '%s'\n", argv[i]);
            free(paths);
            return 2;
        }
    }
    int rc = 0;
    if (unreached) {
        if (!npaths)
            paths[npaths++] = "scenarios";
        rc = list_unreached(paths, npaths);
    } else {
        size_t n;
        const MigFaultInfo *t = mig_faults_table(&n);
        for (size_t i = 0; i < n; i++)
            printf("%-32s %-10s %s\n", t[i].name, mig_errno_name(-t[i].err), t[i].sentence);
    }
    free(paths);
    return rc;
}
