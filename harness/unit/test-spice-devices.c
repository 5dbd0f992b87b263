/*
 * test-spice-devices.c - the fake display, sound and char devices feeding a
 * SPICE server, and the fake client linked to it, on the simulator: while
 * the guest runs, the client's primary surface stays equal to the guest's
 * framebuffer, every playback frame and port byte arrives once and in
 * order, and the record and port streams the client sends reach the devices
 * in order.  Everything also holds for a client that links while the guest
 * is already drawing, and the run is the same for the same seed.  A fast
 * draw rate draws that many operations per second, but never lets a
 * client's pipe grow past FAKE_QXL_MAX_PIPE.  fake-vmc's section moves
 * between releases as its history and the pair rules say.
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
#include "devices/releases.h"
#include "savevm/savevm.h"
#include "sim/section-copy.h"
#include "sim/sim.h"
#include "sim/spice-guest.h"
#include "spice/spice-conn.h"
#include "spice/spice-inputs.h"
#include "spice/spice-ticket.h"

typedef struct Guest {
    SimSpiceGuest sg;
    FakeQxl *qxl;
    FakeSnd *snd;
    FakeVmc *vmc;
} Guest;

static void guest_open(Guest *g, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    sim_spice_guest_open(&g->sg, seed, NULL);
    g->qxl = fake_qxl_new(g->sg.loop, g->sg.server, 320, 200);
    spice_inputs_add(g->sg.server, NULL);
    g->snd = fake_snd_new(g->sg.loop, g->sg.server);
    g->vmc = fake_vmc_new(g->sg.loop, g->sg.server, 3000);
    FakeClientConfig cc = {.pixmap_cache_pixels = 3000, .vmc_bytes_per_tick = 1000};
    assert_non_null(sim_spice_guest_client(&g->sg, NULL, &cc));
}

static void guest_run(Guest *g, bool running)
{
    fake_qxl_set_running(g->qxl, running);
    fake_snd_set_running(g->snd, running);
    fake_vmc_set_running(g->vmc, running);
}

static void guest_free_devices(void *opaque)
{
    Guest *g = opaque;
    fake_qxl_free(g->qxl);
    fake_snd_free(g->snd);
    fake_vmc_free(g->vmc);
}

static void guest_close(Guest *g)
{
    assert_int_equal(sim_spice_guest_close(&g->sg, guest_free_devices, g), 0);
}

static void expect_screen_matches(Guest *g)
{
    const SpiceSurface *fb = fake_qxl_framebuffer(g->qxl);
    const SpiceSurface *cli = fake_client_surface(g->sg.client, 0, 0);
    assert_non_null(cli);
    assert_memory_equal(cli->px, fb->px, (size_t)fb->width * fb->height * 4);
}

static void run_guest(uint64_t seed, char digest[65], uint64_t *ops)
{
    Guest g;
    guest_open(&g, seed);
    guest_run(&g, true);
    mig_sim_run_for(g.sg.loop, 300000000ull); /* the guest draws before the client comes */
    assert_int_equal(fake_client_start(g.sg.client, NULL), 0);
    mig_sim_run_for(g.sg.loop, 2000000000ull);
    guest_run(&g, false);
    mig_sim_run_for(g.sg.loop, 1000000000ull);
    assert_string_equal(fake_client_last_error(g.sg.client), "");
    assert_int_equal(fake_client_linked_channels(g.sg.client), 7);
    expect_screen_matches(&g);

    FakeSndStats snd;
    fake_snd_stats(g.snd, &snd);
    FakeClientMediaStats play, rec, port;
    fake_client_media_stats(g.sg.client, SPICE_CHANNEL_PLAYBACK, &play);
    fake_client_media_stats(g.sg.client, SPICE_CHANNEL_RECORD, &rec);
    fake_client_media_stats(g.sg.client, SPICE_CHANNEL_PORT, &port);
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

/* ---- fake-vmc's section across releases (releases.h, fake-vmc.h) ---- */

static bool vmsd_has_pacing(const VmsDescription *d)
{
    return d->subsections && d->subsections[0] && !strcmp(d->subsections[0]->name, "fake-vmc/pacing");
}

/* Save `src` as machine type `mt` (of release `src_rel`) writes it and load
 * it into a fresh fake-vmc of release `dst_rel` with the default pacing.
 * Returns the load's result; on success *dst_out has its stats and pacing. */
/* The ticket key of the servers below that only hold a fake-vmc and never
 * link a client: made once, so that the 23 of them do not each search two
 * primes (95% of this test's time under valgrind).  spice_server_new
 * forks the loop's PRNG for its key either way, so the run is the same. */
static SpiceTicketKey *unused_key;

static const SpiceTicketKey *vmc_key(void)
{
    if (!unused_key) {
        MigPrng p;
        mig_prng_seed(&p, 0x7e57);
        unused_key = spice_ticket_key_new(&p, NULL);
        assert_non_null(unused_key);
    }
    return unused_key;
}

static int vmc_migrate(Guest *g, const char *src_rel, const char *mt, const char *dst_rel, FakeVmcStats *dst_out,
                       uint32_t *dst_pacing, MigErr **errp)
{
    fake_vmc_set_vmsd(g->vmc, mig_release_device_vmsd(mt, "fake-vmc"), mig_release_device_vmsd(src_rel, "fake-vmc"));
    SpiceServerConfig sc = {.who = "dst", .key = vmc_key()};
    SpiceServer *server = spice_server_new(g->sg.loop, &sc, NULL);
    FakeVmc *dst = fake_vmc_new(g->sg.loop, server, FAKE_VMC_DEFAULT_BYTES_PER_TICK);
    fake_vmc_set_vmsd(dst, mig_release_device_vmsd(dst_rel, "fake-vmc"), mig_release_device_vmsd(dst_rel, "fake-vmc"));
    MigSavevm *sv_src = mig_savevm_new(), *sv_dst = mig_savevm_new();
    assert_int_equal(fake_vmc_register(g->vmc, sv_src, NULL), 0);
    assert_int_equal(fake_vmc_register(dst, sv_dst, NULL), 0);
    int rc = sim_section_copy(sv_src, sv_dst, errp);
    fake_vmc_stats(dst, dst_out);
    *dst_pacing = fake_vmc_bytes_per_tick(dst);
    mig_savevm_free(sv_src);
    mig_savevm_free(sv_dst);
    fake_vmc_free(dst);
    spice_server_free(server);
    return rc;
}

/* fake-vmc's state goes from every release to every release exactly when
 * the pair rules say (the source with its default machine type, and new ->
 * old with the destination's): what loads carries the byte counts on, the
 * guest's pacing (3000, not the default) only where both sides know
 * fake-vmc/pacing; what does not load names fake-vmc and leaves the
 * destination as it was.  With the default pacing, 2.0 -> 1.1 loads. */
static void test_spice_devices_vmc_state_across_releases(void **state)
{
    (void)state;
    static const char *const rels[] = {"1.0", "1.1", "2.0", "2.1-dev"};
    Guest g;
    guest_open(&g, 7);
    guest_run(&g, true);
    assert_int_equal(fake_client_start(g.sg.client, NULL), 0);
    mig_sim_run_for(g.sg.loop, 500000000ull);
    guest_run(&g, false);
    mig_sim_run_for(g.sg.loop, 200000000ull);
    FakeVmcStats src;
    fake_vmc_stats(g.vmc, &src);
    assert_true(src.written > 0 && src.read > 0);
    for (size_t i = 0; i < MIG_ARRAY_SIZE(rels); i++)
        for (size_t j = 0; j < MIG_ARRAY_SIZE(rels); j++)
            for (int old_mt = 0; old_mt < 2; old_mt++) {
                if (old_mt && j >= i)
                    continue;
                const char *mt = old_mt ? rels[j] : rels[i];
                const VmsDescription *emit = mig_release_device_vmsd(mt, "fake-vmc");
                const VmsDescription *load = mig_release_device_vmsd(rels[j], "fake-vmc");
                char *devs[] = {"fake-vmc"};
                MigPairPrediction p;
                mig_pair_predict(rels[i], mig_release_find(mt)->machine_type, rels[j], devs, 1, &p);
                bool ok = p.completes || !p.device[0];
                FakeVmcStats got;
                uint32_t pacing;
                MigErr *err = NULL;
                int rc = vmc_migrate(&g, rels[i], mt, rels[j], &got, &pacing, &err);
                if (ok != (rc == 0))
                    fail_msg("fake-vmc %s(%s) -> %s: rules say %s, load gave %d (%s)", rels[i], mt, rels[j],
                             ok ? "ok" : p.reason, rc, err ? err->msg : "");
                if (rc == 0) {
                    assert_int_equal(got.written, src.written);
                    assert_int_equal(got.read, src.read);
                    assert_int_equal(pacing, vmsd_has_pacing(emit) && vmsd_has_pacing(load)
                                                 ? 3000 : FAKE_VMC_DEFAULT_BYTES_PER_TICK);
                } else {
                    assert_non_null(err);
                    if (!strstr(err->msg, "fake-vmc"))
                        fail_msg("%s -> %s: the error does not name fake-vmc: %s", mt, rels[j], err->msg);
                    assert_int_equal(got.written, 0);
                    assert_int_equal(pacing, FAKE_VMC_DEFAULT_BYTES_PER_TICK);
                }
                mig_err_free(err);
            }
    /* the needed rule: at the default pacing 2.0 writes no subsection */
    SpiceServerConfig sc = {.who = "quiet", .key = vmc_key()};
    SpiceServer *server = spice_server_new(g.sg.loop, &sc, NULL);
    FakeVmc *quiet = fake_vmc_new(g.sg.loop, server, FAKE_VMC_DEFAULT_BYTES_PER_TICK);
    FakeVmc *busy = g.vmc;
    g.vmc = quiet;
    FakeVmcStats got;
    uint32_t pacing;
    assert_int_equal(vmc_migrate(&g, "2.0", "2.0", "1.1", &got, &pacing, NULL), 0);
    assert_int_not_equal(vmc_migrate(&g, "2.1-dev", "2.1-dev", "2.0", &got, &pacing, NULL), 0);
    g.vmc = busy;
    fake_vmc_free(quiet);
    spice_server_free(server);
    guest_close(&g);
    spice_ticket_key_free(unused_key);
    unused_key = NULL;
}

/* Messages waiting in the server's display pipe for the client. */
static uint32_t display_pipe(Guest *g)
{
    if (spice_server_client_count(g->sg.server) == 0)
        return 0;
    SpiceChannelClient *cc = spice_client_find(spice_server_client_at(g->sg.server, 0), SPICE_CHANNEL_DISPLAY, 0);
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
    mig_sim_run_for(g.sg.loop, 1000500000ull);
    assert_int_equal(fake_qxl_ops(g.qxl), 2500);
    /* a client on a 50 MB/s link cannot take 200,000 operations a second:
     * the device waits for it, its pipe stays bounded, it keeps up */
    fake_qxl_set_draw_rate(g.qxl, 200000);
    assert_int_equal(fake_client_start(g.sg.client, NULL), 0);
    uint64_t before = fake_qxl_ops(g.qxl);
    uint32_t most = 0;
    for (int ms = 0; ms < 1000; ms++) {
        mig_sim_run_for(g.sg.loop, 1000000ull);
        most = MIG_MAX(most, display_pipe(&g));
    }
    uint64_t drawn = fake_qxl_ops(g.qxl) - before;
    assert_true(most >= FAKE_QXL_MAX_PIPE / 2);  /* the client was the limit */
    assert_true(most <= FAKE_QXL_MAX_PIPE + 1); /* a copy may bring its INVAL_LIST */
    assert_true(drawn > 1000 && drawn < 200000);
    FakeClientDraws d;
    fake_client_draws(g.sg.client, &d);
    assert_true(d.count > 1000);
    guest_run(&g, false);
    mig_sim_run_for(g.sg.loop, 2000000000ull);
    assert_string_equal(fake_client_last_error(g.sg.client), "");
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
    assert_int_equal(fake_client_start(g.sg.client, NULL), 0);
    mig_sim_run_for(g.sg.loop, 500000000ull);
    SpiceChannelClient *cc = spice_client_find(spice_server_client_at(g.sg.server, 0), SPICE_CHANNEL_DISPLAY, 0);
    assert_non_null(cc);
    assert_int_equal(spice_cc_send(cc, SPICE_MSG_DISPLAY_STREAM_DESTROY_ALL, NULL), 0);
    mig_sim_run_for(g.sg.loop, 500000000ull);
    assert_int_equal(fake_client_count(g.sg.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_STREAM_DESTROY_ALL), 1);
    guest_run(&g, false);
    mig_sim_run_for(g.sg.loop, 500000000ull);
    assert_string_equal(fake_client_last_error(g.sg.client), "");
    assert_int_equal(fake_client_linked_channels(g.sg.client), 7);
    expect_screen_matches(&g);
    guest_close(&g);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_devices_client_sees_the_guest),
        cmocka_unit_test(test_spice_devices_fast_draw_rate_is_held_back_by_the_pipe),
        cmocka_unit_test(test_spice_devices_client_takes_stream_destroy_all),
        cmocka_unit_test(test_spice_devices_vmc_state_across_releases),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
