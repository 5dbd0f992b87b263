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
 * "file_size", "device_sections" and, after a failure, "error" {"offset",
 * "message"}.
 *
 * "device_sections": one entry per VFIO-style device section, the
 * iterative sections in the payload-record format of
 * impl/stream/dev-format.h (recognised by a START payload that opens
 * with SETUP): {"name", "instance_id", "version", "section_id", "offset"
 * (its START), "format" (SETUP's), "records" {"SETUP", "DATA", "COMPLETE",
 * "EOS"}, "precopy_bytes" (DATA bytes in START/PART), "stopcopy_bytes"
 * (DATA bytes in END), "complete" (COMPLETE seen)}.  Such payloads are
 * walked record by record, so they need no trailer; a record that is cut,
 * unknown, of a bad length or in the wrong section is an error naming the
 * record and its offset (harness/pytest/test_analyze_ours.py).  Other
 * iterative sections than RAM and these cannot be skipped.
 * Called by: harness/runner/cmd-analyze.c (which also prints the document:
 * harness/runner/analyze-print.h), tests.  The pass is split over
 * analyze*.c (analyze-internal.h).
 *
 * Why the trailer is needed: a device payload (FULL section) carries no
 * length; only its field list says where it ends.  QEMU appends that list
 * (VMDESCRIPTION JSON) after EOF, so the analyzer finds it from the end of
 * the buffer first (0x06, be32 len, JSON up to the last byte), then parses
 * from the start; from a pipe it reads the input's end into memory when the
 * first device section comes (mig_analyze_stream).  Without a usable trailer a device section cannot be
 * skipped, and the analysis stops there with an error rather than guess.
 * When no trailer ends the input at all, the section footers (0x7e + be32
 * id) are followed to the end to tell a cut input from one written
 * without a trailer: "truncated: stream ended at offset N inside section
 * 'x' (id i)" (or after a section, in a header, in the trailer) at the
 * start of the incomplete item; only a stream that ends with its EOF
 * marker, or whose footers cannot be followed, gets "no VMDESCRIPTION
 * trailer ... (input ends at offset N: truncated, or written without
 * one)" against the first device section.
 *
 * The analyzer never reads past the buffer and never aborts on input: every
 * malformation becomes an error naming the problem, the section and the
 * offset.
 */
#ifndef MIGCERT_ANALYZE_H
#define MIGCERT_ANALYZE_H

#include <stdint.h>

#include <jansson.h>

#include "../common/common.h"
#include "stream.h"

/* Inputs larger than this are refused (-EFBIG) rather than read: 64 GiB,
 * over a hundred times the 539 MB stream of a QEMU 7.2 guest with 1 GiB of
 * RAM, 512 MiB of it written (docs/protocol-qemu-stream.md section 17), so
 * any real guest fits, while a runaway input (a device, a pipe that never
 * ends) stops with a clear error. */
#define MIG_ANALYZE_MAX_INPUT (64ull << 30)
/* From a stream (pipe): the most kept in memory of the input from its first
 * device section to its end (device sections, EOF, trailer; ~100 KB for
 * QEMU's pc machine, and the trailer alone may be MIG_STREAM_VMDESC_MAX).
 * More is -EFBIG: analyze a regular file instead. */
#define MIG_ANALYZE_TAIL_MAX (256u << 20)

/* The most sections and commands one input may have (each costs ~1.1 KB
 * of the document: at most ~280 MB).  QEMU writes one RAM PART section
 * per iteration, ~10-20 a second of migration: 250,000 is hours of
 * migration.  And the most distinct iterative sections (START ids): QEMU
 * numbers one per registered handler (RAM, block, VFIO devices: a few
 * hundred at most).  Past either: -E2BIG naming the limit (docs/limits.md). */
#define MIG_ANALYZE_MAX_SECTIONS 250000u
#define MIG_ANALYZE_MAX_STARTED 10000u

/* Analyze buf[0..len).  Returns 0 when the stream parsed through its EOF
 * marker (and the trailer, when present), else a negative errno with *errp
 * set ("section 'ram' (id 2): Illegal RAM offset ... at offset N") and
 * *err_offset (may be NULL) the start of the wire item that could not be
 * accepted.  *doc always receives what was found (caller json_decref()s it);
 * doc may be NULL when only the verdict matters. */
int mig_analyze_buffer(const void *buf, size_t len, json_t **doc, uint64_t *err_offset,
                       MigErr **errp);

/* The same over a reader whose length is not known (a pipe, a character
 * device): RAM sections are parsed as they arrive (memory stays at the
 * stream's buffer), the rest is read into memory at the first device
 * section (at most MIG_ANALYZE_TAIL_MAX bytes).  `s` must block when it has
 * nothing yet (a starved stream is an error, -EAGAIN); the caller still
 * owns and frees it.  Input past MIG_ANALYZE_MAX_INPUT, or a tail past
 * MIG_ANALYZE_TAIL_MAX, is -EFBIG.  "file_size" is null unless the end was
 * reached.  Garbage stops at once: /dev/zero fails on its magic at offset 0. */
int mig_analyze_stream(MigStream *s, json_t **doc, uint64_t *err_offset, MigErr **errp);

#endif
