/*
 * spice-glz.c - the GLZ encoder and its dictionary (spice-glz.h).
 *
 * Matching: a table of HASH_SIZE entries, indexed by a hash of three
 * pixels, holds the last place (image id, pixel) those three pixels
 * started; it survives from image to image, so a new image finds runs of
 * the earlier ones.  A candidate is checked pixel by pixel (a stale entry
 * just fails) and extended as far as both images allow; references start
 * at MIN_MATCH pixels, where they cost less than literals.
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "spice-glz.h"

#define NCH SPICE_PIXMAP_CACHE_CLIENTS
#define HASH_BITS 16
#define HASH_SIZE (1u << HASH_BITS)
#define MIN_MATCH 3u
#define MAX_LITERALS 32u
#define MAX_IMAGE_DIST ((1u << 24) - 1)

typedef struct GlzImage {
    uint64_t id;
    uint32_t *px;
    uint32_t n;
    uint8_t ch;          /* the channel that sent it */
    uint64_t serial;     /* its message there */
} GlzImage;

typedef struct HashEntry {
    uint64_t id; /* image id + 1; 0: empty */
    uint32_t pos;
} HashEntry;

struct SpiceGlzDict {
    uint8_t dict_id;
    uint32_t window;
    uint64_t next_id;
    GlzImage *images; /* oldest first */
    size_t nimages, capimages;
    uint64_t pixels;  /* held by images */
    HashEntry *table;
    uint64_t waited[NCH][NCH];
    bool frozen;
    uint64_t own_from;      /* ids below were the source's (a dictionary taken from the machine's stream) */
    uint64_t inherited_refs; /* references to those */
};

SpiceGlzDict *spice_glz_dict_new(uint8_t dict_id, uint32_t window_pixels)
{
    SpiceGlzDict *d = mig_malloc0(sizeof(*d));
    d->dict_id = dict_id;
    d->window = window_pixels;
    d->table = mig_malloc0(HASH_SIZE * sizeof(*d->table));
    return d;
}

void spice_glz_dict_free(SpiceGlzDict *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nimages; i++)
        free(d->images[i].px);
    free(d->images);
    free(d->table);
    free(d);
}

uint8_t spice_glz_dict_id(const SpiceGlzDict *d) { return d->dict_id; }
uint32_t spice_glz_dict_window(const SpiceGlzDict *d) { return d->window; }
uint64_t spice_glz_next_id(const SpiceGlzDict *d) { return d->next_id; }
bool spice_glz_frozen(const SpiceGlzDict *d) { return d->frozen; }

static uint32_t hash3(const uint32_t *p)
{
    uint64_t v = ((uint64_t)(p[0] & 0xffffff) * 0x9E3779B1u) ^ ((uint64_t)(p[1] & 0xffffff) * 0x85EBCA77u) ^
                 ((uint64_t)(p[2] & 0xffffff) * 0xC2B2AE3Du);
    return (uint32_t)((v ^ (v >> 29)) * 0x27D4EB2Fu) >> (32 - HASH_BITS);
}

static GlzImage *find_image(SpiceGlzDict *d, uint64_t id)
{
    if (!d->nimages || id < d->images[0].id || id > d->images[d->nimages - 1].id)
        return NULL;
    GlzImage *g = &d->images[id - d->images[0].id]; /* ids are contiguous */
    return g->id == id ? g : NULL;
}

/* ------------------------------------------------------------------ the stream */

static void put_be(MigBuf *b, uint64_t v, int bytes)
{
    uint8_t *p = mig_buf_reserve(b, (size_t)bytes);
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    b->len += (size_t)bytes;
}

static void put8(MigBuf *b, uint8_t v)
{
    *mig_buf_reserve(b, 1) = v;
    b->len++;
}

static void put_literals(MigBuf *b, const uint32_t *px, uint32_t n)
{
    while (n) {
        uint32_t k = MIG_MIN(n, MAX_LITERALS);
        uint8_t *p = mig_buf_reserve(b, 1 + 3 * (size_t)k);
        *p++ = (uint8_t)(k - 1);
        for (uint32_t i = 0; i < k; i++) {
            *p++ = (uint8_t)px[i];
            *p++ = (uint8_t)(px[i] >> 8);
            *p++ = (uint8_t)(px[i] >> 16);
        }
        b->len += 1 + 3 * (size_t)k;
        px += k;
        n -= k;
    }
}

static int bytes_of(uint32_t v)
{
    int n = 0;
    while (v) {
        n++;
        v >>= 8;
    }
    return n;
}

/* A reference of `len` pixels: `image_dist` images back (0: this image,
 * then pixel_ofs is the distance back minus one) at pixel `pixel_ofs`. */
static void put_ref(MigBuf *b, uint32_t len, uint32_t pixel_ofs, uint32_t image_dist)
{
    bool long_ofs = pixel_ofs >= (1u << 12);
    put8(b, (uint8_t)((MIG_MIN(len, 7u) << 5) | (long_ofs ? 0x10 : 0) | (pixel_ofs & 0x0f)));
    if (len >= 7) {
        uint32_t rem = len - 7;
        for (; rem >= 255; rem -= 255)
            put8(b, 255);
        put8(b, (uint8_t)rem);
    }
    put8(b, (uint8_t)(pixel_ofs >> 4));
    if (!long_ofs) {
        int nb = bytes_of(image_dist >> 6);
        put8(b, (uint8_t)((nb << 6) | (image_dist & 0x3f)));
        for (int i = 0; i < nb; i++)
            put8(b, (uint8_t)(image_dist >> (6 + 8 * i)));
    } else {
        bool very = pixel_ofs >= (1u << 17);
        int nb = bytes_of(image_dist);
        put8(b, (uint8_t)((nb << 6) | (very ? 0x20 : 0) | ((pixel_ofs >> 12) & 0x1f)));
        for (int i = 0; i < nb; i++)
            put8(b, (uint8_t)(image_dist >> (8 * i)));
        if (very)
            put8(b, (uint8_t)(pixel_ofs >> 17));
    }
}

/* ------------------------------------------------------------------ encoding */

static void evict_for(SpiceGlzDict *d, uint64_t pixels)
{
    size_t k = 0;
    while (k < d->nimages && d->pixels + pixels > d->window) {
        d->pixels -= d->images[k].n;
        free(d->images[k].px);
        k++;
    }
    if (k) {
        memmove(d->images, d->images + k, (d->nimages - k) * sizeof(*d->images));
        d->nimages -= k;
    }
}

static void need(SpiceGlzDict *d, uint8_t ch, const GlzImage *g, SpicePixmapWaits *w)
{
    if (g->serial)
        spice__waits_need(d->waited, ch, g->ch, g->serial, w);
}

int spice_glz_encode(SpiceGlzDict *d, uint8_t ch, const uint32_t *px, uint32_t w, uint32_t h, MigBuf *out,
                     SpicePixmapWaits *waits, uint64_t *image_id)
{
    waits->n = 0;
    uint64_t n64 = (uint64_t)w * h;
    if (d->frozen)
        return -EBUSY;
    if (!n64 || n64 > d->window || n64 >= SPICE_GLZ_MAX_PIXEL_OFS || ch >= NCH)
        return -EINVAL;
    uint32_t n = (uint32_t)n64;
    evict_for(d, n);
    uint64_t id = d->next_id++;
    uint64_t oldest = d->nimages ? d->images[0].id : id;
    size_t size_at = out->len;
    put_be(out, 0, 4); /* data_size, known at the end (little-endian, as SPICE bodies) */
    size_t start = out->len;
    put_be(out, SPICE_GLZ_MAGIC, 4);
    put_be(out, SPICE_GLZ_VERSION, 4);
    put8(out, SPICE_GLZ_TYPE_RGB32 | SPICE_GLZ_TOP_DOWN);
    put_be(out, w, 4);
    put_be(out, h, 4);
    put_be(out, 4ull * w, 4);
    put_be(out, id, 8);
    put_be(out, id - oldest, 4);

    uint32_t i = 0, lit = 0;
    while (i < n) {
        uint32_t best = 0, ofs = 0, dist = 0;
        if (i + MIN_MATCH <= n) {
            uint32_t hv = hash3(px + i);
            HashEntry e = d->table[hv];
            d->table[hv] = (HashEntry){.id = id + 1, .pos = i};
            if (e.id == id + 1 && e.pos < i) { /* earlier in this image */
                uint32_t len = 0;
                while (i + len < n && px[e.pos + len] == px[i + len])
                    len++;
                best = len, ofs = i - e.pos - 1, dist = 0;
            } else if (e.id && e.id - 1 < id) {
                GlzImage *g = find_image(d, e.id - 1);
                if (g && e.pos < g->n && id - g->id <= MAX_IMAGE_DIST) {
                    uint32_t len = 0;
                    while (i + len < n && e.pos + len < g->n && g->px[e.pos + len] == px[i + len])
                        len++;
                    if (len >= MIN_MATCH) {
                        best = len, ofs = e.pos, dist = (uint32_t)(id - g->id);
                        need(d, ch, g, waits);
                        d->inherited_refs += g->id < d->own_from;
                    }
                }
            }
        }
        if (best < MIN_MATCH) {
            i++;
            continue;
        }
        put_literals(out, px + lit, i - lit);
        put_ref(out, best, ofs, dist);
        for (uint32_t k = i + 1; k < i + best && k + MIN_MATCH <= n; k++)
            d->table[hash3(px + k)] = (HashEntry){.id = id + 1, .pos = k};
        i += best;
        lit = i;
    }
    put_literals(out, px + lit, n - lit);
    uint32_t size = (uint32_t)(out->len - start);
    for (int k = 0; k < 4; k++)
        out->data[size_at + (size_t)k] = (uint8_t)(size >> (8 * k));

    MIG_GROW(d->images, d->capimages, d->nimages + 1, 16);
    uint32_t *copy = mig_malloc0((size_t)n * sizeof(*copy));
    memcpy(copy, px, (size_t)n * sizeof(*copy));
    d->images[d->nimages++] = (GlzImage){.id = id, .px = copy, .n = n, .ch = ch};
    d->pixels += n;
    *image_id = id;
    return 0;
}

void spice_glz_sent(SpiceGlzDict *d, uint8_t ch, uint64_t image_id, uint64_t serial)
{
    GlzImage *g = find_image(d, image_id);
    if (g) {
        g->ch = ch;
        g->serial = serial;
    }
}

/* ------------------------------------------------------------------ seamless migration */

int spice_glz_export(SpiceGlzDict *d, MigBuf *blob, MigErr **errp)
{
    if (blob->len < SPICE_DCMD_BODY_END)
        return mig_err_set(errp, -EINVAL, "display migration data: %zu bytes before the GLZ part, %u needed",
                           blob->len, SPICE_DCMD_BODY_END);
    uint8_t *p = blob->data + SPICE_DCMD_GLZ_OFFSET;
    p[0] = d->dict_id;
    spice__put_le(p + 1, d->window, 4);
    spice__put_le(p + 5, 1, 4); /* max_encoders */
    spice__put_le(p + 9, d->next_id - 1, 8); /* UINT64_MAX before the first image */
    d->frozen = true;
    return 0;
}

int spice_glz_parse(const uint8_t *blob, size_t len, SpiceGlzBlob *out, MigErr **errp)
{
    if (len < SPICE_DCMD_BODY_END)
        return mig_err_set(errp, -EPROTO, "display migration data: %zu bytes, the display part needs %u", len,
                           SPICE_DCMD_BODY_END);
    const uint8_t *p = blob + SPICE_DCMD_GLZ_OFFSET;
    out->dict_id = p[0];
    out->window = (uint32_t)spice__get_le(p + 1, 4);
    out->last_image_id = spice__get_le(p + 9, 8);
    if ((int32_t)out->window < 0)
        return mig_err_set(errp, -EPROTO, "display migration data: GLZ window of %u pixels", out->window);
    return 0;
}

SpiceGlzDict *spice_glz_dict_import(const SpiceGlzBlob *b)
{
    SpiceGlzDict *d = spice_glz_dict_new(b->dict_id, b->window);
    d->next_id = b->last_image_id + 1;
    return d;
}

/* ------------------------------------------------------------------ the machine's migration stream */

#define STATE_FIXED 17u /* u8 dict_id, u32 window, u64 next_id, u32 nimages */
#define STATE_MAX_WINDOW (1u << 26)

uint64_t spice_glz_inherited_refs(const SpiceGlzDict *d) { return d->inherited_refs; }

void spice_glz_state_save(const SpiceGlzDict *d, MigBuf *out)
{
    put8(out, d->dict_id);
    put_be(out, d->window, 4);
    put_be(out, d->next_id, 8);
    put_be(out, d->nimages, 4);
    for (size_t i = 0; i < d->nimages; i++) {
        put_be(out, d->images[i].id, 8);
        put_be(out, d->images[i].n, 4);
        for (uint32_t k = 0; k < d->images[i].n; k++)
            put_be(out, d->images[i].px[k] & 0xffffff, 4);
    }
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

SpiceGlzDict *spice_glz_state_load(const uint8_t *p, size_t len, MigErr **errp)
{
    if (len < STATE_FIXED) {
        mig_err_set(errp, -EPROTO, "GLZ dictionary state: %zu bytes, at least %u needed", len, STATE_FIXED);
        return NULL;
    }
    uint32_t window = (uint32_t)get_be(p + 1, 4), nimages = (uint32_t)get_be(p + 13, 4);
    uint64_t next_id = get_be(p + 5, 8);
    if (window > STATE_MAX_WINDOW || nimages > window || nimages > next_id) {
        mig_err_set(errp, -EPROTO, "GLZ dictionary state: %u images, window %u pixels, next id %llu out of range",
                    nimages, window, (unsigned long long)next_id);
        return NULL;
    }
    SpiceGlzDict *d = spice_glz_dict_new(p[0], window);
    d->next_id = d->own_from = next_id;
    size_t at = STATE_FIXED;
    for (uint32_t i = 0; i < nimages; i++) {
        uint64_t id = len - at >= 12 ? get_be(p + at, 8) : 0;
        uint32_t n = len - at >= 12 ? (uint32_t)get_be(p + at + 8, 4) : 0;
        uint64_t want = nimages - i; /* the ids are contiguous and end before next_id */
        if (len - at < 12 || id != next_id - want || !n || n >= SPICE_GLZ_MAX_PIXEL_OFS || n > window - d->pixels || (len - at - 12) / 4 < n) {
            mig_err_set(errp, -EPROTO, "GLZ dictionary state: image %u of %u (id %llu, %u pixels) does not fit", i,
                        nimages, (unsigned long long)id, n);
            spice_glz_dict_free(d);
            return NULL;
        }
        at += 12;
        uint32_t *px = mig_malloc0((size_t)n * sizeof(*px));
        for (uint32_t k = 0; k < n; k++, at += 4)
            px[k] = (uint32_t)get_be(p + at, 4) & 0xffffff;
        MIG_GROW(d->images, d->capimages, d->nimages + 1, 16);
        d->images[d->nimages++] = (GlzImage){.id = id, .px = px, .n = n};
        d->pixels += n;
        for (uint32_t k = 0; k + MIN_MATCH <= n; k++) /* oldest first: the newest place of a run wins */
            d->table[hash3(px + k)] = (HashEntry){.id = id + 1, .pos = k};
    }
    if (at != len) {
        mig_err_set(errp, -EPROTO, "GLZ dictionary state: %zu bytes after the last image", len - at);
        spice_glz_dict_free(d);
        return NULL;
    }
    return d;
}

bool spice_glz_state_matches(const SpiceGlzDict *d, const SpiceGlzBlob *b)
{
    return d->dict_id == b->dict_id && d->window == b->window && d->next_id - 1 == b->last_image_id;
}
