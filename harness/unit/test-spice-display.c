/*
 * test-spice-display.c - the display channel (impl/spice/spice-display.c)
 * with the fake client on the simulator: a client that links after the
 * guest drew gets every surface whole, later drawing reaches it, recurring
 * images come FROM_CACHE, a small cache evicts least recently used images
 * through INVAL_LIST, and the client's primary surface equals the server's
 * pixel for pixel throughout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <spice/enums.h>

#include "client/fake-client.h"
#include "sim/sim.h"
#include "sim/spice-guest.h"
#include "spice/spice-display.h"

typedef struct World {
    SimSpiceGuest sg;
    SpiceDisplay *display;
} World;

static void world_open(World *w, int64_t cache_pixels)
{
    memset(w, 0, sizeof(*w));
    sim_spice_guest_open(&w->sg, 7, &(SpiceServerConfig){.who = "srv"});
    w->display = spice_display_add(w->sg.server, 0);
    FakeClientConfig cc = {.pixmap_cache_pixels = cache_pixels};
    MigLinkParams link = {.bandwidth = 100u << 20, .latency_ns = 200000};
    assert_non_null(sim_spice_guest_client(&w->sg, &link, &cc));
}

static void world_free_display(void *opaque)
{
    spice_display_free(((World *)opaque)->display);
}

static void world_close(World *w)
{
    assert_int_equal(sim_spice_guest_close(&w->sg, world_free_display, w), 0);
}

static void settle(World *w)
{
    mig_sim_run_for(w->sg.loop, 500000000ull);
    assert_string_equal(fake_client_last_error(w->sg.client), "");
}

static void expect_same_primary(World *w)
{
    const SpiceSurface *srv = spice_display_surface(w->display, 0);
    const SpiceSurface *cli = fake_client_surface(w->sg.client, 0, 0);
    assert_non_null(srv);
    assert_non_null(cli);
    assert_int_equal(cli->width, srv->width);
    assert_int_equal(cli->height, srv->height);
    assert_memory_equal(cli->px, srv->px, (size_t)srv->width * srv->height * 4);
}

static uint32_t *image(uint32_t w, uint32_t h, uint32_t seed)
{
    uint32_t *px = malloc((size_t)w * h * 4);
    for (uint32_t i = 0; i < w * h; i++)
        px[i] = (seed * 2654435761u + i * 40503u) & 0xffffff;
    return px;
}

static SpiceRect rect(int32_t x, int32_t y, int32_t w, int32_t h)
{
    return (SpiceRect){.top = y, .left = x, .bottom = y + h, .right = x + w};
}

static void test_spice_display_late_client_gets_the_whole_surface(void **state)
{
    (void)state;
    World w;
    world_open(&w, 0);
    assert_int_equal(spice_display_surface_create(w.display, 0, 64, 48, NULL), 0);
    SpiceRect r = rect(3, 4, 20, 10);
    assert_int_equal(spice_display_fill(w.display, 0, &r, 0x123456, NULL), 0);
    assert_int_equal(fake_client_start(w.sg.client, NULL), 0);
    settle(&w);
    expect_same_primary(&w);
    assert_int_equal(fake_client_display_marks(w.sg.client, 0), 1);
    assert_int_equal(fake_client_surface(w.sg.client, 0, 0)->px[4 * 64 + 3], 0x123456);

    /* drawing after the link reaches the client */
    uint32_t *img = image(16, 8, 1);
    SpiceRect a = rect(40, 30, 16, 8), b = rect(0, 40, 16, 8), c = rect(10, 10, 20, 20);
    assert_int_equal(spice_display_copy(w.display, 0, &a, 7, img, 16, 8, NULL), 0);
    assert_int_equal(spice_display_copy(w.display, 0, &b, 7, img, 16, 8, NULL), 0);
    assert_int_equal(spice_display_copy_bits(w.display, 0, &c, 0, 0, NULL), 0);
    assert_int_equal(spice_display_fill(w.display, 0, &r, 0xabcdef, NULL), 0);
    settle(&w);
    expect_same_primary(&w);
    SpiceDisplayStats st;
    spice_display_stats(w.display, &st);
    assert_int_equal(st.cache_hits, 1); /* the second copy of image 7 */
    assert_int_equal(st.images_sent, 2); /* the whole surface, image 7 once */
    free(img);

    /* an off-screen surface copied to the primary */
    assert_int_equal(spice_display_surface_create(w.display, 1, 8, 8, NULL), 0);
    settle(&w);
    assert_non_null(fake_client_surface(w.sg.client, 0, 1));
    assert_int_equal(spice_display_surface_destroy(w.display, 1, NULL), 0);
    settle(&w);
    assert_null(fake_client_surface(w.sg.client, 0, 1));
    world_close(&w);
}

/* A cache of 1,000 pixels holds two 20x20 images: a third evicts the least
 * recently used one, which then comes as a bitmap again. */
static void test_spice_display_small_cache_evicts_least_recently_used(void **state)
{
    (void)state;
    World w;
    world_open(&w, 1000);
    assert_int_equal(spice_display_surface_create(w.display, 0, 100, 100, NULL), 0);
    assert_int_equal(fake_client_start(w.sg.client, NULL), 0);
    settle(&w);
    uint32_t *img[3] = {image(20, 20, 11), image(20, 20, 12), image(20, 20, 13)};
    SpiceRect r = rect(0, 0, 20, 20);
    uint64_t order[] = {0, 1, 0, 2, 1, 0, 2};
    for (size_t i = 0; i < MIG_ARRAY_SIZE(order); i++) {
        r = rect((int32_t)(i * 10), (int32_t)(i * 11), 20, 20);
        assert_int_equal(spice_display_copy(w.display, 0, &r, 100 + order[i], img[order[i]], 20, 20, NULL), 0);
    }
    settle(&w);
    expect_same_primary(&w);
    SpiceDisplayStats st;
    spice_display_stats(w.display, &st);
    /* 0 1 | 0 hit | 2 evicts 1 | 1 evicts 0 | 0 evicts 2 | 2 evicts 1 */
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_evictions, 4);
    assert_int_equal(fake_client_count(w.sg.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_INVAL_LIST), 4);
    for (int i = 0; i < 3; i++)
        free(img[i]);
    world_close(&w);
}

static void test_spice_display_device_errors_change_nothing(void **state)
{
    (void)state;
    World w;
    world_open(&w, 0);
    assert_int_equal(spice_display_surface_create(w.display, 0, 10, 10, NULL), 0);
    MigErr *err = NULL;
    SpiceRect out = rect(5, 5, 10, 10);
    assert_int_equal(spice_display_fill(w.display, 0, &out, 1, &err), -EINVAL);
    assert_string_equal(err->msg, "rectangle (5,5)-(15,15) outside surface 0 of 10x10");
    mig_err_free(err);
    err = NULL;
    assert_int_equal(spice_display_fill(w.display, 3, &out, 1, &err), -ENOENT);
    mig_err_free(err);
    err = NULL;
    assert_int_equal(spice_display_surface_create(w.display, 0, 10, 10, &err), -EEXIST);
    mig_err_free(err);
    const SpiceSurface *s = spice_display_surface(w.display, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(s->px[i], 0);
    world_close(&w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_display_late_client_gets_the_whole_surface),
        cmocka_unit_test(test_spice_display_small_cache_evicts_least_recently_used),
        cmocka_unit_test(test_spice_display_device_errors_change_nothing),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
