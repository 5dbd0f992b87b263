/*
 * main.c - the `migcert` command: dispatches to harness/runner/cmd-*.c.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
} commands[] = {
    {"run", cmd_run, "run [PATH...] [--seed N] [--pair SRC:DST] [--fault SPEC] [--sweep] ..."},
    {"vm", cmd_vm, "vm [--release R] [--ram SIZE] --qmp unix:PATH [--incoming URI] ..."},
    {"client", cmd_client, "client --connect H:P --script F"},
    {"certify", cmd_certify, "certify --device X.so [--peer Y.so] [--out DIR] | --spice --src-qmp A --src-spice A ..."},
    {"analyze", cmd_analyze, "analyze FILE [--json]"},
    {"dump-vmstate", cmd_dump_vmstate, "dump-vmstate [--release R] FILE"},
    {"check-compat", cmd_check_compat, "check-compat OLD.json NEW.json"},
    {"list-faults", cmd_list_faults, "list-faults [--unreached]"},
    {"report", cmd_report, "report [DIR] [--merge DIR...] [--out DIR]"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: migcert COMMAND [ARGS]\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  migcert %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "migcert: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
