/*
 * spice-display.c - the display channel (spice-display.h).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-display.h"
#include "spice-migrate-data.h"

/* Images the server makes itself (a whole surface for a new client) carry
 * ids with the top bit set, apart from the device's, and are never cached. */
#define SERVER_IMAGE_ID_BIT (1ull << 63)

typedef struct CacheItem {
    uint64_t id;
    uint64_t pixels;
} CacheItem;

typedef struct DisplayCC {
    SpiceDisplay *d;
    SpiceChannelClient *cc;
    bool ready;          /* DISPLAY_INIT received, surfaces sent */
    uint64_t cache_cap;  /* pixels the client's pixmap cache holds */
    int32_t glz_window;  /* the client's GLZ window (DISPLAY_INIT), carried by seamless migration */
    uint32_t *prep_ids;  /* seamless target: the surfaces when it began to draw for the client */
    size_t nprep;
    uint64_t cache_used;
    CacheItem *items;    /* least recently used first */
    size_t nitems, capitems;
} DisplayCC;

struct SpiceDisplay {
    SpiceServer *server;
    SpiceChannel *ch;
    SpiceSurface *surfaces; /* in creation order, the primary normally first */
    size_t nsurfaces;
    DisplayCC **dccs;
    size_t ndccs;
    uint64_t server_image_seq;
    SpiceDisplayStats stats;
};

static SpiceSurface *find_surface(const SpiceDisplay *d, uint32_t id)
{
    for (size_t i = 0; i < d->nsurfaces; i++)
        if (d->surfaces[i].id == id)
            return &d->surfaces[i];
    return NULL;
}

const SpiceSurface *spice_display_surface(const SpiceDisplay *d, uint32_t id)
{
    return find_surface(d, id);
}

/* ------------------------------------------------------------------ the client's pixmap cache */

static ssize_t cache_find(const DisplayCC *dc, uint64_t id)
{
    for (size_t i = 0; i < dc->nitems; i++)
        if (dc->items[i].id == id)
            return (ssize_t)i;
    return -1;
}

static void cache_touch(DisplayCC *dc, size_t i)
{
    CacheItem it = dc->items[i];
    memmove(dc->items + i, dc->items + i + 1, (dc->nitems - i - 1) * sizeof(*dc->items));
    dc->items[dc->nitems - 1] = it;
}

/* Make room for `pixels` and add `id`; the evicted ids go out in one
 * INVAL_LIST first.  Returns 0 or the send error. */
static int cache_add(DisplayCC *dc, uint64_t id, uint64_t pixels)
{
    size_t evict = 0;
    uint64_t used = dc->cache_used;
    while (used + pixels > dc->cache_cap && evict < dc->nitems)
        used -= dc->items[evict++].pixels;
    if (evict) {
        SpiceResourceRef *refs = mig_malloc0(evict * sizeof(*refs));
        for (size_t i = 0; i < evict; i++)
            refs[i] = (SpiceResourceRef){.type = SPICE_RES_TYPE_PIXMAP, .id = dc->items[i].id};
        /* INVAL_LIST counts in 16 bits: send it in slices */
        int r = 0;
        for (size_t at = 0; at < evict && r == 0; at += UINT16_MAX) {
            SpiceMsgInvalList l = {.resources = {.n = (uint32_t)MIG_MIN(evict - at, (size_t)UINT16_MAX),
                                                 .items = refs + at}};
            r = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_INVAL_LIST, &l);
        }
        free(refs);
        if (r < 0)
            return r;
        memmove(dc->items, dc->items + evict, (dc->nitems - evict) * sizeof(*dc->items));
        dc->nitems -= evict;
        dc->cache_used = used;
        dc->d->stats.cache_evictions += evict;
    }
    if (dc->nitems == dc->capitems) {
        dc->capitems = dc->capitems ? 2 * dc->capitems : 32;
        dc->items = mig_realloc(dc->items, dc->capitems * sizeof(*dc->items));
    }
    dc->items[dc->nitems++] = (CacheItem){id, pixels};
    dc->cache_used += pixels;
    return 0;
}

/* ------------------------------------------------------------------ sending */

static SpiceDrawBase draw_base(uint32_t surface, const SpiceRect *r)
{
    return (SpiceDrawBase){.surface_id = surface, .box = *r, .clip_type = SPICE_CLIP_TYPE_NONE};
}

static int send_copy(DisplayCC *dc, uint32_t surface, const SpiceRect *r, uint64_t image_id, bool cacheable,
                     const uint32_t *px, uint32_t w, uint32_t h)
{
    SpiceImage img = {.id = image_id, .width = w, .height = h};
    uint8_t *payload = NULL;
    ssize_t hit = cacheable ? cache_find(dc, image_id) : -1;
    if (hit >= 0) {
        cache_touch(dc, (size_t)hit);
        img.type = SPICE_IMAGE_TYPE_FROM_CACHE;
        dc->d->stats.cache_hits++;
    } else {
        uint64_t pixels = (uint64_t)w * h;
        if (cacheable && pixels <= dc->cache_cap) {
            int r2 = cache_add(dc, image_id, pixels);
            if (r2 < 0)
                return r2;
            img.flags = SPICE_IMAGE_FLAGS_CACHE_ME;
        }
        SpiceBitmapBody bm = {.format = SPICE_BITMAP_FMT_32BIT, .flags = SPICE_BITMAP_FLAGS_TOP_DOWN, .x = w,
                              .y = h, .stride = 4 * w, .data = {.len = 4 * w * h, .data = (uint8_t *)px}};
        size_t plen;
        int e = spice_marshal_encode(&spice_bitmap_desc, &bm, &payload, &plen, NULL);
        if (e < 0)
            return e;
        img.type = SPICE_IMAGE_TYPE_BITMAP;
        img.payload = (SpiceMBytes){.len = (uint32_t)plen, .data = payload};
        dc->d->stats.images_sent++;
    }
    SpiceMsgDrawCopy m = {.base = draw_base(surface, r), .src_bitmap = &img,
                          .src_area = {.top = 0, .left = 0, .bottom = (int32_t)h, .right = (int32_t)w},
                          .rop_descriptor = SPICE_ROPD_OP_PUT};
    int e = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_DRAW_COPY, &m);
    free(payload);
    dc->d->stats.draws_sent++;
    return e;
}

static int send_surface(DisplayCC *dc, const SpiceSurface *s)
{
    SpiceMsgSurfaceCreate sc = {.surface_id = s->id, .width = s->width, .height = s->height,
                                .format = SPICE_SURFACE_FMT_32_xRGB,
                                .flags = s->id == 0 ? SPICE_SURFACE_FLAGS_PRIMARY : 0};
    int r = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_SURFACE_CREATE, &sc);
    if (r < 0)
        return r;
    SpiceRect all = {.top = 0, .left = 0, .bottom = (int32_t)s->height, .right = (int32_t)s->width};
    return send_copy(dc, s->id, &all, SERVER_IMAGE_ID_BIT | ++dc->d->server_image_seq, false, s->px, s->width,
                     s->height);
}

static int send_initial(DisplayCC *dc)
{
    int r = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_INVAL_ALL_PALETTES, NULL);
    for (size_t i = 0; i < dc->d->nsurfaces && r == 0; i++)
        r = send_surface(dc, &dc->d->surfaces[i]);
    if (r == 0)
        r = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_MARK, NULL);
    return r;
}

/* ------------------------------------------------------------------ channel class */

static int display_connect(SpiceChannelClient *cc, MigErr **errp)
{
    SpiceDisplay *d = spice_channel_priv(spice_cc_channel(cc));
    if (!d)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    DisplayCC *dc = mig_malloc0(sizeof(*dc));
    dc->d = d;
    dc->cc = cc;
    spice_cc_set_priv(cc, dc);
    d->dccs = mig_realloc(d->dccs, (d->ndccs + 1) * sizeof(*d->dccs));
    d->dccs[d->ndccs++] = dc;
    const SpiceServerConfig *cfg = spice_server_config(spice_channel_server(spice_cc_channel(cc)));
    int r = spice_conn_set_ack(spice_cc_conn(cc), 1, cfg->ack_window);
    return r < 0 ? mig_err_set(errp, r, "cannot queue SET_ACK") : 0;
}

static int display_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                              MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (mi->id != SPICE_MSGC_DISPLAY_INIT)
        return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
    if (dc->ready)
        return mig_err_set(errp, -EPROTO, "a second DISPLAY_INIT on one connection");
    SpiceMsgDisplayInit *di = body;
    if (di->pixmap_cache_size < 0 || di->glz_dictionary_window_size < 0)
        return mig_err_set(errp, -EPROTO, "DISPLAY_INIT with a negative size (cache %lld, GLZ window %d)",
                           (long long)di->pixmap_cache_size, di->glz_dictionary_window_size);
    dc->cache_cap = (uint64_t)di->pixmap_cache_size;
    dc->glz_window = di->glz_dictionary_window_size;
    dc->ready = true;
    return send_initial(dc);
}

static void display_disconnect(SpiceChannelClient *cc)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        return;
    SpiceDisplay *d = dc->d;
    for (size_t i = 0; i < d->ndccs; i++)
        if (d->dccs[i] == dc) {
            memmove(d->dccs + i, d->dccs + i + 1, (d->ndccs - i - 1) * sizeof(*d->dccs));
            d->ndccs--;
            break;
        }
    free(dc->items);
    free(dc->prep_ids);
    free(dc);
    spice_cc_set_priv(cc, NULL);
}

static void display_channel_gone(SpiceChannel *ch)
{
    SpiceDisplay *d = spice_channel_priv(ch);
    if (d)
        d->ch = NULL;
}

static int display_migrate_save(SpiceChannelClient *cc, uint8_t **blob, size_t *len, MigErr **errp);
static void display_migrate_prepare(SpiceChannelClient *cc);
static int display_migrate_load(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp);

static const SpiceChannelClass display_class = {
    .name = "display",
    .max_in = 1024,
    .connect = display_connect,
    .on_message = display_on_message,
    .disconnect = display_disconnect,
    .channel_gone = display_channel_gone,
    .migrate_flags = SPICE_MIGRATE_NEED_FLUSH | SPICE_MIGRATE_NEED_DATA_TRANSFER,
    .migrate_save = display_migrate_save,
    .migrate_prepare = display_migrate_prepare,
    .migrate_load = display_migrate_load,
};

SpiceDisplay *spice_display_add(SpiceServer *s, uint8_t id)
{
    SpiceDisplay *d = mig_malloc0(sizeof(*d));
    d->server = s;
    d->ch = spice_server_add_channel(s, SPICE_CHANNEL_DISPLAY, id, &display_class, d);
    return d;
}

void spice_display_free(SpiceDisplay *d)
{
    if (!d)
        return;
    if (d->ch)
        spice_channel_set_priv(d->ch, NULL);
    /* channel clients still linked lose their state with the display */
    for (size_t i = 0; i < d->ndccs; i++) {
        spice_cc_set_priv(d->dccs[i]->cc, NULL);
        spice_cc_disconnect(d->dccs[i]->cc, "the display device went away");
        free(d->dccs[i]->items);
        free(d->dccs[i]->prep_ids);
        free(d->dccs[i]);
    }
    free(d->dccs);
    for (size_t i = 0; i < d->nsurfaces; i++)
        spice_surface_fini(&d->surfaces[i]);
    free(d->surfaces);
    free(d);
}

/* ------------------------------------------------------------------ drawing */

int spice_display_surface_create(SpiceDisplay *d, uint32_t id, uint32_t width, uint32_t height, MigErr **errp)
{
    if (find_surface(d, id))
        return mig_err_set(errp, -EEXIST, "surface %u exists", id);
    SpiceSurface s;
    int r = spice_surface_init(&s, id, width, height, errp);
    if (r < 0)
        return r;
    d->surfaces = mig_realloc(d->surfaces, (d->nsurfaces + 1) * sizeof(*d->surfaces));
    d->surfaces[d->nsurfaces++] = s;
    for (size_t i = 0; i < d->ndccs; i++)
        if (d->dccs[i]->ready)
            send_surface(d->dccs[i], &d->surfaces[d->nsurfaces - 1]);
    return 0;
}

int spice_display_surface_destroy(SpiceDisplay *d, uint32_t id, MigErr **errp)
{
    SpiceSurface *s = find_surface(d, id);
    if (!s)
        return mig_err_set(errp, -ENOENT, "no surface %u", id);
    spice_surface_fini(s);
    size_t i = (size_t)(s - d->surfaces);
    memmove(d->surfaces + i, d->surfaces + i + 1, (d->nsurfaces - i - 1) * sizeof(*d->surfaces));
    d->nsurfaces--;
    SpiceMsgU32 m = {id};
    for (size_t k = 0; k < d->ndccs; k++)
        if (d->dccs[k]->ready)
            spice_cc_send(d->dccs[k]->cc, SPICE_MSG_DISPLAY_SURFACE_DESTROY, &m);
    return 0;
}

static SpiceSurface *surface_or_fail(SpiceDisplay *d, uint32_t id, MigErr **errp)
{
    SpiceSurface *s = find_surface(d, id);
    if (!s)
        mig_err_set(errp, -ENOENT, "no surface %u", id);
    return s;
}

int spice_display_fill(SpiceDisplay *d, uint32_t id, const SpiceRect *r, uint32_t color, MigErr **errp)
{
    SpiceSurface *s = surface_or_fail(d, id, errp);
    int e = s ? spice_canvas_fill(s, r, color, errp) : -ENOENT;
    if (e < 0)
        return e;
    SpiceMsgDrawFill m = {.base = draw_base(id, r), .brush_type = SPICE_BRUSH_TYPE_SOLID,
                          .color = color & 0xffffffu, .rop_descriptor = SPICE_ROPD_OP_PUT};
    for (size_t i = 0; i < d->ndccs; i++)
        if (d->dccs[i]->ready) {
            spice_cc_send(d->dccs[i]->cc, SPICE_MSG_DISPLAY_DRAW_FILL, &m);
            d->stats.draws_sent++;
        }
    return 0;
}

int spice_display_copy(SpiceDisplay *d, uint32_t id, const SpiceRect *r, uint64_t image_id, const uint32_t *px,
                       uint32_t w, uint32_t h, MigErr **errp)
{
    if (image_id & SERVER_IMAGE_ID_BIT)
        return mig_err_set(errp, -EINVAL, "image id 0x%llx uses the server's range", (unsigned long long)image_id);
    SpiceSurface *s = surface_or_fail(d, id, errp);
    int e = s ? spice_canvas_put(s, r, px, w, h, w, errp) : -ENOENT;
    if (e < 0)
        return e;
    for (size_t i = 0; i < d->ndccs; i++)
        if (d->dccs[i]->ready)
            send_copy(d->dccs[i], id, r, image_id, true, px, w, h);
    return 0;
}

int spice_display_restore(SpiceDisplay *d, uint32_t id, const uint32_t *px, MigErr **errp)
{
    SpiceSurface *s = surface_or_fail(d, id, errp);
    if (!s)
        return -ENOENT;
    SpiceRect all = {.top = 0, .left = 0, .bottom = (int32_t)s->height, .right = (int32_t)s->width};
    int e = spice_canvas_put(s, &all, px, s->width, s->height, s->width, errp);
    if (e < 0)
        return e;
    for (size_t i = 0; i < d->ndccs; i++)
        if (d->dccs[i]->ready)
            send_copy(d->dccs[i], id, &all, SERVER_IMAGE_ID_BIT | ++d->server_image_seq, false, s->px, s->width,
                      s->height);
    return 0;
}

int spice_display_copy_bits(SpiceDisplay *d, uint32_t id, const SpiceRect *r, int32_t sx, int32_t sy,
                            MigErr **errp)
{
    SpiceSurface *s = surface_or_fail(d, id, errp);
    int e = s ? spice_canvas_copy_bits(s, r, sx, sy, errp) : -ENOENT;
    if (e < 0)
        return e;
    SpiceMsgCopyBits m = {.base = draw_base(id, r), .src_pos = {.x = sx, .y = sy}};
    for (size_t i = 0; i < d->ndccs; i++)
        if (d->dccs[i]->ready) {
            spice_cc_send(d->dccs[i]->cc, SPICE_MSG_DISPLAY_COPY_BITS, &m);
            d->stats.draws_sent++;
        }
    return 0;
}

void spice_display_stats(const SpiceDisplay *d, SpiceDisplayStats *out)
{
    *out = d->stats;
}

/* ------------------------------------------------------------------ seamless migration (DCMD) */

/*
 * The display blob (docs/protocol-spice.md section 9): the serial to go on
 * from, the client's pixmap cache size and GLZ window, and the surfaces the
 * client holds (every surface of the display once its DISPLAY_INIT was
 * answered: creates and destroys go to every ready client).  The pixmap
 * cache is per channel client here, so this channel is its own freezer:
 * the target empties the client's cache (INVAL_ALL_PIXMAPS, waiting for
 * the other display channels' last serials) and starts its record of the
 * cache empty (the reset strategy).  Surfaces the blob lists are not sent
 * again; a surface it lists that the target does not have is destroyed at
 * the client, one the target has and the list lacks is sent whole.
 */
static int display_migrate_save(SpiceChannelClient *cc, uint8_t **blob, size_t *len, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    SpiceDisplay *d = dc ? dc->d : NULL;
    uint8_t own = spice_channel_id(spice_cc_channel(cc));
    uint64_t serial = spice_conn_last_sent_serial(spice_cc_conn(cc)) + 1; /* the MIGRATE_DATA's own */
    SpiceMigDisplay m = {.h = {SPICE_MIG_MAGIC_DISPLAY, SPICE_MIG_VERSION_DISPLAY},
                         .message_serial = serial,
                         .pixmap_cache_id = 1,
                         .pixmap_cache_size = dc ? (int64_t)dc->cache_cap : 0,
                         .pixmap_cache_freezer = 1,
                         .glz_dict_id = 1,
                         .glz_dict_size = dc && dc->glz_window > 0 ? (uint32_t)dc->glz_window : 0,
                         .glz_max_encoders = 1};
    if (own < SPICE_MIG_MAX_DISPLAYS)
        m.pixmap_cache_clients[own] = serial;
    SpiceMigSurfaces list = {{0, NULL}};
    SpiceMigSurface *ids = NULL;
    if (dc && dc->ready && d->nsurfaces) {
        ids = mig_malloc0(d->nsurfaces * sizeof(*ids));
        for (size_t i = 0; i < d->nsurfaces; i++)
            ids[i].id = d->surfaces[i].id;
        list.surfaces = (SpiceMArray){.n = (uint32_t)d->nsurfaces, .items = ids};
    }
    m.surfaces_at_client = &list;
    int r = spice_mig_encode(&spice_mig_display_desc, &m, NULL, 0, blob, len, errp);
    free(ids);
    return r;
}

/* The machine loaded: draw for this client from now on (held until its
 * data came), assuming it holds what the source had; no image is cached
 * before the blob gives the cache's size. */
static void display_migrate_prepare(SpiceChannelClient *cc)
{
    SpiceDisplay *d = spice_channel_priv(spice_cc_channel(cc));
    if (!d)
        return;
    DisplayCC *dc = mig_malloc0(sizeof(*dc));
    dc->d = d;
    dc->cc = cc;
    dc->ready = true;
    dc->prep_ids = mig_malloc0((d->nsurfaces + 1) * sizeof(*dc->prep_ids));
    for (size_t i = 0; i < d->nsurfaces; i++)
        dc->prep_ids[dc->nprep++] = d->surfaces[i].id;
    spice_cc_set_priv(cc, dc);
    d->dccs = mig_realloc(d->dccs, (d->ndccs + 1) * sizeof(*d->dccs));
    d->dccs[d->ndccs++] = dc;
}

static bool listed(const SpiceMigSurfaces *l, uint32_t id)
{
    const SpiceMigSurface *ids = l ? l->surfaces.items : NULL;
    for (uint32_t i = 0; l && i < l->surfaces.n; i++)
        if (ids[i].id == id)
            return true;
    return false;
}

static bool prepared(const DisplayCC *dc, uint32_t id)
{
    for (size_t i = 0; i < dc->nprep; i++)
        if (dc->prep_ids[i] == id)
            return true;
    return false;
}

static int display_migrate_load(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    SpiceMigDisplay m;
    int r = spice_mig_decode("display", &spice_mig_display_desc, blob, len, SPICE_MIG_MAGIC_DISPLAY,
                             SPICE_MIG_VERSION_DISPLAY, &m, errp);
    if (r < 0)
        return r;
    const SpiceMigSurfaces *l = m.surfaces_at_client;
    const SpiceMigSurface *ids = l ? l->surfaces.items : NULL;
    if (l && l->surfaces.n > SPICE_MIG_MAX_SURFACES)
        r = mig_err_set(errp, -EPROTO, "display migration data: %u surfaces listed, at most %u", l->surfaces.n,
                        SPICE_MIG_MAX_SURFACES);
    for (uint32_t i = 0; r == 0 && l && i < l->surfaces.n; i++)
        if (ids[i].id >= SPICE_MIG_MAX_SURFACES)
            r = mig_err_set(errp, -EPROTO, "display migration data: surface id %u out of range (0 to %u)", ids[i].id,
                            SPICE_MIG_MAX_SURFACES - 1);
    if (r == 0 && m.pixmap_cache_size < 0)
        r = mig_err_set(errp, -EPROTO, "display migration data: pixmap cache size %lld",
                        (long long)m.pixmap_cache_size);
    if (r < 0) {
        spice_marshal_free(&spice_mig_display_desc, &m);
        return r;
    }
    SpiceConn *conn = spice_cc_conn(cc);
    const SpiceServerConfig *cfg = spice_server_config(spice_channel_server(spice_cc_channel(cc)));
    spice_conn_renumber(conn, m.message_serial);
    spice_conn_resume_ack(conn, 1, cfg->ack_window); /* spice.md 11.6: nothing un-ACKed */
    dc->cache_cap = (uint64_t)m.pixmap_cache_size;
    dc->glz_window = (int32_t)MIG_MIN(m.glz_dict_size, (uint32_t)INT32_MAX);
    /* reset: the client's cache empties once the other display channels
     * processed what used it */
    uint8_t own = spice_channel_id(spice_cc_channel(cc));
    SpiceWaitItem wait[SPICE_MIG_MAX_DISPLAYS];
    uint32_t nwait = 0;
    for (uint8_t i = 0; m.pixmap_cache_freezer && i < SPICE_MIG_MAX_DISPLAYS; i++)
        if (i != own && m.pixmap_cache_clients[i])
            wait[nwait++] = (SpiceWaitItem){SPICE_CHANNEL_DISPLAY, i, m.pixmap_cache_clients[i]};
    SpiceMsgWaitList wl = {.items = {.n = nwait, .items = wait}};
    r = spice_cc_send(cc, SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS, &wl);
    SpiceDisplay *d = dc->d;
    /* against the surfaces of when it began to draw for the client (what
     * came since went to the client already) */
    for (uint32_t i = 0; r == 0 && l && i < l->surfaces.n; i++)
        if (!prepared(dc, ids[i].id)) {
            SpiceMsgU32 sd = {ids[i].id};
            r = spice_cc_send(cc, SPICE_MSG_DISPLAY_SURFACE_DESTROY, &sd);
        }
    for (size_t i = 0; r == 0 && i < d->nsurfaces; i++)
        if (prepared(dc, d->surfaces[i].id) && !listed(l, d->surfaces[i].id))
            r = send_surface(dc, &d->surfaces[i]);
    spice_marshal_free(&spice_mig_display_desc, &m);
    return r < 0 ? mig_err_set(errp, r, "cannot queue the display's first messages") : 0;
}
