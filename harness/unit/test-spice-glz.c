/*
 * test-spice-glz.c - the GLZ encoder (impl/spice/spice-glz.c) against the
 * fake client's decoder (fakes/client/fake-client-glz.c): the header's
 * exact bytes, pixel-exact round trips of single images and of a sequence
 * that refers to earlier images, a window that drops old images, a
 * reference to an image the client lacks, every truncation of a stream,
 * and the dictionary's id carried over by the migration blob.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/fake-client-glz.h"
#include "common/prng.h"
#include "spice/spice-glz.h"

/* A picture with flat areas, runs and a repeating texture. */
static uint32_t *picture(uint32_t w, uint32_t h, uint32_t seed)
{
    uint32_t *px = malloc((size_t)w * h * 4);
    MigPrng p;
    mig_prng_seed(&p, seed);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            uint32_t v;
            if (y < h / 3)
                v = 0x203040 + seed;
            else if (y < 2 * h / 3)
                v = ((x / 4 + y / 4) % 5) * 0x111111u;
            else
                v = (uint32_t)mig_prng_next(&p) & 0xffffff;
            px[(size_t)y * w + x] = v;
        }
    return px;
}

static void round_trip(SpiceGlzDict *d, FakeGlzWindow *win, uint8_t ch, const uint32_t *px, uint32_t w, uint32_t h,
                       size_t *bytes)
{
    MigBuf b = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(d, ch, px, w, h, &b, &waits, &id), 0);
    uint32_t *out;
    MigErr *err = NULL;
    int r = fake_glz_decode(win, b.data, b.len, w, h, &out, &err);
    if (r < 0)
        fail_msg("decode: %s", err->msg);
    assert_memory_equal(out, px, (size_t)w * h * 4);
    free(out);
    if (bytes)
        *bytes = b.len;
    mig_buf_free(&b);
}

static void test_spice_glz_header_and_single_image_round_trip(void **state)
{
    (void)state;
    SpiceGlzDict *d = spice_glz_dict_new(1, 1u << 20);
    FakeGlzWindow *win = fake_glz_window_new();
    uint32_t *px = picture(48, 30, 1);
    MigBuf b = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(d, 0, px, 48, 30, &b, &waits, &id), 0);
    assert_int_equal(id, 0);
    static const uint8_t header[4 + SPICE_GLZ_HEADER - 4] = {
        0, 0, 0, 0,                          /* data_size: checked below */
        0x20, 0x20, 0x5a, 0x4c,              /* magic */
        0, 1, 0, 1,                          /* version 1.1 */
        0x18,                                /* RGB32, top-down */
        0, 0, 0, 48, 0, 0, 0, 30, 0, 0, 0, 192, /* width, height, stride */
        0, 0, 0, 0, 0, 0, 0, 0,              /* id 0 */
    };
    assert_memory_equal(b.data + 4, header + 4, sizeof(header) - 4);
    assert_int_equal(b.data[0] | b.data[1] << 8 | b.data[2] << 16, b.len - 4);
    assert_true(b.len < 48 * 30 * 3); /* the flat and textured thirds compress */
    uint32_t *out;
    assert_int_equal(fake_glz_decode(win, b.data, b.len, 48, 30, &out, NULL), 0);
    assert_memory_equal(out, px, 48 * 30 * 4);
    free(out);
    /* the same id again is refused */
    assert_int_equal(fake_glz_decode(win, b.data, b.len, 48, 30, &out, NULL), -EPROTO);
    /* every truncation, with data_size telling the truth or not */
    FakeGlzWindow *fresh = fake_glz_window_new();
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *cut = malloc(len + 4);
        memcpy(cut, b.data, len);
        MigErr *err = NULL;
        assert_int_equal(fake_glz_decode(fresh, cut, len, 48, 30, &out, &err), -EPROTO);
        mig_err_free(err), err = NULL;
        if (len >= 4) {
            uint32_t s = (uint32_t)len - 4;
            cut[0] = (uint8_t)s, cut[1] = (uint8_t)(s >> 8), cut[2] = (uint8_t)(s >> 16), cut[3] = 0;
            assert_int_equal(fake_glz_decode(fresh, cut, len, 48, 30, &out, &err), -EPROTO);
            assert_non_null(err);
            mig_err_free(err);
        }
        free(cut);
    }
    assert_int_equal(fake_glz_window_count(fresh), 0);
    /* a size that does not match the image's */
    assert_int_equal(fake_glz_decode(fresh, b.data, b.len, 30, 48, &out, NULL), -EPROTO);
    fake_glz_window_free(fresh);
    mig_buf_free(&b);
    free(px);
    fake_glz_window_free(win);
    spice_glz_dict_free(d);
}

static void test_spice_glz_later_images_refer_to_earlier_ones(void **state)
{
    (void)state;
    SpiceGlzDict *d = spice_glz_dict_new(1, 1u << 20);
    FakeGlzWindow *win = fake_glz_window_new();
    uint32_t *a = picture(64, 64, 7);
    size_t first, second;
    round_trip(d, win, 0, a, 64, 64, &first);
    /* the same random third again, with a different flat third: most of it
     * comes from image 0 */
    uint32_t *b = picture(64, 64, 7);
    for (size_t i = 0; i < 64 * 10; i++)
        b[i] = 0x00ff00;
    round_trip(d, win, 1, b, 64, 64, &second);
    assert_true(second * 4 < first);
    /* a client that does not hold image 0 cannot decode image 1 */
    SpiceGlzDict *d2 = spice_glz_dict_new(1, 1u << 20);
    FakeGlzWindow *other = fake_glz_window_new();
    MigBuf b0 = {0}, b1 = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(d2, 0, a, 64, 64, &b0, &waits, &id), 0);
    assert_int_equal(spice_glz_encode(d2, 1, b, 64, 64, &b1, &waits, &id), 0);
    uint32_t *out;
    MigErr *err = NULL;
    assert_int_equal(fake_glz_decode(other, b1.data, b1.len, 64, 64, &out, &err), -EPROTO);
    assert_non_null(strstr(err->msg, "does not hold"));
    mig_err_free(err);
    mig_buf_free(&b0);
    mig_buf_free(&b1);
    fake_glz_window_free(other);
    spice_glz_dict_free(d2);
    free(a);
    free(b);
    fake_glz_window_free(win);
    spice_glz_dict_free(d);
}

/* Channel 1's image refers to channel 0's: the encoder asks channel 1 to
 * wait for the message that carried it, once. */
static void test_spice_glz_waits_for_the_other_channel(void **state)
{
    (void)state;
    SpiceGlzDict *d = spice_glz_dict_new(1, 1u << 20);
    uint32_t *a = picture(32, 32, 3);
    MigBuf b = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(d, 0, a, 32, 32, &b, &waits, &id), 0);
    assert_int_equal(waits.n, 0);
    spice_glz_sent(d, 0, id, 17);
    assert_int_equal(spice_glz_encode(d, 1, a, 32, 32, &b, &waits, &id), 0);
    assert_int_equal(waits.n, 1);
    assert_int_equal(waits.items[0].channel_id, 0);
    assert_int_equal(waits.items[0].serial, 17);
    spice_glz_sent(d, 1, id, 4);
    assert_int_equal(spice_glz_encode(d, 1, a, 32, 32, &b, &waits, &id), 0);
    assert_int_equal(waits.n, 0); /* already waited */
    mig_buf_free(&b);
    free(a);
    spice_glz_dict_free(d);
}

/* Many images through a window of about three: the client keeps up,
 * dropping what the server no longer refers to. */
static void test_spice_glz_window_drops_old_images(void **state)
{
    (void)state;
    SpiceGlzDict *d = spice_glz_dict_new(1, 3 * 40 * 40);
    FakeGlzWindow *win = fake_glz_window_new();
    for (uint32_t k = 0; k < 40; k++) {
        uint32_t *px = picture(40, 40, k % 5);
        round_trip(d, win, (uint8_t)(k % 2), px, 40, 40, NULL);
        free(px);
        assert_true(fake_glz_window_count(win) <= 4);
    }
    assert_int_equal(fake_glz_window_decoded(win), 40);
    uint32_t big[8];
    MigBuf b = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(d, 0, big, 1, 3 * 40 * 40 + 1, &b, &waits, &id), -EINVAL);
    mig_buf_free(&b);
    fake_glz_window_free(win);
    spice_glz_dict_free(d);
}

static void test_spice_glz_id_travels_with_the_blob(void **state)
{
    (void)state;
    SpiceGlzDict *src = spice_glz_dict_new(1, 1u << 20);
    FakeGlzWindow *win = fake_glz_window_new();
    uint32_t *px = picture(32, 16, 9);
    for (int k = 0; k < 3; k++)
        round_trip(src, win, 0, px, 32, 16, NULL);
    MigBuf blob = {0};
    memset(mig_buf_reserve(&blob, SPICE_DCMD_BODY_END), 0, SPICE_DCMD_BODY_END);
    blob.len = SPICE_DCMD_BODY_END;
    assert_int_equal(spice_glz_export(src, &blob, NULL), 0);
    static const uint8_t part[SPICE_DCMD_GLZ_LEN] = {1, 0, 0, 0x10, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(blob.data + SPICE_DCMD_GLZ_OFFSET, part, sizeof(part));
    /* frozen on the source */
    MigBuf b = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(src, 0, px, 32, 16, &b, &waits, &id), -EBUSY);
    SpiceGlzBlob gb;
    assert_int_equal(spice_glz_parse(blob.data, blob.len, &gb, NULL), 0);
    assert_int_equal(spice_glz_parse(blob.data, SPICE_DCMD_BODY_END - 1, &gb, NULL), -EPROTO);
    SpiceGlzDict *dst = spice_glz_dict_import(&gb);
    assert_int_equal(spice_glz_next_id(dst), 3);
    assert_int_equal(spice_glz_dict_window(dst), 1u << 20);
    /* the client's window, kept across the switch, takes the target's next image */
    round_trip(dst, win, 0, px, 32, 16, NULL);
    assert_int_equal(fake_glz_window_decoded(win), 4);
    mig_buf_free(&blob);
    free(px);
    fake_glz_window_free(win);
    spice_glz_dict_free(src);
    spice_glz_dict_free(dst);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_glz_header_and_single_image_round_trip),
        cmocka_unit_test(test_spice_glz_later_images_refer_to_earlier_ones),
        cmocka_unit_test(test_spice_glz_waits_for_the_other_channel),
        cmocka_unit_test(test_spice_glz_window_drops_old_images),
        cmocka_unit_test(test_spice_glz_id_travels_with_the_blob),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
