/*
 * cmd-certify.c - `migcert certify`.  Placeholder until issue 4 lands: it
 * says so and exits 2 rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_certify(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "migcert certify: not built yet (issue 4)\n");
    return 2;
}
