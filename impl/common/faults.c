/*
 * faults.c - the fault-point registry as a table indexed by MigFaultId (see
 * faults.h).
 */
#include <errno.h>
#include <string.h>

#include "common.h"
#include "faults.h"

static const MigFaultInfo fault_table[MIG_FAULT__COUNT] = {
#define X(id, name, err, sentence) [MIG_FAULT_##id] = {name, err, sentence},
    MIG_FAULT_POINTS(X)
#undef X
};

const MigFaultInfo *mig_faults_table(size_t *count)
{
    *count = MIG_ARRAY_SIZE(fault_table);
    return fault_table;
}

const MigFaultInfo *mig_faults_find(const char *name)
{
    /* Binary search: the registry is sorted by name (test-common checks),
     * and the injector looks a point up on every hit of it. */
    size_t lo = 0, hi = MIG_ARRAY_SIZE(fault_table);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(fault_table[mid].name, name);
        if (c == 0)
            return &fault_table[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
