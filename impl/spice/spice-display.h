/*
 * spice-display.h - a display channel of the SPICE server and the drawing
 * interface a display device (fakes/devices/fake-qxl) feeds it through
 * (docs/protocol-spice.md "Display channel").
 *
 * Owns: SpiceDisplay, the channel's shared state: its surfaces, kept drawn
 * by the server (spice-canvas.c) so that a client that links later gets
 * every surface whole; and, per channel client, what the client announced
 * in DISPLAY_INIT (pixmap cache and GLZ window sizes).  The server's
 * record of a client's pixmap cache (spice-pixmap-cache.h) is shared by
 * every display channel of that server the client links (one per
 * (client, cache id), as the client keeps one cache for all its display
 * channels), and freed with the last of them: an image is sent FROM_CACHE
 * only while the client holds it, evicted ones are named in INVAL_LIST
 * before the message that needs their room, WAIT_FOR_CHANNELS goes first
 * when another display channel may still use what changes, and the cache
 * never holds more pixels than the client allows.  Display ids 0..3 share
 * the cache; a higher id sends every image uncached.
 *
 * Messages per client: SET_ACK at link; after DISPLAY_INIT,
 * INVAL_ALL_PALETTES, SURFACE_CREATE and a DRAW_COPY of each surface
 * (primary first), MARK; then each drawing operation as it happens.  Images
 * are raw 32-bit BITMAPs (what spice-server sends over unix sockets).
 * Called by: the display device (drawing), the machine (assembly), tests.
 */
#ifndef MIGCERT_SPICE_DISPLAY_H
#define MIGCERT_SPICE_DISPLAY_H

#include <stdint.h>

#include "../common/buf.h"
#include "spice-canvas.h"
#include "spice-server.h"

typedef struct SpiceDisplay SpiceDisplay;

/* Offer DISPLAY:id on `s`; free with spice_display_free, before or after
 * the server. */
SpiceDisplay *spice_display_add(SpiceServer *s, uint8_t id);
void spice_display_free(SpiceDisplay *d);

/* Surfaces: id 0 is the primary. */
int spice_display_surface_create(SpiceDisplay *d, uint32_t id, uint32_t width, uint32_t height, MigErr **errp);
int spice_display_surface_destroy(SpiceDisplay *d, uint32_t id, MigErr **errp);
const SpiceSurface *spice_display_surface(const SpiceDisplay *d, uint32_t id);

/* Drawing on surface `id`, applied to the server's copy and sent to every
 * client that finished its DISPLAY_INIT. */
int spice_display_fill(SpiceDisplay *d, uint32_t id, const SpiceRect *r, uint32_t color, MigErr **errp);
/* An image of w × h pixels with the device's stable id (the same id must
 * always mean the same pixels: it is the pixmap cache key), put at r. */
int spice_display_copy(SpiceDisplay *d, uint32_t id, const SpiceRect *r, uint64_t image_id, const uint32_t *px,
                       uint32_t w, uint32_t h, MigErr **errp);
/* The whole of surface `id` replaced by `px` (width × height of the
 * surface), sent as an image that is never cached: what a device restored
 * by a migration shows. */
int spice_display_restore(SpiceDisplay *d, uint32_t id, const uint32_t *px, MigErr **errp);
int spice_display_copy_bits(SpiceDisplay *d, uint32_t id, const SpiceRect *r, int32_t sx, int32_t sy,
                            MigErr **errp);

/* ---- seamless migration of the client's pixmap cache (the cache part of
 * the display channel's DCMD blob, spice-pixmap-cache.h), by the server's
 * pixmap_cache_migration strategy.  Called by the seamless flow. */

/* Source, display channel client `cc` at its migration step: write the
 * cache part into `blob` (blob->len >= SPICE_DCMD_BODY_END; with restore,
 * the restore list is appended at blob->len).  The first display channel
 * of the client to migrate freezes the cache and is the freezer; with
 * reset the frozen cache is used no more, with restore FROM_CACHE goes on
 * (those uses travel in the later channels' blobs).  -EINVAL when the
 * client sent no DISPLAY_INIT. */
int spice_display_migrate_export_cache(SpiceChannelClient *cc, MigBuf *blob, MigErr **errp);
/* Target, display channel client `cc` of a client that migrated in: take
 * the cache part of its blob (len bytes, header included).  The cache
 * (made with the blob's id and size when new) starts frozen.  reset: the
 * freezer's blob empties it and sends INVAL_ALL_PIXMAPS waiting for the
 * other channels' last serials, and it thaws.  restore: the ids, their order
 * and serials are restored; it thaws once every display channel the client
 * has linked delivered its blob, and no image it holds is sent again.
 * -EPROTO (the caller disconnects the client) on a malformed part. */
int spice_display_migrate_import_cache(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp);
/* Source, after a failed or cancelled migration: the cache thaws. */
void spice_display_migrate_cancel_cache(SpiceChannelClient *cc);
/* The GLZ part of the blob (spice-glz.h): the source writes the client's
 * dictionary window and last image id and stops using GLZ for it; the
 * target's dictionary continues those ids, so the client's window stays
 * valid with no reset.  Without a dictionary the part says window 0. */
int spice_display_migrate_export_glz(SpiceChannelClient *cc, MigBuf *blob, MigErr **errp);
int spice_display_migrate_import_glz(SpiceChannelClient *cc, const uint8_t *blob, size_t len, MigErr **errp);

/* Counters for tests and the report. */
typedef struct SpiceDisplayStats {
    uint64_t draws_sent;      /* drawing messages to all clients */
    uint64_t images_sent;     /* BITMAP images */
    uint64_t cache_hits;      /* FROM_CACHE images */
    uint64_t cache_evictions; /* ids named in INVAL_LIST */
    uint64_t waits_sent;      /* WAIT_FOR_CHANNELS messages */
    uint64_t glz_images;      /* images sent as GLZ_RGB (counted in images_sent too) */
    uint64_t glz_bytes, glz_raw_bytes; /* their LZ_RGBData bytes, and 4 bytes a pixel */
    uint64_t glz_inherited_refs; /* seamless target: references to images the source sent */
} SpiceDisplayStats;
void spice_display_stats(const SpiceDisplay *d, SpiceDisplayStats *out);

/* The GLZ dictionary's images in the machine's migration stream (section
 * "spice-glz", spice-glz.h "the machine's migration stream"): sent when the
 * server has seamless migration and GLZ and one client's dictionary holds
 * images; the target keeps it until that client's display blob names it.
 * Registered for the display that owns the group's first head. */
struct MigSavevm;
int spice_display_register_glz_state(SpiceDisplay *d, struct MigSavevm *sv, MigErr **errp);

#endif
