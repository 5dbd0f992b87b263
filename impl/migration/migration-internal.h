/*
 * migration-internal.h - what the files of the migration module share, and
 * the hooks its own tests use (harness/unit/test-migration.c).  Not for
 * other modules.
 *
 * The module's files:
 *   migration.c              the object, both state tables and their setters,
 *                            capabilities and parameters, fail/finish/cancel,
 *                            query-migrate
 *   migration-source.c       the source: setup, pre-copy passes, convergence,
 *                            switchover, completion
 *   migration-dest.c         the destination: the loader and the discard of
 *                            a failed load
 *   migration-return-path.c  the return path, both ends (its wire format)
 *
 * Two state machines, each written by one setter only:
 *   - the status (MigStatus, QEMU's, seen by users; migration.h has the
 *     diagram): mig__migration_set_status;
 *   - the phase (MigPhase, below): where in its own work a side is; the
 *     source's and the destination's phases are disjoint rows of one table.
 *     mig__migration_set_phase.
 *
 * Source phases:
 *   idle --start--> setup --START sections queued--> iterate
 *   iterate --converged--> end          (or --> switchover-wait with
 *   switchover-wait --migrate-continue--> end        pause-before-switchover)
 *   end --END sections done--> full --FULL sections done--> tail
 *   tail --EOF and vmdescription queued--> drain
 *   drain --every byte out, with return-path--> return-path-wait
 * Destination phases:
 *   idle --start_incoming--> header --file header--> configuration
 *   configuration --> section --START/PART/END header--> payload --> footer
 *   section --FULL section loaded--> footer;  footer --> section
 *   section --EOF section--> vmdescription
 * Every phase --finish (completed, failed, cancelled)--> idle.
 * The per-section arcs (section, payload, footer) are not traced.
 *
 * Transition -> function that performs it:
 *   idle -> setup                   mig_migration_start
 *   setup -> iterate                src_setup
 *   iterate -> end|switchover-wait  src_switchover
 *   switchover-wait -> end          mig_migration_continue
 *   end -> full, full -> tail, tail -> drain   src_end, src_full, src_tail
 *   drain -> return-path-wait       src_complete
 *   idle -> header                  mig_migration_start_incoming
 *   header .. vmdescription         dst_step, one unit per call
 *   * -> idle                       mig__migration_finish
 */
#ifndef MIGCERT_MIGRATION_INTERNAL_H
#define MIGCERT_MIGRATION_INTERNAL_H

#include "migration.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

typedef enum MigPhase {
    MIG_PHASE_IDLE,
    /* source */
    MIG_PHASE_SRC_SETUP,
    MIG_PHASE_SRC_ITERATE,
    MIG_PHASE_SRC_SWITCHOVER_WAIT,
    MIG_PHASE_SRC_END,
    MIG_PHASE_SRC_FULL,
    MIG_PHASE_SRC_TAIL,
    MIG_PHASE_SRC_DRAIN,
    MIG_PHASE_SRC_RP_WAIT, /* every byte out; waiting for the destination's SHUT */
    /* destination */
    MIG_PHASE_DST_HEADER,
    MIG_PHASE_DST_CONFIG,
    MIG_PHASE_DST_SECTION,
    MIG_PHASE_DST_PAYLOAD,
    MIG_PHASE_DST_FOOTER,
    MIG_PHASE_DST_VMDESC,
    MIG_PHASE__COUNT
} MigPhase;

/* Return-path message buffer of the destination. */
#define MIG_RP_OUT_MAX 64

typedef struct MigSectionMap {
    uint32_t section_id;
    size_t entry;
    uint32_t version_id;
} MigSectionMap;

struct MigMigration {
    MigMigrationEnv env;
    char who[32];
    char machine_type[256];
    MigStatus status; /* written by mig__migration_set_status only */
    MigPhase phase;   /* written by mig__migration_set_phase only */
    bool incoming;
    MigCapMask caps_known, caps;
    MigParams params;
    char error[512];

    MigTransport *t;
    MigStream *s;
    MigLoopSource *kick_src;   /* defer: next slice */
    MigLoopSource *timer_src;  /* rate limit window */
    MigLoopSource *cancel_src; /* defer: cancelling -> cancelled */
    bool watching;
    bool hangup_seen; /* the last readiness carried ERR/HUP */

    uint64_t start_ns, setup_end_ns, end_ns, stop_ns;
    bool has_setup_time, has_end, has_downtime;
    uint64_t downtime_ms, expected_downtime_ms;
    uint64_t passes;
    bool stopped_guest;

    /* per registry entry, sized at start */
    size_t nentries;
    bool *started; /* save_setup / load_setup ran: cleanup owed */
    bool *pass_done;
    /* destination: the entry's section arrived (FULL loaded, START seen);
     * checked at the end of the stream (migration-dest.c: dst_check_all) */
    bool *loaded;
    uint64_t unit_at; /* destination: stream offset of the unit being parsed */
    /* destination: FULL entries' state before their section was loaded */
    bool *snap_taken;
    uint8_t **snap;
    size_t *snap_len;

    /* return path */
    bool rp_on;         /* source: capability on for this migration */
    uint8_t rp_in[8];   /* source: partial message */
    size_t rp_in_len;
    bool rp_open;       /* destination: open-return-path received */
    uint8_t rp_out[MIG_RP_OUT_MAX]; /* destination: messages not yet written */
    size_t rp_out_len;
    MigTransport *linger_t; /* destination: finished, flushing rp_out */

    /* source convergence: the pass ended with only queued bytes in the way */
    bool drain_wait;
    bool drain_timed; /* waited on a timer for the transport: decide again */
    uint64_t held_wait_ns; /* the drain's next look at bytes the peer has not read */
    bool drain_probe; /* the wait measures the rate: no sync, no new pass */
    uint64_t drain_target;

    /* source */
    size_t entry;
    bool in_section;
    uint64_t pass_start_ns, pass_start_bytes;
    uint64_t window_start_ns, window_start_off;
    uint64_t bandwidth; /* bytes/s measured over the last pass; 0 unknown */
    uint64_t last_sync_ns, dirty_rate;

    /* destination */
    MigSectionHeader hdr;
    size_t cur_entry;
    MigSectionMap *secs;
    size_t nsecs;
};

static inline uint64_t mig__now_ns(const MigMigration *mm)
{
    return mig_loop_now_ns(mm->env.loop);
}

static inline const MigSaveEntry *mig__entry_at(const MigMigration *mm, size_t i)
{
    return mig_savevm_entry(mm->env.savevm, i);
}

/* ---- the state machines (migration.c) ---- */

/* The status setter (checks the arc table, traces, emits MIGRATION).
 * Returns 0, or -EINVAL for an arc the table refuses (status unchanged, the
 * refusal traced). */
int mig__migration_set_status(MigMigration *mm, MigStatus to);
/* The status setter for the engine's own moves: a refused arc is an engine
 * bug, and *errp then names the arc.  Returns the setter's result. */
int mig__migration_advance(MigMigration *mm, MigStatus to, MigErr **errp);

/* "idle", "setup", ..., "vmdescription" (for traces; "?" out of range). */
const char *mig__phase_name(MigPhase p);
/* Is from -> to an arc of the phase table? */
bool mig__phase_arc_allowed(MigPhase from, MigPhase to);
/* Is from -> to an arc the setter traces (all but the per-section loop)? */
bool mig__phase_arc_traced(MigPhase from, MigPhase to);
/* The phase setter: checks the table, traces "phase <from> -> <to>" (not
 * for the destination's per-section arcs: mig__phase_arc_traced).
 * Returns 0, or -EINVAL for an arc the table refuses (phase unchanged, the
 * refusal traced, *errp says which arc). */
int mig__migration_set_phase(MigMigration *mm, MigPhase to, MigErr **errp);

/* ---- shared steps (migration.c) ---- */

/* An event, when the `events` capability is on (data is consumed). */
void mig__migration_emit(MigMigration *mm, const char *name, json_t *data);
/* Fail the running migration (a no-op in none, terminal states and
 * cancelling) with msg (or err's name), then finish it. */
void mig__migration_fail(MigMigration *mm, int err, const char *msg);
/* Same with a MigErr (consumed; code and fallback text when NULL). */
void mig__migration_fail_err(MigMigration *mm, MigErr *err, int code, const char *fallback);
/* Common end of a migration whose status is already terminal. */
void mig__migration_finish(MigMigration *mm, MigOutcome outcome);
/* Per-migration arrays and statistics, for a new migration. */
void mig__migration_prepare(MigMigration *mm);
/* A migration runs (not none, not terminal). */
bool mig__migration_running(const MigMigration *mm);
/* Stop the kick, the timer and the transport watch. */
void mig__migration_stop_sources(MigMigration *mm);
/* Stop the sources, then free the stream and close the transport. */
void mig__migration_close_stream(MigMigration *mm);
/* A name from the wire, printable for an error message (into out[n]). */
const char *mig__esc(const char *in, char *out, size_t n);

/* ---- source (migration-source.c) ---- */

/* device -> completed, with the downtime measured. */
void mig__src_done(MigMigration *mm);

/* ---- destination (migration-dest.c) ---- */

/* Load not completed: FULL entries get their state from before the
 * migration back. */
void mig__dst_restore_full(MigMigration *mm);

/* ---- return path (migration-return-path.c) ---- */

/* Source, after the configuration: open-return-path and ping(1). */
void mig__rp_put_open(MigStream *s);
/* Destination: a COMMAND section (type, cmd and len already read). */
int mig__rp_command(MigMigration *mm, uint16_t cmd, uint16_t len, uint64_t at, MigErr **errp);
/* Destination end: SHUT(outcome) to the source, lingering while it is out. */
void mig__rp_shut(MigMigration *mm, MigOutcome outcome);
/* Source failing for another reason: did the destination report a failed
 * load (its SHUT may be waiting on the return path)? */
bool mig__rp_reported_failure(MigMigration *mm);
/* Source in return-path-wait: read what the destination sent; SHUT
 * decides (mig__src_done or a failure). */
void mig__rp_poll(MigMigration *mm);

#endif
