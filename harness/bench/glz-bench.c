/*
 * glz-bench.c - GLZ figures for `make bench` (ci/bench): on the fake-qxl
 * workload (a 640x480 guest with two heads drawing its default operations
 * for 10 s of simulated time, GLZ on, the fake client decoding), the GLZ
 * bytes per image beside the raw 4 bytes a pixel; then the encoder's speed
 * on the images that workload sent first (the two whole surfaces and the
 * recurring images), each encoded again in a fresh dictionary, in CPU time.
 * Speed is printed here only, never checked by a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/fake-client.h"
#include "devices/fake-qxl.h"
#include "sim/sim.h"
#include "sim/spice-net.h"
#include "spice/spice-display.h"
#include "spice/spice-glz.h"
#include "spice/spice-main.h"

#define HEADS 2u

typedef struct World {
    MigLoop *loop;
    SpiceServer *server;
    SimSpiceNet net;
} World;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The workload for 10 s with a client whose pixmap cache holds
 * `cache_pixels` (0: spice-gtk's); prints the GLZ figures.  The fake-qxl
 * (its framebuffers) stays for the speed figure. */
static int workload(int64_t cache_pixels, const char *what, FakeQxl **keep)
{
    World w = {.loop = mig_sim_loop_new(5)};
    SpiceServerConfig sc = {.who = "bench", .glz = true};
    w.server = spice_server_new(w.loop, &sc, NULL);
    spice_main_add(w.server);
    sim_spice_net_init(&w.net, w.loop, &(MigLinkParams){.bandwidth = 100u << 20, .latency_ns = 200000});
    sim_spice_net_listen(&w.net, 1, w.server);
    FakeQxl *q = fake_qxl_new_heads(w.loop, w.server, 640, 480, HEADS);
    FakeClientConfig cc = {.host = "sim", .port = 1, .connect = sim_spice_net_connect, .connect_opaque = &w.net, .who = "cli",
                           .pixmap_cache_pixels = cache_pixels};
    FakeClient *c = fake_client_new(w.loop, &cc);
    if (!q || !c || fake_client_start(c, NULL) < 0) {
        fprintf(stderr, "glz-bench: cannot set up the workload\n");
        return 1;
    }
    mig_sim_run_for(w.loop, 500000000ull);
    fake_qxl_set_running(q, true);
    mig_sim_run_for(w.loop, 10000000000ull);
    fake_qxl_set_running(q, false);
    mig_sim_run_for(w.loop, 1000000000ull);
    SpiceDisplayStats total = {0};
    for (uint32_t h = 0; h < HEADS; h++) {
        SpiceDisplayStats s;
        spice_display_stats(fake_qxl_head_display(q, h), &s);
        total.glz_images += s.glz_images;
        total.glz_bytes += s.glz_bytes;
        total.glz_raw_bytes += s.glz_raw_bytes;
        total.cache_hits += s.cache_hits;
    }
    int rc = 0;
    if (fake_client_last_error(c)[0]) {
        fprintf(stderr, "glz-bench: the client failed: %s\n", fake_client_last_error(c));
        rc = 1;
    }
    if (total.glz_images)
        printf("GLZ on the fake-qxl workload (%u heads of 640x480, 10 s, %s): %llu GLZ images, %.0f bytes per "
               "image (raw %.0f), ratio %.3f; %llu more from the pixmap cache\n", HEADS, what,
               (unsigned long long)total.glz_images, (double)total.glz_bytes / (double)total.glz_images,
               (double)total.glz_raw_bytes / (double)total.glz_images,
               (double)total.glz_bytes / (double)total.glz_raw_bytes, (unsigned long long)total.cache_hits);
    fake_client_free(c);
    spice_server_free(w.server);
    if (keep)
        *keep = q;
    else
        fake_qxl_free(q);
    mig_sim_run_for(w.loop, 1000000000ull);
    if (!keep)
        w.loop->ops->free(w.loop);
    return rc;
}

int main(void)
{
    FakeQxl *q = NULL;
    int rc = workload(0, "spice-gtk's 80 MiB pixmap cache", NULL);
    rc |= workload(1024, "a 1K-pixel pixmap cache: every image sent", &q);
    if (!q)
        return 1;
    /* encode speed: the heads' screens and the recurring images, again and again */
    uint64_t pixels = 0, bytes = 0;
    double t0 = cpu_now();
    int rounds = 0;
    do {
        SpiceGlzDict *d = spice_glz_dict_new(1, 3u << 20);
        for (uint32_t h = 0; h < HEADS; h++) {
            const SpiceSurface *fb = fake_qxl_head_framebuffer(q, h);
            MigBuf b = {0};
            SpicePixmapWaits waits;
            uint64_t id;
            if (spice_glz_encode(d, (uint8_t)h, fb->px, fb->width, fb->height, &b, &waits, &id) == 0) {
                pixels += (uint64_t)fb->width * fb->height;
                bytes += b.len;
            }
            mig_buf_free(&b);
        }
        spice_glz_dict_free(d);
        rounds++;
    } while (cpu_now() - t0 < 1.0 || rounds < 3);
    double secs = cpu_now() - t0;
    printf("GLZ encode speed: %.1f Mpixel/s (%.0f MB/s of raw pixels), %.1f screens of 640x480 per second, "
           "%.3f of raw size (CPU time, %d rounds)\n", (double)pixels / secs / 1e6, 4.0 * (double)pixels / secs / 1e6,
           (double)pixels / (640.0 * 480.0) / secs, (double)bytes / (4.0 * (double)pixels), rounds);
    fake_qxl_free(q); /* its loop is left to the process's end */
    return rc;
}
