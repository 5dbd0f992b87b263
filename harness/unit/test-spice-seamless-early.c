/*
 * test-spice-seamless-early.c - a seamless target answers the client's
 * display blob as it arrives, while the machine is still loading (the
 * blob's client part: serial, ACK window, the cache reset), as
 * spice-server's display answers its blob when it comes; what needs the
 * machine's state (the GLZ dictionary, the surfaces) and any drawing wait
 * until the machine has loaded.  Two machines with RAM and the SPICE
 * devices on the simulator, seamless-migration on both, the machines'
 * stream on a slow link (the target loads for a while after the source
 * completed), the client on a fast one.
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
#include "sim/sim.h"
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
} Pair;

static void pair_open(Pair *p)
{
    memset(p, 0, sizeof(*p));
    p->loop = mig_sim_loop_new(0x5eed);
    mig_sim_set_step_limit(p->loop, 50000000);
    MigMachineOptions so = {.name = "src", .ram_size = 16 * MIB};
    MigMachineOptions dopt = {.name = "dst", .ram_size = 16 * MIB, .incoming = true};
    p->src = mig_machine_new(p->loop, &so, NULL);
    p->dst = mig_machine_new(p->loop, &dopt, NULL);
    SpiceServerConfig sc = {.seamless_migration = true};
    assert_int_equal(mig_machine_add_spice(p->src, &sc, NULL), 0);
    assert_int_equal(mig_machine_add_spice(p->dst, &sc, NULL), 0);
    FakeSpiceOptions fo = {.width = 160, .height = 120, .vmc_bytes_per_tick = 500};
    p->ssp = fake_spice_new(p->src, &fo, NULL);
    p->dsp = fake_spice_new(p->dst, &fo, NULL);
    assert_non_null(p->ssp);
    assert_non_null(p->dsp);
    MigWorkloadOptions wo = {.seed = 1, .fill = MIG_WORKLOAD_FILL_RANDOM, .dirty_rate = 500};
    p->w = mig_workload_new(p->src, &wo, NULL);
    sim_spice_net_init(&p->net, p->loop, &(MigLinkParams){.bandwidth = 20u << 20, .latency_ns = 500000});
    sim_spice_net_listen(&p->net, 1, mig_machine_spice(p->src));
    sim_spice_net_listen(&p->net, 2, mig_machine_spice(p->dst));
    FakeClientConfig cc = {.host = "src", .port = 1, .connect = sim_spice_net_connect, .connect_opaque = &p->net,
                           .vmc_bytes_per_tick = 300, .who = "cli"};
    p->client = fake_client_new(p->loop, &cc);
    assert_int_equal(fake_client_start(p->client, NULL), 0);
    mig_sim_run_for(p->loop, 500000000ull);
    assert_int_equal(fake_client_linked_channels(p->client), 7);
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

static bool both_done(void *opaque)
{
    Pair *p = opaque;
    return mig_status_is_terminal(mig_migration_status(mig_machine_migration(p->src))) &&
           mig_status_is_terminal(mig_migration_status(mig_machine_migration(p->dst)));
}

static bool target_answered(void *opaque)
{
    Pair *p = opaque;
    FakeClientSwitchGaps g;
    fake_client_switch_gaps(p->client, &g);
    return g.have_first || fake_client_last_error(p->client)[0];
}

static void test_spice_seamless_target_answers_while_it_loads(void **state)
{
    (void)state;
    Pair p;
    pair_open(&p);
    spice_main_set_migrate_dest(mig_machine_spice_main(p.src), "dst", 2, -1, NULL);
    assert_int_equal(spice_main_migrate_begin(mig_machine_spice_main(p.src), on_connected, &p, NULL), 0);
    while (!p.connected_calls)
        assert_int_equal(mig_sim_run_for(p.loop, 10000000ull) >= 0, 1);
    assert_int_equal(p.connected_result, 0);
    /* 16 MiB at 8 MiB/s: the source completes with its last MiBs still on
     * the way (the link holds 4 MiB), the target loads them after */
    MigTransport *a, *b;
    MigLinkParams lp = {.bandwidth = 8u << 20, .latency_ns = 50000};
    assert_int_equal(mig_transport_mem_pair(p.loop, &lp, &a, &b), 0);
    assert_int_equal(mig_machine_incoming_transport(p.dst, b, NULL), 0);
    assert_int_equal(mig_machine_migrate_transport(p.src, a, NULL), 0);
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
    assert_int_equal(mig_loop_run_until(p.loop, both_done, &p, mig_loop_now_ns(p.loop) + 60000000000ull), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_seamless_target_answers_while_it_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
