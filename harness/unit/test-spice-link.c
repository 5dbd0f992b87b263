/*
 * test-spice-link.c - the SPICE link stage and data headers
 * (impl/spice/spice-link.c): the bytes spice-gtk 0.42 sends to link a main
 * channel, every refusal with the link error spice-server answers, replies,
 * and both data headers.
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

#include "spice/spice-link.h"

/* What spice-gtk 0.42 sends to link its main channel: common caps 0xD
 * (AUTH_SELECTION, SASL, MINI_HEADER), main caps 0xF. */
static const uint8_t gtk_main_link[] = {
    'R', 'E', 'D', 'Q', /* magic */
    2, 0, 0, 0,         /* major */
    2, 0, 0, 0,         /* minor */
    26, 0, 0, 0,        /* size: 18 + 2 cap words */
    0, 0, 0, 0,         /* connection_id: a new session */
    1,                  /* channel_type MAIN */
    0,                  /* channel_id */
    1, 0, 0, 0,         /* num_common_caps */
    1, 0, 0, 0,         /* num_channel_caps */
    18, 0, 0, 0,        /* caps_offset */
    0x0d, 0, 0, 0,      /* common caps */
    0x0f, 0, 0, 0,      /* main caps */
};

static void test_spice_link_parses_what_spice_gtk_sends(void **state)
{
    (void)state;
    uint32_t size = 0, lerr = 99;
    assert_int_equal(spice_link_header_parse(gtk_main_link, &size, &lerr, NULL), 0);
    assert_int_equal(size, 26);
    SpiceLinkMessInfo m;
    assert_int_equal(spice_link_mess_parse(gtk_main_link + 16, size, &m, &lerr, NULL), 0);
    assert_int_equal(m.connection_id, 0);
    assert_int_equal(m.channel_type, SPICE_CHANNEL_MAIN);
    assert_true(spice_caps_has(&m.common, SPICE_COMMON_CAP_MINI_HEADER));
    assert_true(spice_caps_has(&m.common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION));
    assert_false(spice_caps_has(&m.common, SPICE_COMMON_CAP_AUTH_SPICE));
    assert_true(spice_caps_has(&m.channel, SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE));
    assert_true(spice_caps_has(&m.channel, SPICE_MAIN_CAP_SEAMLESS_MIGRATE));
    assert_false(spice_caps_has(&m.channel, 40));

    /* and the builder gives the same bytes back */
    uint8_t *b;
    size_t n = spice_link_mess_build(&m, &b);
    assert_int_equal(n, sizeof(gtk_main_link));
    assert_memory_equal(b, gtk_main_link, n);
    free(b);
}

static void expect_refusal(const uint8_t *hdr, uint32_t want_err, const char *want_msg)
{
    uint32_t size = 0, lerr = 0;
    MigErr *err = NULL;
    assert_int_equal(spice_link_header_parse(hdr, &size, &lerr, &err), -EPROTO);
    assert_int_equal(lerr, want_err);
    assert_string_equal(err->msg, want_msg);
    mig_err_free(err);
}

static void test_spice_link_header_refusals(void **state)
{
    (void)state;
    uint8_t h[16];
    memcpy(h, gtk_main_link, 16);
    h[0] = 'G'; /* "GET " of an HTTP client */
    expect_refusal(h, SPICE_LINK_ERR_INVALID_MAGIC, "link: bad magic 0x51444547 (want \"REDQ\") (INVALID_MAGIC)");
    memcpy(h, gtk_main_link, 16);
    h[4] = 1;
    expect_refusal(h, SPICE_LINK_ERR_VERSION_MISMATCH,
                   "link: protocol major version 1 (want 2) (VERSION_MISMATCH)");
    memcpy(h, gtk_main_link, 16);
    h[8] = 7; /* the minor version is informational */
    uint32_t size, lerr;
    assert_int_equal(spice_link_header_parse(h, &size, &lerr, NULL), 0);
    h[12] = 17;
    expect_refusal(h, SPICE_LINK_ERR_INVALID_DATA, "link: link body of 17 bytes (allowed: 18 to 4096) (INVALID_DATA)");
    h[12] = 0x01;
    h[13] = 0x10; /* 4097 */
    expect_refusal(h, SPICE_LINK_ERR_INVALID_DATA,
                   "link: link body of 4097 bytes (allowed: 18 to 4096) (INVALID_DATA)");
}

static void test_spice_link_mess_refusals_and_truncations(void **state)
{
    (void)state;
    uint8_t body[26];
    memcpy(body, gtk_main_link + 16, sizeof(body));
    SpiceLinkMessInfo m;
    uint32_t lerr = 0;
    MigErr *err = NULL;
    /* every truncation of the body is refused with INVALID_DATA */
    for (size_t n = 0; n < sizeof(body); n++) {
        lerr = 0;
        assert_int_equal(spice_link_mess_parse(body, n, &m, &lerr, NULL), -EPROTO);
        assert_int_equal(lerr, SPICE_LINK_ERR_INVALID_DATA);
    }
    body[6] = 0x01;
    body[7] = 0x04; /* 1025 common words */
    assert_int_equal(spice_link_mess_parse(body, sizeof(body), &m, &lerr, &err), -EPROTO);
    assert_string_equal(err->msg, "link: 1025 common and 1 channel capability words (at most 1024 each) (INVALID_DATA)");
    mig_err_free(err);
    err = NULL;
    memcpy(body, gtk_main_link + 16, sizeof(body));
    body[14] = 4; /* caps_offset inside the fixed part */
    assert_int_equal(spice_link_mess_parse(body, sizeof(body), &m, &lerr, &err), -EPROTO);
    assert_string_equal(err->msg, "link: capabilities at offset 4 (2 words) outside the 26-byte body (INVALID_DATA)");
    mig_err_free(err);
}

static void test_spice_link_reply_round_trip_and_error_reply(void **state)
{
    (void)state;
    uint8_t key[SPICE_PUBKEY_SIZE];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)i;
    SpiceCapSet common = {0}, chan = {0};
    spice_caps_set(&common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION);
    spice_caps_set(&common, SPICE_COMMON_CAP_AUTH_SPICE);
    spice_caps_set(&common, SPICE_COMMON_CAP_MINI_HEADER);
    for (unsigned c = 0; c < 4; c++)
        spice_caps_set(&chan, c);
    uint8_t *b;
    size_t n = spice_link_reply_build(SPICE_LINK_ERR_OK, key, &common, &chan, &b);
    assert_int_equal(n, 16 + 178 + 8);
    uint32_t size, lerr;
    assert_int_equal(spice_link_header_parse(b, &size, &lerr, NULL), 0);
    SpiceLinkReplyInfo r;
    assert_int_equal(spice_link_reply_parse(b + 16, size, &r, NULL), 0);
    assert_int_equal(r.error, 0);
    assert_memory_equal(r.pub_key, key, sizeof(key));
    assert_int_equal(r.common.words[0], 0xb); /* what QEMU replies */
    assert_int_equal(r.channel.words[0], 0xf);
    free(b);

    /* a refusal: 178 bytes, no capabilities, whatever was asked */
    n = spice_link_reply_build(SPICE_LINK_ERR_VERSION_MISMATCH, key, &common, &chan, &b);
    assert_int_equal(n, 16 + 178);
    assert_int_equal(b[16], SPICE_LINK_ERR_VERSION_MISMATCH);
    assert_int_equal(spice_link_reply_parse(b + 16, 178, &r, NULL), 0);
    assert_int_equal(r.common.n + r.channel.n, 0);
    for (size_t k = 0; k < 178; k++)
        assert_int_equal(spice_link_reply_parse(b + 16, k, &r, NULL), -EPROTO);
    free(b);
}

static void test_spice_link_data_headers(void **state)
{
    (void)state;
    SpiceMsgHeader h = {.serial = 0x0102030405060708ull, .type = SPICE_MSG_DISPLAY_DRAW_COPY, .size = 101};
    uint8_t full[18], mini[6];
    spice_header_put(false, full, &h);
    static const uint8_t want_full[18] = {8, 7, 6, 5, 4, 3, 2, 1, /* serial */
                                          0x30, 0x01,             /* type 304 */
                                          101, 0, 0, 0,           /* size */
                                          0, 0, 0, 0};            /* sub_list */
    assert_memory_equal(full, want_full, sizeof(full));
    spice_header_put(true, mini, &h);
    static const uint8_t want_mini[6] = {0x30, 0x01, 101, 0, 0, 0};
    assert_memory_equal(mini, want_mini, sizeof(mini));
    SpiceMsgHeader back;
    assert_int_equal(spice_header_parse(false, full, &back, NULL), 0);
    assert_int_equal(back.serial, h.serial);
    assert_int_equal(back.type, 304);
    assert_int_equal(spice_header_parse(true, mini, &back, NULL), 0);
    assert_int_equal(back.size, 101);
    full[14] = 1;
    MigErr *err = NULL;
    assert_int_equal(spice_header_parse(false, full, &back, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "sub-message list"));
    mig_err_free(err);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_link_parses_what_spice_gtk_sends),
        cmocka_unit_test(test_spice_link_header_refusals),
        cmocka_unit_test(test_spice_link_mess_refusals_and_truncations),
        cmocka_unit_test(test_spice_link_reply_round_trip_and_error_reply),
        cmocka_unit_test(test_spice_link_data_headers),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
