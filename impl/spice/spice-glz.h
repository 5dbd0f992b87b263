/*
 * spice-glz.h - the GLZ image encoder of the display channel and its global
 * dictionary (docs/protocol-spice.md "GLZ images").
 *
 * Owns: SpiceGlzDict, one per (client, glz dictionary id), shared by every
 * display channel of that client, as spice-server's: the images encoded
 * last (their pixels, up to the window the client announced in
 * DISPLAY_INIT), and a table of where each run of three pixels was last
 * seen, in the image being encoded or in an earlier one.  An image is
 * encoded as spice-gtk 0.42's decoder reads it: a header (big-endian
 * magic "  ZL", version 1.1, type RGB32 top-down, size, the image's
 * dictionary id, and how far back the oldest image it may use lies), then
 * literal runs of up to 32 pixels (b, g, r) and references to pixels
 * earlier in the same image or in an earlier image of the dictionary.
 * Image ids count from 0 for a new dictionary; after a seamless migration
 * they continue from the source's last id, so the client's window stays
 * valid (spice_glz_export / spice_glz_import).
 * Called by: the display channel (spice-display.c), the benchmark.
 *
 * Invariants: a reference never names an image outside the dictionary or
 * pixels outside that image; every image's win_head_dist reaches back to
 * the oldest image the dictionary still holds (the client may drop older
 * ones); encoding reads no clock and no pointer order: the same images
 * give the same bytes.
 */
#ifndef MIGCERT_SPICE_GLZ_H
#define MIGCERT_SPICE_GLZ_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/common.h"
#include "spice-pixmap-cache.h"

/* The GLZ stream's constants (spice-gtk's lz_common.h values). */
#define SPICE_GLZ_MAGIC 0x20205a4cu   /* "LZ  " read as a little-endian u32, sent big-endian */
#define SPICE_GLZ_VERSION 0x00010001u /* 1.1 */
#define SPICE_GLZ_TYPE_RGB32 8u
#define SPICE_GLZ_TOP_DOWN 0x10u       /* the type byte's bit 4 */
#define SPICE_GLZ_HEADER 33u           /* magic, version, type, width, height, stride, id, win_head_dist */
#define SPICE_GLZ_MAX_PIXEL_OFS (1u << 25)

typedef struct SpiceGlzDict SpiceGlzDict;

/* A dictionary of `window_pixels` (DISPLAY_INIT's glz_dictionary_window_size). */
SpiceGlzDict *spice_glz_dict_new(uint8_t dict_id, uint32_t window_pixels);
void spice_glz_dict_free(SpiceGlzDict *d);
uint8_t spice_glz_dict_id(const SpiceGlzDict *d);
uint32_t spice_glz_dict_window(const SpiceGlzDict *d);
/* The id the next image gets. */
uint64_t spice_glz_next_id(const SpiceGlzDict *d);

/* Encode w × h pixels (0x00RRGGBB, row-major, top-down) for display channel
 * `ch` and append the LZ_RGBData of a GLZ_RGB image (u32 data_size, then
 * the stream) to `out`.  *w gets the WAIT_FOR_CHANNELS entries to send
 * before the message: the messages of other channels that carried images
 * this one refers to.  -EINVAL for an image larger than the window or
 * SPICE_GLZ_MAX_PIXEL_OFS, -EBUSY when the dictionary is frozen. */
int spice_glz_encode(SpiceGlzDict *d, uint8_t ch, const uint32_t *px, uint32_t w, uint32_t h, MigBuf *out,
                     SpicePixmapWaits *waits, uint64_t *image_id);
/* The message of `ch` carrying image `image_id` went out with `serial`. */
void spice_glz_sent(SpiceGlzDict *d, uint8_t ch, uint64_t image_id, uint64_t serial);

/* Seamless migration: the GLZ part of the display blob (DCMD body offset
 * 51: u8 glz_dict_id; u32 size; u32 max_encoders; u64 last_image_id). */
#define SPICE_DCMD_GLZ_OFFSET 59u /* blob offset, header included */
#define SPICE_DCMD_GLZ_LEN 17u
/* Write the part (blob->len >= SPICE_DCMD_BODY_END) and freeze the
 * dictionary: no channel of this server encodes with it again. */
int spice_glz_export(SpiceGlzDict *d, MigBuf *blob, MigErr **errp);
bool spice_glz_frozen(const SpiceGlzDict *d);
/* What the part says. */
typedef struct SpiceGlzBlob {
    uint8_t dict_id;
    uint32_t window;
    uint64_t last_image_id; /* UINT64_MAX: no image yet */
} SpiceGlzBlob;
int spice_glz_parse(const uint8_t *blob, size_t len, SpiceGlzBlob *out, MigErr **errp);
/* A dictionary that continues the source's ids with its window (empty: the
 * client drops what it no longer needs as new images arrive). */
SpiceGlzDict *spice_glz_dict_import(const SpiceGlzBlob *b);

/* The machine's migration stream (source to target, not through the
 * client): the dictionary's images, so that the target's images may refer
 * to images the source sent.  Big-endian: u8 dict_id, u32 window, u64
 * next_id, u32 count, then per image u64 id, u32 pixels, the pixels (u32
 * 0x00RRGGBB each); ids contiguous, ending at next_id - 1.  A loaded
 * dictionary continues those ids; it serves a client only when the display
 * blob names the same dictionary, window and last image id
 * (spice_glz_state_matches), i.e. the client holds exactly these images. */
void spice_glz_state_save(const SpiceGlzDict *d, MigBuf *out);
SpiceGlzDict *spice_glz_state_load(const uint8_t *p, size_t len, MigErr **errp);
bool spice_glz_state_matches(const SpiceGlzDict *d, const SpiceGlzBlob *b);
/* References encoded to images the source sent (a loaded dictionary). */
uint64_t spice_glz_inherited_refs(const SpiceGlzDict *d);

#endif
