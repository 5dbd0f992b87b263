/*
 * exec.c - the scenario executor and its oracles (see exec.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/faults.h"
#include "devices/releases.h"
#include "exec.h"
#include "machine/machine.h"
#include "sim/sim.h"
#include "transport/transport.h"
#include "workload/workload.h"

/* ---- side views of the sim loop ---- */

typedef struct SideLoop {
    MigLoop base;
    MigLoop *inner;
    FaultInjector *inj;
    MigFaultSide side;
    bool dead; /* killed: its callbacks are never delivered again */
} SideLoop;

typedef struct SideSrc {
    SideLoop *sl;
    MigLoopCb cb;
    void *opaque;
    MigLoopSource *inner;
} SideSrc;

static void side_enter(SideLoop *sl, MigFaultSide *prev)
{
    *prev = fault_injector_side(sl->inj);
    fault_injector_set_side(sl->inj, sl->side);
}

static void side_tramp(void *p)
{
    SideSrc *s = p;
    SideLoop *sl = s->sl;
    MigLoopCb cb = s->cb;
    void *opaque = s->opaque;
    sl->base.live_sources--;
    free(s);
    if (sl->dead)
        return;
    MigFaultSide prev;
    side_enter(sl, &prev);
    cb(opaque);
    fault_injector_set_side(sl->inj, prev);
}

static uint64_t side_now(MigLoop *l)
{
    return mig_loop_now_ns(((SideLoop *)l)->inner);
}

static MigLoopSource *side_timer_add(MigLoop *l, uint64_t deadline, MigLoopCb cb, void *opaque)
{
    SideLoop *sl = (SideLoop *)l;
    SideSrc *s = mig_malloc0(sizeof(*s));
    *s = (SideSrc){sl, cb, opaque, NULL};
    s->inner = mig_loop_timer_add(sl->inner, deadline, side_tramp, s);
    if (!s->inner) {
        free(s);
        return NULL;
    }
    l->live_sources++;
    return (MigLoopSource *)s;
}

static MigLoopSource *side_defer(MigLoop *l, MigLoopCb cb, void *opaque)
{
    SideLoop *sl = (SideLoop *)l;
    SideSrc *s = mig_malloc0(sizeof(*s));
    *s = (SideSrc){sl, cb, opaque, NULL};
    s->inner = mig_loop_defer(sl->inner, side_tramp, s);
    if (!s->inner) {
        free(s);
        return NULL;
    }
    l->live_sources++;
    return (MigLoopSource *)s;
}

static void side_remove(MigLoop *l, MigLoopSource *src)
{
    SideSrc *s = (SideSrc *)src;
    mig_loop_remove(((SideLoop *)l)->inner, s->inner);
    l->live_sources--;
    free(s);
}

static int side_run_once(MigLoop *l)
{
    return ((SideLoop *)l)->inner->ops->run_once(((SideLoop *)l)->inner);
}

static void side_free(MigLoop *l)
{
    free(l);
}

static const MigLoopOps side_ops = {
    .name = "sim-side",
    .now_ns = side_now,
    .timer_add = side_timer_add,
    .defer = side_defer,
    .remove = side_remove,
    .run_once = side_run_once,
    .free = side_free,
};

static SideLoop *side_loop_new(MigLoop *inner, FaultInjector *inj, MigFaultSide side)
{
    SideLoop *sl = mig_malloc0(sizeof(*sl));
    sl->base.ops = &side_ops;
    sl->base.trace = inner->trace;
    mig_prng_fork(&inner->prng, &sl->base.prng);
    sl->inner = inner;
    sl->inj = inj;
    sl->side = side;
    return sl;
}

/* ---- side views of a mem transport (watch callbacks carry the side) ---- */

typedef struct SideTransport {
    MigTransport base;
    MigTransport *inner;
    SideLoop *sl;
    MigTransportCb cb;
    void *opaque;
} SideTransport;

static ssize_t st_read(MigTransport *t, void *buf, size_t len)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = mig_transport_read(st->inner, buf, len);
    if (n > 0)
        t->bytes_read += (uint64_t)n;
    return n;
}

static ssize_t st_write(MigTransport *t, const void *buf, size_t len)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = mig_transport_write(st->inner, buf, len);
    if (n > 0)
        t->bytes_written += (uint64_t)n;
    return n;
}

static ssize_t st_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    SideTransport *st = (SideTransport *)t;
    ssize_t n = mig_transport_writev(st->inner, iov, iovcnt);
    if (n > 0)
        t->bytes_written += (uint64_t)n;
    return n;
}

static void st_tramp(MigTransport *inner, uint32_t events, void *opaque)
{
    (void)inner;
    SideTransport *st = opaque;
    SideLoop *sl = st->sl; /* the callback may close (free) st */
    if (sl->dead || !st->cb)
        return;
    MigFaultSide prev;
    side_enter(sl, &prev);
    st->cb(&st->base, events, st->opaque);
    fault_injector_set_side(sl->inj, prev);
}

static int st_watch(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque)
{
    SideTransport *st = (SideTransport *)t;
    st->cb = events ? cb : NULL;
    st->opaque = opaque;
    return mig_transport_watch(st->inner, events, events ? st_tramp : NULL, st);
}

static int st_shutdown_write(MigTransport *t)
{
    return mig_transport_shutdown_write(((SideTransport *)t)->inner);
}

static void st_close(MigTransport *t)
{
    SideTransport *st = (SideTransport *)t;
    mig_transport_close(st->inner);
    free(st);
}

static const MigTransportOps st_ops = {
    .kind = "mem",
    .read = st_read,
    .write = st_write,
    .writev = st_writev,
    .watch = st_watch,
    .shutdown_write = st_shutdown_write,
    .close = st_close,
};

static MigTransport *side_transport_new(SideLoop *sl, MigTransport *inner)
{
    SideTransport *st = mig_malloc0(sizeof(*st));
    st->base.ops = &st_ops;
    st->base.loop = &sl->base;
    st->inner = inner;
    st->sl = sl;
    return &st->base;
}

/* ---- one side: a machine and its devices ---- */

typedef struct Run Run;
static void harness_log(Run *run, const char *fmt, ...) MIG_PRINTF(2, 3);

typedef struct Side {
    SideLoop *sl;
    MigMachine *m;
    const char *release;
    char machine_type[32];
    MigFakeDevice *devs[16];
    MigFakeDevice *before[16]; /* src: state when the migration started */
    size_t ndevs;
    bool killed;
} Side;

struct Run {
    const RunCase *c;
    const Scenario *s;
    RunResult *r;
    MigLoop *loop;
    MigTrace *trace;
    FaultInjector *inj;
    Side src, dst;
    MigWorkload *wl;
    MigLink *link;
    bool migrating; /* a migrate step ran */
    bool start_refused; /* the last migrate was refused at once */
    bool src_was_running;
    char *tracebuf;
    size_t tracelen;
    FILE *tracef;
};

static MigCapMask caps_mask(const char *const *names)
{
    MigCapMask m = 0;
    for (size_t i = 0; names[i]; i++) {
        int c = mig_cap_parse(names[i]);
        if (c >= 0)
            m |= MIG_CAP_BIT(c);
    }
    return m;
}

static int side_create(Run *run, Side *sd, MigFaultSide side, const ScnMachine *sm,
                       const char *release, const char *machine_type, bool incoming,
                       uint64_t dev_seed, MigErr **errp)
{
    const MigRelease *rel = mig_release_find(release);
    sd->release = rel->name;
    snprintf(sd->machine_type, sizeof(sd->machine_type), "%s", machine_type);
    sd->sl = side_loop_new(run->loop, run->inj, side);
    MigMachineOptions o = {
        .name = mig_fault_side_names[side],
        .machine_type = sd->machine_type,
        .ram_size = sm->ram,
        .incoming = incoming,
        .caps_known = caps_mask(rel->caps),
    };
    MigFaultSide prev;
    side_enter(sd->sl, &prev);
    sd->m = mig_machine_new(&sd->sl->base, &o, errp);
    fault_injector_set_side(run->inj, prev);
    if (!sd->m) {
        mig_err_prepend(errp, "%s machine", mig_fault_side_names[side]);
        return -EINVAL;
    }
    for (size_t i = 0; i < sm->ndevices && i < MIG_ARRAY_SIZE(sd->devs); i++) {
        const char *type = sm->devices[i];
        if (!strcmp(type, "fake-gpu"))
            return mig_err_set(errp, -ENOTSUP,
                               "device fake-gpu (VFIO-style, impl/device) is not wired into "
                               "the scenario executor yet");
        if (side == MIG_FAULT_SIDE_DST && !mig_release_has_device(release, type)) {
            /* management cannot give a release a device it does not ship */
            harness_log(run, "dst release %s has no %s: started without it", release, type);
            continue;
        }
        MigFakeDevice *d = mig_fake_device_new(type, release, machine_type,
                                               dev_seed + i * 7919, errp);
        if (!d) {
            mig_err_prepend(errp, "%s", mig_fault_side_names[side]);
            return -ENODEV;
        }
        sd->devs[sd->ndevs++] = d;
        if (mig_fake_device_register(d, mig_machine_savevm(sd->m), errp) < 0)
            return -EINVAL;
    }
    return 0;
}

static void side_destroy(Side *sd)
{
    if (sd->m) {
        MigFaultSide prev;
        side_enter(sd->sl, &prev);
        mig_machine_free(sd->m);
        fault_injector_set_side(sd->sl->inj, prev);
        sd->m = NULL;
    }
    for (size_t i = 0; i < sd->ndevs; i++) {
        mig_fake_device_free(sd->devs[i]);
        mig_fake_device_free(sd->before[i]);
        sd->devs[i] = sd->before[i] = NULL;
    }
    sd->ndevs = 0;
    if (sd->sl)
        mig_loop_free(&sd->sl->base);
    sd->sl = NULL;
}

static MigStatus side_status(const Side *sd)
{
    return sd->m ? mig_migration_status(mig_machine_migration(sd->m)) : MIG_STATUS_NONE;
}

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

static void sync_phase(Run *run)
{
    fault_injector_set_phase(run->inj, phase_of(side_status(&run->src)));
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
    sync_phase(run);
    if (run->src.killed)
        return true;
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
    return !st->time_ns; /* time waits end by the deadline */
}

static bool migration_over(void *opaque)
{
    Run *run = opaque;
    sync_phase(run);
    MigStatus ss = side_status(&run->src);
    bool src_done = run->src.killed || mig_status_is_terminal(ss) ||
                    (run->start_refused && ss == MIG_STATUS_NONE);
    /* the destination is over when terminal, dead or never started; one
     * still in setup/active waits for bytes or for the link to say EOF */
    MigStatus ds = side_status(&run->dst);
    bool dst_done = run->dst.killed || !run->dst.m || mig_status_is_terminal(ds) ||
                    ds == MIG_STATUS_NONE;
    return src_done && dst_done;
}

static void harness_log(Run *run, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    mig_trace_log(run->trace, mig_loop_now_ns(run->loop), "harness", "%s", buf);
}

static int do_migrate(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    MigLinkParams lp = {.bandwidth = s->bandwidth, .latency_ns = s->latency_ns};
    MigTransport *a, *b;
    int rc = mig_transport_mem_pair(run->loop, &lp, &a, &b);
    if (rc < 0)
        return mig_err_set(errp, rc, "cannot create the mem link");
    if (run->link)
        mig_link_unref(run->link);
    run->link = mig_transport_mem_link(a);
    MigTransport *ta = side_transport_new(run->src.sl, a);
    MigTransport *tb = side_transport_new(run->dst.sl, b);
    /* snapshot the source devices: the "unchanged on failure" oracle */
    for (size_t i = 0; i < run->src.ndevs; i++) {
        mig_fake_device_free(run->src.before[i]);
        run->src.before[i] = mig_fake_device_clone(run->src.devs[i]);
    }
    run->src_was_running = mig_machine_running(run->src.m);
    MigFaultSide prev;
    MigErr *e = NULL;
    side_enter(run->dst.sl, &prev);
    rc = mig_machine_incoming_transport(run->dst.m, tb, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0) {
        harness_log(run, "incoming refused: %s", e ? e->msg : "?");
        mig_err_free(e);
        e = NULL;
    }
    side_enter(run->src.sl, &prev);
    rc = mig_machine_migrate_transport(run->src.m, ta, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0) {
        /* a refused start is an outcome (failed), not a harness error */
        harness_log(run, "migrate refused: %s", e ? e->msg : "?");
        snprintf(run->r->mig_error, sizeof(run->r->mig_error), "%s", e ? e->msg : "");
        mig_err_free(e);
        run->start_refused = true;
    } else {
        run->start_refused = false;
    }
    run->migrating = true;
    return 0;
}

static int run_step(Run *run, size_t i, MigErr **errp)
{
    const ScnStep *st = &run->s->steps[i];
    harness_log(run, "step %zu: %s", i + 1, scn_step_names[st->kind]);
    switch (st->kind) {
    case SCN_STEP_MIGRATE:
        return do_migrate(run, errp);
    case SCN_STEP_WAIT: {
        WaitCtx w = {run, st, false};
        uint64_t now = mig_loop_now_ns(run->loop);
        uint64_t deadline = st->time_ns ? now + st->time_ns : run->s->timeout_ns;
        if (deadline <= now)
            deadline = now + 1;
        int rc = mig_loop_run_until(run->loop, wait_pred, &w, deadline);
        if (w.ended)
            harness_log(run, "step %zu: wait ended early: migration %s", i + 1,
                        mig_status_name(side_status(&run->src)));
        /* time is an upper bound; with nothing left to run, time passes */
        if (st->time_ns && (rc == -ETIMEDOUT || rc == -EDEADLK))
            return 0;
        if (rc < 0)
            return mig_err_set(errp, rc,
                               "step %zu (line %d): wait never held (%s; migration %s)", i + 1,
                               st->line, mig_errno_name(rc),
                               mig_status_name(side_status(&run->src)));
        return 0;
    }
    case SCN_STEP_CANCEL: {
        MigFaultSide prev;
        side_enter(run->src.sl, &prev);
        mig_machine_migrate_cancel(run->src.m);
        fault_injector_set_side(run->inj, prev);
        return 0;
    }
    case SCN_STEP_KILL: {
        Side *sd = st->side == MIG_FAULT_SIDE_SRC ? &run->src : &run->dst;
        sd->killed = true;
        sd->sl->dead = true;
        if (run->link)
            mig_link_drop_now(run->link);
        return 0;
    }
    case SCN_STEP_RESTART: {
        if (!run->dst.killed)
            return mig_err_set(errp, -EINVAL, "step %zu (line %d): restart of a live "
                               "destination", i + 1, st->line);
        side_destroy(&run->dst);
        memset(&run->dst, 0, sizeof(run->dst));
        return side_create(run, &run->dst, MIG_FAULT_SIDE_DST, &run->s->dst,
                           run->c->pair_dst ? run->c->pair_dst : run->s->dst.release,
                           run->src.machine_type, true, run->c->seed ^ 0xd57, errp);
    }
    case SCN_STEP_DROP:
        if (!run->link)
            return mig_err_set(errp, -EINVAL, "step %zu (line %d): drop before migrate", i + 1,
                               st->line);
        if (st->bytes)
            mig_link_drop_at(run->link, MIG_LINK_A_TO_B, st->bytes);
        else
            mig_link_drop_now(run->link);
        return 0;
    case SCN_STEP_PARTITION:
    case SCN_STEP_HEAL:
        if (!run->link)
            return mig_err_set(errp, -EINVAL, "step %zu (line %d): %s before migrate", i + 1,
                               st->line, scn_step_names[st->kind]);
        mig_link_partition(run->link, st->kind == SCN_STEP_PARTITION);
        return 0;
    case SCN_STEP_SLOW: {
        if (!run->link)
            return mig_err_set(errp, -EINVAL, "step %zu (line %d): slow before migrate", i + 1,
                               st->line);
        MigLinkParams lp = {.bandwidth = st->bandwidth ? st->bandwidth : run->s->bandwidth,
                            .latency_ns = st->has_latency ? st->latency_ns : run->s->latency_ns};
        mig_link_set_params(run->link, &lp);
        return 0;
    }
    case SCN_STEP_DEVICE_ERROR:
    default:
        return mig_err_set(errp, -ENOTSUP, "step %zu (line %d): %s is not supported by the "
                           "executor yet", i + 1, st->line, scn_step_names[st->kind]);
    }
}

/* ---- oracles ---- */

static const char *outcome_of(Run *run)
{
    MigStatus st = run->src.killed ? side_status(&run->dst) : side_status(&run->src);
    switch (st) {
    case MIG_STATUS_COMPLETED:
        return "completed";
    case MIG_STATUS_FAILED:
        return "failed";
    case MIG_STATUS_CANCELLED:
        return "cancelled";
    default:
        if (run->start_refused)
            return "failed";
        return run->migrating ? "timeout" : "none";
    }
}

/* The errno the engine traced with its error ("<who>: migration error: ...
 * (EIO)"); 0 when none. */
static int traced_errno(Run *run, const char *who)
{
    fflush(run->tracef);
    char pat[64];
    snprintf(pat, sizeof(pat), " %s: migration error: ", who);
    const char *p = run->tracebuf ? strstr(run->tracebuf, pat) : NULL;
    if (!p)
        return 0;
    const char *eol = strchr(p, '\n');
    const char *open = eol ? eol : p + strlen(p);
    while (open > p && *open != '(')
        open--;
    char name[32];
    size_t n = strcspn(open + 1, ")");
    if (*open != '(' || n >= sizeof(name))
        return 0;
    memcpy(name, open + 1, n);
    name[n] = 0;
    return mig_errno_parse(name);
}

static int oracle_outcome(Run *run, const char *outcome, MigErr **errp)
{
    const Scenario *s = run->s;
    RunResult *r = run->r;
    Side *src = &run->src, *dst = &run->dst;
    MigStatus ds = side_status(dst);
    if (!strcmp(outcome, "timeout") || !strcmp(outcome, "none"))
        return mig_err_set(errp, -ETIMEDOUT,
                           "migration still %s after %.3f s of virtual time (timeout)",
                           mig_status_name(side_status(src)), (double)s->timeout_ns / 1e9);
    if (!strcmp(outcome, "completed")) {
        if (ds != MIG_STATUS_COMPLETED && !dst->killed)
            return mig_err_set(errp, -EPROTO,
                               "source completed but the destination is %s (%s): the guest "
                               "is lost",
                               mig_status_name(ds),
                               mig_migration_error(mig_machine_migration(dst->m)));
        if (!dst->killed && !mig_machine_running(dst->m))
            return mig_err_set(errp, -EPROTO, "destination completed but is %s, not running",
                               mig_run_state_name(mig_machine_run_state(dst->m)));
        if (!src->killed && mig_machine_run_state(src->m) != MIG_RUN_STATE_POSTMIGRATE)
            return mig_err_set(errp, -EPROTO, "source completed but is %s, not postmigrate",
                               mig_run_state_name(mig_machine_run_state(src->m)));
    } else {
        if (!src->killed && run->src_was_running && !mig_machine_running(src->m))
            return mig_err_set(errp, -EPROTO, "migration %s but the source is %s, not running",
                               outcome, mig_run_state_name(mig_machine_run_state(src->m)));
        if (!dst->killed && dst->m && mig_machine_running(dst->m))
            return mig_err_set(errp, -EPROTO, "migration %s but the destination runs",
                               outcome);
    }
    /* what the scenario (or the pair rules) expect */
    const char *want = scn_outcome_names[s->outcome];
    int want_err = s->error;
    const char *want_text = s->error_contains;
    char pair_text[64] = "";
    if ((run->c->pair_src || run->c->pair_dst) && s->outcome == SCN_OUTCOME_COMPLETED) {
        MigPairPrediction p;
        mig_pair_predict(src->release, src->machine_type, dst->release, s->src.devices,
                         s->src.ndevices, &p);
        if (!p.completes) {
            want = "failed";
            want_err = 0;
            snprintf(pair_text, sizeof(pair_text), "%s",
                     p.machine_unknown ? "Machine type" : p.device);
            want_text = pair_text[0] ? pair_text : NULL;
        }
    }
    bool relaxed = run->c->nextra && r->fired > 0;
    if (relaxed) {
        if (strcmp(outcome, want) && strcmp(outcome, "failed") && strcmp(outcome, "completed"))
            return mig_err_set(errp, -EPROTO, "with an injected fault the outcome is %s "
                               "(expected %s, failed or completed)", outcome, want);
        return 0;
    }
    if (strcmp(outcome, want))
        return mig_err_set(errp, -EPROTO, "outcome %s, expected %s%s%s", outcome, want,
                           r->mig_error[0] ? ": " : "", r->mig_error);
    if (want_err) {
        int got = traced_errno(run, run->src.killed ? "dst" : "src");
        if (got != want_err)
            return mig_err_set(errp, -EPROTO, "error %s (%s), expected %s", mig_errno_name(got),
                               r->mig_error, mig_errno_name(want_err));
    }
    const char *dst_error = run->dst.m && !run->dst.killed
                                ? mig_migration_error(mig_machine_migration(run->dst.m))
                                : "";
    if (want_text && !strstr(r->mig_error, want_text) && !strstr(dst_error, want_text))
        return mig_err_set(errp, -EPROTO, "errors (src '%s', dst '%s') do not mention '%s'",
                           r->mig_error, dst_error, want_text);
    return 0;
}

static int oracle_memory(Run *run, const char *outcome, MigErr **errp)
{
    if (!run->wl || run->src.killed)
        return 0;
    int rc;
    if (!strcmp(outcome, "completed")) {
        if (run->dst.killed)
            return 0;
        rc = mig_workload_verify(run->wl, mig_machine_ram(run->dst.m), errp);
        if (rc < 0)
            mig_err_prepend(errp, "memory: destination");
    } else {
        rc = mig_workload_verify(run->wl, mig_machine_ram(run->src.m), errp);
        if (rc < 0)
            mig_err_prepend(errp, "memory: source after %s", outcome);
    }
    return rc;
}

static int oracle_devices(Run *run, const char *outcome, MigErr **errp)
{
    if (!run->migrating || run->src.killed)
        return 0;
    for (size_t i = 0; i < run->src.ndevs; i++) {
        int rc;
        if (!strcmp(outcome, "completed")) {
            if (run->dst.killed || i >= run->dst.ndevs)
                continue;
            rc = mig_fake_device_check_migrated(run->src.devs[i], run->dst.devs[i], errp);
        } else {
            if (!run->src.before[i])
                continue;
            rc = mig_fake_device_same(run->src.before[i], run->src.devs[i], errp);
            if (rc < 0)
                mig_err_prepend(errp, "source device changed after %s", outcome);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the case ---- */

static const char *src_machine_type(const RunCase *c, const Scenario *s, const char *src_rel,
                                    const char *dst_rel)
{
    const MigRelease *sr = mig_release_find(src_rel);
    const char *m = s->src.machine;
    if (!strcmp(m, "match-dst")) {
        /* the older of the two releases' machine types */
        int si = mig_release_index(src_rel), di = mig_release_index(dst_rel);
        return mig_release_at((size_t)(di < si ? di : si))->machine_type;
    }
    if (!m[0])
        return sr->machine_type;
    /* an explicit machine type newer than the (pair's) source release is
     * replaced by the source's own */
    const MigRelease *mt = mig_machine_type_find(m);
    if (mig_release_index(mt->name) > mig_release_index(src_rel))
        return sr->machine_type;
    (void)c;
    return m;
}

int exec_run_case(const RunCase *c, RunResult *r)
{
    const Scenario *s = c->scn;
    memset(r, 0, sizeof(*r));
    Run run = {.c = c, .s = s, .r = r};
    MigErr *err = NULL;
    int rc = 0;
    const char *src_rel = c->pair_src ? c->pair_src : s->src.release;
    const char *dst_rel = c->pair_dst ? c->pair_dst : s->dst.release;

    run.tracef = open_memstream(&run.tracebuf, &run.tracelen);
    run.trace = mig_trace_new();
    mig_trace_set_echo(run.trace, run.tracef);
    run.loop = mig_sim_loop_new(c->seed);
    run.loop->trace = run.trace;
    mig_sim_set_step_limit(run.loop, 200000000ull);

    size_t nf = s->nfaults + c->nextra;
    MigFaultSpec *specs = mig_malloc0(sizeof(*specs) * (nf ? nf : 1));
    memcpy(specs, s->faults, sizeof(*specs) * s->nfaults);
    if (c->nextra)
        memcpy(specs + s->nfaults, c->extra, sizeof(*specs) * c->nextra);
    run.inj = fault_injector_new(specs, nf, c->seed, run.loop, run.trace);
    free(specs);
    mig_trace_log(run.trace, 0, "harness", "scenario %s seed 0x%llx pair %s:%s", s->path,
                  (unsigned long long)c->seed, src_rel, dst_rel);

    /* devices the pair cannot have: the case does not apply */
    const char *smt = src_machine_type(c, s, src_rel, dst_rel);
    const MigRelease *smt_rel = mig_machine_type_find(smt);
    for (size_t i = 0; i < s->src.ndevices; i++)
        if (!mig_release_has_device(smt_rel->name, s->src.devices[i])) {
            r->skipped = true;
            snprintf(r->error, sizeof(r->error), "machine type %s has no %s", smt,
                     s->src.devices[i]);
            goto out_free;
        }
    /* the destination runs the source's machine type when it knows it (as
     * management starts it), else its own newest */
    const char *dmt = mig_release_index(smt_rel->name) <= mig_release_index(dst_rel)
                          ? smt
                          : mig_release_find(dst_rel)->machine_type;

    if (fault_injector_arm(run.inj) < 0) {
        rc = -EBUSY;
        snprintf(r->error, sizeof(r->error), "another fault injector is armed");
        goto out_free;
    }
    rc = side_create(&run, &run.src, MIG_FAULT_SIDE_SRC, &s->src, src_rel, smt, false,
                     c->seed ^ 0x5c, &err);
    if (rc == 0)
        rc = side_create(&run, &run.dst, MIG_FAULT_SIDE_DST, &s->dst, dst_rel, dmt, true,
                         c->seed ^ 0xd57, &err);
    if (rc < 0) {
        if (rc == -ENOTSUP || rc == -ENODEV) {
            r->skipped = true;
            rc = 0;
        }
        snprintf(r->error, sizeof(r->error), "%s", err ? err->msg : "setup failed");
        goto out_disarm;
    }
    /* the guest */
    MigWorkloadOptions wo = {
        .seed = c->seed,
        .fill = s->src.fill_zero ? MIG_WORKLOAD_FILL_ZERO : MIG_WORKLOAD_FILL_RANDOM,
        .dirty_rate = s->dirty_rate,
    };
    MigFaultSide prev;
    side_enter(run.src.sl, &prev);
    run.wl = mig_workload_new(run.src.m, &wo, &err);
    fault_injector_set_side(run.inj, prev);
    if (!run.wl) {
        rc = -EINVAL;
        snprintf(r->error, sizeof(r->error), "workload: %s", err ? err->msg : "?");
        goto out_disarm;
    }
    /* management: capabilities (intersection; a side that does not know the
     * query offers nothing) and parameters */
    const MigRelease *sr = mig_release_find(src_rel), *dr = mig_release_find(dst_rel);
    MigCapMask offer = (sr->knows_caps_query ? caps_mask(sr->caps) : 0) &
                       (dr->knows_caps_query ? caps_mask(dr->caps) : 0);
    MigCapMask want = 0, src_only = 0;
    for (size_t i = 0; i < s->ncaps; i++) {
        int cap = mig_cap_parse(s->caps[i]);
        if (cap < 0 || !(offer & MIG_CAP_BIT(cap)))
            harness_log(&run, "capability %s not offered by both sides: left off", s->caps[i]);
        else
            want |= MIG_CAP_BIT(cap);
    }
    for (size_t i = 0; i < s->src.ncaps_only; i++) {
        int cap = mig_cap_parse(s->src.caps_only[i]);
        if (cap >= 0)
            src_only |= MIG_CAP_BIT(cap);
    }
    if (want || src_only) {
        MigErr *e = NULL;
        if (mig_migration_set_caps(mig_machine_migration(run.src.m), want | src_only,
                                   want | src_only, &e) < 0)
            harness_log(&run, "src refused capabilities: %s", e ? e->msg : "?");
        mig_err_free(e);
        e = NULL;
        if (want && mig_migration_set_caps(mig_machine_migration(run.dst.m), want, want, &e) < 0)
            harness_log(&run, "dst refused capabilities: %s", e ? e->msg : "?");
        mig_err_free(e);
    }
    MigParamsSet ps = {0};
    ps.has_max_bandwidth = s->has_max_bandwidth;
    ps.p.max_bandwidth = s->max_bandwidth;
    ps.has_downtime_limit = s->downtime_limit_ms != 0;
    ps.p.downtime_limit = s->downtime_limit_ms;
    ps.has_x_max_passes = s->max_passes != 0;
    ps.p.x_max_passes = s->max_passes;
    if (mig_migration_set_params(mig_machine_migration(run.src.m), &ps, &err) < 0) {
        rc = -EINVAL;
        snprintf(r->error, sizeof(r->error), "parameters: %s", err ? err->msg : "?");
        goto out_disarm;
    }

    /* the steps, then the end of the migration */
    MigErr *oracle = NULL;
    for (size_t i = 0; i < s->nsteps && !oracle; i++)
        run_step(&run, i, &oracle);
    if (!oracle && run.migrating) {
        int w = mig_loop_run_until(run.loop, migration_over, &run, s->timeout_ns);
        harness_log(&run, "end wait: %s", w == 0 ? "over" : mig_errno_name(w));
    }
    sync_phase(&run);
    const char *outcome = outcome_of(&run);
    snprintf(r->outcome, sizeof(r->outcome), "%s", outcome);
    Side *errside = run.src.killed ? &run.dst : &run.src;
    if (errside->m && !r->mig_error[0])
        snprintf(r->mig_error, sizeof(r->mig_error), "%s",
                 mig_migration_error(mig_machine_migration(errside->m)));
    r->fired = fault_injector_fired(run.inj);
    if (fault_injector_first_fired(run.inj))
        snprintf(r->first_fired, sizeof(r->first_fired), "%s",
                 fault_injector_first_fired(run.inj));
    harness_log(&run, "outcome %s%s%s (faults fired: %llu)", outcome,
                r->mig_error[0] ? ": " : "", r->mig_error, (unsigned long long)r->fired);
    if (!oracle)
        oracle_outcome(&run, outcome, &oracle);
    if (!oracle)
        oracle_memory(&run, outcome, &oracle);
    if (!oracle)
        oracle_devices(&run, outcome, &oracle);

out_disarm:
    fault_injector_disarm(run.inj);
    {
        size_t np;
        mig_faults_table(&np);
        for (int sd = 0; sd < MIG_FAULT_SIDE__COUNT; sd++)
            for (size_t i = 0; i < np && i < 64; i++)
                r->hits[sd][i] = fault_injector_hits(run.inj, (MigFaultSide)sd, i);
    }
    r->virtual_ns = mig_loop_now_ns(run.loop);
    mig_trace_hash(run.trace, r->trace_hash);
    /* teardown, then the resource oracle */
    if (run.wl)
        mig_workload_free(run.wl);
    side_destroy(&run.dst);
    side_destroy(&run.src);
    if (run.link)
        mig_link_unref(run.link);
    run.link = NULL;
    if (rc == 0 && !r->skipped && !oracle && run.migrating) {
        long live = mig_sim_live_sources(run.loop);
        if (live != 0)
            mig_err_set(&oracle, -EPROTO, "resources: %ld timer(s)/defer(s) left on the loop "
                        "after both machines were freed", live);
    }
    if (rc == 0 && !r->skipped) {
        r->passed = !oracle;
        if (oracle)
            snprintf(r->error, sizeof(r->error), "%s", oracle->msg);
    }
    mig_err_free(oracle);
    goto out_loop;
out_free:
    r->virtual_ns = 0;
    mig_trace_hash(run.trace, r->trace_hash);
out_loop:
    fault_injector_free(run.inj);
    mig_loop_free(run.loop);
    mig_trace_free(run.trace);
    fclose(run.tracef);
    if (c->trace_out && run.tracebuf)
        fwrite(run.tracebuf, 1, run.tracelen, c->trace_out);
    free(run.tracebuf);
    mig_err_free(err);
    return rc;
}
