/*
 * cmd-vm.c - `migcert vm`.  Placeholder until issue 3 lands: it
 * says so and exits 2 rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_vm(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "migcert vm: not built yet (issue 3)\n");
    return 2;
}
