/*
 * migration.c - the source and destination state machines (see migration.h
 * for the diagram and the transition -> function list).
 *
 * Both sides are loop callbacks that do a bounded slice of work and return:
 *   - source: src_produce() writes sections while the stream holds less than
 *     SRC_HWM unsent bytes, waits for MIG_LOOP_OUT otherwise, for a timer
 *     when max-bandwidth says so, and re-arms itself with a defer after
 *     SRC_SLICE bytes so that the guest and the monitor get their turn;
 *   - destination: dst_consume() parses restartable units (section header,
 *     RAM record, FULL section, footer) and waits for MIG_LOOP_IN when the
 *     stream is starved.
 * Cancel sets "cancelling" at once and tears down from a defer, so it is safe
 * from any callback, including a MIGRATION event handler.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration-internal.h"
#include "ram/ram.h"

#define SRC_HWM ((size_t)8 << 20)
#define SRC_BUDGET ((size_t)1 << 20)
#define SRC_SLICE ((uint64_t)64 << 20)
#define DST_SLICE ((uint64_t)64 << 20)
#define RATE_WINDOW_NS 100000000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

typedef enum SrcPhase {
    SP_IDLE,
    SP_SETUP,
    SP_ITERATE,
    SP_SWITCHOVER_WAIT,
    SP_END,
    SP_FULL,
    SP_TAIL,
    SP_DRAIN,
} SrcPhase;

typedef enum DstPhase {
    DP_IDLE,
    DP_HEADER,
    DP_CONFIG,
    DP_SECTION,
    DP_PAYLOAD,
    DP_FOOTER,
    DP_VMDESC,
} DstPhase;

typedef struct SectionMap {
    uint32_t section_id;
    size_t entry;
    uint32_t version_id;
} SectionMap;

struct MigMigration {
    MigMigrationEnv env;
    char who[32];
    char machine_type[256];
    MigStatus status;
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

    /* source */
    SrcPhase sp;
    size_t entry;
    bool in_section;
    uint64_t pass_start_ns, pass_start_bytes;
    uint64_t window_start_ns, window_start_off;
    uint64_t bandwidth; /* bytes/s measured over the last pass; 0 unknown */
    uint64_t last_sync_ns, dirty_rate;

    /* destination */
    DstPhase dp;
    MigSectionHeader hdr;
    size_t cur_entry;
    SectionMap *secs;
    size_t nsecs;
};

/* ------------------------------------------------------------ state tables */

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

static uint64_t now_ns(const MigMigration *mm)
{
    return mig_loop_now_ns(mm->env.loop);
}

static void emit(MigMigration *mm, const char *name, json_t *data)
{
    if (mm->env.event && (mm->caps & MIG_CAP_BIT(MIG_CAP_EVENTS)))
        mm->env.event(mm->env.opaque, name, data);
    json_decref(data);
}

int mig__migration_set_status(MigMigration *mm, MigStatus to)
{
    MigStatus from = mm->status;
    if (!mig_status_arc_allowed(mm->incoming, from, to)) {
        mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                      "migration %s -> %s refused", mig_status_name(from), mig_status_name(to));
        return -EINVAL;
    }
    mm->status = to;
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "migration %s -> %s",
                  mig_status_name(from), mig_status_name(to));
    emit(mm, "MIGRATION", json_pack("{s:s}", "status", mig_status_name(to)));
    return 0;
}

void mig__migration_set_direction(MigMigration *mm, bool incoming)
{
    if (mm->status == MIG_STATUS_NONE)
        mm->incoming = incoming;
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
    mig_params_default(&mm->params);
    return mm;
}

static void stop_sources(MigMigration *mm)
{
    mig_loop_remove(mm->env.loop, mm->kick_src);
    mm->kick_src = NULL;
    mig_loop_remove(mm->env.loop, mm->timer_src);
    mm->timer_src = NULL;
    if (mm->watching && mm->t)
        mig_transport_watch(mm->t, 0, NULL, NULL);
    mm->watching = false;
}

static void close_stream(MigMigration *mm)
{
    stop_sources(mm);
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
    free(mm->secs);
    mm->secs = NULL;
    mm->nsecs = 0;
    mm->nentries = 0;
}

/* Common end of a migration: the state is already terminal. */
static void finish(MigMigration *mm, MigOutcome outcome)
{
    close_stream(mm);
    cleanup_handlers(mm, outcome);
    mm->end_ns = now_ns(mm);
    mm->has_end = true;
    mm->sp = SP_IDLE;
    mm->dp = DP_IDLE;
    if (!mm->incoming && outcome != MIG_OUTCOME_COMPLETED && mm->stopped_guest &&
        mm->env.guest_resume) {
        mm->stopped_guest = false;
        mm->env.guest_resume(mm->env.opaque);
    }
    if (mm->env.finished)
        mm->env.finished(mm->env.opaque, mm->status);
}

static void fail(MigMigration *mm, int err, const char *msg)
{
    if (mig_status_is_terminal(mm->status) || mm->status == MIG_STATUS_NONE)
        return;
    if (mm->status == MIG_STATUS_CANCELLING)
        return; /* the cancel wins; its defer finishes the job */
    snprintf(mm->error, sizeof(mm->error), "%s", msg ? msg : mig_errno_name(err));
    mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who, "migration error: %s (%s)",
                  mm->error, mig_errno_name(err));
    mig__migration_set_status(mm, MIG_STATUS_FAILED);
    finish(mm, MIG_OUTCOME_FAILED);
}

static void fail_err(MigMigration *mm, MigErr *err, int code, const char *fallback)
{
    fail(mm, err ? err->code : code, err ? err->msg : fallback);
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
    close_stream(mm);
    cleanup_handlers(mm, MIG_OUTCOME_CANCELLED);
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

static bool running(const MigMigration *mm)
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
    if (running(mm))
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    for (int c = 0; c < MIG_CAP__COUNT; c++) {
        if (!(named & MIG_CAP_BIT(c)) || !(states & MIG_CAP_BIT(c)))
            continue;
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
    if (set->has_max_bandwidth)
        mm->params.max_bandwidth = set->p.max_bandwidth;
    if (set->has_downtime_limit)
        mm->params.downtime_limit = set->p.downtime_limit;
    if (set->has_x_max_passes)
        mm->params.x_max_passes = set->p.x_max_passes;
    return 0;
}

/* Per-migration arrays, sized by the registry as it is now. */
static void prepare(MigMigration *mm)
{
    mm->nentries = mig_savevm_count(mm->env.savevm);
    size_t n = mm->nentries ? mm->nentries : 1;
    mm->started = mig_malloc0(n * sizeof(bool));
    mm->pass_done = mig_malloc0(n * sizeof(bool));
    mm->error[0] = '\0';
    mm->start_ns = now_ns(mm);
    mm->has_setup_time = mm->has_end = mm->has_downtime = false;
    mm->downtime_ms = mm->expected_downtime_ms = 0;
    mm->passes = 0;
    mm->stopped_guest = false;
    mm->bandwidth = 0;
    mm->dirty_rate = 0;
}

/* ------------------------------------------------------------ source */

static void src_produce(void *opaque);

static void src_kick(MigMigration *mm)
{
    if (!mm->kick_src)
        mm->kick_src = mig_loop_defer(mm->env.loop, src_produce, mm);
}

static void src_writable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    src_produce(mm);
}

static void src_timer(void *opaque)
{
    MigMigration *mm = opaque;
    mm->timer_src = NULL;
    src_produce(mm);
}

static bool src_alive(const MigMigration *mm)
{
    return !mm->incoming && (mm->status == MIG_STATUS_SETUP || mm->status == MIG_STATUS_ACTIVE ||
                             mm->status == MIG_STATUS_DEVICE);
}

static const MigSaveEntry *entry_at(MigMigration *mm, size_t i)
{
    return mig_savevm_entry(mm->env.savevm, i);
}

static bool iter_active(const MigSaveEntry *e)
{
    return e && e->kind == MIG_SAVE_ITERATIVE && (!e->iter->is_active || e->iter->is_active(e->opaque));
}

static void put_header(MigStream *s, uint8_t type, const MigSaveEntry *e)
{
    MigSectionHeader h;
    memset(&h, 0, sizeof(h));
    h.type = type;
    h.section_id = e->section_id;
    snprintf(h.idstr, sizeof(h.idstr), "%s", e->idstr);
    h.instance_id = e->instance_id;
    h.version_id = e->version_id;
    mig_stream_put_section_header(s, &h);
}

static int src_setup(MigMigration *mm)
{
    MigStream *s = mm->s;
    const char *caps[MIG_CAP__COUNT];
    size_t ncaps = 0;
    for (int c = 0; c < MIG_CAP__COUNT; c++)
        if ((mm->caps & MIG_CAP_BIT(c)) && mig_cap_validatable(c))
            caps[ncaps++] = mig_cap_name(c);
    if (mm->env.ram)
        mig_ram_set_caps(mm->env.ram, mm->caps);
    mig_stream_put_file_header(s);
    mig_stream_put_configuration(s, mm->machine_type, caps, ncaps);
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (!iter_active(e))
            continue;
        put_header(s, MIG_SECTION_START, e);
        mm->started[i] = true;
        MigErr *err = NULL;
        int r = e->iter->save_setup ? e->iter->save_setup(e->opaque, s, &err) : 0;
        if (r < 0) {
            mig_err_prepend(&err, "savevm: setup of '%s' failed", e->idstr);
            fail_err(mm, err, r, "savevm: setup failed");
            return r;
        }
        mig_stream_put_section_footer(s, e->section_id);
    }
    mm->setup_end_ns = now_ns(mm);
    mm->has_setup_time = true;
    mm->pass_start_ns = mm->last_sync_ns = mm->window_start_ns = now_ns(mm);
    mm->pass_start_bytes = mm->t->bytes_written;
    mm->window_start_off = mig_stream_offset(s);
    mm->sp = SP_ITERATE;
    mm->entry = 0;
    mig__migration_set_status(mm, MIG_STATUS_ACTIVE);
    return 0;
}

static void src_switchover(MigMigration *mm)
{
    if (mm->env.guest_running && mm->env.guest_running(mm->env.opaque)) {
        mm->stopped_guest = true;
        if (mm->env.guest_stop)
            mm->env.guest_stop(mm->env.opaque);
    }
    mm->stop_ns = now_ns(mm);
    mm->entry = 0;
    mm->in_section = false;
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_PAUSE_BEFORE_SWITCHOVER)) {
        mm->sp = SP_SWITCHOVER_WAIT;
        mig__migration_set_status(mm, MIG_STATUS_PRE_SWITCHOVER);
        return;
    }
    mm->sp = SP_END;
    mig__migration_set_status(mm, MIG_STATUS_DEVICE);
}

/* All handlers finished the pass: sync, measure, decide. */
static void src_end_of_pass(MigMigration *mm)
{
    uint64_t now = now_ns(mm);
    mm->passes++;
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (iter_active(e) && e->iter->save_sync)
            e->iter->save_sync(e->opaque);
        mm->pass_done[i] = false;
    }
    uint64_t dt = now - mm->last_sync_ns;
    if (mm->env.ram && dt > 0)
        mm->dirty_rate = mig_ram_last_sync_dirtied(mm->env.ram) * NS_PER_S / dt;
    mm->last_sync_ns = now;
    uint64_t pending = 0;
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (!iter_active(e) || !e->iter->save_pending)
            continue;
        uint64_t pre = 0, stop = 0;
        e->iter->save_pending(e->opaque, &pre, &stop);
        pending += pre + stop;
    }
    uint64_t bytes = mm->t->bytes_written - mm->pass_start_bytes;
    uint64_t pass_ns = now - mm->pass_start_ns;
    if (pass_ns > 0 && bytes > 0)
        mm->bandwidth = (uint64_t)((double)bytes * NS_PER_S / (double)pass_ns);
    else if (bytes > 0 || !mm->bandwidth)
        mm->bandwidth = UINT64_MAX; /* nothing measurable: the link kept up instantly */
    double expected = mm->bandwidth == UINT64_MAX ? 0.0
                                                  : (double)pending * 1000.0 / (double)mm->bandwidth;
    mm->expected_downtime_ms = (uint64_t)expected;
    uint64_t syncs = mm->env.ram ? mig_ram_sync_count(mm->env.ram) : mm->passes + 1;
    mig_trace_log(mm->env.loop->trace, now, mm->who,
                  "pass %" PRIu64 " done: pending %" PRIu64 " bytes, expected downtime %" PRIu64
                  " ms",
                  mm->passes, pending, mm->expected_downtime_ms);
    emit(mm, "MIGRATION_PASS", json_pack("{s:I}", "pass", (json_int_t)syncs));
    if (!src_alive(mm))
        return;
    bool converged = expected <= (double)mm->params.downtime_limit;
    bool bounded = mm->params.x_max_passes && mm->passes >= mm->params.x_max_passes;
    if (converged || bounded) {
        if (!converged)
            mig_trace_log(mm->env.loop->trace, now, mm->who,
                          "pass bound x-max-passes=%" PRIu64 " reached: stopping the guest",
                          mm->params.x_max_passes);
        src_switchover(mm);
        return;
    }
    mm->pass_start_ns = now;
    mm->pass_start_bytes = mm->t->bytes_written;
}

/* One PART section (or the end of a pass).  Returns 1 when the producer must
 * wait for the rate-limit timer. */
static int src_iterate(MigMigration *mm)
{
    MigStream *s = mm->s;
    size_t budget = SRC_BUDGET;
    uint64_t bw = mm->params.max_bandwidth;
    if (bw) {
        uint64_t now = now_ns(mm);
        if (now >= mm->window_start_ns + RATE_WINDOW_NS) {
            mm->window_start_ns = now;
            mm->window_start_off = mig_stream_offset(s);
        }
        uint64_t allowed = bw / (NS_PER_S / RATE_WINDOW_NS);
        if (allowed == 0)
            allowed = 1;
        uint64_t used = mig_stream_offset(s) - mm->window_start_off;
        if (used >= allowed) {
            mm->timer_src = mig_loop_timer_add(mm->env.loop, mm->window_start_ns + RATE_WINDOW_NS,
                                               src_timer, mm);
            return 1;
        }
        budget = (size_t)MIG_MIN((uint64_t)budget, allowed - used);
    }
    size_t n = mm->nentries;
    for (size_t k = 0; k < n; k++) {
        size_t i = (mm->entry + k) % n;
        const MigSaveEntry *e = entry_at(mm, i);
        if (!iter_active(e) || mm->pass_done[i])
            continue;
        put_header(s, MIG_SECTION_PART, e);
        MigErr *err = NULL;
        int r = e->iter->save_iterate(e->opaque, s, budget, &err);
        if (r < 0) {
            mig_err_prepend(&err, "savevm: iteration of '%s' failed", e->idstr);
            fail_err(mm, err, r, "savevm: iteration failed");
            return 0;
        }
        mig_stream_put_section_footer(s, e->section_id);
        if (r == 1)
            mm->pass_done[i] = true;
        mm->entry = (i + 1) % n;
        return 0;
    }
    src_end_of_pass(mm);
    return 0;
}

static void src_end(MigMigration *mm)
{
    MigStream *s = mm->s;
    while (mm->entry < mm->nentries && !iter_active(entry_at(mm, mm->entry)))
        mm->entry++;
    if (mm->entry >= mm->nentries) {
        mm->sp = SP_FULL;
        mm->entry = 0;
        return;
    }
    const MigSaveEntry *e = entry_at(mm, mm->entry);
    if (!mm->in_section) {
        put_header(s, MIG_SECTION_END, e);
        mm->in_section = true;
    }
    MigErr *err = NULL;
    int r = e->iter->save_complete ? e->iter->save_complete(e->opaque, s, SRC_BUDGET, &err) : 1;
    if (r < 0) {
        mig_err_prepend(&err, "savevm: completion of '%s' failed", e->idstr);
        fail_err(mm, err, r, "savevm: completion failed");
        return;
    }
    if (r == 1) {
        mig_stream_put_section_footer(s, e->section_id);
        mm->in_section = false;
        mm->entry++;
    }
}

static void src_full(MigMigration *mm)
{
    MigStream *s = mm->s;
    for (; mm->entry < mm->nentries; mm->entry++) {
        const MigSaveEntry *e = entry_at(mm, mm->entry);
        if (e->kind != MIG_SAVE_FULL || !mig_savevm_entry_needed(e))
            continue;
        put_header(s, MIG_SECTION_FULL, e);
        MigErr *err = NULL;
        int r = mig_savevm_entry_save_full(e, s, &err);
        if (r < 0) {
            mig_err_prepend(&err, "savevm: failed to save '%s'", e->idstr);
            fail_err(mm, err, r, "savevm: save failed");
            return;
        }
        mig_stream_put_section_footer(s, e->section_id);
        mm->entry++;
        return;
    }
    mm->sp = SP_TAIL;
}

static void src_tail(MigMigration *mm)
{
    mig_stream_put_eof(mm->s);
    json_t *desc = mig_savevm_vmdesc(mm->env.savevm);
    char *text = json_dumps(desc, 0);
    json_decref(desc);
    if (text) {
        mig_stream_put_vmdesc(mm->s, text, strlen(text));
        free(text);
    }
    mm->sp = SP_DRAIN;
}

static void src_complete(MigMigration *mm)
{
    uint64_t now = now_ns(mm);
    mm->downtime_ms = (now - mm->stop_ns) / NS_PER_MS;
    mm->has_downtime = true;
    if (mm->t)
        mig_transport_shutdown_write(mm->t);
    mig__migration_set_status(mm, MIG_STATUS_COMPLETED);
    finish(mm, MIG_OUTCOME_COMPLETED);
}

static void src_produce(void *opaque)
{
    MigMigration *mm = opaque;
    mm->kick_src = NULL;
    if (!src_alive(mm) || mm->watching || mm->timer_src)
        return;
    uint64_t slice_start = mig_stream_offset(mm->s);
    for (;;) {
        if (!src_alive(mm) || mm->sp == SP_SWITCHOVER_WAIT)
            return;
        MigStream *s = mm->s;
        if (mig_stream_error(s)) {
            MigErr *err = NULL;
            int code = mig_stream_take_error(s, &err);
            mig_err_prepend(&err, "migration stream");
            fail_err(mm, err, code, "stream error");
            return;
        }
        size_t pend = mig_stream_pending(s);
        if (pend >= SRC_HWM || (mm->sp == SP_DRAIN && pend > 0)) {
            int r = mig_stream_flush(s);
            if (r == -EAGAIN) {
                if (mig_stream_pending(s) >= SRC_HWM / 2 || mm->sp == SP_DRAIN) {
                    mm->watching = true;
                    mig_transport_watch(mm->t, MIG_LOOP_OUT, src_writable, mm);
                    return;
                }
            } else if (r < 0) {
                continue; /* sticky error: reported above */
            }
            continue;
        }
        if (mig_stream_offset(s) - slice_start >= SRC_SLICE) {
            src_kick(mm);
            return;
        }
        switch (mm->sp) {
        case SP_SETUP:
            src_setup(mm);
            break;
        case SP_ITERATE:
            if (src_iterate(mm) == 1)
                return;
            break;
        case SP_END:
            src_end(mm);
            break;
        case SP_FULL:
            src_full(mm);
            break;
        case SP_TAIL:
            src_tail(mm);
            break;
        case SP_DRAIN: {
            int r = mig_stream_flush(s);
            if (r == 0) {
                src_complete(mm);
                return;
            }
            if (r == -EAGAIN) {
                mm->watching = true;
                mig_transport_watch(mm->t, MIG_LOOP_OUT, src_writable, mm);
                return;
            }
            break;
        }
        default:
            return;
        }
    }
}

int mig_migration_start(MigMigration *mm, MigTransport *t, MigErr **errp)
{
    if (running(mm)) {
        mig_transport_close(t);
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    }
    if (mm->status != MIG_STATUS_NONE && mm->incoming) {
        mig_transport_close(t);
        return mig_err_set(errp, -EINVAL, "this machine was a migration destination");
    }
    if (fiu_fail("mig/migration/start")) {
        mig_transport_close(t);
        return mig_err_set(errp, -EIO, "migration: start failed (injected fault)");
    }
    mm->incoming = false;
    prepare(mm);
    mm->t = t;
    mm->s = mig_stream_new_writer(t);
    mm->sp = SP_SETUP;
    mig__migration_set_status(mm, MIG_STATUS_SETUP);
    if (mm->status == MIG_STATUS_SETUP)
        src_kick(mm);
    return 0;
}

int mig_migration_continue(MigMigration *mm, MigStatus expected, MigErr **errp)
{
    if (mm->status != expected)
        return mig_err_set(errp, -EINVAL, "Migration not in expected state: %s",
                           mig_status_name(mm->status));
    if (mm->status != MIG_STATUS_PRE_SWITCHOVER || mm->sp != SP_SWITCHOVER_WAIT)
        return mig_err_set(errp, -EINVAL, "Migration not in expected state: %s",
                           mig_status_name(mm->status));
    mm->sp = SP_END;
    mig__migration_set_status(mm, MIG_STATUS_DEVICE);
    if (mm->status == MIG_STATUS_DEVICE)
        src_kick(mm);
    return 0;
}

/* ------------------------------------------------------------ destination */

static void dst_consume(void *opaque);

static void dst_readable(MigTransport *t, uint32_t events, void *opaque)
{
    MigMigration *mm = opaque;
    mig_transport_watch(t, 0, NULL, NULL);
    mm->watching = false;
    mm->hangup_seen = (events & (MIG_LOOP_ERR | MIG_LOOP_HUP)) != 0;
    dst_consume(mm);
}

static void dst_timer(void *opaque)
{
    MigMigration *mm = opaque;
    mm->timer_src = NULL;
    dst_consume(mm);
}

static bool dst_alive(const MigMigration *mm)
{
    return mm->incoming && (mm->status == MIG_STATUS_SETUP || mm->status == MIG_STATUS_ACTIVE);
}

static int check_config(MigMigration *mm, const MigStreamConfig *cfg, MigErr **errp)
{
    size_t len = strlen(cfg->machine);
    if (strncmp(cfg->machine, mm->machine_type, len) != 0)
        return mig_err_set(errp, -EINVAL, "Machine type received is '%s' and local is '%s'",
                           cfg->machine, mm->machine_type);
    MigCapMask got = 0;
    for (size_t i = 0; i < cfg->ncaps; i++) {
        int c = mig_cap_parse(cfg->caps[i]);
        if (c < 0 || !mig_cap_validatable(c))
            return mig_err_set(errp, -EINVAL,
                               "Received capability '%s' is not a validatable capability known "
                               "here",
                               cfg->caps[i]);
        if (!(mm->caps & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL,
                               "capability '%s' announced by the source is not enabled on the "
                               "destination",
                               cfg->caps[i]);
        got |= MIG_CAP_BIT(c);
    }
    for (int c = 0; c < MIG_CAP__COUNT; c++)
        if ((mm->caps & MIG_CAP_BIT(c)) && mig_cap_validatable(c) && !(got & MIG_CAP_BIT(c)))
            return mig_err_set(errp, -EINVAL,
                               "capability '%s' is enabled on the destination but the source "
                               "did not announce it",
                               mig_cap_name(c));
    return 0;
}

static long find_entry(MigMigration *mm, const char *idstr, uint32_t instance)
{
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = entry_at(mm, i);
        if (e->instance_id == instance && strcmp(e->idstr, idstr) == 0)
            return (long)i;
    }
    return -1;
}

static const SectionMap *find_section(MigMigration *mm, uint32_t id)
{
    for (size_t i = 0; i < mm->nsecs; i++)
        if (mm->secs[i].section_id == id)
            return &mm->secs[i];
    return NULL;
}

/* Look up a START/FULL header's handler and check its version. */
static int resolve_entry(MigMigration *mm, const MigSectionHeader *h, MigErr **errp)
{
    long i = find_entry(mm, h->idstr, h->instance_id);
    if (i < 0)
        return mig_err_set(errp, -EINVAL,
                           "Unknown savevm section or instance '%s' %u. Make sure that your "
                           "current VM setup matches your saved VM setup, including any "
                           "hotplugged devices",
                           h->idstr, h->instance_id);
    const MigSaveEntry *e = entry_at(mm, (size_t)i);
    if (h->version_id > e->version_id)
        return mig_err_set(errp, -EINVAL, "savevm: unsupported version %u for '%s' v%u",
                           h->version_id, e->idstr, e->version_id);
    bool want_iter = h->type == MIG_SECTION_START;
    if (want_iter != (e->kind == MIG_SAVE_ITERATIVE))
        return mig_err_set(errp, -EINVAL, "savevm: section '%s' arrived as %s, expected %s",
                           e->idstr, mig_section_type_name(h->type) ? mig_section_type_name(h->type) : "?",
                           e->kind == MIG_SAVE_ITERATIVE ? "start/part/end" : "full");
    return (int)i;
}

/* One unit.  Returns 0 progress, 1 done, -EAGAIN starved, other <0 failed
 * (*errp set). */
static int dst_step(MigMigration *mm, MigErr **errp)
{
    MigStream *s = mm->s;
    int r;
    switch (mm->dp) {
    case DP_HEADER:
        mig_stream_mark(s);
        r = mig_stream_get_file_header(s, errp);
        if (r < 0)
            return r;
        for (size_t i = 0; i < mm->nentries; i++) {
            const MigSaveEntry *e = entry_at(mm, i);
            if (e->kind != MIG_SAVE_ITERATIVE)
                continue;
            mm->started[i] = true;
            r = e->iter->load_setup ? e->iter->load_setup(e->opaque, errp) : 0;
            if (r < 0) {
                mig_err_prepend(errp, "load setup of '%s'", e->idstr);
                return r;
            }
        }
        mm->dp = DP_CONFIG;
        mig__migration_set_status(mm, MIG_STATUS_ACTIVE);
        return 0;
    case DP_CONFIG: {
        mig_stream_mark(s);
        int b = mig_stream_peek_u8(s, 0);
        if (b < 0 && mig_stream_starved(s))
            return -EAGAIN;
        if (b != MIG_SECTION_CONFIGURATION)
            return mig_err_set(errp, -EINVAL, "Configuration section missing (offset %llu)",
                               (unsigned long long)mig_stream_offset(s));
        MigStreamConfig cfg;
        r = mig_stream_get_configuration(s, &cfg, errp);
        if (r < 0)
            return r;
        r = check_config(mm, &cfg, errp);
        if (r < 0)
            return r;
        mm->dp = DP_SECTION;
        return 0;
    }
    case DP_SECTION: {
        mig_stream_mark(s);
        MigSectionHeader h;
        r = mig_stream_get_section_header(s, &h, errp);
        if (r < 0)
            return r;
        switch (h.type) {
        case MIG_SECTION_START:
        case MIG_SECTION_FULL: {
            int i = resolve_entry(mm, &h, errp);
            if (i < 0)
                return i;
            if (fiu_fail("mig/migration/load"))
                return mig_err_set(errp, -EIO, "loading section '%s' failed (injected fault)",
                                   h.idstr);
            const MigSaveEntry *e = entry_at(mm, (size_t)i);
            mm->hdr = h;
            mm->cur_entry = (size_t)i;
            if (h.type == MIG_SECTION_FULL) {
                r = mig_savevm_entry_load_full(e, s, h.version_id, errp);
                if (r == -EAGAIN || (r == 0 && mig_stream_starved(s)))
                    return -EAGAIN;
                if (r < 0) {
                    mig_err_prepend(errp, "error while loading state for instance 0x%x of "
                                          "device '%s'",
                                    h.instance_id, h.idstr);
                    return r;
                }
                mm->dp = DP_FOOTER;
                return 0;
            }
            if (!find_section(mm, h.section_id)) {
                mm->secs = mig_realloc(mm->secs, (mm->nsecs + 1) * sizeof(*mm->secs));
                mm->secs[mm->nsecs++] = (SectionMap){h.section_id, (size_t)i, h.version_id};
            }
            mm->dp = DP_PAYLOAD;
            return 0;
        }
        case MIG_SECTION_PART:
        case MIG_SECTION_END: {
            const SectionMap *m = find_section(mm, h.section_id);
            if (!m)
                return mig_err_set(errp, -EINVAL, "Unknown savevm section %u (offset %llu)",
                                   h.section_id, (unsigned long long)h.offset);
            const MigSaveEntry *e = entry_at(mm, m->entry);
            mm->hdr = h;
            snprintf(mm->hdr.idstr, sizeof(mm->hdr.idstr), "%s", e->idstr);
            mm->hdr.instance_id = e->instance_id;
            mm->hdr.version_id = m->version_id;
            mm->cur_entry = m->entry;
            mm->dp = DP_PAYLOAD;
            return 0;
        }
        case MIG_SECTION_EOF:
            mm->dp = DP_VMDESC;
            return 0;
        default:
            return mig_err_set(errp, -EINVAL, "Unknown savevm section type %d (offset %llu)",
                               h.type, (unsigned long long)h.offset);
        }
    }
    case DP_PAYLOAD: {
        const MigSaveEntry *e = entry_at(mm, mm->cur_entry);
        r = e->iter->load_state(e->opaque, s, &mm->hdr, errp);
        if (r == -EAGAIN)
            return r;
        if (r < 0) {
            mig_err_prepend(errp, "error while loading state section id %u(%s)",
                            mm->hdr.section_id, e->idstr);
            return r;
        }
        mm->dp = DP_FOOTER;
        return 0;
    }
    case DP_FOOTER:
        mig_stream_mark(s);
        r = mig_stream_get_section_footer(s, mm->hdr.section_id, mm->hdr.idstr, errp);
        if (r < 0)
            return r;
        mm->dp = DP_SECTION;
        return 0;
    case DP_VMDESC: {
        mig_stream_mark(s);
        if (mig_stream_at_eof(s))
            return 1; /* no trailer: QEMU only logs this */
        if (mig_stream_starved(s))
            return -EAGAIN;
        int b = mig_stream_peek_u8(s, 0);
        if (b < 0)
            return mig_stream_starved(s) ? -EAGAIN : 1;
        if (b != MIG_SECTION_VMDESCRIPTION) {
            mig_trace_log(mm->env.loop->trace, now_ns(mm), mm->who,
                          "Expected vmdescription section, but got %d", b);
            return 1;
        }
        MigSectionHeader h;
        r = mig_stream_get_section_header(s, &h, errp);
        if (r < 0)
            return r;
        char *json = NULL;
        size_t len = 0;
        r = mig_stream_get_vmdesc(s, &json, &len, errp);
        free(json);
        if (r < 0)
            return r;
        return 1;
    }
    default:
        return -EINVAL;
    }
}

static void dst_complete(MigMigration *mm)
{
    mig__migration_set_status(mm, MIG_STATUS_COMPLETED);
    finish(mm, MIG_OUTCOME_COMPLETED);
}

static void dst_kick(MigMigration *mm)
{
    if (!mm->kick_src)
        mm->kick_src = mig_loop_defer(mm->env.loop, dst_consume, mm);
}

static void dst_consume(void *opaque)
{
    MigMigration *mm = opaque;
    mm->kick_src = NULL;
    if (!dst_alive(mm) || mm->watching || mm->timer_src)
        return;
    uint64_t start = mig_stream_offset(mm->s);
    for (;;) {
        if (!dst_alive(mm))
            return;
        if (mig_stream_offset(mm->s) - start >= DST_SLICE) {
            dst_kick(mm);
            return;
        }
        MigErr *err = NULL;
        int r = dst_step(mm, &err);
        if (r == -EAGAIN) {
            mig_err_free(err);
            mig_stream_rewind(mm->s);
            if (!dst_alive(mm))
                return;
            if (mm->hangup_seen) {
                /* The transport reported an error or hang-up but the read
                 * still says "not yet" (bytes in flight before a reset):
                 * a level-triggered watch would fire again at once, so poll
                 * with a short timer instead of spinning. */
                mm->hangup_seen = false;
                mm->timer_src = mig_loop_timer_add(mm->env.loop, now_ns(mm) + NS_PER_MS,
                                                   dst_timer, mm);
                return;
            }
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_IN, dst_readable, mm);
            return;
        }
        if (r < 0) {
            if (!err)
                mig_stream_take_error(mm->s, &err);
            fail_err(mm, err, r, "load failed");
            return;
        }
        if (r == 1) {
            dst_complete(mm);
            return;
        }
    }
}

int mig_migration_listen(MigMigration *mm, MigErr **errp)
{
    if (mm->status != MIG_STATUS_NONE)
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    mm->incoming = true;
    prepare(mm);
    return mig__migration_set_status(mm, MIG_STATUS_SETUP);
}

int mig_migration_start_incoming(MigMigration *mm, MigTransport *t, MigErr **errp)
{
    if (mm->status == MIG_STATUS_NONE) {
        int r = mig_migration_listen(mm, errp);
        if (r < 0) {
            mig_transport_close(t);
            return r;
        }
    }
    if (!mm->incoming || mm->status != MIG_STATUS_SETUP || mm->t) {
        mig_transport_close(t);
        return mig_err_set(errp, -EBUSY, "The incoming migration has already been started");
    }
    mm->t = t;
    mm->s = mig_stream_new_reader(t);
    mm->dp = DP_HEADER;
    dst_kick(mm);
    return 0;
}

void mig_migration_fail(MigMigration *mm, int err, const char *why)
{
    fail(mm, err, why);
}

/* ------------------------------------------------------------ cancel */

static void cancel_done(void *opaque)
{
    MigMigration *mm = opaque;
    mm->cancel_src = NULL;
    if (mm->status != MIG_STATUS_CANCELLING)
        return;
    mig__migration_set_status(mm, MIG_STATUS_CANCELLED);
    finish(mm, MIG_OUTCOME_CANCELLED);
}

int mig_migration_cancel(MigMigration *mm)
{
    if (!running(mm) || mm->status == MIG_STATUS_CANCELLING)
        return 0;
    int r = mig__migration_set_status(mm, MIG_STATUS_CANCELLING);
    if (r < 0)
        return r;
    /* Stop producing/consuming now; the teardown runs from the loop. */
    stop_sources(mm);
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
