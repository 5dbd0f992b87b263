/*
 * cmd-analyze.c - `migcert analyze FILE [--json]`: parse and explain a
 * migration stream (ours or QEMU's) with impl/stream/analyze.h, printed by
 * analyze-print.h.
 *
 * Exit status (the contract in harness/pytest/test_analyze_qemu.py): 0 the
 * stream parsed through EOF (and its trailer); 1 malformed, with one line
 * "migcert analyze: FILE: offset N: PROBLEM" on stderr; 2 usage error,
 * unreadable FILE, or an input over the size limits (same one-line shape
 * when an offset is known).  The facts found before a malformation are
 * still printed; an input that cannot be read (a directory: "FILE: is a
 * directory", refused before parsing; a read(2) that fails: "FILE: cannot
 * read at offset N: ...") prints nothing on stdout.
 *
 * Input.  A regular file is mmap'ed (a 500 MB stream costs no copy) after
 * its size is checked against MIG_ANALYZE_MAX_INPUT (64 GiB).  Anything
 * else - a pipe, "-" for stdin, a FIFO, a character device such as
 * /dev/zero - is parsed as it is read (mig_analyze_stream): memory stays at
 * the stream's buffer through the RAM sections and at most
 * MIG_ANALYZE_TAIL_MAX (256 MiB) for the device sections and trailer, the
 * same 64 GiB limit applies, and input that is not a stream stops at its
 * first bad byte (/dev/zero: "Not a migration stream" at offset 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze-print.h"
#include "commands.h"
#include "stream/analyze.h"
#include "stream/stream.h"
#include "transport/transport.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: migcert analyze FILE [--json]\n"
            "  FILE  a migration stream (ours or QEMU's); \"-\" reads stdin.  Regular files\n"
            "        are mapped; pipes and devices are parsed as they are read.  Inputs\n"
            "        over %llu GiB are refused.\n"
            "exit: 0 parsed to EOF, 1 malformed (stderr: FILE: offset N: PROBLEM),\n"
            "      2 usage, FILE unreadable (a directory, a failed read; nothing on stdout),\n"
            "        or an input over the limits\n",
            (unsigned long long)(MIG_ANALYZE_MAX_INPUT >> 30));
}

/* A transport that blocks on read: the analyzer is a one-pass tool, so it
 * waits for a pipe rather than coming back (a non-blocking stdin is polled). */
typedef struct BlockingIn {
    MigTransport t;
    int fd;
    int read_err; /* first failed read(2), as -errno: the input, not the stream */
} BlockingIn;

static ssize_t bin_read(MigTransport *t, void *buf, size_t len)
{
    BlockingIn *b = (BlockingIn *)t;
    for (;;) {
        ssize_t n = read(b->fd, buf, len);
        if (n >= 0) {
            t->bytes_read += (uint64_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            break;
        struct pollfd p = {.fd = b->fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
    }
    if (!b->read_err)
        b->read_err = -errno;
    return -errno;
}

static ssize_t bin_write(MigTransport *t, const void *buf, size_t len)
{
    return -EBADF;
}

static ssize_t bin_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    return -EBADF;
}

static void bin_close(MigTransport *t)
{
}

static const MigTransportOps bin_ops = {
    .kind = "analyze-input",
    .read = bin_read,
    .write = bin_write,
    .writev = bin_writev,
    .close = bin_close,
};

/* Analyze what fd holds.  *doc stays NULL when nothing was parsed (the
 * input could not be read or is too large to try). */
static int analyze_fd(int fd, json_t **doc, uint64_t *at, MigErr **errp)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return mig_err_set(errp, -errno, "cannot read: %s", strerror(errno));
    /* open(2) accepts a directory; read(2) would fail only once parsing
     * has begun. */
    if (S_ISDIR(st.st_mode))
        return mig_err_set(errp, -EISDIR, "is a directory");
    if (S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > MIG_ANALYZE_MAX_INPUT)
            return mig_err_set(errp, -EFBIG,
                               "%llu bytes is larger than %llu GiB, the most `migcert analyze` "
                               "reads",
                               (unsigned long long)st.st_size,
                               (unsigned long long)(MIG_ANALYZE_MAX_INPUT >> 30));
        /* Size 0 is also what procfs and sysfs files claim: those are
         * read as a stream, only a truly empty file is analyzed as such. */
        char one;
        ssize_t got = st.st_size ? 1 : pread(fd, &one, 1, 0);
        if (got < 0)
            return mig_err_set(errp, -errno, "cannot read at offset 0: %s", strerror(errno));
        if (got == 0)
            return mig_analyze_buffer("", 0, doc, at, errp);
        void *p = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
                             : MAP_FAILED;
        if (p != MAP_FAILED) {
            int r = mig_analyze_buffer(p, (size_t)st.st_size, doc, at, errp);
            munmap(p, (size_t)st.st_size);
            return r;
        }
        /* empty, or not mappable (some special file systems): read it as a stream */
    }
    BlockingIn in = {.t = {.ops = &bin_ops}, .fd = fd};
    MigStream *s = mig_stream_new_reader(&in.t);
    MigErr *err = NULL;
    int r = mig_analyze_stream(s, doc, at, &err);
    mig_stream_free(s);
    if (in.read_err) {
        /* Not a verdict on the stream: report the input, print no facts. */
        mig_err_free(err);
        json_decref(*doc);
        *doc = NULL;
        return mig_err_set(errp, in.read_err, "cannot read at offset %llu: %s",
                           (unsigned long long)in.t.bytes_read, strerror(-in.read_err));
    }
    mig_err_propagate(errp, err);
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
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "migcert analyze: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "migcert analyze: more than one FILE given\n");
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(STDIN_FILENO);
    if (fd < 0) {
        fprintf(stderr, "migcert analyze: %s: cannot read: %s\n", path, strerror(errno));
        return 2;
    }
    json_t *doc = NULL;
    MigErr *err = NULL;
    uint64_t at = 0;
    int r = analyze_fd(fd, &doc, &at, &err);
    close(fd);
    if (doc) {
        if (as_json)
            analyze_print_json(stdout, doc);
        else
            analyze_print_text(stdout, doc);
        fflush(stdout);
    }
    const char *msg = err ? err->msg : "malformed stream";
    if (r < 0 && doc)
        fprintf(stderr, "migcert analyze: %s: offset %llu: %s\n", path, (unsigned long long)at,
                msg);
    else if (r < 0)
        fprintf(stderr, "migcert analyze: %s: %s\n", path, msg);
    mig_err_free(err);
    json_decref(doc);
    if (r == 0)
        return 0;
    /* too large, or not readable: not a verdict on the stream */
    return !doc || r == -EFBIG ? 2 : 1;
}
