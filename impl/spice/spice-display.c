/*
 * spice-display.c - the display channel (spice-display.h).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "../savevm/savevm.h"
#include "spice-display.h"
#include "spice-glz.h"
#include "spice-migrate-data.h"
#include "spice-pixmap-cache.h"

/* Images the server makes itself (a whole surface for a new client) carry
 * ids with the top bit set, apart from the device's, and are never cached. */
#define SERVER_IMAGE_ID_BIT (1ull << 63)

/* One client's shared pixmap cache, counted by its display channel
 * clients (the last one to go frees it). */
typedef struct SharedCache {
    const SpiceClient *client;
    SpicePixmapCache *pc;
    uint32_t refs;
} SharedCache;

/* What the display channels of one server share: the pixmap caches of
 * their clients.  Counted by the SpiceDisplays that use it. */
/* One client's GLZ dictionary, counted the same way. */
typedef struct SharedGlz {
    const SpiceClient *client;
    SpiceGlzDict *dict;
    uint32_t refs;
} SharedGlz;

typedef struct DisplayGroup {
    uint32_t refs;
    SharedCache *caches;
    size_t ncaches, capcaches;
    SharedGlz *glzs;
    size_t nglzs, capglzs;
    SpiceGlzDict *incoming; /* seamless target: the source's dictionary, from the machine's stream */
} DisplayGroup;

typedef struct DisplayCC {
    SpiceDisplay *d;
    SpiceChannelClient *cc;
    bool ready;            /* DISPLAY_INIT received, surfaces sent */
    bool imported;         /* seamless target: its blob's cache part was taken */
    bool early;            /* seamless target: its blob's first part was taken while the machine loaded */
    SpicePixmapCache *pc;  /* the client's shared cache (NULL before DISPLAY_INIT) */
    SpiceGlzDict *glz;     /* the client's GLZ dictionary (with image-compression=glz) */
    uint8_t init_glz_id;   /* what DISPLAY_INIT asked for (a blob without a dictionary names it) */
    uint32_t init_glz_window;
    uint32_t *prep_ids;    /* seamless target: the surfaces when it began to draw for the client */
    size_t nprep;
} DisplayCC;

struct SpiceDisplay {
    SpiceServer *server;
    SpiceChannel *ch;
    uint8_t id;
    DisplayGroup *group;
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

/* ------------------------------------------------------------------ the shared pixmap cache */

/* The cache of (client, cache_id), made with `size` when new. */
static SpicePixmapCache *cache_get(DisplayGroup *g, const SpiceClient *client, uint8_t cache_id, uint64_t size,
                                   bool *created)
{
    *created = false;
    for (size_t i = 0; i < g->ncaches; i++)
        if (g->caches[i].client == client && spice_pixmap_cache_id(g->caches[i].pc) == cache_id) {
            g->caches[i].refs++;
            return g->caches[i].pc;
        }
    *created = true;
    MIG_GROW(g->caches, g->capcaches, g->ncaches + 1, 4);
    g->caches[g->ncaches++] = (SharedCache){.client = client, .pc = spice_pixmap_cache_new(cache_id, size), .refs = 1};
    return g->caches[g->ncaches - 1].pc;
}

static void cache_put(DisplayGroup *g, SpicePixmapCache *pc)
{
    for (size_t i = 0; pc && i < g->ncaches; i++)
        if (g->caches[i].pc == pc) {
            if (--g->caches[i].refs == 0) {
                spice_pixmap_cache_free(pc);
                memmove(g->caches + i, g->caches + i + 1, (g->ncaches - i - 1) * sizeof(*g->caches));
                g->ncaches--;
            }
            return;
        }
}

/* The GLZ dictionary of (client, dict_id); `import`, when given, is the one
 * a migration brought (used when the client has none yet). */
static SpiceGlzDict *glz_get(DisplayGroup *g, const SpiceClient *client, uint8_t dict_id, uint32_t window,
                             const SpiceGlzBlob *import)
{
    for (size_t i = 0; i < g->nglzs; i++)
        if (g->glzs[i].client == client && spice_glz_dict_id(g->glzs[i].dict) == dict_id) {
            g->glzs[i].refs++;
            return g->glzs[i].dict;
        }
    MIG_GROW(g->glzs, g->capglzs, g->nglzs + 1, 4);
    SpiceGlzDict *d;
    if (import && g->incoming && spice_glz_state_matches(g->incoming, import)) {
        d = g->incoming; /* the client holds the images the source left in it */
        g->incoming = NULL;
    } else {
        d = import ? spice_glz_dict_import(import) : spice_glz_dict_new(dict_id, window);
    }
    g->glzs[g->nglzs++] = (SharedGlz){.client = client, .dict = d, .refs = 1};
    return d;
}

static void glz_put(DisplayGroup *g, SpiceGlzDict *d)
{
    for (size_t i = 0; d && i < g->nglzs; i++)
        if (g->glzs[i].dict == d) {
            if (--g->glzs[i].refs == 0) {
                spice_glz_dict_free(d);
                memmove(g->glzs + i, g->glzs + i + 1, (g->nglzs - i - 1) * sizeof(*g->glzs));
                g->nglzs--;
            }
            return;
        }
}

static int send_waits(DisplayCC *dc, const SpicePixmapWaits *w)
{
    if (!w->n)
        return 0;
    SpiceMsgWaitList m = {.items = {.n = w->n, .items = (void *)w->items}};
    dc->d->stats.waits_sent++;
    return spice_cc_send(dc->cc, SPICE_MSG_WAIT_FOR_CHANNELS, &m);
}

/* The evicted ids in INVAL_LIST (16-bit count: in slices). */
static int send_inval(DisplayCC *dc, const uint64_t *ids, size_t n)
{
    if (!n)
        return 0;
    SpiceResourceRef *refs = mig_malloc0(n * sizeof(*refs));
    for (size_t i = 0; i < n; i++)
        refs[i] = (SpiceResourceRef){.type = SPICE_RES_TYPE_PIXMAP, .id = ids[i]};
    int r = 0;
    for (size_t at = 0; at < n && r == 0; at += UINT16_MAX) {
        SpiceMsgInvalList l = {.resources = {.n = (uint32_t)MIG_MIN(n - at, (size_t)UINT16_MAX), .items = refs + at}};
        r = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_INVAL_LIST, &l);
    }
    free(refs);
    if (r == 0)
        spice_pixmap_cache_inval_sent(dc->pc, dc->d->id, spice_conn_last_sent_serial(spice_cc_conn(dc->cc)));
    dc->d->stats.cache_evictions += n;
    return r;
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
    uint8_t ch = dc->d->id;
    uint64_t glz_id = 0;
    SpicePixmapWaits waits = {0};
    bool hit = cacheable && dc->pc && spice_pixmap_cache_hit(dc->pc, ch, image_id, &waits);
    int e = send_waits(dc, &waits);
    if (e < 0)
        return e;
    if (hit) {
        img.type = SPICE_IMAGE_TYPE_FROM_CACHE;
        dc->d->stats.cache_hits++;
    } else {
        uint64_t *evicted = NULL;
        size_t nevicted = 0;
        if (cacheable && dc->pc &&
            spice_pixmap_cache_add(dc->pc, ch, image_id, (uint64_t)w * h, &evicted, &nevicted, &waits)) {
            e = send_waits(dc, &waits);
            if (e == 0)
                e = send_inval(dc, evicted, nevicted);
            free(evicted);
            if (e < 0)
                return e;
            img.flags = SPICE_IMAGE_FLAGS_CACHE_ME;
        }
        MigBuf glz = {0};
        uint64_t inherited = dc->glz ? spice_glz_inherited_refs(dc->glz) : 0;
        if (dc->glz && spice_glz_encode(dc->glz, ch, px, w, h, &glz, &waits, &glz_id) == 0) {
            e = send_waits(dc, &waits);
            if (e < 0) {
                mig_buf_free(&glz);
                return e;
            }
            img.type = SPICE_IMAGE_TYPE_GLZ_RGB;
            img.payload = (SpiceMBytes){.len = (uint32_t)glz.len, .data = glz.data};
            payload = glz.data;
            dc->d->stats.glz_images++;
            dc->d->stats.glz_bytes += glz.len;
            dc->d->stats.glz_raw_bytes += 4ull * w * h;
            dc->d->stats.glz_inherited_refs += spice_glz_inherited_refs(dc->glz) - inherited;
        } else {
            mig_buf_free(&glz);
            SpiceBitmapBody bm = {.format = SPICE_BITMAP_FMT_32BIT, .flags = SPICE_BITMAP_FLAGS_TOP_DOWN, .x = w,
                                  .y = h, .stride = 4 * w, .data = {.len = 4 * w * h, .data = (uint8_t *)px}};
            size_t plen;
            e = spice_marshal_encode(&spice_bitmap_desc, &bm, &payload, &plen, NULL);
            if (e < 0)
                return e;
            img.type = SPICE_IMAGE_TYPE_BITMAP;
            img.payload = (SpiceMBytes){.len = (uint32_t)plen, .data = payload};
        }
        dc->d->stats.images_sent++;
    }
    SpiceMsgDrawCopy m = {.base = draw_base(surface, r), .src_bitmap = &img,
                          .src_area = {.top = 0, .left = 0, .bottom = (int32_t)h, .right = (int32_t)w},
                          .rop_descriptor = SPICE_ROPD_OP_PUT};
    e = spice_cc_send(dc->cc, SPICE_MSG_DISPLAY_DRAW_COPY, &m);
    free(payload);
    dc->d->stats.draws_sent++;
    uint64_t serial = spice_conn_last_sent_serial(spice_cc_conn(dc->cc));
    if (e == 0 && (hit || img.flags & SPICE_IMAGE_FLAGS_CACHE_ME))
        spice_pixmap_cache_use_sent(dc->pc, ch, image_id, serial);
    if (e == 0 && img.type == SPICE_IMAGE_TYPE_GLZ_RGB)
        spice_glz_sent(dc->glz, ch, glz_id, serial);
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

/* The display's state for a new channel client, not ready: nothing is
 * drawn for it before DISPLAY_INIT (or, seamless, before the machine loaded). */
static DisplayCC *dcc_new(SpiceDisplay *d, SpiceChannelClient *cc)
{
    DisplayCC *dc = mig_malloc0(sizeof(*dc));
    dc->d = d;
    dc->cc = cc;
    spice_cc_set_priv(cc, dc);
    d->dccs = mig_realloc(d->dccs, (d->ndccs + 1) * sizeof(*d->dccs));
    d->dccs[d->ndccs++] = dc;
    return dc;
}

static int display_connect(SpiceChannelClient *cc, MigErr **errp)
{
    SpiceDisplay *d = spice_channel_priv(spice_cc_channel(cc));
    if (!d)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    dcc_new(d, cc);
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
    bool created;
    dc->init_glz_id = di->glz_dictionary_id;
    dc->init_glz_window = (uint32_t)di->glz_dictionary_window_size;
    dc->pc = cache_get(dc->d->group, spice_cc_client(cc), di->pixmap_cache_id, (uint64_t)di->pixmap_cache_size,
                       &created);
    if (spice_server_config(dc->d->server)->glz && di->glz_dictionary_window_size > 0 && dc->d->id < 4)
        dc->glz = glz_get(dc->d->group, spice_cc_client(cc), di->glz_dictionary_id,
                          (uint32_t)di->glz_dictionary_window_size, NULL);
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
    cache_put(d->group, dc->pc);
    glz_put(d->group, dc->glz);
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
static int display_migrate_early(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp);
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
    .migrate_early = display_migrate_early,
    .migrate_load = display_migrate_load,
};

/* The group of the server's other display channels, or a new one. */
static DisplayGroup *group_join(SpiceServer *s)
{
    for (size_t i = 0; i < spice_server_channel_count(s); i++) {
        SpiceChannel *ch = spice_server_channel_at(s, i);
        SpiceDisplay *other = spice_channel_type(ch) == SPICE_CHANNEL_DISPLAY ? spice_channel_priv(ch) : NULL;
        if (other && other->group) {
            other->group->refs++;
            return other->group;
        }
    }
    DisplayGroup *g = mig_malloc0(sizeof(*g));
    g->refs = 1;
    return g;
}

static void group_leave(DisplayGroup *g)
{
    if (--g->refs)
        return;
    for (size_t i = 0; i < g->ncaches; i++)
        spice_pixmap_cache_free(g->caches[i].pc);
    free(g->caches);
    for (size_t i = 0; i < g->nglzs; i++)
        spice_glz_dict_free(g->glzs[i].dict);
    free(g->glzs);
    spice_glz_dict_free(g->incoming);
    free(g);
}

SpiceDisplay *spice_display_add(SpiceServer *s, uint8_t id)
{
    SpiceDisplay *d = mig_malloc0(sizeof(*d));
    d->server = s;
    d->id = id;
    d->group = group_join(s);
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
        cache_put(d->group, d->dccs[i]->pc);
        glz_put(d->group, d->dccs[i]->glz);
        free(d->dccs[i]->prep_ids);
        free(d->dccs[i]);
    }
    free(d->dccs);
    group_leave(d->group);
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

/* ------------------------------------------------------------------ seamless migration of the cache */

/* The display blob version this server writes and loads. */
static uint32_t display_blob_version(const SpiceServer *s)
{
    uint32_t v = spice_server_config(s)->display_blob_version;
    return v ? v : SPICE_MIG_VERSION_DISPLAY;
}

/* Source: restore needs the restore list, which version 1 lacks. */
static SpicePixmapCacheMig cache_strategy(const DisplayCC *dc)
{
    int how = spice_server_config(dc->d->server)->pixmap_cache_migration;
    return how == SPICE_PIXMAP_CACHE_MIG_RESTORE && display_blob_version(dc->d->server) >= 2
               ? SPICE_PIXMAP_CACHE_MIG_RESTORE
               : SPICE_PIXMAP_CACHE_MIG_RESET;
}

int spice_display_migrate_export_cache(SpiceChannelClient *cc, MigBuf *blob, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc || !dc->pc)
        return mig_err_set(errp, -EINVAL, "display %u: the client sent no DISPLAY_INIT: no cache to migrate",
                           dc ? dc->d->id : 0);
    SpicePixmapCacheMig how = cache_strategy(dc);
    bool freezer = !spice_pixmap_cache_frozen(dc->pc);
    if (freezer)
        spice_pixmap_cache_freeze(dc->pc, how == SPICE_PIXMAP_CACHE_MIG_RESTORE);
    return spice_pixmap_cache_export(dc->pc, how, freezer, blob, errp);
}

/* Whether every display channel the client has linked took its blob. */
static bool all_imported(const DisplayCC *dc)
{
    SpiceServer *s = dc->d->server;
    SpiceClient *client = spice_cc_client(dc->cc);
    for (size_t i = 0; i < spice_server_channel_count(s); i++) {
        SpiceChannel *ch = spice_server_channel_at(s, i);
        if (spice_channel_type(ch) != SPICE_CHANNEL_DISPLAY)
            continue;
        SpiceChannelClient *other = spice_client_find(client, SPICE_CHANNEL_DISPLAY, spice_channel_id(ch));
        DisplayCC *odc = other ? spice_cc_priv(other) : NULL;
        if (odc && odc->pc == dc->pc && !odc->imported)
            return false;
        if (other && (!odc || odc->pc != dc->pc))
            return false; /* linked, its blob not yet here */
    }
    return true;
}

int spice_display_migrate_import_cache(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    if (dc->imported)
        return mig_err_set(errp, -EPROTO, "display %u: a second migration blob", dc->d->id);
    SpicePixmapCacheBlob b;
    int r = spice_pixmap_cache_parse(blob, len, &b, errp);
    if (r < 0)
        return r;
    if (!dc->pc) {
        bool created;
        dc->pc = cache_get(dc->d->group, spice_cc_client(cc), b.cache_id, (uint64_t)b.size, &created);
        if (created)
            spice_pixmap_cache_freeze(dc->pc, true); /* frozen until restored (or reset) */
    }
    if (spice_pixmap_cache_id(dc->pc) != b.cache_id)
        return mig_err_set(errp, -EPROTO, "display %u: the blob names pixmap cache %u, the client uses %u",
                           dc->d->id, b.cache_id, spice_pixmap_cache_id(dc->pc));
    dc->imported = true;
    /* Target: the blob decides.  A restore list (version 2 on) restores;
     * without one (the reference's blob, an older release, a source set to
     * reset) the cache is reset as the freezer says. */
    if (spice__get_le(blob + 4, 4) < 2) /* the header's version (parsed: 8 bytes at least) */
        b.has_items = false;
    if (b.has_items) {
        r = spice_pixmap_cache_import(dc->pc, &b, errp);
        if (r == 0 && all_imported(dc))
            spice_pixmap_cache_unfreeze(dc->pc);
        return r;
    }
    SpicePixmapCacheBlob serials = b;
    serials.has_items = false; /* reset: only the serials count */
    spice_pixmap_cache_import(dc->pc, &serials, NULL);
    if (!b.freezer)
        return 0;
    SpicePixmapWaits w;
    spice_pixmap_cache_reset(dc->pc, dc->d->id, (uint64_t)b.size, &w);
    SpiceMsgWaitList m = {.items = {.n = w.n, .items = w.items}};
    r = spice_cc_send(cc, SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS, &m);
    if (r == 0)
        spice_pixmap_cache_inval_sent(dc->pc, dc->d->id, spice_conn_last_sent_serial(spice_cc_conn(cc)));
    return r < 0 ? mig_err_set(errp, r, "display %u: cannot queue INVAL_ALL_PIXMAPS", dc->d->id) : 0;
}

void spice_display_migrate_cancel_cache(SpiceChannelClient *cc)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (dc && dc->pc)
        spice_pixmap_cache_unfreeze(dc->pc);
}

/* ------------------------------------------------------------------ seamless migration of the GLZ dictionary */

int spice_display_migrate_export_glz(SpiceChannelClient *cc, MigBuf *blob, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    if (dc->glz)
        return spice_glz_export(dc->glz, blob, errp);
    if (blob->len < SPICE_DCMD_BODY_END)
        return mig_err_set(errp, -EINVAL, "display migration data: %zu bytes before the GLZ part", blob->len);
    /* no dictionary in use: an empty one of the size the client asked for,
     * with one encoder, as spice-server describes the dictionary it makes
     * for every client (spice-server 0.15.1 cannot restore a dictionary of
     * no encoder: its display worker asserts, seen with QEMU 7.2 as the
     * target, test_spice_mixed.py) */
    uint8_t *p = blob->data + SPICE_DCMD_GLZ_OFFSET;
    memset(p, 0, SPICE_DCMD_GLZ_LEN);
    p[0] = dc->init_glz_id;
    for (int k = 0; k < 4; k++)
        p[1 + k] = (uint8_t)(dc->init_glz_window >> (8 * k));
    p[5] = 1; /* max_encoders */
    memset(p + 9, 0xff, 8); /* the last image id before the first image */
    return 0;
}

int spice_display_migrate_import_glz(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    SpiceGlzBlob b;
    int r = spice_glz_parse(blob, len, &b, errp);
    if (r < 0 || dc->glz || !b.window || !spice_server_config(dc->d->server)->glz || dc->d->id >= 4)
        return r;
    dc->glz = glz_get(dc->d->group, spice_cc_client(cc), b.dict_id, b.window, &b);
    return 0;
}

/* ------------------------------------------------------------------ seamless migration: the DCMD blob */

/*
 * The display blob (docs/protocol-spice.md section 9): the serial to go on
 * from, the cache part and the GLZ part (the functions above, by the
 * server's pixmap_cache_migration strategy; with restore its list follows
 * the fixed part), then the surfaces the client holds (every surface of
 * the display once its DISPLAY_INIT was answered: creates and destroys go
 * to every ready client).  Surfaces the blob lists are not sent again; one
 * it lists that the target did not have is destroyed at the client, one
 * the target had and the list lacks is sent whole.
 */
static int display_migrate_save(SpiceChannelClient *cc, uint8_t **out, size_t *out_len, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    SpiceDisplay *d = dc ? dc->d : NULL;
    SpiceMigDisplay m = {.h = {SPICE_MIG_MAGIC_DISPLAY, display_blob_version(spice_channel_server(spice_cc_channel(cc)))},
                         .message_serial = spice_conn_last_sent_serial(spice_cc_conn(cc)) + 1}; /* MIGRATE_DATA's */
    uint8_t *fixed;
    size_t n;
    int r = spice_mig_encode(&spice_mig_display_desc, &m, NULL, 0, &fixed, &n, errp);
    if (r < 0)
        return r;
    MigBuf blob = {0};
    mig_buf_append(&blob, fixed, n);
    free(fixed);
    if (dc && dc->pc)
        r = spice_display_migrate_export_cache(cc, &blob, errp);
    if (r == 0)
        r = spice_display_migrate_export_glz(cc, &blob, errp);
    if (r < 0) {
        mig_buf_free(&blob);
        return r;
    }
    /* the surface list after everything else, its pointer patched in */
    uint32_t at = (uint32_t)blob.len, count = dc && dc->ready ? (uint32_t)d->nsurfaces : 0;
    uint8_t *p = mig_buf_reserve(&blob, 4 + 4 * (size_t)count);
    for (uint32_t i = 0; i <= count; i++) {
        uint32_t v = i == 0 ? count : d->surfaces[i - 1].id;
        for (int k = 0; k < 4; k++)
            p[4 * i + (uint32_t)k] = (uint8_t)(v >> (8 * k));
    }
    blob.len += 4 + 4 * (size_t)count;
    for (int k = 0; k < 4; k++)
        blob.data[SPICE_DCMD_BODY_END - 4 + (uint32_t)k] = (uint8_t)(at >> (8 * k));
    *out = blob.data;
    *out_len = blob.len;
    return 0;
}

/* The machine loaded: draw for this client from now on (held until its
 * data came), assuming it holds what the source had; no image is cached
 * or GLZ-compressed before the blob gives the cache and the dictionary. */
static void display_migrate_prepare(SpiceChannelClient *cc)
{
    SpiceDisplay *d = spice_channel_priv(spice_cc_channel(cc));
    if (!d)
        return;
    DisplayCC *dc = spice_cc_priv(cc); /* there when the blob's first part came during the load */
    if (!dc)
        dc = dcc_new(d, cc);
    dc->ready = true;
    free(dc->prep_ids);
    dc->nprep = 0;
    dc->prep_ids = mig_malloc0((d->nsurfaces + 1) * sizeof(*dc->prep_ids));
    for (size_t i = 0; i < d->nsurfaces; i++)
        dc->prep_ids[dc->nprep++] = d->surfaces[i].id;
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

/* The blob decoded and its surface list checked (m freed on error). */
static int display_blob_decode(SpiceChannelClient *cc, const uint8_t *blob, size_t len, SpiceMigDisplay *m,
                               MigErr **errp)
{
    int r = spice_mig_decode("display", &spice_mig_display_desc, blob, len, SPICE_MIG_MAGIC_DISPLAY,
                             display_blob_version(spice_channel_server(spice_cc_channel(cc))), m, errp);
    if (r < 0)
        return r;
    const SpiceMigSurfaces *l = m->surfaces_at_client;
    const SpiceMigSurface *ids = l ? l->surfaces.items : NULL;
    if (l && l->surfaces.n > SPICE_MIG_MAX_SURFACES)
        r = mig_err_set(errp, -EPROTO, "display migration data: %u surfaces listed, at most %u", l->surfaces.n,
                        SPICE_MIG_MAX_SURFACES);
    for (uint32_t i = 0; r == 0 && l && i < l->surfaces.n; i++)
        if (ids[i].id >= SPICE_MIG_MAX_SURFACES)
            r = mig_err_set(errp, -EPROTO, "display migration data: surface id %u out of range (0 to %u)", ids[i].id,
                            SPICE_MIG_MAX_SURFACES - 1);
    if (r < 0)
        spice_marshal_free(&spice_mig_display_desc, m);
    return r;
}

/* What the blob carries that needs nothing from the machine's stream: the
 * serial to go on from, a zeroed ACK window, and the client's cache (reset:
 * INVAL_ALL_PIXMAPS with its waits; restore: the cache's ids). */
static int display_blob_take_client_part(SpiceChannelClient *cc, const SpiceMigDisplay *m, const uint8_t *blob,
                                         size_t len, MigErr **errp)
{
    SpiceConn *conn = spice_cc_conn(cc);
    const SpiceServerConfig *cfg = spice_server_config(spice_channel_server(spice_cc_channel(cc)));
    spice_conn_renumber(conn, m->message_serial);
    spice_conn_resume_ack(conn, 1, cfg->ack_window); /* spice.md 11.6: nothing un-ACKed */
    return spice_display_migrate_import_cache(cc, blob, len, errp);
}

/* Target, the blob came while the machine still loads: its client part is
 * taken at once, so that the client hears from the target as soon as it
 * moved (as spice-server's display answers its blob when it comes), not
 * once the whole stream is in.  Nothing is drawn for the client before
 * the machine loaded (the channel client is not ready); the dictionary
 * (from the machine's stream) and the surfaces (the display's, loaded)
 * wait for display_migrate_load. */
static int display_migrate_early(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    SpiceDisplay *d = spice_channel_priv(spice_cc_channel(cc));
    if (!d)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        dc = dcc_new(d, cc);
    SpiceMigDisplay m;
    int r = display_blob_decode(cc, blob, len, &m, errp);
    if (r < 0)
        return r;
    r = display_blob_take_client_part(cc, &m, blob, len, errp);
    dc->early = r == 0;
    spice_marshal_free(&spice_mig_display_desc, &m);
    return r;
}

static int display_migrate_load(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp)
{
    DisplayCC *dc = spice_cc_priv(cc);
    if (!dc)
        return mig_err_set(errp, -ENODEV, "the display device is gone");
    SpiceMigDisplay m;
    int r = display_blob_decode(cc, blob, len, &m, errp);
    if (r < 0)
        return r;
    const SpiceMigSurfaces *l = m.surfaces_at_client;
    const SpiceMigSurface *ids = l ? l->surfaces.items : NULL;
    if (!dc->early) /* else taken as it came */
        r = display_blob_take_client_part(cc, &m, blob, len, errp);
    if (r == 0)
        r = spice_display_migrate_import_glz(cc, blob, len, errp);
    /* against the surfaces of when it began to draw for the client (what
     * came since went to the client already) */
    SpiceDisplay *d = dc->d;
    for (uint32_t i = 0; r == 0 && l && i < l->surfaces.n; i++)
        if (!prepared(dc, ids[i].id)) {
            SpiceMsgU32 sd = {ids[i].id};
            r = spice_cc_send(cc, SPICE_MSG_DISPLAY_SURFACE_DESTROY, &sd);
        }
    for (size_t i = 0; r == 0 && i < d->nsurfaces; i++)
        if (prepared(dc, d->surfaces[i].id) && !listed(l, d->surfaces[i].id))
            r = send_surface(dc, &d->surfaces[i]);
    spice_marshal_free(&spice_mig_display_desc, &m);
    return r;
}

/* ------------------------------------------------------------------ the GLZ dictionary in the machine's stream */

/* The one dictionary worth sending: seamless migration serves a single
 * client, so a group with one dictionary holding images (NULL otherwise). */
static SpiceGlzDict *glz_to_send(const SpiceDisplay *d)
{
    const SpiceServerConfig *cfg = spice_server_config(d->server);
    const DisplayGroup *g = d->group;
    if (!cfg->glz || !cfg->seamless_migration || g->nglzs != 1)
        return NULL;
    SpiceGlzDict *dict = g->glzs[0].dict;
    return spice_glz_next_id(dict) > 0 && !spice_glz_frozen(dict) ? dict : NULL;
}

static bool glz_state_needed(void *opaque)
{
    return glz_to_send(opaque) != NULL;
}

static int glz_state_save(void *opaque, MigStream *s, MigErr **errp)
{
    SpiceGlzDict *dict = glz_to_send(opaque);
    MigBuf b = {0};
    if (dict)
        spice_glz_state_save(dict, &b);
    mig_stream_put_be32(s, (uint32_t)b.len);
    mig_stream_put_buffer(s, b.data, b.len);
    mig_buf_free(&b);
    int e = mig_stream_error(s);
    return e ? mig_err_set(errp, e, "spice-glz: stream error") : 0;
}

#define GLZ_STATE_MAX (4ull * (1u << 26) + (1u << 20))

static int glz_state_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    SpiceDisplay *d = opaque;
    uint32_t len = mig_stream_get_be32(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    if (mig_stream_error(s))
        return mig_err_set(errp, mig_stream_error(s), "spice-glz: field length: stream error");
    if (len > GLZ_STATE_MAX)
        return mig_err_set(errp, -EINVAL, "spice-glz: field length: %u bytes, at most %llu", len, GLZ_STATE_MAX);
    uint8_t *p = mig_malloc0(len + 1u);
    mig_stream_get_buffer(s, p, len);
    int e = mig_stream_starved(s) ? -EAGAIN : mig_stream_error(s);
    SpiceGlzDict *dict = NULL;
    if (e == 0 && len) {
        dict = spice_glz_state_load(p, len, errp);
        if (!dict)
            e = -EINVAL;
    } else if (e != 0 && e != -EAGAIN) {
        mig_err_set(errp, e, "spice-glz: field dictionary: stream error");
    }
    free(p);
    if (e == 0) {
        spice_glz_dict_free(d->group->incoming);
        d->group->incoming = dict;
    }
    return e;
}

static const MigFullOps glz_state_ops = {.needed = glz_state_needed, .save = glz_state_save, .load = glz_state_load};

int spice_display_register_glz_state(SpiceDisplay *d, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "spice-glz", 0, 1, &glz_state_ops, d, errp);
    return r < 0 ? r : 0;
}
