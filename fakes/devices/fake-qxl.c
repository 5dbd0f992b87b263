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

struct FakeQxl {
    MigLoop *loop;
    SpiceServer *server;
    SpiceDisplay *display;
    SpiceSurface fb; /* the guest's own rendering */
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
static SpiceRect random_rect(FakeQxl *q, uint32_t max_w, uint32_t max_h)
{
    uint32_t w = 1 + below(q, MIG_MIN(max_w, q->fb.width)), h = 1 + below(q, MIG_MIN(max_h, q->fb.height));
    uint32_t x = below(q, q->fb.width - w + 1), y = below(q, q->fb.height - h + 1);
    return (SpiceRect){.top = (int32_t)y, .left = (int32_t)x, .bottom = (int32_t)(y + h),
                       .right = (int32_t)(x + w)};
}

static void draw_one(FakeQxl *q)
{
    uint32_t kind = below(q, 10);
    if (kind < 4) {
        SpiceRect r = random_rect(q, q->fb.width / 2, q->fb.height / 2);
        uint32_t color = (uint32_t)mig_prng_next(&q->prng) & 0xffffff;
        spice_canvas_fill(&q->fb, &r, color, NULL);
        spice_display_fill(q->display, 0, &r, color, NULL);
    } else if (kind < 8) {
        uint32_t i = below(q, FAKE_QXL_IMAGES);
        uint32_t w = q->image_w[i], h = q->image_h[i];
        if (w > q->fb.width || h > q->fb.height)
            return;
        uint32_t x = below(q, q->fb.width - w + 1), y = below(q, q->fb.height - h + 1);
        SpiceRect r = {.top = (int32_t)y, .left = (int32_t)x, .bottom = (int32_t)(y + h), .right = (int32_t)(x + w)};
        spice_canvas_put(&q->fb, &r, q->images[i], w, h, w, NULL);
        spice_display_copy(q->display, 0, &r, i + 1, q->images[i], w, h, NULL);
    } else {
        SpiceRect r = random_rect(q, q->fb.width / 3, q->fb.height / 3);
        int32_t w = r.right - r.left, h = r.bottom - r.top;
        int32_t sx = (int32_t)below(q, q->fb.width - (uint32_t)w + 1);
        int32_t sy = (int32_t)below(q, q->fb.height - (uint32_t)h + 1);
        spice_canvas_copy_bits(&q->fb, &r, sx, sy, NULL);
        spice_display_copy_bits(q->display, 0, &r, sx, sy, NULL);
    }
    q->ops++;
}

/* Whether a display client has FAKE_QXL_MAX_PIPE messages waiting. */
static bool pipe_full(const FakeQxl *q)
{
    for (size_t i = 0; i < spice_server_client_count(q->server); i++) {
        SpiceChannelClient *cc = spice_client_find(spice_server_client_at(q->server, i), SPICE_CHANNEL_DISPLAY, 0);
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
    FakeQxl *q = mig_malloc0(sizeof(*q));
    q->loop = loop;
    q->server = server;
    mig_prng_fork(&loop->prng, &q->prng);
    if (spice_surface_init(&q->fb, 0, width, height, NULL) < 0) {
        free(q);
        return NULL;
    }
    q->display = spice_display_add(server, 0);
    spice_display_surface_create(q->display, 0, width, height, NULL);
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
    spice_display_free(q->display);
    spice_surface_fini(&q->fb);
    for (uint32_t i = 0; i < FAKE_QXL_IMAGES; i++)
        free(q->images[i]);
    free(q);
}

const SpiceSurface *fake_qxl_framebuffer(const FakeQxl *q)
{
    return &q->fb;
}

SpiceDisplay *fake_qxl_display(const FakeQxl *q)
{
    return q->display;
}

uint64_t fake_qxl_ops(const FakeQxl *q)
{
    return q->ops;
}

/* ---- migration state: "fake-qxl" v1 = be32 width, be32 height, the
 * pixels (be32 each), the PRNG's four be64 words, be64 ops */

static int qxl_save(void *opaque, MigStream *s, MigErr **errp)
{
    FakeQxl *q = opaque;
    mig_stream_put_be32(s, q->fb.width);
    mig_stream_put_be32(s, q->fb.height);
    for (size_t i = 0; i < (size_t)q->fb.width * q->fb.height; i++)
        mig_stream_put_be32(s, q->fb.px[i]);
    for (int i = 0; i < 4; i++)
        mig_stream_put_be64(s, q->prng.s[i]);
    mig_stream_put_be64(s, q->ops);
    return mig_stream_error(s);
}

static int qxl_load(void *opaque, MigStream *s, uint32_t version_id, MigErr **errp)
{
    FakeQxl *q = opaque;
    uint32_t w = mig_stream_get_be32(s), h = mig_stream_get_be32(s);
    if (mig_stream_starved(s))
        return -EAGAIN;
    if (mig_stream_error(s))
        return mig_err_set(errp, mig_stream_error(s), "device fake-qxl: field width: stream error");
    if (w != q->fb.width || h != q->fb.height)
        return mig_err_set(errp, -EINVAL, "device fake-qxl: field width/height: the stream has %ux%u, this "
                           "machine's display is %ux%u", w, h, q->fb.width, q->fb.height);
    size_t n = (size_t)w * h;
    uint32_t *px = malloc(n * sizeof(*px));
    for (size_t i = 0; i < n; i++)
        px[i] = mig_stream_get_be32(s) & 0xffffff;
    MigPrng prng;
    for (int i = 0; i < 4; i++)
        prng.s[i] = mig_stream_get_be64(s);
    uint64_t ops = mig_stream_get_be64(s);
    int e = mig_stream_starved(s) ? -EAGAIN : mig_stream_error(s);
    if (e == 0) { /* nothing changes before the whole state is read */
        memcpy(q->fb.px, px, n * sizeof(*px));
        q->prng = prng;
        q->ops = ops;
        /* the server's copy (what clients are sent) is the guest's screen */
        spice_display_restore(q->display, 0, q->fb.px, NULL);
    } else if (e != -EAGAIN) {
        mig_err_set(errp, e, "device fake-qxl: field pixels: stream error");
    }
    free(px);
    return e;
}

static const MigFullOps qxl_ops = {.save = qxl_save, .load = qxl_load};

int fake_qxl_register(FakeQxl *q, MigSavevm *sv, MigErr **errp)
{
    int r = mig_savevm_register_full(sv, "fake-qxl", 0, 1, &qxl_ops, q, errp);
    return r < 0 ? r : 0;
}
