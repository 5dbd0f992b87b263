/*
 * migration.c - the migration object: both state tables and their setters,
 * capabilities and parameters, the common end of a migration (fail, finish,
 * cancel) and query-migrate.  migration.h has the status diagram,
 * migration-internal.h the phase diagram and the list of the module's files;
 * the source, the destination and the return path live in
 * migration-source.c, migration-dest.c and migration-return-path.c.
 *
 * Both sides are loop callbacks that do a bounded slice of work and return
 * (see the top of migration-source.c and migration-dest.c).  Cancel sets
 * "cancelling" at once and tears down from a defer, so it is safe from any
 * callback, including a MIGRATION event handler.
 *
 * A refused arc of either table is an engine bug: the setters trace it and
 * return -EINVAL, and every caller turns that into a failed migration that
 * names the arc (or, where the migration already ended, stops there).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration-internal.h"
#include "ram/ram.h"

/* ------------------------------------------------------------ status table */

#define A(from, to) [MIG_STATUS_##from][MIG_STATUS_##to] = true
static const bool src_arcs[MIG_STATUS__COUNT][MIG_STATUS__COUNT] = {

    A(NONE, SETUP),
    A(SETUP, ACTIVE),
    A(SETUP, FAILED),
    A(SETUP, CANCELLING),
    A(ACTIVE, PRE_SWITCHOVER),
    A(ACTIVE, DEVICE),
    A(ACTIVE, FAILED),
    A(ACTIVE, CANCELLING),
    A(PRE_SWITCHOVER, DEVICE),
    A(PRE_SWITCHOVER, FAILED),
    A(PRE_SWITCHOVER, CANCELLING),
    A(DEVICE, COMPLETED),
    A(DEVICE, FAILED),
    A(DEVICE, CANCELLING),
    A(CANCELLING, CANCELLED),
    A(COMPLETED, SETUP),
    A(FAILED, SETUP),
    A(CANCELLED, SETUP),
};
static const bool dst_arcs[MIG_STATUS__COUNT][MIG_STATUS__COUNT] = {
    A(NONE, SETUP),
    A(SETUP, ACTIVE),
    A(SETUP, FAILED),
    A(SETUP, CANCELLING),
    A(ACTIVE, COMPLETED),
    A(ACTIVE, FAILED),
    A(ACTIVE, CANCELLING),
    A(CANCELLING, CANCELLED),
};
#undef A

bool mig_status_arc_allowed(bool incoming, MigStatus from, MigStatus to)
{
    if ((unsigned)from >= MIG_STATUS__COUNT || (unsigned)to >= MIG_STATUS__COUNT)
        return false;
    return incoming ? dst_arcs[from][to] : src_arcs[from][to];
}

/* ------------------------------------------------------------ phase table */

static const char *const phase_names[MIG_PHASE__COUNT] = {
    [MIG_PHASE_IDLE] = "idle",
    [MIG_PHASE_SRC_SETUP] = "setup",
    [MIG_PHASE_SRC_ITERATE] = "iterate",
    [MIG_PHASE_SRC_SWITCHOVER_WAIT] = "switchover-wait",
    [MIG_PHASE_SRC_END] = "end",
    [MIG_PHASE_SRC_FULL] = "full",
    [MIG_PHASE_SRC_TAIL] = "tail",
    [MIG_PHASE_SRC_DRAIN] = "drain",
    [MIG_PHASE_SRC_RP_WAIT] = "return-path-wait",
    [MIG_PHASE_DST_HEADER] = "header",
    [MIG_PHASE_DST_CONFIG] = "configuration",
    [MIG_PHASE_DST_SECTION] = "section",
    [MIG_PHASE_DST_PAYLOAD] = "payload",
    [MIG_PHASE_DST_FOOTER] = "footer",
    [MIG_PHASE_DST_VMDESC] = "vmdescription",
};

/* One table for both sides: their phases are disjoint, and only idle is
 * shared (every phase returns to it when the migration ends).  The arcs of
 * the destination's per-section loop (section, payload, footer) are taken
 * once per section, thousands of times in a big migration: they are checked
 * like the others but not traced (Q), or they would drown the trace. */
enum { ARC_NO, ARC_TRACED, ARC_QUIET };
#define P(from, to) [MIG_PHASE_##from][MIG_PHASE_##to] = ARC_TRACED
#define Q(from, to) [MIG_PHASE_##from][MIG_PHASE_##to] = ARC_QUIET
static const uint8_t phase_arcs[MIG_PHASE__COUNT][MIG_PHASE__COUNT] = {
    P(IDLE, SRC_SETUP),
    P(SRC_SETUP, SRC_ITERATE),
    P(SRC_ITERATE, SRC_SWITCHOVER_WAIT),
    P(SRC_ITERATE, SRC_END),
    P(SRC_SWITCHOVER_WAIT, SRC_END),
    P(SRC_END, SRC_FULL),
    P(SRC_FULL, SRC_TAIL),
    P(SRC_TAIL, SRC_DRAIN),
    P(SRC_DRAIN, SRC_RP_WAIT),
    P(IDLE, DST_HEADER),
    P(DST_HEADER, DST_CONFIG),
    P(DST_CONFIG, DST_SECTION),
    Q(DST_SECTION, DST_PAYLOAD),
    Q(DST_SECTION, DST_FOOTER),
    P(DST_SECTION, DST_VMDESC),
    Q(DST_PAYLOAD, DST_FOOTER),
    Q(DST_FOOTER, DST_SECTION),
    P(SRC_SETUP, IDLE),
    P(SRC_ITERATE, IDLE),
    P(SRC_SWITCHOVER_WAIT, IDLE),
    P(SRC_END, IDLE),
    P(SRC_FULL, IDLE),
    P(SRC_TAIL, IDLE),
    P(SRC_DRAIN, IDLE),
    P(SRC_RP_WAIT, IDLE),
    P(DST_HEADER, IDLE),
    P(DST_CONFIG, IDLE),
    P(DST_SECTION, IDLE),
    P(DST_PAYLOAD, IDLE),
    P(DST_FOOTER, IDLE),
    P(DST_VMDESC, IDLE),
};
#undef P
#undef Q

const char *mig__phase_name(MigPhase p)
{
    return (unsigned)p < MIG_PHASE__COUNT ? phase_names[p] : "?";
}

bool mig__phase_arc_allowed(MigPhase from, MigPhase to)
{
    if ((unsigned)from >= MIG_PHASE__COUNT || (unsigned)to >= MIG_PHASE__COUNT)
        return false;
    return phase_arcs[from][to] != ARC_NO;
}

bool mig__phase_arc_traced(MigPhase from, MigPhase to)
{
    return mig__phase_arc_allowed(from, to) && phase_arcs[from][to] == ARC_TRACED;
}

/* ------------------------------------------------------------ setters */

void mig__migration_emit(MigMigration *mm, const char *name, json_t *data)
{
    if (mm->env.event && (mm->caps & MIG_CAP_BIT(MIG_CAP_EVENTS)))
        mm->env.event(mm->env.opaque, name, data);
    json_decref(data);
}

int mig__migration_set_status(MigMigration *mm, MigStatus to)
{
    MigStatus from = mm->status;
    if (!mig_status_arc_allowed(mm->incoming, from, to)) {
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                      "migration %s -> %s refused", mig_status_name(from), mig_status_name(to));
        return -EINVAL;
    }
    mm->status = to;
    mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "migration %s -> %s",
                  mig_status_name(from), mig_status_name(to));
    mig__migration_emit(mm, "MIGRATION", json_pack("{s:s}", "status", mig_status_name(to)));
    return 0;
}


int mig__migration_advance(MigMigration *mm, MigStatus to, MigErr **errp)
{
    MigStatus from = mm->status;
    int r = mig__migration_set_status(mm, to);
    if (r < 0)
        mig_err_set(errp, r, "internal error: migration status %s -> %s is not an arc of the %s table",
                    mig_status_name(from), mig_status_name(to),
                    mm->incoming ? "destination" : "source");
    return r;
}

int mig__migration_set_phase(MigMigration *mm, MigPhase to, MigErr **errp)
{
    MigPhase from = mm->phase;
    if (!mig__phase_arc_allowed(from, to)) {
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "phase %s -> %s refused",
                      mig__phase_name(from), mig__phase_name(to));
        return mig_err_set(errp, -EINVAL,
                           "internal error: migration phase %s -> %s is not an arc of the "
                           "phase table",
                           mig__phase_name(from), mig__phase_name(to));
    }
    mm->phase = to;
    if (phase_arcs[from][to] == ARC_TRACED)
        mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "phase %s -> %s",
                      mig__phase_name(from), mig__phase_name(to));
    return 0;
}

/* A name from the wire, printable for an error message: printable ASCII
 * stays, quote and backslash and everything else become \xNN. */
const char *mig__esc(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 5 < n; in++) {
        unsigned char c = (unsigned char)*in;
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* ------------------------------------------------------------ object */

MigMigration *mig_migration_new(const MigMigrationEnv *env)
{
    MigMigration *mm = mig_malloc0(sizeof(*mm));
    mm->env = *env;
    snprintf(mm->who, sizeof(mm->who), "%s", env->who ? env->who : "vm");
    snprintf(mm->machine_type, sizeof(mm->machine_type), "%s",
             env->machine_type ? env->machine_type : "");
    mm->env.who = mm->who;
    mm->env.machine_type = mm->machine_type;
    mm->caps_known = env->caps_known ? env->caps_known : mig_caps_supported();
    /* x-page-flip (page flipping, docs/protocol-qemu-stream.md) passes a pipe fd over a unix socket: a loop
     * without real fds (the simulator's mem links) never offers it, so
     * management that intersects offers never enables it there. */
    if (!env->loop || !env->loop->ops->fd_watch)
        mm->caps_known &= ~(MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP) | MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE));
    mig_params_default(&mm->params);
    return mm;
}

void mig__migration_stop_sources(MigMigration *mm)
{
    mig_loop_remove(mm->env.loop, mm->kick_src);
    mm->kick_src = NULL;
    mig_loop_remove(mm->env.loop, mm->timer_src);
    mm->timer_src = NULL;
    if (mm->watching && mm->t)
        mig_transport_watch(mm->t, 0, NULL, NULL);
    mm->watching = false;
}

void mig__migration_close_stream(MigMigration *mm)
{
    mig__migration_stop_sources(mm);
    mig_stream_free(mm->s);
    mm->s = NULL;
    mig_transport_close(mm->t);
    mm->t = NULL;
}

/* Run the cleanup hooks owed and release per-migration memory. */
static void cleanup_handlers(MigMigration *mm, MigOutcome outcome)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        if (!mm->started || !mm->started[i])
            continue;
        mm->started[i] = false;
        const MigSaveEntry *e = mig_savevm_entry(mm->env.savevm, i);
        if (!e || e->kind != MIG_SAVE_ITERATIVE)
            continue;
        if (mm->incoming) {
            if (e->iter->load_cleanup)
                e->iter->load_cleanup(e->opaque, outcome);
        } else if (e->iter->save_cleanup) {
            e->iter->save_cleanup(e->opaque, outcome);
        }
    }
    free(mm->started);
    mm->started = NULL;
    free(mm->pass_done);
    mm->pass_done = NULL;
    for (size_t i = 0; mm->snap && i < mm->nentries; i++)
        free(mm->snap[i]);
    free(mm->snap);
    mm->snap = NULL;
    free(mm->snap_len);
    mm->snap_len = NULL;
    free(mm->snap_taken);
    mm->snap_taken = NULL;
    free(mm->loaded);
    mm->loaded = NULL;
    free(mm->secs);
    mm->secs = NULL;
    mm->nsecs = 0;
    mm->nentries = 0;
}

/* Common end of a migration: the state is already terminal. */
void mig__migration_finish(MigMigration *mm, MigOutcome outcome)
{
    mig__rp_shut(mm, outcome);
    mig__migration_close_stream(mm);
    if (mm->incoming && outcome != MIG_OUTCOME_COMPLETED)
        mig__dst_restore_full(mm);
    cleanup_handlers(mm, outcome);
    mm->end_ns = mig__now_ns(mm);
    mm->has_end = true;
    /* Every phase may go idle (test-migration checks the table's idle
     * column): a refusal is a broken table, which the user then reads in
     * error-desc, as the status is already terminal. */
    MigErr *perr = NULL;
    if (mm->phase != MIG_PHASE_IDLE &&
        mig__migration_set_phase(mm, MIG_PHASE_IDLE, &perr) < 0) {
        snprintf(mm->error, sizeof(mm->error), "%s", perr ? perr->msg : "phase table");
        mig_err_free(perr);
    }
    if (!mm->incoming && outcome != MIG_OUTCOME_COMPLETED && mm->stopped_guest &&
        mm->env.guest_resume) {
        mm->stopped_guest = false;
        mm->env.guest_resume(mm->env.opaque);
    }
    if (mm->env.finished)
        mm->env.finished(mm->env.opaque, mm->status);
}

void mig__migration_fail(MigMigration *mm, int err, const char *msg)
{
    /* Nothing to fail in none or a terminal state; in cancelling the
     * cancel wins and its defer finishes the job.  Exactly the states the
     * tables refuse an arc to failed from. */
    if (!mig_status_arc_allowed(mm->incoming, mm->status, MIG_STATUS_FAILED))
        return;
    snprintf(mm->error, sizeof(mm->error), "%s%s",
             mig__rp_reported_failure(mm) ? "the destination reported a failed load over the "
                                            "return path; "
                                          : "",
             msg ? msg : mig_errno_name(err));
    mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                  "migration failing in %s phase %s", mm->incoming ? "destination" : "source",
                  mig__phase_name(mm->phase));
    mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who, "migration error: %s (%s)",
                  mm->error, mig_errno_name(err));
    if (mig__migration_set_status(mm, MIG_STATUS_FAILED) < 0)
        return; /* cannot happen (checked above); the setter traced it */
    mig__migration_finish(mm, MIG_OUTCOME_FAILED);
}

void mig__migration_fail_err(MigMigration *mm, MigErr *err, int code, const char *fallback)
{
    mig__migration_fail(mm, err ? err->code : code, err ? err->msg : fallback);
    mig_err_free(err);
}

void mig_migration_free(MigMigration *mm)
{
    if (!mm)
        return;
    mig_loop_remove(mm->env.loop, mm->cancel_src);
    mm->cancel_src = NULL;
    if (!mig_status_is_terminal(mm->status) && mm->status != MIG_STATUS_NONE)
        cleanup_handlers(mm, MIG_OUTCOME_CANCELLED);
    mig__migration_close_stream(mm);
    cleanup_handlers(mm, MIG_OUTCOME_CANCELLED);
    if (mm->linger_t) {
        mig_transport_watch(mm->linger_t, 0, NULL, NULL);
        mig_transport_close(mm->linger_t);
    }
    free(mm);
}

MigStatus mig_migration_status(const MigMigration *mm)
{
    return mm->status;
}

bool mig_migration_is_incoming(const MigMigration *mm)
{
    return mm->incoming;
}

const char *mig_migration_error(const MigMigration *mm)
{
    return mm->error;
}

uint64_t mig_migration_stream_offset(const MigMigration *mm)
{
    return mm->s ? mig_stream_offset(mm->s) : 0;
}

bool mig__migration_running(const MigMigration *mm)
{
    return mm->status != MIG_STATUS_NONE && !mig_status_is_terminal(mm->status);
}

MigCapMask mig_migration_caps_known(const MigMigration *mm)
{
    return mm->caps_known;
}

MigCapMask mig_migration_caps(const MigMigration *mm)
{
    return mm->caps;
}

int mig_migration_set_caps(MigMigration *mm, MigCapMask named, MigCapMask states, MigErr **errp)
{
    /* A destination still waiting for its connection may change them (as
     * QEMU allows while -incoming is pending); a load or a send may not. */
    bool waiting = mm->incoming && mm->status == MIG_STATUS_SETUP && !mm->t;
    if (mig__migration_running(mm) && !waiting)
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    for (int c = 0; c < MIG_CAP__COUNT; c++) {
        if (!(named & MIG_CAP_BIT(c)) || !(states & MIG_CAP_BIT(c)))
            continue;
        if ((c == MIG_CAP_X_PAGE_FLIP || c == MIG_CAP_X_RAM_SHARE) &&
            !mm->env.loop->ops->fd_watch)
            return mig_err_set(errp, -ENOTSUP,
                               "Capability '%s' needs a unix socket that can pass "
                               "fds; the %s loop's links cannot carry fds",
                               mig_cap_name(c), mm->env.loop->ops->name);
        if (!(mm->caps_known & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL, "Capability '%s' is not known by this machine",
                               mig_cap_name(c));
        if (!(mig_caps_supported() & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -ENOTSUP, "Capability '%s' is not supported by migcert",
                               mig_cap_name(c));
    }
    mm->caps = (mm->caps & ~named) | (states & named);
    return 0;
}

void mig_migration_params(const MigMigration *mm, MigParams *out)
{
    *out = mm->params;
}

int mig_migration_set_params(MigMigration *mm, const MigParamsSet *set, MigErr **errp)
{
    int r = mig_params_validate(set, errp);
    if (r < 0)
        return r;
    mig_params_apply(&mm->params, set);
    return 0;
}

/* Per-migration arrays, sized by the registry as it is now. */
void mig__migration_prepare(MigMigration *mm)
{
    mm->nentries = mig_savevm_count(mm->env.savevm);
    size_t n = mm->nentries ? mm->nentries : 1;
    mm->started = mig_malloc0(n * sizeof(bool));
    mm->pass_done = mig_malloc0(n * sizeof(bool));
    mm->snap_taken = mig_malloc0(n * sizeof(bool));
    mm->loaded = mig_malloc0(n * sizeof(bool));
    mm->snap = mig_malloc0(n * sizeof(*mm->snap));
    mm->snap_len = mig_malloc0(n * sizeof(*mm->snap_len));
    mm->rp_in_len = mm->rp_out_len = 0;
    mm->rp_open = false;
    mm->drain_wait = false;
    mm->held_wait_ns = 0;
    mm->error[0] = '\0';
    mm->start_ns = mig__now_ns(mm);
    mm->has_setup_time = mm->has_end = mm->has_downtime = false;
    mm->downtime_ms = mm->expected_downtime_ms = 0;
    mm->passes = 0;
    mm->stopped_guest = false;
    mm->bandwidth = 0;
    mm->dirty_rate = 0;
}

/* ------------------------------------------------------------ cancel */

static void cancel_done(void *opaque)
{
    MigMigration *mm = opaque;
    mm->cancel_src = NULL;
    if (mm->status != MIG_STATUS_CANCELLING)
        return;
    if (mig__migration_set_status(mm, MIG_STATUS_CANCELLED) < 0)
        return; /* cannot happen (an arc of both tables); the setter traced it */
    mig__migration_finish(mm, MIG_OUTCOME_CANCELLED);
}

int mig_migration_cancel(MigMigration *mm)
{
    if (!mig__migration_running(mm) || mm->status == MIG_STATUS_CANCELLING)
        return 0;
    /* x-ram-share with everything sent: the destination may already run on
     * the shared memory, so the source must not resume; its SHUT decides
     * (docs/protocol-qemu-stream.md, shared memory). */
    if ((mm->caps & MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE)) && mm->phase == MIG_PHASE_SRC_RP_WAIT)
        return 0;
    int r = mig__migration_set_status(mm, MIG_STATUS_CANCELLING);
    if (r < 0)
        return r;
    /* Stop producing/consuming now; the teardown runs from the loop. */
    mig__migration_stop_sources(mm);
    if (!mm->cancel_src)
        mm->cancel_src = mig_loop_defer(mm->env.loop, cancel_done, mm);
    return 0;
}

/* ------------------------------------------------------------ query */

void mig_migration_query(const MigMigration *mm, MigInfo *out)
{
    memset(out, 0, sizeof(*out));
    out->status = mm->status;
    if (mm->status == MIG_STATUS_NONE)
        return;
    uint64_t end = mm->has_end ? mm->end_ns : mig_loop_now_ns(mm->env.loop);
    uint64_t elapsed_ns = end - mm->start_ns;
    out->has_total_time = true;
    out->total_time = elapsed_ns / NS_PER_MS;
    out->passes = mm->passes;
    if (mm->has_setup_time) {
        out->has_setup_time = true;
        out->setup_time = (mm->setup_end_ns - mm->start_ns) / NS_PER_MS;
    }
    if (!mm->incoming && mm->status == MIG_STATUS_ACTIVE) {
        out->has_expected_downtime = true;
        out->expected_downtime = mm->passes ? mm->expected_downtime_ms : mm->params.downtime_limit;
    }
    if (mm->has_downtime && mm->status == MIG_STATUS_COMPLETED) {
        out->has_downtime = true;
        out->downtime = mm->downtime_ms;
    }
    bool ram_states = mm->status == MIG_STATUS_ACTIVE || mm->status == MIG_STATUS_DEVICE ||
                      mm->status == MIG_STATUS_PRE_SWITCHOVER ||
                      mm->status == MIG_STATUS_COMPLETED;
    if (!mm->incoming && ram_states && mm->env.ram) {
        out->has_ram = true;
        mig_ram_info(mm->env.ram, &out->ram);
        double secs = (double)elapsed_ns / 1e9;
        if (secs > 0) {
            out->ram.mbps = (double)out->ram.transferred * 8.0 / 1e6 / secs;
            out->ram.pages_per_second =
                (uint64_t)((double)(out->ram.normal + out->ram.duplicate) / secs);
        }
        out->ram.dirty_pages_rate = mm->dirty_rate;
    }
    snprintf(out->error_desc, sizeof(out->error_desc), "%s", mm->error);
}
