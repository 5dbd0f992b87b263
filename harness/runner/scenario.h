/*
 * scenario.h - scenario files: one simulated migration run per YAML file
 * (scenarios/<area>/<name>.yaml, every key documented in scenarios/README.md).
 *
 * Owns: Scenario (the validated, defaulted form of one file) and its loader.
 * Called by: the executor (harness/runner/exec*.c), `migcert run`,
 * `migcert list-faults --unreached`, harness/unit/test-scenario.c.
 *
 * Loading is two passes over the file:
 *   1. libcyaml against the schema in scenario-schema.c (cyaml_schema_value_t):
 *      unknown keys, wrong types and bad enum values are rejected there; its
 *      log callback is captured so the error names the innermost key;
 *   2. libyaml events build a key -> line index, so that every error the user
 *      sees reads `FILE:LINE: key 'K': what was wrong`, both for libcyaml's
 *      errors and for the values this module checks itself (sizes, rates,
 *      durations, releases, fault specs).
 * A file that fails to load yields NULL and one error; nothing is half-built.
 *
 * Invariants of a loaded Scenario: every value has been checked (release
 * names exist, sizes parsed, steps have exactly one action, fault specs
 * parse); dst fields left out of the file were copied from src.
 */
#ifndef MIGCERT_RUNNER_SCENARIO_H
#define MIGCERT_RUNNER_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "faults-spec.h"

typedef struct ScnMachine {
    char release[16];  /* "1.0" "1.1" "2.0" "2.1-dev" */
    char machine[32];  /* "mc-1.1"; "" = the release's newest; "match-dst" */
    uint64_t ram;      /* bytes */
    char **devices;    /* device type names, e.g. "fake-nic" */
    size_t ndevices;
    bool fill_zero;    /* initial guest RAM: zero pages instead of random */
    char **caps_only;  /* capabilities set on this side only (management bug) */
    size_t ncaps_only;
} ScnMachine;

typedef enum ScnStepKind {
    SCN_STEP_MIGRATE,      /* start the migration (src -> dst) */
    SCN_STEP_WAIT,         /* block until a condition holds */
    SCN_STEP_CANCEL,       /* migrate_cancel on the source */
    SCN_STEP_KILL,         /* a side's process dies (no cleanup, fds close) */
    SCN_STEP_RESTART,      /* a killed destination comes back, empty, incoming */
    SCN_STEP_DROP,         /* the link drops now or at a byte count */
    SCN_STEP_PARTITION,    /* bytes stop flowing, nothing errors */
    SCN_STEP_HEAL,         /* a partition ends */
    SCN_STEP_SLOW,         /* change link bandwidth / latency */
    SCN_STEP_DEVICE_ERROR, /* a device of a side enters ERROR */
    SCN_STEP__COUNT
} ScnStepKind;
extern const char *const scn_step_names[SCN_STEP__COUNT];

typedef struct ScnStep {
    ScnStepKind kind;
    int line;        /* line of the step in the file */
    MigFaultSide side;     /* kill, restart, device-error */
    char device[32];       /* device-error */
    /* wait: every given condition must hold (AND) */
    bool has_phase;
    ScnPhase phase;
    uint32_t iteration;    /* wait: pre-copy pass number (0 = any) */
    int ram_progress;      /* wait: percent of RAM sent, -1 = not given */
    uint64_t time_ns;      /* wait: virtual time since the step started */
    uint64_t bytes;        /* wait: link bytes; drop: at-byte (0 = now) */
    bool has_device_state; /* wait: the source's VFIO-style device is in */
    int device_state;      /*   this MigDevState (e.g. STOP_COPY); device-error:
                              fail as it enters this state, -1 = now; drop with
                              device-data: whose data (PRE_COPY or STOP_COPY),
                              -1 = the saving state the device is in when the
                              step runs, else the next one it sends data in */
    int device_data;       /* drop: percent (0..100) of the source fake-gpu's
                              data of that state, -1 = not given */
    /* slow */
    uint64_t bandwidth;    /* bytes/s, 0 = unchanged */
    uint64_t latency_ns;
    bool has_latency;
} ScnStep;

typedef enum ScnOutcome {
    SCN_OUTCOME_COMPLETED,
    SCN_OUTCOME_FAILED,
    SCN_OUTCOME_CANCELLED,
    SCN_OUTCOME__COUNT
} ScnOutcome;
extern const char *const scn_outcome_names[SCN_OUTCOME__COUNT];

typedef struct Scenario {
    char *path;            /* as given */
    char *summary;
    ScnMachine src, dst;
    uint64_t dirty_rate;   /* pages per second of virtual time */
    char transport[8];     /* unix fd file local mem */
    uint64_t bandwidth;    /* link, bytes/s (0 = unlimited) */
    uint64_t latency_ns;
    char **caps;           /* management intersects, sets on both */
    size_t ncaps;
    char **requires;       /* capabilities the scenario needs on both sides: set;
                              a pair where a side lacks one skips the case */
    size_t nrequires;
    /* parameters (0 / false = engine default) */
    uint64_t max_bandwidth;
    bool has_max_bandwidth;
    uint64_t downtime_limit_ms;
    uint32_t max_passes;
    ScnStep *steps;
    size_t nsteps;
    MigFaultSpec *faults;
    size_t nfaults;
    uint64_t timeout_ns;   /* virtual-time bound of the whole run */
    /* expect */
    ScnOutcome outcome;
    int error;             /* negative errno expected, 0 = any */
    char *error_contains;  /* substring of the error text, or NULL */
    char *trace_contains;  /* substring of the run's event trace, or NULL */
    char *trace_excludes;  /* text the run's event trace must not contain, or NULL */
    bool preflight;        /* management checks both sides' device descriptions
                              (vmstate_check_compat) before migrate (default) */
    bool return_path;      /* management enables return-path when both sides offer
                              it (default; `return-path: false` opts out) */
} Scenario;

/* Load and validate one scenario file.  Returns NULL and sets *errp to
 * "FILE:LINE: key 'K': ..." (-EINVAL) on bad content, -ENOENT when missing. */
Scenario *scenario_load(const char *path, MigErr **errp);
/* The same from memory; `name` stands for the file in messages. */
Scenario *scenario_load_data(const char *name, const char *yaml, size_t len, MigErr **errp);
void scenario_free(Scenario *s);

/* Value parsers shared with the CLI (return 0 or -EINVAL). */
int scn_parse_size(const char *s, uint64_t *out);      /* "64M", "1G", "4096" */
int scn_parse_duration(const char *s, uint64_t *ns);   /* "10ms", "2s", "500us", "0" */
int scn_parse_rate(const char *s, uint64_t *per_s);    /* "2000 pages/s", "2000" */
int scn_parse_bandwidth(const char *s, uint64_t *bps); /* "100M/s", "unlimited" (0) */

/* Collect scenario files under the given paths (files or folders,
 * recursively, *.yaml), sorted by path.  Returns the count or -errno. */
int scenario_collect(char **paths, size_t npaths, char ***out, MigErr **errp);
void scenario_paths_free(char **paths, size_t n);

#endif
