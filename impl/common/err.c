/*
 * err.c - MigErr and the checked allocation helpers (see common.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        fprintf(stderr, "migcert: out of memory\n");
        exit(70);
    }
    return s;
}

int mig_err_set(MigErr **errp, int code, const char *fmt, ...)
{
    if (!errp || *errp)
        return code;
    MigErr *e = mig_malloc0(sizeof(*e));
    va_list ap;
    va_start(ap, fmt);
    e->msg = vformat(fmt, ap);
    va_end(ap);
    e->code = code;
    *errp = e;
    return code;
}

void mig_err_prepend(MigErr **errp, const char *fmt, ...)
{
    if (!errp || !*errp)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = vformat(fmt, ap);
    va_end(ap);
    char *joined = mig_strdup_printf("%s: %s", ctx, (*errp)->msg);
    free(ctx);
    free((*errp)->msg);
    (*errp)->msg = joined;
}

int mig_err_propagate(MigErr **errp, MigErr *src)
{
    if (!src)
        return 0;
    int code = src->code;
    if (errp && !*errp)
        *errp = src;
    else
        mig_err_free(src);
    return code;
}

void mig_err_free(MigErr *err)
{
    if (!err)
        return;
    free(err->msg);
    free(err);
}

/*
 * Every errno the project returns or passes through from a system call, by
 * name: the codes of docs/style.md section 3, the transport's and the file
 * system's (open, connect, bind, splice, exec of a vendor plugin), and the
 * step limit's ELOOP.  A pytest (test_errno_names.py) fails when code names
 * an errno missing here.  Where Linux gives two names one value
 * (EWOULDBLOCK = EAGAIN, EOPNOTSUPP = ENOTSUP, EDEADLOCK = EDEADLK) the first
 * one listed is the one printed; ERRNO_ALIASES are accepted on input only.
 */
#define ERRNO_NAMES(X)                                                                            \
    X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF)             \
    X(ECHILD) X(EAGAIN) X(ENOMEM) X(EACCES) X(EFAULT) X(EBUSY) X(EEXIST) X(EXDEV) X(ENODEV)       \
    X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE) X(EMFILE) X(ENOTTY) X(ETXTBSY) X(EFBIG)              \
    X(ENOSPC) X(ESPIPE) X(EROFS) X(EMLINK) X(EPIPE) X(EDOM) X(ERANGE) X(EDEADLK)                  \
    X(ENAMETOOLONG) X(ENOLCK) X(ENOSYS) X(ENOTEMPTY) X(ELOOP) X(ENOMSG) X(ENODATA) X(ETIME)       \
    X(EPROTO) X(EBADMSG) X(EOVERFLOW) X(EILSEQ) X(ENOTSOCK) X(EDESTADDRREQ) X(EMSGSIZE)           \
    X(EPROTOTYPE) X(ENOPROTOOPT) X(EPROTONOSUPPORT) X(ENOTSUP) X(EAFNOSUPPORT)                    \
    X(EADDRINUSE) X(EADDRNOTAVAIL) X(ENETDOWN) X(ENETUNREACH) X(ENETRESET) X(ECONNABORTED)        \
    X(ECONNRESET) X(ENOBUFS) X(EISCONN) X(ENOTCONN) X(ESHUTDOWN) X(ETIMEDOUT)                     \
    X(ECONNREFUSED) X(EHOSTDOWN) X(EHOSTUNREACH) X(EALREADY) X(EINPROGRESS) X(ESTALE)             \
    X(EDQUOT) X(ECANCELED) X(EUSERS)

#define ERRNO_ALIASES(X) X(EWOULDBLOCK) X(EOPNOTSUPP) X(EDEADLOCK)

static const struct {
    int err;
    const char *name;
} errno_names[] = {
#define X(e) {e, #e},
    ERRNO_NAMES(X) ERRNO_ALIASES(X)
#undef X
};

const char *mig_errno_name(int negerr)
{
    int e = negerr < 0 ? -negerr : negerr;
    if (e == 0)
        return "OK";
    for (size_t i = 0; i < MIG_ARRAY_SIZE(errno_names); i++)
        if (errno_names[i].err == e)
            return errno_names[i].name;
    return "EUNKNOWN";
}

int mig_errno_parse(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(errno_names); i++)
        if (strcmp(errno_names[i].name, name) == 0)
            return -errno_names[i].err;
    char *end;
    long v = strtol(name, &end, 10);
    if (*name && !*end && v != 0)
        return v < 0 ? (int)v : (int)-v;
    return 0;
}

void *mig_malloc0(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "migcert: out of memory (%zu bytes)\n", n);
        exit(70);
    }
    return p;
}

void *mig_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "migcert: out of memory (%zu bytes)\n", n);
        exit(70);
    }
    return q;
}

char *mig_strdup(const char *s)
{
    return s ? strcpy(mig_malloc0(strlen(s) + 1), s) : NULL;
}

char *mig_strdup_vprintf(const char *fmt, va_list ap)
{
    return vformat(fmt, ap);
}

char *mig_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}
