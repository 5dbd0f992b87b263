/*
 * cmd-analyze.c - `migcert analyze`.  Placeholder until issue 2 lands: it
 * says so and exits 2 rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_analyze(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "migcert analyze: not built yet (issue 2)\n");
    return 2;
}
