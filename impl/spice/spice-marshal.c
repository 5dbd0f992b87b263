/*
 * spice-marshal.c - encoding and decoding SPICE message bodies from their
 * descriptions (spice-marshal.h).  The encoder appends pointed-to data
 * after the fixed part of the body, in field order, breadth first (a queue
 * of pending pointers), which is where spice-server puts it.  The decoder
 * walks the same description with a cursor and an allocation budget.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "spice-marshal.h"

static const char *const mtype_names[SPICE_MT__COUNT] = {
    [SPICE_MT_U8] = "U8",         [SPICE_MT_U16] = "U16",       [SPICE_MT_U32] = "U32",
    [SPICE_MT_U64] = "U64",       [SPICE_MT_I32] = "I32",       [SPICE_MT_I64] = "I64",
    [SPICE_MT_FIXED] = "FIXED",   [SPICE_MT_STRUCT] = "STRUCT", [SPICE_MT_COUNTED] = "COUNTED",
    [SPICE_MT_PTR] = "PTR",       [SPICE_MT_SIZED] = "SIZED",   [SPICE_MT_REST] = "REST",
};

const char *spice_mtype_name(SpiceMType t)
{
    return (unsigned)t < SPICE_MT__COUNT ? mtype_names[t] : "?";
}

static size_t scalar_width(SpiceMType t)
{
    switch (t) {
    case SPICE_MT_U8:
        return 1;
    case SPICE_MT_U16:
        return 2;
    case SPICE_MT_U32:
    case SPICE_MT_I32:
    case SPICE_MT_PTR:
        return 4;
    case SPICE_MT_U64:
    case SPICE_MT_I64:
    case SPICE_MT_SIZED:
        return 8;
    default:
        return 0;
    }
}

size_t spice_marshal_fixed_size(const SpiceMDesc *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nfields; i++) {
        const SpiceMField *f = &d->fields[i];
        if (f->type == SPICE_MT_FIXED)
            n += f->len;
        else if (f->type == SPICE_MT_STRUCT)
            n += spice_marshal_fixed_size(f->sub);
        else if (f->type == SPICE_MT_COUNTED)
            n += f->len;
        else
            n += scalar_width(f->type);
    }
    return n;
}

static void *member(const void *obj, const SpiceMField *f)
{
    return (char *)obj + f->offset;
}

/* ------------------------------------------------------------------ encode */

typedef struct Pending {
    size_t slot;            /* where the u32 offset goes */
    const SpiceMDesc *desc; /* structure to write, or NULL for raw bytes */
    const void *obj;
    const SpiceMBytes *bytes;
} Pending;

typedef struct Enc {
    uint8_t *buf;
    size_t len, cap;
    Pending *q;
    size_t qlen, qcap, qhead;
    MigErr **errp;
    int err;
} Enc;

static uint8_t *enc_room(Enc *e, size_t n)
{
    MIG_GROW(e->buf, e->cap, e->len + n, 64);
    uint8_t *p = e->buf + e->len;
    e->len += n;
    return p;
}

static void enc_le(Enc *e, uint64_t v, size_t w)
{
    uint8_t *p = enc_room(e, w);
    for (size_t i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le32_at(Enc *e, size_t at, uint32_t v)
{
    for (size_t i = 0; i < 4; i++)
        e->buf[at + i] = (uint8_t)(v >> (8 * i));
}

static void enc_defer(Enc *e, const SpiceMDesc *desc, const void *obj, const SpiceMBytes *bytes)
{
    MIG_GROW(e->q, e->qcap, e->qlen + 1, 8);
    e->q[e->qlen++] = (Pending){.slot = e->len, .desc = desc, .obj = obj, .bytes = bytes};
    enc_le(e, 0, 4);
}

static void enc_struct(Enc *e, const SpiceMDesc *d, const void *obj);

static void enc_field(Enc *e, const SpiceMDesc *d, const SpiceMField *f, const void *obj, bool last)
{
    const void *m = member(obj, f);
    switch (f->type) {
    case SPICE_MT_U8:
        enc_le(e, *(const uint8_t *)m, 1);
        break;
    case SPICE_MT_U16:
        enc_le(e, *(const uint16_t *)m, 2);
        break;
    case SPICE_MT_U32:
        enc_le(e, *(const uint32_t *)m, 4);
        break;
    case SPICE_MT_I32:
        enc_le(e, (uint32_t) * (const int32_t *)m, 4);
        break;
    case SPICE_MT_U64:
        enc_le(e, *(const uint64_t *)m, 8);
        break;
    case SPICE_MT_I64:
        enc_le(e, (uint64_t) * (const int64_t *)m, 8);
        break;
    case SPICE_MT_FIXED:
        memcpy(enc_room(e, f->len), m, f->len);
        break;
    case SPICE_MT_STRUCT:
        enc_struct(e, f->sub, m);
        break;
    case SPICE_MT_COUNTED: {
        uint32_t n = f->sub ? ((const SpiceMArray *)m)->n : ((const SpiceMBytes *)m)->len;
        if (f->len < 4 && n >> (8 * f->len)) {
            e->err = mig_err_set(e->errp, -EINVAL, "%s: field %s: %u elements do not fit a %u-byte count",
                                 d->name, f->name, n, f->len);
            return;
        }
        enc_le(e, n, f->len);
        if (!f->sub) {
            if (n)
                memcpy(enc_room(e, n), ((const SpiceMBytes *)m)->data, n);
            break;
        }
        const char *items = ((const SpiceMArray *)m)->items;
        for (uint32_t i = 0; i < n && !e->err; i++)
            enc_struct(e, f->sub, items + (size_t)i * f->sub->size);
        break;
    }
    case SPICE_MT_PTR: {
        const void *p = *(const void *const *)m;
        if (p)
            enc_defer(e, f->sub, p, NULL);
        else
            enc_le(e, 0, 4);
        break;
    }
    case SPICE_MT_SIZED: {
        const SpiceMBytes *b = m;
        enc_le(e, b->len, 4);
        if (b->len)
            enc_defer(e, NULL, NULL, b);
        else
            enc_le(e, 0, 4);
        break;
    }
    case SPICE_MT_REST: {
        const SpiceMBytes *b = m;
        if (!last) {
            e->err = mig_err_set(e->errp, -EINVAL, "%s: field %s: REST must be the last field",
                                 d->name, f->name);
            return;
        }
        if (b->len)
            memcpy(enc_room(e, b->len), b->data, b->len);
        break;
    }
    default:
        e->err = mig_err_set(e->errp, -EINVAL, "%s: field %s: unknown type %d", d->name, f->name,
                             (int)f->type);
    }
}

static void enc_struct(Enc *e, const SpiceMDesc *d, const void *obj)
{
    for (size_t i = 0; i < d->nfields && !e->err; i++)
        enc_field(e, d, &d->fields[i], obj, i + 1 == d->nfields);
}

int spice_marshal_encode(const SpiceMDesc *d, const void *in, uint8_t **out, size_t *out_len,
                         MigErr **errp)
{
    Enc e = {.errp = errp};
    enc_struct(&e, d, in);
    while (!e.err && e.qhead < e.qlen) {
        Pending p = e.q[e.qhead++];
        if (e.len > UINT32_MAX) {
            e.err = mig_err_set(errp, -EINVAL, "%s: body larger than 4 GiB", d->name);
            break;
        }
        put_le32_at(&e, p.slot, (uint32_t)e.len);
        if (p.desc)
            enc_struct(&e, p.desc, p.obj);
        else
            memcpy(enc_room(&e, p.bytes->len), p.bytes->data, p.bytes->len);
    }
    free(e.q);
    if (e.err) {
        free(e.buf);
        return e.err;
    }
    *out = e.buf ? e.buf : mig_malloc0(1);
    *out_len = e.len;
    return 0;
}

/* ------------------------------------------------------------------ decode */

typedef struct Dec {
    const uint8_t *body;
    size_t len;
    size_t budget; /* bytes the decode may still allocate */
    const char *msg;
    MigErr **errp;
    int err;
} Dec;

static int dec_fail(Dec *dc, const SpiceMField *f, size_t at, const char *fmt, ...) MIG_PRINTF(4, 5);
static int dec_fail(Dec *dc, const SpiceMField *f, size_t at, const char *fmt, ...)
{
    if (dc->err)
        return dc->err;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    dc->err = mig_err_set(dc->errp, -EPROTO, "%s: field %s: %s (at byte %zu of a %zu-byte body)",
                          dc->msg, f ? f->name : "-", what, at, dc->len);
    return dc->err;
}

static uint64_t get_le(const uint8_t *p, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void *dec_alloc(Dec *dc, const SpiceMField *f, size_t at, size_t n)
{
    if (n > dc->budget) {
        dec_fail(dc, f, at, "would allocate %zu bytes, more than the body can describe", n);
        return NULL;
    }
    dc->budget -= n;
    return mig_malloc0(n ? n : 1);
}

/* Decode d at *pos (advanced); `end` bounds REST. */
static void dec_struct(Dec *dc, const SpiceMDesc *d, size_t *pos, void *obj);

static bool dec_need(Dec *dc, const SpiceMField *f, size_t pos, size_t n)
{
    if (pos > dc->len || n > dc->len - pos) {
        dec_fail(dc, f, pos, "needs %zu byte(s), the body ends after %zu", n,
                 pos > dc->len ? (size_t)0 : dc->len - pos);
        return false;
    }
    return true;
}

static void dec_pointed(Dec *dc, const SpiceMField *f, size_t at, uint32_t off, size_t need,
                        size_t *start)
{
    if (off >= dc->len || need > dc->len - off) {
        dec_fail(dc, f, at, "offset %u (+%zu) is past the end of the body", off, need);
        return;
    }
    *start = off;
}

static void dec_field(Dec *dc, const SpiceMDesc *d, const SpiceMField *f, size_t *pos, void *obj)
{
    void *m = member(obj, f);
    size_t at = *pos;
    size_t w = scalar_width(f->type);
    switch (f->type) {
    case SPICE_MT_U8:
    case SPICE_MT_U16:
    case SPICE_MT_U32:
    case SPICE_MT_I32:
    case SPICE_MT_U64:
    case SPICE_MT_I64: {
        if (!dec_need(dc, f, at, w))
            return;
        uint64_t v = get_le(dc->body + at, w);
        if (f->type == SPICE_MT_U8)
            *(uint8_t *)m = (uint8_t)v;
        else if (f->type == SPICE_MT_U16)
            *(uint16_t *)m = (uint16_t)v;
        else if (f->type == SPICE_MT_U32)
            *(uint32_t *)m = (uint32_t)v;
        else if (f->type == SPICE_MT_I32)
            *(int32_t *)m = (int32_t)(uint32_t)v;
        else if (f->type == SPICE_MT_U64)
            *(uint64_t *)m = v;
        else
            *(int64_t *)m = (int64_t)v;
        *pos += w;
        return;
    }
    case SPICE_MT_FIXED:
        if (!dec_need(dc, f, at, f->len))
            return;
        memcpy(m, dc->body + at, f->len);
        *pos += f->len;
        return;
    case SPICE_MT_STRUCT:
        dec_struct(dc, f->sub, pos, m);
        return;
    case SPICE_MT_COUNTED: {
        if (!dec_need(dc, f, at, f->len))
            return;
        uint32_t n = (uint32_t)get_le(dc->body + at, f->len);
        *pos += f->len;
        if (!f->sub) {
            if (!dec_need(dc, f, *pos, n))
                return;
            SpiceMBytes *b = m;
            b->data = dec_alloc(dc, f, at, n);
            if (!b->data)
                return;
            memcpy(b->data, dc->body + *pos, n);
            b->len = n;
            *pos += n;
            return;
        }
        size_t each = spice_marshal_fixed_size(f->sub);
        if (each && !dec_need(dc, f, *pos, (size_t)n * each))
            return;
        SpiceMArray *a = m;
        a->items = dec_alloc(dc, f, at, (size_t)n * f->sub->size);
        if (!a->items)
            return;
        a->n = n;
        for (uint32_t i = 0; i < n && !dc->err; i++)
            dec_struct(dc, f->sub, pos, (char *)a->items + (size_t)i * f->sub->size);
        return;
    }
    case SPICE_MT_PTR: {
        if (!dec_need(dc, f, at, 4))
            return;
        uint32_t off = (uint32_t)get_le(dc->body + at, 4);
        *pos += 4;
        if (!off)
            return;
        size_t start = 0;
        dec_pointed(dc, f, at, off, spice_marshal_fixed_size(f->sub), &start);
        if (dc->err)
            return;
        void *sub = dec_alloc(dc, f, at, f->sub->size);
        if (!sub)
            return;
        *(void **)m = sub;
        dec_struct(dc, f->sub, &start, sub);
        return;
    }
    case SPICE_MT_SIZED: {
        if (!dec_need(dc, f, at, 8))
            return;
        uint32_t size = (uint32_t)get_le(dc->body + at, 4);
        uint32_t off = (uint32_t)get_le(dc->body + at + 4, 4);
        *pos += 8;
        if (!size && !off)
            return;
        if (!size || !off) {
            dec_fail(dc, f, at, "size %u with offset %u (both or neither must be 0)", size, off);
            return;
        }
        size_t start = 0;
        dec_pointed(dc, f, at, off, size, &start);
        if (dc->err)
            return;
        SpiceMBytes *b = m;
        b->data = dec_alloc(dc, f, at, size);
        if (!b->data)
            return;
        memcpy(b->data, dc->body + start, size);
        b->len = size;
        return;
    }
    case SPICE_MT_REST: {
        SpiceMBytes *b = m;
        size_t n = at <= dc->len ? dc->len - at : 0;
        b->data = dec_alloc(dc, f, at, n);
        if (!b->data)
            return;
        memcpy(b->data, dc->body + at, n);
        b->len = (uint32_t)n;
        *pos = dc->len;
        return;
    }
    default:
        dec_fail(dc, f, at, "unknown field type %d in %s", (int)f->type, d->name);
    }
}

static void dec_struct(Dec *dc, const SpiceMDesc *d, size_t *pos, void *obj)
{
    for (size_t i = 0; i < d->nfields && !dc->err; i++)
        dec_field(dc, d, &d->fields[i], pos, obj);
}

/* Does d (or anything it holds inline) point into a data area or take the
 * rest of the body, so that bytes after the fixed part are legitimate? */
static bool has_tail(const SpiceMDesc *d)
{
    for (size_t i = 0; i < d->nfields; i++) {
        const SpiceMField *f = &d->fields[i];
        if (f->type == SPICE_MT_PTR || f->type == SPICE_MT_SIZED || f->type == SPICE_MT_REST)
            return true;
        if ((f->type == SPICE_MT_STRUCT || f->type == SPICE_MT_COUNTED) && f->sub && has_tail(f->sub))
            return true;
    }
    return false;
}

int spice_marshal_decode(const SpiceMDesc *d, const uint8_t *body, size_t len, void *out,
                         MigErr **errp)
{
    /* What a body may make us allocate: its own bytes a few times over (the
     * C structures are wider than the wire) plus a constant; more means
     * pointers that overlap to multiply data. */
    Dec dc = {.body = body, .len = len, .budget = 16 * len + 4096, .msg = d->name, .errp = errp};
    memset(out, 0, d->size);
    size_t pos = 0;
    dec_struct(&dc, d, &pos, out);
    if (!dc.err && pos != len && !has_tail(d))
        dec_fail(&dc, NULL, pos, "%zu unexpected byte(s) after the last field", len - pos);
    if (dc.err) {
        spice_marshal_free(d, out);
        memset(out, 0, d->size);
        return dc.err;
    }
    return 0;
}

void spice_marshal_free(const SpiceMDesc *d, void *obj)
{
    if (!obj)
        return;
    for (size_t i = 0; i < d->nfields; i++) {
        const SpiceMField *f = &d->fields[i];
        void *m = member(obj, f);
        switch (f->type) {
        case SPICE_MT_STRUCT:
            spice_marshal_free(f->sub, m);
            break;
        case SPICE_MT_COUNTED:
            if (f->sub) {
                SpiceMArray *a = m;
                for (uint32_t k = 0; a->items && k < a->n; k++)
                    spice_marshal_free(f->sub, (char *)a->items + (size_t)k * f->sub->size);
                free(a->items);
                a->items = NULL;
                a->n = 0;
            } else {
                free(((SpiceMBytes *)m)->data);
                ((SpiceMBytes *)m)->data = NULL;
            }
            break;
        case SPICE_MT_PTR: {
            void **p = m;
            if (*p) {
                spice_marshal_free(f->sub, *p);
                free(*p);
                *p = NULL;
            }
            break;
        }
        case SPICE_MT_SIZED:
        case SPICE_MT_REST:
            free(((SpiceMBytes *)m)->data);
            ((SpiceMBytes *)m)->data = NULL;
            break;
        default:
            break;
        }
    }
}
