/*
 * trace.h - the event trace of a run.
 *
 * Owns: MigTrace, an append-only record of what happened (state arcs, faults,
 * sections sent, steps), folded into a running SHA-256 so that two runs can be
 * compared by one hash.  Optionally echoes lines to a FILE for humans.
 * Invariants: a trace line never contains a pointer value or wall-clock time;
 * that is what makes the hash reproducible from the seed.
 */
#ifndef MIGCERT_TRACE_H
#define MIGCERT_TRACE_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"

typedef struct MigTrace MigTrace;

MigTrace *mig_trace_new(void);
void mig_trace_free(MigTrace *t);
/* Echo every line to `out` (NULL stops echoing). */
void mig_trace_set_echo(MigTrace *t, FILE *out);
/* Append one line "t=<now_ns> <who>: <text>". t may be NULL (then nothing). */
void mig_trace_log(MigTrace *t, uint64_t now_ns, const char *who, const char *fmt, ...)
    MIG_PRINTF(4, 5);
/* The same as mig_trace_log(t, now_ns, who, "%s %s serial %llu size %u",
 * verb, name, serial, size), without printf: one line per SPICE message. */
void mig_trace_msg(MigTrace *t, uint64_t now_ns, const char *who, const char *verb, const char *name,
                   uint64_t serial, uint32_t size);
uint64_t mig_trace_count(const MigTrace *t);
/* Hex SHA-256 of every line so far (65 bytes with NUL). */
void mig_trace_hash(const MigTrace *t, char out[65]);

#endif
