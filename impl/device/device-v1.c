/*
 * device-v1.c - the v1 adapter: drives a device that speaks the v1 region
 * protocol (device_state bits, pending_bytes, staged buffers;
 * docs/protocol-vfio.md section 10) through the v2 backend interface, so
 * a v1-style device migrates with the same engine code.
 *
 * Mapping: RUNNING 001, PRE_COPY 011 (logging on: the session starts),
 * STOP_COPY 010, STOP 000, RESUMING 100, ERROR 110.  The adapter offers
 * STOP_COPY and PRE_COPY (v1 always has pre-copy), never P2P.
 *
 * Framing: v1 requires the destination to replay the source's transactions
 * with the same sizes, while the v2 stream is a plain byte stream.  So each
 * staged v1 buffer travels as `be32 size` + bytes, and the resuming side
 * cuts the stream back into those transactions.  A stream that ends inside a
 * frame fails RESUMING -> STOP before the device is asked.
 *
 * Buffers: the transaction handed to v1_resume_chunk comes from the
 * backend's allocator (MigDevBackend.alloc) when the caller set one: the
 * certify sandbox's buffers end right before a guard page, so a plugin that
 * reads or writes past the transaction is caught (plugin-overrun); else it
 * is malloc'd for the one call.
 *
 * End of stream: pending_bytes == 0 reads as ENOMSG in PRE_COPY and as 0
 * (the end) in STOP_COPY: "the session ends when the device is stopped and
 * no data is left".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "device.h"

#define V1_MAX_CHUNK (64u << 20)

typedef struct V1Backend {
    MigDevBackend base;
    const MigcertDevicePlugin *p;
    MigcertDevice *dev;
    /* saving: one framed buffer being handed out */
    MigBuf out;     /* the staged chunk: be32 size, then its bytes */
    size_t out_pos; /* next byte of out to read */
    bool initial_phase;
    uint64_t last_initial;
    /* resuming: the frame being collected */
    uint8_t hdr[4];
    size_t hdr_len;
    uint8_t *chunk; /* the transaction being collected; NULL between them */
    size_t chunk_len, chunk_have;
} V1Backend;

static V1Backend *vb(MigDevBackend *b) { return (V1Backend *)b; }

static const uint32_t v1_bits[MIG_DEV_STATE__COUNT] = {
    [MIG_DEV_ERROR] = MIGCERT_V1_SAVING | MIGCERT_V1_RESUMING,
    [MIG_DEV_STOP] = 0,
    [MIG_DEV_RUNNING] = MIGCERT_V1_RUNNING,
    [MIG_DEV_STOP_COPY] = MIGCERT_V1_SAVING,
    [MIG_DEV_RESUMING] = MIGCERT_V1_RESUMING,
    [MIG_DEV_RUNNING_P2P] = ~0u,
    [MIG_DEV_PRE_COPY] = MIGCERT_V1_SAVING | MIGCERT_V1_RUNNING,
    [MIG_DEV_PRE_COPY_P2P] = ~0u,
};

static MigDevState state_of_bits(uint32_t bits)
{
    for (int s = 0; s < MIG_DEV_STATE__COUNT; s++)
        if (v1_bits[s] == (bits & 7u))
            return (MigDevState)s;
    return MIG_DEV_ERROR; /* 101b, 111b */
}

static MigDevState cur_state(V1Backend *b) { return state_of_bits(b->p->get_state(b->dev)); }

/* "RUNNING|RESUMING" for the low three device_state bits (or "none"). */
static const char *bits_name(uint32_t bits, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s%s", bits & MIGCERT_V1_RUNNING ? "|RUNNING" : "",
             bits & MIGCERT_V1_SAVING ? "|SAVING" : "", bits & MIGCERT_V1_RESUMING ? "|RESUMING" : "",
             bits & 7u ? "" : "|none");
    return buf + 1;
}

/* A buffer for a transaction of `len` bytes (NULL: out of memory). */
static uint8_t *chunk_get(V1Backend *b, size_t len)
{
    const MigDevBufAlloc *a = &b->base.alloc;
    return a->get ? a->get(a->opaque, len) : malloc(len);
}

/* The transaction is over (handed to the device, or dropped). */
static void chunk_done(V1Backend *b)
{
    if (!b->base.alloc.get)
        free(b->chunk);
    b->chunk = NULL;
    b->chunk_len = b->chunk_have = 0;
}

static void drop_sessions(V1Backend *b)
{
    b->out.len = b->out_pos = 0;
    b->hdr_len = 0;
    chunk_done(b);
}

static int v1_arc(MigDevBackend *base, MigDevState to, MigErr **errp)
{
    V1Backend *b = vb(base);
    uint32_t bits = b->p->get_state(b->dev);
    MigDevState from = state_of_bits(bits);
    if (!mig_dev_arc_allowed(from, to, base->features)) {
        char name[32];
        if (from == MIG_DEV_ERROR)
            return mig_err_set(errp, -EINVAL,
                               "v1 adapter: device_state is 0x%x (%s), an error state; cannot "
                               "go to %s",
                               bits, bits_name(bits, name, sizeof(name)), mig_dev_state_name(to));
        return mig_err_set(errp, -EINVAL,
                           "v1 adapter: %s -> %s is not an arc (device_state 0x%x: %s)",
                           mig_dev_state_name(from), mig_dev_state_name(to), bits,
                           bits_name(bits, name, sizeof(name)));
    }
    if (from == MIG_DEV_RESUMING && (b->hdr_len || b->chunk))
        return mig_err_set(errp, -EPROTO,
                           "v1 adapter: resume stream ends inside a transaction (%zu of %zu "
                           "bytes)",
                           b->chunk ? b->chunk_have : b->hdr_len, b->chunk ? b->chunk_len : 4);
    int r = b->p->v1_set_state(b->dev, (b->p->get_state(b->dev) & ~7u) | v1_bits[to]);
    if (r < 0)
        return r;
    if ((to == MIG_DEV_PRE_COPY && from == MIG_DEV_RUNNING) ||
        (to == MIG_DEV_STOP_COPY && from == MIG_DEV_STOP)) {
        drop_sessions(b);
        b->initial_phase = true;
        b->last_initial = UINT64_MAX;
    } else if (to == MIG_DEV_RESUMING || !mig_dev_state_saving(to)) {
        drop_sessions(b);
    }
    return 0;
}

static int v1_get_state(MigDevBackend *base, MigDevState *out, MigErr **errp)
{
    *out = cur_state(vb(base));
    return 0;
}

static int stage_next(V1Backend *b, MigErr **errp)
{
    const void *data = NULL;
    ssize_t n = b->p->v1_stage(b->dev, &data);
    if (n < 0)
        return (int)n;
    if (n == 0 || !data || (size_t)n > V1_MAX_CHUNK)
        return mig_err_set(errp, -EPROTO,
                           "v1 adapter: pending_bytes is not 0 but the device staged %zd bytes",
                           n);
    uint32_t sz = (uint32_t)n;
    b->out.len = 0;
    uint8_t *o = mig_buf_reserve(&b->out, (size_t)n + 4);
    o[0] = (uint8_t)(sz >> 24);
    o[1] = (uint8_t)(sz >> 16);
    o[2] = (uint8_t)(sz >> 8);
    o[3] = (uint8_t)sz;
    memcpy(o + 4, data, (size_t)n);
    b->out.len = (size_t)n + 4;
    b->out_pos = 0;
    return 0;
}

static ssize_t v1_read(MigDevBackend *base, void *buf, size_t len, MigErr **errp)
{
    V1Backend *b = vb(base);
    MigDevState st = cur_state(b);
    if (!mig_dev_state_saving(st))
        return -EINVAL;
    if (b->out_pos == b->out.len) {
        if (b->p->v1_pending_bytes(b->dev) == 0) {
            b->initial_phase = false;
            return st == MIG_DEV_STOP_COPY ? 0 : -ENOMSG;
        }
        int r = stage_next(b, errp);
        if (r < 0)
            return r;
    }
    size_t n = MIG_MIN(len, b->out.len - b->out_pos);
    memcpy(buf, b->out.data + b->out_pos, n);
    b->out_pos += n;
    return (ssize_t)n;
}

static ssize_t v1_write(MigDevBackend *base, const void *buf, size_t len, MigErr **errp)
{
    V1Backend *b = vb(base);
    if (cur_state(b) != MIG_DEV_RESUMING)
        return -EINVAL;
    const uint8_t *p = buf;
    size_t left = len;
    while (left) {
        if (!b->chunk) {
            size_t k = MIG_MIN(left, 4 - b->hdr_len);
            memcpy(b->hdr + b->hdr_len, p, k);
            b->hdr_len += k;
            p += k;
            left -= k;
            if (b->hdr_len < 4)
                break;
            uint32_t sz = (uint32_t)b->hdr[0] << 24 | (uint32_t)b->hdr[1] << 16 |
                          (uint32_t)b->hdr[2] << 8 | b->hdr[3];
            if (sz == 0 || sz > V1_MAX_CHUNK)
                return mig_err_set(errp, -EPROTO,
                                   "v1 adapter: the resume stream announces a transaction of %u "
                                   "bytes (allowed: 1 to %u); it was not saved by a v1 device "
                                   "(a v2 device's stream is not framed in transactions)",
                                   sz, V1_MAX_CHUNK);
            b->chunk = chunk_get(b, sz);
            if (!b->chunk)
                return -ENOMEM;
            b->chunk_len = sz;
            b->chunk_have = 0;
            b->hdr_len = 0;
            continue;
        }
        size_t k = MIG_MIN(left, b->chunk_len - b->chunk_have);
        memcpy(b->chunk + b->chunk_have, p, k);
        b->chunk_have += k;
        p += k;
        left -= k;
        if (b->chunk_have == b->chunk_len) {
            int r = b->p->v1_resume_chunk(b->dev, b->chunk, b->chunk_len);
            chunk_done(b);
            if (r < 0)
                return r;
        }
    }
    return (ssize_t)len;
}

static int v1_precopy_info(MigDevBackend *base, uint64_t *initial, uint64_t *dirty,
                           MigErr **errp)
{
    V1Backend *b = vb(base);
    MigDevState st = cur_state(b);
    if (st != MIG_DEV_PRE_COPY)
        return -EINVAL;
    uint64_t total = b->p->v1_pending_bytes(b->dev) + (b->out.len - b->out_pos);
    /* v1 has one counter; report it as initial data until it first reaches
     * zero, never letting "initial" grow (what grows is dirty data). */
    uint64_t ini = b->initial_phase ? MIG_MIN(total, b->last_initial) : 0;
    b->last_initial = ini;
    *initial = ini;
    *dirty = total - ini;
    return 0;
}

static int v1_data_size(MigDevBackend *base, uint64_t *len, MigErr **errp)
{
    V1Backend *b = vb(base);
    *len = b->p->v1_pending_bytes(b->dev);
    return 0;
}

static int v1_reset(MigDevBackend *base, MigErr **errp)
{
    V1Backend *b = vb(base);
    drop_sessions(b);
    return b->p->reset(b->dev);
}

static int v1_guest_run(MigDevBackend *base, uint32_t ops, MigErr **errp)
{
    V1Backend *b = vb(base);
    return b->p->guest_run ? b->p->guest_run(b->dev, ops) : -ENOTSUP;
}

static int v1_digest(MigDevBackend *base, uint64_t *out, MigErr **errp)
{
    V1Backend *b = vb(base);
    return b->p->digest ? b->p->digest(b->dev, out) : -ENOTSUP;
}

static int v1_force_error(MigDevBackend *base, MigErr **errp)
{
    V1Backend *b = vb(base);
    return b->p->force_error ? b->p->force_error(b->dev) : -ENOTSUP;
}

static void v1_free(MigDevBackend *base)
{
    V1Backend *b = vb(base);
    b->p->destroy(b->dev);
    drop_sessions(b);
    mig_buf_free(&b->out);
    if (b->base.alloc.put)
        b->base.alloc.put(b->base.alloc.opaque);
    free(b);
}

static const MigDevBackendOps v1_backend_ops = {
    .arc = v1_arc,
    .get_state = v1_get_state,
    .read = v1_read,
    .write = v1_write,
    .precopy_info = v1_precopy_info,
    .data_size = v1_data_size,
    .reset = v1_reset,
    .guest_run = v1_guest_run,
    .digest = v1_digest,
    .force_error = v1_force_error,
    .free = v1_free,
};

MigDevBackend *mig_dev_backend_v1_new(const MigcertDevicePlugin *p, const MigcertDeviceConfig *cfg,
                                      const char *label, MigErr **errp)
{
    uint32_t offered = MIG_DEV_F_STOP_COPY | MIG_DEV_F_PRE_COPY;
    if (!mig_dev_features_valid(cfg->features) || (cfg->features & ~offered)) {
        mig_err_set(errp, -ENOTSUP, "plugin %s: a v1 device offers %s, not %s", label,
                    mig_dev_features_name(offered), mig_dev_features_name(cfg->features));
        return NULL;
    }
    V1Backend *b = mig__dev_backend_create(p, cfg, label, &v1_backend_ops, sizeof(*b), errp);
    if (!b)
        return NULL;
    b->p = p;
    b->dev = b->base.instance;
    return &b->base;
}
