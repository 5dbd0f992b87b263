/*
 * fake-client-glz.c - the fake client's GLZ decoder and its window of
 * decoded images (docs/protocol-spice.md "GLZ images"), shared by every
 * display channel of the client, as spice-gtk's.
 *
 * Follows the dictionary as spice-gtk 0.42 does: images join the window by
 * id; once the ids up to an image are all present, the images older than
 * that image's win_head_dist are dropped.  Every byte is bound-checked:
 * a header that is not RGB32 GLZ 1.1 or does not match the image's size, a
 * run past the end of the image or the stream, a reference before the
 * image's start, to an image the window does not hold (the server must
 * have ordered it before with WAIT_FOR_CHANNELS) or past that image's end
 * is an error naming the image and what was wrong.
 * Called by: fake-client-display.c, the fuzz target, tests.
 */
#include <stdlib.h>
#include <string.h>

#include "client/fake-client-glz.h"
#include "spice/spice-glz.h"

typedef struct WinImage {
    uint64_t id;
    uint32_t win_head_dist;
    uint32_t n;
    uint32_t *px;
} WinImage;

struct FakeGlzWindow {
    WinImage *images; /* by id, ascending */
    size_t n, cap;
    uint64_t tail;    /* the lowest id not yet held, past the oldest */
    bool have_tail;
    uint64_t decoded;
};

FakeGlzWindow *fake_glz_window_new(void)
{
    return mig_malloc0(sizeof(FakeGlzWindow));
}

void fake_glz_window_clear(FakeGlzWindow *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->images[i].px);
    w->n = 0;
    w->have_tail = false;
}

void fake_glz_window_free(FakeGlzWindow *w)
{
    if (!w)
        return;
    fake_glz_window_clear(w);
    free(w->images);
    free(w);
}

size_t fake_glz_window_count(const FakeGlzWindow *w)
{
    return w->n;
}

uint64_t fake_glz_window_decoded(const FakeGlzWindow *w)
{
    return w->decoded;
}

static WinImage *find(FakeGlzWindow *w, uint64_t id)
{
    for (size_t i = w->n; i-- > 0;)
        if (w->images[i].id == id)
            return &w->images[i];
    return NULL;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Add an image and drop what the newest contiguous image no longer needs. */
static void window_add(FakeGlzWindow *w, WinImage img)
{
    size_t at = w->n;
    while (at > 0 && w->images[at - 1].id > img.id)
        at--;
    MIG_GROW(w->images, w->cap, w->n + 1, 16);
    memmove(w->images + at + 1, w->images + at, (w->n - at) * sizeof(*w->images));
    w->images[at] = img;
    w->n++;
    if (!w->have_tail) {
        w->tail = w->images[0].id;
        w->have_tail = true;
    }
    while (find(w, w->tail))
        w->tail++;
    const WinImage *last = find(w, w->tail - 1);
    uint64_t keep = last->id - last->win_head_dist;
    size_t drop = 0;
    while (drop < w->n && w->images[drop].id < keep)
        free(w->images[drop++].px);
    memmove(w->images, w->images + drop, (w->n - drop) * sizeof(*w->images));
    w->n -= drop;
}

int fake_glz_decode(FakeGlzWindow *w, const uint8_t *payload, size_t len, uint32_t width, uint32_t height,
                    uint32_t **out, MigErr **errp)
{
    *out = NULL;
    if (len < 4 || len - 4 < (size_t)(payload[0] | payload[1] << 8 | payload[2] << 16 | (uint32_t)payload[3] << 24))
        return mig_err_set(errp, -EPROTO, "GLZ image: data_size larger than the %zu bytes of the image", len);
    size_t size = payload[0] | payload[1] << 8 | payload[2] << 16 | (size_t)payload[3] << 24;
    const uint8_t *ip = payload + 4, *end = ip + size;
    if (size < SPICE_GLZ_HEADER)
        return mig_err_set(errp, -EPROTO, "GLZ image: %zu bytes, shorter than its header", size);
    uint32_t magic = be32(ip), version = be32(ip + 4), type = ip[8], iw = be32(ip + 9), ih = be32(ip + 13);
    uint64_t id = (uint64_t)be32(ip + 21) << 32 | be32(ip + 25);
    uint32_t head_dist = be32(ip + 29);
    if (magic != SPICE_GLZ_MAGIC || version != SPICE_GLZ_VERSION)
        return mig_err_set(errp, -EPROTO, "GLZ image: magic 0x%08x version 0x%08x (expected 0x%08x, 0x%08x)", magic,
                           version, SPICE_GLZ_MAGIC, SPICE_GLZ_VERSION);
    if (type != (SPICE_GLZ_TYPE_RGB32 | SPICE_GLZ_TOP_DOWN))
        return mig_err_set(errp, -EPROTO, "GLZ image %llu: type byte 0x%02x (this client decodes top-down RGB32)",
                           (unsigned long long)id, type);
    if (iw != width || ih != height || (uint64_t)iw * ih >= SPICE_GLZ_MAX_PIXEL_OFS || !iw || !ih)
        return mig_err_set(errp, -EPROTO, "GLZ image %llu: %ux%u inside a %ux%u image", (unsigned long long)id, iw,
                           ih, width, height);
    if (find(w, id))
        return mig_err_set(errp, -EPROTO, "GLZ image %llu sent twice", (unsigned long long)id);
    ip += SPICE_GLZ_HEADER;
    uint32_t n = iw * ih, op = 0;
    uint32_t *px = mig_malloc0((size_t)n * sizeof(*px));
#define NEED(k)                                                                                               \
    do {                                                                                                      \
        if ((size_t)(end - ip) < (size_t)(k))                                                                 \
            goto truncated;                                                                                   \
    } while (0)
    while (op < n) {
        NEED(1);
        uint32_t ctrl = *ip++;
        if (ctrl < 32) { /* literals */
            uint32_t k = ctrl + 1;
            if (k > n - op)
                goto overrun;
            NEED(3 * k);
            for (uint32_t i = 0; i < k; i++, ip += 3)
                px[op++] = (uint32_t)ip[0] | (uint32_t)ip[1] << 8 | (uint32_t)ip[2] << 16;
            continue;
        }
        uint32_t rlen = ctrl >> 5, ofs = ctrl & 0x0f, dist;
        bool long_ofs = ctrl & 0x10;
        if (rlen == 7) {
            uint8_t code;
            do {
                NEED(1);
                code = *ip++;
                rlen += code;
            } while (code == 255 && rlen <= n);
        }
        NEED(2);
        ofs += (uint32_t)ip[0] << 4;
        uint8_t code = ip[1];
        ip += 2;
        uint32_t nb = code >> 6;
        if (!long_ofs) {
            NEED(nb);
            dist = code & 0x3f;
            for (uint32_t i = 0; i < nb; i++)
                dist += (uint32_t)*ip++ << (6 + 8 * i);
        } else {
            bool very = code & 0x20;
            ofs += (uint32_t)(code & 0x1f) << 12;
            NEED(nb + very);
            dist = 0;
            for (uint32_t i = 0; i < nb; i++)
                dist += (uint32_t)*ip++ << (8 * i);
            if (very)
                ofs += (uint32_t)*ip++ << 17;
        }
        if (rlen > n - op)
            goto overrun;
        if (!dist) {
            if (ofs + 1 > op) {
                mig_err_set(errp, -EPROTO, "GLZ image %llu: pixel %u refers %u pixels back, before the image",
                            (unsigned long long)id, op, ofs + 1);
                goto fail;
            }
            for (uint32_t i = 0; i < rlen; i++, op++)
                px[op] = px[op - ofs - 1];
        } else {
            const WinImage *ref = dist <= id ? find(w, id - dist) : NULL;
            if (!ref) {
                mig_err_set(errp, -EPROTO, "GLZ image %llu refers to image %llu, which the client does not hold",
                            (unsigned long long)id, (unsigned long long)(id - dist));
                goto fail;
            }
            if (ofs > ref->n || rlen > ref->n - ofs) {
                mig_err_set(errp, -EPROTO, "GLZ image %llu: %u pixels at %u of image %llu, which has %u",
                            (unsigned long long)id, rlen, ofs, (unsigned long long)ref->id, ref->n);
                goto fail;
            }
            memcpy(px + op, ref->px + ofs, (size_t)rlen * sizeof(*px));
            op += rlen;
        }
    }
#undef NEED
    window_add(w, (WinImage){.id = id, .win_head_dist = head_dist, .n = n, .px = px});
    w->decoded++;
    uint32_t *copy = mig_malloc0((size_t)n * sizeof(*copy));
    memcpy(copy, px, (size_t)n * sizeof(*copy));
    *out = copy;
    return 0;
truncated:
    mig_err_set(errp, -EPROTO, "GLZ image %llu: the stream ends at pixel %u of %u", (unsigned long long)id, op, n);
    goto fail;
overrun:
    mig_err_set(errp, -EPROTO, "GLZ image %llu: a run past its %u pixels (at %u)", (unsigned long long)id, n, op);
fail:
    free(px);
    return -EPROTO;
}
