/*
 * spice-net.c - the simulated network between fake SPICE clients and
 * SpiceServers (spice-net.h says what it owns, who calls it and its
 * invariants).
 */
#include "sim/spice-net.h"

#include <errno.h>
#include <string.h>

void sim_spice_net_init(SimSpiceNet *n, MigLoop *loop, const MigLinkParams *link)
{
    memset(n, 0, sizeof(*n));
    n->loop = loop;
    if (link)
        n->link = *link;
}

static int slot_of(const SimSpiceNet *n, uint16_t port)
{
    for (int i = 0; i < SIM_SPICE_NET_PORTS; i++)
        if (n->listen[i].port == port)
            return i;
    return -1;
}

void sim_spice_net_listen(SimSpiceNet *n, uint16_t port, SpiceServer *server)
{
    int i = slot_of(n, port);
    if (i < 0)
        i = slot_of(n, 0);
    if (i < 0 || port == 0)
        return; /* a test's table is static: a full one is its bug, and every connect then says so */
    n->listen[i].port = port;
    n->listen[i].server = server;
}

void sim_spice_net_answer(SimSpiceNet *n, uint16_t port, SimSpiceAnswer answer)
{
    int i = slot_of(n, port);
    if (i < 0 || port == 0)
        return;
    n->listen[i].answer = answer;
    if (answer != SIM_SPICE_ACCEPT)
        return;
    int kept = 0;
    for (int h = 0; h < n->nheld; h++) {
        if (n->held[h].port == port)
            spice_server_accept(n->listen[i].server, n->held[h].end);
        else
            n->held[kept++] = n->held[h];
    }
    n->nheld = kept;
}

MigTransport *sim_spice_dial(MigLoop *loop, const MigLinkParams *lp, SpiceServer *server, MigErr **errp)
{
    MigTransport *a, *b;
    int rc = mig_transport_mem_pair(loop, lp, &a, &b);
    if (rc < 0)
        return mig_err_set(errp, rc, "cannot create a sim link"), NULL;
    spice_server_accept(server, b);
    return a;
}

MigTransport *sim_spice_net_connect(void *opaque, const char *host, uint16_t port, MigErr **errp)
{
    SimSpiceNet *n = opaque;
    int i = port ? slot_of(n, port) : -1;
    if (i < 0 || !n->listen[i].server || n->listen[i].answer == SIM_SPICE_REFUSE)
        return mig_err_set(errp, -ECONNREFUSED, "connection to %s:%u refused (sim)", host ? host : "?", port),
               NULL;
    if (n->listen[i].answer == SIM_SPICE_HOLD) {
        if (n->nheld == SIM_SPICE_NET_HELD)
            return mig_err_set(errp, -ENOBUFS, "%s:%u holds %d connections already (sim)", host ? host : "?",
                               port, SIM_SPICE_NET_HELD),
                   NULL;
        MigTransport *a, *b;
        int rc = mig_transport_mem_pair(n->loop, &n->link, &a, &b);
        if (rc < 0)
            return mig_err_set(errp, rc, "cannot create a sim link"), NULL;
        n->held[n->nheld].port = port;
        n->held[n->nheld++].end = b;
        n->connects++;
        return a;
    }
    MigTransport *a = sim_spice_dial(n->loop, &n->link, n->listen[i].server, errp);
    if (a)
        n->connects++;
    return a;
}

void sim_spice_net_close(SimSpiceNet *n)
{
    for (int h = 0; h < n->nheld; h++)
        mig_transport_close(n->held[h].end);
    n->nheld = 0;
}
