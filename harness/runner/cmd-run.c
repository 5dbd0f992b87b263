/*
 * cmd-run.c - `migcert run`.  Placeholder until issue 5 lands: it
 * says so and exits 2 rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "migcert run: not built yet (issue 5)\n");
    return 2;
}
