/*
 * run-progress.h - what `migcert run` shows on stderr while its cases run
 * (cmd-run.c is the only caller).
 *
 * On a terminal: one line, rewritten in place after every case ("cases
 * done/total, failures so far, elapsed, remaining"), and a failing case's
 * own line printed above it so it stays on screen.  Not a terminal (a CI
 * log, a pipe): one plain line per case, as before, nothing rewritten.
 * Either way the lane ends with one summary line (run_progress_end).
 *
 * Invariant: the wall clock read here only feeds what a person sees; it
 * never reaches a case, its trace or any result file (docs/determinism.md).
 * MIGCERT_PROGRESS=tty|plain forces a mode (tests drive the terminal mode
 * through a pipe that way).
 */
#ifndef MIGCERT_RUN_PROGRESS_H
#define MIGCERT_RUN_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct RunProgress {
    FILE *out;
    bool tty;          /* rewrite one line in place */
    size_t done, total; /* total 0: unknown (sweeps add cases as they go) */
    size_t failed;
    int64_t start_ms;
    bool line_open;     /* a progress line is on screen without its newline */
} RunProgress;

/* Starts counting; total may be 0 when not known in advance. */
void run_progress_init(RunProgress *p, FILE *out, size_t total);

/* One case finished; `line` is its plain line (no newline), printed as is
 * when not on a terminal, and on a terminal above the progress line when
 * the case failed. */
void run_progress_case(RunProgress *p, bool failed, const char *line);

/* The lane's one summary line: "migcert run: N case(s), N passed, N
 * failed in Xs" (on a terminal it replaces the progress line). */
void run_progress_end(RunProgress *p);

#endif
