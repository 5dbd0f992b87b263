/*
 * test-analyze-device.c - `migcert analyze` over a stream with a VFIO-style
 * device section (fake-gpu through device-savevm's payload records), as the
 * source writes it: the analysis reaches EOF, reports the section's records
 * and byte counts, and every cut inside the device records is "truncated"
 * with the offset of the record it cut (every byte of the framing, and the
 * edges and a sample of each DATA record's bytes).
 *
 * With MIGCERT_WRITE_STREAM=FILE set, the stream is also written to FILE
 * (harness/pytest/test_analyze_ours.py runs the CLI over it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device/device-savevm.h"
#include "stream/dev-format.h"
#include "devices/fake-gpu.h"
#include "stream/analyze.h"

#define IDSTR "0000:00:05.0/vfio"

typedef struct Gpu {
    uint8_t *buf;
    size_t len;
    uint64_t dev_start, dev_end; /* first device record, EOF marker */
    uint64_t precopy, stopcopy; /* DATA bytes written in PART / END */
} Gpu;

static void section(MigStream *s, uint8_t type, uint32_t id)
{
    MigSectionHeader h = {.type = type, .section_id = id, .instance_id = 0, .version_id = 1};
    snprintf(h.idstr, sizeof(h.idstr), "%s", IDSTR);
    mig_stream_put_section_header(s, &h);
}

/* Source side of one migration of a 256 KiB fake-gpu with pre-copy. */
static void make_stream(Gpu *g)
{
    MigcertDeviceConfig cfg = {sizeof(cfg), MIG_DEV_F_ALL, 0x5eed, 256 * 1024};
    MigDevBackend *be = mig_dev_backend_plugin_new(fake_gpu_plugin(), &cfg, "fake-gpu", NULL);
    assert_non_null(be);
    MigDevice *dev = mig_device_new("fake-gpu", be, NULL);
    assert_non_null(dev);
    MigSavevm *sv = mig_savevm_new();
    MigDevSection *sec = mig_dev_section_register(sv, dev, IDSTR, 0, NULL);
    assert_non_null(sec);
    const MigSaveEntry *e = mig_savevm_find(sv, IDSTR, 0);
    assert_non_null(e);
    MigStream *s = mig_stream_new_mem_writer();
    mig_stream_put_file_header(s);
    mig_stream_put_configuration(s, "pc-i440fx-7.2", NULL, 0);
    section(s, MIG_SECTION_START, 2);
    g->dev_start = mig_stream_offset(s);
    assert_int_equal(e->iter->save_setup(e->opaque, s, NULL), 0);
    mig_stream_put_section_footer(s, 2);
    int r = 0;
    for (int pass = 0; r == 0 && pass < 64; pass++) {
        section(s, MIG_SECTION_PART, 2);
        uint64_t at = mig_stream_offset(s);
        r = e->iter->save_iterate(e->opaque, s, 64 * 1024, NULL);
        assert_true(r >= 0);
        assert_true(mig_stream_offset(s) > at);
        mig_stream_put_section_footer(s, 2);
    }
    assert_int_equal(r, 1);
    g->precopy = mig_device_bytes_read(dev);
    section(s, MIG_SECTION_END, 2);
    r = 0;
    while (r == 0)
        assert_true((r = e->iter->save_complete(e->opaque, s, 1 << 20, NULL)) >= 0);
    mig_stream_put_section_footer(s, 2);
    g->stopcopy = mig_device_bytes_read(dev) - g->precopy;
    g->dev_end = mig_stream_offset(s);
    mig_stream_put_eof(s);
    e->iter->save_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    size_t len;
    const uint8_t *p = mig_stream_mem_data(s, &len);
    g->buf = malloc(len);
    memcpy(g->buf, p, len);
    g->len = len;
    mig_stream_free(s);
    mig_dev_section_free(sec);
    mig_device_free(dev);
    mig_savevm_free(sv);
    const char *out = getenv("MIGCERT_WRITE_STREAM");
    if (out) {
        FILE *f = fopen(out, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(g->buf, 1, g->len, f), g->len);
        fclose(f);
    }
}

static void test_analyze_device_section_reaches_eof(void **state)
{
    (void)state;
    Gpu g = {0};
    make_stream(&g);
    json_t *doc = NULL;
    MigErr *err = NULL;
    int r = mig_analyze_buffer(g.buf, g.len, &doc, NULL, &err);
    if (r)
        fail_msg("analyze: %s", err->msg);
    assert_int_equal(json_integer_value(json_object_get(doc, "eof_offset")), g.dev_end);
    json_t *ds = json_object_get(doc, "device_sections");
    assert_int_equal(json_array_size(ds), 1);
    json_t *d = json_array_get(ds, 0);
    assert_string_equal(json_string_value(json_object_get(d, "name")), IDSTR);
    assert_int_equal(json_integer_value(json_object_get(d, "section_id")), 2);
    assert_true(json_is_true(json_object_get(d, "complete")));
    json_t *rc = json_object_get(d, "records");
    assert_int_equal(json_integer_value(json_object_get(rc, "SETUP")), 1);
    assert_int_equal(json_integer_value(json_object_get(rc, "COMPLETE")), 1);
    /* what the device handed out before and after it stopped: an idle
     * device sends its 256 KiB snapshot in pre-copy */
    assert_true(g.precopy >= 256 * 1024);
    assert_int_equal(json_integer_value(json_object_get(d, "precopy_bytes")), g.precopy);
    assert_int_equal(json_integer_value(json_object_get(d, "stopcopy_bytes")), g.stopcopy);
    assert_true(json_integer_value(json_object_get(rc, "DATA")) >= 4);
    /* one EOS per payload: START, each PART, END */
    size_t nsec = json_array_size(json_object_get(doc, "sections"));
    assert_int_equal(json_integer_value(json_object_get(rc, "EOS")), nsec);
    json_decref(doc);
    free(g.buf);
}

/* Every cut from the first device record to the EOF marker: exit status
 * of the CLI is 1 for these (-EIO), the message says truncated and where.
 * Inside a DATA record's bytes every cut takes the same path (the record's
 * bytes run out), so there the cuts are the first and last EDGE bytes and
 * every SAMPLE-th byte between; every other byte (section framing, record
 * tags and lengths, EOS, COMPLETE) is cut at.  Cutting at each of the
 * ~300,000 payload bytes made this one test most of the unit lane's time,
 * and far more under valgrind and the sanitizers. */
#define EDGE 3u
#define SAMPLE 1024u
static void test_analyze_device_every_truncation(void **state)
{
    (void)state;
    Gpu g = {0};
    make_stream(&g);
    size_t cuts = 0, skipped = 0;
    for (size_t cut = g.dev_start; cut <= g.dev_end; cut++) {
        MigErr *err = NULL;
        uint64_t off = UINT64_MAX;
        int r = mig_analyze_buffer(g.buf, cut, NULL, &off, &err);
        if (r != -EIO || !err || !strstr(err->msg, "truncated") || !strstr(err->msg, "offset") ||
            off > cut)
            fail_msg("cut at %zu: r=%d offset %llu: %s", cut, r, (unsigned long long)off,
                     err ? err->msg : "(no error)");
        mig_err_free(err);
        cuts++;
        /* the cut fell in the bytes of the DATA record at `off`: go on at
         * its next sampled byte, or its last EDGE bytes */
        size_t bytes = off + MIG_DEV_REC_DATA_HDR;
        if (g.buf[off] != MIG_DEV_REC_DATA || cut < bytes + EDGE - 1)
            continue;
        size_t end = bytes + ((size_t)g.buf[off + 1] << 24 | (size_t)g.buf[off + 2] << 16 |
                              (size_t)g.buf[off + 3] << 8 | g.buf[off + 4]);
        if (end > g.dev_end || cut >= end - EDGE)
            continue;
        size_t next = (cut - bytes) / SAMPLE * SAMPLE + SAMPLE + bytes;
        if (next > end - EDGE)
            next = end - EDGE;
        skipped += next - 1 - cut;
        cut = next - 1;
    }
    /* the sampling skipped payload bytes only: most of the section is DATA */
    assert_true(skipped > cuts);
    assert_true(cuts + skipped == g.dev_end - g.dev_start + 1);
    free(g.buf);
}

/* A DATA record with a zero length is named with its offset. */
static void test_analyze_device_bad_data_length(void **state)
{
    (void)state;
    Gpu g = {0};
    make_stream(&g);
    /* START payload: SETUP (5) EOS (1), footer (5); then the first PART
     * header (type + be32 id), then its first record */
    size_t at = g.dev_start + 6 + 5 + 5;
    assert_int_equal(g.buf[at], 0x02);
    memset(g.buf + at + 1, 0, 4);
    MigErr *err = NULL;
    uint64_t off = 0;
    assert_int_equal(mig_analyze_buffer(g.buf, g.len, NULL, &off, &err), -EPROTO);
    assert_int_equal(off, at);
    if (!strstr(err->msg, "DATA record of 0 bytes"))
        fail_msg("%s", err->msg);
    mig_err_free(err);
    free(g.buf);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_analyze_device_section_reaches_eof),
        cmocka_unit_test(test_analyze_device_every_truncation),
        cmocka_unit_test(test_analyze_device_bad_data_length),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
