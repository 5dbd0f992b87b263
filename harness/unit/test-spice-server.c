/*
 * test-spice-server.c - a SPICE server (impl/spice/spice-server.c, main
 * channel) and the fake client (fakes/client) on the simulator: the client
 * links main, gets MAIN_INIT, NAME and UUID, asks for the channels and links
 * every one; a session ends with its main channel; links that name no
 * session or an unknown channel are refused; nothing is left on the loop.
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

#include "client/fake-client-internal.h"
#include "sim/sim.h"
#include "sim/spice-net.h"
#include "spice/spice-main.h"

/* a channel that accepts its link and nothing else (stands for the channel
 * classes built elsewhere) */
static int quiet_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    return mi->id == SPICE_MSGC_DISPLAY_INIT ? 0 : mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
}

static const SpiceChannelClass quiet_class = {.name = "quiet", .max_in = 1024, .on_message = quiet_message};

typedef struct Net {
    MigLoop *loop;
    SpiceServer *server;
    SimSpiceNet net;
} Net;

static void net_open(Net *n, bool ticketing, const char *password)
{
    memset(n, 0, sizeof(*n));
    n->loop = mig_sim_loop_new(0x5eed);
    SpiceServerConfig sc = {.ticketing = ticketing, .password = password, .name = "vm-one", .who = "srv",
                            .uuid = {1, 2, 3}};
    n->server = spice_server_new(n->loop, &sc, NULL);
    assert_non_null(n->server);
    spice_main_add(n->server);
    spice_server_add_channel(n->server, SPICE_CHANNEL_DISPLAY, 0, &quiet_class, NULL);
    spice_server_add_channel(n->server, SPICE_CHANNEL_PLAYBACK, 0, &quiet_class, NULL);
    sim_spice_net_init(&n->net, n->loop, &(MigLinkParams){.bandwidth = 100u << 20, .latency_ns = 200000});
    sim_spice_net_listen(&n->net, 5900, n->server);
}

static void net_close(Net *n)
{
    spice_server_free(n->server);
    mig_sim_run_for(n->loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(n->loop), 0);
    n->loop->ops->free(n->loop);
}

static FakeClient *client_new(Net *n, const char *password)
{
    FakeClientConfig cc = {.host = "sim", .port = 5900, .connect = sim_spice_net_connect, .connect_opaque = &n->net,
                           .password = password, .who = "cli"};
    FakeClient *c = fake_client_new(n->loop, &cc);
    assert_int_equal(fake_client_start(c, NULL), 0);
    return c;
}

static void test_spice_server_client_links_every_channel(void **state)
{
    (void)state;
    Net n;
    net_open(&n, false, NULL);
    FakeClient *c = client_new(&n, NULL);
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_string_equal(fake_client_last_error(c), "");
    assert_int_equal(fake_client_linked_channels(c), 3);
    assert_int_equal(n.net.connects, 3);
    assert_int_equal(spice_server_client_count(n.server), 1);
    assert_int_equal(spice_server_channel_clients(n.server), 3);
    assert_int_not_equal(fake_client_session_id(c), 0);
    assert_int_equal(spice_client_session_id(spice_server_client_at(n.server, 0)), fake_client_session_id(c));
    assert_int_equal(fake_client_count(c, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_INIT), 1);
    assert_int_equal(fake_client_count(c, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_NAME), 1);
    assert_int_equal(fake_client_count(c, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_UUID), 1);
    assert_int_equal(fake_client_count(c, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST), 1);
    /* CHANNELS_LIST comes only after ATTACH_CHANNELS */
    size_t ne;
    const FakeClientEvent *ev = fake_client_events(c, &ne);
    size_t attach = ne, list = ne;
    for (size_t i = 0; i < ne; i++) {
        if (ev[i].sent && ev[i].msg == SPICE_MSGC_MAIN_ATTACH_CHANNELS && attach == ne)
            attach = i;
        if (!ev[i].sent && ev[i].msg == SPICE_MSG_MAIN_CHANNELS_LIST)
            list = i;
    }
    assert_true(attach < list && list < ne);

    /* the user closes the client: the server's session ends with every channel */
    fake_client_disconnect(c);
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(spice_server_client_count(n.server), 0);
    assert_int_equal(spice_server_channel_clients(n.server), 0);
    assert_int_equal(fake_client_linked_channels(c), 0);
    fake_client_free(c);
    net_close(&n);
}

static void test_spice_server_password(void **state)
{
    (void)state;
    Net n;
    net_open(&n, true, "pw");
    FakeClient *good = client_new(&n, "pw"), *bad = client_new(&n, "nope");
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(good), 3);
    assert_int_equal(fake_client_linked_channels(bad), 0);
    assert_string_equal(fake_client_last_error(bad), "MAIN:0: the server refused the ticket: PERMISSION_DENIED");
    assert_int_equal(spice_server_client_count(n.server), 1);
    /* a new password locks out the next client, not the linked one */
    spice_server_set_password(n.server, "other");
    FakeClient *late = client_new(&n, "pw");
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(late), 0);
    assert_int_equal(fake_client_linked_channels(good), 3);
    /* expire_password: from then on the password no longer opens a session */
    spice_server_set_password(n.server, "pw");
    spice_server_set_password_expiry(n.server, mig_loop_now_ns(n.loop) + 500000000ull);
    FakeClient *before = client_new(&n, "pw");
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(before), 3);
    FakeClient *after = client_new(&n, "pw");
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(after), 0);
    assert_int_equal(fake_client_linked_channels(before), 3); /* a linked client stays */
    fake_client_free(before);
    fake_client_free(after);
    fake_client_free(good);
    fake_client_free(bad);
    fake_client_free(late);
    net_close(&n);
}

/* A client that breaks the protocol loses its session; the other client
 * and the process go on untouched. */
static void test_spice_server_bad_client_leaves_others_alone(void **state)
{
    (void)state;
    Net n;
    net_open(&n, false, NULL);
    FakeClient *bad = client_new(&n, NULL), *good = client_new(&n, NULL);
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(spice_server_client_count(n.server), 2);
    /* an unknown message on the bad client's main channel */
    FakeChannel *m = NULL;
    for (size_t i = 0; i < bad->nchans; i++)
        if (bad->chans[i]->type == SPICE_CHANNEL_MAIN)
            m = bad->chans[i];
    assert_non_null(m);
    assert_int_equal(spice_conn_send_raw(m->conn, 999, (const uint8_t *)"junk", 4), 0);
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(bad), 0);
    assert_int_equal(fake_client_linked_channels(good), 3);
    assert_int_equal(spice_server_client_count(n.server), 1);
    assert_int_equal(spice_client_session_id(spice_server_client_at(n.server, 0)), fake_client_session_id(good));
    assert_int_equal(spice_server_channel_clients(n.server), 3);
    fake_client_free(bad);
    fake_client_free(good);
    net_close(&n);
}

/* A server freed with a client still linked leaves nothing behind, and the
 * client sees its channels close. */
static void test_spice_server_free_with_clients(void **state)
{
    (void)state;
    Net n;
    net_open(&n, false, NULL);
    FakeClient *c = client_new(&n, NULL);
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(c), 3);
    spice_server_free(n.server);
    n.server = NULL;
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(fake_client_linked_channels(c), 0);
    fake_client_free(c);
    mig_sim_run_for(n.loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(n.loop), 0);
    n.loop->ops->free(n.loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_server_client_links_every_channel),
        cmocka_unit_test(test_spice_server_password),
        cmocka_unit_test(test_spice_server_free_with_clients),
        cmocka_unit_test(test_spice_server_bad_client_leaves_others_alone),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
