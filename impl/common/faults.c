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
    for (size_t i = 0; i < MIG_ARRAY_SIZE(fault_table); i++)
        if (strcmp(fault_table[i].name, name) == 0)
            return &fault_table[i];
    return NULL;
}
