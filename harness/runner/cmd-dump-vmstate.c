/*
 * cmd-dump-vmstate.c - `migcert dump-vmstate [--release R] FILE`: write a
 * release's device descriptions in QEMU's -dump-vmstate shape (the input of
 * `migcert check-compat`).  FILE "-" is stdout.  The release defaults to the
 * working tree (2.1-dev); descriptions come from fakes/devices/releases.c via
 * vmstate_describe_dump().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "devices/releases.h"

int cmd_dump_vmstate(int argc, char **argv)
{
    const char *release = MIG_RELEASE_CURRENT, *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: migcert dump-vmstate [--release R] FILE\n"
                   "  Write release R's device descriptions (default %s; known: %s) in\n"
                   "  QEMU's -dump-vmstate shape to FILE (\"-\": stdout), the input of\n"
                   "  `migcert check-compat`.\n",
                   MIG_RELEASE_CURRENT, mig_release_names());
            return 0;
        }
        if (!strcmp(argv[i], "--release") && i + 1 < argc)
            release = argv[++i];
        else if (!strncmp(argv[i], "--release=", 10))
            release = argv[i] + 10;
        else if (argv[i][0] == '-' && argv[i][1] && !file) {
            fprintf(stderr, "migcert dump-vmstate: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!file)
            file = argv[i];
        else {
            fprintf(stderr, "migcert dump-vmstate: one output file only ('%s')\n", argv[i]);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "usage: migcert dump-vmstate [--release R] FILE\n");
        return 2;
    }
    json_t *doc = mig_release_dump(release);
    if (!doc) {
        fprintf(stderr, "migcert dump-vmstate: unknown release '%s' (known: %s)\n", release,
                mig_release_names());
        return 2;
    }
    int rc = 0;
    int flags = JSON_INDENT(2) | JSON_PRESERVE_ORDER;
    if (!strcmp(file, "-")) {
        rc = json_dumpf(doc, stdout, flags) == 0 && fputc('\n', stdout) != EOF ? 0 : 1;
    } else {
        /* json_dump_file says nothing of why: open the file ourselves */
        FILE *f = fopen(file, "w");
        int e = f ? 0 : errno;
        if (f && json_dumpf(doc, f, flags) != 0)
            e = errno ? errno : EIO;
        if (f && fclose(f) != 0 && !e)
            e = errno;
        if (e) {
            fprintf(stderr, "migcert dump-vmstate: cannot write '%s': %s\n", file, strerror(e));
            rc = 1;
        }
    }
    json_decref(doc);
    return rc;
}
