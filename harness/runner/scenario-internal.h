/*
 * scenario-internal.h - shared by the scenario loader's files only
 * (scenario.c, scenario-values.c, scenario-lines.c, scenario-schema.c,
 * scenario-steps.c); everyone else includes scenario.h.
 *
 * Loading: scenario.c builds the line index (scenario-lines.c), loads the
 * raw form with libcyaml (scenario-schema.c), then checks and converts it
 * (scenario.c, scenario-steps.c with the parsers of scenario-values.c).
 * Every error is one `FILE:LINE: key 'K': ...` set through MigErr; nothing
 * is half-built.
 */
#ifndef MIGCERT_RUNNER_SCENARIO_INTERNAL_H
#define MIGCERT_RUNNER_SCENARIO_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "scenario.h"

/* Bounded copy that always terminates (truncation is fine for messages). */
static inline void scn__scopy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---- line index (scenario-lines.c) ---- */

typedef struct LineEntry {
    char *path; /* "machines.src.ram", "steps[2].wait.phase", "faults[0]" */
    int line;   /* 1-based */
} LineEntry;

/* Entries in file order, and an open-addressing hash over them (slot:
 * entry index + 1, 0 empty; at most half full) so that a lookup costs the
 * same for the 20,000th step as for the first: loading is linear. */
typedef struct LineIndex {
    LineEntry *e;
    size_t n, cap;
    uint32_t *slot;
    size_t nslot; /* a power of two, or 0 */
} LineIndex;

/* Build the index of `data` (name for errors): 0, or -EINVAL with the
 * YAML syntax error at its line. */
int scn__index_build(LineIndex *ix, const char *name, const char *data, size_t len,
                     MigErr **errp);
void scn__index_free(LineIndex *ix);
/* The line of key path `path`, 0 when the file does not have it. */
int scn__index_line(const LineIndex *ix, const char *path);

/* ---- raw form (scenario-schema.c) ---- */

/* ---- libcyaml schema (raw form: strings, checked afterwards) ---- */

typedef struct RawMachine {
    char *release;
    char *machine;
    char *ram;
    char **devices;
    uint32_t devices_count;
    char *fill;
    char **capabilities;
    uint32_t capabilities_count;
} RawMachine;

typedef struct RawMachines {
    RawMachine *src;
    RawMachine *dst;
} RawMachines;

typedef struct RawWorkload {
    char *dirty_rate;
} RawWorkload;

typedef struct RawLink {
    char *bandwidth;
    char *latency;
} RawLink;

typedef struct RawParams {
    char *max_bandwidth;
    char *downtime_limit;
    uint32_t max_passes;
} RawParams;

typedef struct RawEmpty {
    int unused;
} RawEmpty;

typedef struct RawWait {
    char *phase;
    char *device_state;
    uint32_t iteration;
    char *ram_progress;
    char *time;
    char *bytes;
} RawWait;

typedef struct RawSide {
    char *side;
    char *device;
    char *state;
} RawSide;

typedef struct RawDrop {
    char *at_byte;
    char *device_data;
    char *device_state;
} RawDrop;

typedef struct RawSlow {
    char *bandwidth;
    char *latency;
} RawSlow;

typedef struct RawMigInfo {
    char *wait;
} RawMigInfo;

typedef struct RawClientStep {
    char *disconnect;
    char *send;
    char *drop;
    char *partition;
    char *heal;
    char *slow;
    char *bandwidth;
    char *latency;
} RawClientStep;

typedef struct RawStep {
    RawEmpty *migrate;
    RawWait *wait;
    RawEmpty *cancel;
    RawSide *kill;
    RawSide *restart;
    RawDrop *drop;
    RawEmpty *partition;
    RawEmpty *heal;
    RawSlow *slow;
    RawSide *device_error;
    RawMigInfo *client_migrate_info;
    RawClientStep *client;
} RawStep;

typedef struct RawExpect {
    int outcome;
    char *error;
    char *error_contains;
    char *trace_contains;
    char *trace_excludes;
    char *client;
    char *client_migration;
    char *client_error;
    char *client_channel_lost;
} RawExpect;

typedef struct RawSpice {
    char *password;
    char *migrate_timeout;
    char *migrate_info;
    char *display;
    char *heads;
    char *pixmap_cache_migration;
    char *image_compression;
    char *vmc_rate;
    char *semi_seamless;
    char *seamless;
    char *migration_version_src;
    char *migration_version_dst;
    char *migrate_data_timeout;
    char *target_client;
} RawSpice;

typedef struct RawClient {
    char *present;
    char *old;
    char *pixmap_cache;
    char *vmc_rate;
    RawLink *link;
    char *password;
    char *target;
    char *target_delay;
    char *disconnect_at;
    char *disconnect_at_message;
    char *migrate_end_delay;
    char *flush_mark_delay;
    char *blob;
    char *blob_channel;
    char *seamless;
} RawClient;

typedef struct RawScenario {
    char *summary;
    RawMachines *machines;
    RawWorkload *workload;
    char *transport;
    RawLink *link;
    char **capabilities;
    uint32_t capabilities_count;
    char **requires;
    uint32_t requires_count;
    RawParams *parameters;
    RawStep *steps;
    uint32_t steps_count;
    char **faults;
    uint32_t faults_count;
    char *timeout;
    char *preflight;
    char *return_path;
    RawSpice *spice;
    RawClient *client;
    RawExpect *expect;
} RawScenario;

/* Load `yaml` against the schema: 0 and *out (NULL for an empty file), or
 * -EINVAL with `FILE:LINE: key 'K': reason`. */
int scn__raw_load(const char *name, const LineIndex *ix, const char *yaml, size_t len,
                  RawScenario **out, MigErr **errp);
void scn__raw_free(RawScenario *raw);

/* ---- checks on the raw form (scenario.c, scenario-steps.c) ---- */

typedef struct Ctx {
    const char *name;
    const LineIndex *ix;
    MigErr **errp;
} Ctx;

/* Fail with "FILE:LINE: key 'K': MSG", K the last component of `path`. */
int scn__bad(Ctx *c, const char *path, const char *fmt, ...) MIG_PRINTF(3, 4);
/* A value parser's failure rc (scenario-values.c) for `text` at `path`:
 * -ERANGE is "FILE:LINE: key 'K': 'TEXT' is out of range (LIMIT,
 * docs/limits.md)", anything else the caller's own message. */
int scn__bad_value(Ctx *c, const char *path, int rc, const char *text, const char *limit,
                   const char *fmt, ...) MIG_PRINTF(6, 7);
#define SCN_LIMIT_RATE "at most 100000 pages/s"
#define SCN_LIMIT_BANDWIDTH "from 1/s to 1024G/s (1T/s), or unlimited"
#define SCN_LIMIT_DURATION "at most 60min of virtual time"

/* "FILE:LINE: key 'capabilities[i]': unknown capability 'x' (known: ...)" */
int scn__bad_cap(Ctx *c, const char *path, uint32_t i, const char *name);
char **scn__dup_strv(char **v, uint32_t n);
void scn__free_strv(char **v, size_t n);
/* Check steps[i] into *st: 0 or the error (scn__bad). */
int scn__check_step(Ctx *c, size_t i, const RawStep *r, ScnStep *st);
/* The SPICE steps (client-migrate-info, client): 0 or the error. */
int scn__check_spice_step(Ctx *c, const char *base, const RawStep *r, ScnStep *st);
/* `spice:`, `client:` and the client's expectations (scenario-spice.c). */
int scn__check_spice(Ctx *c, const RawScenario *r, Scenario *s);
/* "true" / "false" into *out, else the error at `path`. */
int scn__bool(Ctx *c, const char *path, const char *v, bool *out);
/* The index of `v` in names[0..n), or the error at `path` listing them. */
int scn__enum(Ctx *c, const char *path, const char *v, const char *const *names, int n, int *out);

#endif
