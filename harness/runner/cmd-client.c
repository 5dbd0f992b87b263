/*
 * cmd-client.c - `migcert client`.  Placeholder until issue 6 lands: it
 * says so and exits 2 rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

int cmd_client(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "migcert client: not built yet (issue 6)\n");
    return 2;
}
