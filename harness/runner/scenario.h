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

/* ---- SPICE (scenarios/README.md "SPICE") ---- */

/* How management calls client_migrate_info before each migrate. */
typedef enum ScnMigrateInfo {
    SCN_MIGRATE_INFO_WAIT,    /* and waits for the client's answer (or the timeout) */
    SCN_MIGRATE_INFO_NO_WAIT, /* and starts the migration at once (QEMU 7.2's QMP) */
    SCN_MIGRATE_INFO_MANUAL,  /* only where a client-migrate-info step says so */
    SCN_MIGRATE_INFO__COUNT
} ScnMigrateInfo;
extern const char *const scn_migrate_info_names[SCN_MIGRATE_INFO__COUNT];

typedef struct ScnSpice {
    bool on;                 /* the file has `spice:`: both machines get a server */
    char password[64];       /* ticketing with this password; "" = disable-ticketing */
    uint64_t migrate_timeout_ns; /* 0: the server's default (10 s) */
    ScnMigrateInfo migrate_info;
    uint32_t width, height;  /* fake-qxl's display */
    uint32_t heads;          /* fake-qxl's heads (display channels), 1..4 */
    int pixmap_cache_migration; /* SpicePixmapCacheMig: seamless migration's cache strategy */
    bool glz;                /* image-compression: glz */
    uint32_t vmc_rate;       /* bytes fake-vmc writes every 10 ms */
    /* What each server speaks of migration (SEMI_SEAMLESS, seamless, the
     * protocol and blob versions) is its machine's release's: releases.h. */
    bool seamless;           /* seamless-migration=on on both servers */
    uint64_t migrate_data_timeout_ns; /* the target's wait for a blob (0: 10 s) */
    bool target_client;      /* another client is linked to the destination from the start */
} ScnSpice;

/* What the client does to a connection to the migration's target. */
typedef enum ScnTarget {
    SCN_TARGET_ACCEPT, /* connects normally */
    SCN_TARGET_REFUSE, /* the connect fails at once (nothing listens) */
    SCN_TARGET_FAIL,   /* the connection opens, then resets during the link */
    SCN_TARGET_HANG,   /* the connection opens and nothing ever arrives */
    SCN_TARGET__COUNT
} ScnTarget;
extern const char *const scn_target_names[SCN_TARGET__COUNT];

/* The migration step at which the client disconnects (client.disconnect-at). */
typedef enum ScnClientStep {
    SCN_CLIENT_STEP_NONE,
    SCN_CLIENT_STEP_BEGIN,     /* MIGRATE_BEGIN arrived, before the answer */
    SCN_CLIENT_STEP_CONNECTED, /* MIGRATE_CONNECTED went out */
    SCN_CLIENT_STEP_END,       /* MIGRATE_END arrived, before the switch */
    SCN_CLIENT_STEP_SWITCHED,  /* MSGC_MIGRATE_END (seamless: main's MIGRATE_DATA) went to the target */
    SCN_CLIENT_STEP_ACKED,     /* seamless: the target's DST_SEAMLESS_ACK arrived */
    SCN_CLIENT_STEP_MIGRATE,   /* seamless: main's MIGRATE arrived */
    SCN_CLIENT_STEP_FLUSHED,   /* seamless: main's FLUSH_MARK went to the source */
    SCN_CLIENT_STEP_DATA,      /* seamless: main's MIGRATE_DATA arrived from the source */
    SCN_CLIENT_STEP__COUNT
} ScnClientStep;
extern const char *const scn_client_step_names[SCN_CLIENT_STEP__COUNT];

/* Where the client must end (expect.client). */
typedef enum ScnClientEnd {
    SCN_CLIENT_END_AUTO, /* dst when completed, src otherwise */
    SCN_CLIENT_END_SRC,
    SCN_CLIENT_END_DST,
    SCN_CLIENT_END_NONE, /* no session anywhere */
    SCN_CLIENT_END__COUNT
} ScnClientEnd;
extern const char *const scn_client_end_names[SCN_CLIENT_END__COUNT];

/* How the client must have migrated (expect.client-migration). */
typedef enum ScnClientMig {
    SCN_CLIENT_MIG_ANY,
    SCN_CLIENT_MIG_SEMI_SEAMLESS,
    SCN_CLIENT_MIG_SWITCH_HOST,
    SCN_CLIENT_MIG_CANCELLED,
    SCN_CLIENT_MIG_NONE,
    SCN_CLIENT_MIG_SEAMLESS,
    SCN_CLIENT_MIG__COUNT
} ScnClientMig;
extern const char *const scn_client_mig_names[SCN_CLIENT_MIG__COUNT];

typedef struct ScnClient {
    bool present;            /* a client connects to the source at the start */
    bool old;                /* no SEMI_SEAMLESS main capability */
    int64_t pixmap_cache;    /* pixels; 0: spice-gtk's */
    uint32_t vmc_rate;       /* bytes the client writes to the port every 10 ms */
    uint64_t bandwidth;      /* its links; 0 = unlimited */
    uint64_t latency_ns;
    bool has_password;
    char password[64];       /* what it sends; default: spice.password */
    ScnTarget target;
    uint64_t target_delay_ns; /* extra one-way latency of its links to the target */
    ScnClientStep disconnect_at;
    uint32_t disconnect_at_message; /* 0: never; else after the Nth message (either way) */
    uint64_t migrate_end_delay_ns;  /* MSGC_MAIN_MIGRATE_END that much later */
    uint64_t flush_mark_delay_ns;   /* seamless: FLUSH_MARK that much after MIGRATE */
    int blob_fault;                 /* FakeClientBlobFault: the blob it spoils ... */
    uint8_t blob_channel;           /* ... on this channel type (default display) */
    bool no_seamless;               /* no SEAMLESS_MIGRATE main capability */
} ScnClient;

/* client step */
typedef enum ScnClientAction {
    SCN_CLIENT_DISCONNECT, /* the user closes the client */
    SCN_CLIENT_SEND,       /* it sends something the server did not ask for */
    SCN_CLIENT_DROP,       /* its links to `side` reset */
    SCN_CLIENT_PARTITION,  /* bytes stop flowing on its links to `side` */
    SCN_CLIENT_HEAL,
    SCN_CLIENT_SLOW,       /* bandwidth / latency of its links to `side` */
    SCN_CLIENT_ACTION__COUNT
} ScnClientAction;
extern const char *const scn_client_action_names[SCN_CLIENT_ACTION__COUNT];

typedef enum ScnClientSend {
    SCN_SEND_UNSOLICITED, /* MIGRATE_CONNECTED with no MIGRATE_BEGIN to answer */
    SCN_SEND_MALFORMED,   /* a MOUSE_MODE_REQUEST one byte short */
    SCN_SEND_FLUSH_MARK,  /* a MIGRATE_FLUSH_MARK (spice-server 0.15.1 aborts on it) */
    SCN_SEND_UNKNOWN,     /* message type 999 on main */
    SCN_SEND__COUNT
} ScnClientSend;
extern const char *const scn_send_names[SCN_SEND__COUNT];

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
    SCN_STEP_CLIENT_MIGRATE_INFO, /* management: client_migrate_info on the source */
    SCN_STEP_CLIENT,       /* the SPICE client or its links do something */
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
    /* client-migrate-info: wait for the client's answer before going on */
    bool wait;
    /* client: what it does (disconnect, send, or drop / partition / heal /
     * slow its link to `side`) */
    ScnClientAction client_action;
    ScnClientSend send;
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
    ScnSpice spice;        /* `spice:` (spice.on false: no SPICE at all) */
    ScnClient client;      /* `client:` (only with spice.on) */
    ScnClientEnd client_end;      /* expect.client */
    ScnClientMig client_mig;      /* expect.client-migration */
    char *client_error;    /* expect.client-error: text in the client's last
                              error; NULL: it must have none */
    uint8_t client_channel_lost; /* expect.client-channel-lost: the channel type the
                                    target refused (0: none) */
} Scenario;

/* Limits of the loader (docs/limits.md), each refused past with an error
 * naming it.  A scenario describes one simulated run: every count, size,
 * rate and duration it may hold is bounded so that loading is linear and
 * small, and so that a run ends in bounded wall time (the simulator's work
 * grows with dirty rate x virtual time). */
#define SCN_MAX_FILE_BYTES (1u << 20)        /* the file: 1 MiB, a regular file */
#define SCN_MAX_STEPS 10000u                 /* entries of `steps` */
#define SCN_MAX_FAULTS 1000u                 /* entries of `faults` */
#define SCN_MAX_DIRTY_RATE 100000u           /* workload.dirty-rate, pages/s */
#define SCN_MAX_BANDWIDTH (1ull << 40)       /* any bandwidth: 1 TiB/s (0/s is refused) */
#define SCN_MAX_DURATION (3600ull * 1000000000ull) /* any duration: 1 hour of virtual time */
#define SCN_MAX_RAM (1ull << 30)             /* machines.*.ram: 1 GiB */

/* Load and validate one scenario file.  Returns NULL and sets *errp to
 * "FILE:LINE: key 'K': ..." (-EINVAL) on bad content, -ENOENT when missing. */
Scenario *scenario_load(const char *path, MigErr **errp);
/* The same from memory; `name` stands for the file in messages. */
Scenario *scenario_load_data(const char *name, const char *yaml, size_t len, MigErr **errp);
void scenario_free(Scenario *s);

/* Value parsers shared with the CLI (return 0, -EINVAL when malformed, or
 * -ERANGE when well formed but past the limit above: durations above
 * SCN_MAX_DURATION, rates above SCN_MAX_DIRTY_RATE, bandwidths of 0/s or
 * above SCN_MAX_BANDWIDTH; sizes have no limit here, their callers bound
 * them). */
int scn_parse_size(const char *s, uint64_t *out);      /* "64M", "1G", "4096" */
int scn_parse_duration(const char *s, uint64_t *ns);   /* "10ms", "2s", "500us", "0" */
int scn_parse_rate(const char *s, uint64_t *per_s);    /* "2000 pages/s", "2000" */
int scn_parse_bandwidth(const char *s, uint64_t *bps); /* "100M/s", "unlimited" (0) */

/* Collect scenario files under the given paths (files or folders,
 * recursively, *.yaml), sorted by path.  Returns the count or -errno; a
 * folder that holds no scenario file is -ENOENT ("DIR: no scenario files
 * (*.yaml)"), so an empty run is never a pass. */
int scenario_collect(char **paths, size_t npaths, char ***out, MigErr **errp);
void scenario_paths_free(char **paths, size_t n);

#endif
