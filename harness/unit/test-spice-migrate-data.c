/*
 * test-spice-migrate-data.c - the seamless migration blobs
 * (impl/spice/spice-migrate-data.c): their sizes and offsets as
 * docs/protocol-spice.md section 9 gives them (main 8 + 57 bytes, spicevmc
 * 8 + 25 and its write data after, display 8 + 72 and the surface list at
 * 80), round trips, and what the target refuses: a short blob, a wrong
 * magic, a newer version (an older one loads), write data or a surface
 * list outside the blob.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spice/spice-migrate-data.h"

static uint32_t le32_at(const uint8_t *b, size_t at)
{
    return (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 | (uint32_t)b[at + 2] << 16 | (uint32_t)b[at + 3] << 24;
}

static void put32(uint8_t *b, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[at + i] = (uint8_t)(v >> (8 * i));
}

static void test_spice_migrate_data_main_is_65_bytes(void **state)
{
    (void)state;
    SpiceMigMain m = {.h = {SPICE_MIG_MAGIC_MAIN, SPICE_MIG_VERSION_MAIN},
                      .agent_base = {.version = 1, .num_client_tokens = 10}};
    uint8_t *b;
    size_t n;
    assert_int_equal(spice_mig_encode(&spice_mig_main_desc, &m, NULL, 0, &b, &n, NULL), 0);
    assert_int_equal(n, 8 + 57);
    assert_memory_equal(b, "MNMD\1\0\0\0", 8);
    assert_int_equal(le32_at(b, 8), 1);   /* CharDevice.version */
    assert_int_equal(le32_at(b, 13), 10); /* num_client_tokens, after u8 connected */
    SpiceMigMain back;
    assert_int_equal(spice_mig_decode("main", &spice_mig_main_desc, b, n, SPICE_MIG_MAGIC_MAIN, 1, &back, NULL), 0);
    assert_int_equal(back.agent_base.num_client_tokens, 10);
    /* one byte short of the layout: refused, naming the sizes */
    MigErr *err = NULL;
    assert_int_equal(spice_mig_decode("main", &spice_mig_main_desc, b, n - 1, SPICE_MIG_MAGIC_MAIN, 1, &back, &err),
                     -EPROTO);
    assert_non_null(strstr(err->msg, "64 byte(s), shorter than its 65-byte layout"));
    mig_err_free(err);
    free(b);
}

static void test_spice_migrate_data_vmc_carries_write_data(void **state)
{
    (void)state;
    SpiceMigVmc v = {.h = {SPICE_MIG_MAGIC_VMC, SPICE_MIG_VERSION_VMC},
                     .base = {.version = 1, .connected = 1, .write_size = 5, .write_num_client_tokens = 2,
                              .write_data_ptr = (uint32_t)spice_marshal_fixed_size(&spice_mig_vmc_desc)}};
    uint8_t *b;
    size_t n;
    assert_int_equal(spice_mig_encode(&spice_mig_vmc_desc, &v, (const uint8_t *)"hello", 5, &b, &n, NULL), 0);
    assert_int_equal(n, 8 + 25 + 5);
    assert_memory_equal(b, "SVMD", 4);
    assert_int_equal(le32_at(b, 8 + 21), 33); /* write_data_ptr: from the blob's start, header included */
    SpiceMigVmc back;
    assert_int_equal(spice_mig_decode("port", &spice_mig_vmc_desc, b, n, SPICE_MIG_MAGIC_VMC, 1, &back, NULL), 0);
    const uint8_t *data;
    assert_int_equal(spice_mig_char_device_data("port", &back.base, b, n, 33, &data, NULL), 0);
    assert_memory_equal(data, "hello", 5);
    /* write data that runs past the blob, or starts inside the header */
    MigErr *err = NULL;
    back.base.write_size = 6;
    assert_int_equal(spice_mig_char_device_data("port", &back.base, b, n, 33, &data, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "6 byte(s) of write data at 33 lie outside the 38-byte blob"));
    mig_err_free(err);
    err = NULL;
    back.base.write_size = 5;
    back.base.write_data_ptr = 4;
    assert_int_equal(spice_mig_char_device_data("port", &back.base, b, n, 33, &data, &err), -EPROTO);
    mig_err_free(err);
    free(b);
}

static void test_spice_migrate_data_display_lists_surfaces_at_80(void **state)
{
    (void)state;
    SpiceMigSurface ids[2] = {{0}, {3}};
    SpiceMigSurfaces list = {{.n = 2, .items = ids}};
    /* the reference's layout: version 1 (2 adds only the restore list) */
    SpiceMigDisplay d = {.h = {SPICE_MIG_MAGIC_DISPLAY, 1}, .message_serial = 77,
                         .pixmap_cache_id = 1, .pixmap_cache_size = 1 << 20, .pixmap_cache_freezer = 1,
                         .glz_dict_id = 1, .glz_dict_size = 3 << 20, .surfaces_at_client = &list};
    uint8_t *b;
    size_t n;
    assert_int_equal(spice_mig_encode(&spice_mig_display_desc, &d, NULL, 0, &b, &n, NULL), 0);
    assert_int_equal(n, 8 + 72 + 4 + 2 * 4);
    assert_int_equal(le32_at(b, 76), 80); /* surfaces_at_client_ptr, the last field */
    assert_int_equal(le32_at(b, 80), 2);
    assert_int_equal(le32_at(b, 88), 3);
    SpiceMigDisplay back;
    assert_int_equal(spice_mig_decode("display", &spice_mig_display_desc, b, n, SPICE_MIG_MAGIC_DISPLAY, 1, &back,
                                      NULL), 0);
    assert_int_equal(back.message_serial, 77);
    assert_int_equal(back.surfaces_at_client->surfaces.n, 2);
    spice_marshal_free(&spice_mig_display_desc, &back);
    /* a count larger than the blob, and a pointer past its end */
    MigErr *err = NULL;
    put32(b, 80, 0x40000000);
    assert_int_equal(spice_mig_decode("display", &spice_mig_display_desc, b, n, SPICE_MIG_MAGIC_DISPLAY, 1, &back,
                                      &err), -EPROTO);
    mig_err_free(err);
    err = NULL;
    put32(b, 80, 2);
    put32(b, 76, 4000);
    assert_int_equal(spice_mig_decode("display", &spice_mig_display_desc, b, n, SPICE_MIG_MAGIC_DISPLAY, 1, &back,
                                      &err), -EPROTO);
    assert_non_null(strstr(err->msg, "surfaces_at_client"));
    mig_err_free(err);
    free(b);
}

static void test_spice_migrate_data_header_rules(void **state)
{
    (void)state;
    uint8_t b[8 + 57] = "MNMD";
    MigErr *err = NULL;
    /* shorter than the header */
    assert_int_equal(spice_mig_check_header("main", b, 7, SPICE_MIG_MAGIC_MAIN, 1, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "7 byte(s), shorter than its 8-byte header"));
    mig_err_free(err);
    err = NULL;
    /* the magic of another channel */
    memcpy(b, "DCMD", 4);
    assert_int_equal(spice_mig_check_header("main", b, sizeof(b), SPICE_MIG_MAGIC_MAIN, 1, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "(\"DCMD\"), expected \"MNMD\""));
    mig_err_free(err);
    err = NULL;
    /* newer: refused; ours and older: taken */
    memcpy(b, "MNMD", 4);
    put32(b, 4, 2);
    assert_int_equal(spice_mig_check_header("main", b, sizeof(b), SPICE_MIG_MAGIC_MAIN, 1, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "version 2 is newer than this server's 1"));
    mig_err_free(err);
    put32(b, 4, 1);
    assert_int_equal(spice_mig_check_header("main", b, sizeof(b), SPICE_MIG_MAGIC_MAIN, 1, NULL), 0);
    put32(b, 4, 0);
    assert_int_equal(spice_mig_check_header("main", b, sizeof(b), SPICE_MIG_MAGIC_MAIN, 1, NULL), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_migrate_data_main_is_65_bytes),
        cmocka_unit_test(test_spice_migrate_data_vmc_carries_write_data),
        cmocka_unit_test(test_spice_migrate_data_display_lists_surfaces_at_80),
        cmocka_unit_test(test_spice_migrate_data_header_rules),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
