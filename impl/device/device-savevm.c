/*
 * device-savevm.c - MigDevice as an iterative savevm handler (see
 * device-savevm.h for the payload format and the flow).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "device-savevm.h"

struct MigDevSection {
    MigSavevm *sv;
    MigDevice *dev;
    char idstr[256];
    uint32_t instance_id;
    /* One DATA record's bytes, grown to the largest record this section
     * has moved (at most MIG_DEV_SECTION_MAX_DATA), not allocated at
     * register: a machine registers every device, many never move a byte,
     * and a 1 MiB buffer per section cost more than the rest of a case
     * under ASan and valgrind (an mmap and its shadow per section). */
    uint8_t *buf;
    size_t buf_cap;
    bool stopping; /* save_complete entered STOP_COPY */
    bool loading;  /* destination entered RESUMING */
    bool loaded;   /* destination: COMPLETE took it RESUMING -> STOP */
};

static size_t chunk(size_t budget)
{
    return MIG_MAX((size_t)4096, MIG_MIN(budget, (size_t)MIG_DEV_SECTION_MAX_DATA));
}

/* sec->buf, holding at least n bytes (n <= MIG_DEV_SECTION_MAX_DATA). */
static uint8_t *sec_buf(MigDevSection *sec, size_t n)
{
    return MIG_GROW(sec->buf, sec->buf_cap, n, 4096);
}

static int sec_save_setup(void *opaque, MigStream *s, MigErr **errp)
{
    MigDevSection *sec = opaque;
    sec->stopping = false;
    int r = 0;
    if (mig_device_features(sec->dev) & MIG_DEV_F_PRE_COPY)
        r = mig_device_set_state(sec->dev, MIG_DEV_PRE_COPY, errp);
    if (r < 0)
        return r;
    mig_dev_put_setup(s);
    mig_dev_put_eos(s);
    return 0;
}

static void sec_save_pending(void *opaque, uint64_t *precopy, uint64_t *stopcopy)
{
    MigDevSection *sec = opaque;
    MigDevState st = mig_device_state(sec->dev);
    uint64_t ini = 0, dirty = 0, est = 0;
    if ((st == MIG_DEV_PRE_COPY || st == MIG_DEV_PRE_COPY_P2P) &&
        mig_device_precopy_info(sec->dev, &ini, &dirty, NULL) == 0)
        *precopy += ini + dirty;
    if (mig_device_data_size(sec->dev, &est, NULL) == 0)
        *stopcopy += est;
}

static int sec_save_iterate(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    MigDevSection *sec = opaque;
    MigDevState st = mig_device_state(sec->dev);
    if (st != MIG_DEV_PRE_COPY && st != MIG_DEV_PRE_COPY_P2P) {
        mig_dev_put_eos(s);
        return 1;
    }
    size_t sent = 0;
    while (sent < budget) {
        size_t want = chunk(budget - sent);
        ssize_t n = mig_device_read(sec->dev, sec_buf(sec, want), want, errp);
        if (n == -EAGAIN)
            break;
        if (n < 0)
            return (int)n;
        mig_dev_put_data(s, sec->buf, (size_t)n);
        sent += (size_t)n;
    }
    /* the engine closes a PART after every call: each payload ends here */
    mig_dev_put_eos(s);
    return sent >= budget ? 0 : 1;
}

static int sec_save_complete(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    MigDevSection *sec = opaque;
    if (!sec->stopping) {
        int r = mig_device_set_state(sec->dev, MIG_DEV_STOP_COPY, errp);
        if (r < 0)
            return r;
        sec->stopping = true;
    }
    size_t sent = 0;
    while (sent < budget) {
        size_t want = chunk(budget - sent);
        ssize_t n = mig_device_read(sec->dev, sec_buf(sec, want), want, errp);
        if (n == 0) {
            int r = mig_device_set_state(sec->dev, MIG_DEV_STOP, errp);
            if (r < 0)
                return r;
            mig_dev_put_complete(s);
            mig_dev_put_eos(s);
            return 1;
        }
        if (n < 0)
            return (int)n;
        mig_dev_put_data(s, sec->buf, (size_t)n);
        sent += (size_t)n;
    }
    return 0;
}

static void sec_save_cleanup(void *opaque, MigOutcome outcome)
{
    MigDevSection *sec = opaque;
    sec->stopping = false;
    if (outcome != MIG_OUTCOME_COMPLETED)
        mig_device_abort(sec->dev, NULL);
}

/* Read one record (tag + its fixed part + DATA bytes) whole, or nothing:
 * returns 1 with the record read, -EAGAIN after rewinding (starved), or the
 * stream's error naming the device and the record's offset. */
static int read_record(MigDevSection *sec, MigStream *s, uint64_t at, uint8_t *tag, uint32_t *v,
                       MigErr **errp)
{
    bool got_tag = mig_dev_get_record_head(s, tag, v);
    if (!mig_stream_error(s) && !mig_stream_starved(s) && *tag == MIG_DEV_REC_DATA && *v >= 1 &&
        *v <= MIG_DEV_SECTION_MAX_DATA) {
        /* a view, copied only once it is whole: a record still arriving
         * (starved) is read again from its head, and get_buffer would zero
         * the whole DATA buffer at each such try */
        const void *data = mig_stream_get_view(s, *v);
        if (data)
            memcpy(sec_buf(sec, *v), data, *v);
    }
    if (mig_stream_starved(s)) {
        mig_stream_rewind(s);
        return -EAGAIN;
    }
    if (mig_stream_error(s)) {
        int r = mig_stream_take_error(s, errp);
        if (got_tag)
            mig_err_prepend(errp, "device %s: %s record at offset %llu", sec->idstr,
                            mig_dev_rec_name(*tag), (unsigned long long)at);
        else
            mig_err_prepend(errp, "device %s: record at offset %llu", sec->idstr,
                            (unsigned long long)at);
        return r;
    }
    return 1;
}

static int sec_load_state(void *opaque, MigStream *s, const MigSectionHeader *h, MigErr **errp)
{
    MigDevSection *sec = opaque;
    if (h->type == MIG_SECTION_START && h->version_id != 1)
        return mig_err_set(errp, -ENOTSUP,
                           "device %s: section version %u at offset %llu is not supported "
                           "(known: 1)",
                           sec->idstr, h->version_id, (unsigned long long)h->offset);
    for (;;) {
        mig_stream_mark(s);
        uint64_t at = mig_stream_offset(s);
        uint8_t tag;
        uint32_t v;
        int r = read_record(sec, s, at, &tag, &v, errp);
        if (r < 0)
            return r;
        r = 0;
        switch (tag) {
        case MIG_DEV_REC_SETUP:
            if (h->type != MIG_SECTION_START || sec->loading)
                return mig_err_set(errp, -EPROTO,
                                   "device %s: unexpected SETUP record at offset %llu (%s)",
                                   sec->idstr, (unsigned long long)at,
                                   sec->loading ? "the session is already set up"
                                                : "outside the START section");
            if (v != MIG_DEV_SECTION_VERSION)
                return mig_err_set(errp, -ENOTSUP,
                                   "device %s: section format %u at offset %llu is not supported "
                                   "(known: %u)",
                                   sec->idstr, v, (unsigned long long)at,
                                   MIG_DEV_SECTION_VERSION);
            r = mig_device_set_state(sec->dev, MIG_DEV_RESUMING, errp);
            sec->loading = r == 0;
            break;
        case MIG_DEV_REC_DATA:
            if (v < 1 || v > MIG_DEV_SECTION_MAX_DATA)
                return mig_err_set(errp, -EPROTO,
                                   "device %s: DATA record of %u bytes at offset %llu (allowed: "
                                   "1 to %u)",
                                   sec->idstr, v, (unsigned long long)at,
                                   MIG_DEV_SECTION_MAX_DATA);
            if (!sec->loading)
                return mig_err_set(errp, -EPROTO,
                                   "device %s: DATA record at offset %llu before the section's "
                                   "SETUP",
                                   sec->idstr, (unsigned long long)at);
            r = mig_device_write(sec->dev, sec->buf, v, errp);
            break;
        case MIG_DEV_REC_COMPLETE:
            if (!sec->loading || h->type != MIG_SECTION_END)
                return mig_err_set(errp, -EPROTO,
                                   "device %s: unexpected COMPLETE record at offset %llu (%s)",
                                   sec->idstr, (unsigned long long)at,
                                   sec->loading ? "outside the END section"
                                                : "before the section's SETUP");
            r = mig_device_set_state(sec->dev, MIG_DEV_STOP, errp);
            sec->loaded = r == 0;
            break;
        case MIG_DEV_REC_EOS:
            return 0;
        default:
            return mig_err_set(errp, -EPROTO, "device %s: unknown record 0x%02x at offset %llu",
                               sec->idstr, tag, (unsigned long long)at);
        }
        if (r < 0) {
            mig_err_prepend(errp, "device %s: %s record at offset %llu", sec->idstr,
                            mig_dev_rec_name(tag), (unsigned long long)at);
            return r;
        }
    }
}

static void sec_load_cleanup(void *opaque, MigOutcome outcome)
{
    MigDevSection *sec = opaque;
    if (outcome == MIG_OUTCOME_COMPLETED && mig_device_state(sec->dev) == MIG_DEV_STOP)
        mig_device_set_state(sec->dev, MIG_DEV_RUNNING, NULL);
    else if (outcome != MIG_OUTCOME_COMPLETED)
        mig_device_abort(sec->dev, NULL);
    sec->loading = false;
    sec->loaded = false;
}

/* The stream ended: a device whose session was opened (SETUP) must have
 * validated it (COMPLETE: RESUMING -> STOP); otherwise the guest would run
 * with partial state (protocol case 12).  A device that got no section at
 * all was not part of this migration. */
static int sec_load_complete(void *opaque, MigErr **errp)
{
    MigDevSection *sec = opaque;
    if (!sec->loading)
        return 0;
    if (!sec->loaded || mig_device_state(sec->dev) != MIG_DEV_STOP)
        return mig_err_set(errp, -EPROTO,
                           "device %s: stream ended without COMPLETE (device still %s)",
                           sec->idstr, mig_dev_state_name(mig_device_state(sec->dev)));
    return 0;
}

/* The guest runs again (`cont`, a source resumed after a failed or cancelled
 * migration, a destination started after a completed one; always after the
 * cleanup hooks): a device a migration left stopped (the source's STOP after
 * a completed migration) runs with it, through the transition algorithm.
 * States where the device already runs stay (RUNNING; PRE_COPY, which runs
 * while saving), PRE_COPY_P2P steps to PRE_COPY, as QEMU's VFIO run-state
 * handler does; RESUMING belongs to the incoming migration, whose cleanup
 * decides.  ERROR, or an arc that fails, ends in a reset: the one way back
 * to a device the guest can use. */
static void sec_guest_resumed(void *opaque)
{
    MigDevSection *sec = opaque;
    MigDevState target = MIG_DEV_RUNNING;
    switch (mig_device_state(sec->dev)) {
    case MIG_DEV_RUNNING:
    case MIG_DEV_PRE_COPY:
    case MIG_DEV_RESUMING:
        return;
    case MIG_DEV_ERROR:
        mig_device_reset(sec->dev, NULL);
        return;
    case MIG_DEV_PRE_COPY_P2P:
        target = MIG_DEV_PRE_COPY;
        break;
    default:
        break;
    }
    if (mig_device_set_state(sec->dev, target, NULL) < 0)
        mig_device_reset(sec->dev, NULL);
}

static const MigIterOps dev_section_ops = {
    .save_setup = sec_save_setup,
    .save_pending = sec_save_pending,
    .save_iterate = sec_save_iterate,
    .save_complete = sec_save_complete,
    .save_cleanup = sec_save_cleanup,
    .load_state = sec_load_state,
    .load_complete = sec_load_complete,
    .load_cleanup = sec_load_cleanup,
    .guest_resumed = sec_guest_resumed,
};

MigDevSection *mig_dev_section_register(MigSavevm *sv, MigDevice *dev, const char *idstr,
                                        uint32_t instance_id, MigErr **errp)
{
    MigDevSection *sec = mig_malloc0(sizeof(*sec));
    sec->sv = sv;
    sec->dev = dev;
    snprintf(sec->idstr, sizeof(sec->idstr), "%s", idstr);
    sec->instance_id = instance_id;
    if (mig_savevm_register_iterative(sv, idstr, instance_id, 1, &dev_section_ops, sec, errp) < 0) {
        free(sec);
        return NULL;
    }
    return sec;
}

void mig_dev_section_free(MigDevSection *sec)
{
    if (!sec)
        return;
    mig_savevm_unregister(sec->sv, sec->idstr, sec->instance_id);
    free(sec->buf);
    free(sec);
}
