/*
 * test-fake-input.c - the guest's keyboard, mouse and cursor
 * (fakes/devices/fake-input.c) behind a SPICE server, with the fake client
 * typing (cfg.inputs) over the simulator: every group the client sends
 * reaches the guest once and in order, also while the guest is stopped
 * (queued, taken on resume, nothing lost); a group sent again, a group
 * skipped and a key out of place are each counted as what they are; the
 * client's cursor follows the guest's through shape changes, moves and
 * hiding; the device's state carries the cursor and the sequence to a
 * second device, whose first event shows what was lost on the way (the
 * one loss the SPICE oracle allows) and nothing else.
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
#include "devices/fake-input.h"
#include "devices/fake-media.h"
#include "savevm/savevm.h"
#include "stream/stream.h"
#include "sim/sim.h"
#include "sim/spice-guest.h"
#include "spice/spice-inputs.h"

typedef struct Guest {
    SimSpiceGuest sg;
    SpiceInputsStats stats;
    FakeInput *input;
} Guest;

static void guest_open(Guest *g, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    sim_spice_guest_open(&g->sg, seed, NULL);
    spice_inputs_add(g->sg.server, &g->stats);
    g->input = fake_input_new(g->sg.loop, g->sg.server, NULL);
    assert_non_null(g->input);
    assert_non_null(sim_spice_guest_client(&g->sg, NULL, &(FakeClientConfig){.inputs = true}));
    assert_int_equal(fake_client_start(g->sg.client, NULL), 0);
}

static void guest_free_devices(void *opaque)
{
    fake_input_free(((Guest *)opaque)->input);
}

static void guest_close(Guest *g)
{
    assert_int_equal(sim_spice_guest_close(&g->sg, guest_free_devices, g), 0);
}

/* The client stops typing; what it sent arrives. */
static void stop_typing(Guest *g)
{
    fake_client_stop_inputs(g->sg.client);
    mig_sim_run_for(g->sg.loop, 500000000ull);
}

static void expect_cursor_equal(Guest *g)
{
    FakeClientCursor c;
    FakeInputCursor d;
    fake_client_cursor(g->sg.client, &c);
    fake_input_cursor(g->input, &d);
    assert_true(c.have && c.has_shape);
    assert_int_equal(c.unique, d.unique);
    assert_int_equal(c.width, d.width);
    assert_int_equal(c.hot_x, d.hot_x);
    assert_int_equal(c.hot_y, d.hot_y);
    assert_int_equal(c.digest, d.digest);
    assert_int_equal(c.x, d.x);
    assert_int_equal(c.y, d.y);
    assert_int_equal(c.visible, d.visible);
}

static void test_fake_input_every_group_once_in_order(void **state)
{
    (void)state;
    Guest g;
    guest_open(&g, 7);
    fake_input_set_running(g.input, true);
    mig_sim_run_for(g.sg.loop, 2000000000ull);
    /* stopped for a second: the guest queues, then takes it all */
    fake_input_set_running(g.input, false);
    mig_sim_run_for(g.sg.loop, 1000000000ull);
    FakeInputStats st;
    fake_input_stats(g.input, &st);
    assert_true(st.queued >= 3 * 15); /* 20 groups a second */
    fake_input_set_running(g.input, true);
    mig_sim_run_for(g.sg.loop, 1000000000ull);
    stop_typing(&g);
    fake_input_stats(g.input, &st);
    uint64_t sent = fake_client_input_groups(g.sg.client);
    assert_true(sent >= 70);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.next_group, sent);
    assert_int_equal(st.seen_next, sent);
    assert_int_equal(st.events, 3 * sent);
    assert_int_equal(st.motions, sent); /* the server offers server mouse mode only */
    assert_int_equal(st.gaps + st.dups + st.out_of_order + st.restart_gaps + st.overflow, 0);
    assert_int_equal(g.stats.keys, 2 * sent);
    assert_string_equal(fake_client_last_error(g.sg.client), "");
    /* four seconds of 30 ms steps: many moves, hidden spans, new shapes;
     * the guest stops so that its last move reaches the client */
    fake_input_set_running(g.input, false);
    mig_sim_run_for(g.sg.loop, 100000000ull);
    expect_cursor_equal(&g);
    assert_true(fake_client_count(g.sg.client, SPICE_CHANNEL_CURSOR, SPICE_MSG_CURSOR_SET) >= 4);
    assert_true(fake_client_count(g.sg.client, SPICE_CHANNEL_CURSOR, SPICE_MSG_CURSOR_HIDE) >= 1);
    assert_true(fake_client_count(g.sg.client, SPICE_CHANNEL_CURSOR, SPICE_MSG_CURSOR_MOVE) >= 50);
    guest_close(&g);
}

/* A repeat, a skip and a key out of place are each told apart. */
static void test_fake_input_counts_each_fault(void **state)
{
    (void)state;
    Guest g;
    guest_open(&g, 8);
    fake_input_set_running(g.input, true);
    mig_sim_run_for(g.sg.loop, 1000000000ull);
    stop_typing(&g);
    FakeInputStats st;
    fake_input_stats(g.input, &st);
    uint64_t next = st.next_group;
    assert_int_equal(st.gaps + st.dups + st.out_of_order, 0);
    /* group 0's mouse event again: a repeat */
    uint8_t b[10] = {0};
    fake_client_send_raw(g.sg.client, SPICE_CHANNEL_INPUTS, 0, SPICE_MSGC_INPUTS_MOUSE_MOTION, b, sizeof(b));
    mig_sim_run_for(g.sg.loop, 100000000ull);
    fake_input_stats(g.input, &st);
    assert_int_equal(st.dups, 1);
    assert_int_equal(st.gaps + st.out_of_order, 0);
    /* group next + 5: five lost on a running guest (not at a restart) */
    b[0] = (uint8_t)(next + 5);
    fake_client_send_raw(g.sg.client, SPICE_CHANNEL_INPUTS, 0, SPICE_MSGC_INPUTS_MOUSE_MOTION, b, sizeof(b));
    /* its KEY_UP before its KEY_DOWN: out of order */
    uint8_t k[4] = {(uint8_t)(0x10 + (next + 5) % 0x1c)};
    fake_client_send_raw(g.sg.client, SPICE_CHANNEL_INPUTS, 0, SPICE_MSGC_INPUTS_KEY_UP, k, sizeof(k));
    mig_sim_run_for(g.sg.loop, 100000000ull);
    fake_input_stats(g.input, &st);
    assert_int_equal(st.gaps, 5);
    assert_int_equal(st.restart_gaps, 0);
    assert_int_equal(st.out_of_order, 1);
    guest_close(&g);
}

/* The state goes to a second guest: its cursor is the first's, and the
 * groups the first took after its state went out show, at the second's
 * first event, as exactly that many lost at the restart. */
static void test_fake_input_state_migrates(void **state)
{
    (void)state;
    Guest a, b;
    guest_open(&a, 9);
    guest_open(&b, 9);
    fake_input_set_running(a.input, true);
    mig_sim_run_for(a.sg.loop, 1000000000ull);
    fake_input_set_running(a.input, false);
    MigSavevm *sva = mig_savevm_new(), *svb = mig_savevm_new();
    assert_int_equal(fake_input_register(a.input, sva, NULL), 0);
    assert_int_equal(fake_input_register(b.input, svb, NULL), 0);
    MigStream *w = mig_stream_new_mem_writer();
    assert_int_equal(mig_savevm_entry_save_full(mig_savevm_find(sva, "fake-input", 0), w, NULL), 0);
    size_t len;
    const uint8_t *data = mig_stream_mem_data(w, &len);
    MigStream *s = mig_stream_new_mem_reader(data, len);
    mig_sim_run_for(a.sg.loop, 500000000ull); /* the source takes ten groups after that */
    FakeInputStats sa;
    fake_input_stats(a.input, &sa);
    assert_int_equal(sa.after_save, 10);
    assert_int_equal(mig_savevm_entry_load_full(mig_savevm_find(svb, "fake-input", 0), s, 1, NULL), 0);
    FakeInputCursor ca, cb;
    fake_input_cursor(a.input, &ca);
    fake_input_cursor(b.input, &cb);
    assert_memory_equal(&ca, &cb, sizeof(ca));
    /* the target's first event: the client's next group */
    int32_t x, y;
    uint64_t g0 = fake_client_input_groups(a.sg.client);
    fake_media_input_xy(g0, &x, &y);
    uint8_t m[10] = {(uint8_t)x, (uint8_t)(x >> 8), 0, 0, (uint8_t)y, (uint8_t)(y >> 8)};
    fake_input_set_running(b.input, true);
    fake_client_stop_inputs(b.sg.client);
    mig_sim_run_for(b.sg.loop, 200000000ull);
    fake_client_send_raw(b.sg.client, SPICE_CHANNEL_INPUTS, 0, SPICE_MSGC_INPUTS_MOUSE_MOTION, m, sizeof(m));
    mig_sim_run_for(b.sg.loop, 100000000ull);
    FakeInputStats sb;
    fake_input_stats(b.input, &sb);
    assert_int_equal(sb.restart_gaps, sa.after_save);
    assert_int_equal(sb.gaps + sb.dups, 0);
    mig_stream_free(s);
    mig_stream_free(w);
    mig_savevm_free(sva);
    mig_savevm_free(svb);
    guest_close(&a);
    guest_close(&b);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_input_every_group_once_in_order),
        cmocka_unit_test(test_fake_input_counts_each_fault),
        cmocka_unit_test(test_fake_input_state_migrates),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
