/*
 * cmd-check-compat.c - `migcert check-compat`.  Placeholder until issue 2 lands: it
 * says so and exits 2 rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_check_compat(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "migcert check-compat: not built yet (issue 2)\n");
    return 2;
}
