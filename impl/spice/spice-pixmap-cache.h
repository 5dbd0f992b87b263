/*
 * spice-pixmap-cache.h - the server's record of one client's pixmap cache,
 * shared by every display channel of that client (docs/protocol-spice.md
 * "Pixmap cache shared by several display channels").
 *
 * Owns: SpicePixmapCache: the ids the client holds (least recently used
 * first) with their size in pixels, and per display channel (id 0..3) the
 * serial of the last message of that channel that used each image and the
 * cache as a whole.  It decides, for a message a channel is about to send,
 * whether an image may come FROM_CACHE, what must be evicted to add one,
 * and which WAIT_FOR_CHANNELS entries must go first so that the client,
 * which reads each channel on its own socket, applies cache operations in
 * the order the server made them:
 *   - an eviction waits for the other channels' last use of the evicted
 *     images (they may still be reading a message that references them);
 *   - a FROM_CACHE waits for the message of another channel that added it;
 *   - an add waits for the last INVAL of another channel (the client could
 *     otherwise add first and drop the new copy with the older INVAL).
 * A channel never waits twice for what it already waited for.
 * Freezing (seamless migration, spice-pixmap-cache-mig.c) stops adds and
 * evictions; hits go on only when the caller allows them.
 * Called by: the display channel (spice-display.c) and its migration.
 *
 * Invariants: used <= size; an id appears once; per-channel serials only
 * grow; nothing here sends: the caller sends the waits, the INVAL_LIST and
 * the message, then reports the serials with *_sent.
 */
#ifndef MIGCERT_SPICE_PIXMAP_CACHE_H
#define MIGCERT_SPICE_PIXMAP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/common.h"
#include "spice-messages.h"

/* Display channels (ids 0..3) that can share one cache: the DCMD blob's
 * pixmap_cache_clients[4] (bump rule: a change is a new blob version). */
#define SPICE_PIXMAP_CACHE_CLIENTS 4u

typedef struct SpicePixmapCache SpicePixmapCache;

/* The WAIT_FOR_CHANNELS a channel sends before its next message (n == 0:
 * none), or INVAL_ALL_PIXMAPS's wait list. */
typedef struct SpicePixmapWaits {
    uint32_t n;
    SpiceWaitItem items[SPICE_PIXMAP_CACHE_CLIENTS];
} SpicePixmapWaits;

/* Shared with spice-glz.c: channel `ch` must see channel `other` reach
 * `serial` first, unless it already waited that far (waited[ch][other]);
 * adds or raises the entry in *w. */
void spice__waits_need(uint64_t waited[SPICE_PIXMAP_CACHE_CLIENTS][SPICE_PIXMAP_CACHE_CLIENTS], uint8_t ch,
                       uint8_t other, uint64_t serial, SpicePixmapWaits *w);
/* Little-endian fields of the migration blob (shared with spice-glz.c). */
void spice__put_le(uint8_t *p, uint64_t v, size_t bytes);
uint64_t spice__get_le(const uint8_t *p, size_t bytes);

SpicePixmapCache *spice_pixmap_cache_new(uint8_t cache_id, uint64_t size_pixels);
void spice_pixmap_cache_free(SpicePixmapCache *pc);
uint8_t spice_pixmap_cache_id(const SpicePixmapCache *pc);
uint64_t spice_pixmap_cache_size(const SpicePixmapCache *pc);
uint64_t spice_pixmap_cache_used(const SpicePixmapCache *pc);
size_t spice_pixmap_cache_count(const SpicePixmapCache *pc);
/* The i-th id, least recently used first (for tests and export). */
uint64_t spice_pixmap_cache_id_at(const SpicePixmapCache *pc, size_t i);
bool spice_pixmap_cache_holds(const SpicePixmapCache *pc, uint64_t id);

/* Channel `ch` (< SPICE_PIXMAP_CACHE_CLIENTS) would send image `id`
 * FROM_CACHE: true when the client holds it (it becomes the most recently
 * used; *w gets what `ch` must wait for first). */
bool spice_pixmap_cache_hit(SpicePixmapCache *pc, uint8_t ch, uint64_t id, SpicePixmapWaits *w);
/* Channel `ch` would send image `id` of `pixels` flagged CACHE_ME: false
 * when it cannot be cached (larger than the cache, or frozen).  Otherwise
 * the image is recorded, *evicted gets the ids to name in INVAL_LIST first
 * (*nevicted of them; free it), and *w the waits to send before that. */
bool spice_pixmap_cache_add(SpicePixmapCache *pc, uint8_t ch, uint64_t id, uint64_t pixels, uint64_t **evicted,
                            size_t *nevicted, SpicePixmapWaits *w);
/* The message of `ch` that used `id` (hit or add) went out with `serial`. */
void spice_pixmap_cache_use_sent(SpicePixmapCache *pc, uint8_t ch, uint64_t id, uint64_t serial);
/* An INVAL_LIST or INVAL_ALL_PIXMAPS of `ch` went out with `serial`. */
void spice_pixmap_cache_inval_sent(SpicePixmapCache *pc, uint8_t ch, uint64_t serial);
/* The serial of the last message of `ch` that used the cache (0: none). */
uint64_t spice_pixmap_cache_last_serial(const SpicePixmapCache *pc, uint8_t ch);

/* Freezing: no adds or evictions; `hits` says whether FROM_CACHE goes on. */
void spice_pixmap_cache_freeze(SpicePixmapCache *pc, bool hits);
void spice_pixmap_cache_unfreeze(SpicePixmapCache *pc);
bool spice_pixmap_cache_frozen(const SpicePixmapCache *pc);
/* Forget every image (INVAL_ALL_PIXMAPS from `ch`): *w gets the other
 * channels' last serials, the wait list that message carries; `size`
 * replaces the cache size.  The cache is unfrozen. */
void spice_pixmap_cache_reset(SpicePixmapCache *pc, uint8_t ch, uint64_t size, SpicePixmapWaits *w);

/* ---- seamless migration: the cache part of the display blob ("DCMD",
 * docs/protocol-spice.md "Display migration data").  Offsets are from the
 * start of the blob, header included. */
typedef enum SpicePixmapCacheMig {
    SPICE_PIXMAP_CACHE_MIG_RESET,   /* the target sends INVAL_ALL_PIXMAPS */
    SPICE_PIXMAP_CACHE_MIG_RESTORE, /* the ids, their order and serials travel */
    SPICE_PIXMAP_CACHE_MIG__COUNT
} SpicePixmapCacheMig;
extern const char *const spice_pixmap_cache_mig_names[SPICE_PIXMAP_CACHE_MIG__COUNT];

#define SPICE_DCMD_CACHE_OFFSET 17u  /* u8 pixmap_cache_id: after the header, u64 serial, u8 low_bandwidth */
#define SPICE_DCMD_CACHE_LEN 42u     /* id, i64 size, u8 freezer, u64 clients[4] */
#define SPICE_DCMD_BODY_END 80u      /* header (8) + the display body (72) */
/* The restore list (ours, ignored by other servers: they read the surface
 * list through its pointer) sits at SPICE_DCMD_BODY_END when present:
 * "PXCR" u32 version 1, u32 n, then n × {u64 id; u64 pixels; u8 adder;
 * u64 add_serial; u64 serials[4]}, least recently used first. */
#define SPICE_DCMD_RESTORE_MAGIC 0x52435850u /* "PXCR" */
#define SPICE_DCMD_RESTORE_VERSION 1u
#define SPICE_DCMD_RESTORE_ITEM 57u

/* Write the cache part into blob->data[SPICE_DCMD_CACHE_OFFSET, +42)
 * (blob->len must be at least SPICE_DCMD_BODY_END) and, with RESTORE,
 * append the restore list at blob->len (call it when blob->len is
 * SPICE_DCMD_BODY_END, before the surface list).  `freezer`: written as
 * pixmap_cache_freezer.  -EINVAL when the blob is too short. */
int spice_pixmap_cache_export(const SpicePixmapCache *pc, SpicePixmapCacheMig how, bool freezer, MigBuf *blob,
                              MigErr **errp);

/* What the cache part of a blob says. */
typedef struct SpicePixmapCacheBlob {
    uint8_t cache_id;
    int64_t size;
    bool freezer;
    uint64_t clients[SPICE_PIXMAP_CACHE_CLIENTS];
    bool has_items;      /* a restore list was present */
    size_t nitems;
    const uint8_t *items; /* into the blob: nitems × SPICE_DCMD_RESTORE_ITEM */
} SpicePixmapCacheBlob;
/* Parse the cache part of `blob` (len bytes, header included), every field
 * and the restore list bound-checked.  -EPROTO with a reason naming the
 * field. */
int spice_pixmap_cache_parse(const uint8_t *blob, size_t len, SpicePixmapCacheBlob *out, MigErr **errp);
/* Apply a parsed blob to `pc` (made from b->cache_id and b->size, frozen):
 * the first blob with a restore list fills an empty cache with its images
 * in order; every blob raises the per-channel serials.  -EPROTO when the
 * list repeats an id, overfills the cache or names a channel out of range. */
int spice_pixmap_cache_import(SpicePixmapCache *pc, const SpicePixmapCacheBlob *b, MigErr **errp);

#endif
