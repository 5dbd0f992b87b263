/*
 * device.c - the v2 state tables, the next-step algorithm and MigDevice
 * (see device.h for the diagram and the transition list).
 */
#include <stdlib.h>
#include <string.h>

#include "../common/faults.h"
#include "device.h"

#define ARC_LOG_MAX 64

struct MigDevice {
    char *name;
    MigDevBackend *be;
    MigDevState state; /* written only by dev_enter() */
    MigTrace *trace;
    MigLoop *loop;
    MigDevEventCb event_cb;
    void *event_opaque;
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t stop_copy_read;  /* bytes read since entering STOP_COPY */
    uint64_t stop_copy_limit; /* mig_device_set_stop_copy_limit; 0 = none */
    /* the progress rule (no explicit limit): the lowest remaining size the
     * device reported in this STOP_COPY and the bytes it handed out since
     * that report last fell */
    uint64_t sc_remaining;
    uint64_t sc_stalled;
    uint64_t sc_stall_max; /* MIG_DEV_STOP_COPY_STALL_BYTES or mig_device_set_stop_copy_stall's */
    size_t narcs;
    MigDevState arc_from[ARC_LOG_MAX];
    MigDevState arc_to[ARC_LOG_MAX];
};

static const char *const state_names[MIG_DEV_STATE__COUNT] = {
    [MIG_DEV_ERROR] = "ERROR",
    [MIG_DEV_STOP] = "STOP",
    [MIG_DEV_RUNNING] = "RUNNING",
    [MIG_DEV_STOP_COPY] = "STOP_COPY",
    [MIG_DEV_RESUMING] = "RESUMING",
    [MIG_DEV_RUNNING_P2P] = "RUNNING_P2P",
    [MIG_DEV_PRE_COPY] = "PRE_COPY",
    [MIG_DEV_PRE_COPY_P2P] = "PRE_COPY_P2P",
};

/* Feature flags a state needs; ERROR's requirement can never be met. */
static const uint32_t state_needs[MIG_DEV_STATE__COUNT] = {
    [MIG_DEV_ERROR] = ~0u,
    [MIG_DEV_STOP] = MIG_DEV_F_STOP_COPY,
    [MIG_DEV_RUNNING] = MIG_DEV_F_STOP_COPY,
    [MIG_DEV_STOP_COPY] = MIG_DEV_F_STOP_COPY,
    [MIG_DEV_RESUMING] = MIG_DEV_F_STOP_COPY,
    [MIG_DEV_RUNNING_P2P] = MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P,
    [MIG_DEV_PRE_COPY] = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY,
    [MIG_DEV_PRE_COPY_P2P] = MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P | MIG_DEV_F_PRE_COPY,
};

#define E MIG_DEV_ERROR
#define ST MIG_DEV_STOP
#define RU MIG_DEV_RUNNING
#define SC MIG_DEV_STOP_COPY
#define RS MIG_DEV_RESUMING
#define RP MIG_DEV_RUNNING_P2P
#define PC MIG_DEV_PRE_COPY
#define PP MIG_DEV_PRE_COPY_P2P

/* The next-step table with every feature present (docs/protocol-vfio.md 5):
 * [cur][target] = the next state.  Unsupported states are skipped by
 * mig_dev_next_state() by looking up again from the skipped state. */
static const MigDevState next_table[MIG_DEV_STATE__COUNT][MIG_DEV_STATE__COUNT] = {
    /*               ERR STOP RUN SC  RES RP  PC  PCP */
    [E] = /* ERROR */ {E, E, E, E, E, E, E, E},
    [ST] = /* STOP */ {E, ST, RP, SC, RS, RP, RP, RP},
    [RU] = /* RUNNING */ {E, RP, RU, RP, RP, RP, PC, RP},
    [SC] = /* STOP_COPY */ {E, ST, ST, SC, ST, ST, E, E},
    [RS] = /* RESUMING */ {E, ST, ST, ST, RS, ST, ST, ST},
    [RP] = /* RUNNING_P2P */ {E, ST, RU, ST, ST, RP, RU, PP},
    [PC] = /* PRE_COPY */ {E, RU, RU, PP, RU, RU, PC, PP},
    [PP] = /* PRE_COPY_P2P */ {E, RP, RP, SC, RP, RP, PC, PP},
};

/* Direct arcs a driver implements (docs/protocol-vfio.md 4), per requirement:
 * an arc exists when the device has all of `need` and none of `without`. */
static const struct {
    MigDevState from, to;
    uint32_t need, without;
} arcs[] = {
    {ST, SC, 0, 0},
    {SC, ST, 0, 0},
    {ST, RS, 0, 0},
    {RS, ST, 0, 0},
    {RU, ST, 0, MIG_DEV_F_P2P},
    {ST, RU, 0, MIG_DEV_F_P2P},
    {RU, RP, MIG_DEV_F_P2P, 0},
    {RP, RU, MIG_DEV_F_P2P, 0},
    {RP, ST, MIG_DEV_F_P2P, 0},
    {ST, RP, MIG_DEV_F_P2P, 0},
    {RU, PC, MIG_DEV_F_PRE_COPY, 0},
    {PC, RU, MIG_DEV_F_PRE_COPY, 0},
    {PC, SC, MIG_DEV_F_PRE_COPY, MIG_DEV_F_P2P},
    {PC, PP, MIG_DEV_F_PRE_COPY | MIG_DEV_F_P2P, 0},
    {PP, PC, MIG_DEV_F_PRE_COPY | MIG_DEV_F_P2P, 0},
    {PP, RP, MIG_DEV_F_PRE_COPY | MIG_DEV_F_P2P, 0},
    {RP, PP, MIG_DEV_F_PRE_COPY | MIG_DEV_F_P2P, 0},
    {PP, SC, MIG_DEV_F_PRE_COPY | MIG_DEV_F_P2P, 0},
};

#undef E
#undef ST
#undef RU
#undef SC
#undef RS
#undef RP
#undef PC
#undef PP

const char *mig_dev_state_name(MigDevState s)
{
    return (unsigned)s < MIG_DEV_STATE__COUNT ? state_names[s] : "?";
}

int mig_dev_state_parse(const char *name, MigDevState *out)
{
    for (int i = 0; i < MIG_DEV_STATE__COUNT; i++)
        if (name && strcmp(state_names[i], name) == 0) {
            *out = (MigDevState)i;
            return 0;
        }
    return -EINVAL;
}

const char *mig_dev_features_name(uint32_t f)
{
    switch (f) {
    case MIG_DEV_F_STOP_COPY:
        return "STOP_COPY";
    case MIG_DEV_F_STOP_COPY | MIG_DEV_F_P2P:
        return "STOP_COPY+P2P";
    case MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY:
        return "STOP_COPY+PRE_COPY";
    case MIG_DEV_F_ALL:
        return "STOP_COPY+P2P+PRE_COPY";
    default:
        return "reserved";
    }
}

bool mig_dev_features_valid(uint32_t f)
{
    return (f & MIG_DEV_F_STOP_COPY) && !(f & ~MIG_DEV_F_ALL);
}

bool mig_dev_state_supported(MigDevState s, uint32_t features)
{
    if ((unsigned)s >= MIG_DEV_STATE__COUNT)
        return false;
    return (state_needs[s] & features) == state_needs[s];
}

bool mig_dev_state_saving(MigDevState s)
{
    return s == MIG_DEV_PRE_COPY || s == MIG_DEV_PRE_COPY_P2P || s == MIG_DEV_STOP_COPY;
}

bool mig_dev_arc_allowed(MigDevState from, MigDevState to, uint32_t features)
{
    if (!mig_dev_state_supported(from, features) || !mig_dev_state_supported(to, features))
        return false;
    for (size_t i = 0; i < MIG_ARRAY_SIZE(arcs); i++)
        if (arcs[i].from == from && arcs[i].to == to)
            return (features & arcs[i].need) == arcs[i].need && !(features & arcs[i].without);
    return false;
}

int mig_dev_next_state(MigDevState cur, MigDevState target, uint32_t features,
                       MigDevState *next)
{
    if (!mig_dev_state_supported(cur, features) || !mig_dev_state_supported(target, features))
        return -EINVAL;
    MigDevState n = next_table[cur][target];
    /* Skip unsupported states; ERROR ends the walk (its row is all ERROR,
     * so testing it for support would never terminate). */
    while (n != MIG_DEV_ERROR && !mig_dev_state_supported(n, features))
        n = next_table[n][target];
    if (n == MIG_DEV_ERROR)
        return -EINVAL;
    *next = n;
    return 0;
}

int mig_dev_path(MigDevState cur, MigDevState target, uint32_t features,
                 MigDevState out[MIG_DEV_STATE__COUNT], size_t *n)
{
    *n = 0;
    while (cur != target) {
        MigDevState nx;
        int r = mig_dev_next_state(cur, target, features, &nx);
        if (r < 0)
            return r;
        if (*n >= MIG_DEV_STATE__COUNT)
            return -ELOOP; /* a table bug, never input */
        out[(*n)++] = nx;
        cur = nx;
    }
    return mig_dev_state_supported(target, features) ? 0 : -EINVAL;
}

/* ---- MigDevice ---- */

/* Why dev_enter() moves the state: decides which check applies and how the
 * trace line reads. */
enum EnterCause { ENTER_ARC, ENTER_RESET, ENTER_FAILURE, ENTER__COUNT };

static const char *const enter_cause_names[ENTER__COUNT] = {
    [ENTER_ARC] = "arc",
    [ENTER_RESET] = "reset",
    [ENTER_FAILURE] = "after failure",
};

/* The one writer of dev->state. */
static int dev_enter(MigDevice *d, MigDevState to, enum EnterCause cause, MigErr **errp)
{
    MigDevState from = d->state;
    uint32_t f = d->be->features;
    bool ok;
    switch (cause) {
    case ENTER_ARC:
        ok = mig_dev_arc_allowed(from, to, f);
        break;
    case ENTER_RESET:
        ok = to == MIG_DEV_RUNNING;
        break;
    default: /* after a failed arc: unchanged, ERROR, or any supported state */
        ok = to == MIG_DEV_ERROR || mig_dev_state_supported(to, f);
        break;
    }
    if (!ok)
        return mig_err_set(errp, -EPROTO, "device %s: %s -> %s is not an arc for %s", d->name,
                           mig_dev_state_name(from), mig_dev_state_name(to),
                           mig_dev_features_name(f));
    if (from == to && cause != ENTER_RESET)
        return 0;
    d->state = to;
    if (to == MIG_DEV_STOP_COPY) {
        d->stop_copy_read = 0;
        d->sc_remaining = UINT64_MAX;
        d->sc_stalled = 0;
    }
    if (cause == ENTER_ARC && d->narcs < ARC_LOG_MAX) {
        d->arc_from[d->narcs] = from;
        d->arc_to[d->narcs] = to;
        d->narcs++;
    }
    if (cause == ENTER_ARC)
        mig_trace_log(d->trace, d->loop ? mig_loop_now_ns(d->loop) : 0, "device", "%s: %s -> %s",
                      d->name, mig_dev_state_name(from), mig_dev_state_name(to));
    else
        mig_trace_log(d->trace, d->loop ? mig_loop_now_ns(d->loop) : 0, "device",
                      "%s: %s -> %s (%s)", d->name, mig_dev_state_name(from),
                      mig_dev_state_name(to), enter_cause_names[cause]);
    if (d->event_cb)
        d->event_cb(d, from, to, d->event_opaque);
    return 0;
}

MigDevice *mig_device_new(const char *name, MigDevBackend *be, MigErr **errp)
{
    MigDevState st;
    if (be->ops->get_state(be, &st, errp) < 0 || (unsigned)st >= MIG_DEV_STATE__COUNT) {
        mig_err_set(errp, -EPROTO, "device %s: reports an invalid initial state", name);
        be->ops->free(be);
        return NULL;
    }
    MigDevice *d = mig_malloc0(sizeof(*d));
    d->name = mig_strdup(name);
    d->be = be;
    d->state = st;
    d->sc_stall_max = MIG_DEV_STOP_COPY_STALL_BYTES;
    return d;
}

void mig_device_free(MigDevice *d)
{
    if (!d)
        return;
    d->be->ops->free(d->be);
    free(d->name);
    free(d);
}

const char *mig_device_name(const MigDevice *d) { return d->name; }
uint32_t mig_device_features(const MigDevice *d) { return d->be->features; }
MigDevState mig_device_state(const MigDevice *d) { return d->state; }
MigDevBackend *mig_device_backend(MigDevice *d) { return d->be; }

void mig_device_set_trace(MigDevice *d, MigTrace *t, MigLoop *loop)
{
    d->trace = t;
    d->loop = loop;
}

void mig_device_set_event_cb(MigDevice *d, MigDevEventCb cb, void *opaque)
{
    d->event_cb = cb;
    d->event_opaque = opaque;
}

/* After a failed call, believe the backend about where the device is. */
static void resync(MigDevice *d)
{
    MigDevState st;
    MigErr *ignored = NULL;
    if (d->be->ops->get_state(d->be, &st, &ignored) < 0 || (unsigned)st >= MIG_DEV_STATE__COUNT)
        st = MIG_DEV_ERROR;
    mig_err_free(ignored);
    if (st != d->state && dev_enter(d, st, ENTER_FAILURE, NULL) < 0)
        dev_enter(d, MIG_DEV_ERROR, ENTER_FAILURE, NULL);
}

void mig_device_refresh(MigDevice *d) { resync(d); }

int mig_device_set_state(MigDevice *d, MigDevState target, MigErr **errp)
{
    uint32_t f = d->be->features;
    if ((unsigned)target >= MIG_DEV_STATE__COUNT || !mig_dev_state_supported(target, f))
        return mig_err_set(errp, -EINVAL, "device %s: state %s (%u) is not supported by %s",
                           d->name, mig_dev_state_name(target), (unsigned)target,
                           mig_dev_features_name(f));
    while (d->state != target) {
        MigDevState next;
        if (mig_dev_next_state(d->state, target, f, &next) < 0)
            return mig_err_set(errp, -EINVAL, "device %s: cannot go from %s to %s", d->name,
                               mig_dev_state_name(d->state), mig_dev_state_name(target));
        int r = 0;
        r = mig_fault_fire(MIG_FAULT_DEVICE_ARC);
        if (r < 0) {
            return mig_err_set(errp, r, "device %s: arc %s -> %s: injected fault", d->name,
                               mig_dev_state_name(d->state), mig_dev_state_name(next));
        }
        MigErr *err = NULL;
        r = d->be->ops->arc(d->be, next, &err);
        if (r >= 0) {
            MigDevState now;
            if (d->be->ops->get_state(d->be, &now, &err) < 0 || now != next) {
                if (!err)
                    mig_err_set(&err, -EPROTO, "device reports %s after the arc succeeded",
                                mig_dev_state_name(now));
                r = err->code;
            }
        }
        if (r < 0) {
            if (!err)
                mig_err_set(&err, r, "%s", mig_errno_name(r));
            mig_err_prepend(&err, "device %s: arc %s -> %s", d->name,
                            mig_dev_state_name(d->state), mig_dev_state_name(next));
            resync(d);
            return mig_err_propagate(errp, err);
        }
        r = dev_enter(d, next, ENTER_ARC, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

int mig_device_reset(MigDevice *d, MigErr **errp)
{
    MigErr *err = NULL;
    int r = d->be->ops->reset(d->be, &err);
    if (r < 0) {
        if (!err)
            mig_err_set(&err, r, "%s", mig_errno_name(r));
        mig_err_prepend(&err, "device %s: reset", d->name);
        resync(d);
        return mig_err_propagate(errp, err);
    }
    MigDevState now;
    if (d->be->ops->get_state(d->be, &now, &err) < 0 || now != MIG_DEV_RUNNING) {
        if (!err)
            mig_err_set(&err, -EPROTO, "device is %s after reset, not RUNNING",
                        mig_dev_state_name(now));
        mig_err_prepend(&err, "device %s: reset", d->name);
        resync(d);
        return mig_err_propagate(errp, err);
    }
    return dev_enter(d, MIG_DEV_RUNNING, ENTER_RESET, errp);
}

int mig_device_abort(MigDevice *d, MigErr **errp)
{
    switch (d->state) {
    case MIG_DEV_RUNNING:
        return 0;
    case MIG_DEV_RESUMING:
    case MIG_DEV_ERROR:
        return mig_device_reset(d, errp);
    default: {
        MigErr *err = NULL;
        int r = mig_device_set_state(d, MIG_DEV_RUNNING, &err);
        if (r < 0) {
            /* Could not walk back: a reset at least leaves it usable. */
            mig_err_prepend(&err, "abort");
            mig_device_reset(d, NULL);
            return mig_err_propagate(errp, err);
        }
        return 0;
    }
    }
}

/* STOP_COPY data of n more bytes: within the explicit limit when one is
 * set; otherwise the device must make progress: the remaining size it
 * reports (data_size) has to fall at least once in every
 * MIG_DEV_STOP_COPY_STALL_BYTES it hands out.  A device of any size whose
 * estimate is merely low passes (it ends with a read of 0 long before); one
 * that hands out data forever while its remaining stays put fails. */
static int check_stop_copy_progress(MigDevice *d, uint64_t n, MigErr **errp)
{
    d->stop_copy_read += n;
    if (d->stop_copy_limit) {
        if (d->stop_copy_read > d->stop_copy_limit)
            return mig_err_set(errp, -EPROTO,
                               "device %s: STOP_COPY data passes %llu bytes and the device "
                               "never reports the end of its state",
                               d->name, (unsigned long long)d->stop_copy_limit);
        return 0;
    }
    uint64_t left = 0;
    MigErr *ignored = NULL;
    bool known = d->be->ops->data_size(d->be, &left, &ignored) == 0;
    mig_err_free(ignored);
    if (known && left < d->sc_remaining) {
        d->sc_remaining = left;
        d->sc_stalled = 0;
        return 0;
    }
    d->sc_stalled += n;
    if (d->sc_stalled > d->sc_stall_max)
        return mig_err_set(errp, -EPROTO,
                           "device %s: STOP_COPY data went on for %llu bytes (%llu in all) "
                           "while the remaining size it reports stayed at %llu; the device "
                           "never reports the end of its state",
                           d->name, (unsigned long long)d->sc_stalled,
                           (unsigned long long)d->stop_copy_read,
                           (unsigned long long)(known ? left : d->sc_remaining));
    return 0;
}

ssize_t mig_device_read(MigDevice *d, void *buf, size_t len, MigErr **errp)
{
    if (!mig_dev_state_saving(d->state))
        return mig_err_set(errp, -EINVAL, "device %s: read in %s, outside a saving session",
                           d->name, mig_dev_state_name(d->state));
    MIG_FAULT_RETURN_ERR(MIG_FAULT_DEVICE_READ, errp, "device %s: read: injected fault", d->name);
    MigErr *err = NULL;
    ssize_t n = d->be->ops->read(d->be, buf, len, &err);
    bool stop_copy = d->state == MIG_DEV_STOP_COPY;
    if (n == -ENOMSG) {
        mig_err_free(err);
        if (stop_copy)
            return mig_err_set(errp, -EPROTO,
                               "device %s: read returned ENOMSG in STOP_COPY; the end of the "
                               "stream must be a read of 0",
                               d->name);
        return -EAGAIN;
    }
    if (n < 0) {
        if (!err)
            mig_err_set(&err, (int)n, "%s", mig_errno_name((int)n));
        mig_err_prepend(&err, "device %s: read in %s", d->name, mig_dev_state_name(d->state));
        return mig_err_propagate(errp, err);
    }
    mig_err_free(err);
    if ((size_t)n > len)
        return mig_err_set(errp, -EPROTO,
                           "device %s: read returned %zd bytes for a %zu-byte buffer", d->name, n,
                           len);
    if (n == 0 && !stop_copy)
        return mig_err_set(errp, -EPROTO,
                           "device %s: read returned 0 (end of stream) in %s; with nothing to "
                           "hand out now it must fail with ENOMSG",
                           d->name, mig_dev_state_name(d->state));
    if (stop_copy && n > 0 && check_stop_copy_progress(d, (uint64_t)n, errp) < 0)
        return -EPROTO;
    d->bytes_read += (uint64_t)n;
    return n;
}

int mig_device_write(MigDevice *d, const void *buf, size_t len, MigErr **errp)
{
    if (d->state != MIG_DEV_RESUMING)
        return mig_err_set(errp, -EINVAL, "device %s: write in %s, outside a resuming session",
                           d->name, mig_dev_state_name(d->state));
    MIG_FAULT_RETURN_ERR(MIG_FAULT_DEVICE_WRITE, errp, "device %s: write: injected fault", d->name);
    const uint8_t *p = buf;
    while (len > 0) {
        MigErr *err = NULL;
        ssize_t n = d->be->ops->write(d->be, p, len, &err);
        if (n <= 0 || (size_t)n > len) {
            if (n > 0 || n == 0) {
                mig_err_free(err);
                err = NULL;
                mig_err_set(&err, -EPROTO, "took %zd of %zu bytes", n, len);
            } else if (!err) {
                mig_err_set(&err, (int)n, "%s", mig_errno_name((int)n));
            }
            mig_err_prepend(&err, "device %s: write", d->name);
            return mig_err_propagate(errp, err);
        }
        mig_err_free(err);
        p += n;
        len -= (size_t)n;
        d->bytes_written += (uint64_t)n;
    }
    return 0;
}

int mig_device_precopy_info(MigDevice *d, uint64_t *initial, uint64_t *dirty, MigErr **errp)
{
    MigErr *err = NULL;
    int r = d->be->ops->precopy_info(d->be, initial, dirty, &err);
    if (r < 0) {
        if (!err)
            mig_err_set(&err, r, "%s", mig_errno_name(r));
        mig_err_prepend(&err, "device %s: precopy info in %s", d->name,
                        mig_dev_state_name(d->state));
        return mig_err_propagate(errp, err);
    }
    mig_err_free(err);
    return 0;
}

int mig_device_data_size(MigDevice *d, uint64_t *len, MigErr **errp)
{
    MigErr *err = NULL;
    int r = d->be->ops->data_size(d->be, len, &err);
    if (r < 0) {
        if (!err)
            mig_err_set(&err, r, "%s", mig_errno_name(r));
        mig_err_prepend(&err, "device %s: data size", d->name);
        return mig_err_propagate(errp, err);
    }
    mig_err_free(err);
    return 0;
}

void mig_device_set_stop_copy_limit(MigDevice *d, uint64_t bytes) { d->stop_copy_limit = bytes; }

void mig_device_set_stop_copy_stall(MigDevice *d, uint64_t bytes)
{
    d->sc_stall_max = bytes ? bytes : MIG_DEV_STOP_COPY_STALL_BYTES;
}

size_t mig_device_arc_log(const MigDevice *d, MigDevState from[], MigDevState to[], size_t max)
{
    size_t n = MIG_MIN(max, d->narcs);
    for (size_t i = 0; i < n; i++) {
        if (from)
            from[i] = d->arc_from[i];
        to[i] = d->arc_to[i];
    }
    return n;
}

void mig_device_arc_log_clear(MigDevice *d) { d->narcs = 0; }

uint64_t mig_device_bytes_read(const MigDevice *d) { return d->bytes_read; }
uint64_t mig_device_bytes_written(const MigDevice *d) { return d->bytes_written; }
