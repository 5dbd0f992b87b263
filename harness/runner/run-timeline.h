/*
 * run-timeline.h - a case's event trace cut down to what a person reads on
 * a time axis: the "timeline" of each case in `migcert run --json`
 * (cmd-run.c calls it; harness/report/ draws it, docs/report.md).
 *
 * The trace is the text the executor echoes, one event a line:
 * "t=NS WHO: WHAT".  Kept: every event except the SPICE channels' ordinary
 * message traffic ("send|recv NAME serial ..."); of those only the ones
 * whose NAME says MIGRATE or SWITCH (the migration handshake the client
 * sees).  At most RUN_TIMELINE_MAX events: past that the first ones and the
 * last ones are kept with one "N event(s) left out" event between them, so
 * the outcome at the end is always there.
 *
 * Also the SPICE oracle's verdict per channel (run_spice_verdicts_json),
 * beside the channel names, in the same spelling.
 *
 * Invariant: a pure function of the trace text (the JSON of two runs of a
 * case is the same when their traces are), and of the RunResult.
 */
#ifndef MIGCERT_RUN_TIMELINE_H
#define MIGCERT_RUN_TIMELINE_H

#include <jansson.h>
#include <stddef.h>

#include "exec.h"

#define RUN_TIMELINE_MAX 300

/* [[t_ns, "who", "what"], ...]; *channels gets the SPICE channel names the
 * source linked ("MAIN", "DISPLAY", "DISPLAY:1", ...; sorted, no repeats),
 * an empty array without SPICE. */
json_t *run_timeline_json(const char *trace, size_t len, json_t **channels);

/* {"MAIN": "passed", "PORT": "failed", ...}: r->spice by channel name (an
 * empty object when the SPICE oracle gave none); *errors gets the failed
 * or not judged channels' reasons, by name. */
json_t *run_spice_verdicts_json(const RunResult *r, json_t **errors);

#endif
