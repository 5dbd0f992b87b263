/*
 * test-stream.c - impl/stream: the codec (wire bytes, sticky errors, offsets,
 * mark/rewind over a trickling non-blocking transport, zero-copy flush with
 * backpressure, fault points), the v3 framing (bytes as QEMU 7.2 writes
 * them, QEMU's error texts), the RAM record format, the device section
 * record format (dev-format.h), and the analyzer (every truncation and byte
 * flip of a small multi-section stream) with the text `migcert analyze`
 * prints (harness/runner/analyze-print.c).
 *
 * Rerun one case: build/unit/test-stream test_stream_<name>
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#ifdef FIU_ENABLE
#include <fiu-control.h>
#endif

#include "runner/analyze-print.h"
#include "stream/analyze.h"
#include "stream/dev-format.h"
#include "stream/ram-format.h"
#include "stream/stream.h"
#include "test-scale.h"

/* ------------------------------------------------------------------ helpers */

static void assert_mem_writer_bytes(MigStream *w, const uint8_t *want, size_t n)
{
    size_t len = 0;
    const uint8_t *got = mig_stream_mem_data(w, &len);
    assert_int_equal(mig_stream_error(w), 0);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    assert_int_equal(mig_stream_offset(w), n);
}

/* Run fn over a memory reader of buf and return the error, its message in
 * msg (or ""). */
static void expect_err(MigErr *err, int code, const char *text)
{
    assert_non_null(err);
    assert_int_equal(err->code, code);
    if (!strstr(err->msg, text))
        fail_msg("error '%s' does not contain '%s'", err->msg, text);
}

/* ------------------------------------------------------------------ test transport
 * A non-blocking transport over memory.  Reads deliver at most `chunk` bytes
 * and, when `stutter` is set, answer -EAGAIN on every other call (and at the
 * end of data unless `eof`); writes accept at most `chunk` bytes per call,
 * with the same stutter. */
typedef struct TestTransport {
    MigTransport base;
    const uint8_t *src;
    size_t src_len, src_pos;
    bool eof;
    size_t chunk;
    bool stutter, tick;
    uint8_t *sink;
    size_t sink_len, sink_cap;
    int reads, writevs;
} TestTransport;

static bool tt_stall(TestTransport *t)
{
    if (!t->stutter)
        return false;
    t->tick = !t->tick;
    return t->tick;
}

static ssize_t tt_read(MigTransport *base, void *buf, size_t len)
{
    TestTransport *t = (TestTransport *)base;
    t->reads++;
    if (tt_stall(t))
        return -EAGAIN;
    size_t left = t->src_len - t->src_pos;
    if (left == 0)
        return t->eof ? 0 : -EAGAIN;
    size_t n = MIG_MIN(MIG_MIN(len, left), t->chunk);
    memcpy(buf, t->src + t->src_pos, n);
    t->src_pos += n;
    return (ssize_t)n;
}

static ssize_t tt_writev(MigTransport *base, const struct iovec *iov, int iovcnt)
{
    TestTransport *t = (TestTransport *)base;
    t->writevs++;
    if (tt_stall(t))
        return -EAGAIN;
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < t->chunk; i++) {
        size_t n = MIG_MIN(iov[i].iov_len, t->chunk - done);
        if (t->sink_len + n > t->sink_cap) {
            t->sink_cap = MIG_MAX(t->sink_cap * 2, t->sink_len + n);
            t->sink = realloc(t->sink, t->sink_cap);
        }
        memcpy(t->sink + t->sink_len, iov[i].iov_base, n);
        t->sink_len += n;
        done += n;
    }
    return (ssize_t)done;
}

static ssize_t tt_write(MigTransport *base, const void *buf, size_t len)
{
    struct iovec v = {(void *)buf, len};
    return tt_writev(base, &v, 1);
}

static void tt_close(MigTransport *base)
{
    (void)base;
}

static const MigTransportOps tt_ops = {
    .kind = "test",
    .read = tt_read,
    .write = tt_write,
    .writev = tt_writev,
    .close = tt_close,
};

static void tt_init(TestTransport *t, const uint8_t *src, size_t len, size_t chunk, bool stutter)
{
    memset(t, 0, sizeof(*t));
    t->base.ops = &tt_ops;
    t->src = src;
    t->src_len = len;
    t->eof = true;
    t->chunk = chunk;
    t->stutter = stutter;
}

/* ------------------------------------------------------------------ a small multi-section stream */

static const char test_vmdesc[] =
    "{\"page_size\": 4096, \"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, "
    "\"vmsd_name\": \"fake-dev\", \"version\": 1, \"fields\": ["
    "{\"name\": \"reg\", \"type\": \"uint32\", \"size\": 4}, "
    "{\"name\": \"ctr\", \"type\": \"int16\", \"size\": 2}, "
    "{\"name\": \"mac\", \"type\": \"buffer\", \"size\": 5}, "
    "{\"name\": \"q\", \"type\": \"struct\", \"size\": 2, \"array_len\": 2, \"struct\": "
    "{\"vmsd_name\": \"fake-q\", \"version\": 1, \"fields\": "
    "[{\"name\": \"head\", \"type\": \"uint8\", \"size\": 1}, "
    "{\"name\": \"tail\", \"type\": \"uint8\", \"size\": 1}]}}], "
    "\"subsections\": [{\"vmsd_name\": \"fake-dev/extra\", \"version\": 1, \"fields\": "
    "[{\"name\": \"on\", \"type\": \"bool\", \"size\": 1}]}]}]}";

typedef struct Built {
    uint8_t *data;
    size_t len;
    size_t eof_end;                 /* length of the stream without the trailer */
    size_t page_at[2];              /* where the two page payloads start */
    size_t ram_start, device_start; /* section header offsets */
} Built;

static uint8_t page_a[4096], page_b[4096];

/* Under valgrind (test-scale.h) the loops over every prefix of a Built
 * stream skip the cuts strictly inside a page payload but its first and
 * last three and its middle: a cut anywhere in there takes the same path
 * through the parser (a payload is read in one piece), and the ~8000 of
 * them are most of valgrind's time in this file.  Likewise inside the
 * VMDESCRIPTION's JSON (after its 5-byte head): a cut there is a trailer
 * whose length runs past the input, read in one piece too (no JSON is
 * parsed before the whole of it arrived).  Natively and under the
 * sanitizers every prefix runs. */
static bool skip_payload_cut(const Built *b, size_t n)
{
    if (!test_scale_small())
        return false;
    for (int k = 0; k < 2; k++)
        if (n > b->page_at[k] + 2 && n < b->page_at[k] + 4096 - 2 && n != b->page_at[k] + 2048)
            return true;
    size_t json = b->eof_end + 5; /* 0x06, be32 length */
    if (b->len > json && n > json + 2 && n < b->len - 2 && n != json + (b->len - json) / 2)
        return true;
    return false;
}

static void fill_pages(void)
{
    for (size_t i = 0; i < 4096; i++) {
        page_a[i] = (uint8_t)(i * 7 + 1);
        page_b[i] = (uint8_t)(0xff - i);
    }
}

/* Writes the stream into w; records offsets into b (may be NULL). */
static void write_stream(MigStream *w, Built *b, const char *vmdesc)
{
    static const MigRamBlockInfo blocks[] = {{"pc.ram", 0x4000, 0x1000000},
                                             {"pc.bios", 0x2000, 0xfffc0000}};
    static const char *const caps[] = {"x-ignore-shared"};
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    mig_stream_put_file_header(w);
    /* x-ignore-shared: the configuration carries a capabilities subsection
     * (read with peeks) and MEM_SIZE carries each block's mr_addr */
    mig_stream_put_configuration(w, "pc-i440fx-7.2", caps, 1);

    MigSectionHeader h = {.type = MIG_SECTION_START, .section_id = 2, .idstr = "ram",
                          .instance_id = 0, .version_id = 4};
    if (b)
        b->ram_start = mig_stream_offset(w);
    mig_stream_put_section_header(w, &h);
    mig_ram_put_mem_size(w, &rw, blocks, 2, true);
    mig_ram_put_eos(w);
    mig_stream_put_section_footer(w, 2);

    h.type = MIG_SECTION_PART;
    mig_stream_put_section_header(w, &h);
    if (b)
        b->page_at[0] = mig_stream_offset(w) + 8 + 1 + 6;
    mig_ram_put_page(w, &rw, "pc.ram", 0, page_a);
    mig_ram_put_zero(w, &rw, "pc.ram", 0x1000, 0);
    if (b)
        b->page_at[1] = mig_stream_offset(w) + 8 + 1 + 7;
    mig_ram_put_page(w, &rw, "pc.bios", 0x1000, page_b);
    mig_ram_put_eos(w);
    mig_stream_put_section_footer(w, 2);

    h.type = MIG_SECTION_END;
    mig_stream_put_section_header(w, &h);
    mig_ram_put_zero(w, &rw, "pc.bios", 0, 0); /* same block: CONTINUE */
    mig_ram_put_hook(w);
    mig_ram_put_eos(w);
    mig_stream_put_section_footer(w, 2);

    MigSectionHeader d = {.type = MIG_SECTION_FULL, .section_id = 3, .idstr = "fake-dev",
                          .instance_id = 0, .version_id = 1};
    if (b)
        b->device_start = mig_stream_offset(w);
    mig_stream_put_section_header(w, &d);
    mig_stream_put_be32(w, 0x11223344);                  /* reg */
    mig_stream_put_be16(w, 0xfffe);                      /* ctr = -2 */
    mig_stream_put_buffer(w, "\x52\x54\x00\x12\x34", 5); /* mac */
    mig_stream_put_u8(w, 1);                             /* q[0].head */
    mig_stream_put_u8(w, 2);                             /* q[0].tail */
    mig_stream_put_u8(w, 3);                             /* q[1].head */
    mig_stream_put_u8(w, 4);                             /* q[1].tail */
    mig_stream_put_u8(w, MIG_SECTION_SUBSECTION);
    mig_stream_put_counted(w, "fake-dev/extra");
    mig_stream_put_be32(w, 1);
    mig_stream_put_u8(w, 1); /* on */
    mig_stream_put_section_footer(w, 3);
    mig_stream_put_eof(w);
    if (b)
        b->eof_end = mig_stream_offset(w);
    if (vmdesc)
        mig_stream_put_vmdesc(w, vmdesc, strlen(vmdesc));
}

static Built build_stream_with(const char *vmdesc)
{
    Built b;
    memset(&b, 0, sizeof(b));
    fill_pages();
    MigStream *w = mig_stream_new_mem_writer();
    write_stream(w, &b, vmdesc);
    assert_int_equal(mig_stream_error(w), 0);
    size_t len;
    const uint8_t *p = mig_stream_mem_data(w, &len);
    b.data = malloc(len);
    memcpy(b.data, p, len);
    b.len = len;
    mig_stream_free(w);
    return b;
}

static Built build_stream(bool vmdesc)
{
    return build_stream_with(vmdesc ? test_vmdesc : NULL);
}

/* A restartable parser of exactly that stream, in units: each unit starts
 * with a mark; when the stream starves, the unit rewinds and reports
 * -EAGAIN; the unit commits its results only when it completed. */
enum { P_HEADER, P_CONFIG, P_SECTION, P_RAM, P_DEVICE, P_FOOTER, P_TRAILER, P_DONE };

typedef struct Parsed {
    int phase;
    MigStreamConfig cfg;
    MigSectionHeader cur;
    int sections;
    MigRamReader ram;
    uint64_t pages, zeros, hooks, page_sum;
    uint32_t reg;
    uint16_t ctr;
    uint8_t mac[5], q[4], on;
    size_t vmdesc_len;
} Parsed;

static uint64_t sum_bytes(const uint8_t *p, size_t n)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = s * 31 + p[i];
    return s;
}

static int parse_unit(MigStream *s, Parsed *p, MigErr **errp)
{
    int r = 0;
    switch (p->phase) {
    case P_HEADER:
        if (!(r = mig_stream_get_file_header(s, errp)))
            p->phase = P_CONFIG;
        return r;
    case P_CONFIG:
        if ((r = mig_stream_get_configuration(s, &p->cfg, errp)))
            return r;
        p->ram.ignore_shared = p->cfg.ncaps == 1 && !strcmp(p->cfg.caps[0], "x-ignore-shared");
        p->phase = P_SECTION;
        return 0;
    case P_SECTION: {
        MigSectionHeader h;
        if ((r = mig_stream_get_section_header(s, &h, errp)))
            return r;
        if (h.type == MIG_SECTION_EOF) {
            p->phase = P_TRAILER;
            return 0;
        }
        if (h.type == MIG_SECTION_PART || h.type == MIG_SECTION_END)
            strcpy(h.idstr, "ram");
        p->cur = h;
        p->sections++;
        p->phase = strcmp(h.idstr, "ram") ? P_DEVICE : P_RAM;
        return 0;
    }
    case P_RAM: {
        MigRamRecord rec;
        if ((r = mig_ram_get_record(s, &p->ram, &rec, errp)))
            return r;
        if (rec.kind == MIG_RAM_FLAG_PAGE) {
            p->pages++;
            p->page_sum += sum_bytes(rec.data, rec.len);
        }
        p->zeros += rec.kind == MIG_RAM_FLAG_ZERO;
        p->hooks += rec.kind == MIG_RAM_FLAG_HOOK;
        if (rec.kind == MIG_RAM_FLAG_EOS)
            p->phase = P_FOOTER;
        return 0;
    }
    case P_DEVICE: {
        uint32_t reg = mig_stream_get_be32(s);
        uint16_t ctr = mig_stream_get_be16(s);
        uint8_t mac[5], q[4];
        char name[256];
        mig_stream_get_buffer(s, mac, sizeof(mac));
        mig_stream_get_buffer(s, q, sizeof(q));
        uint8_t sub = mig_stream_get_u8(s);
        mig_stream_get_counted(s, name);
        uint32_t ver = mig_stream_get_be32(s);
        uint8_t on = mig_stream_get_u8(s);
        if (mig_stream_error(s))
            return mig_stream_take_error(s, errp);
        if (mig_stream_starved(s))
            return -EAGAIN;
        if (sub != MIG_SECTION_SUBSECTION || strcmp(name, "fake-dev/extra") || ver != 1)
            return mig_err_set(errp, -EPROTO, "bad subsection");
        p->reg = reg;
        p->ctr = ctr;
        memcpy(p->mac, mac, sizeof(mac));
        memcpy(p->q, q, sizeof(q));
        p->on = on;
        p->phase = P_FOOTER;
        return 0;
    }
    case P_FOOTER:
        if (!(r = mig_stream_get_section_footer(s, p->cur.section_id, p->cur.idstr, errp)))
            p->phase = P_SECTION;
        return r;
    case P_TRAILER: {
        if (mig_stream_at_eof(s) && !mig_stream_error(s)) {
            p->phase = P_DONE;
            return 0;
        }
        if (mig_stream_starved(s))
            return -EAGAIN;
        MigSectionHeader h;
        if ((r = mig_stream_get_section_header(s, &h, errp)))
            return r;
        if (h.type != MIG_SECTION_VMDESCRIPTION)
            return mig_err_set(errp, -EPROTO, "no vmdesc");
        char *json;
        if ((r = mig_stream_get_vmdesc(s, &json, &p->vmdesc_len, errp)))
            return r;
        free(json);
        p->phase = P_DONE;
        return 0;
    }
    }
    return -EINVAL;
}

/* Parse to the end; starved units are retried (the test transports always
 * make progress eventually).  Returns 0 or the first error. */
static int parse_all(MigStream *s, Parsed *p, MigErr **errp, int *retries)
{
    memset(p, 0, sizeof(*p));
    mig_ram_reader_init(&p->ram);
    while (p->phase != P_DONE) {
        mig_stream_mark(s);
        int r = parse_unit(s, p, errp);
        if (r == -EAGAIN) {
            mig_stream_rewind(s);
            if (retries)
                ++*retries;
            continue;
        }
        if (r)
            return r;
    }
    return 0;
}

static void assert_parsed_ok(const Parsed *p, bool vmdesc)
{
    assert_string_equal(p->cfg.machine, "pc-i440fx-7.2");
    assert_int_equal(p->cfg.ncaps, 1);
    assert_int_equal(p->ram.blocks[1].mr_addr, 0xfffc0000);
    assert_int_equal(p->sections, 4);
    assert_int_equal(p->pages, 2);
    assert_int_equal(p->zeros, 2);
    assert_int_equal(p->hooks, 1);
    assert_true(p->page_sum == sum_bytes(page_a, 4096) + sum_bytes(page_b, 4096));
    assert_int_equal(p->reg, 0x11223344);
    assert_int_equal((int16_t)p->ctr, -2);
    assert_memory_equal(p->mac, "\x52\x54\x00\x12\x34", 5);
    assert_memory_equal(p->q, "\x01\x02\x03\x04", 4);
    assert_int_equal(p->on, 1);
    assert_int_equal(p->vmdesc_len, vmdesc ? strlen(test_vmdesc) : 0);
}

/* ------------------------------------------------------------------ codec */

static void test_stream_puts_write_big_endian_bytes(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    static const uint8_t big[300] = {[0] = 0xaa, [299] = 0xbb};
    mig_stream_put_u8(w, 0x81);
    mig_stream_put_be16(w, 0x1234);
    mig_stream_put_be32(w, 0xdeadbeef);
    mig_stream_put_be64(w, 0x0102030405060708ull);
    mig_stream_put_buffer(w, "xyz", 3);
    mig_stream_put_counted(w, "ram");
    mig_stream_put_counted(w, "");
    mig_stream_put_buffer_ref(w, "ref", 3);
    const uint8_t want[] = {
        0x81,                                           /* u8 */
        0x12, 0x34,                                     /* be16 */
        0xde, 0xad, 0xbe, 0xef,                         /* be32 */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* be64 */
        'x',  'y',  'z',                                /* buffer */
        0x03, 'r',  'a',  'm',                          /* counted "ram" */
        0x00,                                           /* counted "" */
        'r',  'e',  'f',                                /* buffer_ref (copied in memory) */
    };
    assert_mem_writer_bytes(w, want, sizeof(want));
    /* a memory writer owns its bytes, even those put by reference */
    mig_stream_put_buffer_ref(w, big, sizeof(big));
    size_t len;
    const uint8_t *got = mig_stream_mem_data(w, &len);
    assert_int_equal(len, sizeof(want) + sizeof(big));
    assert_memory_equal(got + sizeof(want), big, sizeof(big));
    assert_int_equal(mig_stream_flush(w), 0);
    assert_int_equal(mig_stream_pending(w), 0);
    mig_stream_free(w);
}

static void test_stream_gets_read_back_what_puts_wrote(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x81, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8,
                             'x',  'y',  'z',  3,    'r',  'a',  'm'};
    MigStream *s = mig_stream_new_mem_reader(bytes, sizeof(bytes));
    assert_int_equal(mig_stream_peek_u8(s, 0), 0x81);
    assert_int_equal(mig_stream_peek_u8(s, 21), 'm');
    assert_int_equal(mig_stream_peek_u8(s, 22), -1);
    assert_int_equal(mig_stream_get_u8(s), 0x81);
    assert_int_equal(mig_stream_get_be16(s), 0x1234);
    assert_int_equal(mig_stream_get_be32(s), 0xdeadbeef);
    assert_true(mig_stream_get_be64(s) == 0x0102030405060708ull);
    char buf[4] = {0};
    mig_stream_get_buffer(s, buf, 3);
    assert_string_equal(buf, "xyz");
    assert_int_equal(mig_stream_offset(s), 18);
    assert_false(mig_stream_at_eof(s));
    char name[256];
    assert_int_equal(mig_stream_get_counted(s, name), 3);
    assert_string_equal(name, "ram");
    assert_true(mig_stream_at_eof(s));
    assert_int_equal(mig_stream_error(s), 0);
    assert_null(mig_stream_error_msg(s));
    mig_stream_free(s);
}

static void test_stream_eof_inside_a_get_is_sticky_eio_with_offset(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0, 0, 0, 7, 0xaa, 0xbb};
    MigStream *s = mig_stream_new_mem_reader(bytes, sizeof(bytes));
    assert_int_equal(mig_stream_get_be32(s), 7);
    assert_int_equal(mig_stream_get_be32(s), 0); /* only 2 bytes left */
    assert_int_equal(mig_stream_error(s), -EIO);
    assert_string_equal(mig_stream_error_msg(s), "truncated: stream ended at offset 6");
    /* sticky: later gets return zeros and consume nothing, the first error stays */
    assert_int_equal(mig_stream_get_u8(s), 0);
    assert_int_equal(mig_stream_offset(s), 4);
    mig_stream_set_error(s, -EPROTO, "second");
    assert_int_equal(mig_stream_error(s), -EIO);
    MigErr *err = NULL;
    assert_int_equal(mig_stream_take_error(s, &err), -EIO);
    expect_err(err, -EIO, "stream ended at offset 6");
    mig_err_free(err);
    assert_int_equal(mig_stream_take_error(s, NULL), -EIO);
    mig_stream_free(s);
}

static void test_stream_misuse_is_an_error_not_a_crash(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    mig_stream_put_counted(w, long_name);
    assert_int_equal(mig_stream_error(w), -EINVAL);
    assert_non_null(strstr(mig_stream_error_msg(w), "too long for a counted string"));
    mig_stream_put_be32(w, 1); /* no-op after the error */
    size_t len;
    mig_stream_mem_data(w, &len);
    assert_int_equal(len, 0);
    assert_int_equal(mig_stream_flush(w), -EINVAL);
    mig_stream_get_u8(w);
    mig_stream_free(w);

    MigStream *r = mig_stream_new_mem_reader("x", 1);
    mig_stream_put_u8(r, 1);
    assert_int_equal(mig_stream_error(r), -EINVAL);
    assert_non_null(strstr(mig_stream_error_msg(r), "put on a stream opened for reading"));
    mig_stream_free(r);
}

static void test_stream_view_and_skip(void **state)
{
    (void)state;
    const uint8_t bytes[] = {1, 2, 3, 4, 5, 6};
    MigStream *s = mig_stream_new_mem_reader(bytes, sizeof(bytes));
    const uint8_t *v = mig_stream_get_view(s, 2);
    assert_non_null(v);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 2);
    mig_stream_skip(s, 3);
    assert_int_equal(mig_stream_get_u8(s), 6);
    assert_null(mig_stream_get_view(s, 1));
    assert_int_equal(mig_stream_error(s), -EIO);
    mig_stream_free(s);

    s = mig_stream_new_mem_reader(bytes, sizeof(bytes));
    mig_stream_skip(s, 1ull << 40); /* a damaged length must not allocate or crash */
    assert_int_equal(mig_stream_error(s), -EIO);
    assert_string_equal(mig_stream_error_msg(s), "truncated: stream ended at offset 6");
    mig_stream_free(s);
}

/* ------------------------------------------------------------------ non-blocking transports */

static void test_stream_mark_rewind_over_a_one_byte_transport(void **state)
{
    (void)state;
    Built b = build_stream(true);
    /* reference: a memory reader */
    Parsed ref;
    MigErr *err = NULL;
    MigStream *m = mig_stream_new_mem_reader(b.data, b.len);
    assert_int_equal(parse_all(m, &ref, &err, NULL), 0);
    assert_parsed_ok(&ref, true);
    mig_stream_free(m);
    mig_ram_reader_free(&ref.ram);

    /* one byte per read, -EAGAIN in between: every unit starves and rewinds */
    TestTransport t;
    tt_init(&t, b.data, b.len, 1, true);
    MigStream *s = mig_stream_new_reader(&t.base);
    Parsed p;
    int retries = 0;
    assert_int_equal(parse_all(s, &p, &err, &retries), 0);
    assert_null(err);
    assert_parsed_ok(&p, true);
    assert_int_equal(mig_stream_offset(s), b.len);
    assert_true(retries >= (int)b.len); /* it did starve, at least once per byte */
    assert_int_equal(t.src_pos, b.len);
    mig_stream_free(s);
    mig_ram_reader_free(&p.ram);
    free(b.data);
}

static void test_stream_starved_gets_return_zero_until_rewind(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0, 0, 0, 42, 7};
    TestTransport t;
    tt_init(&t, bytes, sizeof(bytes), 2, false);
    t.eof = false; /* more may come later */
    t.src_len = 3;
    MigStream *s = mig_stream_new_reader(&t.base);
    mig_stream_mark(s);
    assert_int_equal(mig_stream_get_be32(s), 0);
    assert_true(mig_stream_starved(s));
    assert_int_equal(mig_stream_error(s), 0);
    assert_int_equal(mig_stream_peek_u8(s, 0), -1);
    assert_int_equal(mig_stream_offset(s), 0);
    mig_stream_rewind(s);
    assert_false(mig_stream_starved(s));
    t.src_len = 5; /* the rest arrives */
    t.eof = true;
    assert_int_equal(mig_stream_get_be32(s), 42);
    assert_int_equal(mig_stream_get_u8(s), 7);
    assert_true(mig_stream_at_eof(s));
    mig_stream_free(s);
}

static void test_stream_flush_reports_eagain_until_all_bytes_are_out(void **state)
{
    (void)state;
    fill_pages();
    MigStream *mem = mig_stream_new_mem_writer();
    write_stream(mem, NULL, test_vmdesc);
    size_t want_len;
    const uint8_t *want = mig_stream_mem_data(mem, &want_len);

    TestTransport t;
    tt_init(&t, NULL, 0, 1000, true);
    MigStream *w = mig_stream_new_writer(&t.base);
    write_stream(w, NULL, test_vmdesc);
    assert_int_equal(mig_stream_offset(w), want_len);
    int eagains = 0, r;
    size_t before = mig_stream_pending(w);
    assert_true(before > 0);
    while ((r = mig_stream_flush(w)) == -EAGAIN) {
        eagains++;
        assert_true(mig_stream_pending(w) <= before);
        before = mig_stream_pending(w);
        assert_true(eagains < 100000);
    }
    assert_int_equal(r, 0);
    assert_true(eagains > 0);
    assert_int_equal(mig_stream_pending(w), 0);
    assert_int_equal(t.sink_len, want_len);
    assert_memory_equal(t.sink, want, want_len);
    /* the writer is reusable after a complete flush */
    mig_stream_put_be32(w, 0xcafef00d);
    while ((r = mig_stream_flush(w)) == -EAGAIN)
        ;
    assert_int_equal(t.sink_len, want_len + 4);
    assert_memory_equal(t.sink + want_len, "\xca\xfe\xf0\x0d", 4);
    mig_stream_free(w);
    mig_stream_free(mem);
    free(t.sink);
}

static void test_stream_zero_copy_pages_go_out_in_few_writevs(void **state)
{
    (void)state;
    enum { NPAGES = 3000 };
    uint8_t *pages = malloc((size_t)NPAGES * 4096);
    for (size_t i = 0; i < (size_t)NPAGES * 4096; i++)
        pages[i] = (uint8_t)(i / 4096 + i);
    TestTransport t;
    tt_init(&t, NULL, 0, SIZE_MAX, false);
    MigStream *w = mig_stream_new_writer(&t.base);
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    for (size_t i = 0; i < NPAGES; i++)
        mig_ram_put_page(w, &rw, "pc.ram", i * 4096, pages + i * 4096);
    assert_int_equal(mig_stream_flush(w), 0);
    size_t want = 8 + 1 + 6 + 4096 + (NPAGES - 1) * (8 + 4096);
    assert_int_equal(t.sink_len, want);
    /* two iovecs per page, up to IOV_MAX per writev: a handful of calls */
    assert_true(t.writevs <= 2 * NPAGES / 512 + 4);
    /* the bytes are the pages, each after its record header */
    assert_memory_equal(t.sink + 15, pages, 4096);
    assert_memory_equal(t.sink + 15 + 4096 + 8, pages + 4096, 4096);
    assert_memory_equal(t.sink + want - 4096, pages + (size_t)(NPAGES - 1) * 4096, 4096);
    mig_stream_free(w);
    free(pages);
    free(t.sink);
}

static void test_stream_fault_points_fail_flush_and_read(void **state)
{
    (void)state;
#ifdef FIU_ENABLE
    fiu_init(0);
    TestTransport t;
    tt_init(&t, NULL, 0, SIZE_MAX, false);
    MigStream *w = mig_stream_new_writer(&t.base);
    mig_stream_put_be32(w, 1);
    assert_int_equal(fiu_enable("mig/stream/flush", 1, NULL, 0), 0);
    assert_int_equal(mig_stream_flush(w), -EIO);
    fiu_disable("mig/stream/flush");
    assert_int_equal(t.sink_len, 0); /* nothing half-done */
    assert_int_equal(mig_stream_error(w), -EIO);
    assert_non_null(strstr(mig_stream_error_msg(w), "stream flush failed at offset 0"));
    assert_int_equal(mig_stream_flush(w), -EIO); /* sticky */
    mig_stream_free(w);

    const uint8_t bytes[] = {1, 2, 3, 4};
    tt_init(&t, bytes, sizeof(bytes), SIZE_MAX, false);
    MigStream *s = mig_stream_new_reader(&t.base);
    assert_int_equal(fiu_enable("mig/stream/read", 1, NULL, 0), 0);
    assert_int_equal(mig_stream_get_be32(s), 0);
    fiu_disable("mig/stream/read");
    assert_int_equal(t.reads, 0);
    assert_int_equal(mig_stream_error(s), -EIO);
    assert_non_null(strstr(mig_stream_error_msg(s), "stream read failed at offset 0: EIO"));
    mig_stream_free(s);
#else
    skip(); /* built with FIU=0: the fault points compile to nothing */
#endif
}

/* ------------------------------------------------------------------ framing */

static void test_stream_file_header_bytes_and_errors(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    mig_stream_put_file_header(w);
    const uint8_t want[] = {
        0x51, 0x45, 0x56, 0x4d, /* magic "QEVM" */
        0x00, 0x00, 0x00, 0x03, /* version 3 */
    };
    assert_mem_writer_bytes(w, want, sizeof(want));
    mig_stream_free(w);

    static const struct {
        uint8_t bytes[8];
        size_t len;
        int code;
        const char *text;
    } cases[] = {
        {{'Q', 'E', 'V', 'M', 0, 0, 0, 3}, 8, 0, NULL},
        {{'X', 'X', 'X', 'X', 0, 0, 0, 3}, 8, -EINVAL, "Not a migration stream (magic 0x58585858) at offset 0"},
        {{'Q', 'E', 'V', 'M', 0, 0, 0, 2}, 8, -ENOTSUP, "SaveVM v2 format is obsolete (stream version 2) at offset 4"},
        {{'Q', 'E', 'V', 'M', 0, 0, 0, 4}, 8, -ENOTSUP, "Unsupported migration stream version 4 at offset 4"},
        {{'Q', 'E', 'V', 'M', 0, 0}, 6, -EIO, "truncated: stream ended at offset 6"},
        {{0}, 0, -EIO, "truncated: stream ended at offset 0"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        MigStream *s = mig_stream_new_mem_reader(cases[i].bytes, cases[i].len);
        MigErr *err = NULL;
        assert_int_equal(mig_stream_get_file_header(s, &err), cases[i].code);
        if (cases[i].text) {
            expect_err(err, cases[i].code, cases[i].text);
            assert_string_equal(err->msg, cases[i].text);
        } else {
            assert_null(err);
        }
        mig_err_free(err);
        mig_stream_free(s);
    }
}

/* As QEMU 7.2 writes them (observed: -M pc, with and without x-ignore-shared). */
static const uint8_t config_plain[] = {
    0x07,                   /* CONFIGURATION */
    0x00, 0x00, 0x00, 0x0d, /* be32 len 13 */
    'p',  'c',  '-',  'i',  '4', '4', '0', 'f', 'x', '-', '7', '.', '2', /* machine, no NUL */
};
static const uint8_t config_caps[] = {
    0x07,                                                                /* CONFIGURATION */
    0x00, 0x00, 0x00, 0x0d,                                              /* be32 len 13 */
    'p',  'c',  '-',  'i',  '4', '4', '0', 'f', 'x', '-', '7', '.', '2', /* machine */
    0x05,                                                                /* SUBSECTION */
    0x1a, 'c',  'o',  'n',  'f', 'i', 'g', 'u', 'r', 'a', 't', 'i', 'o', 'n', '/', 'c', 'a', 'p',
    'a',  'b',  'i',  'l',  'i', 't', 'i', 'e', 's', /* counted "configuration/capabilities" */
    0x00, 0x00, 0x00, 0x01,                          /* be32 subsection version 1 */
    0x00, 0x00, 0x00, 0x01,                          /* be32 count 1 */
    0x0f, 'x',  '-',  'i',  'g', 'n', 'o', 'r', 'e', '-', 's', 'h', 'a', 'r', 'e', 'd', /* cap */
};

static void test_stream_configuration_bytes_match_qemu(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    mig_stream_put_configuration(w, "pc-i440fx-7.2", NULL, 0);
    assert_mem_writer_bytes(w, config_plain, sizeof(config_plain));
    mig_stream_free(w);

    const char *caps[] = {"x-ignore-shared"};
    w = mig_stream_new_mem_writer();
    mig_stream_put_configuration(w, "pc-i440fx-7.2", caps, 1);
    assert_mem_writer_bytes(w, config_caps, sizeof(config_caps));
    mig_stream_free(w);

    MigStreamConfig cfg;
    MigStream *s = mig_stream_new_mem_reader(config_caps, sizeof(config_caps));
    assert_int_equal(mig_stream_get_configuration(s, &cfg, NULL), 0);
    assert_string_equal(cfg.machine, "pc-i440fx-7.2");
    assert_int_equal(cfg.ncaps, 1);
    assert_string_equal(cfg.caps[0], "x-ignore-shared");
    assert_true(mig_stream_at_eof(s));
    mig_stream_free(s);
}

static void test_stream_configuration_errors(void **state)
{
    (void)state;
    MigStreamConfig cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    MigStreamConfig before = cfg;
    MigErr *err = NULL;

    /* a section where the configuration belongs */
    const uint8_t start[] = {0x01, 0, 0, 0, 2, 3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, 4};
    MigStream *s = mig_stream_new_mem_reader(start, sizeof(start));
    assert_int_equal(mig_stream_get_configuration(s, &cfg, &err), -EINVAL);
    expect_err(err, -EINVAL, "Configuration section missing at offset 0");
    assert_memory_equal(&cfg, &before, sizeof(cfg)); /* left unchanged */
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    /* an unknown configuration subsection is fatal (-ENOENT), like QEMU */
    uint8_t unk[sizeof(config_caps) + 40];
    memcpy(unk, config_plain, sizeof(config_plain));
    const uint8_t sub[] = {0x05, 17, 'c', 'o', 'n', 'f', 'i', 'g', 'u', 'r', 'a', 't', 'i', 'o',
                           'n', '/', 'f', 'o', 'o', 0, 0, 0, 1};
    memcpy(unk + sizeof(config_plain), sub, sizeof(sub));
    s = mig_stream_new_mem_reader(unk, sizeof(config_plain) + sizeof(sub));
    assert_int_equal(mig_stream_get_configuration(s, &cfg, &err), -ENOENT);
    expect_err(err, -ENOENT, "Unknown subsection 'configuration/foo' in configuration at offset 18");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    /* a 0x05 whose name belongs to no "configuration/..." is left alone
     * (QEMU's peek rules), so the next reader sees it */
    const uint8_t other[] = {0x05, 3, 'f', 'o', 'o'};
    memcpy(unk + sizeof(config_plain), other, sizeof(other));
    s = mig_stream_new_mem_reader(unk, sizeof(config_plain) + sizeof(other));
    assert_int_equal(mig_stream_get_configuration(s, &cfg, NULL), 0);
    assert_int_equal(mig_stream_offset(s), sizeof(config_plain));
    assert_int_equal(mig_stream_get_u8(s), 0x05);
    mig_stream_free(s);

    /* wrong subsection version */
    memcpy(unk, config_caps, sizeof(config_caps));
    unk[18 + 2 + 26 + 3] = 2;
    s = mig_stream_new_mem_reader(unk, sizeof(config_caps));
    assert_int_equal(mig_stream_get_configuration(s, &cfg, &err), -EINVAL);
    expect_err(err, -EINVAL, "configuration/capabilities: unsupported version 2");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);
}

static void test_stream_section_framing_bytes(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    MigSectionHeader h = {.type = MIG_SECTION_START, .section_id = 2, .idstr = "ram",
                          .instance_id = 0, .version_id = 4};
    mig_stream_put_section_header(w, &h);
    mig_stream_put_section_footer(w, 2);
    h.type = MIG_SECTION_PART;
    mig_stream_put_section_header(w, &h);
    h.type = MIG_SECTION_END;
    mig_stream_put_section_header(w, &h);
    MigSectionHeader f = {.type = MIG_SECTION_FULL, .section_id = 0x28, .idstr = "globalstate",
                          .instance_id = 0, .version_id = 1};
    mig_stream_put_section_header(w, &f);
    mig_stream_put_eof(w);
    mig_stream_put_vmdesc(w, "{}", 2);
    const uint8_t want[] = {
        0x01,                                           /* START */
        0x00, 0x00, 0x00, 0x02,                         /* be32 section id */
        0x03, 'r', 'a', 'm',                            /* counted idstr */
        0x00, 0x00, 0x00, 0x00,                         /* be32 instance */
        0x00, 0x00, 0x00, 0x04,                         /* be32 version */
        0x7e,                                           /* FOOTER */
        0x00, 0x00, 0x00, 0x02,                         /* be32 section id */
        0x02,                                           /* PART */
        0x00, 0x00, 0x00, 0x02,                         /* be32 section id */
        0x03,                                           /* END */
        0x00, 0x00, 0x00, 0x02,                         /* be32 section id */
        0x04,                                           /* FULL */
        0x00, 0x00, 0x00, 0x28,                         /* be32 section id */
        0x0b, 'g', 'l', 'o', 'b', 'a', 'l', 's', 't', 'a', 't', 'e', /* counted idstr */
        0x00, 0x00, 0x00, 0x00,                         /* be32 instance */
        0x00, 0x00, 0x00, 0x01,                         /* be32 version */
        0x00,                                           /* EOF */
        0x06,                                           /* VMDESCRIPTION */
        0x00, 0x00, 0x00, 0x02,                         /* be32 len */
        '{', '}',                                       /* JSON, no NUL */
    };
    assert_mem_writer_bytes(w, want, sizeof(want));
    mig_stream_free(w);

    MigStream *s = mig_stream_new_mem_reader(want, sizeof(want));
    MigSectionHeader g;
    MigErr *err = NULL;
    assert_int_equal(mig_stream_get_section_header(s, &g, &err), 0);
    assert_int_equal(g.type, MIG_SECTION_START);
    assert_int_equal(g.section_id, 2);
    assert_string_equal(g.idstr, "ram");
    assert_int_equal(g.version_id, 4);
    assert_int_equal(g.offset, 0);
    assert_int_equal(mig_stream_get_section_footer(s, 2, "ram", &err), 0);
    assert_int_equal(mig_stream_get_section_header(s, &g, &err), 0);
    assert_int_equal(g.type, MIG_SECTION_PART);
    assert_int_equal(g.offset, 22);
    assert_int_equal(mig_stream_get_section_header(s, &g, &err), 0);
    assert_int_equal(g.type, MIG_SECTION_END);
    assert_int_equal(mig_stream_get_section_header(s, &g, &err), 0);
    assert_int_equal(g.type, MIG_SECTION_FULL);
    assert_string_equal(g.idstr, "globalstate");
    assert_int_equal(g.section_id, 0x28);
    assert_int_equal(g.version_id, 1);
    assert_int_equal(mig_stream_get_section_header(s, &g, &err), 0);
    assert_int_equal(g.type, MIG_SECTION_EOF);
    assert_int_equal(mig_stream_get_section_header(s, &g, &err), 0);
    assert_int_equal(g.type, MIG_SECTION_VMDESCRIPTION);
    char *json;
    size_t len;
    assert_int_equal(mig_stream_get_vmdesc(s, &json, &len, &err), 0);
    assert_string_equal(json, "{}");
    assert_int_equal(len, 2);
    free(json);
    assert_true(mig_stream_at_eof(s));
    assert_null(err);
    mig_stream_free(s);
    assert_string_equal(mig_section_type_name(MIG_SECTION_FULL), "full");
    assert_null(mig_section_type_name(0x42));
}

static void test_stream_footer_and_section_type_errors(void **state)
{
    (void)state;
    MigErr *err = NULL;
    const uint8_t missing[] = {0x7d, 0, 0, 0, 2};
    MigStream *s = mig_stream_new_mem_reader(missing, sizeof(missing));
    assert_int_equal(mig_stream_get_section_footer(s, 2, "ram", &err), -EINVAL);
    assert_string_equal(err->msg, "Missing section footer for ram at offset 0");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    const uint8_t mismatched[] = {0x7e, 0, 0, 0, 9};
    s = mig_stream_new_mem_reader(mismatched, sizeof(mismatched));
    assert_int_equal(mig_stream_get_section_footer(s, 2, "ram", &err), -EINVAL);
    assert_string_equal(err->msg,
                        "Mismatched section id in footer for ram - read 0x9 expected 0x2 at offset 1");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    const uint8_t unknown[] = {0x09};
    MigSectionHeader h;
    memset(&h, 0, sizeof(h));
    s = mig_stream_new_mem_reader(unknown, sizeof(unknown));
    assert_int_equal(mig_stream_get_section_header(s, &h, &err), -EPROTO);
    assert_string_equal(err->msg, "Unknown savevm section type 9 at offset 0");
    assert_int_equal(h.type, 0); /* unchanged */
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    const uint8_t cut[] = {0x01, 0, 0, 0, 2, 3, 'r'};
    s = mig_stream_new_mem_reader(cut, sizeof(cut));
    assert_int_equal(mig_stream_get_section_header(s, &h, &err), -EIO);
    assert_string_equal(err->msg, "truncated: stream ended at offset 7");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    s = mig_stream_new_mem_reader(huge, sizeof(huge));
    char *json;
    size_t len;
    assert_int_equal(mig_stream_get_vmdesc(s, &json, &len, &err), -EINVAL);
    expect_err(err, -EINVAL, "VMDESCRIPTION length too large at offset 0");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);
}

/* Every prefix of the stream fails with "truncated" at exactly its length,
 * except the two complete forms (with and without the trailer). */
static void test_stream_every_truncation_fails_with_its_offset(void **state)
{
    (void)state;
    Built b = build_stream(true);
    for (size_t n = 0; n <= b.len; n++) {
        if (skip_payload_cut(&b, n))
            continue;
        MigStream *s = mig_stream_new_mem_reader(b.data, n);
        Parsed p;
        MigErr *err = NULL;
        int r = parse_all(s, &p, &err, NULL);
        if (n == b.len || n == b.eof_end) {
            assert_int_equal(r, 0);
            assert_parsed_ok(&p, n == b.len);
        } else {
            char want[64];
            snprintf(want, sizeof(want), "truncated: stream ended at offset %zu", n);
            if (r != -EIO || !err || strcmp(err->msg, want))
                fail_msg("prefix %zu: got %d '%s', want '%s'", n, r, err ? err->msg : "", want);
        }
        mig_err_free(err);
        mig_ram_reader_free(&p.ram);
        mig_stream_free(s);
    }
    free(b.data);
}

/* MigSectionType has no __COUNT (stream.h says why): its name table is
 * mig_section_type_name(), which names exactly the ten wire bytes. */
static void test_stream_section_type_names_cover_exactly_the_wire_bytes(void **state)
{
    (void)state;
    static const uint8_t known[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x7e};
    const char *names[MIG_ARRAY_SIZE(known)];
    size_t n = 0;
    for (int b = 0; b < 256; b++) {
        const char *name = mig_section_type_name((uint8_t)b);
        bool is_known = memchr(known, b, sizeof(known)) != NULL;
        if (is_known != (name != NULL))
            fail_msg("byte 0x%02x: name %s", b, name ? name : "NULL");
        if (name) {
            for (size_t i = 0; i < n; i++)
                if (!strcmp(names[i], name))
                    fail_msg("name %s used twice", name);
            names[n++] = name;
        }
    }
    assert_int_equal(n, MIG_ARRAY_SIZE(known));
    assert_string_equal(mig_section_type_name(MIG_SECTION_FOOTER), "footer");
}

static void test_stream_escape_wire_names(void **state)
{
    (void)state;
    char out[MIG_STREAM_ESCAPED_MAX];
    assert_string_equal(mig_stream_escape("0000:00:01.0/PIIX3", 18, out, sizeof(out)),
                        "0000:00:01.0/PIIX3");
    assert_string_equal(mig_stream_escape("a\x01" "b\\c\xff\x7f", 7, out, sizeof(out)),
                        "a\\x01b\\\\c\\xff\\x7f");
    assert_string_equal(mig_stream_escape("ra\0m", 4, out, sizeof(out)), "ra\\x00m");
    /* a short buffer cuts whole characters, never half an escape */
    char small[6];
    assert_string_equal(mig_stream_escape("ab\x1b" "cd", 5, small, sizeof(small)), "ab");
    /* the worst counted string fits */
    uint8_t all[255];
    memset(all, 0x80, sizeof(all));
    assert_int_equal(strlen(mig_stream_escape(all, sizeof(all), out, sizeof(out))), 255 * 4);
}

/* Names read from the wire reach the framing's messages escaped, and an
 * idstr with a NUL byte (it would match the shorter name) is refused. */
static void test_stream_framing_errors_escape_wire_names(void **state)
{
    (void)state;
    MigErr *err = NULL;
    const uint8_t nul_id[] = {0x04, 0, 0, 0, 3, 4, 'r', 'a', 0, 'm', 0, 0, 0, 0, 0, 0, 0, 1};
    MigStream *s = mig_stream_new_mem_reader(nul_id, sizeof(nul_id));
    MigSectionHeader h;
    memset(&h, 0, sizeof(h));
    assert_int_equal(mig_stream_get_section_header(s, &h, &err), -EPROTO);
    assert_string_equal(err->msg, "section idstr \"ra\\x00m\" contains a NUL byte at offset 5");
    assert_int_equal(h.type, 0); /* unchanged */
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    const uint8_t missing[] = {0x7d, 0, 0, 0, 2};
    s = mig_stream_new_mem_reader(missing, sizeof(missing));
    assert_int_equal(mig_stream_get_section_footer(s, 2, "dev\x1b[2J", &err), -EINVAL);
    assert_string_equal(err->msg, "Missing section footer for dev\\x1b[2J at offset 0");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);

    /* configuration subsection: "configuration/\x07" */
    uint8_t cfg[64];
    size_t n = 0;
    cfg[n++] = 0x07;
    cfg[n++] = 0, cfg[n++] = 0, cfg[n++] = 0, cfg[n++] = 2;
    cfg[n++] = 'p', cfg[n++] = 'c';
    cfg[n++] = 0x05;
    cfg[n++] = 15;
    memcpy(cfg + n, "configuration/\x07", 15), n += 15;
    cfg[n++] = 0, cfg[n++] = 0, cfg[n++] = 0, cfg[n++] = 1;
    s = mig_stream_new_mem_reader(cfg, n);
    MigStreamConfig c;
    assert_int_equal(mig_stream_get_configuration(s, &c, &err), -ENOENT);
    assert_string_equal(err->msg, "Unknown subsection 'configuration/\\x07' in configuration at "
                                  "offset 7");
    mig_err_free(err), err = NULL;
    mig_stream_free(s);
}

/* ------------------------------------------------------------------ RAM records */

static void test_stream_ram_record_bytes(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    const MigRamBlockInfo blocks[] = {{"pc.ram", 0x8000000, 0}};
    mig_ram_put_mem_size(w, &rw, blocks, 1, false);
    mig_ram_put_eos(w);
    mig_ram_put_zero(w, &rw, "pc.ram", 0, 0);
    mig_ram_put_zero(w, &rw, "pc.ram", 0x1000, 0);
    mig_ram_put_hook(w);
    const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x04, /* be64 total 0x8000000 | MEM_SIZE */
        0x06, 'p',  'c',  '.',  'r',  'a',  'm',        /* counted block idstr */
        0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, /* be64 used_length */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, /* be64 EOS */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, /* be64 offset 0 | ZERO */
        0x06, 'p',  'c',  '.',  'r',  'a',  'm',        /* block id: first page record */
        0x00,                                           /* fill byte */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x22, /* be64 0x1000 | ZERO | CONTINUE */
        0x00,                                           /* fill byte */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, /* be64 HOOK: the whole record */
    };
    assert_mem_writer_bytes(w, want, sizeof(want));
    mig_stream_free(w);

    /* with x-ignore-shared every block also carries its mr_addr */
    w = mig_stream_new_mem_writer();
    const MigRamBlockInfo shared[] = {{"b", 0x1000, 0xfeed0000}};
    mig_ram_put_mem_size(w, &rw, shared, 1, true);
    const uint8_t want2[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x04, /* be64 total | MEM_SIZE */
        0x01, 'b',                                      /* counted idstr */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* be64 used_length */
        0x00, 0x00, 0x00, 0x00, 0xfe, 0xed, 0x00, 0x00, /* be64 mr_addr */
    };
    assert_mem_writer_bytes(w, want2, sizeof(want2));
    mig_stream_free(w);
}

static void test_stream_ram_round_trip_keeps_block_across_sections(void **state)
{
    (void)state;
    Built b = build_stream(false);
    /* The END section's zero page names no block: it continues the PART's. */
    const uint8_t end_rec[] = {0, 0, 0, 0, 0, 0, 0, 0x22, 0};
    size_t end_at = b.page_at[1] + 4096 + 8 /* EOS */ + 5 /* footer */ + 5 /* END header */;
    assert_memory_equal(b.data + end_at, end_rec, sizeof(end_rec));

    MigStream *s = mig_stream_new_mem_reader(b.data, b.len);
    Parsed p;
    assert_int_equal(parse_all(s, &p, NULL, NULL), 0);
    assert_parsed_ok(&p, false);
    assert_int_equal(p.ram.nblocks, 2);
    assert_string_equal(p.ram.blocks[1].name, "pc.bios");
    assert_int_equal(p.ram.blocks[1].length, 0x2000);
    assert_int_equal(p.ram.total, 0x6000);
    assert_int_equal(p.ram.cur, 1);
    mig_ram_reader_free(&p.ram);
    mig_stream_free(s);

    /* decode the records of the PART section one by one */
    MigRamReader r;
    mig_ram_reader_init(&r);
    r.ignore_shared = true;
    s = mig_stream_new_mem_reader(b.data + b.ram_start + 17, b.len - b.ram_start - 17);
    MigRamRecord rec;
    assert_int_equal(mig_ram_get_record(s, &r, &rec, NULL), 0);
    assert_int_equal(rec.kind, MIG_RAM_FLAG_MEM_SIZE);
    assert_int_equal(rec.offset, 0x6000);
    assert_int_equal(mig_ram_get_record(s, &r, &rec, NULL), 0);
    assert_int_equal(rec.kind, MIG_RAM_FLAG_EOS);
    mig_stream_skip(s, 5 + 5); /* footer, PART header */
    assert_int_equal(mig_ram_get_record(s, &r, &rec, NULL), 0);
    assert_int_equal(rec.kind, MIG_RAM_FLAG_PAGE);
    assert_int_equal(rec.flags, MIG_RAM_FLAG_PAGE);
    assert_string_equal(rec.block_name, "pc.ram");
    assert_int_equal(rec.len, 4096);
    assert_memory_equal(rec.data, page_a, 4096);
    assert_int_equal(mig_ram_get_record(s, &r, &rec, NULL), 0);
    assert_int_equal(rec.kind, MIG_RAM_FLAG_ZERO);
    assert_int_equal(rec.flags, MIG_RAM_FLAG_ZERO | MIG_RAM_FLAG_CONTINUE);
    assert_int_equal(rec.offset, 0x1000);
    assert_string_equal(rec.block_name, "pc.ram");
    assert_int_equal(mig_ram_get_record(s, &r, &rec, NULL), 0);
    assert_string_equal(rec.block_name, "pc.bios");
    assert_memory_equal(rec.data, page_b, 4096);
    mig_ram_reader_free(&r);
    mig_stream_free(s);
    free(b.data);
}

/* Feed one record after a MEM_SIZE for block "pc.ram" of 0x2000 bytes. */
static int decode_one(const uint8_t *rec, size_t n, bool with_table, MigRamReader *r,
                      MigErr **errp)
{
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    const MigRamBlockInfo blocks[] = {{"pc.ram", 0x2000, 0}};
    if (with_table)
        mig_ram_put_mem_size(w, &rw, blocks, 1, false);
    mig_stream_put_buffer(w, rec, n);
    size_t len;
    const uint8_t *p = mig_stream_mem_data(w, &len);
    MigStream *s = mig_stream_new_mem_reader(p, len);
    MigRamRecord out;
    int ret = 0;
    if (with_table)
        ret = mig_ram_get_record(s, r, &out, errp);
    if (!ret)
        ret = mig_ram_get_record(s, r, &out, errp);
    mig_stream_free(s);
    mig_stream_free(w);
    return ret;
}

static void test_stream_ram_record_errors_name_problem_and_offset(void **state)
{
    (void)state;
    static const struct {
        uint8_t rec[24];
        size_t len;
        bool table;
        const char *text;
    } cases[] = {
        {{0, 0, 0, 0, 0, 0, 0, 0x22, 0}, 9, false, "CONTINUE with no previous block at offset 0"},
        {{0, 0, 0, 0, 0, 0, 0, 0x22, 0}, 9, true, "CONTINUE with no previous block at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0, 0x02, 3, 'r', 'o', 'm', 0}, 13, true,
         "Unknown ramblock \"rom\", cannot accept migration at offset 23"},
        /* a name from the wire reaches the message escaped */
        {{0, 0, 0, 0, 0, 0, 0, 0x02, 4, 'r', 0x1b, '\\', 0xff, 0}, 14, true,
         "Unknown ramblock \"r\\x1b\\\\\\xff\", cannot accept migration at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0x20, 0x02, 6, 'p', 'c', '.', 'r', 'a', 'm', 0}, 16, true,
         "Illegal RAM offset 0x2000 in ramblock \"pc.ram\" of 0x2000 bytes at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0, 0x01}, 8, true, "Unknown combination of migration flags: 0x1 at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0, 0x0a}, 8, true, "Unknown combination of migration flags: 0xa at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0x04, 0x00}, 8, true, "Unknown combination of migration flags: 0x400 at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0, 0x40, 6, 'p', 'c', '.', 'r', 'a', 'm', 0x02, 0, 1}, 18, true,
         "XBZRLE page - wrong compression 0x2 at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0x01, 0x00, 6, 'p', 'c', '.', 'r', 'a', 'm', 0, 0, 0x20, 0}, 19, true,
         "Invalid compressed data length: 8192 at offset 23"},
        {{0, 0, 0, 0, 0, 0, 0x10, 0x04, 1, 'a', 0, 0, 0, 0, 0, 0, 0x20, 0}, 18, false,
         "ramblock \"a\" of 0x2000 bytes goes past the announced total 0x1000 at offset 8"},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        MigRamReader r;
        mig_ram_reader_init(&r);
        MigErr *err = NULL;
        int ret = decode_one(cases[i].rec, cases[i].len, cases[i].table, &r, &err);
        if (ret != -EINVAL || !err || !strstr(err->msg, cases[i].text))
            fail_msg("case %zu: got %d '%s', want '%s'", i, ret, err ? err->msg : "",
                     cases[i].text);
        mig_err_free(err);
        mig_ram_reader_free(&r);
    }
}

static void test_stream_ram_reader_state_unchanged_when_starved(void **state)
{
    (void)state;
    /* MEM_SIZE for one block, then a ZERO naming it, over a trickle */
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    const MigRamBlockInfo blocks[] = {{"pc.ram", 0x2000, 0}};
    mig_ram_put_mem_size(w, &rw, blocks, 1, false);
    mig_ram_put_zero(w, &rw, "pc.ram", 0x1000, 0);
    size_t len;
    const uint8_t *data = mig_stream_mem_data(w, &len);
    TestTransport t;
    tt_init(&t, data, len, 3, true);
    MigStream *s = mig_stream_new_reader(&t.base);
    MigRamReader r;
    mig_ram_reader_init(&r);
    MigRamRecord rec;
    int got = 0, starved = 0;
    while (got < 2) {
        size_t nb = r.nblocks;
        long cur = r.cur;
        mig_stream_mark(s);
        int ret = mig_ram_get_record(s, &r, &rec, NULL);
        if (ret == -EAGAIN) {
            starved++;
            assert_int_equal(r.nblocks, nb); /* nothing committed */
            assert_int_equal(r.cur, cur);
            mig_stream_rewind(s);
            continue;
        }
        assert_int_equal(ret, 0);
        got++;
    }
    assert_true(starved > 2);
    assert_int_equal(rec.kind, MIG_RAM_FLAG_ZERO);
    assert_int_equal(rec.offset, 0x1000);
    assert_int_equal(r.cur, 0);
    mig_ram_reader_free(&r);
    mig_stream_free(s);
    mig_stream_free(w);
}

/* ------------------------------------------------------------------ device records */

static void test_stream_dev_record_bytes(void **state)
{
    (void)state;
    MigStream *w = mig_stream_new_mem_writer();
    mig_dev_put_setup(w);
    mig_dev_put_data(w, "abc", 3);
    mig_dev_put_complete(w);
    mig_dev_put_eos(w);
    const uint8_t want[] = {
        0x01, 0x00, 0x00, 0x00, 0x01, /* SETUP, be32 format 1 */
        0x02, 0x00, 0x00, 0x00, 0x03, /* DATA, be32 length 3 */
        'a',  'b',  'c',              /* the data */
        0x03,                         /* COMPLETE */
        0x04,                         /* EOS */
    };
    assert_mem_writer_bytes(w, want, sizeof(want));
    mig_stream_free(w);
    /* the executor finds a DATA record's bytes this far after its tag */
    assert_int_equal(MIG_DEV_REC_DATA_HDR, 10 - 5);
    assert_int_equal(MIG_DEV_SECTION_VERSION, 1);
}

static void test_stream_dev_record_names_cover_exactly_the_tags(void **state)
{
    (void)state;
    for (unsigned t = 0; t < 256; t++) {
        bool known = t >= 1 && t <= 4;
        assert_int_equal(mig_dev_rec_known(t), known);
        assert_int_equal(mig_dev_rec_has_value(t), t == 1 || t == 2);
        if (!known)
            assert_string_equal(mig_dev_rec_name(t), "?");
    }
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC_SETUP), "SETUP");
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC_DATA), "DATA");
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC_COMPLETE), "COMPLETE");
    assert_string_equal(mig_dev_rec_name(MIG_DEV_REC_EOS), "EOS");
}

/* Heads read back what the encoders wrote; on every truncation the record
 * that is cut fails: before its tag (false) or inside its be32 (true, with
 * the stream's error), and the records before it read whole. */
static void test_stream_dev_record_heads_on_every_truncation(void **state)
{
    (void)state;
    const uint8_t in[] = {0x01, 0, 0, 0, 1, 0x02, 0, 0, 0, 2, 'h', 'i', 0x07, 0x03, 0x04};
    const struct {
        uint64_t at;
        uint8_t tag;
        uint32_t value;
    } recs[] = {{0, 0x01, 1}, {5, 0x02, 2}, {12, 0x07, 0}, {13, 0x03, 0}, {14, 0x04, 0}};
    for (size_t cut = 0; cut <= sizeof(in); cut++) {
        MigStream *s = mig_stream_new_mem_reader(in, cut);
        for (size_t i = 0; i < MIG_ARRAY_SIZE(recs); i++) {
            uint8_t tag = 0xff;
            uint32_t v = 0xffffffff;
            assert_int_equal(mig_stream_offset(s), recs[i].at);
            bool got_tag = mig_dev_get_record_head(s, &tag, &v);
            size_t head = mig_dev_rec_has_value(recs[i].tag) ? MIG_DEV_REC_DATA_HDR : 1;
            if (recs[i].at + head > cut) {
                assert_int_equal(got_tag, recs[i].at < cut);
                assert_int_equal(mig_stream_error(s), -EIO);
                break;
            }
            assert_true(got_tag);
            assert_int_equal(mig_stream_error(s), 0);
            assert_int_equal(tag, recs[i].tag);
            assert_int_equal(v, recs[i].value);
            if (tag == MIG_DEV_REC_DATA)
                mig_stream_skip(s, v);
            if (mig_stream_error(s))
                break; /* cut inside DATA's bytes: the caller's part */
        }
        mig_stream_free(s);
    }
}

/* ------------------------------------------------------------------ analyzer */

static json_t *find_named(json_t *arr, const char *name)
{
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        if (!strcmp(json_string_value(json_object_get(x, "name")), name))
            return x;
    }
    fail_msg("no entry named %s", name);
    return NULL;
}

static void test_stream_analyze_reports_sections_ram_and_device_fields(void **state)
{
    (void)state;
    Built b = build_stream(true);
    json_t *doc = NULL;
    MigErr *err = NULL;
    assert_int_equal(mig_analyze_buffer(b.data, b.len, &doc, NULL, &err), 0);
    assert_null(err);
    assert_true(json_is_true(json_object_get(doc, "complete")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "config"), "machine")),
                        "pc-i440fx-7.2");
    json_t *secs = json_object_get(doc, "sections");
    assert_int_equal(json_array_size(secs), 4);
    const char *types[] = {"start", "part", "end", "full"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(secs, i), "type")),
                            types[i]);
    json_t *part = json_array_get(secs, 1);
    assert_string_equal(json_string_value(json_object_get(part, "name")), "ram");
    assert_int_equal(json_integer_value(json_object_get(part, "version")), 4);
    /* page 15+4096, zero 9, page 16+4096, EOS 8 */
    assert_int_equal(json_integer_value(json_object_get(part, "size")), 15 + 4096 + 9 + 16 + 4096 + 8);
    json_t *ram = find_named(json_object_get(doc, "ram_blocks"), "pc.ram");
    assert_int_equal(json_integer_value(json_object_get(ram, "length")), 0x4000);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ram, "pages"), "normal")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ram, "pages"), "zero")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "ram"), "hooks")), 1);

    json_t *dev = find_named(json_object_get(doc, "devices"), "fake-dev");
    json_t *fields = json_object_get(dev, "fields");
    assert_int_equal(json_integer_value(json_object_get(find_named(fields, "reg"), "value")),
                     0x11223344);
    assert_int_equal(json_integer_value(json_object_get(find_named(fields, "ctr"), "value")), -2);
    assert_int_equal(json_integer_value(json_object_get(find_named(fields, "mac"), "bytes")), 5);
    assert_string_equal(json_string_value(json_object_get(find_named(fields, "mac"), "hex")),
                        "5254001234");
    json_t *q1 = json_array_get(json_object_get(find_named(fields, "q"), "elements"), 1);
    assert_int_equal(
        json_integer_value(json_object_get(find_named(json_object_get(q1, "fields"), "tail"), "value")),
        4);
    json_t *sub = find_named(json_object_get(dev, "subsections"), "fake-dev/extra");
    assert_true(json_is_true(json_object_get(find_named(json_object_get(sub, "fields"), "on"), "value")));

    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    analyze_print_text(f, doc);
    fclose(f);
    assert_non_null(strstr(text, "machine pc-i440fx-7.2"));
    assert_non_null(strstr(text, "pc.bios"));
    assert_non_null(strstr(text, "reg = 287454020 (0x11223344)"));
    assert_non_null(strstr(text, "ctr = -2"));
    assert_non_null(strstr(text, "mac = 5 bytes"));
    assert_non_null(strstr(text, "subsection fake-dev/extra"));
    free(text);
    json_decref(doc);
    free(b.data);
}

static void test_stream_analyze_without_vmdesc_stops_at_device(void **state)
{
    (void)state;
    Built b = build_stream(false);
    json_t *doc = NULL;
    MigErr *err = NULL;
    uint64_t at = 0;
    assert_int_equal(mig_analyze_buffer(b.data, b.len, &doc, &at, &err), -ENOTSUP);
    expect_err(err, -ENOTSUP, "section 'fake-dev' (id 3): device payloads carry no length and the "
                              "stream has no VMDESCRIPTION trailer");
    assert_int_equal(at, b.device_start);
    assert_true(json_is_false(json_object_get(doc, "complete")));
    /* what came before is still reported */
    assert_int_equal(json_array_size(json_object_get(doc, "sections")), 4);
    assert_int_equal(json_array_size(json_object_get(doc, "ram_blocks")), 2);
    mig_err_free(err);
    json_decref(doc);
    free(b.data);
}

static void test_stream_analyze_every_truncation_and_flip_fails_cleanly(void **state)
{
    (void)state;
    Built b = build_stream(true);
    uint8_t *buf = malloc(b.len);
    /* every prefix */
    for (size_t n = 0; n < b.len; n++) {
        if (skip_payload_cut(&b, n))
            continue;
        memcpy(buf, b.data, n);
        MigErr *err = NULL;
        uint64_t at = UINT64_MAX;
        json_t *doc = NULL;
        int r = mig_analyze_buffer(buf, n, &doc, &at, &err);
        /* n == eof_end fails too: without the trailer the device is opaque */
        if (r == 0 || !err || at > n || !strstr(err->msg, "offset"))
            fail_msg("prefix %zu: r=%d at=%llu '%s'", n, r, (unsigned long long)at,
                     err ? err->msg : "");
        mig_err_free(err);
        json_decref(doc);
    }
    /* every byte outside the two page payloads, flipped two ways */
    for (size_t i = 0; i < b.len; i++) {
        if ((i >= b.page_at[0] && i < b.page_at[0] + 4096) ||
            (i >= b.page_at[1] && i < b.page_at[1] + 4096))
            continue;
        for (int k = 0; k < 2; k++) {
            memcpy(buf, b.data, b.len);
            buf[i] ^= k ? 0xff : 0x01;
            MigErr *err = NULL;
            uint64_t at = 0;
            int r = mig_analyze_buffer(buf, b.len, NULL, &at, &err);
            if (r != 0 && (!err || at > b.len || !strstr(err->msg, "offset")))
                fail_msg("flip at %zu: r=%d '%s'", i, r, err ? err->msg : "");
            mig_err_free(err);
        }
    }
    free(buf);
    free(b.data);
}

/* A trailer that does not describe the payload is reported, never trusted
 * into a hang, a huge allocation or a read past the buffer. */
static void test_stream_analyze_damaged_vmdesc_is_reported(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int code;
        const char *text;
    } cases[] = {
        {"{\"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, \"version\": 1, "
         "\"fields\": [{\"name\": \"z\", \"type\": \"struct\", \"size\": 0, "
         "\"array_len\": 16000000, \"struct\": {\"fields\": []}}]}]}",
         -EPROTO, "array_len 16000000 is more than the stream can hold"},
        {"{\"devices\": [{\"name\": \"other\", \"instance_id\": 0, \"fields\": []}]}", -EPROTO,
         "device 'fake-dev' instance 0 is not in the VMDESCRIPTION"},
        {"{\"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, \"version\": 2, "
         "\"fields\": []}]}",
         -EPROTO, "section version 1 differs from version 2 in the VMDESCRIPTION"},
        {"{\"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, \"version\": 1, "
         "\"fields\": [{\"name\": \"reg\", \"type\": \"uint32\", \"size\": 4}], "
         "\"subsections\": [{\"vmsd_name\": \"fake-dev/extra\", \"fields\": []}]}]}",
         -EPROTO, "subsection fake-dev/extra not found"},
        {"{\"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, \"version\": 1, "
         "\"fields\": [{\"name\": \"big\", \"type\": \"buffer\", \"size\": 100000000}]}]}",
         -EIO, "field big (1 x 100000000 bytes): truncated"},
        {"{\"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, \"version\": 1, "
         "\"fields\": [{\"name\": \"reg\", \"type\": \"uint32\", \"size\": 4}]}]}",
         -EINVAL, "Missing section footer for fake-dev"},
        {"{\"devices\": 3}", -ENOTSUP, "has no \"devices\" list"},
        {"{\"devices\": [", -ENOTSUP, "is not valid JSON"},
        {"{\"devices\": [{\"name\": \"fake-dev\", \"instance_id\": 0, \"fields\": [{\"name\": \"n\", "
         "\"type\": \"struct\", \"size\": 0, \"struct\": {\"fields\": [{\"name\": \"n\", \"type\": "
         "\"struct\", \"size\": 0, \"struct\": {\"fields\": [{\"name\": \"n\", \"type\": \"struct\", "
         "\"size\": 0}]}}]}}]}]}",
         -EPROTO, "VMDESCRIPTION struct field n has no \"struct\""},
    };
    for (size_t i = 0; i < MIG_ARRAY_SIZE(cases); i++) {
        Built b = build_stream_with(cases[i].json);
        MigErr *err = NULL;
        uint64_t at = 0;
        int r = mig_analyze_buffer(b.data, b.len, NULL, &at, &err);
        if (r != cases[i].code || !err || !strstr(err->msg, cases[i].text) ||
            !strstr(err->msg, "section 'fake-dev' (id 3)") || at < b.device_start || at > b.len)
            fail_msg("case %zu: got %d at %llu '%s', want %d '%s'", i, r, (unsigned long long)at,
                     err ? err->msg : "", cases[i].code, cases[i].text);
        mig_err_free(err);
        free(b.data);
    }
}

/* A stream truncated anywhere from the RAM section's START to the first
 * device section is reported against that section by name and id. */
static void test_stream_analyze_truncated_in_ram_names_the_section(void **state)
{
    (void)state;
    Built b = build_stream(true);
    /* from the end of the START header (type, id, "ram", instance, version) */
    for (size_t n = b.ram_start + 17; n <= b.device_start; n++) {
        if (skip_payload_cut(&b, n))
            continue;
        MigErr *err = NULL;
        uint64_t at = UINT64_MAX;
        int r = mig_analyze_buffer(b.data, n, NULL, &at, &err);
        if (r != -EIO || !err || !strstr(err->msg, "section 'ram' (id 2)") || at > n ||
            !strstr(err->msg, "truncated"))
            fail_msg("prefix %zu: got %d at %llu '%s'", n, r, (unsigned long long)at,
                     err ? err->msg : "");
        mig_err_free(err);
    }
    /* between two RAM sections: what was left open is said */
    MigErr *err = NULL;
    uint64_t at = 0;
    json_t *doc = NULL;
    assert_int_equal(mig_analyze_buffer(b.data, b.len, &doc, NULL, NULL), 0);
    json_t *end = json_array_get(json_object_get(doc, "sections"), 2);
    size_t end_at = (size_t)json_integer_value(json_object_get(end, "offset"));
    json_decref(doc);
    assert_int_equal(mig_analyze_buffer(b.data, end_at, NULL, &at, &err), -EIO);
    assert_int_equal(at, end_at);
    char want[160];
    snprintf(want, sizeof(want),
             "section 'ram' (id 2): truncated: the stream ends before the section's END and the "
             "EOF marker at offset %zu",
             end_at);
    assert_string_equal(err->msg, want);
    mig_err_free(err), err = NULL;
    assert_int_equal(mig_analyze_buffer(b.data, b.device_start, NULL, &at, &err), -EIO);
    snprintf(want, sizeof(want),
             "truncated: the stream ends after section 'ram' (id 2), before its EOF marker at "
             "offset %zu",
             b.device_start);
    assert_string_equal(err->msg, want);
    mig_err_free(err);
    free(b.data);
}

/* Analyze through a reader over a transport (what `migcert analyze` does
 * with a pipe), `chunk` bytes per read. */
static int analyze_via_transport(const uint8_t *data, size_t len, size_t chunk, json_t **doc,
                                 uint64_t *at, MigErr **errp)
{
    TestTransport t;
    tt_init(&t, data, len, chunk, false);
    MigStream *s = mig_stream_new_reader(&t.base);
    int r = mig_analyze_stream(s, doc, at, errp);
    mig_stream_free(s);
    return r;
}

/* A pipe gives what the file gives: the same document for the whole
 * stream, the same error and offset for every prefix. */
static void test_stream_analyze_stream_reader_matches_buffer(void **state)
{
    (void)state;
    Built b = build_stream(true);
    json_t *want = NULL, *got = NULL;
    assert_int_equal(mig_analyze_buffer(b.data, b.len, &want, NULL, NULL), 0);
    assert_int_equal(analyze_via_transport(b.data, b.len, 100, &got, NULL, NULL), 0);
    if (!json_equal(want, got)) {
        char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
        fail_msg("stream analysis differs:\n got  %s\n want %s", g, w);
    }
    json_decref(want);
    json_decref(got);
    for (size_t n = 0; n < b.len; n++) {
        if (skip_payload_cut(&b, n))
            continue;
        MigErr *e1 = NULL, *e2 = NULL;
        uint64_t a1 = 0, a2 = 0;
        json_t *d1 = NULL, *d2 = NULL;
        int r1 = mig_analyze_buffer(b.data, n, &d1, &a1, &e1);
        int r2 = analyze_via_transport(b.data, n, 1 + n % 300, &d2, &a2, &e2);
        if (r1 != r2 || a1 != a2 || !e1 || !e2 || strcmp(e1->msg, e2->msg))
            fail_msg("prefix %zu: buffer %d at %llu '%s', stream %d at %llu '%s'", n, r1,
                     (unsigned long long)a1, e1 ? e1->msg : "", r2, (unsigned long long)a2,
                     e2 ? e2->msg : "");
        /* the pipe was read to its end: its size is known, as the file's */
        json_int_t s1 = json_integer_value(json_object_get(d1, "file_size"));
        json_int_t s2 = json_integer_value(json_object_get(d2, "file_size"));
        if (s1 != (json_int_t)n || s2 != (json_int_t)n)
            fail_msg("prefix %zu: file_size %lld (buffer), %lld (stream)", n, (long long)s1,
                     (long long)s2);
        json_decref(d1);
        json_decref(d2);
        mig_err_free(e1);
        mig_err_free(e2);
    }
    free(b.data);
}

/* A device section in the record format read through a pipe that delivers
 * a few bytes at a time says what the same bytes say from memory, on every
 * prefix: the section sizes too (a DATA record cut short is not consumed in
 * part, whatever had arrived). */
static void test_stream_analyze_dev_records_stream_matches_buffer(void **state)
{
    (void)state;
    static uint8_t data[5000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    MigStream *w = mig_stream_new_mem_writer();
    mig_stream_put_file_header(w);
    mig_stream_put_configuration(w, "pc-i440fx-7.2", NULL, 0);
    MigSectionHeader h = {.type = MIG_SECTION_START, .section_id = 2, .version_id = 1};
    snprintf(h.idstr, sizeof(h.idstr), "0000:00:05.0/vfio");
    mig_stream_put_section_header(w, &h);
    mig_dev_put_setup(w);
    mig_dev_put_eos(w);
    mig_stream_put_section_footer(w, 2);
    h.type = MIG_SECTION_PART;
    mig_stream_put_section_header(w, &h);
    mig_dev_put_data(w, data, sizeof(data));
    size_t data_end = mig_stream_offset(w); /* the 5000 bytes end here */
    mig_dev_put_eos(w);
    mig_stream_put_section_footer(w, 2);
    h.type = MIG_SECTION_END;
    mig_stream_put_section_header(w, &h);
    mig_dev_put_data(w, data, 100);
    mig_dev_put_complete(w);
    mig_dev_put_eos(w);
    mig_stream_put_section_footer(w, 2);
    mig_stream_put_eof(w);
    size_t len = 0;
    const uint8_t *b = mig_stream_mem_data(w, &len);
    for (size_t n = 0; n <= len; n++) {
        /* under valgrind, a cut strictly inside the 5000 bytes only after
         * their first three, at their middle and before their last three:
         * as in skip_payload_cut, a cut anywhere in there is the same DATA
         * record cut short (not consumed in part) */
        if (test_scale_small() && n > data_end - sizeof(data) + 2 && n < data_end - 2 &&
            n != data_end - sizeof(data) / 2)
            continue;
        json_t *d1 = NULL, *d2 = NULL;
        int r1 = mig_analyze_buffer(b, n, &d1, NULL, NULL);
        int r2 = analyze_via_transport(b, n, 1 + n % 300, &d2, NULL, NULL);
        assert_int_equal(r1, r2);
        assert_int_equal(r1 == 0, n == len);
        if (!json_equal(d1, d2)) {
            char *g = json_dumps(d2, JSON_COMPACT), *x = json_dumps(d1, JSON_COMPACT);
            fail_msg("prefix %zu: stream analysis differs:\n got  %s\n want %s", n, g, x);
        }
        json_decref(d1);
        json_decref(d2);
    }
    mig_stream_free(w);
}

/* An input that never ends (/dev/zero, or a good start then zeros). */
typedef struct EndlessTransport {
    MigTransport base;
    const uint8_t *prefix;
    size_t plen, pos;
    uint64_t served;
} EndlessTransport;

static ssize_t et_read(MigTransport *base, void *buf, size_t len)
{
    EndlessTransport *t = (EndlessTransport *)base;
    size_t n = MIG_MIN(len, (size_t)65536);
    memset(buf, 0, n);
    if (t->pos < t->plen) {
        n = MIG_MIN(n, t->plen - t->pos);
        memcpy(buf, t->prefix + t->pos, n);
        t->pos += n;
    }
    t->served += n;
    return (ssize_t)n;
}

static const MigTransportOps et_ops = {
    .kind = "endless",
    .read = et_read,
    .write = tt_write,
    .writev = tt_writev,
    .close = tt_close,
};

static int analyze_endless(const uint8_t *prefix, size_t plen, uint64_t *served, MigErr **errp)
{
    EndlessTransport t = {.base = {.ops = &et_ops}, .prefix = prefix, .plen = plen};
    MigStream *s = mig_stream_new_reader(&t.base);
    json_t *doc = NULL;
    uint64_t at = 0;
    int r = mig_analyze_stream(s, &doc, &at, errp);
    assert_true(json_is_null(json_object_get(doc, "file_size")));
    json_decref(doc);
    mig_stream_free(s);
    *served = t.served;
    return r;
}

static void test_stream_analyze_stream_reader_stops_on_endless_garbage(void **state)
{
    (void)state;
    MigErr *err = NULL;
    uint64_t served = 0;
    assert_int_equal(analyze_endless(NULL, 0, &served, &err), -EINVAL);
    assert_string_equal(err->msg,
                        "file header: Not a migration stream (magic 0x00000000) at offset 0");
    assert_true(served <= 1 << 20);
    mig_err_free(err), err = NULL;

    Built b = build_stream(true);
    assert_int_equal(analyze_endless(b.data, 8, &served, &err), -EPROTO);
    assert_string_equal(err->msg, "Expected vmdescription section, but got 0 at offset 9");
    assert_true(served <= 1 << 20);
    mig_err_free(err), err = NULL;

    /* a stream that starves is refused, not misread as zeros */
    TestTransport t;
    tt_init(&t, b.data, b.len, 64, true);
    MigStream *s = mig_stream_new_reader(&t.base);
    assert_int_equal(mig_analyze_stream(s, NULL, NULL, &err), -EAGAIN);
    expect_err(err, -EAGAIN, "input starved at offset 0: the analyzer needs a reader that blocks");
    mig_err_free(err);
    mig_stream_free(s);
    free(b.data);
}

/* idstrs are bytes: the section list, the text and the errors show them
 * escaped, never raw control bytes. */
static void test_stream_analyze_escapes_wire_idstrs(void **state)
{
    (void)state;
    static const char odd[] = "dev\x1b[2J\x01";
    static const char odd_esc[] = "dev\\x1b[2J\\x01";
    for (int matching = 1; matching >= 0; matching--) {
        MigStream *w = mig_stream_new_mem_writer();
        mig_stream_put_file_header(w);
        mig_stream_put_configuration(w, "pc-i440fx-7.2", NULL, 0);
        MigSectionHeader h = {.type = MIG_SECTION_FULL, .section_id = 3, .instance_id = 0,
                              .version_id = 1};
        memcpy(h.idstr, odd, sizeof(odd));
        mig_stream_put_section_header(w, &h);
        mig_stream_put_u8(w, 0x42);
        mig_stream_put_section_footer(w, 3);
        mig_stream_put_eof(w);
        const char *desc = matching ? "{\"devices\": [{\"name\": \"dev\\u001b[2J\\u0001\", "
                                      "\"instance_id\": 0, \"version\": 1, \"fields\": [{\"name\": "
                                      "\"r\\u0007g\", \"type\": \"uint8\", \"size\": 1}]}]}"
                                    : "{\"devices\": []}";
        mig_stream_put_vmdesc(w, desc, strlen(desc));
        size_t len = 0;
        const uint8_t *data = mig_stream_mem_data(w, &len);
        json_t *doc = NULL;
        MigErr *err = NULL;
        int r = mig_analyze_buffer(data, len, &doc, NULL, &err);
        json_t *sec = json_array_get(json_object_get(doc, "sections"), 0);
        assert_string_equal(json_string_value(json_object_get(sec, "name")), odd_esc);
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        analyze_print_text(f, doc);
        fclose(f);
        assert_non_null(strstr(text, odd_esc));
        for (size_t i = 0; i < tlen; i++)
            if ((unsigned char)text[i] < 0x20 && text[i] != '\n')
                fail_msg("raw control byte 0x%02x in the text at %zu", text[i], i);
        if (matching) {
            assert_int_equal(r, 0);
            assert_non_null(strstr(text, "r\\x07g = 66"));
        } else {
            assert_int_equal(r, -EPROTO);
            expect_err(err, -EPROTO, "section 'dev\\x1b[2J\\x01' (id 3): device "
                                     "'dev\\x1b[2J\\x01' instance 0 is not in the VMDESCRIPTION");
        }
        free(text);
        mig_err_free(err);
        json_decref(doc);
        mig_stream_free(w);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_puts_write_big_endian_bytes),
        cmocka_unit_test(test_stream_gets_read_back_what_puts_wrote),
        cmocka_unit_test(test_stream_eof_inside_a_get_is_sticky_eio_with_offset),
        cmocka_unit_test(test_stream_misuse_is_an_error_not_a_crash),
        cmocka_unit_test(test_stream_view_and_skip),
        cmocka_unit_test(test_stream_mark_rewind_over_a_one_byte_transport),
        cmocka_unit_test(test_stream_starved_gets_return_zero_until_rewind),
        cmocka_unit_test(test_stream_flush_reports_eagain_until_all_bytes_are_out),
        cmocka_unit_test(test_stream_zero_copy_pages_go_out_in_few_writevs),
        cmocka_unit_test(test_stream_fault_points_fail_flush_and_read),
        cmocka_unit_test(test_stream_file_header_bytes_and_errors),
        cmocka_unit_test(test_stream_configuration_bytes_match_qemu),
        cmocka_unit_test(test_stream_configuration_errors),
        cmocka_unit_test(test_stream_section_framing_bytes),
        cmocka_unit_test(test_stream_footer_and_section_type_errors),
        cmocka_unit_test(test_stream_section_type_names_cover_exactly_the_wire_bytes),
        cmocka_unit_test(test_stream_escape_wire_names),
        cmocka_unit_test(test_stream_framing_errors_escape_wire_names),
        cmocka_unit_test(test_stream_every_truncation_fails_with_its_offset),
        cmocka_unit_test(test_stream_ram_record_bytes),
        cmocka_unit_test(test_stream_ram_round_trip_keeps_block_across_sections),
        cmocka_unit_test(test_stream_ram_record_errors_name_problem_and_offset),
        cmocka_unit_test(test_stream_ram_reader_state_unchanged_when_starved),
        cmocka_unit_test(test_stream_dev_record_bytes),
        cmocka_unit_test(test_stream_dev_record_names_cover_exactly_the_tags),
        cmocka_unit_test(test_stream_dev_record_heads_on_every_truncation),
        cmocka_unit_test(test_stream_analyze_reports_sections_ram_and_device_fields),
        cmocka_unit_test(test_stream_analyze_without_vmdesc_stops_at_device),
        cmocka_unit_test(test_stream_analyze_every_truncation_and_flip_fails_cleanly),
        cmocka_unit_test(test_stream_analyze_damaged_vmdesc_is_reported),
        cmocka_unit_test(test_stream_analyze_truncated_in_ram_names_the_section),
        cmocka_unit_test(test_stream_analyze_stream_reader_matches_buffer),
        cmocka_unit_test(test_stream_analyze_dev_records_stream_matches_buffer),
        cmocka_unit_test(test_stream_analyze_stream_reader_stops_on_endless_garbage),
        cmocka_unit_test(test_stream_analyze_escapes_wire_idstrs),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
