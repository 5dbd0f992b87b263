/*
 * spice-pixmap-cache.c - one client's shared pixmap cache as the server
 * records it, and its part of the display migration blob
 * (spice-pixmap-cache.h).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "spice-pixmap-cache.h"

#define NCH SPICE_PIXMAP_CACHE_CLIENTS

typedef struct PcItem {
    uint64_t id, pixels;
    uint8_t adder;       /* the channel that added it */
    uint64_t add_serial; /* its message */
    uint64_t sync[NCH];  /* per channel: the last message that used it */
} PcItem;

struct SpicePixmapCache {
    uint8_t cache_id;
    uint64_t size, used;
    PcItem *items; /* least recently used first */
    size_t n, cap;
    uint64_t last[NCH];        /* per channel: last message that used the cache */
    uint64_t inval[NCH];       /* per channel: last INVAL_LIST / INVAL_ALL_PIXMAPS */
    uint64_t waited[NCH][NCH]; /* [waiter][waited for]: serials already waited for */
    bool frozen, frozen_hits;
    bool restored;             /* a restore list was applied */
};

const char *const spice_pixmap_cache_mig_names[SPICE_PIXMAP_CACHE_MIG__COUNT] = {"reset", "restore"};

SpicePixmapCache *spice_pixmap_cache_new(uint8_t cache_id, uint64_t size_pixels)
{
    SpicePixmapCache *pc = mig_malloc0(sizeof(*pc));
    pc->cache_id = cache_id;
    pc->size = size_pixels;
    return pc;
}

void spice_pixmap_cache_free(SpicePixmapCache *pc)
{
    if (!pc)
        return;
    free(pc->items);
    free(pc);
}

uint8_t spice_pixmap_cache_id(const SpicePixmapCache *pc) { return pc->cache_id; }
uint64_t spice_pixmap_cache_size(const SpicePixmapCache *pc) { return pc->size; }
uint64_t spice_pixmap_cache_used(const SpicePixmapCache *pc) { return pc->used; }
size_t spice_pixmap_cache_count(const SpicePixmapCache *pc) { return pc->n; }
uint64_t spice_pixmap_cache_id_at(const SpicePixmapCache *pc, size_t i) { return i < pc->n ? pc->items[i].id : 0; }
bool spice_pixmap_cache_frozen(const SpicePixmapCache *pc) { return pc->frozen; }

uint64_t spice_pixmap_cache_last_serial(const SpicePixmapCache *pc, uint8_t ch)
{
    return ch < NCH ? pc->last[ch] : 0;
}

static ssize_t find(const SpicePixmapCache *pc, uint64_t id)
{
    for (size_t i = 0; i < pc->n; i++)
        if (pc->items[i].id == id)
            return (ssize_t)i;
    return -1;
}

bool spice_pixmap_cache_holds(const SpicePixmapCache *pc, uint64_t id)
{
    return find(pc, id) >= 0;
}

void spice__waits_need(uint64_t waited[NCH][NCH], uint8_t ch, uint8_t other, uint64_t serial, SpicePixmapWaits *w)
{
    if (other == ch || other >= NCH || ch >= NCH || serial <= waited[ch][other])
        return;
    waited[ch][other] = serial;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->items[i].channel_id == other) {
            w->items[i].serial = serial;
            return;
        }
    w->items[w->n++] = (SpiceWaitItem){.channel_type = SPICE_CHANNEL_DISPLAY, .channel_id = other, .serial = serial};
}

static void need(SpicePixmapCache *pc, uint8_t ch, uint8_t other, uint64_t serial, SpicePixmapWaits *w)
{
    spice__waits_need(pc->waited, ch, other, serial, w);
}

bool spice_pixmap_cache_hit(SpicePixmapCache *pc, uint8_t ch, uint64_t id, SpicePixmapWaits *w)
{
    w->n = 0;
    ssize_t i = ch < NCH && !(pc->frozen && !pc->frozen_hits) ? find(pc, id) : -1;
    if (i < 0)
        return false;
    PcItem it = pc->items[i];
    memmove(pc->items + i, pc->items + i + 1, (pc->n - (size_t)i - 1) * sizeof(*pc->items));
    pc->items[pc->n - 1] = it;
    need(pc, ch, it.adder, it.add_serial, w);
    return true;
}

bool spice_pixmap_cache_add(SpicePixmapCache *pc, uint8_t ch, uint64_t id, uint64_t pixels, uint64_t **evicted,
                            size_t *nevicted, SpicePixmapWaits *w)
{
    *evicted = NULL;
    *nevicted = 0;
    w->n = 0;
    if (ch >= NCH || pc->frozen || pixels > pc->size || find(pc, id) >= 0)
        return false;
    size_t evict = 0;
    uint64_t used = pc->used;
    while (used + pixels > pc->size && evict < pc->n)
        used -= pc->items[evict++].pixels;
    for (uint8_t other = 0; other < NCH; other++) {
        /* the other channels' last use of what goes, and their last INVAL */
        uint64_t s = pc->inval[other];
        for (size_t i = 0; i < evict; i++)
            s = MIG_MAX(s, pc->items[i].sync[other]);
        need(pc, ch, other, s, w);
    }
    if (evict) {
        *evicted = mig_malloc0(evict * sizeof(**evicted));
        for (size_t i = 0; i < evict; i++)
            (*evicted)[i] = pc->items[i].id;
        memmove(pc->items, pc->items + evict, (pc->n - evict) * sizeof(*pc->items));
        pc->n -= evict;
        *nevicted = evict;
    }
    pc->used = used + pixels;
    MIG_GROW(pc->items, pc->cap, pc->n + 1, 32);
    pc->items[pc->n++] = (PcItem){.id = id, .pixels = pixels, .adder = ch};
    return true;
}

void spice_pixmap_cache_use_sent(SpicePixmapCache *pc, uint8_t ch, uint64_t id, uint64_t serial)
{
    ssize_t i = find(pc, id);
    if (ch >= NCH || i < 0)
        return;
    PcItem *it = &pc->items[i];
    if (it->adder == ch && !it->add_serial)
        it->add_serial = serial;
    it->sync[ch] = MIG_MAX(it->sync[ch], serial);
    pc->last[ch] = MIG_MAX(pc->last[ch], serial);
}

void spice_pixmap_cache_inval_sent(SpicePixmapCache *pc, uint8_t ch, uint64_t serial)
{
    if (ch >= NCH)
        return;
    pc->inval[ch] = MIG_MAX(pc->inval[ch], serial);
    pc->last[ch] = MIG_MAX(pc->last[ch], serial);
}

void spice_pixmap_cache_freeze(SpicePixmapCache *pc, bool hits)
{
    pc->frozen = true;
    pc->frozen_hits = hits;
}

void spice_pixmap_cache_unfreeze(SpicePixmapCache *pc)
{
    pc->frozen = false;
}

void spice_pixmap_cache_reset(SpicePixmapCache *pc, uint8_t ch, uint64_t size, SpicePixmapWaits *w)
{
    w->n = 0;
    for (uint8_t other = 0; other < NCH; other++)
        need(pc, ch, other, pc->last[other], w);
    pc->n = 0;
    pc->used = 0;
    pc->size = size;
    pc->frozen = false;
}

/* ------------------------------------------------------------------ the blob */

void spice__put_le(uint8_t *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t spice__get_le(const uint8_t *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int spice_pixmap_cache_export(const SpicePixmapCache *pc, SpicePixmapCacheMig how, bool freezer, MigBuf *blob,
                              MigErr **errp)
{
    if (blob->len < SPICE_DCMD_BODY_END)
        return mig_err_set(errp, -EINVAL, "display migration data: %zu bytes before the cache part, %u needed",
                           blob->len, SPICE_DCMD_BODY_END);
    uint8_t *p = blob->data + SPICE_DCMD_CACHE_OFFSET;
    p[0] = pc->cache_id;
    spice__put_le(p + 1, pc->size, 8);
    p[9] = freezer;
    for (size_t i = 0; i < NCH; i++)
        spice__put_le(p + 10 + 8 * i, pc->last[i], 8);
    if (how != SPICE_PIXMAP_CACHE_MIG_RESTORE)
        return 0;
    uint8_t *q = mig_buf_reserve(blob, 12 + pc->n * SPICE_DCMD_RESTORE_ITEM);
    spice__put_le(q, SPICE_DCMD_RESTORE_MAGIC, 4);
    spice__put_le(q + 4, SPICE_DCMD_RESTORE_VERSION, 4);
    spice__put_le(q + 8, pc->n, 4);
    q += 12;
    for (size_t i = 0; i < pc->n; i++, q += SPICE_DCMD_RESTORE_ITEM) {
        const PcItem *it = &pc->items[i];
        spice__put_le(q, it->id, 8);
        spice__put_le(q + 8, it->pixels, 8);
        q[16] = it->adder;
        spice__put_le(q + 17, it->add_serial, 8);
        for (size_t k = 0; k < NCH; k++)
            spice__put_le(q + 25 + 8 * k, it->sync[k], 8);
    }
    blob->len += 12 + pc->n * SPICE_DCMD_RESTORE_ITEM;
    return 0;
}

int spice_pixmap_cache_parse(const uint8_t *blob, size_t len, SpicePixmapCacheBlob *out, MigErr **errp)
{
    memset(out, 0, sizeof(*out));
    if (len < SPICE_DCMD_BODY_END)
        return mig_err_set(errp, -EPROTO, "display migration data: %zu bytes, the display part needs %u", len,
                           SPICE_DCMD_BODY_END);
    const uint8_t *p = blob + SPICE_DCMD_CACHE_OFFSET;
    out->cache_id = p[0];
    out->size = (int64_t)spice__get_le(p + 1, 8);
    if (out->size < 0)
        return mig_err_set(errp, -EPROTO, "display migration data: pixmap_cache_size %lld is negative",
                           (long long)out->size);
    if (p[9] > 1)
        return mig_err_set(errp, -EPROTO, "display migration data: pixmap_cache_freezer is %u (0 or 1)", p[9]);
    out->freezer = p[9];
    for (size_t i = 0; i < NCH; i++)
        out->clients[i] = spice__get_le(p + 10 + 8 * i, 8);
    /* the restore list, when it is there, sits right after the body (the
     * surface list's pointer, 4 bytes before the end, points past it) */
    uint32_t surfaces = (uint32_t)spice__get_le(blob + SPICE_DCMD_BODY_END - 4, 4);
    const uint8_t *q = blob + SPICE_DCMD_BODY_END;
    size_t room = len - SPICE_DCMD_BODY_END;
    if (room < 4 || spice__get_le(q, 4) != SPICE_DCMD_RESTORE_MAGIC || (surfaces && surfaces <= SPICE_DCMD_BODY_END))
        return 0;
    if (room < 12)
        return mig_err_set(errp, -EPROTO, "display migration data: restore list cut after %zu bytes", room);
    uint32_t version = (uint32_t)spice__get_le(q + 4, 4), n = (uint32_t)spice__get_le(q + 8, 4);
    if (version > SPICE_DCMD_RESTORE_VERSION || version == 0)
        return mig_err_set(errp, -ENOTSUP, "display migration data: restore list version %u (this server reads "
                           "1 to %u)", version, SPICE_DCMD_RESTORE_VERSION);
    if ((uint64_t)n * SPICE_DCMD_RESTORE_ITEM > room - 12)
        return mig_err_set(errp, -EPROTO, "display migration data: restore list of %u images needs %llu bytes, "
                           "%zu left", n, (unsigned long long)n * SPICE_DCMD_RESTORE_ITEM, room - 12);
    if (surfaces && surfaces < SPICE_DCMD_BODY_END + 12 + (uint64_t)n * SPICE_DCMD_RESTORE_ITEM)
        return mig_err_set(errp, -EPROTO, "display migration data: the surface list (at %u) overlaps the restore "
                           "list", surfaces);
    out->has_items = true;
    out->nitems = n;
    out->items = q + 12;
    return 0;
}

int spice_pixmap_cache_import(SpicePixmapCache *pc, const SpicePixmapCacheBlob *b, MigErr **errp)
{
    if (b->has_items && !pc->restored && pc->n == 0) {
        PcItem *items = b->nitems ? mig_malloc0(b->nitems * sizeof(*items)) : NULL;
        uint64_t used = 0;
        for (size_t i = 0; i < b->nitems; i++) {
            const uint8_t *q = b->items + i * SPICE_DCMD_RESTORE_ITEM;
            PcItem *it = &items[i];
            it->id = spice__get_le(q, 8);
            it->pixels = spice__get_le(q + 8, 8);
            it->adder = q[16];
            it->add_serial = spice__get_le(q + 17, 8);
            for (size_t k = 0; k < NCH; k++)
                it->sync[k] = spice__get_le(q + 25 + 8 * k, 8);
            int bad = 0;
            for (size_t k = 0; k < i && !bad; k++)
                bad = items[k].id == it->id;
            used += it->pixels;
            if (bad || it->adder >= NCH || it->pixels == 0 || used > pc->size || used < it->pixels) {
                const char *why = bad ? "listed twice" : it->adder >= NCH ? "added by a channel out of range"
                                  : it->pixels == 0 ? "of 0 pixels" : "overfills the cache";
                uint64_t id = it->id;
                free(items);
                return mig_err_set(errp, -EPROTO, "display migration data: restore list image %zu (id 0x%llx): %s",
                                   i, (unsigned long long)id, why);
            }
        }
        free(pc->items);
        pc->items = items;
        pc->n = pc->cap = b->nitems;
        pc->used = used;
        pc->restored = true;
    } else if (b->has_items) {
        /* a later channel's view: only its serials are newer */
        for (size_t i = 0; i < b->nitems; i++) {
            const uint8_t *q = b->items + i * SPICE_DCMD_RESTORE_ITEM;
            ssize_t k = find(pc, spice__get_le(q, 8));
            for (size_t c = 0; k >= 0 && c < NCH; c++)
                pc->items[k].sync[c] = MIG_MAX(pc->items[k].sync[c], spice__get_le(q + 25 + 8 * c, 8));
        }
    }
    for (size_t c = 0; c < NCH; c++)
        pc->last[c] = MIG_MAX(pc->last[c], b->clients[c]);
    return 0;
}
