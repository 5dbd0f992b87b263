/*
 * test-ram-direct.c - the RAM loader reading page runs straight into guest
 * RAM (impl/ram/ram-section.c, load_direct_run): a destination over a real
 * socket must end with exactly the memory a destination reading the same
 * bytes from memory (no direct reads) ends with, however the bytes arrive.
 *
 * The stream mixes what breaks a guessed run: a ZERO record inside a run, a
 * jump to a page that is not the next, pages this load already wrote (never
 * guessed into, even the one the stream does not send again), the end of a
 * block, the EOS that ends each of a source's steps (of unequal lengths, so
 * the loader's guess of where the next one ends is wrong both ways) and the
 * EOS after the last page, and a step that jumps before the page where the
 * loader expects it to end (its run read what follows that page, the next
 * step's start, into the stream buffer, and must give back the pages after
 * the jump in front of it); it is fed to the socket in chunks of many sizes
 * (1 byte, a header and a bit, one record and one byte less or more, a lot
 * at once), each followed by loading until the stream runs dry.
 *
 * The same stream is loaded a second time with its 64 pages straddling the
 * 4 GiB offset of a block longer than 4 GiB (the block is reserved, not
 * touched: only the pages loaded cost memory), so an offset, a run length
 * or a page index kept in 32 bits anywhere on the way would show.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ram/ram.h"
#include "savevm/savevm.h"
#include "sim/ram-feed.h"
#include "stream/ram-format.h"
#include "stream/stream.h"
#include "test-scale.h"

#define PAGES 64
#define PG 4096

static uint8_t pages[PAGES][PG];
/* Where page 0 of the test's 64 sits in the block, and the block's length
 * (the 64 pages end it). */
static uint64_t base;
static uint64_t block_len(void)
{
    return base + PAGES * PG;
}

/* The pages the stream sends, in its order; negative: a ZERO record; STEP:
 * the EOS that ends a source's step (the next step goes on in the same
 * block: its first record is a CONTINUE one). */
#define STEP 1000
static const int order[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  STEP, 10, 11, 12, 13, 14,
                            15, 16, 17, 18, 19, -20, 21, 22, 23, 24, STEP, 25, 26, 27, 28, 40,
                            41, 42, 43, 44, 45, -46, -47, 48, 49, 50, 30, STEP, 31, 32, 33, 60,
                            61, 62, 63, STEP, 51, 52, 53, 54, 55, STEP, 35, 36, 56, 57, 58, 59};
#define NORDER (sizeof(order) / sizeof(order[0]))
/* Pages an earlier pass of this load wrote (0xab): a ZERO record must
 * clear 46; 34 is never sent again and must keep its bytes. */
static const int held[] = {12, 13, 41, 62, 46, 34};
#define NHELD (sizeof(held) / sizeof(held[0]))

/* The steps the stream has (load_state returns 0 at each one's EOS). */
static size_t nsteps(void)
{
    size_t n = 1;
    for (size_t k = 0; k < NORDER; k++)
        n += order[k] == STEP;
    return n;
}

/* Where each page payload of the stream starts (make_stream). */
static size_t payload_at[PAGES];
static size_t npayloads;

/* The stream's bytes: one START payload of the "ram" section, in the
 * memory writer returned (mig_stream_mem_data). */
static MigStream *make_stream(void)
{
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    MigRamBlockInfo bi = {.name = "pc.ram", .length = block_len()};
    mig_ram_put_mem_size(w, &rw, &bi, 1, false);
    for (int i = 0; i < PAGES; i++)
        for (int j = 0; j < PG; j++)
            pages[i][j] = (uint8_t)(i * 31 + j * 7 + 1);
    npayloads = 0;
    for (size_t k = 0; k < NORDER; k++) {
        int p = order[k] < 0 ? -order[k] : order[k];
        if (order[k] == STEP) {
            mig_ram_put_eos(w);
        } else if (order[k] < 0) {
            mig_ram_put_zero(w, &rw, "pc.ram", base + (uint64_t)p * PG, 0);
        } else {
            mig_ram_put_page(w, &rw, "pc.ram", base + (uint64_t)p * PG, pages[p]);
            payload_at[npayloads++] = mig_stream_offset(w) - PG;
        }
    }
    mig_ram_put_eos(w);
    return w;
}

/* A destination RAM: zero, registered. */
static MigRam *dest_ram(MigSavevm *sv, const MigSaveEntry **e)
{
    MigRam *r = mig_ram_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", block_len(), NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    *e = mig_savevm_entry(sv, 0); /* the only one */
    assert_string_equal((*e)->idstr, "ram");
    return r;
}

/* The load starts (load_setup) as if an earlier pass of it had written
 * the held pages: their bytes, and their arrival bits. */
static void start_load(MigRam *r, const MigSaveEntry *e)
{
    assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
    MigRamBlock *b = mig_ram_block(r, 0);
    for (size_t i = 0; i < NHELD; i++) {
        uint64_t bit = base / PG + (uint64_t)held[i];
        memset(b->host + bit * PG, 0xab, PG);
        b->recv[bit / 64] |= 1ull << (bit % 64);
        b->nrecv++;
    }
}

/* Load from memory: the reference (a memory stream never reads direct). */
static uint64_t ref_nrecv; /* pages the reference load saw arrive */

static void load_reference(const uint8_t *buf, size_t len, uint8_t *out)
{
    MigSavevm *sv = mig_savevm_new();
    const MigSaveEntry *e;
    MigRam *r = dest_ram(sv, &e);
    MigStream *s = mig_stream_new_mem_reader(buf, len);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    MigErr *err = NULL;
    start_load(r, e);
    for (size_t step = 0; step < nsteps(); step++)
        if (e->iter->load_state(e->opaque, s, &h, &err) != 0)
            fail_msg("reference load: %s", err ? err->msg : "?");
    assert_int_equal(mig_stream_offset(s), len);
    memcpy(out, mig_ram_block(r, 0)->host + base, PAGES * PG);
    ref_nrecv = mig_ram_block(r, 0)->nrecv;
    e->iter->load_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    mig_stream_free(s);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

/* Load over a socketpair, the bytes written in chunks of sizes[i % n],
 * each followed by loading until the stream runs dry. */
static void load_chunked(const uint8_t *buf, size_t len, const size_t *sizes, size_t n,
                         const uint8_t *want)
{
    MigSavevm *sv = mig_savevm_new();
    const MigSaveEntry *e;
    MigRam *r = dest_ram(sv, &e);
    MigErr *err = NULL;
    start_load(r, e);
    SimRamFeed f = {.sizes = sizes, .nsizes = n, .steps = nsteps()};
    int rc = sim_ram_feed(e, buf, len, &f, &err); /* the whole stream loads, never more is asked */
    if (rc != 0)
        fail_msg("chunked load: %d %s", rc, err ? err->msg : "?");
    assert_int_equal(f.fed, len);
    assert_int_equal(f.read, len);
    const uint8_t *got = mig_ram_block(r, 0)->host + base;
    for (int p = 0; p < PAGES; p++)
        if (memcmp(got + (size_t)p * PG, want + (size_t)p * PG, PG))
            fail_msg("page %d differs from the reference", p);
    /* every page counted as arrived, as the reference counts them (the
     * destination's completeness check at the end relies on it) */
    assert_int_equal(mig_ram_block(r, 0)->nrecv, ref_nrecv);
    /* ... and each by its own bit: the pages the stream sent or the load
     * held, no other */
    const uint64_t *recv = mig_ram_block(r, 0)->recv;
    for (int p = 0; p < PAGES; p++) {
        bool sent = false;
        for (size_t k = 0; k < NORDER; k++)
            sent |= order[k] == p || order[k] == -p;
        for (size_t k = 0; k < NHELD; k++)
            sent |= held[k] == p;
        uint64_t bit = base / PG + (uint64_t)p;
        if (sent != ((recv[bit / 64] >> (bit % 64)) & 1))
            fail_msg("page %d: arrival bit %d, sent %d", p, !sent, sent);
    }
    MigRamInfo info;
    mig_ram_info(r, &info);
    assert_int_equal(info.transferred, len);
    e->iter->load_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

static void equals_buffered_load(uint64_t at, bool byte_by_byte)
{
    base = at;
    size_t len;
    MigStream *ws = make_stream();
    const uint8_t *buf = mig_stream_mem_data(ws, &len);
    uint8_t *want = malloc(PAGES * PG);
    load_reference(buf, len, want);
    /* sanity of the reference itself */
    assert_memory_equal(want + 5 * PG, pages[5], PG);
    assert_true(mig_ram_page_is_zero(want + 20 * PG) && mig_ram_page_is_zero(want + 46 * PG));
    assert_memory_equal(want + 41 * PG, pages[41], PG);
    assert_int_equal(want[34 * PG + 100], 0xab);
    static const size_t all[] = {1 << 20};
    static const size_t odd[] = {1, 7, 8, 9, 4103, 4104, 4105, 100000, 3, 12000, 40000};
    static const size_t rec[] = {4104};
    static const size_t recp[] = {4105};
    static const size_t tiny[] = {1};
    static const size_t mixed[] = {30, 8200, 8208, 50, 131328, 17};
    load_chunked(buf, len, all, 1, want);
    load_chunked(buf, len, odd, sizeof(odd) / sizeof(odd[0]), want);
    load_chunked(buf, len, rec, 1, want);
    load_chunked(buf, len, recp, 1, want);
    load_chunked(buf, len, mixed, sizeof(mixed) / sizeof(mixed[0]), want);
    if (byte_by_byte && !test_scale_small()) { /* the slowest: once is enough */
        load_chunked(buf, len, tiny, 1, want);
    } else if (byte_by_byte) {
        /* Under valgrind (test-scale.h) one byte at a time everywhere but
         * strictly inside a page payload, which is cut only after its
         * first three bytes, at its middle and before its last three: a
         * cut anywhere in there leaves a direct read short the same way
         * (the loader reads the rest of the payload straight into guest
         * RAM on the next call), and the ~250,000 one-byte writes and
         * reads of those payloads were nearly all of valgrind's time in
         * this file (each a system call).  Every record header, ZERO
         * record, EOS and the bytes around each payload's ends still go
         * one at a time. */
        size_t *cuts = malloc(len * sizeof(*cuts)), n = 0, at = 0;
        for (size_t pos = 1; pos <= len; pos++) {
            bool inside = false;
            for (size_t k = 0; k < npayloads; k++)
                inside |= pos > payload_at[k] + 3 && pos < payload_at[k] + PG - 3 &&
                          pos != payload_at[k] + PG / 2;
            if (inside)
                continue;
            cuts[n++] = pos - at;
            at = pos;
        }
        assert_true(n > 64 * 7 && n < len / 32);
        load_chunked(buf, len, cuts, n, want);
        free(cuts);
    }
    free(want);
    mig_stream_free(ws);
}

static void test_ram_direct_equals_buffered_load(void **state)
{
    equals_buffered_load(0, true);
}

static void test_ram_direct_past_4gib(void **state)
{
    /* pages 0-31 below 4 GiB, 32-63 above; the ZERO records at 20, 46
     * and 47 and the jumps sit on either side */
    equals_buffered_load(((uint64_t)4 << 30) - 32 * PG, false);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ram_direct_equals_buffered_load),
        cmocka_unit_test(test_ram_direct_past_4gib),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
