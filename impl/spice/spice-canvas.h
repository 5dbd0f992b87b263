/*
 * spice-canvas.h - a 32-bit xRGB surface and the three drawing operations
 * the display channel sends (solid fill, copy of an image, copy of bits
 * inside a surface), done identically by the server (its copy of every
 * surface, what a new client is sent) and by the fake client (what it
 * shows).
 *
 * Owns: SpiceSurface pixel storage.  Every operation checks its rectangle
 * against the surface (and the image) and returns -EINVAL without touching
 * a pixel when it does not fit: on the client that is a protocol error of
 * the server, on the server a bug of the device feeding it.
 * Rectangles are SPICE's: [left, right) × [top, bottom).
 */
#ifndef MIGCERT_SPICE_CANVAS_H
#define MIGCERT_SPICE_CANVAS_H

#include <stdint.h>

#include "../common/common.h"
#include "spice-messages.h"

#define SPICE_CANVAS_MAX_SIDE 8192u

typedef struct SpiceSurface {
    uint32_t id, width, height;
    uint32_t *px; /* width * height, row-major, 0x00RRGGBB */
} SpiceSurface;

/* Allocate a black surface.  -EINVAL for a side of 0 or above the maximum. */
int spice_surface_init(SpiceSurface *s, uint32_t id, uint32_t width, uint32_t height, MigErr **errp);
void spice_surface_fini(SpiceSurface *s);

int spice_canvas_fill(SpiceSurface *s, const SpiceRect *r, uint32_t color, MigErr **errp);
/* Put `src` (w × h pixels, stride in pixels) at r; r must be w × h. */
int spice_canvas_put(SpiceSurface *s, const SpiceRect *r, const uint32_t *src, uint32_t w, uint32_t h,
                     uint32_t stride, MigErr **errp);
/* Copy the r-sized block at (sx, sy) of s to r (overlap allowed). */
int spice_canvas_copy_bits(SpiceSurface *s, const SpiceRect *r, int32_t sx, int32_t sy, MigErr **errp);
/* SHA-256 of the pixels (hex, 65 bytes), for digests and oracles. */
void spice_surface_digest(const SpiceSurface *s, char out[65]);

#endif
