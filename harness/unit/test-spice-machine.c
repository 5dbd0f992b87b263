/*
 * test-spice-machine.c - a machine's SPICE server follows the machine's
 * migration (impl/machine, semi-seamless): two machines with RAM and the
 * SPICE devices on the simulator, a fake client on the source; management
 * gives the source the destination (client_migrate_info), waits for the
 * client's answer, then migrates.  The client ends on the destination in the
 * same session, its screen equal to the guest's framebuffer there, the
 * display device's state carried by the stream, the port's bytes neither
 * lost nor repeated, nor playback frames: what the destination plays while
 * the client's playback link waits for its MIGRATE_END is kept for it (10 s
 * at most).  A cancelled migration leaves the client on the source with
 * everything working.  Seamless: the target answers the client's display
 * blob while it still loads, and draws nothing before it has loaded.
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
#include "devices/fake-spice.h"
#include "machine/machine.h"
#include "sim/migration-wait.h"
#include "sim/sim.h"
#include "sim/spice-keys.h"
#include "sim/spice-net.h"
#include "workload/workload.h"

#define MIB ((uint64_t)1 << 20)

typedef struct Pair {
    MigLoop *loop;
    MigMachine *src, *dst;
    FakeSpice *ssp, *dsp;
    MigWorkload *w;
    FakeClient *client;
    int connected_calls, connected_result;
    SimSpiceNet net; /* port 1: the source's SPICE server, port 2: the destination's */
    uint64_t src_ops_at_stop;
    uint64_t mig_bw; /* the machines' link (0: 200 MiB/s) */
} Pair;

static void on_src_event(void *opaque, const char *name, json_t *data)
{
    Pair *p = opaque;
    if (!strcmp(name, "STOP") && p->ssp)
        p->src_ops_at_stop = fake_qxl_ops(p->ssp->qxl);
}

static void pair_open_cfg(Pair *p, uint64_t client_bw, uint64_t migrate_end_delay_ns, bool seamless)
{
    memset(p, 0, sizeof(*p));
    p->loop = mig_sim_loop_new(0x5eed);
    mig_sim_set_step_limit(p->loop, 50000000);
    MigMachineOptions so = {.name = "src", .ram_size = 16 * MIB, .event = on_src_event, .event_opaque = p};
    MigMachineOptions dopt = {.name = "dst", .ram_size = 16 * MIB, .incoming = true};
    p->src = mig_machine_new(p->loop, &so, NULL);
    p->dst = mig_machine_new(p->loop, &dopt, NULL);
    /* each server's key from the table (sim/spice-keys.h): the same key
     * it would make, searched once per process */
    SpiceServerConfig sc = {.seamless_migration = seamless, .key = sim_spice_key(p->loop)};
    assert_int_equal(mig_machine_add_spice(p->src, &sc, NULL), 0);
    sc.key = sim_spice_key(p->loop);
    assert_int_equal(mig_machine_add_spice(p->dst, &sc, NULL), 0);
    FakeSpiceOptions fo = {.width = 160, .height = 120, .vmc_bytes_per_tick = client_bw ? 4000 : 500};
    p->ssp = fake_spice_new(p->src, &fo, NULL);
    p->dsp = fake_spice_new(p->dst, &fo, NULL);
    assert_non_null(p->ssp);
    assert_non_null(p->dsp);
    MigWorkloadOptions wo = {.seed = 1, .fill = MIG_WORKLOAD_FILL_RANDOM, .dirty_rate = 500};
    p->w = mig_workload_new(p->src, &wo, NULL);
    /* the client's links: client_bw bytes/s, 0: 20 MiB/s */
    sim_spice_net_init(&p->net, p->loop,
                       &(MigLinkParams){.bandwidth = client_bw ? client_bw : 20u << 20, .latency_ns = 500000});
    sim_spice_net_listen(&p->net, 1, mig_machine_spice(p->src));
    sim_spice_net_listen(&p->net, 2, mig_machine_spice(p->dst));
    FakeClientConfig cc = {.host = "src", .port = 1, .connect = sim_spice_net_connect, .connect_opaque = &p->net,
                           .vmc_bytes_per_tick = 300, .who = "cli", .migrate_end_delay_ns = migrate_end_delay_ns};
    p->client = fake_client_new(p->loop, &cc);
    assert_int_equal(fake_client_start(p->client, NULL), 0);
    mig_sim_run_for(p->loop, 500000000ull);
    assert_int_equal(fake_client_linked_channels(p->client), 7);
}

static void pair_open_ex(Pair *p, uint64_t client_bw, uint64_t migrate_end_delay_ns)
{
    pair_open_cfg(p, client_bw, migrate_end_delay_ns, false);
}

static void pair_open_bw(Pair *p, uint64_t client_bw)
{
    pair_open_ex(p, client_bw, 0);
}

static void pair_open(Pair *p)
{
    pair_open_bw(p, 0);
}

static void pair_close(Pair *p)
{
    fake_client_free(p->client);
    mig_workload_free(p->w);
    fake_spice_free(p->ssp);
    fake_spice_free(p->dsp);
    mig_machine_free(p->src);
    mig_machine_free(p->dst);
    mig_sim_run_for(p->loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(p->loop), 0);
    mig_loop_free(p->loop);
}

static void on_connected(void *opaque, int result)
{
    Pair *p = opaque;
    p->connected_calls++;
    p->connected_result = result;
}

/* client_migrate_info, then migrate once the client answered. */
static void migrate(Pair *p)
{
    spice_main_set_migrate_dest(mig_machine_spice_main(p->src), "dst", 2, -1, NULL);
    assert_int_equal(spice_main_migrate_begin(mig_machine_spice_main(p->src), on_connected, p, NULL), 0);
    while (!p->connected_calls)
        assert_int_equal(mig_sim_run_for(p->loop, 10000000ull) >= 0, 1);
    assert_int_equal(p->connected_result, 0);
    MigTransport *a, *b;
    MigLinkParams lp = {.bandwidth = p->mig_bw ? p->mig_bw : 200u << 20, .latency_ns = 50000};
    assert_int_equal(mig_transport_mem_pair(p->loop, &lp, &a, &b), 0);
    assert_int_equal(mig_machine_incoming_transport(p->dst, b, NULL), 0);
    assert_int_equal(mig_machine_migrate_transport(p->src, a, NULL), 0);
}

/* Migrate to completion, let the client settle for `settle_ns`: it must
 * have switched semi-seamlessly, with no error. */
static void migrate_and_switch(Pair *p, uint64_t settle_ns)
{
    migrate(p);
    assert_int_equal(sim_migration_wait(p->loop, p->src, p->dst, 60000000000ull, NULL), 0);
    assert_int_equal(mig_migration_status(mig_machine_migration(p->src)), MIG_STATUS_COMPLETED);
    mig_sim_run_for(p->loop, settle_ns);
    assert_string_equal(fake_client_last_error(p->client), "");
    FakeClientMigrations m;
    fake_client_migrations(p->client, &m);
    assert_int_equal(m.semi_seamless, 1);
}

static void expect_screen(Pair *p, MigMachine *m, FakeSpice *f)
{
    assert_int_equal(mig_machine_stop(m, NULL), 0); /* the guest stops drawing */
    mig_sim_run_for(p->loop, 500000000ull);
    const SpiceSurface *fb = fake_qxl_framebuffer(f->qxl), *cli = fake_client_surface(p->client, 0, 0);
    assert_non_null(cli);
    assert_memory_equal(cli->px, fb->px, (size_t)fb->width * fb->height * 4);
}

static void test_spice_machine_client_follows_the_migration(void **state)
{
    (void)state;
    Pair p;
    pair_open(&p);
    uint32_t session = fake_client_session_id(p.client);
    migrate_and_switch(&p, 2000000000ull);
    assert_string_equal(fake_client_server_host(p.client), "dst");
    assert_int_equal(fake_client_session_id(p.client), session);
    assert_int_equal(fake_client_linked_channels(p.client), 7);
    /* the destination's display went on from where the source stopped */
    assert_true(p.src_ops_at_stop > 0);
    assert_true(fake_qxl_ops(p.dsp->qxl) > p.src_ops_at_stop);
    FakeClientMediaStats play, port;
    fake_client_media_stats(p.client, SPICE_CHANNEL_PLAYBACK, &play);
    fake_client_media_stats(p.client, SPICE_CHANNEL_PORT, &port);
    assert_int_equal(play.dups, 0);
    assert_int_equal(play.gaps, 0); /* what the target played before the client's playback linked was kept */
    assert_true(port.received > 0);
    assert_int_equal(port.gaps + port.dups, 0);
    FakeVmcStats vmc;
    fake_vmc_stats(p.dsp->vmc, &vmc);
    assert_int_equal(vmc.read_errors, 0);
    assert_true(vmc.read > 0);
    expect_screen(&p, p.dst, p.dsp);
    assert_int_equal(spice_server_client_count(mig_machine_spice(p.src)), 0);
    pair_close(&p);
}

/* A client on a slow link still has port bytes and sound on their way
 * when the migration completes: the source sends MIGRATE_END only once the
 * client has read everything it sent on every channel (a PING answered on
 * each), so nothing is lost at the switch. */
static void test_spice_machine_slow_client_loses_nothing_at_the_switch(void **state)
{
    (void)state;
    Pair p;
    pair_open_bw(&p, 300u << 10);
    migrate_and_switch(&p, 5000000000ull);
    FakeClientMediaStats port, play;
    fake_client_media_stats(p.client, SPICE_CHANNEL_PORT, &port);
    fake_client_media_stats(p.client, SPICE_CHANNEL_PLAYBACK, &play);
    assert_true(port.received > 0);
    assert_int_equal(port.gaps + port.dups, 0);
    assert_int_equal(play.dups, 0);
    pair_close(&p);
}

/* The client's MIGRATE_END reaches the target `delay_ns` after the switch:
 * the target holds its playback link that long while its guest plays.
 * Returns the frames the client missed; none after the switch is repeated
 * and playback goes on. */
static uint64_t playback_gaps_with_late_end(uint64_t delay_ns)
{
    Pair p;
    pair_open_ex(&p, 0, delay_ns);
    migrate_and_switch(&p, delay_ns + 2000000000ull);
    assert_string_equal(fake_client_server_host(p.client), "dst");
    FakeClientMediaStats play;
    fake_client_media_stats(p.client, SPICE_CHANNEL_PLAYBACK, &play);
    assert_int_equal(play.dups, 0);
    uint64_t before = play.received;
    mig_sim_run_for(p.loop, 100000000ull);
    fake_client_media_stats(p.client, SPICE_CHANNEL_PLAYBACK, &play);
    assert_true(play.received > before);
    pair_close(&p);
    return play.gaps;
}

/* Three seconds late: everything the target played meanwhile reaches the
 * client after START, nothing lost. */
static void test_spice_machine_late_migrate_end_loses_no_playback(void **state)
{
    (void)state;
    assert_int_equal(playback_gaps_with_late_end(3000000000ull), 0);
}

/* Later than the 10 s kept: the oldest frames beyond the bound are lost,
 * no more (11 s late: about one second, 48,000 frames). */
static void test_spice_machine_playback_kept_is_bounded(void **state)
{
    (void)state;
    uint64_t gaps = playback_gaps_with_late_end(11000000000ull);
    assert_true(gaps > 0);
    assert_true(gaps <= 2 * 48000);
}

static void cancel_now(void *opaque)
{
    Pair *p = opaque;
    mig_machine_migrate_cancel(p->src);
}

static void test_spice_machine_cancel_keeps_the_client(void **state)
{
    (void)state;
    Pair p;
    pair_open(&p);
    migrate(&p);
    mig_loop_timer_add(p.loop, mig_loop_now_ns(p.loop) + 1000000ull, cancel_now, &p);
    assert_int_equal(sim_migration_wait(p.loop, p.src, p.dst, 60000000000ull, NULL), 0);
    assert_int_equal(mig_migration_status(mig_machine_migration(p.src)), MIG_STATUS_CANCELLED);
    mig_sim_run_for(p.loop, 2000000000ull);
    FakeClientMigrations m;
    fake_client_migrations(p.client, &m);
    assert_int_equal(m.cancelled, 1);
    assert_int_equal(m.semi_seamless, 0);
    assert_string_equal(fake_client_server_host(p.client), "src");
    assert_string_equal(fake_client_last_error(p.client), "");
    assert_int_equal(spice_server_channel_clients(mig_machine_spice(p.dst)), 0);
    FakeClientMediaStats play;
    fake_client_media_stats(p.client, SPICE_CHANNEL_PLAYBACK, &play);
    assert_int_equal(play.dups, 0);
    expect_screen(&p, p.src, p.ssp);
    pair_close(&p);
}

/* Seamless (both servers with seamless-migration on): the target answers
 * the client's display blob as it arrives, while the machine is still
 * loading (the blob's client part: serial, ACK window, the cache reset),
 * as spice-server's display answers its blob when it comes; what needs the
 * machine's state (the GLZ dictionary, the surfaces) and any drawing wait
 * until the machine has loaded. */
static bool target_answered(void *opaque)
{
    Pair *p = opaque;
    FakeClientSwitchGaps g;
    fake_client_switch_gaps(p->client, &g);
    return g.have_first || fake_client_last_error(p->client)[0];
}

static void test_spice_machine_seamless_target_answers_while_it_loads(void **state)
{
    (void)state;
    Pair p;
    pair_open_cfg(&p, 0, 0, true);
    /* 16 MiB at 8 MiB/s: the source completes with its last MiBs still on
     * the way (the link holds 4 MiB), the target loads them after */
    p.mig_bw = 8u << 20;
    migrate(&p);
    assert_int_equal(mig_loop_run_until(p.loop, target_answered, &p, mig_loop_now_ns(p.loop) + 60000000000ull), 0);
    assert_string_equal(fake_client_last_error(p.client), "");
    FakeClientSwitchGaps g;
    fake_client_switch_gaps(p.client, &g);
    /* the answer came while the target was still loading: the cache reset */
    assert_int_equal(mig_migration_status(mig_machine_migration(p.src)), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(mig_machine_migration(p.dst)), MIG_STATUS_ACTIVE);
    assert_string_equal(g.first_msg, "DISPLAY_INVAL_ALL_PIXMAPS");
    FakeClientDraws before;
    fake_client_draws(p.client, &before);
    /* nothing is drawn from the target before it has loaded */
    while (mig_migration_status(mig_machine_migration(p.dst)) == MIG_STATUS_ACTIVE) {
        assert_int_equal(mig_sim_run_for(p.loop, 1000000ull) >= 0, 1);
        FakeClientDraws now;
        fake_client_draws(p.client, &now);
        if (mig_migration_status(mig_machine_migration(p.dst)) == MIG_STATUS_ACTIVE)
            assert_int_equal(now.count, before.count);
    }
    assert_int_equal(sim_migration_wait(p.loop, p.src, p.dst, 60000000000ull, NULL), 0);
    assert_int_equal(mig_migration_status(mig_machine_migration(p.dst)), MIG_STATUS_COMPLETED);
    mig_sim_run_for(p.loop, 2000000000ull);
    assert_string_equal(fake_client_last_error(p.client), "");
    FakeClientMigrations m;
    fake_client_migrations(p.client, &m);
    assert_int_equal(m.seamless, 1);
    assert_string_equal(fake_client_server_host(p.client), "dst");
    /* the target draws for the client once loaded: its screen is the guest's */
    FakeClientDraws after;
    fake_client_draws(p.client, &after);
    assert_true(after.count > before.count);
    assert_int_equal(mig_machine_stop(p.dst, NULL), 0);
    mig_sim_run_for(p.loop, 500000000ull);
    const SpiceSurface *fb = fake_qxl_framebuffer(p.dsp->qxl), *cli = fake_client_surface(p.client, 0, 0);
    assert_non_null(cli);
    assert_memory_equal(cli->px, fb->px, (size_t)fb->width * fb->height * 4);
    pair_close(&p);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_machine_client_follows_the_migration),
        cmocka_unit_test(test_spice_machine_cancel_keeps_the_client),
        cmocka_unit_test(test_spice_machine_slow_client_loses_nothing_at_the_switch),
        cmocka_unit_test(test_spice_machine_late_migrate_end_loses_no_playback),
        cmocka_unit_test(test_spice_machine_playback_kept_is_bounded),
        cmocka_unit_test(test_spice_machine_seamless_target_answers_while_it_loads),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    sim_spice_keys_free();
    return failed;
}
