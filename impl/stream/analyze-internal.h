/*
 * analyze-internal.h - the analyzer's pass state, shared by its files.  Not
 * for other modules (the public interface is analyze.h).
 *
 *   analyze.c          the pass: header, configuration, sections, RAM,
 *                      commands, the trailer, the document; the helpers below
 *   analyze-vmstate.c  FULL (vmstate) device sections decoded with the field
 *                      lists of the VMDESCRIPTION trailer, and what to say
 *                      when no trailer ends the input
 *   analyze-devices.c  VFIO-style device sections walked record by record
 *                      (impl/stream/dev-format.h)
 *
 * Invariants: every wire item records its start in `item` before it is
 * read, so a failure names the item that could not be accepted; names from
 * the wire are escaped (mig_stream_escape, MIG_AN_ESC) before they reach a
 * message, the JSON or the text.
 */
#ifndef MIGCERT_ANALYZE_INTERNAL_H
#define MIGCERT_ANALYZE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "analyze.h"
#include "dev-format.h"
#include "ram-format.h"
#include "stream.h"

/* An iterative section seen in a START (RAM or a device in the record
 * format). */
typedef struct MigAnalyzeStarted {
    uint32_t id;
    char name[256];
    uint32_t instance;
    uint32_t version;
    bool ended; /* its END section was parsed */
    /* A device section in the payload-record format (analyze-devices.c):
     * its entry in "device_sections" (owned by the document) and what was
     * seen. */
    json_t *dev;
    bool setup, complete;
    uint64_t nrec[MIG_DEV_REC__COUNT], precopy_bytes, stopcopy_bytes;
} MigAnalyzeStarted;

typedef struct MigAnalyzePageCounts {
    uint64_t normal, zero, other;
} MigAnalyzePageCounts;

typedef struct MigAnalyzeCtx {
    MigStream *s;      /* the reader: the caller's, then the one over `tail` */
    bool streaming;    /* the caller's stream, whose length is unknown */
    /* The input from end_base to its end, once known: the caller's buffer,
     * or `tail` read ahead from a stream. */
    const uint8_t *end_buf;
    size_t end_len;
    uint64_t end_base;
    bool have_end;
    uint8_t *tail;       /* owned */
    MigStream *tail_s;   /* owned reader over tail */
    uint64_t item; /* start of the wire item being read */
    json_t *doc, *sections, *devices, *commands, *dev_sections;

    MigRamReader ram;
    MigAnalyzePageCounts *counts; /* per ram.blocks entry */
    uint64_t ram_records, ram_hooks, ram_flushes;

    MigAnalyzeStarted *started; /* in START order */
    size_t nstarted, started_cap;
    /* section id -> started index + 1 (0: empty), open addressing, at
     * most half full: finding a section costs the same for the 100,000th
     * as for the first */
    uint32_t *started_slot;
    size_t started_nslot; /* a power of two, or 0 */
    uint64_t nitems;      /* sections and commands so far (MIG_ANALYZE_MAX_SECTIONS) */
    int footers; /* -1 not known yet, 0 stream has none, 1 every section has one */

    uint64_t budget; /* field elements left to decode (damaged array_len) */
    json_t *vmdesc;  /* parsed trailer or NULL */
    char *vmdesc_problem;
    bool vmdesc_missing; /* no trailer ends the input (vmdesc_problem says so) */
    bool located; /* the error names its own section: add no section context */
    size_t vmdesc_at, vmdesc_len;
} MigAnalyzeCtx;

/* A wire name escaped into a caller's buffer, for messages. */
#define MIG_AN_ESC(name, buf) mig_stream_escape((name), strlen(name), (buf), sizeof(buf))

/* ---- analyze.c ---- */
/* Set the reader's sticky error "<fmt> at offset <c->item>" and return it
 * (as mig_stream_take_error). */
int mig__analyze_fail(MigAnalyzeCtx *c, MigErr **errp, int err, const char *fmt, ...)
    MIG_PRINTF(4, 5);
/* The reader's sticky error, if any (a starved reader becomes -EAGAIN),
 * as this call's result. */
int mig__analyze_check(MigAnalyzeCtx *c, MigErr **errp);
/* A u64 as a JSON integer, or a "0x..." string above INT64_MAX. */
json_t *mig__analyze_json_u64(uint64_t v);
/* A name from the wire as an escaped JSON string. */
json_t *mig__analyze_json_str(const char *s);
/* Have the input's end in memory (end_buf), reading it from a stream at
 * the first device section, and locate the trailer in it. */
int mig__analyze_read_end(MigAnalyzeCtx *c, MigErr **errp);

/* ---- analyze-vmstate.c ---- */
/* The payload of FULL section h, decoded into a "devices" entry. */
int mig__analyze_parse_device(MigAnalyzeCtx *c, const MigSectionHeader *h, MigErr **errp);

/* ---- analyze-devices.c ---- */
/* Whether the START/PART/END payload h of section st is in the device
 * record format: st already is such a section, or h is its START and opens
 * with SETUP (or ends right after its header: a cut reported as such). */
bool mig__analyze_is_devrec(MigAnalyzeCtx *c, const MigSectionHeader *h,
                            const MigAnalyzeStarted *st);
/* One START/PART/END payload of device section st, up to and including
 * its EOS; st's "device_sections" entry is made at the first. */
int mig__analyze_parse_devrec(MigAnalyzeCtx *c, const MigSectionHeader *h,
                              MigAnalyzeStarted *st, MigErr **errp);

#endif
