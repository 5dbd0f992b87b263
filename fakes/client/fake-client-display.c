/*
 * fake-client-display.c - the fake client's display channels: surfaces
 * drawn with the server's canvas code, and one pixmap cache shared by every
 * display channel of the client (as spice-gtk's), holding what the server
 * flagged CACHE_ME within the size the client announced.  WAIT_FOR_CHANNELS
 * (and INVAL_ALL_PIXMAPS's wait list) hold a channel's next message until
 * the listed channels have processed the listed serials, so cache
 * operations made on different sockets apply in the server's order.
 *
 * What the server does wrong is an error that closes the channel and stays
 * in the client's last error (the display oracle reads it): an image taken
 * FROM_CACHE that the client does not hold, a cache the server fills past
 * the announced size, drawing on a surface that does not exist or outside
 * it, an image whose bitmap does not match its size.
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client-glz.h"
#include "client/fake-client-internal.h"
#include "spice/spice-canvas.h"

/* spice-gtk 0.42's DISPLAY_INIT: an 80 MiB pixmap cache, in pixels, and a
 * GLZ window of 3 Mi pixels (observed). */
#define GTK_PIXMAP_CACHE_PIXELS (80ll * 1024 * 1024 / 4)
#define GTK_GLZ_WINDOW_PIXELS (3 * 1024 * 1024)

typedef struct CachedImage {
    uint64_t id;
    uint32_t w, h;
    uint32_t *px;
} CachedImage;

struct FakeDisplay {
    SpiceSurface *surfaces;
    size_t nsurfaces;
    uint64_t marks;
};

struct FakePixmapCache {
    CachedImage *cache;
    size_t ncache;
    uint64_t cache_cap, cache_used;
};

static SpiceSurface *find_surface(FakeDisplay *d, uint32_t id)
{
    for (size_t i = 0; i < d->nsurfaces; i++)
        if (d->surfaces[i].id == id)
            return &d->surfaces[i];
    return NULL;
}

static ssize_t find_cached(const FakePixmapCache *d, uint64_t id)
{
    for (size_t i = 0; i < d->ncache; i++)
        if (d->cache[i].id == id)
            return (ssize_t)i;
    return -1;
}

static void drop_cached(FakePixmapCache *d, size_t i)
{
    d->cache_used -= (uint64_t)d->cache[i].w * d->cache[i].h;
    free(d->cache[i].px);
    memmove(d->cache + i, d->cache + i + 1, (d->ncache - i - 1) * sizeof(*d->cache));
    d->ncache--;
}

static void clear_cache(FakePixmapCache *d)
{
    while (d && d->ncache)
        drop_cached(d, d->ncache - 1);
}

void fake__pixmap_cache_clear(FakeClient *c)
{
    clear_cache(c->pcache);
    if (c->glz)
        fake_glz_window_clear(c->glz); /* a new session's dictionary starts again */
}

void fake__pixmap_cache_free(FakeClient *c)
{
    fake_glz_window_free(c->glz);
    c->glz = NULL;
    if (!c->pcache)
        return;
    clear_cache(c->pcache);
    free(c->pcache->cache);
    free(c->pcache);
    c->pcache = NULL;
}

void fake__display_start(FakeChannel *ch)
{
    ch->display = mig_malloc0(sizeof(*ch->display));
    int64_t cap = ch->client->cfg.pixmap_cache_pixels ? ch->client->cfg.pixmap_cache_pixels
                                                      : GTK_PIXMAP_CACHE_PIXELS;
    if (!ch->client->pcache) {
        ch->client->pcache = mig_malloc0(sizeof(*ch->client->pcache));
        ch->client->pcache->cache_cap = (uint64_t)cap;
    }
    SpiceMsgDisplayInit di = {.pixmap_cache_id = 1, .pixmap_cache_size = cap,
                              .glz_dictionary_id = 1, .glz_dictionary_window_size = GTK_GLZ_WINDOW_PIXELS};
    fake__chan_send(ch, SPICE_MSGC_DISPLAY_INIT, &di);
}

void fake__display_free(FakeChannel *ch)
{
    FakeDisplay *d = ch->display;
    if (!d)
        return;
    for (size_t i = 0; i < d->nsurfaces; i++)
        spice_surface_fini(&d->surfaces[i]);
    free(d->surfaces);
    free(d);
    ch->display = NULL;
}

/* ------------------------------------------------------------------ waits */

static bool waits_done(const FakeChannel *ch)
{
    const FakeClient *c = ch->client;
    for (uint32_t i = 0; i < ch->nwaits; i++)
        for (size_t k = 0; k < c->nchans; k++) {
            const FakeChannel *o = c->chans[k];
            /* a channel that is not linked (any more) has nothing to wait for */
            if (o != ch && o->type == ch->waits[i].channel_type && o->id == ch->waits[i].channel_id && o->conn &&
                spice_conn_is_open(o->conn) && spice_conn_last_received_serial(o->conn) < ch->waits[i].serial)
                return false;
        }
    return true;
}

static void wait_over(FakeChannel *ch)
{
    if (ch->clear_after_wait)
        clear_cache(ch->client->pcache);
    ch->clear_after_wait = false;
    ch->nwaits = 0;
    if (ch->conn && spice_conn_paused(ch->conn))
        spice_conn_resume(ch->conn);
}

void fake__wait_start(FakeChannel *ch, const SpiceMsgWaitList *m, bool clear)
{
    ch->nwaits = 0;
    for (uint32_t i = 0; i < m->items.n && i < MIG_ARRAY_SIZE(ch->waits); i++)
        ch->waits[ch->nwaits++] = ((const SpiceWaitItem *)m->items.items)[i];
    ch->clear_after_wait = clear;
    if (waits_done(ch)) {
        wait_over(ch);
        return;
    }
    ch->client->waits_held++;
    spice_conn_pause(ch->conn);
}

void fake__wait_check(FakeClient *c)
{
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        if ((ch->nwaits || ch->clear_after_wait) && ch->conn && spice_conn_paused(ch->conn) && waits_done(ch))
            wait_over(ch);
    }
}

/* The pixels of a DRAW_COPY's image: from the cache, or its bitmap (then
 * cached when flagged).  *px points into the cache or into *owned. */
static int image_pixels(FakeClient *c, FakePixmapCache *d, const SpiceImage *img, const uint32_t **px,
                        uint32_t **owned, MigErr **errp)
{
    *owned = NULL;
    if (img->type == SPICE_IMAGE_TYPE_FROM_CACHE) {
        ssize_t i = find_cached(d, img->id);
        if (i < 0)
            return mig_err_set(errp, -EPROTO, "FROM_CACHE of image 0x%llx, which the client does not hold",
                               (unsigned long long)img->id);
        CachedImage *ci = &d->cache[i];
        if (ci->w != img->width || ci->h != img->height)
            return mig_err_set(errp, -EPROTO, "FROM_CACHE of image 0x%llx as %ux%u; it was cached as %ux%u",
                               (unsigned long long)img->id, img->width, img->height, ci->w, ci->h);
        *px = ci->px;
        return 0;
    }
    uint32_t *copy;
    if (img->type == SPICE_IMAGE_TYPE_GLZ_RGB) {
        if (!c->glz)
            c->glz = fake_glz_window_new();
        int r = fake_glz_decode(c->glz, img->payload.data, img->payload.len, img->width, img->height, &copy, errp);
        if (r < 0)
            return r;
        goto decoded;
    }
    if (img->type != SPICE_IMAGE_TYPE_BITMAP)
        return mig_err_set(errp, -EPROTO, "image type %u (this client decodes BITMAP, GLZ_RGB and FROM_CACHE)",
                           img->type);
    SpiceBitmapBody bm;
    int r = spice_marshal_decode(&spice_bitmap_desc, img->payload.data, img->payload.len, &bm, errp);
    if (r < 0)
        return r;
    if (bm.format != SPICE_BITMAP_FMT_32BIT || bm.x != img->width || bm.y != img->height ||
        bm.stride != 4 * bm.x || (uint64_t)bm.data.len != (uint64_t)bm.stride * bm.y || bm.palette) {
        r = mig_err_set(errp, -EPROTO, "bitmap of image 0x%llx: format %u, %ux%u, stride %u, %u bytes for a "
                        "%ux%u image", (unsigned long long)img->id, bm.format, bm.x, bm.y, bm.stride, bm.data.len,
                        img->width, img->height);
        spice_marshal_free(&spice_bitmap_desc, &bm);
        return r;
    }
    copy = mig_realloc(NULL, (size_t)bm.data.len ? bm.data.len : 4);
    memcpy(copy, bm.data.data, bm.data.len);
    spice_marshal_free(&spice_bitmap_desc, &bm);
decoded:
    *px = copy;
    *owned = copy;
    if (img->flags & SPICE_IMAGE_FLAGS_CACHE_ME) {
        uint64_t pixels = (uint64_t)img->width * img->height;
        if (find_cached(d, img->id) >= 0)
            return mig_err_set(errp, -EPROTO, "CACHE_ME of image 0x%llx, which the cache already holds",
                               (unsigned long long)img->id);
        if (d->cache_used + pixels > d->cache_cap)
            return mig_err_set(errp, -EPROTO, "CACHE_ME of image 0x%llx (%llu pixels) overfills the %llu-pixel "
                               "cache (%llu used)", (unsigned long long)img->id, (unsigned long long)pixels,
                               (unsigned long long)d->cache_cap, (unsigned long long)d->cache_used);
        d->cache = mig_realloc(d->cache, (d->ncache + 1) * sizeof(*d->cache));
        d->cache[d->ncache++] = (CachedImage){.id = img->id, .w = img->width, .h = img->height, .px = copy};
        d->cache_used += pixels;
        *owned = NULL; /* the cache keeps it */
    }
    return 0;
}

static int draw_copy(FakeClient *c, FakeDisplay *d, FakePixmapCache *pc, const SpiceMsgDrawCopy *m,
                     MigErr **errp)
{
    SpiceSurface *s = find_surface(d, m->base.surface_id);
    if (!s)
        return mig_err_set(errp, -EPROTO, "DRAW_COPY on surface %u, which does not exist", m->base.surface_id);
    if (!m->src_bitmap)
        return mig_err_set(errp, -EPROTO, "DRAW_COPY without an image");
    const SpiceImage *img = m->src_bitmap;
    const SpiceRect *a = &m->src_area;
    if (a->top != 0 || a->left != 0 || a->bottom != (int32_t)img->height || a->right != (int32_t)img->width)
        return mig_err_set(errp, -EPROTO, "DRAW_COPY of a part (%d,%d)-(%d,%d) of a %ux%u image (only whole "
                           "images are sent here)", a->left, a->top, a->right, a->bottom, img->width, img->height);
    const uint32_t *px = NULL;
    uint32_t *owned = NULL;
    int r = image_pixels(c, pc, img, &px, &owned, errp);
    if (r == 0)
        r = spice_canvas_put(s, &m->base.box, px, img->width, img->height, img->width, errp);
    free(owned);
    return r;
}

/* Count a drawing message (the throughput figure of `make bench`). */
static void count_draw(FakeClient *c)
{
    uint64_t now = c->events[c->nevents - 1].t_ns; /* the message's recorded time */
    if (c->draws.count++ == 0)
        c->draws.first_ns = now;
    if (c->draw_gap_pending) { /* the target's first drawing after a switch */
        c->draw_gap_pending = false;
        c->have_draw_gap = true;
        c->draw_gap_ns = now - c->mig_end_ns;
    }
    c->draws.last_ns = now;
}

int fake__display_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    FakeDisplay *d = ch->display;
    if (mi->id == SPICE_MSG_DISPLAY_DRAW_FILL || mi->id == SPICE_MSG_DISPLAY_DRAW_COPY ||
        mi->id == SPICE_MSG_DISPLAY_COPY_BITS)
        count_draw(ch->client);
    switch (mi->id) {
    case SPICE_MSG_DISPLAY_SURFACE_CREATE: {
        SpiceMsgSurfaceCreate *m = body;
        if (find_surface(d, m->surface_id))
            return mig_err_set(errp, -EPROTO, "SURFACE_CREATE of surface %u, which exists", m->surface_id);
        if (m->format != SPICE_SURFACE_FMT_32_xRGB)
            return mig_err_set(errp, -EPROTO, "SURFACE_CREATE with format %u (this client takes 32_xRGB)",
                               m->format);
        SpiceSurface s;
        int r = spice_surface_init(&s, m->surface_id, m->width, m->height, errp);
        if (r < 0)
            return r;
        d->surfaces = mig_realloc(d->surfaces, (d->nsurfaces + 1) * sizeof(*d->surfaces));
        d->surfaces[d->nsurfaces++] = s;
        return 0;
    }
    case SPICE_MSG_DISPLAY_SURFACE_DESTROY: {
        SpiceSurface *s = find_surface(d, ((SpiceMsgU32 *)body)->v);
        if (!s)
            return mig_err_set(errp, -EPROTO, "SURFACE_DESTROY of surface %u, which does not exist",
                               ((SpiceMsgU32 *)body)->v);
        spice_surface_fini(s);
        size_t i = (size_t)(s - d->surfaces);
        memmove(d->surfaces + i, d->surfaces + i + 1, (d->nsurfaces - i - 1) * sizeof(*d->surfaces));
        d->nsurfaces--;
        return 0;
    }
    case SPICE_MSG_DISPLAY_DRAW_FILL: {
        SpiceMsgDrawFill *m = body;
        SpiceSurface *s = find_surface(d, m->base.surface_id);
        if (!s)
            return mig_err_set(errp, -EPROTO, "DRAW_FILL on surface %u, which does not exist", m->base.surface_id);
        if (m->brush_type != SPICE_BRUSH_TYPE_SOLID)
            return mig_err_set(errp, -EPROTO, "DRAW_FILL with brush type %u (SOLID expected)", m->brush_type);
        return spice_canvas_fill(s, &m->base.box, m->color, errp);
    }
    case SPICE_MSG_DISPLAY_DRAW_COPY:
        return draw_copy(ch->client, d, ch->client->pcache, body, errp);
    case SPICE_MSG_DISPLAY_COPY_BITS: {
        SpiceMsgCopyBits *m = body;
        SpiceSurface *s = find_surface(d, m->base.surface_id);
        if (!s)
            return mig_err_set(errp, -EPROTO, "COPY_BITS on surface %u, which does not exist", m->base.surface_id);
        return spice_canvas_copy_bits(s, &m->base.box, m->src_pos.x, m->src_pos.y, errp);
    }
    case SPICE_MSG_DISPLAY_INVAL_LIST: {
        SpiceMsgInvalList *m = body;
        FakePixmapCache *pc = ch->client->pcache;
        const SpiceResourceRef *refs = m->resources.items;
        for (uint32_t i = 0; i < m->resources.n; i++) {
            ssize_t k = find_cached(pc, refs[i].id);
            if (refs[i].type != SPICE_RES_TYPE_PIXMAP || k < 0)
                return mig_err_set(errp, -EPROTO, "INVAL_LIST names %s 0x%llx, which the client does not hold",
                                   refs[i].type == SPICE_RES_TYPE_PIXMAP ? "image" : "a resource",
                                   (unsigned long long)refs[i].id);
            drop_cached(pc, (size_t)k);
        }
        return 0;
    }
    case SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS:
        /* after the listed channels reached their serials (fake__wait_check) */
        fake__wait_start(ch, body, true);
        return 0;
    case SPICE_MSG_DISPLAY_MARK:
        d->marks++;
        return 0;
    default:
        return 0; /* INVAL_ALL_PALETTES, RESET, WAIT_FOR_CHANNELS …: nothing to keep */
    }
}

const SpiceSurface *fake_client_surface(const FakeClient *c, uint8_t display_id, uint32_t surface_id)
{
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        if (ch->type == SPICE_CHANNEL_DISPLAY && ch->id == display_id && ch->display)
            return find_surface(ch->display, surface_id);
    }
    return NULL;
}

uint64_t fake_client_display_marks(const FakeClient *c, uint8_t display_id)
{
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        if (ch->type == SPICE_CHANNEL_DISPLAY && ch->id == display_id && ch->display)
            return ch->display->marks;
    }
    return 0;
}
