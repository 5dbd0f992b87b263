/*
 * test-spice-marshal.c - the table-driven SPICE body marshaller
 * (impl/spice/spice-marshal.c) and the message descriptions
 * (spice-messages.c): expected wire bytes with one comment per field, round
 * trips, every truncation of every sample, and hostile bodies (pointers past
 * the end, counts larger than the body, overlapping pointers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <spice/enums.h>

#include "spice/spice-marshal.h"
#include "spice/spice-messages.h"

static const SpiceMDesc *desc_of(uint8_t ch, bool from_client, uint16_t id)
{
    const SpiceMsgInfo *mi = spice_msg_find(ch, from_client, id);
    assert_non_null(mi);
    return mi->desc;
}

static void expect_encoding(const SpiceMDesc *d, const void *in, const uint8_t *want, size_t want_len)
{
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(spice_marshal_encode(d, in, &out, &len, NULL), 0);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    free(out);
}

static void test_spice_marshal_main_init_bytes(void **state)
{
    (void)state;
    SpiceMsgMainInit m = {.session_id = 0x11223344, .display_channels_hint = 1, .supported_mouse_modes = 3,
                          .current_mouse_mode = 1, .agent_connected = 0, .agent_tokens = 10,
                          .multi_media_time = 0x01020304, .ram_hint = 50323456};
    static const uint8_t want[] = {
        0x44, 0x33, 0x22, 0x11, /* session_id, little-endian */
        1, 0, 0, 0,             /* display_channels_hint */
        3, 0, 0, 0,             /* supported_mouse_modes: SERVER | CLIENT */
        1, 0, 0, 0,             /* current_mouse_mode: SERVER */
        0, 0, 0, 0,             /* agent_connected */
        10, 0, 0, 0,            /* agent_tokens */
        4, 3, 2, 1,             /* multi_media_time */
        0x00, 0xe0, 0xff, 0x02, /* ram_hint = 50,323,456 */
    };
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_INIT);
    assert_int_equal(spice_marshal_fixed_size(d), 32);
    expect_encoding(d, &m, want, sizeof(want));
    SpiceMsgMainInit back;
    assert_int_equal(spice_marshal_decode(d, want, sizeof(want), &back, NULL), 0);
    assert_memory_equal(&back, &m, sizeof(m));
}

static void test_spice_marshal_channels_list_bytes(void **state)
{
    (void)state;
    SpiceChannelRef refs[] = {{SPICE_CHANNEL_DISPLAY, 0}, {SPICE_CHANNEL_PORT, 1}};
    SpiceMsgChannelsList m = {.channels = {.n = 2, .items = refs}};
    static const uint8_t want[] = {
        2, 0, 0, 0, /* u32 count */
        2, 0,       /* DISPLAY, id 0 */
        10, 1,      /* PORT, id 1 */
    };
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_CHANNELS_LIST);
    expect_encoding(d, &m, want, sizeof(want));
    SpiceMsgChannelsList back;
    assert_int_equal(spice_marshal_decode(d, want, sizeof(want), &back, NULL), 0);
    assert_int_equal(back.channels.n, 2);
    assert_memory_equal(back.channels.items, refs, sizeof(refs));
    spice_marshal_free(d, &back);
}

static void test_spice_marshal_migrate_begin_puts_strings_after_the_fixed_part(void **state)
{
    (void)state;
    SpiceMsgMigrateBegin m = {.dst = {.port = 5901, .sport = 0xffff,
                                      .host = {.len = 10, .data = (uint8_t *)"127.0.0.1"}}};
    static const uint8_t want[] = {
        0x0d, 0x17,             /* port 5901 */
        0xff, 0xff,             /* sport: none */
        10, 0, 0, 0,            /* host_size, NUL counted */
        20, 0, 0, 0,            /* host_ptr: after the 20-byte fixed part */
        0, 0, 0, 0,             /* cert_subject_size: none */
        0, 0, 0, 0,             /* cert_subject_ptr: none */
        '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, /* host */
    };
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_MIGRATE_BEGIN);
    expect_encoding(d, &m, want, sizeof(want));
    SpiceMsgMigrateBegin back;
    assert_int_equal(spice_marshal_decode(d, want, sizeof(want), &back, NULL), 0);
    assert_int_equal(back.dst.port, 5901);
    assert_int_equal(back.dst.host.len, 10);
    assert_string_equal((char *)back.dst.host.data, "127.0.0.1");
    assert_null(back.dst.cert_subject.data);
    spice_marshal_free(d, &back);
}

/* The DRAW_COPY of one raw 2x1 bitmap, laid out as spice-server sends it:
 * the image at byte 57, its pixels at byte 93. */
static void draw_copy_sample(uint8_t **out, size_t *len)
{
    static uint8_t pixels[8] = {0x10, 0x20, 0x30, 0x00, 0x40, 0x50, 0x60, 0x00};
    SpiceBitmapBody bm = {.format = SPICE_BITMAP_FMT_32BIT, .flags = SPICE_BITMAP_FLAGS_TOP_DOWN,
                          .x = 2, .y = 1, .stride = 8, .data = {.len = 8, .data = pixels}};
    uint8_t *payload;
    size_t plen;
    assert_int_equal(spice_marshal_encode(&spice_bitmap_desc, &bm, &payload, &plen, NULL), 0);
    assert_int_equal(plen, 18 + 8);
    SpiceImage img = {.id = 0x0102030405060708ull, .type = SPICE_IMAGE_TYPE_BITMAP, .width = 2,
                      .height = 1, .payload = {.len = (uint32_t)plen, .data = payload}};
    SpiceMsgDrawCopy m = {.base = {.surface_id = 0, .box = {.top = 5, .left = 6, .bottom = 6, .right = 8}},
                          .src_bitmap = &img, .src_area = {0, 0, 1, 2},
                          .rop_descriptor = SPICE_ROPD_OP_PUT};
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_DISPLAY, false, SPICE_MSG_DISPLAY_DRAW_COPY);
    assert_int_equal(spice_marshal_fixed_size(d), 57);
    assert_int_equal(spice_marshal_encode(d, &m, out, len, NULL), 0);
    free(payload);
}

static void test_spice_marshal_draw_copy_layout(void **state)
{
    (void)state;
    uint8_t *b;
    size_t len;
    draw_copy_sample(&b, &len);
    assert_int_equal(len, 93 + 8);
    assert_int_equal(b[4], 5);    /* box.top */
    assert_int_equal(b[20], 0);   /* clip type NONE */
    assert_int_equal(b[21], 57);  /* src_bitmap pointer */
    assert_int_equal(b[41], 8);   /* rop_descriptor OP_PUT */
    assert_int_equal(b[53], 0);   /* mask bitmap pointer: none */
    assert_int_equal(b[57], 8);   /* image.id, low byte */
    assert_int_equal(b[65], SPICE_IMAGE_TYPE_BITMAP);
    assert_int_equal(b[75], SPICE_BITMAP_FMT_32BIT);
    assert_int_equal(b[76], SPICE_BITMAP_FLAGS_TOP_DOWN);
    assert_int_equal(b[85], 8);   /* stride */
    assert_int_equal(b[93], 0x10); /* first pixel */
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_DISPLAY, false, SPICE_MSG_DISPLAY_DRAW_COPY);
    SpiceMsgDrawCopy back;
    assert_int_equal(spice_marshal_decode(d, b, len, &back, NULL), 0);
    assert_non_null(back.src_bitmap);
    assert_int_equal(back.src_bitmap->id, 0x0102030405060708ull);
    SpiceBitmapBody bm;
    assert_int_equal(spice_marshal_decode(&spice_bitmap_desc, back.src_bitmap->payload.data,
                                          back.src_bitmap->payload.len, &bm, NULL), 0);
    assert_int_equal(bm.stride, 8);
    assert_int_equal(bm.data.len, 8);
    assert_int_equal(bm.data.data[4], 0x40);
    spice_marshal_free(&spice_bitmap_desc, &bm);
    spice_marshal_free(d, &back);
    free(b);
}

/* Every prefix of a body that has no REST part is refused with -EPROTO. */
static void test_spice_marshal_every_truncation_is_refused(void **state)
{
    (void)state;
    uint8_t *b;
    size_t len;
    draw_copy_sample(&b, &len);
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_DISPLAY, false, SPICE_MSG_DISPLAY_DRAW_COPY);
    for (size_t n = 0; n < 57 + 18; n++) {
        SpiceMsgDrawCopy back;
        MigErr *err = NULL;
        assert_int_equal(spice_marshal_decode(d, b, n, &back, &err), -EPROTO);
        assert_non_null(err);
        assert_non_null(strstr(err->msg, "DrawCopy: field "));
        mig_err_free(err);
    }
    free(b);

    SpiceMsgMigrateBegin m = {.dst = {.port = 1, .sport = 2, .host = {.len = 4, .data = (uint8_t *)"abc"}}};
    const SpiceMDesc *mb = desc_of(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_MIGRATE_BEGIN);
    assert_int_equal(spice_marshal_encode(mb, &m, &b, &len, NULL), 0);
    for (size_t n = 0; n < len; n++) {
        SpiceMsgMigrateBegin back;
        assert_int_equal(spice_marshal_decode(mb, b, n, &back, NULL), -EPROTO);
    }
    free(b);
}

static void test_spice_marshal_hostile_bodies_name_the_field(void **state)
{
    (void)state;
    MigErr *err = NULL;
    /* a count of 1,000,000 channels in an 8-byte body */
    static const uint8_t many[] = {0x40, 0x42, 0x0f, 0x00, 2, 0, 1, 0};
    SpiceMsgChannelsList cl;
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_CHANNELS_LIST);
    assert_int_equal(spice_marshal_decode(d, many, sizeof(many), &cl, &err), -EPROTO);
    assert_string_equal(err->msg, "ChannelsList: field channels: needs 2000000 byte(s), the body ends "
                                  "after 4 (at byte 4 of a 8-byte body)");
    mig_err_free(err);
    err = NULL;

    /* a string pointer past the end */
    static const uint8_t past[] = {1, 0, 2, 0, 4, 0, 0, 0, 0x00, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    SpiceMsgMigrateBegin mb;
    d = desc_of(SPICE_CHANNEL_MAIN, false, SPICE_MSG_MAIN_MIGRATE_BEGIN);
    assert_int_equal(spice_marshal_decode(d, past, sizeof(past), &mb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "MigrationBegin: field host: offset 4096 (+4) is past the end"));
    mig_err_free(err);
    err = NULL;

    /* a size with no pointer */
    static const uint8_t half[] = {1, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(spice_marshal_decode(d, half, sizeof(half), &mb, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "field host: size 4 with offset 0"));
    mig_err_free(err);
    err = NULL;

    /* a fixed-size body with a byte too many */
    static const uint8_t extra[] = {1, 0, 0, 0, 0};
    const SpiceMDesc *ack = desc_of(SPICE_CHANNEL_DISPLAY, true, SPICE_MSGC_ACK_SYNC);
    SpiceMsgU32 u;
    assert_int_equal(spice_marshal_decode(ack, extra, sizeof(extra), &u, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "1 unexpected byte(s) after the last field"));
    mig_err_free(err);
}

/* Every registered message: its zeroed body encodes, and decodes back to
 * the same bytes; the registry is in strictly increasing (channel,
 * direction, id) order, so no duplicate and spice_msg_find's binary search
 * finds every entry. */
static void test_spice_marshal_registry_round_trips(void **state)
{
    (void)state;
    size_t n;
    const SpiceMsgInfo *t = spice_msg_table(&n);
    assert_true(n > 60);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            const SpiceMsgInfo *a = &t[i - 1], *b = &t[i];
            bool after = b->channel_type != a->channel_type ? b->channel_type > a->channel_type
                       : b->from_client != a->from_client   ? b->from_client
                                                            : b->id > a->id;
            if (!after)
                fail_msg("registry entry %zu (%s) does not sort after %s", i, b->name, a->name);
        }
        /* the common messages (channel type 0) are found through any channel */
        uint8_t via = t[i].channel_type ? t[i].channel_type : SPICE_CHANNEL_PLAYBACK;
        assert_ptr_equal(spice_msg_find(via, t[i].from_client, t[i].id), &t[i]);
        uint8_t zero[512] = {0};
        assert_true(t[i].desc->size <= sizeof(zero));
        uint8_t *b, *b2;
        size_t len, len2;
        assert_int_equal(spice_marshal_encode(t[i].desc, zero, &b, &len, NULL), 0);
        assert_int_equal(len, spice_marshal_fixed_size(t[i].desc));
        uint8_t back[512];
        assert_int_equal(spice_marshal_decode(t[i].desc, b, len, back, NULL), 0);
        assert_int_equal(spice_marshal_encode(t[i].desc, back, &b2, &len2, NULL), 0);
        assert_int_equal(len2, len);
        assert_memory_equal(b, b2, len);
        spice_marshal_free(t[i].desc, back);
        free(b);
        free(b2);
    }
    assert_string_equal(spice_msg_find(SPICE_CHANNEL_PORT, false, SPICE_MSG_PORT_INIT)->name, "PORT_INIT");
    assert_string_equal(spice_msg_find(SPICE_CHANNEL_RECORD, true, SPICE_MSGC_ACK)->name, "ACK");
    assert_null(spice_msg_find(SPICE_CHANNEL_MAIN, true, SPICE_MSGC_DISPLAY_INIT + 100));
    assert_null(spice_msg_find(SPICE_CHANNEL_PLAYBACK, true, SPICE_MSGC_RECORD_DATA));
}

static void test_spice_marshal_count_too_wide_is_a_caller_error(void **state)
{
    (void)state;
    SpiceU16Item v[300] = {{0}};
    SpiceMsgVolume m = {.volume = {.n = 300, .items = v}};
    const SpiceMDesc *d = desc_of(SPICE_CHANNEL_PLAYBACK, false, SPICE_MSG_PLAYBACK_VOLUME);
    uint8_t *b = NULL;
    size_t len;
    MigErr *err = NULL;
    assert_int_equal(spice_marshal_encode(d, &m, &b, &len, &err), -EINVAL);
    assert_null(b);
    assert_string_equal(err->msg, "AudioVolume: field volume: 300 elements do not fit a 1-byte count");
    mig_err_free(err);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_marshal_main_init_bytes),
        cmocka_unit_test(test_spice_marshal_channels_list_bytes),
        cmocka_unit_test(test_spice_marshal_migrate_begin_puts_strings_after_the_fixed_part),
        cmocka_unit_test(test_spice_marshal_draw_copy_layout),
        cmocka_unit_test(test_spice_marshal_every_truncation_is_refused),
        cmocka_unit_test(test_spice_marshal_hostile_bodies_name_the_field),
        cmocka_unit_test(test_spice_marshal_registry_round_trips),
        cmocka_unit_test(test_spice_marshal_count_too_wide_is_a_caller_error),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
