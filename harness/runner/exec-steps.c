/*
 * exec-steps.c - the scenario step interpreter: `migrate`, `wait`,
 * `cancel`, `kill`, `restart`, the link steps (`drop`, `partition`, `heal`,
 * `slow`) and `device-error`, then the end wait (exec__migration_over).
 *
 * Called by: exec-case.c, once per step in order, then the end wait.
 * Every step starts with a "step N: KIND" trace line; a step that cannot
 * run as written fails the case with "step N (line L): ..." and the steps
 * after it do not run.  The keys: scenarios/README.md.
 *
 * Invariants: a `migrate` makes a new mem link per attempt (with the
 * scenario's bandwidth and latency); the fault injector's phase follows the
 * source's status between events (exec__sync_phase); management's watch
 * runs in every loop predicate, so it acts between events as a real
 * management layer would.
 */
#include <stdlib.h>
#include <string.h>

#include "exec-internal.h"

static ScnPhase phase_of(MigStatus st)
{
    switch (st) {
    case MIG_STATUS_SETUP:
        return SCN_PHASE_SETUP;
    case MIG_STATUS_ACTIVE:
    case MIG_STATUS_PRE_SWITCHOVER:
        return SCN_PHASE_ACTIVE;
    case MIG_STATUS_DEVICE:
        return SCN_PHASE_DEVICE;
    case MIG_STATUS_CANCELLING:
        return SCN_PHASE_CANCELLING;
    case MIG_STATUS_COMPLETED:
        return SCN_PHASE_COMPLETED;
    case MIG_STATUS_FAILED:
        return SCN_PHASE_FAILED;
    case MIG_STATUS_CANCELLED:
        return SCN_PHASE_CANCELLED;
    default:
        return SCN_PHASE_NONE;
    }
}

void exec__sync_phase(Run *run)
{
    fault_injector_set_phase(run->inj, phase_of(exec__side_status(&run->src)));
}

/* ---- steps ---- */

typedef struct WaitCtx {
    Run *run;
    const ScnStep *st;
    bool ended; /* the migration ended before the condition held */
} WaitCtx;

static bool wait_pred(void *opaque)
{
    WaitCtx *w = opaque;
    Run *run = w->run;
    const ScnStep *st = w->st;
    exec__sync_phase(run);
    exec__mgmt_watch(run);
    if (run->src.killed)
        return true;
    if (run->start_refused) {
        /* nothing started (refused by management or at once by the engine):
         * no condition can hold any more */
        w->ended = true;
        return true;
    }
    MigInfo info;
    mig_machine_query_migrate(run->src.m, &info);
    /* A migration that ended can no longer reach the awaited condition: the
     * wait ends and `expect` judges the outcome. */
    if (mig_status_is_terminal(info.status) &&
        !(st->has_phase && phase_of(info.status) == st->phase)) {
        w->ended = true;
        return true;
    }
    if (st->has_phase && phase_of(info.status) != st->phase)
        return false;
    if (st->iteration && info.passes < st->iteration)
        return false;
    if (st->ram_progress >= 0) {
        if (!info.ram.total || info.ram.transferred * 100 < info.ram.total * (uint64_t)st->ram_progress)
            return false;
    }
    if (st->bytes && (!run->link || mig_link_bytes(run->link, MIG_LINK_A_TO_B) < st->bytes))
        return false;
    if (st->has_device_state &&
        (!run->src.gpu || (int)mig_device_state(run->src.gpu) != st->device_state))
        return false;
    return !st->time_ns; /* time waits end by the deadline */
}

bool exec__migration_over(void *opaque)
{
    Run *run = opaque;
    exec__sync_phase(run);
    exec__mgmt_watch(run);
    MigStatus ss = exec__side_status(&run->src);
    bool src_done = run->src.killed || mig_status_is_terminal(ss) ||
                    (run->start_refused && ss == MIG_STATUS_NONE);
    /* the destination is over when terminal, dead or never started; one
     * still in setup/active waits for bytes or for the link to say EOF */
    MigStatus ds = exec__side_status(&run->dst);
    bool dst_done = run->dst.killed || !run->dst.m || mig_status_is_terminal(ds) ||
                    ds == MIG_STATUS_NONE;
    if (src_done && dst_done)
        exec__drop_trigger_judge(run);
    return src_done && dst_done;
}

/* ---- migrate ---- */

/* A new attempt: what the oracles compare with is taken now. */
static void migrate_begin(Run *run)
{
    /* a device-data drop belongs to the attempt it was armed in: said now,
     * never carried over to this one's link */
    exec__drop_trigger_judge(run);
    /* snapshot the source devices: the "unchanged on failure" oracle */
    for (size_t i = 0; i < run->src.ndevs; i++) {
        mig_fake_device_free(run->src.before[i]);
        run->src.before[i] = mig_fake_device_clone(run->src.devs[i]);
    }
    run->src_was_running = mig_machine_running(run->src.m);
    run->migrating = true;
    run->gpu_sessions = run->src.gpu_rec ? run->src.gpu_rec->sessions : 0;
    run->mgmt_resumed = false; /* a new attempt */
    mig_err_free(run->paused_err);
    run->paused_err = NULL;
}

/* Start both ends over the new link's ends a (source) and b (destination). */
static void migrate_start(Run *run, MigTransport *a, MigTransport *b)
{
    MigTransport *ta = exec__side_transport_new(run->src.sl, a, &run->live_transports);
    MigTransport *tb = exec__side_transport_new(run->dst.sl, b, &run->live_transports);
    MigFaultSide prev;
    MigErr *e = NULL;
    exec__side_enter(run->dst.sl, &prev);
    int rc = mig_machine_incoming_transport(run->dst.m, tb, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0) {
        exec__log(run, "incoming refused: %s", e ? e->msg : "?");
        mig_err_free(e);
        e = NULL;
    }
    exec__side_enter(run->src.sl, &prev);
    rc = mig_machine_migrate_transport(run->src.m, ta, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0) {
        /* a refused start is an outcome (failed), not a harness error */
        exec__log(run, "migrate refused: %s", e ? e->msg : "?");
        snprintf(run->r->mig_error, sizeof(run->r->mig_error), "%s", e ? e->msg : "");
        mig_err_free(e);
        run->start_refused = true;
    } else {
        run->start_refused = false;
    }
}

static int step_migrate(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    migrate_begin(run);
    if (s->preflight) {
        MigErr *e = NULL;
        if (exec__mgmt_preflight(run, &e) < 0) {
            /* management does not start it: an outcome (failed), source untouched */
            exec__log(run, "migrate refused by management: %s", e->msg);
            snprintf(run->r->mig_error, sizeof(run->r->mig_error), "%s", e->msg);
            mig_err_free(e);
            run->start_refused = true;
            run->preflight_failed = true;
            return 0;
        }
    }
    /* with SPICE, management first tells the source where its clients go */
    if (s->spice.on && s->spice.migrate_info != SCN_MIGRATE_INFO_MANUAL &&
        run->c->selftest != EXEC_SELFTEST_SPICE_SERVER) {
        int rc = exec__spice_migrate_info(run, s->spice.migrate_info == SCN_MIGRATE_INFO_WAIT, errp);
        if (rc < 0)
            return rc;
    }
    MigLinkParams lp = {.bandwidth = s->bandwidth, .latency_ns = s->latency_ns};
    MigTransport *a, *b;
    int rc = mig_transport_mem_pair(run->loop, &lp, &a, &b);
    if (rc < 0)
        return mig_err_set(errp, rc, "cannot create the mem link");
    if (run->link)
        mig_link_unref(run->link);
    run->link = mig_transport_mem_link(a);
    /* Keyed pages cross the link as keys (harness/sim/link.c). */
    mig_transport_mem_set_ram(a, mig_machine_ram(run->src.m));
    mig_transport_mem_set_ram(b, mig_machine_ram(run->dst.m));
    migrate_start(run, a, b);
    return 0;
}

/* ---- the other steps ---- */

static int step_wait(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    WaitCtx w = {run, st, false};
    uint64_t now = mig_loop_now_ns(run->loop);
    uint64_t deadline = st->time_ns ? now + st->time_ns : run->s->timeout_ns;
    if (deadline <= now)
        deadline = now + 1;
    int rc = mig_loop_run_until(run->loop, wait_pred, &w, deadline);
    if (w.ended)
        exec__log(run, "step %zu: wait ended early: migration %s", i + 1,
                  mig_status_name(exec__side_status(&run->src)));
    /* time is an upper bound; with nothing left to run, time passes */
    if (st->time_ns && (rc == -ETIMEDOUT || rc == -EDEADLK))
        return 0;
    if (rc < 0)
        return mig_err_set(errp, rc, "step %zu (line %d): wait never held (%s; migration %s)",
                           i + 1, st->line, mig_errno_name(rc),
                           mig_status_name(exec__side_status(&run->src)));
    return 0;
}

static int step_cancel(Run *run)
{
    MigFaultSide prev;
    exec__side_enter(run->src.sl, &prev);
    mig_machine_migrate_cancel(run->src.m);
    fault_injector_set_side(run->inj, prev);
    return 0;
}

static int step_kill(Run *run, const ScnStep *st)
{
    Side *sd = st->side == MIG_FAULT_SIDE_SRC ? &run->src : &run->dst;
    sd->killed = true;
    sd->sl->dead = true;
    if (run->link)
        mig_link_drop_now(run->link);
    exec__spice_side_killed(run, st->side);
    return 0;
}

static int step_restart(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    if (!run->dst.killed)
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): restart of a live "
                           "destination", i + 1, st->line);
    exec__drop_trigger_judge(run); /* against the destination it was aimed at */
    exec__side_destroy(&run->dst);
    memset(&run->dst, 0, sizeof(run->dst));
    return exec__side_create(run, &run->dst, MIG_FAULT_SIDE_DST, &run->s->dst, run->dst_rel,
                             run->dst_machine_type, true, run->c->seed ^ 0xd57, errp);
}

/* drop, partition, heal, slow: they act on the migration's link. */
static int step_link(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    if (!run->link && run->preflight_failed) {
        exec__log(run, "step %zu: no link (management did not start the migration)", i + 1);
        return 0;
    }
    if (!run->link)
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): %s before migrate", i + 1,
                           st->line, scn_step_names[st->kind]);
    switch (st->kind) {
    case SCN_STEP_DROP:
        if (st->device_data >= 0)
            return exec__drop_trigger_arm(run, i, st, errp);
        if (st->bytes)
            mig_link_drop_at(run->link, MIG_LINK_A_TO_B, st->bytes);
        else
            mig_link_drop_now(run->link);
        return 0;
    case SCN_STEP_PARTITION:
    case SCN_STEP_HEAL:
        mig_link_partition(run->link, st->kind == SCN_STEP_PARTITION);
        return 0;
    default: { /* SCN_STEP_SLOW */
        MigLinkParams lp = {.bandwidth = st->bandwidth ? st->bandwidth : run->s->bandwidth,
                            .latency_ns = st->has_latency ? st->latency_ns : run->s->latency_ns};
        mig_link_set_params(run->link, &lp);
        return 0;
    }
    }
}

static int step_device_error(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    Side *sd = st->side == MIG_FAULT_SIDE_SRC ? &run->src : &run->dst;
    if (run->start_refused) {
        exec__log(run, "step %zu: no migration runs: the device stays healthy", i + 1);
        return 0;
    }
    if (!sd->gpu || strcmp(st->device, "fake-gpu"))
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): the %s has no VFIO-style "
                           "device %s", i + 1, st->line, mig_fault_side_names[st->side],
                           st->device);
    if (st->device_state >= 0) {
        sd->gpu_rec->fail_on = st->device_state;
        exec__log(run, "step %zu: %s device %s fails when it enters %s", i + 1,
                  mig_fault_side_names[st->side], st->device,
                  mig_dev_state_name((MigDevState)st->device_state));
        return 0;
    }
    MigDevBackend *be = mig_device_backend(sd->gpu);
    MigDevState was = mig_device_state(sd->gpu);
    int rc = be->ops->force_error(be, errp);
    if (rc < 0)
        return rc;
    mig_device_refresh(sd->gpu);
    exec__log(run, "step %zu: %s device %s: %s -> ERROR (forced)", i + 1,
              mig_fault_side_names[st->side], st->device, mig_dev_state_name(was));
    return 0;
}

int exec__run_step(Run *run, size_t i, MigErr **errp)
{
    const ScnStep *st = &run->s->steps[i];
    const char *kind = scn_step_names[st->kind];
    exec__log(run, "step %zu: %s", i + 1, kind);
    switch (st->kind) {
    case SCN_STEP_MIGRATE:
        return step_migrate(run, errp);
    case SCN_STEP_WAIT:
        return step_wait(run, i, st, errp);
    case SCN_STEP_CANCEL:
        return step_cancel(run);
    case SCN_STEP_KILL:
        return step_kill(run, st);
    case SCN_STEP_RESTART:
        return step_restart(run, i, st, errp);
    case SCN_STEP_DROP:
    case SCN_STEP_PARTITION:
    case SCN_STEP_HEAL:
    case SCN_STEP_SLOW:
        return step_link(run, i, st, errp);
    case SCN_STEP_DEVICE_ERROR:
        return step_device_error(run, i, st, errp);
    case SCN_STEP_CLIENT_MIGRATE_INFO:
    case SCN_STEP_CLIENT:
        return exec__spice_step(run, i, st, errp);
    default:
        return mig_err_set(errp, -ENOTSUP, "step %zu (line %d): %s is not supported by the "
                           "executor", i + 1, st->line, kind);
    }
}
