/*
 * analyze-print.h - what `migcert analyze` prints: the analyzer's document
 * (impl/stream/analyze.h) as text, or as the JSON of `--json`.
 *
 * Owns: the rendering only; the document's keys are the analyzer's
 * contract.  Called by: harness/runner/cmd-analyze.c and the analyzer's
 * unit tests (harness/unit/test-stream.c).  The output is a user's
 * interface: harness/pytest/test_analyze_*.py read it.
 */
#ifndef MIGCERT_ANALYZE_PRINT_H
#define MIGCERT_ANALYZE_PRINT_H

#include <stdio.h>

#include <jansson.h>

/* Human-readable rendering of a document from mig_analyze_buffer or
 * mig_analyze_stream (wire names in it are already escaped). */
void analyze_print_text(FILE *out, const json_t *doc);
/* The document as `--json` prints it: indented by one, keys in the
 * analyzer's order, a newline after. */
void analyze_print_json(FILE *out, const json_t *doc);

#endif
