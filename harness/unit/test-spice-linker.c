/*
 * test-spice-linker.c - the link stage on the loop (impl/spice/spice-linker.c),
 * server and client over the simulator's link: a spice-gtk-like client links
 * with and without a password, with and without auth selection, and each
 * refusal reaches both sides with the link error spice-server would send.
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

#include "sim/sim.h"
#include "spice/spice-linker.h"

typedef struct End {
    SpiceLinker *l;
    bool done;
    SpiceLinkResult res;
} End;

typedef struct Fixture {
    MigLoop *loop;
    SpiceTicketKey *key;
    MigPrng prng;
    End srv, cli;
    uint32_t refuse_with;
} Fixture;

static void done(void *opaque, SpiceLinkResult *res)
{
    End *e = opaque;
    e->done = true;
    e->res = *res;
    spice_linker_free(e->l);
    e->l = NULL;
}

static uint32_t check(void *opaque, const SpiceLinkMessInfo *m, SpiceCapSet *common, SpiceCapSet *channel,
                      char *why, size_t why_len)
{
    Fixture *f = (Fixture *)((char *)opaque - offsetof(Fixture, srv));
    spice_caps_set(common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION);
    spice_caps_set(common, SPICE_COMMON_CAP_AUTH_SPICE);
    spice_caps_set(common, SPICE_COMMON_CAP_MINI_HEADER);
    spice_caps_set(channel, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE);
    if (f->refuse_with)
        snprintf(why, why_len, "channel %u:%u is not offered", m->channel_type, m->channel_id);
    return f->refuse_with;
}

static void run(Fixture *f, bool ticketing, const char *srv_pw, const char *cli_pw, uint32_t common_caps,
                MigTransport **raw_client)
{
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(f->loop, NULL, &a, &b), 0);
    SpiceLinkServerConfig sc = {.key = f->key, .ticketing = ticketing, .password = srv_pw, .check = check};
    f->srv = (End){0};
    f->cli = (End){0};
    f->srv.l = spice_link_accept(f->loop, a, &sc, done, &f->srv);
    if (raw_client) {
        *raw_client = b;
    } else {
        SpiceLinkClientConfig cc = {.mess = {.channel_type = SPICE_CHANNEL_MAIN, .common = {{common_caps}, 1},
                                             .channel = {{0xf}, 1}},
                                    .password = cli_pw, .prng = &f->prng};
        f->cli.l = spice_link_connect(f->loop, b, &cc, done, &f->cli);
    }
    mig_sim_run_for(f->loop, 1000000000ull);
}

static void release(End *e)
{
    if (e->res.t)
        mig_transport_close(e->res.t);
    e->res.t = NULL;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->loop = mig_sim_loop_new(1);
    mig_prng_seed(&f->prng, 2);
    f->key = spice_ticket_key_new(&f->prng, NULL);
    *state = f;
    return f->key ? 0 : -1;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    release(&f->srv);
    release(&f->cli);
    mig_sim_run_for(f->loop, 1000000000ull);
    int live = (int)mig_sim_live_sources(f->loop);
    spice_ticket_key_free(f->key);
    f->loop->ops->free(f->loop);
    free(f);
    return live == 0 ? 0 : -1;
}

static void test_spice_linker_links_like_spice_gtk(void **state)
{
    Fixture *f = *state;
    /* spice-gtk's common caps 0xD: AUTH_SELECTION, SASL, MINI_HEADER */
    run(f, false, NULL, NULL, 0xd, NULL);
    assert_true(f->srv.done && f->cli.done);
    assert_int_equal(f->srv.res.err, 0);
    assert_int_equal(f->cli.res.err, 0);
    assert_non_null(f->srv.res.t);
    assert_non_null(f->cli.res.t);
    assert_true(f->srv.res.mini_header && f->cli.res.mini_header);
    assert_int_equal(f->srv.res.mess.channel_type, SPICE_CHANNEL_MAIN);
    assert_true(spice_caps_has(&f->cli.res.server_channel, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE));
    release(&f->srv);
    release(&f->cli);

    /* an old client: no auth selection, no mini header */
    run(f, false, NULL, NULL, 0, NULL);
    assert_int_equal(f->srv.res.err, 0);
    assert_int_equal(f->cli.res.err, 0);
    assert_false(f->srv.res.mini_header || f->cli.res.mini_header);
}

static void test_spice_linker_password(void **state)
{
    Fixture *f = *state;
    run(f, true, "s3cret", "s3cret", 0xd, NULL);
    assert_int_equal(f->srv.res.err, 0);
    assert_int_equal(f->cli.res.err, 0);
    release(&f->srv);
    release(&f->cli);

    run(f, true, "s3cret", "guess", 0xd, NULL);
    assert_int_equal(f->srv.res.err, -EPROTO);
    assert_int_equal(f->srv.res.link_err, SPICE_LINK_ERR_PERMISSION_DENIED);
    assert_string_equal(f->srv.res.reason, "ticket: wrong password");
    assert_null(f->srv.res.t);
    assert_int_equal(f->cli.res.err, -EACCES);
    assert_string_equal(f->cli.res.reason, "the server refused the ticket: PERMISSION_DENIED");

    /* ticketing on and no password set: nobody gets in */
    run(f, true, NULL, "", 0xd, NULL);
    assert_string_equal(f->srv.res.reason, "ticket: no password is set");
    assert_int_equal(f->cli.res.link_err, SPICE_LINK_ERR_PERMISSION_DENIED);
}

static void test_spice_linker_refusals_reach_the_client(void **state)
{
    Fixture *f = *state;
    f->refuse_with = SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE;
    run(f, false, NULL, NULL, 0xd, NULL);
    assert_string_equal(f->srv.res.reason, "link: channel 1:0 is not offered (CHANNEL_NOT_AVAILABLE)");
    assert_int_equal(f->cli.res.err, -ECONNREFUSED);
    assert_int_equal(f->cli.res.link_err, SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE);
    assert_string_equal(f->cli.res.reason, "the server refused the link: CHANNEL_NOT_AVAILABLE");
    f->refuse_with = 0;

    /* an HTTP client: INVALID_MAGIC, a 178-byte reply, then the close */
    MigTransport *raw;
    run(f, false, NULL, NULL, 0, &raw);
    assert_int_equal(mig_transport_write(raw, "GET / HTTP/1.1\r\n", 16), 16);
    mig_sim_run_for(f->loop, 1000000000ull);
    assert_true(f->srv.done);
    assert_int_equal(f->srv.res.link_err, SPICE_LINK_ERR_INVALID_MAGIC);
    uint8_t reply[256];
    ssize_t n = mig_transport_read(raw, reply, sizeof(reply));
    assert_int_equal(n, 16 + 178);
    assert_int_equal(reply[16], SPICE_LINK_ERR_INVALID_MAGIC);
    assert_int_equal(mig_transport_read(raw, reply, sizeof(reply)), 0); /* closed */
    mig_transport_close(raw);

    /* a client that goes away in the middle of its link message */
    run(f, false, NULL, NULL, 0, &raw);
    assert_int_equal(mig_transport_write(raw, "REDQ\2\0\0\0\2\0\0\0\32\0\0\0\0\0", 18), 18);
    mig_transport_close(raw);
    mig_sim_run_for(f->loop, 1000000000ull);
    assert_true(f->srv.done);
    assert_int_equal(f->srv.res.err, -ECONNRESET);
    assert_string_equal(f->srv.res.reason,
                        "link: the peer closed during the link stage (2 of 26 bytes of the link message)");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spice_linker_links_like_spice_gtk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spice_linker_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spice_linker_refusals_reach_the_client, setup, teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
