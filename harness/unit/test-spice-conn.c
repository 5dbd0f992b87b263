/*
 * test-spice-conn.c - one SPICE connection (impl/spice/spice-conn.c) in both
 * roles over the simulator's in-memory link: messages arrive whole and in
 * order through a link that takes a few bytes at a time, the server's ACK
 * window holds messages until the client acknowledges them, PING gets its
 * PONG, and every bad message closes the connection with a reason that
 * names the channel and the message, leaving the loop running; a peer
 * that never reads is closed at the send queue's bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <spice/enums.h>

#include "sim/sim.h"
#include "spice/spice-conn.h"

#define MAX_SEEN 64

typedef struct Side {
    SpiceConn *conn;
    uint16_t seen[MAX_SEEN];
    uint32_t seen_v[MAX_SEEN];
    int nseen;
    bool closed;
    int close_err;
    char reason[256];
    int refuse_id; /* refuse this message id (on_message error) */
} Side;

static int on_message(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    Side *s = opaque;
    if (mi->id == s->refuse_id)
        return mig_err_set(errp, -EPROTO, "unexpected here");
    if (s->nseen < MAX_SEEN) {
        s->seen_v[s->nseen] = mi->desc->nfields && mi->desc->fields[0].type == SPICE_MT_U32 ? *(uint32_t *)body : 0;
        s->seen[s->nseen++] = mi->id;
    }
    return 0;
}

static void on_closed(void *opaque, int err, const char *reason)
{
    Side *s = opaque;
    s->closed = true;
    s->close_err = err;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static const SpiceConnOps ops = {.on_message = on_message, .on_closed = on_closed};

typedef struct Pair {
    MigLoop *loop;
    Side srv, cli;
} Pair;

static void pair_open(Pair *p, uint8_t channel, bool mini, size_t link_buffer)
{
    memset(p, 0, sizeof(*p));
    p->loop = mig_sim_loop_new(0x5eed);
    MigLinkParams lp = {.bandwidth = 10u << 20, .latency_ns = 1000000, .buffer = link_buffer};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(p->loop, &lp, &a, &b), 0);
    SpiceConnConfig sc = {.is_server = true, .mini_header = mini, .channel_type = channel, .max_in = 4096,
                          .who = "srv"};
    SpiceConnConfig cc = sc;
    cc.is_server = false;
    cc.max_in = 1 << 20;
    cc.who = "cli";
    p->srv.conn = spice_conn_new(p->loop, a, &sc, &ops, &p->srv);
    p->cli.conn = spice_conn_new(p->loop, b, &cc, &ops, &p->cli);
}

static void pair_close(Pair *p)
{
    spice_conn_free(p->srv.conn);
    spice_conn_free(p->cli.conn);
    mig_sim_run_for(p->loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(p->loop), 0);
    p->loop->ops->free(p->loop);
}

static const SpiceMDesc *desc(uint8_t ch, bool from_client, uint16_t id)
{
    return spice_msg_find(ch, from_client, id)->desc;
}

static void test_spice_conn_messages_arrive_in_order_through_a_narrow_link(void **state)
{
    (void)state;
    for (int mini = 0; mini < 2; mini++) {
        Pair p;
        pair_open(&p, SPICE_CHANNEL_MAIN, mini, 7); /* seven bytes in flight at most */
        for (uint32_t i = 0; i < 20; i++) {
            SpiceMsgU32 mmt = {1000 + i};
            assert_int_equal(spice_conn_send(p.srv.conn, SPICE_MSG_MAIN_MULTI_MEDIA_TIME,
                                             desc(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_MULTI_MEDIA_TIME),
                                             &mmt, NULL), 0);
        }
        assert_int_equal(spice_conn_send_raw(p.cli.conn, SPICE_MSGC_MAIN_ATTACH_CHANNELS, NULL, 0), 0);
        mig_sim_run_for(p.loop, 2000000000ull);
        assert_int_equal(p.cli.nseen, 20);
        for (int i = 0; i < 20; i++) {
            assert_int_equal(p.cli.seen[i], SPICE_MSG_MAIN_MULTI_MEDIA_TIME);
            assert_int_equal(p.cli.seen_v[i], 1000 + i);
        }
        assert_int_equal(p.srv.nseen, 1);
        assert_int_equal(p.srv.seen[0], SPICE_MSGC_MAIN_ATTACH_CHANNELS);
        assert_int_equal(spice_conn_last_received_serial(p.cli.conn), 20);
        assert_int_equal(spice_conn_backlog(p.srv.conn), 0);
        assert_false(p.srv.closed || p.cli.closed);
        pair_close(&p);
    }
}

/* Window 2: at most four messages go out before the client's first ACK;
 * the client acknowledges every second message, so all 30 arrive. */
static void test_spice_conn_ack_window_holds_and_releases(void **state)
{
    (void)state;
    Pair p;
    pair_open(&p, SPICE_CHANNEL_DISPLAY, true, 0);
    assert_int_equal(spice_conn_set_ack(p.srv.conn, 1, 2), 0);
    for (uint32_t i = 0; i < 30; i++) {
        SpiceMsgU32 id = {i};
        assert_int_equal(spice_conn_send(p.srv.conn, SPICE_MSG_DISPLAY_SURFACE_DESTROY,
                                         desc(SPICE_CHANNEL_DISPLAY, false, SPICE_MSG_DISPLAY_SURFACE_DESTROY),
                                         &id, NULL), 0);
    }
    /* before anything came back: SET_ACK plus three more left (four admitted) */
    mig_sim_run_for(p.loop, 500000ull); /* less than the 1 ms latency */
    assert_int_equal(spice_conn_queued_messages(p.srv.conn), 31 - 4);
    mig_sim_run_for(p.loop, 2000000000ull);
    assert_int_equal(p.cli.nseen, 30);
    assert_int_equal(p.cli.seen_v[29], 29);
    assert_int_equal(spice_conn_queued_messages(p.srv.conn), 0);
    pair_close(&p);
}

/* Seamless switch (docs/protocol-spice.md trap 6): the target's connection
 * starts with the source's window and nothing un-ACKed, and sends no
 * SET_ACK; the client's connection to it goes on counting from where its
 * source connection stopped (mid-window).  Window 2: were anything left
 * un-ACKed, or were the client's ACKs not credited for want of an
 * ACK_SYNC, the target would stall after at most four messages. */
static void test_spice_conn_seamless_target_starts_with_a_zeroed_window(void **state)
{
    (void)state;
    Pair src, dst;
    pair_open(&src, SPICE_CHANNEL_DISPLAY, true, 0);
    assert_int_equal(spice_conn_set_ack(src.srv.conn, 1, 2), 0);
    const SpiceMDesc *d = desc(SPICE_CHANNEL_DISPLAY, false, SPICE_MSG_DISPLAY_SURFACE_DESTROY);
    for (uint32_t i = 0; i < 5; i++) { /* odd: the client is one message into a window */
        SpiceMsgU32 id = {i};
        assert_int_equal(spice_conn_send(src.srv.conn, SPICE_MSG_DISPLAY_SURFACE_DESTROY, d, &id, NULL), 0);
    }
    mig_sim_run_for(src.loop, 2000000000ull);
    assert_int_equal(src.cli.nseen, 5);
    pair_open(&dst, SPICE_CHANNEL_DISPLAY, true, 0);
    spice_conn_inherit(dst.cli.conn, src.cli.conn);
    spice_conn_resume_ack(dst.srv.conn, 1, 2);
    for (uint32_t i = 0; i < 30; i++) {
        SpiceMsgU32 id = {100 + i};
        assert_int_equal(spice_conn_send(dst.srv.conn, SPICE_MSG_DISPLAY_SURFACE_DESTROY, d, &id, NULL), 0);
    }
    /* before anything came back: four admitted, as on a fresh window, and no
     * SET_ACK queued before them (it would count: 31 - 4) */
    mig_sim_run_for(dst.loop, 500000ull);
    assert_int_equal(spice_conn_queued_messages(dst.srv.conn), 30 - 4);
    mig_sim_run_for(dst.loop, 2000000000ull);
    assert_int_equal(dst.cli.nseen, 30);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(dst.cli.seen[i], SPICE_MSG_DISPLAY_SURFACE_DESTROY);
        assert_int_equal(dst.cli.seen_v[i], 100 + i);
    }
    assert_int_equal(spice_conn_queued_messages(dst.srv.conn), 0);
    assert_false(dst.srv.closed || dst.cli.closed);
    pair_close(&dst);
    pair_close(&src);
}

static void test_spice_conn_ping_gets_a_pong(void **state)
{
    (void)state;
    Pair p;
    pair_open(&p, SPICE_CHANNEL_MAIN, false, 0);
    assert_int_equal(spice_conn_ping(p.srv.conn, 256000), 1); /* the first PING id */
    mig_sim_run_for(p.loop, 2000000000ull);
    /* 1 ms each way, and 256 KB at 10 MiB/s: about 26 ms */
    uint64_t rtt = spice_conn_last_rtt_ns(p.srv.conn);
    assert_true(rtt > 2000000ull && rtt < 100000000ull);
    assert_int_equal(p.cli.nseen, 0); /* answered by the connection itself */
    pair_close(&p);
}

static void expect_close(Pair *p, const char *want)
{
    mig_sim_run_for(p->loop, 2000000000ull);
    assert_true(p->srv.closed);
    assert_int_equal(p->srv.close_err, -EPROTO);
    assert_string_equal(p->srv.reason, want);
    assert_false(spice_conn_is_open(p->srv.conn));
    /* the client sees the server go away */
    assert_true(p->cli.closed);
    assert_int_equal(p->cli.close_err, 0);
}

static void test_spice_conn_bad_messages_close_with_a_reason(void **state)
{
    (void)state;
    Pair p;
    /* a message id the channel does not have */
    pair_open(&p, SPICE_CHANNEL_DISPLAY, true, 0);
    spice_conn_send_raw(p.cli.conn, 999, (const uint8_t *)"x", 1);
    expect_close(&p, "channel DISPLAY: unknown message 999 (1 bytes)");
    pair_close(&p);

    /* a truncated body */
    pair_open(&p, SPICE_CHANNEL_DISPLAY, true, 0);
    spice_conn_send_raw(p.cli.conn, SPICE_MSGC_DISPLAY_INIT, (const uint8_t *)"\1\2\3", 3);
    expect_close(&p, "channel DISPLAY: message DISPLAY_INIT: DisplayInit: field pixmap_cache_size: needs 8 "
                     "byte(s), the body ends after 2 (at byte 1 of a 3-byte body)");
    pair_close(&p);

    /* larger than the server accepts */
    pair_open(&p, SPICE_CHANNEL_MAIN, true, 0);
    uint8_t *big = calloc(1, 5000);
    spice_conn_send_raw(p.cli.conn, SPICE_MSGC_MAIN_AGENT_DATA, big, 5000);
    free(big);
    expect_close(&p, "channel MAIN: message 107 (MAIN_AGENT_DATA) of 5000 bytes, more than the 4096 allowed");
    pair_close(&p);

    /* refused by the channel */
    pair_open(&p, SPICE_CHANNEL_MAIN, true, 0);
    p.srv.refuse_id = SPICE_MSGC_MIGRATE_FLUSH_MARK;
    spice_conn_send_raw(p.cli.conn, SPICE_MSGC_MIGRATE_FLUSH_MARK, NULL, 0);
    expect_close(&p, "channel MAIN: message MIGRATE_FLUSH_MARK: unexpected here");
    pair_close(&p);

    /* a full header whose serial skips */
    pair_open(&p, SPICE_CHANNEL_MAIN, false, 0);
    spice_conn_set_sent_serial(p.cli.conn, 41);
    spice_conn_send_raw(p.cli.conn, SPICE_MSGC_MAIN_ATTACH_CHANNELS, NULL, 0);
    expect_close(&p, "channel MAIN: message 104 has serial 42, expected 1");
    pair_close(&p);
}

/* A client that never reads: the server's send queue stops at its bound
 * and the connection closes with a reason, instead of queueing forever. */
static void test_spice_conn_send_queue_is_bounded_for_a_peer_that_never_reads(void **state)
{
    (void)state;
    MigLoop *loop = mig_sim_loop_new(0x5eed);
    MigLinkParams lp = {.bandwidth = 10u << 20, .latency_ns = 1000000, .buffer = 65536};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(loop, &lp, &a, &b), 0);
    SpiceConnConfig sc = {.is_server = true, .mini_header = true,
                          .channel_type = SPICE_CHANNEL_PORT, .max_in = 4096, .who = "srv"};
    Side srv = {0};
    SpiceConn *c = spice_conn_new(loop, a, &sc, &ops, &srv);
    size_t body = 1u << 20;
    uint8_t *big = calloc(1, body);
    int sent = 0, r = 0;
    while (sent < 200 && (r = spice_conn_send_raw(c, SPICE_MSG_PORT_EVENT, big, (uint32_t)body)) == 0) {
        sent++;
        mig_sim_run_for(loop, 1000000ull); /* b never reads: the link fills */
    }
    free(big);
    assert_int_equal(r, -EPIPE);
    assert_true(sent >= (int)(SPICE_CONN_MAX_BACKLOG / body) - 1);
    assert_true(sent <= (int)(SPICE_CONN_MAX_BACKLOG / body) + 1);
    mig_sim_run_for(loop, 1000000ull);
    assert_true(srv.closed);
    assert_int_equal(srv.close_err, -ENOBUFS);
    assert_non_null(strstr(srv.reason, "send queue over 64 MiB unread by the peer"));
    spice_conn_free(c);
    mig_transport_close(b);
    mig_sim_run_for(loop, 1000000000ull);
    assert_int_equal(mig_sim_live_sources(loop), 0);
    loop->ops->free(loop);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_conn_messages_arrive_in_order_through_a_narrow_link),
        cmocka_unit_test(test_spice_conn_ack_window_holds_and_releases),
        cmocka_unit_test(test_spice_conn_seamless_target_starts_with_a_zeroed_window),
        cmocka_unit_test(test_spice_conn_ping_gets_a_pong),
        cmocka_unit_test(test_spice_conn_bad_messages_close_with_a_reason),
        cmocka_unit_test(test_spice_conn_send_queue_is_bounded_for_a_peer_that_never_reads),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
