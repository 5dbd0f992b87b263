/*
 * migration.h - the source and destination migration state machines,
 * capabilities, parameters and statistics (QEMU's MigrationState, our design).
 *
 * Owns: MigMigration, one per machine.  It drives a MigSavevm registry over a
 * MigStream on a MigLoop, without ever blocking: the source produces while
 * mig_stream_pending() is below a high-water mark and otherwise waits for the
 * transport to be writable; the destination parses restartable units when the
 * transport is readable.  Time comes from mig_loop_now_ns() only.
 * Called by: impl/machine (which owns the registry, the guest run state and
 * the transports), impl/monitor through the machine, tests.
 * Files: migration.c (object, tables, end of a migration), migration-source.c,
 * migration-dest.c, migration-return-path.c, params.c (capabilities,
 * parameters, query-migrate JSON); migration-internal.h has the phases.
 *
 * Source states (QEMU MigrationStatus names):
 *
 *   none --start--> setup --first pass--> active --converged--> device --> completed
 *                     |                    |  \--(pause-before-switchover)--> pre-switchover
 *                     |                    |                                   | migrate-continue
 *                     |                    |                                   v
 *                     +--------------------+-------- error ---------------> failed
 *                     +--------------------+-------- cancel --> cancelling --> cancelled
 *   completed | failed | cancelled --start--> setup (a new migration)
 *
 * Destination states: none --listen--> setup --header read--> active
 *   --EOF section--> completed; setup/active --error--> failed;
 *   setup/active --cancel--> cancelling --> cancelled.  Terminal states are
 * final on the destination.
 *
 * Transition -> function that performs it:
 *   none/terminal -> setup        mig_migration_start (source), mig_migration_listen
 *                                 or mig_migration_start_incoming (destination)
 *   setup -> active               source: after START sections are queued;
 *                                 destination: after the file header is read
 *   active -> pre-switchover      source: converged with pause-before-switchover on
 *   active|pre-switchover -> device   source: converged / mig_migration_continue
 *   device -> completed           source: every byte flushed and, with return-path,
 *                                 the destination's SHUT(0) read (src_done);
 *                                 destination: EOF section read
 *   device -> failed              source with return-path: SHUT(1), EOF or an
 *                                 error on the return path
 *   * -> failed                   any error (transport, stream, handler), with error-desc
 *   * -> cancelling -> cancelled  mig_migration_cancel
 * Every arc is checked against a static [from][to] table, traced as
 * "<who>: migration <from> -> <to>" and emitted as a MIGRATION event when the
 * `events` capability is on.
 *
 * Invariants: on failure or cancel the source resumes the guest (if it was
 * running when migration started) and every handler's save_cleanup undoes
 * its changes; the destination's load_cleanup discards what it loaded.
 */
#ifndef MIGCERT_MIGRATION_H
#define MIGCERT_MIGRATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/caps.h"
#include "../common/common.h"
#include "../common/loop.h"
#include "../ram/ram.h"
#include "../stream/stream.h"
#include "../transport/transport.h"
#include "../savevm/savevm.h"

/* ---- status ---- */
typedef enum MigStatus {
    MIG_STATUS_NONE,
    MIG_STATUS_SETUP,
    MIG_STATUS_CANCELLING,
    MIG_STATUS_CANCELLED,
    MIG_STATUS_ACTIVE,
    MIG_STATUS_PRE_SWITCHOVER,
    MIG_STATUS_DEVICE,
    MIG_STATUS_COMPLETED,
    MIG_STATUS_FAILED,
    MIG_STATUS__COUNT
} MigStatus;

/* "none", "setup", ..., QEMU's spelling. */
const char *mig_status_name(MigStatus s);
/* Is from -> to an allowed arc of the source (incoming false) or the
 * destination (incoming true) table? */
bool mig_status_arc_allowed(bool incoming, MigStatus from, MigStatus to);
/* Terminal: completed, failed, cancelled. */
bool mig_status_is_terminal(MigStatus s);

/* ---- capabilities ---- */
/* MigCap, MigCapMask and MIG_CAP_BIT live in common/caps.h (RAM reads them
 * too); the functions over them are the engine's. */

const char *mig_cap_name(MigCap c);
/* Name -> MigCap, or -1 when unknown. */
int mig_cap_parse(const char *name);
/* Validatable capabilities must match on both sides; the source announces the
 * enabled ones in configuration/capabilities (x-ignore-shared, x-page-flip). */
bool mig_cap_validatable(MigCap c);
/* What this build can honour when set (others are known names but refused). */
MigCapMask mig_caps_supported(void);
/* Management's rule (capabilities negotiation,
 * docs/protocol-qemu-stream.md): enable what both sides offer.  A side that
 * does not know query-migrate-capabilities offers 0. */
static inline MigCapMask mig_caps_intersect(MigCapMask a, MigCapMask b) { return a & b; }
/* query-migrate-capabilities reply: [{"capability": name, "state": bool}] for
 * every cap in `known`. */
json_t *mig_caps_to_json(MigCapMask known, MigCapMask enabled);
/* migrate-set-capabilities argument list -> (mask of caps named, their
 * states).  Errors name the entry ("capabilities[2]: ..."). */
int mig_caps_from_json(json_t *list, MigCapMask *named, MigCapMask *states, MigErr **errp);

/* ---- parameters ---- */
#define MIG_DEFAULT_MAX_BANDWIDTH 134217728ull /* bytes/s, QEMU 7.2 */
#define MIG_DEFAULT_DOWNTIME_LIMIT 300ull      /* ms */
#define MIG_MAX_DOWNTIME_LIMIT 2000000ull      /* ms (2000 s, QEMU's bound) */
#define MIG_MAX_PASSES_LIMIT 1000000ull

/* QEMU 7.2's MigrationParameters (qapi/migration.json), plus the project's
 * x-max-passes, in QEMU's order.  Every one is stored, validated with
 * QEMU's ranges and reported by query-migrate-parameters, so one driver can
 * set the same values on QEMU and on migcert; only max-bandwidth,
 * downtime-limit and x-max-passes change what this engine does (it has no
 * compression, multifd, TLS, xbzrle, throttling, COLO, postcopy or block
 * migration; their values are kept and otherwise ignored). */
typedef enum MigParam {
    MIG_PARAM_ANNOUNCE_INITIAL,
    MIG_PARAM_ANNOUNCE_MAX,
    MIG_PARAM_ANNOUNCE_ROUNDS,
    MIG_PARAM_ANNOUNCE_STEP,
    MIG_PARAM_COMPRESS_LEVEL,
    MIG_PARAM_COMPRESS_THREADS,
    MIG_PARAM_COMPRESS_WAIT_THREAD,
    MIG_PARAM_DECOMPRESS_THREADS,
    MIG_PARAM_THROTTLE_TRIGGER_THRESHOLD,
    MIG_PARAM_CPU_THROTTLE_INITIAL,
    MIG_PARAM_CPU_THROTTLE_INCREMENT,
    MIG_PARAM_CPU_THROTTLE_TAILSLOW,
    MIG_PARAM_TLS_CREDS,
    MIG_PARAM_TLS_HOSTNAME,
    MIG_PARAM_TLS_AUTHZ,
    MIG_PARAM_MAX_BANDWIDTH,
    MIG_PARAM_DOWNTIME_LIMIT,
    MIG_PARAM_X_CHECKPOINT_DELAY,
    MIG_PARAM_BLOCK_INCREMENTAL,
    MIG_PARAM_MULTIFD_CHANNELS,
    MIG_PARAM_XBZRLE_CACHE_SIZE,
    MIG_PARAM_MAX_POSTCOPY_BANDWIDTH,
    MIG_PARAM_MAX_CPU_THROTTLE,
    MIG_PARAM_MULTIFD_COMPRESSION,
    MIG_PARAM_MULTIFD_ZLIB_LEVEL,
    MIG_PARAM_MULTIFD_ZSTD_LEVEL,
    MIG_PARAM_X_MAX_PASSES,
    MIG_PARAM__COUNT
} MigParam;

/* "announce-initial", ..., QEMU's spelling ("?" out of range). */
const char *mig_param_name(MigParam p);

typedef struct MigParams {
    /* bytes/s; 0 = unlimited (so is anything above what the link carries). */
    uint64_t max_bandwidth;
    /* ms: pre-copy stops when the expected downtime is at most this. */
    uint64_t downtime_limit;
    /* x-max-passes (project): after this many pre-copy passes the source
     * stops the guest and copies the rest whatever the expected downtime;
     * 0 = no bound (QEMU's behaviour: never converging is possible). */
    uint64_t x_max_passes;
    /* Stored and reported only (see MigParam). */
    uint64_t announce_initial, announce_max, announce_rounds, announce_step; /* ms, n */
    uint64_t compress_level, compress_threads, decompress_threads;
    bool compress_wait_thread;
    uint64_t throttle_trigger_threshold, cpu_throttle_initial, cpu_throttle_increment;
    bool cpu_throttle_tailslow;
    char tls_creds[256], tls_hostname[256], tls_authz[256];
    uint64_t x_checkpoint_delay; /* ms */
    bool block_incremental;
    uint64_t multifd_channels;
    uint64_t xbzrle_cache_size;      /* bytes */
    uint64_t max_postcopy_bandwidth; /* bytes/s */
    uint64_t max_cpu_throttle;
    uint64_t multifd_compression; /* 0 none, 1 zlib, 2 zstd */
    uint64_t multifd_zlib_level, multifd_zstd_level;
} MigParams;

/* Partial update for migrate-set-parameters: a parameter is set when its
 * bit MIG_PARAM_BIT(p) is in `has` or (for the three the engine uses) its
 * has_ flag is true. */
#define MIG_PARAM_BIT(p) ((uint64_t)1 << (p))
typedef struct MigParamsSet {
    bool has_max_bandwidth, has_downtime_limit, has_x_max_passes;
    uint64_t has;
    MigParams p;
} MigParamsSet;

void mig_params_default(MigParams *p);
/* Is parameter `which` set in `set`? */
bool mig_params_set_has(const MigParamsSet *set, MigParam which);
/* Check ranges (QEMU 7.2's); errors name the parameter and its range. */
int mig_params_validate(const MigParamsSet *set, MigErr **errp);
/* Copy the parameters set in `set` into p (no validation). */
void mig_params_apply(MigParams *p, const MigParamsSet *set);
/* query-migrate-parameters reply {"announce-initial": 50, ...}: every
 * MigParam, QEMU 7.2's names and JSON types. */
json_t *mig_params_to_json(const MigParams *p);
/* migrate-set-parameters arguments -> set (unknown names and wrong types are
 * errors naming the parameter); does not validate ranges. */
int mig_params_from_json(json_t *args, MigParamsSet *set, MigErr **errp);

/* ---- statistics (query-migrate) ---- */
/* MigRamInfo (the "ram" object) is RAM's: ram/ram.h. */

typedef struct MigInfo {
    MigStatus status;
    bool has_total_time, has_setup_time, has_expected_downtime, has_downtime, has_ram;
    uint64_t total_time;        /* ms */
    uint64_t setup_time;        /* ms */
    uint64_t expected_downtime; /* ms, while active */
    uint64_t downtime;          /* ms, when completed */
    uint64_t passes;            /* pre-copy passes so far (MIGRATION_PASS) */
    MigRamInfo ram;
    char error_desc[512]; /* "" when none */
} MigInfo;

/* QEMU's MigrationInfo: {} before any migration, otherwise "status",
 * "total-time", ..., "ram": {...}, "error-desc". */
json_t *mig_info_to_json(const MigInfo *info);

/* ---- the engine ---- */
typedef struct MigMigration MigMigration;
typedef struct MigRam MigRam; /* impl/ram/ram.h */

/* What the engine needs from its machine. */
typedef struct MigMigrationEnv {
    MigLoop *loop;
    const char *who;          /* trace prefix, e.g. "src" or "dst" */
    MigSavevm *savevm;        /* the handlers to migrate */
    MigRam *ram;              /* for the "ram" statistics and pass sync (optional) */
    const char *machine_type; /* CONFIGURATION name; checked as a prefix on load */
    MigCapMask caps_known;    /* what query-migrate-capabilities offers (0: supported) */
    /* Guest run state (source: stop for stop-and-copy, resume after
     * failure/cancel; destination: run after completion). */
    bool (*guest_running)(void *opaque);
    void (*guest_stop)(void *opaque);
    void (*guest_resume)(void *opaque);
    /* Migration ended (status is terminal).  Optional. */
    void (*finished)(void *opaque, MigStatus status);
    /* QMP-style event; data is borrowed.  Optional. */
    void (*event)(void *opaque, const char *name, json_t *data);
    void *opaque;
} MigMigrationEnv;

MigMigration *mig_migration_new(const MigMigrationEnv *env);
void mig_migration_free(MigMigration *mm);

MigStatus mig_migration_status(const MigMigration *mm);
bool mig_migration_is_incoming(const MigMigration *mm);
/* The error of a failed migration ("" when none). */
const char *mig_migration_error(const MigMigration *mm);
/* Bytes put into the migration stream so far: on the source what the
 * savevm handlers have written (also what is still buffered and not yet on
 * the transport), on the destination what it has parsed; the offset the
 * stream's error messages quote.  0 when no stream is open.  Read-only: the
 * harness places link faults at a given record of what the engine wrote. */
uint64_t mig_migration_stream_offset(const MigMigration *mm);

/* Capabilities: query known/enabled; set while no migration runs, or on a
 * destination still waiting for its connection (-EBUSY otherwise); unknown
 * or unsupported ones are -EINVAL/-ENOTSUP.  return-path is checked against
 * the transport at mig_migration_start (-ENOTSUP unless the transport is
 * duplex: mig_transport_is_duplex). */
MigCapMask mig_migration_caps_known(const MigMigration *mm);
MigCapMask mig_migration_caps(const MigMigration *mm);
int mig_migration_set_caps(MigMigration *mm, MigCapMask named, MigCapMask states, MigErr **errp);
void mig_migration_params(const MigMigration *mm, MigParams *out);
/* Validates the whole set first; nothing changes on error.  Allowed while
 * migrating (max-bandwidth and downtime-limit take effect at once). */
int mig_migration_set_params(MigMigration *mm, const MigParamsSet *set, MigErr **errp);

/* Source: start migrating over t (the engine owns t from now on, also on
 * error).  -EBUSY while a migration runs. */
int mig_migration_start(MigMigration *mm, MigTransport *t, MigErr **errp);
/* Destination: none -> setup (waiting for a connection). */
int mig_migration_listen(MigMigration *mm, MigErr **errp);
/* Destination: load from t (owned from now on). */
int mig_migration_start_incoming(MigMigration *mm, MigTransport *t, MigErr **errp);
/* Fail a destination that is waiting or loading, e.g. because its listener
 * failed; error text given. */
void mig_migration_fail(MigMigration *mm, int err, const char *why);
/* Cancel: accepted in every non-terminal state (-EINVAL otherwise; a no-op
 * returning 0 in none).  The source resumes exactly as it was; the
 * destination discards what it loaded. */
int mig_migration_cancel(MigMigration *mm);
/* Release pause-before-switchover (pre-switchover -> device). */
int mig_migration_continue(MigMigration *mm, MigStatus expected, MigErr **errp);

void mig_migration_query(const MigMigration *mm, MigInfo *out);

#endif
