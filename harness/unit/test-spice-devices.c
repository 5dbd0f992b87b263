/*
 * test-spice-devices.c - the fake display, sound and char devices feeding a
 * SPICE server, and the fake client linked to it, on the simulator: while
 * the guest runs, the client's primary surface stays equal to the guest's
 * framebuffer, every playback frame and port byte arrives once and in
 * order, and the record and port streams the client sends reach the devices
 * in order.  Everything also holds for a client that links while the guest
 * is already drawing, and the run is the same for the same seed.  A fast
 * draw rate draws that many operations per second, but never lets a
 * client's pipe grow past FAKE_QXL_MAX_PIPE.
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
#include "devices/fake-qxl.h"
#include "devices/fake-snd.h"
#include "devices/fake-vmc.h"
#include "sim/sim.h"
#include "sim/spice-net.h"
#include "spice/spice-conn.h"
#include "spice/spice-inputs.h"
#include "spice/spice-main.h"

typedef struct Guest {
    MigLoop *loop;
    SpiceServer *server;
    FakeQxl *qxl;
    FakeSnd *snd;
    FakeVmc *vmc;
    FakeClient *client;
    SimSpiceNet net;
} Guest;

static void guest_open(Guest *g, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->loop = mig_sim_loop_new(seed);
    SpiceServerConfig sc = {.who = "vm"};
    g->server = spice_server_new(g->loop, &sc, NULL);
    spice_main_add(g->server);
    g->qxl = fake_qxl_new(g->loop, g->server, 320, 200);
    spice_inputs_add(g->server, NULL);
    g->snd = fake_snd_new(g->loop, g->server);
    g->vmc = fake_vmc_new(g->loop, g->server, 3000);
    sim_spice_net_init(&g->net, g->loop, &(MigLinkParams){.bandwidth = 50u << 20, .latency_ns = 500000});
    sim_spice_net_listen(&g->net, 1, g->server);
    FakeClientConfig cc = {.host = "sim", .port = 1, .connect = sim_spice_net_connect, .connect_opaque = &g->net,
                           .pixmap_cache_pixels = 3000, .vmc_bytes_per_tick = 1000, .who = "cli"};
    g->client = fake_client_new(g->loop, &cc);
}

static void guest_run(Guest *g, bool running)
{
    fake_qxl_set_running(g->qxl, running);
    fake_snd_set_running(g->snd, running);
    fake_vmc_set_running(g->vmc, running);
}

static void guest_close(Guest *g)
{
    fake_client_free(g->client);
    fake_qxl_free(g->qxl);
    fake_snd_free(g->snd);
    fake_vmc_free(g->vmc);
    spice_server_free(g->server);
    mig_sim_run_for(g->loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(g->loop), 0);
    g->loop->ops->free(g->loop);
}

static void expect_screen_matches(Guest *g)
{
    const SpiceSurface *fb = fake_qxl_framebuffer(g->qxl);
    const SpiceSurface *cli = fake_client_surface(g->client, 0, 0);
    assert_non_null(cli);
    assert_memory_equal(cli->px, fb->px, (size_t)fb->width * fb->height * 4);
}

static void run_guest(uint64_t seed, char digest[65], uint64_t *ops)
{
    Guest g;
    guest_open(&g, seed);
    guest_run(&g, true);
    mig_sim_run_for(g.loop, 300000000ull); /* the guest draws before the client comes */
    assert_int_equal(fake_client_start(g.client, NULL), 0);
    mig_sim_run_for(g.loop, 2000000000ull);
    guest_run(&g, false);
    mig_sim_run_for(g.loop, 1000000000ull);
    assert_string_equal(fake_client_last_error(g.client), "");
    assert_int_equal(fake_client_linked_channels(g.client), 7);
    expect_screen_matches(&g);

    FakeSndStats snd;
    fake_snd_stats(g.snd, &snd);
    FakeClientMediaStats play, rec, port;
    fake_client_media_stats(g.client, SPICE_CHANNEL_PLAYBACK, &play);
    fake_client_media_stats(g.client, SPICE_CHANNEL_RECORD, &rec);
    fake_client_media_stats(g.client, SPICE_CHANNEL_PORT, &port);
    /* the client joined mid-stream: it has every frame from its first on */
    assert_true(play.received > 90000); /* two seconds at 48 kHz */
    assert_true(play.received <= snd.played);
    assert_int_equal(play.gaps, 0);
    assert_int_equal(play.dups, 0);
    assert_true(rec.sent > 0);
    assert_true(snd.recorded > 0 && snd.recorded <= rec.sent);
    assert_int_equal(snd.rec_gaps + snd.rec_dups, 0);

    FakeVmcStats vmc;
    fake_vmc_stats(g.vmc, &vmc);
    assert_true(port.received > 0);
    assert_int_equal(vmc.read_errors, 0);
    /* the stopped guest reads nothing: the port holds the rest for it */
    assert_int_equal(vmc.read + vmc.held, port.sent);
    assert_true(vmc.held > 0);
    *ops = fake_qxl_ops(g.qxl);
    spice_surface_digest(fake_qxl_framebuffer(g.qxl), digest);
    guest_close(&g);
}

static void test_spice_devices_client_sees_the_guest(void **state)
{
    (void)state;
    char d1[65], d2[65], d3[65];
    uint64_t o1, o2, o3;
    run_guest(0x5eed, d1, &o1);
    run_guest(0x5eed, d2, &o2);
    run_guest(0x5eee, d3, &o3);
    assert_true(o1 > 100);
    assert_string_equal(d1, d2); /* the same seed draws the same screen */
    assert_int_equal(o1, o2);
    assert_string_not_equal(d1, d3);
}

/* Messages waiting in the server's display pipe for the client. */
static uint32_t display_pipe(Guest *g)
{
    if (spice_server_client_count(g->server) == 0)
        return 0;
    SpiceChannelClient *cc = spice_client_find(spice_server_client_at(g->server, 0), SPICE_CHANNEL_DISPLAY, 0);
    return cc ? spice_conn_queued_messages(spice_cc_conn(cc)) : 0;
}

static void test_spice_devices_fast_draw_rate_is_held_back_by_the_pipe(void **state)
{
    (void)state;
    Guest g;
    guest_open(&g, 0x5eed);
    /* no client: exactly the rate, fractions carried (2.5 per 1 ms tick) */
    fake_qxl_set_draw_rate(g.qxl, 2500);
    guest_run(&g, true);
    mig_sim_run_for(g.loop, 1000500000ull);
    assert_int_equal(fake_qxl_ops(g.qxl), 2500);
    /* a client on a 50 MB/s link cannot take 200,000 operations a second:
     * the device waits for it, its pipe stays bounded, it keeps up */
    fake_qxl_set_draw_rate(g.qxl, 200000);
    assert_int_equal(fake_client_start(g.client, NULL), 0);
    uint64_t before = fake_qxl_ops(g.qxl);
    uint32_t most = 0;
    for (int ms = 0; ms < 1000; ms++) {
        mig_sim_run_for(g.loop, 1000000ull);
        most = MIG_MAX(most, display_pipe(&g));
    }
    uint64_t drawn = fake_qxl_ops(g.qxl) - before;
    assert_true(most >= FAKE_QXL_MAX_PIPE / 2);  /* the client was the limit */
    assert_true(most <= FAKE_QXL_MAX_PIPE + 1); /* a copy may bring its INVAL_LIST */
    assert_true(drawn > 1000 && drawn < 200000);
    FakeClientDraws d;
    fake_client_draws(g.client, &d);
    assert_true(d.count > 1000);
    guest_run(&g, false);
    mig_sim_run_for(g.loop, 2000000000ull);
    assert_string_equal(fake_client_last_error(g.client), "");
    expect_screen_matches(&g);
    guest_close(&g);
}

/* spice-server sends STREAM_DESTROY_ALL to a client switching to a
 * migration target, with no stream created: the client takes it and goes on. */
static void test_spice_devices_client_takes_stream_destroy_all(void **state)
{
    (void)state;
    Guest g;
    guest_open(&g, 0x5eed);
    guest_run(&g, true);
    assert_int_equal(fake_client_start(g.client, NULL), 0);
    mig_sim_run_for(g.loop, 500000000ull);
    SpiceChannelClient *cc = spice_client_find(spice_server_client_at(g.server, 0), SPICE_CHANNEL_DISPLAY, 0);
    assert_non_null(cc);
    assert_int_equal(spice_cc_send(cc, SPICE_MSG_DISPLAY_STREAM_DESTROY_ALL, NULL), 0);
    mig_sim_run_for(g.loop, 500000000ull);
    assert_int_equal(fake_client_count(g.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_STREAM_DESTROY_ALL), 1);
    guest_run(&g, false);
    mig_sim_run_for(g.loop, 500000000ull);
    assert_string_equal(fake_client_last_error(g.client), "");
    assert_int_equal(fake_client_linked_channels(g.client), 7);
    expect_screen_matches(&g);
    guest_close(&g);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_devices_client_sees_the_guest),
        cmocka_unit_test(test_spice_devices_fast_draw_rate_is_held_back_by_the_pipe),
        cmocka_unit_test(test_spice_devices_client_takes_stream_destroy_all),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
