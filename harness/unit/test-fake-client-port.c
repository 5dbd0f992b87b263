/*
 * test-fake-client-port.c - the fake client (fakes/client) on a port that
 * is not migcert's device, on the simulator: a vendor's port (any name but
 * fake-vmc's) sends bytes of its own once the client opens it; the client
 * opens it with PORT_EVENT OPENED, accepts and counts every byte, writes
 * none of its own sequence to it and reports it as foreign with its name.
 * A port that carries migcert's name is still held to the sequence: a
 * foreign byte there is an error naming it.
 * Called by: `make unit` (cmocka).  Invariant: virtual time only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client.h"
#include "devices/fake-vmc.h"
#include "sim/sim.h"
#include "spice/spice-main.h"
#include "spice/spice-port.h"

static const char BANNER[] = "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ";

typedef struct Vendor {
    MigLoop *loop;
    SpiceServer *server;
    SpicePort *port;
    FakeClient *client;
    size_t from_client; /* bytes the client wrote to the device */
    int opened;         /* PORT_EVENT OPENED from the client */
} Vendor;

static MigTransport *vendor_connect(void *opaque, const char *host, uint16_t port, MigErr **errp)
{
    Vendor *v = opaque;
    MigTransport *a, *b;
    MigLinkParams lp = {.bandwidth = 10u << 20, .latency_ns = 200000};
    if (mig_transport_mem_pair(v->loop, &lp, &a, &b) < 0)
        return NULL;
    spice_server_accept(v->server, b);
    return a;
}

static void vendor_sink(void *opaque, const uint8_t *data, size_t len)
{
    ((Vendor *)opaque)->from_client += len;
}

static void vendor_event(void *opaque, uint8_t event)
{
    Vendor *v = opaque;
    if (event != SPICE_PORT_EVENT_OPENED)
        return;
    v->opened++; /* a monitor greets whoever opens it */
    spice_port_write(v->port, (const uint8_t *)BANNER, sizeof(BANNER) - 1);
}

static void vendor_writable(void *opaque) {}

static const SpicePortOps vendor_ops = {.sink = vendor_sink, .writable = vendor_writable,
                                        .client_event = vendor_event};

static void vendor_open(Vendor *v, const char *name)
{
    memset(v, 0, sizeof(*v));
    v->loop = mig_sim_loop_new(7);
    SpiceServerConfig sc = {.who = "vm"};
    v->server = spice_server_new(v->loop, &sc, NULL);
    spice_main_add(v->server);
    v->port = spice_port_add(v->server, 0, name, &vendor_ops, v);
    spice_port_set_open(v->port, true);
    FakeClientConfig cc = {.host = "sim", .port = 1, .connect = vendor_connect, .connect_opaque = v,
                           .vmc_bytes_per_tick = 1000, .who = "cli"};
    v->client = fake_client_new(v->loop, &cc);
    assert_int_equal(fake_client_start(v->client, NULL), 0);
    mig_sim_run_for(v->loop, 1000000000ull);
}

static void vendor_close(Vendor *v)
{
    fake_client_free(v->client);
    spice_port_free(v->port);
    spice_server_free(v->server);
    mig_sim_run_for(v->loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(v->loop), 0);
    v->loop->ops->free(v->loop);
}

static void test_fake_client_accepts_a_vendor_port(void **state)
{
    (void)state;
    Vendor v;
    vendor_open(&v, "org.qemu.monitor.hmp.0");
    assert_string_equal(fake_client_last_error(v.client), "");
    assert_true(fake_client_has_channel(v.client, SPICE_CHANNEL_PORT, 0));
    assert_int_equal(v.opened, 1);
    FakeClientMediaStats st;
    fake_client_media_stats(v.client, SPICE_CHANNEL_PORT, &st);
    assert_true(st.foreign);
    assert_string_equal(st.name, "org.qemu.monitor.hmp.0");
    assert_int_equal(st.received, sizeof(BANNER) - 1); /* every byte, once */
    assert_int_equal(st.gaps, 0);
    assert_int_equal(st.dups, 0);
    /* nothing of migcert's sequence went into the vendor's device */
    assert_int_equal(st.sent, 0);
    assert_int_equal(v.from_client, 0);
    vendor_close(&v);
}

static void test_fake_client_checks_a_port_named_migcerts(void **state)
{
    (void)state;
    Vendor v;
    vendor_open(&v, FAKE_VMC_PORT_NAME); /* the name, but not the device's bytes */
    assert_int_equal(v.opened, 0);        /* migcert's port streams unopened */
    assert_string_equal(fake_client_last_error(v.client), "");
    FakeClientMediaStats st;
    fake_client_media_stats(v.client, SPICE_CHANNEL_PORT, &st);
    assert_false(st.foreign);
    assert_string_equal(st.name, FAKE_VMC_PORT_NAME);
    spice_port_write(v.port, (const uint8_t *)BANNER, sizeof(BANNER) - 1);
    mig_sim_run_for(v.loop, 1000000000ull);
    assert_non_null(strstr(fake_client_last_error(v.client), "port byte 0 is 0x51, expected 0x"));
    assert_false(fake_client_has_channel(v.client, SPICE_CHANNEL_PORT, 0)); /* that channel ended */
    vendor_close(&v);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_client_accepts_a_vendor_port),
        cmocka_unit_test(test_fake_client_checks_a_port_named_migcerts),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
