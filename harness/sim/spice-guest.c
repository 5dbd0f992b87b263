/*
 * spice-guest.c - a simulated guest's SPICE server, network and client
 * (spice-guest.h).
 */
#include <string.h>

#include "sim/sim.h"
#include "sim/spice-guest.h"
#include "spice/spice-main.h"

void sim_spice_guest_open(SimSpiceGuest *g, uint64_t seed, const SpiceServerConfig *sc)
{
    memset(g, 0, sizeof(*g));
    g->loop = mig_sim_loop_new(seed);
    g->server = spice_server_new(g->loop, sc ? sc : &(SpiceServerConfig){.who = "vm"}, NULL);
    spice_main_add(g->server);
}

FakeClient *sim_spice_guest_client(SimSpiceGuest *g, const MigLinkParams *link, FakeClientConfig *cc)
{
    sim_spice_net_init(&g->net, g->loop, link ? link : &(MigLinkParams){.bandwidth = 50u << 20, .latency_ns = 500000});
    sim_spice_net_listen(&g->net, 1, g->server);
    cc->host = "sim";
    cc->port = 1;
    cc->connect = sim_spice_net_connect;
    cc->connect_opaque = &g->net;
    if (!cc->who)
        cc->who = "cli";
    g->client = fake_client_new(g->loop, cc);
    return g->client;
}

long sim_spice_guest_close(SimSpiceGuest *g, void (*free_devices)(void *opaque), void *opaque)
{
    fake_client_free(g->client);
    if (free_devices)
        free_devices(opaque);
    spice_server_free(g->server);
    mig_sim_run_for(g->loop, 1000000000ull);
    long live = mig_sim_live_sources(g->loop);
    g->loop->ops->free(g->loop);
    memset(g, 0, sizeof(*g));
    return live;
}
