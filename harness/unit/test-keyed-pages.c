/*
 * test-keyed-pages.c - keyed pages (impl/ram/ram.h): guest pages held as a
 * key until something reads their bytes, and the simulator's link carrying
 * them as keys (harness/sim/link.c).  What a user would notice if it broke:
 * a page that reads differently once it is bytes, a link that delivers
 * another generation than the one written or a page cut in pieces.  The
 * memory oracle's side (keyed pages compared by key, whole migrations over
 * a keyed link) is in test-workload.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "ram/ram.h"
#include "sim/sim.h"
#include "stream/stream.h"

#define PAGE MIG_RAM_PAGE_SIZE

static MigRamBlock *new_block(MigRam **r, uint64_t npages)
{
    *r = mig_ram_new();
    assert_int_equal(mig_ram_add_block(*r, "pc.ram", npages * PAGE, NULL), 0);
    return mig_ram_block(*r, 0);
}

/* ---- the RAM: a key reads as its bytes everywhere ---- */

static void test_keyed_page_reads_as_its_bytes(void **state)
{
    (void)state;
    MigRam *a, *b;
    MigRamBlock *ka = new_block(&a, 8), *kb = new_block(&b, 8);
    uint8_t want[PAGE];
    for (uint64_t p = 0; p < 8; p++) {
        uint64_t key = p == 3 ? MIG_RAM_KEY_ZERO : 0x1234 + p * 77;
        mig_ram_page_set_key(ka, p, key);            /* a: keys only */
        mig_ram_key_page(key, kb->host + p * PAGE);  /* b: the same as bytes */
    }
    /* same digest (x-query-ram-digest) whether a page is a key or bytes */
    char da[65], db[65];
    mig_ram_digest(a, da);
    mig_ram_digest(b, db);
    assert_string_equal(da, db);
    /* the key is what the page says until its bytes are asked for */
    uint64_t key;
    assert_true(mig_ram_page_key(ka, 5, &key));
    assert_int_equal(key, 0x1234 + 5 * 77);
    assert_false(mig_ram_page_key(kb, 5, &key));
    uint8_t *host = mig_ram_page_host(ka, 5);
    assert_false(mig_ram_page_key(ka, 5, &key));
    mig_ram_key_page(0x1234 + 5 * 77, want);
    assert_memory_equal(host, want, PAGE);
    assert_true(mig_ram_key_matches(0x1234 + 5 * 77, host));
    assert_false(mig_ram_key_matches(0x1234 + 6 * 77, host));
    /* key 0 is the zero page */
    mig_ram_key_page(MIG_RAM_KEY_ZERO, want);
    assert_true(mig_ram_page_is_zero(want));
    assert_true(mig_ram_page_is_zero(mig_ram_page_host(ka, 3)));
    /* any part of a page, at any offset */
    uint8_t part[100];
    mig_ram_key_page(99, want);
    mig_ram_key_bytes(99, 4001, 95, part);
    assert_memory_equal(part, want + 4001, 95);
    /* the block an address falls in, and where */
    uint64_t pg;
    size_t in;
    assert_ptr_equal(mig_ram_find_host(a, ka->host + 2 * PAGE + 17, &pg, &in), ka);
    assert_int_equal(pg, 2);
    assert_int_equal(in, 17);
    assert_null(mig_ram_find_host(a, want, &pg, &in));
    mig_ram_free(a);
    mig_ram_free(b);
}

/* ---- the link: keys cross it, read at write time ---- */

typedef struct Pair {
    MigLoop *loop;
    MigTransport *a, *b;
    MigRam *sram, *dram;
    MigRamBlock *src, *dst;
} Pair;

static void pair_new(Pair *p, bool attach)
{
    p->loop = mig_sim_loop_new(1);
    assert_int_equal(mig_transport_mem_pair(p->loop, NULL, &p->a, &p->b), 0);
    p->src = new_block(&p->sram, 8);
    p->dst = new_block(&p->dram, 8);
    if (attach) {
        mig_transport_mem_set_ram(p->a, p->sram);
        mig_transport_mem_set_ram(p->b, p->dram);
    }
    assert_int_equal(p->a->keyed_ram, attach);
}

static void pair_free(Pair *p)
{
    mig_transport_close(p->a);
    mig_transport_close(p->b);
    mig_ram_free(p->sram);
    mig_ram_free(p->dram);
    mig_loop_free(p->loop);
}

static void test_link_carries_keys_as_written(void **state)
{
    (void)state;
    Pair p;
    pair_new(&p, true);
    uint8_t hdr[8] = {1, 2, 3, 4, 5, 6, 7, 8}, want[PAGE];
    mig_ram_page_set_key(p.src, 0, 1000);
    mig_ram_page_set_key(p.src, 1, 1001);
    mig_ram_key_page(2002, p.src->host + 2 * PAGE); /* a page of bytes */
    struct iovec iov[4] = {{hdr, 8}, {p.src->host, PAGE}, {p.src->host + PAGE, PAGE},
                           {p.src->host + 2 * PAGE, PAGE}};
    assert_int_equal(mig_transport_writev(p.a, iov, 4), 8 + 3 * PAGE);
    /* the guest writes again before the peer reads: the bytes that went
     * out are the ones of the write, as on a socket */
    mig_ram_page_set_key(p.src, 0, 3000);
    mig_ram_page_set_key(p.src, 1, 3001);
    memset(p.src->host + 2 * PAGE, 0x77, PAGE);
    mig_sim_run_for(p.loop, 1000);

    /* header into a buffer, page 0 onto a destination page: a key */
    uint8_t got[8];
    struct iovec rv[2] = {{got, 8}, {p.dst->host + 4 * PAGE, PAGE}};
    assert_int_equal(p.b->ops->readv(p.b, rv, 2), 8 + PAGE);
    assert_memory_equal(got, hdr, 8);
    uint64_t key;
    assert_true(mig_ram_page_key(p.dst, 4, &key));
    assert_int_equal(key, 1000);
    /* page 1 into a plain buffer, in two uneven reads: its bytes */
    uint8_t *buf = malloc(PAGE);
    assert_int_equal(mig_transport_read(p.b, buf, 1000), 1000);
    assert_int_equal(mig_transport_read(p.b, buf + 1000, PAGE - 1000), PAGE - 1000);
    mig_ram_key_page(1001, want);
    assert_memory_equal(buf, want, PAGE);
    /* page 2 was bytes: its bytes, even onto a destination page */
    assert_int_equal(mig_transport_read(p.b, p.dst->host + 5 * PAGE, PAGE), PAGE);
    assert_false(mig_ram_page_key(p.dst, 5, &key));
    mig_ram_key_page(2002, want);
    assert_memory_equal(p.dst->host + 5 * PAGE, want, PAGE);
    free(buf);
    pair_free(&p);
}

static void test_link_splits_keyed_pages_anywhere(void **state)
{
    (void)state;
    Pair p;
    pair_new(&p, true);
    uint8_t want[3 * PAGE], got[3 * PAGE];
    for (uint64_t i = 0; i < 3; i++) {
        mig_ram_page_set_key(p.src, i, 500 + i);
        mig_ram_key_page(500 + i, want + i * PAGE);
    }
    /* written from the middle of a page (a partial write carried on), in
     * pieces that straddle page boundaries */
    struct iovec w1 = {p.src->host, 100};
    struct iovec w2 = {p.src->host + 100, 3 * PAGE - 100};
    assert_int_equal(mig_transport_writev(p.a, &w1, 1), 100);
    assert_int_equal(mig_transport_writev(p.a, &w2, 1), 3 * PAGE - 100);
    mig_sim_run_for(p.loop, 1000);
    /* read back at odd sizes: the same bytes, nothing keyed on the way */
    size_t at = 0, step[] = {7, 4089, 4096 + 3, 5000};
    for (size_t i = 0; at < sizeof(got); i++) {
        size_t n = step[i % 4] < sizeof(got) - at ? step[i % 4] : sizeof(got) - at;
        assert_int_equal(mig_transport_read(p.b, got + at, n), (ssize_t)n);
        at += n;
    }
    assert_memory_equal(got, want, sizeof(got));
    pair_free(&p);
}

static void test_link_without_ram_moves_bytes(void **state)
{
    (void)state;
    Pair p;
    pair_new(&p, false);
    /* no RAM attached: a keyed page's memory is sent as it is (the engine
     * writes its bytes first where the transport does not carry keys) */
    mig_ram_key_page(42, mig_ram_page_host(p.src, 0));
    struct iovec w = {p.src->host, PAGE};
    assert_int_equal(mig_transport_writev(p.a, &w, 1), PAGE);
    mig_sim_run_for(p.loop, 1000);
    struct iovec r = {p.dst->host, PAGE};
    assert_int_equal(p.b->ops->readv(p.b, &r, 1), PAGE);
    uint64_t key;
    assert_false(mig_ram_page_key(p.dst, 0, &key));
    assert_true(mig_ram_key_matches(42, p.dst->host));
    pair_free(&p);
}

/* A page read in place brings the next record's header into the stream's
 * buffer in the same read; a read that ends inside the page brings none. */
static void test_stream_reads_page_and_header_ahead(void **state)
{
    (void)state;
    Pair p;
    pair_new(&p, true);
    MigStream *rs = mig_stream_new_reader(p.b);
    mig_ram_page_set_key(p.src, 0, 77);
    uint8_t hdr[8] = {0, 0, 0, 0, 0, 0, 0x10, 0x28};
    struct iovec w[3] = {{p.src->host, PAGE}, {hdr, 8}, {p.src->host, 100}};
    assert_int_equal(mig_transport_writev(p.a, w, 3), PAGE + 8 + 100);
    mig_sim_run_for(p.loop, 1000);
    struct iovec r = {p.dst->host, PAGE};
    assert_int_equal(mig_stream_readv_direct_ahead(rs, &r, 1, 8), PAGE);
    uint64_t key;
    assert_true(mig_ram_page_key(p.dst, 0, &key)); /* the page arrived as its key */
    assert_int_equal(key, 77);
    assert_int_equal(mig_stream_buffered(rs), 8);
    assert_int_equal(mig_stream_offset(rs), PAGE);
    assert_int_equal(mig_stream_get_be64(rs), 0x1028);
    /* 100 bytes of the next page: held back while the writer may still
     * write the rest (the page should reach the reader whole) */
    struct iovec r2 = {p.dst->host + PAGE, PAGE};
    assert_int_equal(mig_stream_readv_direct_ahead(rs, &r2, 1, 8), -EAGAIN);
    mig_stream_rewind(rs);
    /* it never will: the part comes, and no header is taken ahead */
    assert_int_equal(mig_transport_shutdown_write(p.a), 0);
    mig_sim_run_for(p.loop, 1000);
    assert_int_equal(mig_stream_readv_direct_ahead(rs, &r2, 1, 8), 100);
    assert_int_equal(mig_stream_buffered(rs), 0);
    assert_int_equal(mig_stream_offset(rs), PAGE + 8 + 100);
    assert_int_equal(mig_stream_error(rs), 0);
    mig_stream_free(rs);
    pair_free(&p);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyed_page_reads_as_its_bytes),
        cmocka_unit_test(test_link_carries_keys_as_written),
        cmocka_unit_test(test_link_splits_keyed_pages_anywhere),
        cmocka_unit_test(test_link_without_ram_moves_bytes),
        cmocka_unit_test(test_stream_reads_page_and_header_ahead),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
