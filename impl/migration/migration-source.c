/*
 * migration-source.c - the source side of a migration (migration.h has the
 * status diagram, migration-internal.h the phases).
 *
 * src_produce() is a loop callback that does a bounded slice of work and
 * returns: it writes sections while the stream holds less than SRC_HWM
 * unsent bytes, waits for MIG_LOOP_OUT otherwise, for a timer when
 * max-bandwidth says so, and re-arms itself with a defer after SRC_SLICE
 * bytes so that the guest and the monitor get their turn.
 *
 * Pre-copy: each pass gives every iterative handler PART sections until it
 * says the pass is done; then src_end_of_pass syncs, measures what reached
 * the peer and decides: switch over (the expected downtime fits the
 * downtime-limit, or x-max-passes is reached), drain queued bytes first, or
 * another pass.  Stop-and-copy: END sections, FULL sections, EOF and the
 * vmdescription, then every byte out (and, with the return path, the
 * destination's SHUT, migration-return-path.c).
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
#define RATE_WINDOW_NS 100000000ull
/* How long to watch a transport that holds bytes before the source has any
 * measure of the rate they leave at. */
#define DRAIN_PROBE_NS 10000000ull
/* How often the drain looks whether the peer has read the pages that went
 * by reference (MigTransportOps.held): a 1 MiB socket buffer takes the
 * destination about 0.2 ms to read. */
#define HELD_POLL_NS 100000ull
#define HELD_POLL_MAX_NS 10000000ull

/* Move the source to its next phase or status; false when the table refused
 * the arc (an engine bug: the migration then failed, naming the arc). */
static bool src_phase(MigMigration *mm, MigPhase to)
{
    MigErr *err = NULL;
    if (mig__migration_set_phase(mm, to, &err) == 0)
        return true;
    mig__migration_fail_err(mm, err, -EINVAL, "phase table");
    return false;
}

static bool src_status(MigMigration *mm, MigStatus to)
{
    MigErr *err = NULL;
    if (mig__migration_advance(mm, to, &err) == 0)
        return true;
    mig__migration_fail_err(mm, err, -EINVAL, "status table");
    return false;
}

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
    if (mm->rp_on)
        mig__rp_put_open(s);
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (!iter_active(e))
            continue;
        put_header(s, MIG_SECTION_START, e);
        mm->started[i] = true;
        MigErr *err = NULL;
        int r = e->iter->save_setup ? e->iter->save_setup(e->opaque, s, &err) : 0;
        if (r < 0) {
            mig_err_prepend(&err, "savevm: setup of '%s' failed", e->idstr);
            mig__migration_fail_err(mm, err, r, "savevm: setup failed");
            return r;
        }
        mig_stream_put_section_footer(s, e->section_id);
    }
    mm->setup_end_ns = mig__now_ns(mm);
    mm->has_setup_time = true;
    mm->pass_start_ns = mm->last_sync_ns = mm->window_start_ns = mig__now_ns(mm);
    mm->pass_start_bytes = mm->t->bytes_written - mig_transport_queued(mm->t);
    mm->window_start_off = mig_stream_offset(s);
    mm->entry = 0;
    if (!src_phase(mm, MIG_PHASE_SRC_ITERATE) || !src_status(mm, MIG_STATUS_ACTIVE))
        return -EINVAL;
    return 0;
}

static void src_switchover(MigMigration *mm)
{
    if (mm->env.guest_running && mm->env.guest_running(mm->env.opaque)) {
        mm->stopped_guest = true;
        if (mm->env.guest_stop)
            mm->env.guest_stop(mm->env.opaque);
    }
    mm->stop_ns = mig__now_ns(mm);
    mm->entry = 0;
    mm->in_section = false;
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_PAUSE_BEFORE_SWITCHOVER)) {
        if (src_phase(mm, MIG_PHASE_SRC_SWITCHOVER_WAIT))
            src_status(mm, MIG_STATUS_PRE_SWITCHOVER);
        return;
    }
    if (src_phase(mm, MIG_PHASE_SRC_END))
        src_status(mm, MIG_STATUS_DEVICE);
}

/* All handlers finished the pass: sync, measure, decide.  sync false: only
 * measure and decide again (after probing the rate of a transport that
 * holds bytes; not a new pass). */
static void src_end_of_pass(MigMigration *mm, bool sync)
{
    uint64_t now = mig__now_ns(mm);
    if (sync)
        mm->passes++;
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (sync && iter_active(e) && e->iter->save_sync)
            e->iter->save_sync(e->opaque);
        mm->pass_done[i] = false;
    }
    uint64_t dt = now - mm->last_sync_ns;
    if (sync && mm->env.ram && dt > 0)
        mm->dirty_rate = mig_ram_last_sync_dirtied(mm->env.ram) * NS_PER_S / dt;
    if (sync)
        mm->last_sync_ns = now;
    uint64_t dirty = 0;
    for (size_t i = 0; i < mm->nentries; i++) {
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (!iter_active(e) || !e->iter->save_pending)
            continue;
        uint64_t pre = 0, stop = 0;
        e->iter->save_pending(e->opaque, &pre, &stop);
        dirty += pre + stop;
    }
    /* What stop-and-copy must still push also includes the bytes already
     * queued in the stream (up to SRC_HWM) and in the transport (a socket's
     * send queue, the simulated link's buffer): the guest waits for those
     * too.  The rate is what reached the peer, not what a big transport
     * buffer took in. */
    uint64_t tq = mig_transport_queued(mm->t);
    uint64_t queued = mig_stream_pending(mm->s) + tq;
    uint64_t pending = dirty + queued;
    uint64_t delivered = mm->t->bytes_written - tq;
    uint64_t bytes = delivered > mm->pass_start_bytes ? delivered - mm->pass_start_bytes : 0;
    uint64_t pass_ns = now - mm->pass_start_ns;
    if (pass_ns > 0 && bytes > 0)
        mm->bandwidth = (uint64_t)((double)bytes * NS_PER_S / (double)pass_ns);
    else if (bytes > 0 || !mm->bandwidth)
        mm->bandwidth = UINT64_MAX; /* nothing measurable: the link kept up instantly */
    /* ... unless the transport still holds bytes: then nothing is known */
    bool unrated = mm->bandwidth == UINT64_MAX && tq > 0;
    double expected = mm->bandwidth == UINT64_MAX ? 0.0
                                                  : (double)pending * 1000.0 / (double)mm->bandwidth;
    mm->expected_downtime_ms = (uint64_t)expected;
    uint64_t syncs = mm->env.ram ? mig_ram_sync_count(mm->env.ram) : mm->passes + 1;
    /* sent and dirtied: what the HTML report draws per pass (docs/report.md) */
    uint64_t dirtied = sync && mm->env.ram ? mig_ram_last_sync_dirtied(mm->env.ram) : 0;
    mig_trace_log(mm->env.loop->trace, now, mm->who,
                  "pass %" PRIu64 " %s: sent %" PRIu64 " bytes, %" PRIu64
                  " pages dirtied, pending %" PRIu64 " bytes, expected downtime %" PRIu64 " ms",
                  mm->passes, sync ? "done" : "re-measured", bytes, dirtied, pending,
                  mm->expected_downtime_ms);
    if (sync)
        mig__migration_emit(mm, "MIGRATION_PASS", json_pack("{s:I}", "pass", (json_int_t)syncs));
    if (!src_alive(mm))
        return;
    bool converged = !unrated && expected <= (double)mm->params.downtime_limit;
    bool bounded = mm->params.x_max_passes && mm->passes >= mm->params.x_max_passes;
    if (!converged && !bounded &&
        (unrated || (mm->bandwidth != UINT64_MAX && mm->bandwidth > 0 &&
                     (double)(pending - queued) * 1000.0 / (double)mm->bandwidth <=
                         (double)mm->params.downtime_limit))) {
        /* The dirty pages alone would fit: what is in the way is bytes
         * queued earlier.  Let them drain to half the budget, then sync and
         * decide again (src_iterate).  Or the rate is not known yet (the
         * pass went into the transport's buffer at once): probe it, and
         * decide again without a new pass. */
        mm->drain_target = unrated ? 0
                                   : (uint64_t)((double)mm->params.downtime_limit *
                                                (double)mm->bandwidth / 2000.0);
        if (queued > mm->drain_target) {
            mm->drain_wait = true;
            mm->drain_timed = false;
            mm->drain_probe = unrated;
            mig_trace_log(mm->env.loop->trace, now, mm->who,
                          unrated ? "%" PRIu64 " queued bytes at an unknown rate: probing "
                                    "it (target %" PRIu64 ")"
                                  : "draining %" PRIu64 " queued bytes to %" PRIu64
                                    " before deciding",
                          queued, mm->drain_target);
            return;
        }
    }
    if (converged || bounded) {
        if (!converged)
            mig_trace_log(mm->env.loop->trace, now, mm->who,
                          "pass bound x-max-passes=%" PRIu64 " reached: stopping the guest",
                          mm->params.x_max_passes);
        src_switchover(mm);
        return;
    }
    mm->pass_start_ns = now;
    mm->pass_start_bytes = delivered;
}

/* One PART section (or the end of a pass).  Returns 1 when the producer must
 * wait for the rate-limit timer. */
static int src_iterate(MigMigration *mm)
{
    MigStream *s = mm->s;
    if (mm->drain_wait) {
        int r = mig_stream_flush(s);
        if (r < 0 && r != -EAGAIN)
            return 0; /* sticky error: the producer reports it */
        if (!mm->drain_probe && mig_stream_pending(s) > mm->drain_target) {
            mm->watching = true;
            mig_transport_watch(mm->t, MIG_LOOP_OUT, src_writable, mm);
            return 1;
        }
        /* The rest sits in the transport, and no readiness says when it has
         * left: wait as long as that takes at the measured rate (a probe
         * when there is none), then decide again with a fresh measure. */
        uint64_t q = mig_stream_pending(s) + mig_transport_queued(mm->t);
        if (q > mm->drain_target && !mm->drain_timed) {
            uint64_t wait = DRAIN_PROBE_NS;
            if (!mm->drain_probe && mm->bandwidth && mm->bandwidth != UINT64_MAX)
                wait = MIG_MAX(NS_PER_MS, (uint64_t)((double)(q - mm->drain_target) *
                                                     NS_PER_S / (double)mm->bandwidth));
            mm->drain_timed = true;
            mm->timer_src = mig_loop_timer_add(mm->env.loop, mig__now_ns(mm) + wait, src_timer, mm);
            return 1;
        }
        mm->drain_wait = false;
        src_end_of_pass(mm, !mm->drain_probe);
        return 0;
    }
    size_t budget = SRC_BUDGET;
    uint64_t bw = mm->params.max_bandwidth;
    if (bw) {
        uint64_t now = mig__now_ns(mm);
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
        const MigSaveEntry *e = mig__entry_at(mm, i);
        if (!iter_active(e) || mm->pass_done[i])
            continue;
        put_header(s, MIG_SECTION_PART, e);
        MigErr *err = NULL;
        int r = e->iter->save_iterate(e->opaque, s, budget, &err);
        if (r < 0) {
            mig_err_prepend(&err, "savevm: iteration of '%s' failed", e->idstr);
            mig__migration_fail_err(mm, err, r, "savevm: iteration failed");
            return 0;
        }
        mig_stream_put_section_footer(s, e->section_id);
        if (r == 1)
            mm->pass_done[i] = true;
        mm->entry = (i + 1) % n;
        return 0;
    }
    src_end_of_pass(mm, true);
    return 0;
}

static void src_end(MigMigration *mm)
{
    MigStream *s = mm->s;
    while (mm->entry < mm->nentries && !iter_active(mig__entry_at(mm, mm->entry)))
        mm->entry++;
    if (mm->entry >= mm->nentries) {
        mm->entry = 0;
        src_phase(mm, MIG_PHASE_SRC_FULL);
        return;
    }
    const MigSaveEntry *e = mig__entry_at(mm, mm->entry);
    if (!mm->in_section) {
        put_header(s, MIG_SECTION_END, e);
        mm->in_section = true;
    }
    MigErr *err = NULL;
    int r = e->iter->save_complete ? e->iter->save_complete(e->opaque, s, SRC_BUDGET, &err) : 1;
    if (r < 0) {
        mig_err_prepend(&err, "savevm: completion of '%s' failed", e->idstr);
        mig__migration_fail_err(mm, err, r, "savevm: completion failed");
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
        const MigSaveEntry *e = mig__entry_at(mm, mm->entry);
        if (e->kind != MIG_SAVE_FULL || !mig_savevm_entry_needed(e))
            continue;
        if (mig_fault_fire(MIG_FAULT_MIGRATION_OMIT_SECTION))
            continue; /* stream damage: the section is left out */
        put_header(s, MIG_SECTION_FULL, e);
        MigErr *err = NULL;
        int r = mig_savevm_entry_save_full(e, s, &err);
        if (r < 0) {
            mig_err_prepend(&err, "savevm: failed to save '%s'", e->idstr);
            mig__migration_fail_err(mm, err, r, "savevm: save failed");
            return;
        }
        mig_stream_put_section_footer(s, e->section_id);
        mm->entry++;
        return;
    }
    src_phase(mm, MIG_PHASE_SRC_TAIL);
}

static void src_tail(MigMigration *mm)
{
    if (mig_fault_fire(MIG_FAULT_MIGRATION_OMIT_EOF)) {
        src_phase(mm, MIG_PHASE_SRC_DRAIN); /* stream damage: no EOF, no trailer */
        return;
    }
    mig_stream_put_eof(mm->s);
    if (mig_fault_fire(MIG_FAULT_MIGRATION_OMIT_VMDESC)) {
        src_phase(mm, MIG_PHASE_SRC_DRAIN); /* stream damage: EOF, no trailer */
        return;
    }
    json_t *desc = mig_savevm_vmdesc(mm->env.savevm);
    char *text = json_dumps(desc, 0);
    json_decref(desc);
    if (text) {
        mig_stream_put_vmdesc(mm->s, text, strlen(text));
        free(text);
    }
    src_phase(mm, MIG_PHASE_SRC_DRAIN);
}

/* device -> completed: the destination has everything (and, with the
 * return path, said it loaded it). */
void mig__src_done(MigMigration *mm)
{
    uint64_t now = mig__now_ns(mm);
    mm->downtime_ms = (now - mm->stop_ns) / NS_PER_MS;
    mm->has_downtime = true;
    if (src_status(mm, MIG_STATUS_COMPLETED))
        mig__migration_finish(mm, MIG_OUTCOME_COMPLETED);
}

/* Every byte is out (the drain phase flushed). */
static void src_complete(MigMigration *mm)
{
    if (mm->t)
        mig_transport_shutdown_write(mm->t);
    if (!mm->rp_on) {
        mig__src_done(mm);
        return;
    }
    if (!src_phase(mm, MIG_PHASE_SRC_RP_WAIT))
        return;
    mig_trace_log(mm->env.loop->trace, mig__now_ns(mm), mm->who,
                  "all sent; waiting for the destination's SHUT on the return path");
    mig__rp_poll(mm);
}

static void src_produce(void *opaque)
{
    MigMigration *mm = opaque;
    mm->kick_src = NULL;
    if (!src_alive(mm) || mm->watching || mm->timer_src)
        return;
    uint64_t slice_start = mig_stream_offset(mm->s);
    for (;;) {
        if (!src_alive(mm) || mm->phase == MIG_PHASE_SRC_SWITCHOVER_WAIT)
            return;
        MigStream *s = mm->s;
        if (mig_stream_error(s)) {
            MigErr *err = NULL;
            int code = mig_stream_take_error(s, &err);
            mig_err_prepend(&err, "migration stream");
            mig__migration_fail_err(mm, err, code, "stream error");
            return;
        }
        size_t pend = mig_stream_pending(s);
        if (pend >= SRC_HWM || (mm->phase == MIG_PHASE_SRC_DRAIN && pend > 0)) {
            int r = mig_stream_flush(s);
            if (r == -EAGAIN) {
                if (mig_stream_pending(s) >= SRC_HWM / 2 || mm->phase == MIG_PHASE_SRC_DRAIN) {
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
        switch (mm->phase) {
        case MIG_PHASE_SRC_SETUP:
            src_setup(mm);
            break;
        case MIG_PHASE_SRC_ITERATE:
            if (src_iterate(mm) == 1)
                return;
            break;
        case MIG_PHASE_SRC_END:
            src_end(mm);
            break;
        case MIG_PHASE_SRC_FULL:
            src_full(mm);
            break;
        case MIG_PHASE_SRC_TAIL:
            src_tail(mm);
            break;
        case MIG_PHASE_SRC_DRAIN: {
            int r = mig_stream_flush(s);
            if (r == 0 && mig_transport_held(mm->t)) {
                /* Pages went by reference (a splicing unix socket) and the
                 * peer has not read them all: complete only once it has, so
                 * a `cont` on the completed source cannot change them.  No
                 * readiness says when: look again shortly, then less and
                 * less often (a peer that stopped reading costs no CPU). */
                mm->held_wait_ns = mm->held_wait_ns ? MIG_MIN(2 * mm->held_wait_ns, HELD_POLL_MAX_NS)
                                                    : HELD_POLL_NS;
                mm->timer_src = mig_loop_timer_add(mm->env.loop, mig__now_ns(mm) + mm->held_wait_ns,
                                                   src_timer, mm);
                return;
            }
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
    if (mig__migration_running(mm)) {
        mig_transport_close(t);
        return mig_err_set(errp, -EBUSY, "There's a migration process in progress");
    }
    /* A destination whose incoming migration completed runs the guest and
     * may migrate it on (as QEMU's); one that failed holds no guest. */
    if (mm->status != MIG_STATUS_NONE && mm->incoming && mm->status != MIG_STATUS_COMPLETED) {
        mig_transport_close(t);
        return mig_err_set(errp, -EINVAL, "this machine's incoming migration did not complete");
    }
    int fault = mig_fault_fire(MIG_FAULT_MIGRATION_START);
    if (fault) {
        mig_transport_close(t);
        return mig_err_set(errp, fault, "migration: start failed (injected fault)");
    }
    if (!mig_status_arc_allowed(false, mm->status, MIG_STATUS_SETUP) ||
        !mig__phase_arc_allowed(mm->phase, MIG_PHASE_SRC_SETUP)) {
        mig_transport_close(t);
        return mig_err_set(errp, -EINVAL,
                           "internal error: a source cannot start in status %s, phase %s",
                           mig_status_name(mm->status), mig__phase_name(mm->phase));
    }
    bool rp = (mm->caps & MIG_CAP_BIT(MIG_CAP_RETURN_PATH)) != 0;
    if (rp && !mig_transport_is_duplex(t)) {
        const char *kind = t->ops->kind;
        mig_transport_close(t);
        return mig_err_set(errp, -ENOTSUP,
                           "capability 'return-path' needs a connection the destination can "
                           "answer on; a '%s' transport has none (use a unix: or fd: socket, "
                           "or disable return-path)",
                           kind);
    }
    if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE)) {
        /* Shared memory: the RAM's memfd goes over the socket at setup
         * (docs/protocol-qemu-stream.md, shared memory). */
        bool ram_shared = mm->env.ram && mig_ram_all_shared(mm->env.ram);
        const char *why =
            !mig_transport_can_pass_fds(t) ? "a unix socket that can pass fds"
            : !ram_shared ? "guest RAM in shared memory (migcert vm --mem-share)"
            : !rp ? "capability 'return-path' too (the source gives its RAM away only once "
                    "the destination said it loaded everything)"
                  : NULL;
        if (why) {
            const char *kind = t->ops->kind;
            int r = mig_err_set(errp, -ENOTSUP,
                                "capability 'x-ram-share' needs %s; this is a '%s' transport "
                                "from a machine with%s shared RAM (disable x-ram-share)",
                                why, kind, ram_shared ? "" : "out");
            mig_transport_close(t);
            return r;
        }
    } else if (mm->caps & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)) {
        /* Page flipping: pages go through a pipe passed over the socket. */
        t = mig_transport_local_new(t, true, errp);
        if (!t)
            return -ENOTSUP;
    }
    mm->incoming = false;
    mig__migration_prepare(mm);
    mm->rp_on = rp;
    mm->t = t;
    mm->s = mig_stream_new_writer(t);
    /* Both arcs were checked above, before anything changed. */
    if (mig__migration_set_phase(mm, MIG_PHASE_SRC_SETUP, errp) < 0 ||
        mig__migration_advance(mm, MIG_STATUS_SETUP, errp) < 0)
        return -EINVAL;
    if (mm->status == MIG_STATUS_SETUP)
        src_kick(mm);
    return 0;
}

int mig_migration_continue(MigMigration *mm, MigStatus expected, MigErr **errp)
{
    if (mm->status != expected)
        return mig_err_set(errp, -EINVAL, "Migration not in expected state: %s",
                           mig_status_name(mm->status));
    if (mm->status != MIG_STATUS_PRE_SWITCHOVER || mm->phase != MIG_PHASE_SRC_SWITCHOVER_WAIT)
        return mig_err_set(errp, -EINVAL, "Migration not in expected state: %s",
                           mig_status_name(mm->status));
    if (!src_phase(mm, MIG_PHASE_SRC_END) || !src_status(mm, MIG_STATUS_DEVICE))
        return mig_err_set(errp, -EINVAL, "migrate-continue: %s", mm->error);
    if (mm->status == MIG_STATUS_DEVICE)
        src_kick(mm);
    return 0;
}
