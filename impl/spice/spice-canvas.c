/*
 * spice-canvas.c - surfaces and drawing (spice-canvas.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "spice-canvas.h"

int spice_surface_init(SpiceSurface *s, uint32_t id, uint32_t width, uint32_t height, MigErr **errp)
{
    memset(s, 0, sizeof(*s));
    if (!width || !height || width > SPICE_CANVAS_MAX_SIDE || height > SPICE_CANVAS_MAX_SIDE)
        return mig_err_set(errp, -EINVAL, "surface %u of %ux%u (sides 1 to %u)", id, width, height,
                           SPICE_CANVAS_MAX_SIDE);
    s->id = id;
    s->width = width;
    s->height = height;
    s->px = mig_malloc0((size_t)width * height * sizeof(uint32_t));
    return 0;
}

void spice_surface_fini(SpiceSurface *s)
{
    free(s->px);
    s->px = NULL;
}

static int check_rect(const SpiceSurface *s, const SpiceRect *r, MigErr **errp)
{
    if (r->left < 0 || r->top < 0 || r->left >= r->right || r->top >= r->bottom ||
        (uint32_t)r->right > s->width || (uint32_t)r->bottom > s->height)
        return mig_err_set(errp, -EINVAL, "rectangle (%d,%d)-(%d,%d) outside surface %u of %ux%u", r->left,
                           r->top, r->right, r->bottom, s->id, s->width, s->height);
    return 0;
}

int spice_canvas_fill(SpiceSurface *s, const SpiceRect *r, uint32_t color, MigErr **errp)
{
    int e = check_rect(s, r, errp);
    if (e < 0)
        return e;
    /* the first row pixel by pixel, the others copies of it: one bounds
     * check a row under the sanitizers and valgrind, not one a pixel */
    size_t w = (size_t)(r->right - r->left);
    uint32_t *first = s->px + (size_t)r->top * s->width + r->left;
    for (size_t x = 0; x < w; x++)
        first[x] = color & 0xffffffu;
    for (int32_t y = r->top + 1; y < r->bottom; y++)
        memcpy(s->px + (size_t)y * s->width + r->left, first, w * sizeof(*first));
    return 0;
}

int spice_canvas_put(SpiceSurface *s, const SpiceRect *r, const uint32_t *src, uint32_t w, uint32_t h,
                     uint32_t stride, MigErr **errp)
{
    int e = check_rect(s, r, errp);
    if (e < 0)
        return e;
    if ((uint32_t)(r->right - r->left) != w || (uint32_t)(r->bottom - r->top) != h || stride < w)
        return mig_err_set(errp, -EINVAL, "an image of %ux%u (stride %u) put into a %dx%d rectangle", w, h, stride,
                           r->right - r->left, r->bottom - r->top);
    for (uint32_t y = 0; y < h; y++) {
        uint32_t *row = s->px + (size_t)(r->top + (int32_t)y) * s->width + r->left;
        const uint32_t *in = src + (size_t)y * stride;
        for (uint32_t x = 0; x < w; x++)
            row[x] = in[x] & 0xffffffu;
    }
    return 0;
}

int spice_canvas_copy_bits(SpiceSurface *s, const SpiceRect *r, int32_t sx, int32_t sy, MigErr **errp)
{
    int e = check_rect(s, r, errp);
    if (e < 0)
        return e;
    SpiceRect src = {.top = sy, .left = sx, .bottom = sy + (r->bottom - r->top), .right = sx + (r->right - r->left)};
    if (sx < 0 || sy < 0 || check_rect(s, &src, NULL) < 0)
        return mig_err_set(errp, -EINVAL, "copy-bits source (%d,%d) of %dx%d outside surface %u of %ux%u", sx, sy,
                           r->right - r->left, r->bottom - r->top, s->id, s->width, s->height);
    size_t w = (size_t)(r->right - r->left);
    int32_t h = r->bottom - r->top;
    /* rows in the order that keeps an overlapping source intact */
    bool down = sy < r->top;
    for (int32_t k = 0; k < h; k++) {
        int32_t i = down ? h - 1 - k : k;
        memmove(s->px + (size_t)(r->top + i) * s->width + r->left, s->px + (size_t)(sy + i) * s->width + sx,
                w * sizeof(uint32_t));
    }
    return 0;
}

void spice_surface_digest(const SpiceSurface *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s->px, (size_t)s->width * s->height * sizeof(uint32_t), md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
