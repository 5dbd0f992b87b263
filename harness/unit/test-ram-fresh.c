/*
 * test-ram-fresh.c - a destination that never ran (mig_ram_set_fresh, set
 * by impl/machine for a machine waiting for its incoming migration) learns
 * that a page it has not written is zero without reading it: a guest whose
 * RAM is mostly zero pages does not make the destination fault in (and the
 * kernel clear, a huge page at a time) memory it never uses.  What the load
 * writes still counts: a page sent with bytes and then as a ZERO record ends
 * zero, and so does a page a guessed direct read landed in.
 *
 * The stream is loaded over a socketpair in chunks (sim/ram-feed.h: the
 * direct reads of load_direct_run happen only from a transport), into an 8 MiB block; the
 * pages it writes are in its first 64 KiB, the ZERO records cover the rest,
 * and the check is on the last 4 MiB (far from any huge page the written
 * pages share): mincore() says whether the destination holds those pages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "ram/ram.h"
#include "savevm/savevm.h"
#include "sim/ram-feed.h"
#include "stream/ram-format.h"
#include "stream/stream.h"

#define PG 4096
#define BLOCK ((uint64_t)8 << 20)
#define NPAGES (BLOCK / PG)

static uint8_t bytes[PG];

/* Pages 0-3 and 10-12 with bytes, then page 0 and 2 again as ZERO (a later
 * pass), page 13 as ZERO right after the run 10-12 (a direct read guesses
 * into it), then every other page as ZERO. */
static MigStream *make_stream(void)
{
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    MigRamBlockInfo bi = {.name = "pc.ram", .length = BLOCK};
    mig_ram_put_mem_size(w, &rw, &bi, 1, false);
    memset(bytes, 0x5a, sizeof(bytes));
    for (uint64_t p = 0; p < 4; p++)
        mig_ram_put_page(w, &rw, "pc.ram", p * PG, bytes);
    for (uint64_t p = 10; p < 13; p++)
        mig_ram_put_page(w, &rw, "pc.ram", p * PG, bytes);
    mig_ram_put_zero(w, &rw, "pc.ram", 13 * PG, 0);
    mig_ram_put_zero(w, &rw, "pc.ram", 0, 0);
    mig_ram_put_zero(w, &rw, "pc.ram", 2 * PG, 0);
    for (uint64_t p = 4; p < NPAGES; p++)
        if (p < 10 || p > 13)
            mig_ram_put_zero(w, &rw, "pc.ram", p * PG, 0);
    mig_ram_put_eos(w);
    return w;
}

/* Pages of [from, to) the process holds. */
static size_t resident(const uint8_t *host, uint64_t from, uint64_t to)
{
    size_t n = (size_t)(to - from);
    unsigned char *vec = malloc(n);
    assert_int_equal(mincore((void *)(host + from * PG), n * PG, vec), 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += vec[i] & 1;
    free(vec);
    return k;
}

/* Load the stream into a new block (fresh or not) over a socketpair;
 * returns the pages of the last 4 MiB the destination then holds. */
static size_t load(bool fresh)
{
    MigSavevm *sv = mig_savevm_new();
    MigRam *r = mig_ram_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", BLOCK, NULL), 0);
    mig_ram_set_fresh(r, fresh);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    const MigSaveEntry *e = mig_savevm_entry(sv, 0);
    size_t len;
    MigStream *ws = make_stream();
    const uint8_t *buf = mig_stream_mem_data(ws, &len);
    MigErr *err = NULL;
    assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
    static const size_t sizes[] = {4104 * 2 + 30, 8, 4105, 65536, 1 << 20};
    SimRamFeed f = {.sizes = sizes, .nsizes = MIG_ARRAY_SIZE(sizes), .steps = 1};
    int rc = sim_ram_feed(e, buf, len, &f, &err);
    if (rc != 0)
        fail_msg("load: %d %s", rc, err ? err->msg : "?");
    assert_int_equal(f.read, len);
    const uint8_t *host = mig_ram_block(r, 0)->host;
    for (uint64_t p = 0; p < 16; p++) {
        bool data = p == 1 || p == 3 || (p >= 10 && p <= 12);
        if (data ? memcmp(host + p * PG, bytes, PG) != 0 : !mig_ram_page_is_zero(host + p * PG))
            fail_msg("page %llu: %s expected", (unsigned long long)p, data ? "the sent bytes" : "zero");
    }
    size_t held = resident(host, NPAGES / 2, NPAGES);
    e->iter->load_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    mig_stream_free(ws);
    mig_savevm_free(sv);
    mig_ram_free(r);
    return held;
}

static void test_ram_fresh_destination_holds_no_zero_page(void **state)
{
    (void)state;
    assert_int_equal(load(true), 0);
}

/* The same load into a destination not known to be fresh reads its pages
 * to learn that they are zero, and so holds them: what the test above
 * measures is there to see. */
static void test_ram_destination_that_ran_reads_its_pages(void **state)
{
    (void)state;
    assert_true(load(false) > 0);
}

/* Only the load it was set for: a load's end (completed or not) clears
 * it, since the machine may run from then on. */
static void test_ram_fresh_ends_with_the_load(void **state)
{
    (void)state;
    MigSavevm *sv = mig_savevm_new();
    MigRam *r = mig_ram_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 4 * PG, NULL), 0);
    mig_ram_set_fresh(r, true);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    const MigSaveEntry *e = mig_savevm_entry(sv, 0);
    assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
    e->iter->load_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    /* the guest writes page 1; a second load's ZERO record must clear it */
    uint8_t *host = mig_ram_block(r, 0)->host;
    memset(host + PG, 0x77, PG);
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    mig_ram_writer_init(&rw);
    MigRamBlockInfo bi = {.name = "pc.ram", .length = 4 * PG};
    mig_ram_put_mem_size(w, &rw, &bi, 1, false);
    mig_ram_put_zero(w, &rw, "pc.ram", PG, 0);
    mig_ram_put_eos(w);
    size_t len;
    const uint8_t *buf = mig_stream_mem_data(w, &len);
    MigStream *s = mig_stream_new_mem_reader(buf, len);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    assert_int_equal(e->iter->load_setup(e->opaque, NULL), 0);
    assert_int_equal(e->iter->load_state(e->opaque, s, &h, NULL), 0);
    assert_true(mig_ram_page_is_zero(host + PG));
    e->iter->load_cleanup(e->opaque, MIG_OUTCOME_COMPLETED);
    mig_stream_free(s);
    mig_stream_free(w);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ram_fresh_destination_holds_no_zero_page),
        cmocka_unit_test(test_ram_destination_that_ran_reads_its_pages),
        cmocka_unit_test(test_ram_fresh_ends_with_the_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
