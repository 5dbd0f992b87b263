/*
 * spice-guest.h - the set-up the SPICE tests with one server and one client
 * share: a simulated loop, a SpiceServer (by default "vm") with its main
 * channel, a SimSpiceNet on which the server listens on port 1 (by default
 * 50 MiB/s, 0.5 ms each way), and one fake client ("cli") that dials it.  The test adds its own devices and
 * channels between sim_spice_guest_open and sim_spice_guest_client (their
 * order is the server's channel order), and frees them from the callback
 * sim_spice_guest_close makes between the client's free and the server's.
 *
 * Called by test-fake-input, test-spice-devices, test-spice-display and
 * test-spice-pixmap-cache (harness/unit).
 *
 * Invariants: the client is not started (fake_client_start is the test's);
 * close frees the client, then the devices, then the server, runs the loop
 * one simulated second so that every link closes, and frees the loop;
 * nothing here reads a clock.
 */
#ifndef MIGCERT_SIM_SPICE_GUEST_H
#define MIGCERT_SIM_SPICE_GUEST_H

#include <stdint.h>

#include "client/fake-client.h"
#include "sim/spice-net.h"
#include "spice/spice-server.h"

typedef struct SimSpiceGuest {
    MigLoop *loop;
    SpiceServer *server;
    FakeClient *client;
    SimSpiceNet net;
} SimSpiceGuest;

/* The loop for `seed` and the server with its main channel; `sc` NULL:
 * {.who = "vm"}. */
void sim_spice_guest_open(SimSpiceGuest *g, uint64_t seed, const SpiceServerConfig *sc);
/* The network (`link` NULL: 50 MiB/s, 0.5 ms), listening, and the client:
 * `cc`'s host, port, connect and connect_opaque are set here, its who when
 * NULL; the rest is the test's.  Returns g->client (NULL if the config is
 * refused). */
FakeClient *sim_spice_guest_client(SimSpiceGuest *g, const MigLinkParams *link, FakeClientConfig *cc);
/* Free everything (free_devices(opaque) frees the test's devices; may be
 * NULL).  Returns the loop's event sources still live after the second
 * run, before the loop is freed: 0 unless something leaked one. */
long sim_spice_guest_close(SimSpiceGuest *g, void (*free_devices)(void *opaque), void *opaque);

#endif
