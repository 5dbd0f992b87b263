/*
 * exec.c - the scenario executor and its oracles (see exec.h).
 */
#include <dirent.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/faults.h"
#include "common/fiu-local.h"
#include "device/device-savevm.h"
#include "devices/fake-gpu.h"
#include "devices/releases.h"
#include "exec.h"
#include "heap-count.h"
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

static void side_tramp_nop(void *p)
{
    (void)p;
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
    long *live; /* the run's count of open harness transports */
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
    (*st->live)--;
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

static MigTransport *side_transport_new(SideLoop *sl, MigTransport *inner, long *live)
{
    SideTransport *st = mig_malloc0(sizeof(*st));
    st->base.ops = &st_ops;
    st->base.loop = &sl->base;
    st->base.duplex = mig_transport_is_duplex(inner);
    st->inner = inner;
    st->sl = sl;
    st->live = live;
    (*live)++;
    return &st->base;
}

/* ---- an arc recorder in front of a VFIO-style device's backend ----
 * It sees every call the engine makes to the device, so the arc oracle
 * judges what the device was really asked to do, independently of the
 * engine's own bookkeeping (mig_device_arc_log).
 * On the source it also follows the saving session as the engine reads it,
 * for the device-data drop trigger: per phase (the PRE_COPY snapshot, the
 * STOP_COPY data) the size the device reported on entering it (precopy_info
 * initial bytes, data_size) and, for every chunk the engine read, where the
 * chunk's bytes went in the migration stream.  The engine writes each chunk
 * as one DATA record (tag, be32 length, bytes: device-savevm.h) at the
 * stream offset it is at when it reads the device. */

#define ARC_REC_MAX 512
#define DEV_REC_DATA_HDR 5u /* DATA record: tag + be32 length (device-savevm.h) */

enum { ARC_PHASE_PRE_COPY, ARC_PHASE_STOP_COPY, ARC_PHASE__COUNT };
static const char *const arc_phase_names[ARC_PHASE__COUNT] = {"PRE_COPY snapshot",
                                                               "STOP_COPY data"};

typedef struct ArcChunk {
    uint64_t dev_off; /* offset of its first byte in the phase's data */
    uint64_t len;
    uint64_t data_at; /* stream offset of its first byte (after the DATA header) */
} ArcChunk;

typedef struct ArcPhase {
    bool sized;    /* entered in the current session, size known */
    uint64_t size; /* PRE_COPY: the snapshot (initial bytes); STOP_COPY: data_size */
    uint64_t read; /* bytes the engine read in this phase */
    ArcChunk *c;   /* one per read, i.e. per DATA record */
    size_t n, cap;
} ArcPhase;

typedef struct ArcRec {
    MigDevBackend base;
    MigDevBackend *inner;
    MigDevState cur; /* the state the device last reported */
    MigDevState from[ARC_REC_MAX], to[ARC_REC_MAX];
    size_t n;
    size_t total; /* arcs taken, also past ARC_REC_MAX */
    int fail_on;  /* device-error step: fail on entering this state (-1: no) */
    MigTrace *trace;
    MigLoop *loop;
    /* the saving session (source only: mig set) */
    MigMigration *mig;          /* whose stream the engine writes the reads into */
    uint64_t sessions;          /* saving sessions opened so far */
    ArcPhase ph[ARC_PHASE__COUNT];
    void (*on_read)(void *opaque); /* after each chunk read in a phase */
    void *opaque;
} ArcRec;

/* The data phase of a device state: ARC_PHASE_*, -1 when it sends none. */
static int arc_phase_of(MigDevState s)
{
    switch (s) {
    case MIG_DEV_PRE_COPY:
    case MIG_DEV_PRE_COPY_P2P:
        return ARC_PHASE_PRE_COPY;
    case MIG_DEV_STOP_COPY:
        return ARC_PHASE_STOP_COPY;
    default:
        return -1;
    }
}

/* An arc from -> to succeeded: a saving state entered from a non-saving one
 * opens a session (both phases start over); PRE_COPY* -> STOP_COPY starts
 * the STOP_COPY phase.  The phase's size is what the device reports now,
 * before the engine read anything of it. */
static void arc_rec_phase_enter(ArcRec *a, MigDevState from, MigDevState to)
{
    int pf = arc_phase_of(from), pt = arc_phase_of(to);
    if (!a->mig || pt < 0 || pt == pf)
        return;
    if (pf < 0)
        a->sessions++;
    for (int k = 0; k < ARC_PHASE__COUNT; k++)
        if (pf < 0 || k == pt) {
            a->ph[k].sized = false;
            a->ph[k].size = a->ph[k].read = 0;
            a->ph[k].n = 0;
        }
    ArcPhase *p = &a->ph[pt];
    uint64_t initial, dirty, len;
    const MigDevBackendOps *ops = a->inner->ops;
    if (pt == ARC_PHASE_PRE_COPY && ops->precopy_info &&
        ops->precopy_info(a->inner, &initial, &dirty, NULL) == 0)
        p->sized = true, p->size = initial;
    else if (pt == ARC_PHASE_STOP_COPY && ops->data_size &&
             ops->data_size(a->inner, &len, NULL) == 0)
        p->sized = true, p->size = len;
}

static void arc_rec_resync(ArcRec *a)
{
    MigDevState st;
    if (a->inner->ops->get_state(a->inner, &st, NULL) == 0)
        a->cur = st;
}

static int ar_arc(MigDevBackend *b, MigDevState to, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    MigDevState from = a->cur;
    int r = a->inner->ops->arc(a->inner, to, errp);
    if (r == 0) {
        if (a->n < ARC_REC_MAX) {
            a->from[a->n] = from;
            a->to[a->n] = to;
            a->n++;
        }
        a->total++;
        a->cur = to;
        arc_rec_phase_enter(a, from, to);
        if (a->fail_on >= 0 && (int)to == a->fail_on && a->inner->ops->force_error) {
            /* the device breaks right after the arc (device-error step): to
             * the engine that arc failed, so it is not in its log either */
            a->n--;
            a->total--;
            a->fail_on = -1;
            a->inner->ops->force_error(a->inner, NULL);
            arc_rec_resync(a);
            mig_trace_log(a->trace, a->loop ? mig_loop_now_ns(a->loop) : 0, "harness",
                          "%s entered %s: -> ERROR (forced)", a->base.name,
                          mig_dev_state_name(to));
        }
    } else {
        arc_rec_resync(a);
    }
    return r;
}

static int ar_get_state(MigDevBackend *b, MigDevState *out, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    int r = a->inner->ops->get_state(a->inner, out, errp);
    if (r == 0)
        a->cur = *out;
    return r;
}

static ssize_t ar_read(MigDevBackend *b, void *buf, size_t len, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    uint64_t at = a->mig ? mig_migration_stream_offset(a->mig) : 0;
    ssize_t n = a->inner->ops->read(a->inner, buf, len, errp);
    int ph = arc_phase_of(a->cur);
    if (!a->mig || n <= 0 || ph < 0)
        return n;
    ArcPhase *p = &a->ph[ph];
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->c = mig_realloc(p->c, p->cap * sizeof(*p->c));
    }
    p->c[p->n++] = (ArcChunk){p->read, (uint64_t)n, at + DEV_REC_DATA_HDR};
    p->read += (uint64_t)n;
    if (a->on_read)
        a->on_read(a->opaque);
    return n;
}

static ssize_t ar_write(MigDevBackend *b, const void *buf, size_t len, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    return a->inner->ops->write(a->inner, buf, len, errp);
}

static int ar_precopy_info(MigDevBackend *b, uint64_t *initial, uint64_t *dirty, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    if (!a->inner->ops->precopy_info)
        return -ENOTSUP;
    return a->inner->ops->precopy_info(a->inner, initial, dirty, errp);
}

static int ar_data_size(MigDevBackend *b, uint64_t *len, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    if (!a->inner->ops->data_size)
        return -ENOTSUP;
    return a->inner->ops->data_size(a->inner, len, errp);
}

static int ar_reset(MigDevBackend *b, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    int r = a->inner->ops->reset(a->inner, errp);
    arc_rec_resync(a);
    return r;
}

static int ar_guest_run(MigDevBackend *b, uint32_t ops, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    if (!a->inner->ops->guest_run)
        return -ENOTSUP;
    return a->inner->ops->guest_run(a->inner, ops, errp);
}

static int ar_digest(MigDevBackend *b, uint64_t *out, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    if (!a->inner->ops->digest)
        return -ENOTSUP;
    return a->inner->ops->digest(a->inner, out, errp);
}

static int ar_force_error(MigDevBackend *b, MigErr **errp)
{
    ArcRec *a = (ArcRec *)b;
    if (!a->inner->ops->force_error)
        return -ENOTSUP;
    int r = a->inner->ops->force_error(a->inner, errp);
    arc_rec_resync(a);
    return r;
}

static void ar_free(MigDevBackend *b)
{
    ArcRec *a = (ArcRec *)b;
    a->inner->ops->free(a->inner);
    for (int k = 0; k < ARC_PHASE__COUNT; k++)
        free(a->ph[k].c);
    free(a);
}

static const MigDevBackendOps arc_rec_ops = {
    .arc = ar_arc,
    .get_state = ar_get_state,
    .read = ar_read,
    .write = ar_write,
    .precopy_info = ar_precopy_info,
    .data_size = ar_data_size,
    .reset = ar_reset,
    .guest_run = ar_guest_run,
    .digest = ar_digest,
    .force_error = ar_force_error,
    .free = ar_free,
};

static ArcRec *arc_rec_new(MigDevBackend *inner)
{
    ArcRec *a = mig_malloc0(sizeof(*a));
    a->base.ops = &arc_rec_ops;
    snprintf(a->base.name, sizeof(a->base.name), "%s", inner->name);
    a->base.features = inner->features;
    a->base.instance = inner->instance;
    a->inner = inner;
    a->cur = MIG_DEV_RUNNING;
    a->fail_on = -1;
    arc_rec_resync(a);
    return a;
}

/* ---- one side: a machine and its devices ---- */

typedef struct Run Run;
static void harness_log(Run *run, const char *fmt, ...) MIG_PRINTF(2, 3);
static void drop_on_read(void *opaque);

/* A `drop: {device-data: P%}` step: the link drops at the stream byte that
 * carries byte floor(P% of size) (the last one for 100%) of the source
 * fake-gpu's data of one phase.  Armed by the step; fires (mig_link_drop_at)
 * as soon as the engine has read that byte from the device, which is before
 * the byte can reach the link; judged once the migration is over. */
typedef struct DropTrigger {
    bool armed, fired, judged;
    size_t step;       /* 1-based, for messages */
    int line;
    int pct;
    int phase;         /* ARC_PHASE_*, -1 = the one the device sends data in next */
    uint64_t sessions; /* the device's sessions before this migration: older
                          sessions' data is not this migration's */
    uint64_t dev_byte, size; /* once fired: the byte and the phase's size */
    uint64_t link_byte;      /* its stream offset: the link carries this many */
    uint64_t record_at;      /* the DATA record holding it */
    size_t record_no;        /* 1-based, among the phase's DATA records */
} DropTrigger;

typedef struct Side {
    SideLoop *sl;
    MigMachine *m;
    const char *release;
    char machine_type[32];
    MigFakeDevice *devs[16];
    MigFakeDevice *before[16]; /* src: state when the migration started */
    size_t ndevs;
    bool killed;
    /* the VFIO-style device (fake-gpu), when the machine has one */
    ArcRec *gpu_rec;            /* its backend, owned by gpu */
    MigDevice *gpu;
    MigDevSection *gpu_sec;
    MigDevBackend *gpu_shadow;  /* src: same seed and guest writes, never migrated */
    MigLoopSource *gpu_dirtier; /* src: the guest writing device memory */
    Run *run;
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
    uint64_t gpu_sessions; /* the src fake-gpu's saving sessions at the last migrate */
    DropTrigger drop;   /* the last device-data drop step */
    bool src_was_running;
    bool preflight_failed; /* management refused to start (pre-flight) */
    char dst_machine_type[32]; /* what management starts the destination with */
    bool mgmt_resumed;     /* management ran `cont` on a source that completed
                              before its destination failed (no return path) */
    MigErr *paused_err;    /* the source's RAM or devices changed while it sat
                              paused in postmigrate (found before that `cont`) */
    long live_transports;  /* harness transports not yet closed */
    char *tracebuf;
    size_t tracelen;
    FILE *tracef;
};

static const char *src_machine_type(const Scenario *s, const char *src_rel, const char *dst_rel);

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

/* ---- the VFIO-style device of a side ---- */

#define GPU_TICK_NS 1000000ull /* the guest writes device memory every 1 ms, */
#define GPU_OPS 4u             /* 4 writes each: ~16 MB/s of dirty pages */

/* The guest writes the source's device memory while the source runs; the
 * shadow gets the same writes (same seed), so it is what the source device
 * must hold after a failed or cancelled migration. */
static void gpu_tick(void *opaque)
{
    Side *sd = opaque;
    sd->gpu_dirtier = NULL;
    if (sd->killed)
        return;
    if (mig_machine_run_state(sd->m) == MIG_RUN_STATE_RUNNING) {
        MigDevBackend *be = mig_device_backend(sd->gpu);
        MigFaultSide prev;
        side_enter(sd->sl, &prev);
        if (be->ops->guest_run(be, GPU_OPS, NULL) == 0)
            sd->gpu_shadow->ops->guest_run(sd->gpu_shadow, GPU_OPS, NULL);
        fault_injector_set_side(sd->sl->inj, prev);
    }
    MigLoop *loop = sd->sl->inner;
    sd->gpu_dirtier = mig_loop_timer_add(loop, mig_loop_now_ns(loop) + GPU_TICK_NS, gpu_tick, sd);
}

static int gpu_create(Run *run, Side *sd, uint64_t seed, MigErr **errp)
{
    if (sd->gpu)
        return mig_err_set(errp, -EINVAL, "fake-gpu: one per machine");
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, seed, FAKE_GPU_MACHINE_MEM};
    MigDevBackend *be = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", errp);
    if (!be)
        return -EINVAL;
    sd->gpu_rec = arc_rec_new(be);
    sd->gpu_rec->trace = run->trace;
    sd->gpu_rec->loop = run->loop;
    sd->gpu = mig_device_new("fake-gpu", &sd->gpu_rec->base, errp);
    if (!sd->gpu) {
        sd->gpu_rec = NULL;
        return -EINVAL;
    }
    mig_device_set_trace(sd->gpu, run->trace, &sd->sl->base);
    sd->gpu_sec = mig_dev_section_register(mig_machine_savevm(sd->m), sd->gpu, "fake-gpu", 0,
                                           errp);
    if (!sd->gpu_sec)
        return -EINVAL;
    if (sd->sl->side == MIG_FAULT_SIDE_SRC) {
        sd->gpu_rec->mig = mig_machine_migration(sd->m);
        sd->gpu_rec->on_read = drop_on_read;
        sd->gpu_rec->opaque = run;
        sd->gpu_shadow = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", errp);
        if (!sd->gpu_shadow)
            return -EINVAL;
        MigLoop *loop = sd->sl->inner;
        sd->gpu_dirtier =
            mig_loop_timer_add(loop, mig_loop_now_ns(loop) + GPU_TICK_NS, gpu_tick, sd);
    }
    return 0;
}

static void gpu_destroy(Side *sd)
{
    if (sd->gpu_dirtier)
        mig_loop_remove(sd->sl->inner, sd->gpu_dirtier);
    sd->gpu_dirtier = NULL;
    mig_dev_section_free(sd->gpu_sec);
    sd->gpu_sec = NULL;
}

static void gpu_free(Side *sd)
{
    if (sd->gpu)
        mig_device_free(sd->gpu);
    if (sd->gpu_shadow)
        sd->gpu_shadow->ops->free(sd->gpu_shadow);
    sd->gpu = NULL;
    sd->gpu_rec = NULL;
    sd->gpu_shadow = NULL;
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
        .start_paused = incoming, /* -S: management resumes it (management_watch) */
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
    sd->run = run;
    for (size_t i = 0; i < sm->ndevices && i < MIG_ARRAY_SIZE(sd->devs); i++) {
        const char *type = sm->devices[i];
        if (side == MIG_FAULT_SIDE_DST && !mig_release_has_device(release, type)) {
            /* management cannot give a release a device it does not ship */
            harness_log(run, "dst release %s has no %s: started without it", release, type);
            continue;
        }
        if (!strcmp(type, "fake-gpu")) {
            side_enter(sd->sl, &prev);
            int rc = gpu_create(run, sd, dev_seed + i * 7919, errp);
            fault_injector_set_side(run->inj, prev);
            if (rc < 0) {
                mig_err_prepend(errp, "%s", mig_fault_side_names[side]);
                return -EINVAL;
            }
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
    gpu_destroy(sd); /* the section goes before the machine's registry */
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
    gpu_free(sd);
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

/* ---- management: what it does on its own while the migration runs ----
 *
 * As libvirt does, management starts the destination paused (-S) and only
 * lets one side run the guest:
 *   - source completed and destination completed: `cont` on the destination
 *     (the guest moves);
 *   - destination completed but the source failed (with a return path: the
 *     source never got the destination's SHUT, e.g. its return-path read
 *     failed): the source resumed its guest, so the destination, which never
 *     ran, is destroyed (as if killed);
 *   - source died after the destination completed: `cont` on the
 *     destination (it holds the only copy);
 *   - without a return path the source completes as soon as its last byte
 *     is out, before the destination has loaded anything (QEMU does so); a
 *     destination that fails after that leaves the guest paused on a source
 *     that believes it is done: management sees the destination's failure
 *     and runs `cont` on the source.  Before that `cont` the source's RAM
 *     and devices must still be what they were at stop time (nothing may
 *     touch them while the guest is paused).  With a return path the source
 *     waits for the destination's verdict and resumes by itself, so
 *     management does not: an engine that completes anyway keeps the "guest
 *     is lost" oracle red, as does a management that is gone
 *     (EXEC_SELFTEST_NO_RESUME).
 * Called from the loop's predicates, between events. */

static bool side_has_return_path(const Side *sd)
{
    return sd->m && (mig_migration_caps(mig_machine_migration(sd->m)) &
                     MIG_CAP_BIT(MIG_CAP_RETURN_PATH));
}

static void management_cont(Run *run, Side *sd)
{
    MigFaultSide prev;
    MigErr *e = NULL;
    side_enter(sd->sl, &prev);
    int rc = mig_machine_cont(sd->m, &e);
    fault_injector_set_side(run->inj, prev);
    if (rc < 0)
        harness_log(run, "management: cont on the %s refused: %s",
                    mig_fault_side_names[sd->sl->side], e ? e->msg : "?");
    mig_err_free(e);
}

static void management_resume_source(Run *run)
{
    Side *src = &run->src, *dst = &run->dst;
    run->mgmt_resumed = true;
    harness_log(run, "management: destination failed after the source completed; resuming "
                     "the source (no return path)");
    snprintf(run->r->mig_error, sizeof(run->r->mig_error), "%s",
             mig_migration_error(mig_machine_migration(dst->m)));
    if (run->c->selftest == EXEC_SELFTEST_PAUSED_PAGE) {
        MigRamBlock *b = mig_ram_block(mig_machine_ram(src->m), 0);
        b->host[b->length / 3 + 5] ^= 0x5a;
    }
    if (run->c->selftest == EXEC_SELFTEST_PAUSED_FIELD && src->ndevs)
        mig_fake_device_poke(src->devs[0]);
    if (run->wl && mig_workload_verify(run->wl, mig_machine_ram(src->m), &run->paused_err) < 0)
        mig_err_prepend(&run->paused_err, "memory: source while paused after completing");
    for (size_t i = 0; i < src->ndevs && !run->paused_err; i++)
        if (src->before[i] &&
            mig_fake_device_same(src->before[i], src->devs[i], &run->paused_err) < 0)
            mig_err_prepend(&run->paused_err, "devices: source while paused after completing");
    management_cont(run, src);
}

static void management_watch(Run *run)
{
    Side *src = &run->src, *dst = &run->dst;
    if (!run->migrating || dst->killed || !dst->m ||
        run->c->selftest == EXEC_SELFTEST_NO_RESUME)
        return;
    MigStatus ss = side_status(src), ds = side_status(dst);
    if (ds == MIG_STATUS_COMPLETED && mig_machine_run_state(dst->m) == MIG_RUN_STATE_PAUSED) {
        if (src->killed || ss == MIG_STATUS_COMPLETED) {
            harness_log(run, "management: %s; resuming the destination",
                        src->killed ? "the source died after the destination completed"
                                    : "both sides completed");
            management_cont(run, dst);
        } else if (mig_status_is_terminal(ss)) {
            harness_log(run, "management: the source %s after the destination loaded "
                        "everything; destroying the destination (it never ran)",
                        mig_status_name(ss));
            dst->killed = true;
            dst->sl->dead = true;
            if (run->link)
                mig_link_drop_now(run->link);
        }
        return;
    }
    if (!run->mgmt_resumed && !src->killed && ss == MIG_STATUS_COMPLETED &&
        mig_machine_run_state(src->m) == MIG_RUN_STATE_POSTMIGRATE &&
        ds == MIG_STATUS_FAILED && !side_has_return_path(src))
        management_resume_source(run);
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
    management_watch(run);
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

/* ---- the device-data drop trigger (DropTrigger) ---- */

static const char *drop_phase_name(const DropTrigger *t)
{
    return t->phase < 0 ? "data (the phase it sends data in next)" : arc_phase_names[t->phase];
}

/* Fire the armed trigger when the engine has read its byte: drop the link at
 * that byte's stream offset.  -EINVAL (with errp) when the byte already went
 * over the link: too late for this drop (only possible from the step; a
 * read hook runs before its bytes are even in the stream). */
static int drop_trigger_try(Run *run, MigErr **errp)
{
    DropTrigger *t = &run->drop;
    ArcRec *a = run->src.gpu_rec;
    if (!t->armed || t->fired || t->judged || !a || !run->link || a->sessions <= t->sessions)
        return 0;
    if (t->phase < 0) {
        if (arc_phase_of(a->cur) < 0)
            return 0;
        t->phase = arc_phase_of(a->cur);
    }
    const ArcPhase *p = &a->ph[t->phase];
    if (!p->sized)
        return 0; /* not entered in this session (yet) */
    if (!p->size) {
        t->fired = true;
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): drop at device-data %d%%: the "
                           "source's %s has no %s (the device reports 0 bytes)", t->step,
                           t->line, t->pct, mig_device_name(run->src.gpu),
                           arc_phase_names[t->phase]);
    }
    uint64_t d = p->size / 100 * (uint64_t)t->pct + p->size % 100 * (uint64_t)t->pct / 100;
    if (d >= p->size)
        d = p->size - 1;
    if (d >= p->read)
        return 0; /* the engine has not read it yet */
    size_t i = 0;
    while (i + 1 < p->n && p->c[i].dev_off + p->c[i].len <= d)
        i++;
    const ArcChunk *c = &p->c[i];
    t->fired = true;
    t->dev_byte = d;
    t->size = p->size;
    t->link_byte = c->data_at + (d - c->dev_off);
    t->record_at = c->data_at - DEV_REC_DATA_HDR;
    t->record_no = i + 1;
    uint64_t sent = mig_link_bytes(run->link, MIG_LINK_A_TO_B);
    if (sent > t->link_byte)
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): drop at %d%% of the source's "
                           "%s %s: device byte %llu is stream byte %llu, but the link already "
                           "carried %llu bytes (too late: drop earlier, or at a later share)",
                           t->step, t->line, t->pct, mig_device_name(run->src.gpu),
                           arc_phase_names[t->phase], (unsigned long long)d,
                           (unsigned long long)t->link_byte, (unsigned long long)sent);
    mig_link_drop_at(run->link, MIG_LINK_A_TO_B, t->link_byte);
    harness_log(run, "step %zu: the link drops at byte %llu: inside DATA record %zu of %s's %s "
                "(at offset %llu), device byte %llu of %llu (%d%%)", t->step,
                (unsigned long long)t->link_byte, t->record_no, mig_device_name(run->src.gpu),
                arc_phase_names[t->phase], (unsigned long long)t->record_at,
                (unsigned long long)d, (unsigned long long)p->size, t->pct);
    return 0;
}

static void drop_on_read(void *opaque)
{
    drop_trigger_try(opaque, NULL);
}

static int drop_trigger_arm(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    if (!run->src.gpu)
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): drop at device-data: the source "
                           "has no VFIO-style device (fake-gpu)", i + 1, st->line);
    DropTrigger *t = &run->drop;
    if (t->armed && !t->fired)
        harness_log(run, "step %zu: replaces step %zu's drop, which never happened", i + 1,
                    t->step);
    *t = (DropTrigger){.armed = true, .step = i + 1, .line = st->line, .pct = st->device_data,
                       .sessions = run->gpu_sessions};
    t->phase = st->device_state < 0 ? -1 : arc_phase_of((MigDevState)st->device_state);
    harness_log(run, "step %zu: the link drops at %d%% of %s's %s", i + 1, t->pct,
                mig_device_name(run->src.gpu), drop_phase_name(t));
    return drop_trigger_try(run, errp);
}

/* Once the migration is over: say whether the drop landed where it was
 * placed, i.e. the destination failed reading that DATA record, at that
 * byte.  The line is what scenarios match (seed-independent up to the
 * numbers in parentheses). */
static void drop_trigger_judge(Run *run)
{
    DropTrigger *t = &run->drop;
    if (!t->armed || t->judged)
        return;
    t->judged = true;
    const char *dev = run->src.gpu ? mig_device_name(run->src.gpu) : "fake-gpu";
    if (!t->fired) {
        const ArcRec *a = run->src.gpu_rec;
        const ArcPhase *p = a && t->phase >= 0 ? &a->ph[t->phase] : NULL;
        if (p && p->sized && a->sessions > t->sessions)
            harness_log(run, "step %zu: the drop at %d%% of %s's %s never happened: the engine "
                        "read %llu of its %llu bytes", t->step, t->pct, dev, drop_phase_name(t),
                        (unsigned long long)p->read, (unsigned long long)p->size);
        else
            harness_log(run, "step %zu: the drop at %d%% of %s's %s never happened: the device "
                        "sent no such data in this migration", t->step, t->pct, dev,
                        drop_phase_name(t));
        return;
    }
    const char *err = run->dst.m ? mig_migration_error(mig_machine_migration(run->dst.m)) : "";
    char rec[128], at[96];
    snprintf(rec, sizeof(rec), "device %s: DATA record at offset %llu: ", dev,
             (unsigned long long)t->record_at);
    snprintf(at, sizeof(at), "stream read failed at offset %llu:",
             (unsigned long long)t->link_byte);
    if (strstr(err, rec) && strstr(err, at))
        harness_log(run, "drop landed in DATA record %zu of %s's %s, at %d%% (%sdevice byte "
                    "%llu of %llu; the destination failed reading the record at offset %llu "
                    "at byte %llu)", t->record_no, dev, arc_phase_names[t->phase], t->pct,
                    t->dev_byte + 1 == t->size ? "the last byte: " : "",
                    (unsigned long long)t->dev_byte, (unsigned long long)t->size,
                    (unsigned long long)t->record_at, (unsigned long long)t->link_byte);
    else
        harness_log(run, "step %zu: the drop missed DATA record %zu of %s's %s: expected the "
                    "destination to fail reading it (offset %llu) at byte %llu; the destination "
                    "is %s: %s", t->step, t->record_no, dev, arc_phase_names[t->phase],
                    (unsigned long long)t->record_at, (unsigned long long)t->link_byte,
                    run->dst.killed ? "killed" : mig_status_name(side_status(&run->dst)),
                    err[0] ? err : "no error");
}

static bool migration_over(void *opaque)
{
    Run *run = opaque;
    sync_phase(run);
    management_watch(run);
    MigStatus ss = side_status(&run->src);
    bool src_done = run->src.killed || mig_status_is_terminal(ss) ||
                    (run->start_refused && ss == MIG_STATUS_NONE);
    /* the destination is over when terminal, dead or never started; one
     * still in setup/active waits for bytes or for the link to say EOF */
    MigStatus ds = side_status(&run->dst);
    bool dst_done = run->dst.killed || !run->dst.m || mig_status_is_terminal(ds) ||
                    ds == MIG_STATUS_NONE;
    if (src_done && dst_done)
        drop_trigger_judge(run);
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

/* compat's findings are worded for `check-compat OLD NEW`: here OLD is the
 * source and NEW the destination. */
static void reword(char *out, size_t len, const char *text)
{
    size_t o = 0;
    for (const char *p = text; *p && o + 1 < len;) {
        const char *rep = NULL;
        size_t skip = 0;
        bool word_start = p == text || p[-1] == ' ' || p[-1] == '(' || p[-1] == '\'';
        if (word_start && !strncmp(p, "OLD", 3) && !(p[3] >= 'A' && p[3] <= 'Z'))
            rep = "the source", skip = 3;
        else if (word_start && !strncmp(p, "NEW", 3) && !(p[3] >= 'A' && p[3] <= 'Z'))
            rep = "the destination", skip = 3;
        if (rep) {
            int n = snprintf(out + o, len - o, "%s", rep);
            o = MIG_MIN(o + (size_t)(n > 0 ? n : 0), len - 1);
            p += skip;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
}

typedef struct Findings {
    char *section[32];
    char *where[32];
    char *text[32];
    int rule[32];
    size_t n;
} Findings;

static void preflight_finding(const VmsCompatFinding *f, void *opaque)
{
    Findings *fs = opaque;
    if (f->level != VMS_COMPAT_ERROR || fs->n == MIG_ARRAY_SIZE(fs->text))
        return;
    fs->section[fs->n] = mig_strdup(f->section ? f->section : "");
    fs->where[fs->n] = mig_strdup(f->where ? f->where : "");
    fs->text[fs->n] = mig_strdup(f->text);
    fs->rule[fs->n] = f->rule;
    fs->n++;
}

/* Management's pre-flight (seed 004: management checks automatically): the
 * source's -dump-vmstate for the machine type it runs against the
 * destination's, through the static checker.  Returns 0 when compatible,
 * -ENOTSUP with "pre-flight: DEVICE: field F: ..." naming the first broken
 * device (in the machine's device order) and field or subsection. */
static int preflight(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    const MigRelease *emit = mig_machine_type_find(run->src.machine_type);
    json_t *sdump = mig_release_dump_devices(emit->name, run->src.machine_type, s->src.devices,
                                             s->src.ndevices);
    json_t *ddump = mig_release_dump_devices(run->dst.release, run->dst.machine_type,
                                             s->dst.devices, s->dst.ndevices);
    Findings fs = {0};
    MigErr *e = NULL;
    int n = vmstate_check_compat(sdump, ddump, preflight_finding, &fs, &e);
    json_decref(sdump);
    json_decref(ddump);
    int rc = 0;
    if (n < 0) {
        rc = mig_err_set(errp, -EPROTO, "pre-flight: %s", e ? e->msg : "bad dump");
    } else if (n > 0) {
        /* the first device of the machine that breaks, its most precise
         * finding (a field or subsection over a whole-section one) */
        size_t pick = 0;
        bool found = false;
        for (size_t d = 0; d < s->src.ndevices && !found; d++)
            for (size_t i = 0; i < fs.n; i++)
                if (!strcmp(fs.section[i], s->src.devices[d]) &&
                    (!found || (!fs.where[pick][0] && fs.where[i][0]))) {
                    if (found && fs.where[pick][0])
                        break;
                    pick = i;
                    found = true;
                }
        char text[400];
        reword(text, sizeof(text), fs.text[pick]);
        char what[160] = "";
        if (fs.where[pick][0])
            snprintf(what, sizeof(what), "%s %s: ", fs.rule[pick] == 10 ? "subsection" : "field",
                     fs.where[pick]);
        rc = mig_err_set(errp, -ENOTSUP, "pre-flight: %s: %s%s (%d incompatibilit%s between "
                         "source machine type %s and destination release %s)",
                         fs.section[pick], what, text, n, n == 1 ? "y" : "ies",
                         run->src.machine_type, run->dst.release);
    }
    if (rc == 0 && mig_release_index(emit->name) > mig_release_index(run->dst.release))
        /* every device fits, but the destination build cannot run the
         * source's machine type: management cannot start it that way */
        rc = mig_err_set(errp, -ENOTSUP, "pre-flight: machine type %s: release %s does not "
                         "know it (its newest is %s)", run->src.machine_type, run->dst.release,
                         mig_release_find(run->dst.release)->machine_type);
    for (size_t i = 0; i < fs.n; i++) {
        free(fs.section[i]);
        free(fs.where[i]);
        free(fs.text[i]);
    }
    mig_err_free(e);
    return rc;
}

static int do_migrate(Run *run, MigErr **errp)
{
    const Scenario *s = run->s;
    /* a device-data drop belongs to the attempt it was armed in: said now,
     * never carried over to this one's link */
    drop_trigger_judge(run);
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
    if (s->preflight) {
        MigErr *e = NULL;
        if (preflight(run, &e) < 0) {
            /* management does not start it: an outcome (failed), source untouched */
            harness_log(run, "migrate refused by management: %s", e->msg);
            snprintf(run->r->mig_error, sizeof(run->r->mig_error), "%s", e->msg);
            mig_err_free(e);
            run->start_refused = true;
            run->preflight_failed = true;
            return 0;
        }
    }
    MigLinkParams lp = {.bandwidth = s->bandwidth, .latency_ns = s->latency_ns};
    MigTransport *a, *b;
    int rc = mig_transport_mem_pair(run->loop, &lp, &a, &b);
    if (rc < 0)
        return mig_err_set(errp, rc, "cannot create the mem link");
    if (run->link)
        mig_link_unref(run->link);
    run->link = mig_transport_mem_link(a);
    MigTransport *ta = side_transport_new(run->src.sl, a, &run->live_transports);
    MigTransport *tb = side_transport_new(run->dst.sl, b, &run->live_transports);
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
        drop_trigger_judge(run); /* against the destination it was aimed at */
        side_destroy(&run->dst);
        memset(&run->dst, 0, sizeof(run->dst));
        return side_create(run, &run->dst, MIG_FAULT_SIDE_DST, &run->s->dst,
                           run->c->pair_dst ? run->c->pair_dst : run->s->dst.release,
                           run->dst_machine_type, true, run->c->seed ^ 0xd57, errp);
    }
    case SCN_STEP_DROP:
    case SCN_STEP_PARTITION:
    case SCN_STEP_HEAL:
    case SCN_STEP_SLOW:
        if (!run->link && run->preflight_failed) {
            harness_log(run, "step %zu: no link (management did not start the migration)",
                        i + 1);
            return 0;
        }
        break;
    default:
        break;
    }
    switch (st->kind) {
    case SCN_STEP_DROP:
        if (!run->link)
            return mig_err_set(errp, -EINVAL, "step %zu (line %d): drop before migrate", i + 1,
                               st->line);
        if (st->device_data >= 0)
            return drop_trigger_arm(run, i, st, errp);
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
    case SCN_STEP_DEVICE_ERROR: {
        Side *sd = st->side == MIG_FAULT_SIDE_SRC ? &run->src : &run->dst;
        if (run->start_refused) {
            harness_log(run, "step %zu: no migration runs: the device stays healthy", i + 1);
            return 0;
        }
        if (!sd->gpu || strcmp(st->device, "fake-gpu"))
            return mig_err_set(errp, -EINVAL, "step %zu (line %d): the %s has no VFIO-style "
                               "device %s", i + 1, st->line, mig_fault_side_names[st->side],
                               st->device);
        if (st->device_state >= 0) {
            sd->gpu_rec->fail_on = st->device_state;
            harness_log(run, "step %zu: %s device %s fails when it enters %s", i + 1,
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
        harness_log(run, "step %zu: %s device %s: %s -> ERROR (forced)", i + 1,
                    mig_fault_side_names[st->side], st->device, mig_dev_state_name(was));
        return 0;
    }
    default:
        return mig_err_set(errp, -ENOTSUP, "step %zu (line %d): %s is not supported by the "
                           "executor", i + 1, st->line, scn_step_names[st->kind]);
    }
}

/* ---- oracles ---- */

static const char *outcome_of(Run *run)
{
    if (run->mgmt_resumed)
        return "failed"; /* the destination's failure, the source resumed */
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
    /* what the scenario expects, under the pair rules */
    const char *want = scn_outcome_names[s->outcome];
    int want_err = s->error;
    const char *want_text = s->error_contains;
    char pair_text[160] = "";
    const char *own_dst = s->dst.release;
    MigPairPrediction own, p;
    mig_pair_predict(s->src.release, src_machine_type(s, s->src.release, own_dst), own_dst,
                     s->src.devices, s->src.ndevices, &own);
    mig_pair_predict(src->release, src->machine_type, dst->release, s->src.devices,
                     s->src.ndevices, &p);
    if (!p.completes) {
        /* the pair breaks: it fails cleanly, naming the device and field
         * (management's pre-flight) or, without pre-flight, as the engine
         * refuses it (the machine type comes first in the stream) */
        want = "failed";
        want_err = 0;
        if (!s->preflight)
            /* the engine's own refusal: the machine type comes first */
            snprintf(pair_text, sizeof(pair_text), "%s",
                     p.machine_unknown ? "Machine type" : p.device);
        else if (!p.device[0])
            snprintf(pair_text, sizeof(pair_text), "pre-flight: machine type %s: release %s "
                     "does not know it", src->machine_type, dst->release);
        else if (p.field[0])
            snprintf(pair_text, sizeof(pair_text), "pre-flight: %s: %s %s", p.device,
                     p.field_is_subsection ? "subsection" : "field", p.field);
        else
            snprintf(pair_text, sizeof(pair_text), "pre-flight: %s:", p.device);
        want_text = pair_text;
    } else if (!own.completes) {
        /* the scenario's own releases break (a version scenario); this pair
         * does not, so the rules say it completes */
        want = "completed";
        want_err = 0;
        want_text = NULL;
    }
    if (!run->c->pair_src && !own.completes && s->outcome != SCN_OUTCOME_FAILED)
        return mig_err_set(errp, -EPROTO, "the scenario expects %s but the pair rules say "
                           "%s -> %s fails (%s)", want, s->src.release, own_dst, own.reason);
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
        int got = traced_errno(run, run->src.killed || run->mgmt_resumed ? "dst" : "src");
        if (got != want_err)
            return mig_err_set(errp, -EPROTO, "error %s (%s), expected %s", mig_errno_name(got),
                               r->mig_error, mig_errno_name(want_err));
    }
    const char *dst_error = run->dst.m && !run->dst.killed
                                ? mig_migration_error(mig_machine_migration(run->dst.m))
                                : "";
    /* at its own releases a scenario's own text must hold too */
    const char *own_text = !run->c->pair_src && want_text != s->error_contains
                               ? s->error_contains
                               : NULL;
    const char *texts[2] = {want_text, own_text};
    for (int i = 0; i < 2; i++)
        if (texts[i] && !strstr(r->mig_error, texts[i]) && !strstr(dst_error, texts[i]))
            return mig_err_set(errp, -EPROTO, "errors (src '%s', dst '%s') do not mention '%s'",
                               r->mig_error, dst_error, texts[i]);
    bool overridden = !p.completes || !own.completes;
    if (s->trace_contains && !overridden && (fflush(run->tracef), !run->tracebuf ||
                              !strstr(run->tracebuf, s->trace_contains)))
        return mig_err_set(errp, -EPROTO, "the event trace does not contain '%s' (rerun with "
                           "-v to see it)", s->trace_contains);
    if (s->trace_excludes && !overridden && (fflush(run->tracef), run->tracebuf &&
                              strstr(run->tracebuf, s->trace_excludes)))
        return mig_err_set(errp, -EPROTO, "the event trace contains '%s', which the scenario "
                           "excludes (rerun with -v to see it)", s->trace_excludes);
    return 0;
}

static int oracle_memory(Run *run, const char *outcome, MigErr **errp)
{
    if (run->paused_err) /* found before management's `cont` */
        return mig_err_set(errp, run->paused_err->code, "%s", run->paused_err->msg);
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

/* The VFIO-style device: arcs, final state, memory and registers. */
static int gpu_check_arcs(Side *sd, MigErr **errp)
{
    if (!sd->gpu_rec)
        return 0;
    ArcRec *a = sd->gpu_rec;
    uint32_t f = mig_device_features(sd->gpu);
    const char *who = mig_fault_side_names[sd->sl->side];
    for (size_t i = 0; i < a->n; i++)
        if (!mig_dev_arc_allowed(a->from[i], a->to[i], f))
            return mig_err_set(errp, -EPROTO, "device arcs: %s fake-gpu took arc %zu %s -> %s, "
                               "which the arc table does not allow (%s)", who, i + 1,
                               mig_dev_state_name(a->from[i]), mig_dev_state_name(a->to[i]),
                               mig_dev_features_name(f));
    MigDevState from[ARC_REC_MAX], to[ARC_REC_MAX];
    size_t n = mig_device_arc_log(sd->gpu, from, to, ARC_REC_MAX);
    if (a->total <= ARC_REC_MAX && n != a->n)
        return mig_err_set(errp, -EPROTO, "device arcs: %s fake-gpu took %zu arcs, the engine "
                           "logged %zu", who, a->n, n);
    for (size_t i = 0; i < n && i < a->n; i++)
        if (from[i] != a->from[i] || to[i] != a->to[i])
            return mig_err_set(errp, -EPROTO, "device arcs: %s fake-gpu arc %zu was %s -> %s, "
                               "the engine logged %s -> %s", who, i + 1,
                               mig_dev_state_name(a->from[i]), mig_dev_state_name(a->to[i]),
                               mig_dev_state_name(from[i]), mig_dev_state_name(to[i]));
    return 0;
}

static int gpu_compare(MigcertDevice *want, MigcertDevice *got, const char *what, MigErr **errp)
{
    size_t lw, lg;
    const uint8_t *mw = fake_gpu_memory(want, &lw), *mg = fake_gpu_memory(got, &lg);
    if (lw != lg)
        return mig_err_set(errp, -EPROTO, "%s: memory is %zu bytes, expected %zu", what, lg, lw);
    for (size_t off = 0; off < lw; off += FAKE_GPU_PAGE)
        if (memcmp(mw + off, mg + off, MIG_MIN((size_t)FAKE_GPU_PAGE, lw - off))) {
            size_t b = off;
            while (mw[b] == mg[b])
                b++;
            return mig_err_set(errp, -EPROTO, "%s: memory page %zu differs (first at byte "
                               "0x%zx)", what, off / FAKE_GPU_PAGE, b);
        }
    const uint32_t *rw = fake_gpu_regs(want), *rg = fake_gpu_regs(got);
    for (unsigned i = 0; i < FAKE_GPU_NREGS; i++)
        if (rw[i] != rg[i])
            return mig_err_set(errp, -EPROTO, "%s: register %u is 0x%08x, expected 0x%08x",
                               what, i, rg[i], rw[i]);
    return 0;
}

static int oracle_gpu(Run *run, const char *outcome, MigErr **errp)
{
    Side *src = &run->src, *dst = &run->dst;
    int rc;
    if (!src->killed && (rc = gpu_check_arcs(src, errp)) < 0)
        return rc;
    if (!dst->killed && (rc = gpu_check_arcs(dst, errp)) < 0)
        return rc;
    if (!src->gpu || src->killed)
        return 0;
    bool completed = !strcmp(outcome, "completed");
    MigDevState want_src = completed ? MIG_DEV_STOP : MIG_DEV_RUNNING;
    if (mig_device_state(src->gpu) != want_src)
        return mig_err_set(errp, -EPROTO, "devices: source fake-gpu is %s after the migration "
                           "%s, expected %s", mig_dev_state_name(mig_device_state(src->gpu)),
                           outcome, mig_dev_state_name(want_src));
    if (dst->gpu && !dst->killed && mig_device_state(dst->gpu) != MIG_DEV_RUNNING)
        return mig_err_set(errp, -EPROTO, "devices: destination fake-gpu is %s after the "
                           "migration %s, expected RUNNING",
                           mig_dev_state_name(mig_device_state(dst->gpu)), outcome);
    /* the source holds what its guest wrote, no more, no less */
    rc = gpu_compare(src->gpu_shadow->instance, mig_device_backend(src->gpu)->instance,
                     completed ? "devices: source fake-gpu (saved)"
                               : "devices: source fake-gpu after the migration failed",
                     errp);
    if (rc < 0 || !completed || !dst->gpu || dst->killed)
        return rc;
    return gpu_compare(mig_device_backend(src->gpu)->instance,
                       mig_device_backend(dst->gpu)->instance,
                       "devices: destination fake-gpu (loaded)", errp);
}

/* Open fds of this process (the resource oracle). */
static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own */
}

/* The memory part of the resource oracle: once everything the case
 * allocated is freed, as many heap blocks are live as before the case
 * (unless heap_on is false: valgrind replaced the malloc family and checks
 * it), and no more bytes are mapped with mmap (guest RAM, rings: valgrind
 * does not see those, so this part always runs).  Blocks, not
 * bytes, decide: a leak always leaves a block, while the byte count moves
 * with the heap's layout even with no leak (glibc may hand a block a few
 * bytes more than asked when the free chunk it splits leaves too little,
 * so a table that libfiu frees and allocates again at the same size can
 * come back 16 bytes larger); the bytes are told, not judged.  `kept` is
 * the one block the caller still holds on purpose (the trace, echoed after
 * this), taken off exactly.  Writes the failure into r. */
static void oracle_heap(bool heap_on, const HeapCount *before, int64_t mapped_before,
                        const void *kept, RunResult *r)
{
    HeapCount now;
    heap_count_live(&now);
    long long blocks = now.blocks - before->blocks, bytes = now.bytes - before->bytes;
    long long mapped = heap_count_mapped() - mapped_before;
    if (kept) {
        blocks -= 1;
        bytes -= heap_count_block_bytes(kept);
    }
    if (heap_on && blocks > 0) {
        r->passed = false;
        snprintf(r->error, sizeof(r->error), "resources: %lld heap block(s), %lld byte(s) "
                 "still allocated after the case (run the REPRO line under valgrind "
                 "--leak-check=full --show-leak-kinds=all to see where)", blocks, bytes);
    } else if (heap_on && blocks < 0) {
        /* a case frees what an earlier one left: state that outlives a case
         * (which then depends on the cases before it) */
        r->passed = false;
        snprintf(r->error, sizeof(r->error), "resources: the case freed %lld heap block(s) "
                 "allocated before it (state kept from one case to the next)", -blocks);
    } else if (mapped > 0) {
        r->passed = false;
        snprintf(r->error, sizeof(r->error), "resources: %lld byte(s) still mapped (mmap "
                 "without munmap: guest RAM, a transport ring) after the case", mapped);
    }
}

/* Break one thing on purpose once the migration is over (oracle self-test). */
static void selftest_break(Run *run, const char *outcome)
{
    switch (run->c->selftest) {
    case EXEC_SELFTEST_PAGE:
        if (!strcmp(outcome, "completed") && run->dst.m) {
            MigRamBlock *b = mig_ram_block(mig_machine_ram(run->dst.m), 0);
            b->host[b->length / 2 + 7] ^= 0x5a;
        }
        break;
    case EXEC_SELFTEST_FIELD:
        if (run->dst.ndevs)
            mig_fake_device_poke(run->dst.devs[0]);
        break;
    case EXEC_SELFTEST_GPU:
        if (run->dst.gpu) {
            size_t len;
            uint8_t *m = (uint8_t *)fake_gpu_memory(mig_device_backend(run->dst.gpu)->instance,
                                                    &len);
            m[len / 3] ^= 0x5a;
        }
        break;
    case EXEC_SELFTEST_ARC:
        if (run->src.gpu_rec && run->src.gpu_rec->n < ARC_REC_MAX) {
            ArcRec *a = run->src.gpu_rec;
            a->from[a->n] = MIG_DEV_STOP_COPY;
            a->to[a->n] = MIG_DEV_PRE_COPY;
            a->n++;
        }
        break;
    default:
        break;
    }
}

/* ---- the case ---- */

static const char *src_machine_type(const Scenario *s, const char *src_rel, const char *dst_rel)
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
    return m;
}

/* A capability the scenario sets on one side only that the side's release
 * does not know: the case does not apply to the pair (the management bug it
 * stages cannot happen there).  Returns the name, or NULL. */
static const char *unknown_side_cap(const ScnMachine *m, const char *release)
{
    const MigRelease *rel = mig_release_find(release);
    for (size_t i = 0; i < m->ncaps_only; i++) {
        bool known = false;
        for (size_t k = 0; rel->caps[k]; k++)
            known |= !strcmp(rel->caps[k], m->caps_only[i]);
        if (!known)
            return m->caps_only[i];
    }
    return NULL;
}

int exec_case_applicable(const RunCase *c, char *why, size_t whylen)
{
    const Scenario *s = c->scn;
    const char *src_rel = c->pair_src ? c->pair_src : s->src.release;
    const char *dst_rel = c->pair_dst ? c->pair_dst : s->dst.release;
    const char *smt = src_machine_type(s, src_rel, dst_rel);
    const MigRelease *smt_rel = mig_machine_type_find(smt);
    for (size_t i = 0; i < s->src.ndevices; i++)
        if (!mig_release_has_device(smt_rel->name, s->src.devices[i])) {
            snprintf(why, whylen, "machine type %s has no %s", smt, s->src.devices[i]);
            return EXEC_NA_DEVICE;
        }
    const char *cap = unknown_side_cap(&s->src, src_rel);
    const char *cap_rel = src_rel;
    if (!cap) {
        cap = unknown_side_cap(&s->dst, dst_rel);
        cap_rel = dst_rel;
    }
    if (cap) {
        snprintf(why, whylen, "release %s does not know capability %s", cap_rel, cap);
        return EXEC_NA_CAPABILITY;
    }
    const MigRelease *sr = mig_release_find(src_rel), *dr = mig_release_find(dst_rel);
    MigCapMask offer = (sr->knows_caps_query ? caps_mask(sr->caps) : 0) &
                       (dr->knows_caps_query ? caps_mask(dr->caps) : 0);
    for (size_t i = 0; i < s->nrequires; i++) {
        int cp = mig_cap_parse(s->requires[i]);
        if (cp >= 0 && !(offer & MIG_CAP_BIT(cp))) {
            snprintf(why, whylen, "the scenario requires capability %s, which %s -> %s do "
                     "not both offer", s->requires[i], src_rel, dst_rel);
            return EXEC_NA_CAPABILITY;
        }
    }
    return EXEC_APPLICABLE;
}

int exec_run_case(const RunCase *c, RunResult *r)
{
    const Scenario *s = c->scn;
    memset(r, 0, sizeof(*r));
    Run run = {.c = c, .s = s, .r = r};
    MigErr *err = NULL;
    MigErr *oracle = NULL; /* every exit path frees it */
    int rc = 0;
    const char *src_rel = c->pair_src ? c->pair_src : s->src.release;
    const char *dst_rel = c->pair_dst ? c->pair_dst : s->dst.release;
    long fds_before = count_fds();
    /* the heap oracle's baseline, before the case allocates anything; under
     * valgrind the counters are off (heap-count.h) and valgrind checks.
     * Warm-up first: the trace's SHA-256 initialises libcrypto on first use
     * in the process (its config, error strings, the default provider and
     * its algorithm cache: ~3,000 blocks that live until exit, freed by
     * libcrypto's own atexit handler).  Doing that before the baseline is a
     * no-op for every case but the process's first.  Likewise libfiu's
     * tables (fiu_init, which the injector calls on its first arm and which
     * does nothing the second time). */
    mig_trace_free(mig_trace_new());
    (void)fiu_init(0);
    const bool heap_on = heap_count_active();
    HeapCount heap_before;
    heap_count_live(&heap_before);
    const int64_t mapped_before = heap_count_mapped();
    void *heap_left = NULL; /* EXEC_SELFTEST_HEAP's block */
    void *map_left = MAP_FAILED; /* EXEC_SELFTEST_MAP's page */

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

    /* a pair that cannot have the scenario's devices or capabilities: the
     * case does not apply (`migcert run` leaves such cases out) */
    if (exec_case_applicable(c, r->error, sizeof(r->error)) != EXEC_APPLICABLE) {
        r->skipped = true;
        goto out_free;
    }
    const char *smt = src_machine_type(s, src_rel, dst_rel);
    const MigRelease *smt_rel = mig_machine_type_find(smt);
    /* the destination runs the source's machine type when it knows it (as
     * management starts it), else its own newest */
    const char *dmt = mig_release_index(smt_rel->name) <= mig_release_index(dst_rel)
                          ? smt
                          : mig_release_find(dst_rel)->machine_type;
    snprintf(run.dst_machine_type, sizeof(run.dst_machine_type), "%s", dmt);

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
    MigCapMask want = 0, src_only = 0, dst_only = 0;
    for (size_t i = 0; i < s->nrequires; i++) {
        int cp = mig_cap_parse(s->requires[i]);
        if (cp >= 0 && !(offer & MIG_CAP_BIT(cp))) {
            r->skipped = true;
            snprintf(r->error, sizeof(r->error), "the scenario requires capability %s, which "
                     "%s -> %s do not both offer", s->requires[i], src_rel, dst_rel);
            goto out_disarm;
        }
        if (cp >= 0)
            want |= MIG_CAP_BIT(cp);
    }
    for (size_t i = 0; i < s->ncaps; i++) {
        int cp = mig_cap_parse(s->caps[i]);
        if (cp < 0 || !(offer & MIG_CAP_BIT(cp)))
            harness_log(&run, "capability %s not offered by both sides: left off", s->caps[i]);
        else
            want |= MIG_CAP_BIT(cp);
    }
    /* like libvirt, management asks for a return path whenever both sides
     * can give one: a destination that fails after the last byte can then
     * still tell the source, which keeps its guest */
    const MigCapMask rp = MIG_CAP_BIT(MIG_CAP_RETURN_PATH);
    if (!(offer & rp))
        harness_log(&run, "management: return-path not offered by both sides (%s -> %s): "
                    "no return path", src_rel, dst_rel);
    else if (!s->return_path && !(want & rp))
        harness_log(&run, "management: return-path left off (the scenario opts out)");
    else
        harness_log(&run, "management: return-path enabled (both sides offer it)");
    if (s->return_path)
        want |= offer & rp;
    for (size_t i = 0; i < s->src.ncaps_only; i++) {
        int cp = mig_cap_parse(s->src.caps_only[i]);
        if (cp >= 0)
            src_only |= MIG_CAP_BIT(cp);
    }
    for (size_t i = 0; i < s->dst.ncaps_only; i++) {
        int cp = mig_cap_parse(s->dst.caps_only[i]);
        if (cp >= 0)
            dst_only |= MIG_CAP_BIT(cp);
    }
    if (want || src_only || dst_only) {
        MigErr *e = NULL;
        if ((want | src_only) &&
            mig_migration_set_caps(mig_machine_migration(run.src.m), want | src_only,
                                   want | src_only, &e) < 0)
            harness_log(&run, "src refused capabilities: %s", e ? e->msg : "?");
        mig_err_free(e);
        e = NULL;
        if ((want | dst_only) &&
            mig_migration_set_caps(mig_machine_migration(run.dst.m), want | dst_only,
                                   want | dst_only, &e) < 0)
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
    harness_log(&run, "outcome %s%s%s (faults fired: %llu, link bytes %llu)", outcome,
                r->mig_error[0] ? ": " : "", r->mig_error, (unsigned long long)r->fired,
                (unsigned long long)(run.link ? mig_link_bytes(run.link, MIG_LINK_A_TO_B) : 0));
    selftest_break(&run, outcome);
    if (!oracle)
        oracle_outcome(&run, outcome, &oracle);
    if (!oracle)
        oracle_memory(&run, outcome, &oracle);
    if (!oracle && run.migrating)
        oracle_devices(&run, outcome, &oracle);
    if (!oracle && run.migrating)
        oracle_gpu(&run, outcome, &oracle);

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
    MigLoopSource *left_timer = NULL;
    MigTransport *left_t[2] = {NULL, NULL};
    int left_fd = -1;
    if (c->selftest == EXEC_SELFTEST_TIMER)
        left_timer = mig_loop_timer_add(run.loop, mig_loop_now_ns(run.loop) + 1000000000ull,
                                        side_tramp_nop, NULL);
    if (c->selftest == EXEC_SELFTEST_FD)
        left_fd = dup(0);
    if (c->selftest == EXEC_SELFTEST_HEAP)
        heap_left = mig_malloc0(120);
    if (c->selftest == EXEC_SELFTEST_MAP)
        map_left = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->selftest == EXEC_SELFTEST_TRANSPORT && run.src.sl) {
        MigTransport *a, *b;
        MigLinkParams lp = {0};
        if (mig_transport_mem_pair(run.loop, &lp, &a, &b) == 0) {
            left_t[0] = side_transport_new(run.src.sl, a, &run.live_transports);
            left_t[1] = side_transport_new(run.src.sl, b, &run.live_transports);
        }
    }
    if (run.wl)
        mig_workload_free(run.wl);
    side_destroy(&run.dst);
    side_destroy(&run.src);
    if (run.link)
        mig_link_unref(run.link);
    run.link = NULL;
    if (rc == 0 && !r->skipped && !oracle && run.migrating) {
        long live = mig_sim_live_sources(run.loop);
        long fds = count_fds();
        if (run.live_transports != 0)
            mig_err_set(&oracle, -EPROTO, "resources: %ld mem transport(s) of the migration "
                        "link left open after both machines were freed", run.live_transports);
        else if (live != 0)
            mig_err_set(&oracle, -EPROTO, "resources: %ld timer(s)/defer(s) left on the loop "
                        "after both machines were freed", live);
        else if (fds_before >= 0 && fds > fds_before)
            mig_err_set(&oracle, -EPROTO, "resources: %ld fd(s) more open than before the "
                        "case (/proc/self/fd)", fds - fds_before);
    }
    /* what the self-test left behind goes now (after the oracle saw it) */
    if (left_timer)
        mig_loop_remove(run.loop, left_timer);
    if (left_fd >= 0)
        close(left_fd);
    for (int i = 0; i < 2; i++)
        if (left_t[i]) {
            SideTransport *st = (SideTransport *)left_t[i];
            st->sl = NULL;
            mig_transport_close(left_t[i]);
        }
    if (rc == 0 && !r->skipped) {
        r->passed = !oracle;
        if (oracle)
            snprintf(r->error, sizeof(r->error), "%s", oracle->msg);
    }
    goto out_loop;
out_free:
    r->virtual_ns = 0;
    mig_trace_hash(run.trace, r->trace_hash);
out_loop:
    mig_err_free(oracle);
    mig_err_free(run.paused_err);
    fault_injector_free(run.inj);
    mig_loop_free(run.loop);
    mig_trace_free(run.trace);
    fclose(run.tracef);
    mig_err_free(err);
    /* the heap oracle comes last, when all the case built is gone but the
     * trace it echoes (writing to trace_out may allocate the caller's
     * buffers: after the check); like the other resource checks it only
     * judges a case that ran and passed */
    if (rc == 0 && !r->skipped && r->passed && run.migrating)
        oracle_heap(heap_on, &heap_before, mapped_before, run.tracebuf, r);
    free(heap_left);
    if (map_left != MAP_FAILED)
        munmap(map_left, 8192);
    if (c->trace_out && run.tracebuf)
        fwrite(run.tracebuf, 1, run.tracelen, c->trace_out);
    free(run.tracebuf);
    return rc;
}
