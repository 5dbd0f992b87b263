/*
 * fake-qxl.c - the fake display device (fake-qxl.h).
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "devices/fake-qxl.h"
#include "savevm/savevm.h"
#include "spice/spice-conn.h"

#define TICK_NS 16000000ull
#define OPS_PER_TICK 4u
#define FAST_TICK_NS 1000000ull /* with a draw rate */
#define IMAGE_SIDE 32u

typedef struct QxlHead {
    SpiceDisplay *display; /* DISPLAY:<head> */
    SpiceSurface fb;       /* the guest's own rendering of this head */
} QxlHead;

struct FakeQxl {
    MigLoop *loop;
    SpiceServer *server;
    QxlHead heads[FAKE_QXL_MAX_HEADS];
    uint32_t nheads;
    uint32_t *images[FAKE_QXL_IMAGES];
    uint32_t image_w[FAKE_QXL_IMAGES], image_h[FAKE_QXL_IMAGES];
    bool running;
    MigLoopSource *timer;
    MigPrng prng;
    uint64_t ops;
    uint32_t rate;      /* operations per second; 0: OPS_PER_TICK every TICK_NS */
    uint64_t rate_due;  /* thousandths of an operation carried to the next fast tick */
};

static uint32_t below(FakeQxl *q, uint32_t n)
{
    return (uint32_t)mig_prng_below(&q->prng, n);
}

/* A rectangle of at most max_w × max_h inside the framebuffer. */
static SpiceRect random_rect(FakeQxl *q, const SpiceSurface *fb, uint32_t max_w, uint32_t max_h)
{
    uint32_t w = 1 + below(q, MIG_MIN(max_w, fb->width)), h = 1 + below(q, MIG_MIN(max_h, fb->height));
    uint32_t x = below(q, fb->width - w + 1), y = below(q, fb->height - h + 1);
    return (SpiceRect){.top = (int32_t)y, .left = (int32_t)x, .bottom = (int32_t)(y + h),
                       .right = (int32_t)(x + w)};
}

/* One operation on one head (a head drawn from the PRNG when there are
 * several; the images are the same on every head, so that a head uses
 * what another one cached). */
static void draw_one(FakeQxl *q)
{
    QxlHead *hd = &q->heads[q->nheads > 1 ? below(q, q->nheads) : 0];
    SpiceSurface *fb = &hd->fb;
    uint32_t kind = below(q, 10);
    if (kind < 4) {
        SpiceRect r = random_rect(q, fb, fb->width / 2, fb->height / 2);
        uint32_t color = (uint32_t)mig_prng_next(&q->prng) & 0xffffff;
        spice_canvas_fill(fb, &r, color, NULL);
        spice_display_fill(hd->display, 0, &r, color, NULL);
    } else if (kind < 8) {
        uint32_t i = below(q, FAKE_QXL_IMAGES);
        uint32_t w = q->image_w[i], h = q->image_h[i];
        if (w > fb->width || h > fb->height)
            return;
        uint32_t x = below(q, fb->width - w + 1), y = below(q, fb->height - h + 1);
        SpiceRect r = {.top = (int32_t)y, .left = (int32_t)x, .bottom = (int32_t)(y + h), .right = (int32_t)(x + w)};
        spice_canvas_put(fb, &r, q->images[i], w, h, w, NULL);
        spice_display_copy(hd->display, 0, &r, i + 1, q->images[i], w, h, NULL);
    } else {
        SpiceRect r = random_rect(q, fb, fb->width / 3, fb->height / 3);
        int32_t w = r.right - r.left, h = r.bottom - r.top;
        int32_t sx = (int32_t)below(q, fb->width - (uint32_t)w + 1);
        int32_t sy = (int32_t)below(q, fb->height - (uint32_t)h + 1);
        spice_canvas_copy_bits(fb, &r, sx, sy, NULL);
        spice_display_copy_bits(hd->display, 0, &r, sx, sy, NULL);
    }
    q->ops++;
}

/* Whether a display client has FAKE_QXL_MAX_PIPE messages waiting. */
static bool pipe_full(const FakeQxl *q)
{
    for (size_t i = 0; i < spice_server_client_count(q->server); i++)
        for (uint32_t h = 0; h < q->nheads; h++) {
            SpiceChannelClient *cc =
                spice_client_find(spice_server_client_at(q->server, i), SPICE_CHANNEL_DISPLAY, (uint8_t)h);
            SpiceConn *conn = cc ? spice_cc_conn(cc) : NULL;
            if (conn && spice_conn_queued_messages(conn) >= FAKE_QXL_MAX_PIPE)
                return true;
        }
    return false;
}

static void tick(void *opaque)
{
    FakeQxl *q = opaque;
    q->timer = NULL;
    if (!q->rate) {
        for (uint32_t i = 0; i < OPS_PER_TICK; i++)
            draw_one(q);
        q->timer = mig_loop_timer_add(q->loop, mig_loop_now_ns(q->loop) + TICK_NS, tick, q);
        return;
    }
    q->rate_due += q->rate;
    uint64_t n = q->rate_due / 1000;
    q->rate_due %= 1000;
    for (uint64_t i = 0; i < n && !pipe_full(q); i++)
        draw_one(q);
    q->timer = mig_loop_timer_add(q->loop, mig_loop_now_ns(q->loop) + FAST_TICK_NS, tick, q);
}

static void arm(FakeQxl *q)
{
    q->timer = mig_loop_timer_add(q->loop, mig_loop_now_ns(q->loop) + (q->rate ? FAST_TICK_NS : TICK_NS), tick, q);
}

void fake_qxl_set_draw_rate(FakeQxl *q, uint32_t ops_per_s)
{
    q->rate = ops_per_s;
    q->rate_due = 0;
    if (q->timer) { /* the next tick at the new period */
        mig_loop_remove(q->loop, q->timer);
        arm(q);
    }
}

FakeQxl *fake_qxl_new(MigLoop *loop, SpiceServer *server, uint32_t width, uint32_t height)
{
    return fake_qxl_new_heads(loop, server, width, height, 1);
}

FakeQxl *fake_qxl_new_heads(MigLoop *loop, SpiceServer *server, uint32_t width, uint32_t height, uint32_t heads)
{
    if (heads < 1 || heads > FAKE_QXL_MAX_HEADS)
        return NULL;
    FakeQxl *q = mig_malloc0(sizeof(*q));
    q->loop = loop;
    q->server = server;
    mig_prng_fork(&loop->prng, &q->prng);
    for (uint32_t h = 0; h < heads; h++) {
        if (spice_surface_init(&q->heads[h].fb, 0, width, height, NULL) < 0) {
            fake_qxl_free(q);
            return NULL;
        }
        q->nheads = h + 1;
        q->heads[h].display = spice_display_add(server, (uint8_t)h);
        spice_display_surface_create(q->heads[h].display, 0, width, height, NULL);
    }
    for (uint32_t i = 0; i < FAKE_QXL_IMAGES; i++) {
        /* sizes differ so that the cache fills unevenly */
        q->image_w[i] = IMAGE_SIDE / 2 + (IMAGE_SIDE / 4) * (i % 3);
        q->image_h[i] = IMAGE_SIDE / 2 + (IMAGE_SIDE / 4) * ((i + 1) % 3);
        uint32_t n = q->image_w[i] * q->image_h[i];
        q->images[i] = malloc((size_t)n * 4);
        for (uint32_t k = 0; k < n; k++)
            q->images[i][k] = (uint32_t)mig_mix64(((uint64_t)(i + 1) << 32) | k) & 0xffffff;
    }
    return q;
}

void fake_qxl_set_running(FakeQxl *q, bool running)
{
    if (q->running == running)
        return;
    q->running = running;
    if (running) {
        arm(q);
    } else if (q->timer) {
        mig_loop_remove(q->loop, q->timer);
        q->timer = NULL;
    }
}

void fake_qxl_free(FakeQxl *q)
{
    if (!q)
        return;
    if (q->timer)
        mig_loop_remove(q->loop, q->timer);
    for (uint32_t h = 0; h < q->nheads; h++) {
        spice_display_free(q->heads[h].display);
        spice_surface_fini(&q->heads[h].fb);
    }
    for (uint32_t i = 0; i < FAKE_QXL_IMAGES; i++)
        free(q->images[i]);
    free(q);
}

const SpiceSurface *fake_qxl_framebuffer(const FakeQxl *q)
{
    return &q->heads[0].fb;
}

SpiceDisplay *fake_qxl_display(const FakeQxl *q)
{
    return q->heads[0].display;
}

uint32_t fake_qxl_heads(const FakeQxl *q)
{
    return q->nheads;
}

const SpiceSurface *fake_qxl_head_framebuffer(const FakeQxl *q, uint32_t head)
{
    return head < q->nheads ? &q->heads[head].fb : NULL;
}

SpiceDisplay *fake_qxl_head_display(const FakeQxl *q, uint32_t head)
{
    return head < q->nheads ? q->heads[head].display : NULL;
}

uint64_t fake_qxl_ops(const FakeQxl *q)
{
    return q->ops;
}

/* ---- migration state: "fake-qxl" v1 (one head) = be32 width, be32 height,
 * the pixels (be32 each), the PRNG's four be64 words, be64 ops; v2 (several
 * heads) = be32 heads, then width, height and pixels of each head, the PRNG
 * and ops.  A one-head device saves v1, what every release reads. */

/* The pixels as be32, a stack buffer at a time (a destination saves its
 * own before each load: the load's cost is the client's wait in a seamless
 * switch). */
static void put_pixels(MigStream *s, const uint32_t *px, size_t n)
{
    uint8_t be[16384];
    for (size_t at = 0; at < n;) {
        size_t k = MIG_MIN(n - at, sizeof(be) / 4);
        for (size_t i = 0; i < k; i++) {
            uint32_t v = px[at + i];
            be[4 * i] = (uint8_t)(v >> 24);
            be[4 * i + 1] = (uint8_t)(v >> 16);
            be[4 * i + 2] = (uint8_t)(v >> 8);
            be[4 * i + 3] = (uint8_t)v;
        }
        mig_stream_put_buffer(s, be, 4 * k);
        at += k;
    }
}

static int qxl_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeQxl *q = opaque;
    if (q->nheads > 1)
        mig_stream_put_be32(s, q->nheads);
    for (uint32_t h = 0; h < q->nheads; h++) {
        const SpiceSurface *fb = &q->heads[h].fb;
        mig_stream_put_be32(s, fb->width);
        mig_stream_put_be32(s, fb->height);
        put_pixels(s, fb->px, (size_t)fb->width * fb->height);
    }
    for (int i = 0; i < 4; i++)
        mig_stream_put_be64(s, q->prng.s[i]);
    mig_stream_put_be64(s, q->ops);
    return mig_stream_error(s);
}

static int qxl_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    FakeQxl *q = opaque;
    uint32_t heads = version_id >= 2 ? mig_stream_get_be32(s) : 1;
    if (mig_stream_starved(s))
        return -EAGAIN;
    if (heads != q->nheads)
        return mig_err_set(errp, -EINVAL, "device fake-qxl: field heads: the stream has %u head(s), this machine's "
                           "display has %u", heads, q->nheads);
    uint32_t *px[FAKE_QXL_MAX_HEADS] = {0};
    int e = 0;
    for (uint32_t h = 0; h < heads && e == 0; h++) {
        const SpiceSurface *fb = &q->heads[h].fb;
        uint32_t w = mig_stream_get_be32(s), ht = mig_stream_get_be32(s);
        if (mig_stream_starved(s)) {
            e = -EAGAIN;
            break;
        }
        if (mig_stream_error(s)) {
            e = mig_err_set(errp, mig_stream_error(s), "device fake-qxl: field width: stream error");
            break;
        }
        if (w != fb->width || ht != fb->height) {
            e = mig_err_set(errp, -EINVAL, "device fake-qxl: field width/height: the stream has %ux%u on head %u, "
                            "this machine's display is %ux%u", w, ht, h, fb->width, fb->height);
            break;
        }
        size_t n = (size_t)w * ht;
        const uint8_t *v = mig_stream_get_view(s, n * 4);
        if (!v) {
            e = mig_stream_starved(s) ? -EAGAIN : mig_stream_error(s);
            break;
        }
        px[h] = malloc(n * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) /* be32, the top byte dropped */
            px[h][i] = (uint32_t)v[4 * i + 1] << 16 | (uint32_t)v[4 * i + 2] << 8 | v[4 * i + 3];
    }
    MigPrng prng;
    for (int i = 0; i < 4 && e == 0; i++)
        prng.s[i] = mig_stream_get_be64(s);
    uint64_t ops = e == 0 ? mig_stream_get_be64(s) : 0;
    if (e == 0)
        e = mig_stream_starved(s) ? -EAGAIN : mig_stream_error(s);
    if (e == 0) { /* nothing changes before the whole state is read */
        for (uint32_t h = 0; h < heads; h++) {
            QxlHead *hd = &q->heads[h];
            memcpy(hd->fb.px, px[h], (size_t)hd->fb.width * hd->fb.height * sizeof(uint32_t));
            /* the server's copy (what clients are sent) is the guest's screen */
            spice_display_restore(hd->display, 0, hd->fb.px, NULL);
        }
        q->prng = prng;
        q->ops = ops;
    } else if (e != -EAGAIN && !(errp && *errp)) {
        mig_err_set(errp, e, "device fake-qxl: field pixels: stream error");
    }
    for (uint32_t h = 0; h < heads; h++)
        free(px[h]);
    return e;
}

static const MigFullOps qxl_ops = {.save = qxl_save, .load = qxl_load};

int fake_qxl_register(FakeQxl *q, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "fake-qxl", 0, q->nheads > 1 ? 2 : 1, &qxl_ops, q, errp);
    if (r >= 0) /* the server's GLZ dictionary, shared by every head */
        r = spice_display_register_glz_state(q->heads[0].display, sv, errp);
    return r < 0 ? r : 0;
}
