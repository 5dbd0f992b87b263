/*
 * cmd-check-compat.c - `migcert check-compat [--info] OLD.json NEW.json`: static
 * compatibility of two -dump-vmstate documents (QEMU's or ours) for
 * migrating OLD -> NEW (impl/vmstate/compat.c).
 *
 * Prints one line per incompatibility on stdout (and, with --info, the
 * compatible changes worth knowing), then a summary on stderr.
 * Exit: 0 compatible, 1 at least one incompatibility, 2 usage or an
 * unreadable/malformed input (the message names the file and why).
 * --help prints the usage and vmstate_compat_scope(): what is checked
 * beyond QEMU's checker and what no static check can see (compat.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "vmstate/vmstate.h"

typedef struct Out {
    bool info;
    int infos;
} Out;

static void print_finding(const VmsCompatFinding *f, void *opaque)
{
    Out *o = opaque;
    if (f->level == VMS_COMPAT_INFO) {
        o->infos++;
        if (!o->info)
            return;
    }
    char *line = vmstate_compat_format(f);
    printf("%s\n", line);
    free(line);
}

/* The most of a dump this reads (docs/limits.md): QEMU 7.2's pc machine
 * dumps ~300 KB. */
#define DUMP_MAX_BYTES (64u << 20)

/* A regular file of at most DUMP_MAX_BYTES, parsed with duplicate keys
 * refused (jansson would keep the last one without a word). */
static json_t *load_json(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "migcert check-compat: %s: cannot open: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)DUMP_MAX_BYTES) {
        fprintf(stderr, "migcert check-compat: %s: %s\n", path,
                S_ISDIR(st.st_mode)    ? "is a directory, not a -dump-vmstate file"
                : !S_ISREG(st.st_mode) ? "not a regular file"
                                       : "larger than 64 MiB, the most a dump may be "
                                         "(docs/limits.md)");
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (!j && jerr.line < 0)
        fprintf(stderr, "migcert check-compat: %s: %s\n", path, jerr.text);
    else if (!j)
        fprintf(stderr, "migcert check-compat: %s: line %d column %d: %s\n", path, jerr.line,
                jerr.column, jerr.text);
    return j;
}

int cmd_check_compat(int argc, char **argv)
{
    Out out = {0};
    const char *paths[2];
    int npaths = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: migcert check-compat [--info] OLD.json NEW.json\n"
                   "  OLD.json, NEW.json: -dump-vmstate documents (QEMU's or `migcert\n"
                   "  dump-vmstate`) of the source and the destination.  One line per\n"
                   "  incompatibility; --info adds the compatible changes worth knowing.\n"
                   "  exit: 0 compatible, 1 incompatible, 2 usage or unreadable input\n\n%s",
                   vmstate_compat_scope());
            return 0;
        }
        if (strcmp(argv[i], "--info") == 0)
            out.info = true;
        else if (npaths < 2 && argv[i][0] != '-')
            paths[npaths++] = argv[i];
        else
            npaths = 3;
    }
    if (npaths != 2) {
        fprintf(stderr, "usage: migcert check-compat [--info] OLD.json NEW.json\n");
        return 2;
    }
    json_t *old_doc = load_json(paths[0]);
    json_t *new_doc = old_doc ? load_json(paths[1]) : NULL;
    if (!old_doc || !new_doc) {
        json_decref(old_doc);
        return 2;
    }
    MigErr *err = NULL;
    int n = vmstate_check_compat(old_doc, new_doc, print_finding, &out, &err);
    json_decref(old_doc);
    json_decref(new_doc);
    if (n < 0) {
        /* the checker names the documents OLD and NEW; put the file names back */
        const char *msg = err ? err->msg : "malformed input";
        const char *file = strncmp(msg, "NEW", 3) == 0 ? paths[1] : paths[0];
        const char *rest = (strncmp(msg, "NEW", 3) == 0 || strncmp(msg, "OLD", 3) == 0) ? msg + 3
                                                                                          : msg;
        fprintf(stderr, "migcert check-compat: %s%s%s (not a -dump-vmstate document)\n", file,
                rest[0] == ':' ? "" : ": ", rest);
        mig_err_free(err);
        return 2;
    }
    fprintf(stderr, "%d incompatibilit%s, %d compatible change%s noted%s\n", n,
            n == 1 ? "y" : "ies", out.infos, out.infos == 1 ? "" : "s",
            out.infos && !out.info ? " (--info shows them)" : "");
    return n > 0 ? 1 : 0;
}
