/*
 * exec-drop.c - the arc recorder in front of the fake-gpu's backend, and
 * the device-data drop trigger it feeds.
 *
 * Owns: ArcRec (exec__arc_rec_new) and the run's DropTrigger
 * (exec__drop_trigger_arm / _judge, exec__drop_on_read).
 * Called by: exec-side.c (every side's fake-gpu gets a recorder; the
 * source's reports its reads to the trigger), exec-steps.c (a `drop:
 * {device-data: P%}` step arms the trigger; the next migrate, a restart
 * and the end of the migration judge it), the arc oracle in
 * oracle-devices.c and the device-error step, which read or set the
 * recorder.  The device-migration protocol the recorder follows:
 * docs/protocol-vfio.md.
 *
 * The recorder sees every call the engine makes to the device, so the arc
 * oracle judges what the device was really asked to do, independently of
 * the engine's own bookkeeping (mig_device_arc_log).
 * On the source it also follows the saving session as the engine reads it,
 * for the device-data drop trigger: per phase (the PRE_COPY snapshot, the
 * STOP_COPY data) the size the device reported on entering it (precopy_info
 * initial bytes, data_size) and, for every chunk the engine read, where the
 * chunk's bytes went in the migration stream.  The engine writes each chunk
 * as one DATA record (tag, be32 length, bytes: device-savevm.h) at the
 * stream offset it is at when it reads the device.
 *
 * Invariants: a trigger fires at most once and is judged at most once; it
 * only looks at the saving sessions opened after it was armed (a drop
 * belongs to the attempt it was armed in).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "exec-internal.h"

/* ---- the arc recorder ---- */

static const char *const arc_phase_names[ARC_PHASE__COUNT] = {"PRE_COPY snapshot",
                                                               "STOP_COPY data"};

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
    MIG_GROW(p->c, p->cap, p->n + 1, 64);
    p->c[p->n++] = (ArcChunk){p->read, (uint64_t)n, at + MIG_DEV_REC_DATA_HDR};
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

ArcRec *exec__arc_rec_new(MigDevBackend *inner)
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
    t->record_at = c->data_at - MIG_DEV_REC_DATA_HDR;
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
    exec__log(run, "step %zu: the link drops at byte %llu: inside DATA record %zu of %s's %s "
              "(at offset %llu), device byte %llu of %llu (%d%%)", t->step,
              (unsigned long long)t->link_byte, t->record_no, mig_device_name(run->src.gpu),
              arc_phase_names[t->phase], (unsigned long long)t->record_at,
              (unsigned long long)d, (unsigned long long)p->size, t->pct);
    return 0;
}

void exec__drop_on_read(void *opaque)
{
    drop_trigger_try(opaque, NULL);
}

int exec__drop_trigger_arm(Run *run, size_t i, const ScnStep *st, MigErr **errp)
{
    if (!run->src.gpu)
        return mig_err_set(errp, -EINVAL, "step %zu (line %d): drop at device-data: the source "
                           "has no VFIO-style device (fake-gpu)", i + 1, st->line);
    DropTrigger *t = &run->drop;
    if (t->armed && !t->fired)
        exec__log(run, "step %zu: replaces step %zu's drop, which never happened", i + 1,
                  t->step);
    *t = (DropTrigger){.armed = true, .step = i + 1, .line = st->line, .pct = st->device_data,
                       .sessions = run->gpu_sessions};
    t->phase = st->device_state < 0 ? -1 : arc_phase_of((MigDevState)st->device_state);
    exec__log(run, "step %zu: the link drops at %d%% of %s's %s", i + 1, t->pct,
              mig_device_name(run->src.gpu), drop_phase_name(t));
    return drop_trigger_try(run, errp);
}

/* Once the migration is over: say whether the drop landed where it was
 * placed, i.e. the destination failed reading that DATA record, at that
 * byte.  The line is what scenarios match (seed-independent up to the
 * numbers in parentheses). */
void exec__drop_trigger_judge(Run *run)
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
            exec__log(run, "step %zu: the drop at %d%% of %s's %s never happened: the engine "
                      "read %llu of its %llu bytes", t->step, t->pct, dev, drop_phase_name(t),
                      (unsigned long long)p->read, (unsigned long long)p->size);
        else
            exec__log(run, "step %zu: the drop at %d%% of %s's %s never happened: the device "
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
        exec__log(run, "drop landed in DATA record %zu of %s's %s, at %d%% (%sdevice byte "
                  "%llu of %llu; the destination failed reading the record at offset %llu "
                  "at byte %llu)", t->record_no, dev, arc_phase_names[t->phase], t->pct,
                  t->dev_byte + 1 == t->size ? "the last byte: " : "",
                  (unsigned long long)t->dev_byte, (unsigned long long)t->size,
                  (unsigned long long)t->record_at, (unsigned long long)t->link_byte);
    else
        exec__log(run, "step %zu: the drop missed DATA record %zu of %s's %s: expected the "
                  "destination to fail reading it (offset %llu) at byte %llu; the destination "
                  "is %s: %s", t->step, t->record_no, dev, arc_phase_names[t->phase],
                  (unsigned long long)t->record_at, (unsigned long long)t->link_byte,
                  run->dst.killed ? "killed" : mig_status_name(exec__side_status(&run->dst)),
                  err[0] ? err : "no error");
}

