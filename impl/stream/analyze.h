/*
 * analyze.h - explain a whole migration stream (ours or QEMU 7.2's): header,
 * configuration, every section with its size, RAM blocks with page counts,
 * commands, the VMDESCRIPTION trailer, and each device's fields decoded with
 * the help of that trailer.
 *
 * Owns: nothing but the parse; the result is one jansson document whose keys
 * are the contract of `migcert analyze --json` (harness/pytest/
 * test_analyze_qemu.py): "config", "sections", "ram_blocks", "complete",
 * plus "header", "devices", "commands", "vmdescription", "eof_offset",
 * "file_size" and, after a failure, "error" {"offset", "message"}.
 * Called by: harness/runner/cmd-analyze.c, tests.
 *
 * Why the trailer is needed: a device payload (FULL section) carries no
 * length; only its field list says where it ends.  QEMU appends that list
 * (VMDESCRIPTION JSON) after EOF, so the analyzer finds it from the end of
 * the buffer first (0x06, be32 len, JSON up to the last byte), then parses
 * from the start.  Without a usable trailer a device section cannot be
 * skipped, and the analysis stops there with an error rather than guess.
 *
 * The analyzer never reads past the buffer and never aborts on input: every
 * malformation becomes an error naming the problem, the section and the
 * offset.
 */
#ifndef MIGCERT_ANALYZE_H
#define MIGCERT_ANALYZE_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "../common/common.h"

/* Analyze buf[0..len).  Returns 0 when the stream parsed through its EOF
 * marker (and the trailer, when present), else a negative errno with *errp
 * set ("section 2 (ram): Illegal RAM offset ... at offset N") and
 * *err_offset (may be NULL) the start of the wire item that could not be
 * accepted.  *doc always receives what was found (caller json_decref()s it);
 * doc may be NULL when only the verdict matters. */
int mig_analyze_buffer(const void *buf, size_t len, json_t **doc, uint64_t *err_offset,
                       MigErr **errp);

/* Human-readable rendering of a document from mig_analyze_buffer. */
void mig_analyze_print_text(FILE *out, const json_t *doc);

#endif
