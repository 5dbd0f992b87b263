/*
 * cmd-analyze.c - `migcert analyze FILE [--json]`: parse and explain a
 * migration stream (ours or QEMU's) with impl/stream/analyze.h.
 *
 * Exit status (the contract in harness/pytest/test_analyze_qemu.py): 0 the
 * stream parsed through EOF (and its trailer); 1 malformed, with one line
 * "migcert analyze: FILE: offset N: PROBLEM" on stderr; 2 usage error or
 * unreadable FILE.  The facts found before a malformation are still printed.
 * The file is mmap'ed (read into memory when it is not a regular file), so
 * a 500 MB stream costs no copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "stream/analyze.h"

static void usage(void)
{
    fprintf(stderr, "usage: migcert analyze FILE [--json]\n");
}

/* Map or read the whole file.  Returns 0 or -errno; *mapped says how to free. */
static int load_file(const char *path, uint8_t **buf, size_t *len, int *mapped)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = 0;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out_close;
    }
    *mapped = 0;
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) {
            *buf = p;
            *len = (size_t)st.st_size;
            *mapped = 1;
            goto out_close;
        }
    }
    size_t cap = 1 << 20, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b) {
            r = -ENOMEM;
            goto out_close;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            r = -errno;
            free(b);
            goto out_close;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(b, cap);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    *buf = b;
    *len = n;
out_close:
    close(fd);
    return r;
}

int cmd_analyze(int argc, char **argv)
{
    const char *path = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "migcert analyze: unknown option '%s'\n", argv[i]);
            usage();
            return 2;
        } else if (path) {
            fprintf(stderr, "migcert analyze: more than one FILE given\n");
            usage();
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage();
        return 2;
    }

    uint8_t *buf = NULL;
    size_t len = 0;
    int mapped = 0;
    int r = strcmp(path, "-") ? load_file(path, &buf, &len, &mapped)
                              : load_file("/dev/stdin", &buf, &len, &mapped);
    if (r < 0) {
        fprintf(stderr, "migcert analyze: %s: cannot read: %s\n", path, strerror(-r));
        return 2;
    }

    json_t *doc = NULL;
    MigErr *err = NULL;
    uint64_t at = 0;
    r = mig_analyze_buffer(buf, len, &doc, &at, &err);
    if (as_json) {
        json_dumpf(doc, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        mig_analyze_print_text(stdout, doc);
    }
    fflush(stdout);
    if (r < 0)
        fprintf(stderr, "migcert analyze: %s: offset %llu: %s\n", path, (unsigned long long)at,
                err ? err->msg : "malformed stream");
    mig_err_free(err);
    json_decref(doc);
    if (mapped)
        munmap(buf, len);
    else
        free(buf);
    return r < 0 ? 1 : 0;
}
