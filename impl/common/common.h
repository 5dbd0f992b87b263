/*
 * common.h - errors, small helpers and the fault-point include shared by every
 * engine module.
 *
 * Owns: MigErr (the human-readable error chain of docs/style.md section 3);
 * brings in the fault-point registry (faults.h) that engine code injects
 * through.
 * Called by: every module of impl/, the harness and the fakes.
 * Invariants: an action returns 0 or a negative errno; where a person must
 * read why, its last parameter is `MigErr **errp`.  NULL errp means the caller
 * does not care; the first error set wins; context is prepended on the way up.
 */
#ifndef MIGCERT_COMMON_H
#define MIGCERT_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "faults.h"

#define MIG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* MIG_MIN/MIG_MAX evaluate an argument twice: no side effects in them. */
#define MIG_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MIG_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MIG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MIG_UNUSED __attribute__((unused))
/* The struct of type `type` whose member `member` is at `ptr`. */
#define MIG_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct MigErr {
    int code;  /* negative errno */
    char *msg; /* one phrase, no trailing period */
} MigErr;

/* Set *errp to a new error unless errp is NULL or *errp is already set (first
 * error wins).  Returns `code` so callers can `return mig_err_set(...)`. */
int mig_err_set(MigErr **errp, int code, const char *fmt, ...) MIG_PRINTF(3, 4);

/* Prepend "context: " to an existing error (no-op when errp or *errp is NULL). */
void mig_err_prepend(MigErr **errp, const char *fmt, ...) MIG_PRINTF(2, 3);

/* Move `src` into *errp if it is empty, else free src.  Returns src's code, or
 * 0 when src is NULL. */
int mig_err_propagate(MigErr **errp, MigErr *src);

void mig_err_free(MigErr *err);

/* Short text for a negative errno as used in the project (e.g. "EIO"). */
const char *mig_errno_name(int negerr);
/* Parse "EIO" (or "-5") back to a negative errno; 0 if unknown. */
int mig_errno_parse(const char *name);

/* Checked allocation helpers: abort on out-of-memory is a programmer/host
 * condition, never an input condition. */
void *mig_malloc0(size_t n);
void *mig_realloc(void *p, size_t n);
char *mig_strdup(const char *s);
char *mig_strdup_printf(const char *fmt, ...) MIG_PRINTF(1, 2);
char *mig_strdup_vprintf(const char *fmt, va_list ap) MIG_PRINTF(1, 0);

#endif
