/*
 * cmd-list-faults.c - `migcert list-faults`: print the fault-point registry.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common/common.h"
#include "common/faults.h"

int cmd_list_faults(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        fprintf(stderr, "migcert list-faults: unknown option '%s'\n", argv[i]);
        return 2;
    }
    size_t n;
    const MigFaultInfo *t = mig_faults_table(&n);
    for (size_t i = 0; i < n; i++)
        printf("%-32s %-10s %s\n", t[i].name, mig_errno_name(-t[i].err), t[i].sentence);
    return 0;
}
