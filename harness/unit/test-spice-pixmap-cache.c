/*
 * test-spice-pixmap-cache.c - one client's pixmap cache shared by several
 * display channels (impl/spice/spice-pixmap-cache.c and its use in
 * spice-display.c): the waits that keep cache operations on different
 * sockets in the server's order, the cache part of the display migration
 * blob (exact bytes, round trip, every truncation, bad content), and both
 * seamless strategies on the wire with the fake client: reset empties the
 * client's cache with INVAL_ALL_PIXMAPS after the other head's last serial,
 * restore keeps it and sends no cached image again; a version-1 blob (no
 * restore list) resets whatever the target's own strategy.
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
#include "sim/sim.h"
#include "sim/spice-guest.h"
#include "spice/spice-migrate-data.h"
#include "spice/spice-display.h"
#include "spice/spice-pixmap-cache.h"

/* ------------------------------------------------------------------ the record and its waits */

static void expect_wait(const SpicePixmapWaits *w, uint32_t i, uint8_t id, uint64_t serial)
{
    assert_true(i < w->n);
    assert_int_equal(w->items[i].channel_type, SPICE_CHANNEL_DISPLAY);
    assert_int_equal(w->items[i].channel_id, id);
    assert_int_equal(w->items[i].serial, serial);
}

static void test_spice_pixmap_cache_waits_keep_the_servers_order(void **state)
{
    (void)state;
    SpicePixmapCache *pc = spice_pixmap_cache_new(1, 100);
    SpicePixmapWaits w;
    uint64_t *ev;
    size_t nev;
    /* head 0 adds image 1 in its message 5 */
    assert_true(spice_pixmap_cache_add(pc, 0, 1, 60, &ev, &nev, &w));
    assert_int_equal(nev, 0);
    assert_int_equal(w.n, 0);
    spice_pixmap_cache_use_sent(pc, 0, 1, 5);
    /* head 1 takes it FROM_CACHE: it must wait for head 0's message 5 */
    assert_true(spice_pixmap_cache_hit(pc, 1, 1, &w));
    assert_int_equal(w.n, 1);
    expect_wait(&w, 0, 0, 5);
    spice_pixmap_cache_use_sent(pc, 1, 1, 9);
    /* once waited, not again */
    assert_true(spice_pixmap_cache_hit(pc, 1, 1, &w));
    assert_int_equal(w.n, 0);
    spice_pixmap_cache_use_sent(pc, 1, 1, 12);
    /* head 0 adds image 2: image 1 goes, and head 1 used it in message 12 */
    assert_true(spice_pixmap_cache_add(pc, 0, 2, 60, &ev, &nev, &w));
    assert_int_equal(nev, 1);
    assert_int_equal(ev[0], 1);
    free(ev);
    assert_int_equal(w.n, 1);
    expect_wait(&w, 0, 1, 12);
    spice_pixmap_cache_inval_sent(pc, 0, 20);
    spice_pixmap_cache_use_sent(pc, 0, 2, 21);
    /* head 1 adds image 1 again: after head 0's INVAL (20) and its add of 2
     * (21, evicted now) */
    assert_true(spice_pixmap_cache_add(pc, 1, 1, 60, &ev, &nev, &w));
    assert_int_equal(nev, 1);
    assert_int_equal(ev[0], 2);
    free(ev);
    assert_int_equal(w.n, 1);
    expect_wait(&w, 0, 0, 21);
    /* too large, or frozen: not cached */
    assert_false(spice_pixmap_cache_add(pc, 1, 3, 101, &ev, &nev, &w));
    spice_pixmap_cache_freeze(pc, false);
    assert_false(spice_pixmap_cache_add(pc, 1, 3, 10, &ev, &nev, &w));
    assert_false(spice_pixmap_cache_hit(pc, 1, 1, &w));
    spice_pixmap_cache_unfreeze(pc);
    assert_true(spice_pixmap_cache_hit(pc, 1, 1, &w));
    spice_pixmap_cache_free(pc);
}

/* ------------------------------------------------------------------ the blob */

static SpicePixmapCache *three_images(void)
{
    SpicePixmapCache *pc = spice_pixmap_cache_new(1, 1000);
    SpicePixmapWaits w;
    uint64_t *ev;
    size_t nev;
    for (uint64_t id = 1; id <= 3; id++) {
        assert_true(spice_pixmap_cache_add(pc, (uint8_t)(id % 2), id, 100 * id, &ev, &nev, &w));
        spice_pixmap_cache_use_sent(pc, (uint8_t)(id % 2), id, 10 * id);
    }
    assert_true(spice_pixmap_cache_hit(pc, 0, 1, &w)); /* order: 2, 3, 1 */
    spice_pixmap_cache_use_sent(pc, 0, 1, 40);
    return pc;
}

/* The fixed part of a display blob of this build's version (2: a restore
 * list, when there is one, counts; below 2 a target resets). */
static void blank_blob(MigBuf *b)
{
    memset(b, 0, sizeof(*b));
    uint8_t *p = mig_buf_reserve(b, SPICE_DCMD_BODY_END);
    memset(p, 0, SPICE_DCMD_BODY_END);
    for (int k = 0; k < 4; k++) {
        p[k] = (uint8_t)(SPICE_MIG_MAGIC_DISPLAY >> (8 * k));
        p[4 + k] = (uint8_t)(SPICE_MIG_VERSION_DISPLAY >> (8 * k));
    }
    b->len = SPICE_DCMD_BODY_END;
}

static void test_spice_pixmap_cache_blob_bytes_and_round_trip(void **state)
{
    (void)state;
    SpicePixmapCache *pc = three_images();
    MigBuf b;
    blank_blob(&b);
    assert_int_equal(spice_pixmap_cache_export(pc, SPICE_PIXMAP_CACHE_MIG_RESET, true, &b, NULL), 0);
    assert_int_equal(b.len, SPICE_DCMD_BODY_END); /* reset: no list */
    static const uint8_t fixed[SPICE_DCMD_CACHE_LEN] = {
        1,                                   /* pixmap_cache_id */
        0xe8, 0x03, 0, 0, 0, 0, 0, 0,         /* pixmap_cache_size 1000 */
        1,                                   /* freezer */
        40, 0, 0, 0, 0, 0, 0, 0,              /* clients[0]: head 0's last use */
        30, 0, 0, 0, 0, 0, 0, 0,              /* clients[1] */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(b.data + SPICE_DCMD_CACHE_OFFSET, fixed, sizeof(fixed));
    assert_int_equal(b.data[SPICE_DCMD_CACHE_OFFSET - 1], 0); /* nothing else written */
    assert_int_equal(b.data[SPICE_DCMD_CACHE_OFFSET + SPICE_DCMD_CACHE_LEN], 0);
    mig_buf_free(&b);

    blank_blob(&b);
    assert_int_equal(spice_pixmap_cache_export(pc, SPICE_PIXMAP_CACHE_MIG_RESTORE, false, &b, NULL), 0);
    assert_int_equal(b.len, SPICE_DCMD_BODY_END + 12 + 3 * SPICE_DCMD_RESTORE_ITEM);
    static const uint8_t list_head[16] = {'P', 'X', 'C', 'R', 1, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0};
    assert_memory_equal(b.data + SPICE_DCMD_BODY_END, list_head, sizeof(list_head)); /* first: image 2 */

    SpicePixmapCacheBlob pb;
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, NULL), 0);
    assert_int_equal(pb.cache_id, 1);
    assert_int_equal(pb.size, 1000);
    assert_false(pb.freezer);
    assert_true(pb.has_items);
    assert_int_equal(pb.nitems, 3);
    SpicePixmapCache *to = spice_pixmap_cache_new(pb.cache_id, (uint64_t)pb.size);
    assert_int_equal(spice_pixmap_cache_import(to, &pb, NULL), 0);
    assert_int_equal(spice_pixmap_cache_count(to), 3);
    assert_int_equal(spice_pixmap_cache_id_at(to, 0), 2);
    assert_int_equal(spice_pixmap_cache_id_at(to, 1), 3);
    assert_int_equal(spice_pixmap_cache_id_at(to, 2), 1);
    assert_int_equal(spice_pixmap_cache_used(to), 600);
    assert_int_equal(spice_pixmap_cache_last_serial(to, 0), 40);
    assert_int_equal(spice_pixmap_cache_last_serial(to, 1), 30);
    /* the same state exports the same bytes */
    MigBuf again;
    blank_blob(&again);
    assert_int_equal(spice_pixmap_cache_export(to, SPICE_PIXMAP_CACHE_MIG_RESTORE, false, &again, NULL), 0);
    assert_int_equal(again.len, b.len);
    assert_memory_equal(again.data, b.data, b.len);
    mig_buf_free(&again);
    /* the restored serials still order the waits: head 1 hitting image 3,
     * added by head 1 itself, waits for nothing; hitting image 2 (head 0's
     * message 20) waits for it */
    SpicePixmapWaits w;
    assert_true(spice_pixmap_cache_hit(to, 1, 3, &w));
    assert_int_equal(w.n, 0);
    assert_true(spice_pixmap_cache_hit(to, 1, 2, &w));
    assert_int_equal(w.n, 1);
    expect_wait(&w, 0, 0, 20);
    spice_pixmap_cache_free(to);

    /* every truncation: the body needs 80 bytes, the list all of itself */
    for (size_t len = 0; len < b.len; len++) {
        MigErr *err = NULL;
        int r = spice_pixmap_cache_parse(b.data, len, &pb, &err);
        if (len < SPICE_DCMD_BODY_END || len >= SPICE_DCMD_BODY_END + 4) {
            assert_int_equal(r, -EPROTO);
            assert_non_null(strstr(err->msg, "display migration data"));
        } else {
            assert_int_equal(r, 0); /* no list: too short to have its magic */
            assert_false(pb.has_items);
        }
        mig_err_free(err);
    }
    mig_buf_free(&b);
    spice_pixmap_cache_free(pc);
}

static void test_spice_pixmap_cache_blob_bad_content_refused(void **state)
{
    (void)state;
    SpicePixmapCache *pc = three_images();
    MigBuf b;
    blank_blob(&b);
    assert_int_equal(spice_pixmap_cache_export(pc, SPICE_PIXMAP_CACHE_MIG_RESTORE, true, &b, NULL), 0);
    SpicePixmapCacheBlob pb;
    MigErr *err = NULL;
    uint8_t *item1 = b.data + SPICE_DCMD_BODY_END + 12 + SPICE_DCMD_RESTORE_ITEM;

    b.data[SPICE_DCMD_CACHE_OFFSET + 9] = 2; /* freezer 2 */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "pixmap_cache_freezer"));
    mig_err_free(err), err = NULL;
    b.data[SPICE_DCMD_CACHE_OFFSET + 9] = 1;

    b.data[SPICE_DCMD_CACHE_OFFSET + 8] = 0x80; /* a negative size */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "negative"));
    mig_err_free(err), err = NULL;
    b.data[SPICE_DCMD_CACHE_OFFSET + 8] = 0;

    b.data[SPICE_DCMD_BODY_END + 4] = 2; /* a newer list */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, &err), -ENOTSUP);
    mig_err_free(err), err = NULL;
    b.data[SPICE_DCMD_BODY_END + 4] = 1;

    b.data[SPICE_DCMD_BODY_END + 8] = 200; /* more images than bytes */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, &err), -EPROTO);
    mig_err_free(err), err = NULL;
    b.data[SPICE_DCMD_BODY_END + 8] = 3;

    uint8_t saved = item1[0];
    item1[0] = 2; /* image 2 listed twice */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, NULL), 0);
    SpicePixmapCache *to = spice_pixmap_cache_new(1, 1000);
    assert_int_equal(spice_pixmap_cache_import(to, &pb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "listed twice"));
    assert_int_equal(spice_pixmap_cache_count(to), 0); /* nothing half-done */
    mig_err_free(err), err = NULL;
    item1[0] = saved;

    item1[16] = 4; /* added by a channel out of range */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, NULL), 0);
    assert_int_equal(spice_pixmap_cache_import(to, &pb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "out of range"));
    mig_err_free(err), err = NULL;
    item1[16] = 1;

    SpicePixmapCache *small = spice_pixmap_cache_new(1, 500); /* 600 pixels do not fit */
    assert_int_equal(spice_pixmap_cache_parse(b.data, b.len, &pb, NULL), 0);
    assert_int_equal(spice_pixmap_cache_import(small, &pb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "overfills"));
    mig_err_free(err);
    spice_pixmap_cache_free(small);
    spice_pixmap_cache_free(to);
    spice_pixmap_cache_free(pc);
    mig_buf_free(&b);
}

/* ------------------------------------------------------------------ two heads on the wire */

typedef struct World {
    SimSpiceGuest sg;
    SpiceDisplay *heads[2];
} World;

static void world_open(World *w, SpicePixmapCacheMig how)
{
    memset(w, 0, sizeof(*w));
    sim_spice_guest_open(&w->sg, 11, &(SpiceServerConfig){.who = "srv", .pixmap_cache_migration = how});
    for (uint8_t i = 0; i < 2; i++) {
        w->heads[i] = spice_display_add(w->sg.server, i);
        assert_int_equal(spice_display_surface_create(w->heads[i], 0, 64, 48, NULL), 0);
    }
    FakeClientConfig cc = {0};
    MigLinkParams link = {.bandwidth = 100u << 20, .latency_ns = 200000};
    assert_non_null(sim_spice_guest_client(&w->sg, &link, &cc));
    assert_int_equal(fake_client_start(w->sg.client, NULL), 0);
    mig_sim_run_for(w->sg.loop, 500000000ull);
}

static void world_free_heads(void *opaque)
{
    World *w = opaque;
    for (int i = 0; i < 2; i++)
        spice_display_free(w->heads[i]);
}

static void world_close(World *w)
{
    assert_int_equal(sim_spice_guest_close(&w->sg, world_free_heads, w), 0);
}

static void settle_and_compare(World *w)
{
    mig_sim_run_for(w->sg.loop, 500000000ull);
    assert_string_equal(fake_client_last_error(w->sg.client), "");
    for (uint8_t i = 0; i < 2; i++) {
        const SpiceSurface *srv = spice_display_surface(w->heads[i], 0), *cli = fake_client_surface(w->sg.client, i, 0);
        assert_non_null(cli);
        assert_memory_equal(cli->px, srv->px, (size_t)srv->width * srv->height * 4);
    }
}

/* Six images of 8x8 drawn `rounds` times on both heads, in turn. */
static void draw_images(World *w, int rounds)
{
    uint32_t px[64];
    for (int r = 0; r < rounds; r++)
        for (uint32_t id = 1; id <= 6; id++) {
            for (uint32_t i = 0; i < 64; i++)
                px[i] = (id * 2654435761u + i * 40503u) & 0xffffff;
            SpiceRect at = {.top = (int32_t)(id * 4), .left = (int32_t)(r * 3 + id * 5),
                            .bottom = (int32_t)(id * 4 + 8), .right = (int32_t)(r * 3 + id * 5 + 8)};
            assert_int_equal(spice_display_copy(w->heads[(id + (uint32_t)r) % 2], 0, &at, id, px, 8, 8, NULL), 0);
        }
}

static SpiceChannelClient *head_cc(World *w, uint8_t id)
{
    SpiceChannelClient *cc = spice_client_find(spice_server_client_at(w->sg.server, 0), SPICE_CHANNEL_DISPLAY, id);
    assert_non_null(cc);
    return cc;
}

static uint64_t images_sent(World *w)
{
    SpiceDisplayStats a, b;
    spice_display_stats(w->heads[0], &a);
    spice_display_stats(w->heads[1], &b);
    return a.images_sent + b.images_sent;
}

static void test_spice_pixmap_cache_two_heads_share_one_cache(void **state)
{
    (void)state;
    World w;
    world_open(&w, SPICE_PIXMAP_CACHE_MIG_RESET);
    uint64_t before = images_sent(&w);
    draw_images(&w, 4);
    settle_and_compare(&w);
    /* each image crossed the wire once, whichever head drew it first */
    assert_int_equal(images_sent(&w) - before, 6);
    /* a head taking what the other cached waited for it */
    assert_true(fake_client_count(w.sg.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_WAIT_FOR_CHANNELS) > 0);
    world_close(&w);
}

/* The two migration steps of the heads, as the seamless flow makes them,
 * replayed on the same connections: each head exports its cache part, then
 * takes it back as a target would. */
static void migrate_cache_in_place_as(World *w, MigBuf blobs[2], uint8_t version)
{
    for (uint8_t i = 0; i < 2; i++) {
        blank_blob(&blobs[i]);
        blobs[i].data[4] = version;
        assert_int_equal(spice_display_migrate_export_cache(head_cc(w, i), &blobs[i], NULL), 0);
    }
    assert_int_equal(blobs[0].data[SPICE_DCMD_CACHE_OFFSET + 9], 1); /* the first to migrate froze it */
    assert_int_equal(blobs[1].data[SPICE_DCMD_CACHE_OFFSET + 9], 0);
    for (uint8_t i = 0; i < 2; i++)
        assert_int_equal(spice_display_migrate_import_cache(head_cc(w, i), blobs[i].data, blobs[i].len, NULL), 0);
    for (uint8_t i = 0; i < 2; i++)
        mig_buf_free(&blobs[i]);
}

static void migrate_cache_in_place(World *w, MigBuf blobs[2])
{
    migrate_cache_in_place_as(w, blobs, SPICE_MIG_VERSION_DISPLAY);
}

static void test_spice_pixmap_cache_reset_sends_inval_all_after_the_other_head(void **state)
{
    (void)state;
    World w;
    world_open(&w, SPICE_PIXMAP_CACHE_MIG_RESET);
    draw_images(&w, 2);
    settle_and_compare(&w);
    MigBuf blobs[2];
    migrate_cache_in_place(&w, blobs);
    settle_and_compare(&w);
    assert_int_equal(fake_client_count(w.sg.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS), 1);
    uint64_t before = images_sent(&w);
    draw_images(&w, 2);
    settle_and_compare(&w); /* had the client kept its images, CACHE_ME would be refused */
    assert_int_equal(images_sent(&w) - before, 6); /* every image once more */
    world_close(&w);
}

static void test_spice_pixmap_cache_restore_sends_no_cached_image_again(void **state)
{
    (void)state;
    World w;
    world_open(&w, SPICE_PIXMAP_CACHE_MIG_RESTORE);
    draw_images(&w, 2);
    settle_and_compare(&w);
    MigBuf blobs[2];
    migrate_cache_in_place(&w, blobs);
    uint64_t before = images_sent(&w);
    draw_images(&w, 3);
    settle_and_compare(&w);
    assert_int_equal(images_sent(&w), before); /* all FROM_CACHE */
    assert_int_equal(fake_client_count(w.sg.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS), 0);
    world_close(&w);
}

/* The target follows the blob, not its own strategy: a version-1 display
 * blob (the reference's layout, an older release's server) has no restore
 * list, so even a target set to restore resets the cache as its freezer
 * says (docs/protocol-spice.md 10.1). */
static void test_spice_pixmap_cache_version_1_blob_resets(void **state)
{
    (void)state;
    World w;
    world_open(&w, SPICE_PIXMAP_CACHE_MIG_RESTORE);
    draw_images(&w, 2);
    settle_and_compare(&w);
    MigBuf blobs[2];
    migrate_cache_in_place_as(&w, blobs, 1);
    settle_and_compare(&w);
    assert_int_equal(fake_client_count(w.sg.client, SPICE_CHANNEL_DISPLAY, SPICE_MSG_DISPLAY_INVAL_ALL_PIXMAPS), 1);
    uint64_t before = images_sent(&w);
    draw_images(&w, 2);
    settle_and_compare(&w);
    assert_int_equal(images_sent(&w) - before, 6); /* every image once more */
    world_close(&w);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_pixmap_cache_waits_keep_the_servers_order),
        cmocka_unit_test(test_spice_pixmap_cache_blob_bytes_and_round_trip),
        cmocka_unit_test(test_spice_pixmap_cache_blob_bad_content_refused),
        cmocka_unit_test(test_spice_pixmap_cache_two_heads_share_one_cache),
        cmocka_unit_test(test_spice_pixmap_cache_reset_sends_inval_all_after_the_other_head),
        cmocka_unit_test(test_spice_pixmap_cache_restore_sends_no_cached_image_again),
        cmocka_unit_test(test_spice_pixmap_cache_version_1_blob_resets),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
