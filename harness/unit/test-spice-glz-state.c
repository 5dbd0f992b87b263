/*
 * test-spice-glz-state.c - the GLZ dictionary in the machine's migration
 * stream (impl/spice/spice-glz.c, "the machine's migration stream"): a
 * target that loaded the source's dictionary refers to images the SOURCE
 * encoded, and the client that kept its window (fake-client-glz.c) decodes
 * them pixel-exact; a blob naming another last id, window or dictionary
 * does not match; every truncation and a spoiled image of the state is
 * refused with a reason.
 * Called by: `make unit` (cmocka).  Invariant: no test depends on time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/fake-client-glz.h"
#include "spice/spice-glz.h"

/* A picture the next ones resemble: stripes shifted by `shift`. */
static uint32_t *stripes(uint32_t w, uint32_t h, uint32_t shift)
{
    uint32_t *px = malloc((size_t)w * h * 4);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++)
            px[(size_t)y * w + x] = ((x + shift) * 2654435761u ^ y * 40503u) & 0xffffff;
    return px;
}

static void send_one(SpiceGlzDict *d, FakeGlzWindow *win, const uint32_t *px, uint32_t w, uint32_t h)
{
    MigBuf b = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(d, 0, px, w, h, &b, &waits, &id), 0);
    uint32_t *out;
    MigErr *err = NULL;
    if (fake_glz_decode(win, b.data, b.len, w, h, &out, &err) < 0)
        fail_msg("decode: %s", err->msg);
    assert_memory_equal(out, px, (size_t)w * h * 4);
    free(out);
    mig_buf_free(&b);
}

static SpiceGlzBlob blob_of(SpiceGlzDict *src)
{
    MigBuf blob = {0};
    memset(mig_buf_reserve(&blob, SPICE_DCMD_BODY_END), 0, SPICE_DCMD_BODY_END);
    blob.len = SPICE_DCMD_BODY_END;
    assert_int_equal(spice_glz_export(src, &blob, NULL), 0);
    SpiceGlzBlob gb;
    assert_int_equal(spice_glz_parse(blob.data, blob.len, &gb, NULL), 0);
    mig_buf_free(&blob);
    return gb;
}

static void test_spice_glz_state_target_refers_to_the_source_images(void **state)
{
    (void)state;
    SpiceGlzDict *src = spice_glz_dict_new(2, 4096);
    FakeGlzWindow *win = fake_glz_window_new();
    uint32_t *a = stripes(40, 30, 0), *b = stripes(40, 30, 7);
    send_one(src, win, a, 40, 30); /* ids 0, 1, 2: 3600 pixels, all in the window */
    send_one(src, win, b, 40, 30);
    send_one(src, win, a, 40, 30);
    MigBuf st = {0};
    spice_glz_state_save(src, &st); /* at stop-and-copy */
    SpiceGlzBlob gb = blob_of(src); /* at the hand-over */
    MigErr *err = NULL;
    SpiceGlzDict *dst = spice_glz_state_load(st.data, st.len, &err);
    assert_non_null(dst);
    assert_true(spice_glz_state_matches(dst, &gb));
    assert_int_equal(spice_glz_next_id(dst), 3);
    /* the target's first image is the source's second one again: all of it a reference */
    MigBuf enc = {0};
    SpicePixmapWaits waits;
    uint64_t id;
    assert_int_equal(spice_glz_encode(dst, 0, b, 40, 30, &enc, &waits, &id), 0);
    assert_int_equal(id, 3);
    assert_true(spice_glz_inherited_refs(dst) > 0);
    assert_true(enc.len < 100); /* 1200 pixels in a few references */
    uint32_t *out;
    assert_int_equal(fake_glz_decode(win, enc.data, enc.len, 40, 30, &out, &err), 0);
    assert_memory_equal(out, b, 40 * 30 * 4);
    free(out);
    /* a client that never held the source's images cannot decode it: the
     * reference was real */
    FakeGlzWindow *fresh = fake_glz_window_new();
    assert_int_equal(fake_glz_decode(fresh, enc.data, enc.len, 40, 30, &out, &err), -EPROTO);
    mig_err_free(err);
    fake_glz_window_free(fresh);
    mig_buf_free(&enc);
    spice_glz_dict_free(dst);
    mig_buf_free(&st);
    free(a);
    free(b);
    fake_glz_window_free(win);
    spice_glz_dict_free(src);
}

static void test_spice_glz_state_matches_only_the_same_dictionary(void **state)
{
    (void)state;
    SpiceGlzDict *src = spice_glz_dict_new(2, 4096);
    FakeGlzWindow *win = fake_glz_window_new();
    uint32_t *a = stripes(20, 10, 3);
    send_one(src, win, a, 20, 10);
    MigBuf st = {0};
    spice_glz_state_save(src, &st);
    SpiceGlzDict *dst = spice_glz_state_load(st.data, st.len, NULL);
    assert_non_null(dst);
    send_one(src, win, a, 20, 10); /* an image after the stream's copy: the client holds one more */
    SpiceGlzBlob gb = blob_of(src);
    assert_false(spice_glz_state_matches(dst, &gb));
    gb.last_image_id = 0;
    assert_true(spice_glz_state_matches(dst, &gb));
    gb.window = 8192;
    assert_false(spice_glz_state_matches(dst, &gb));
    gb.window = 4096, gb.dict_id = 1;
    assert_false(spice_glz_state_matches(dst, &gb));
    spice_glz_dict_free(dst);
    mig_buf_free(&st);
    free(a);
    fake_glz_window_free(win);
    spice_glz_dict_free(src);
}

static void test_spice_glz_state_refuses_bad_bytes(void **state)
{
    (void)state;
    SpiceGlzDict *src = spice_glz_dict_new(2, 4096);
    FakeGlzWindow *win = fake_glz_window_new();
    uint32_t *a = stripes(20, 10, 5);
    send_one(src, win, a, 20, 10);
    send_one(src, win, a, 20, 10);
    MigBuf st = {0};
    spice_glz_state_save(src, &st);
    for (size_t len = 0; len < st.len; len++) {
        MigErr *err = NULL;
        assert_null(spice_glz_state_load(st.data, len, &err));
        assert_non_null(err);
        mig_err_free(err);
    }
    MigErr *err = NULL;
    st.data[17 + 7] ^= 1; /* the first image's id no longer ends before next_id */
    assert_null(spice_glz_state_load(st.data, st.len, &err));
    assert_non_null(strstr(err->msg, "does not fit"));
    mig_err_free(err), err = NULL;
    st.data[17 + 7] ^= 1;
    st.data[1] = 0x7f; /* a window beyond any client's */
    assert_null(spice_glz_state_load(st.data, st.len, &err));
    assert_non_null(strstr(err->msg, "out of range"));
    mig_err_free(err);
    mig_buf_free(&st);
    free(a);
    fake_glz_window_free(win);
    spice_glz_dict_free(src);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spice_glz_state_target_refers_to_the_source_images),
        cmocka_unit_test(test_spice_glz_state_matches_only_the_same_dictionary),
        cmocka_unit_test(test_spice_glz_state_refuses_bad_bytes),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
