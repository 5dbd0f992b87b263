/*
 * test-workload.c - the deterministic guest (fakes/workload): page content,
 * the memory oracle (mig_workload_verify) and the dirtier on the simulator's
 * virtual clock; the guest as keyed pages (impl/ram/ram.h): the oracle
 * still catches a corrupted, stale, misplaced or missing page, and a
 * migration over a link that carries keys gives the guest it gives with
 * bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "machine/machine.h"
#include "ram/ram.h"
#include "sim/migration-wait.h"
#include "sim/sim.h"
#include "workload/workload.h"

#define PAGE MIG_RAM_PAGE_SIZE
#define NPAGES 64
#define MIB ((uint64_t)1 << 20)

/* ---- page content ---- */

static void test_workload_page_bytes(void **state)
{
    (void)state;
    uint8_t *pg = malloc(PAGE);
    mig_workload_page(0x5eed, MIG_WORKLOAD_FILL_RANDOM, 0, 0, 0, pg);
    /* The format is pinned: a scenario's pages (and so a REPRO run's RAM)
     * must not change under a refactoring.  Words are host (little) endian. */
    static const uint8_t head[16] = {
        0x7b, 0x6f, 0x6c, 0x75, 0xaa, 0x54, 0xed, 0x72, /* word 0: the key */
        0x90, 0xeb, 0xb6, 0xf4, 0x63, 0xce, 0x24, 0x11, /* word 1: key + step */
    };
    static const uint8_t tail[8] = {
        0x66, 0x1d, 0x1a, 0x8b, 0xef, 0x4d, 0xa9, 0x43, /* word 511: key + 511 * step */
    };
    assert_memory_equal(pg, head, sizeof(head));
    assert_memory_equal(pg + PAGE - 8, tail, sizeof(tail));
    /* every word is the previous one plus the same odd step */
    const uint64_t *w = (const uint64_t *)pg;
    for (size_t i = 1; i < PAGE / 8; i++)
        assert_true(w[i] - w[i - 1] == 0x9e3779b97f4a7c15ull);
    /* a pure function of its arguments */
    uint8_t *again = malloc(PAGE);
    mig_workload_page(0x5eed, MIG_WORKLOAD_FILL_RANDOM, 0, 0, 0, again);
    assert_memory_equal(pg, again, PAGE);
    free(again);
    free(pg);
}

static bool all_zero(const uint64_t *w)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < PAGE / 8; i++)
        acc |= w[i];
    return acc == 0;
}

static void test_workload_page_distinct(void **state)
{
    (void)state;
    uint64_t *a = malloc(PAGE), *b = malloc(PAGE);
    /* zero fill: generation 0 is a zero page; random fill: never */
    mig_workload_page(7, MIG_WORKLOAD_FILL_ZERO, 0, 3, 0, a);
    assert_true(all_zero(a));
    for (uint64_t p = 0; p < 256; p++) {
        mig_workload_page(7, MIG_WORKLOAD_FILL_RANDOM, 0, p, 0, a);
        assert_false(all_zero(a));
    }
    /* Generations of one page: about one in 16 is a zero page, the others
     * differ from each other in every word, so a stale page never passes. */
    unsigned zero = 0;
    uint64_t prev_first = 0;
    mig_workload_page(7, MIG_WORKLOAD_FILL_RANDOM, 0, 5, 0, b);
    for (uint32_t g = 1; g <= 1600; g++) {
        mig_workload_page(7, MIG_WORKLOAD_FILL_RANDOM, 0, 5, g, a);
        if (all_zero(a)) {
            zero++;
            continue;
        }
        for (size_t i = 0; i < PAGE / 8; i++)
            assert_true(a[i] != b[i]);
        assert_true(a[0] != prev_first);
        prev_first = a[0];
        memcpy(b, a, PAGE);
    }
    assert_in_range(zero, 50, 150);
    /* neighbours in page, block and seed differ in every word too */
    mig_workload_page(7, MIG_WORKLOAD_FILL_RANDOM, 0, 5, 9, a);
    const uint64_t others[][3] = {{7, 0, 6}, {7, 1, 5}, {8, 0, 5}};
    for (size_t k = 0; k < 3; k++) {
        mig_workload_page(others[k][0], MIG_WORKLOAD_FILL_RANDOM, (uint32_t)others[k][1],
                          others[k][2], 9, b);
        if (all_zero(b))
            continue;
        for (size_t i = 0; i < PAGE / 8; i++)
            assert_true(a[i] != b[i]);
    }
    free(a);
    free(b);
}

/* ---- the memory oracle ---- */

typedef struct Guest {
    MigLoop *loop;
    MigMachine *src, *dst;
    MigWorkload *w;
    MigLink *link; /* of the last migrate(), or NULL */
} Guest;

static void guest_start_with(Guest *g, uint64_t seed, uint64_t rate, MigWorkloadFill fill,
                             bool keyed)
{
    g->loop = mig_sim_loop_new(seed);
    MigMachineOptions so = {.name = "src", .ram_size = NPAGES * PAGE};
    MigMachineOptions dopt = {.name = "dst", .ram_size = NPAGES * PAGE, .incoming = true};
    g->src = mig_machine_new(g->loop, &so, NULL);
    g->dst = mig_machine_new(g->loop, &dopt, NULL);
    assert_non_null(g->src);
    assert_non_null(g->dst);
    MigWorkloadOptions wo = {.seed = seed, .fill = fill, .dirty_rate = rate, .keyed = keyed};
    g->w = mig_workload_new(g->src, &wo, NULL);
    assert_non_null(g->w);
    g->link = NULL;
}

static void guest_start(Guest *g, uint64_t seed, uint64_t rate)
{
    guest_start_with(g, seed, rate, MIG_WORKLOAD_FILL_RANDOM, false);
}

static void guest_free(Guest *g)
{
    mig_link_unref(g->link);
    mig_workload_free(g->w);
    mig_machine_free(g->src);
    mig_machine_free(g->dst);
    mig_loop_free(g->loop);
}

/* Copy every block of src RAM onto dst RAM (a perfect migration). */
static void copy_ram(Guest *g)
{
    MigRam *s = mig_machine_ram(g->src), *d = mig_machine_ram(g->dst);
    assert_int_equal(mig_ram_block_count(s), mig_ram_block_count(d));
    for (size_t i = 0; i < mig_ram_block_count(s); i++)
        memcpy(mig_ram_block(d, i)->host, mig_ram_block(s, i)->host, mig_ram_block(s, i)->length);
}

static uint8_t *page_of(MigMachine *m, uint64_t page)
{
    return mig_ram_block(mig_machine_ram(m), 0)->host + page * PAGE;
}

static void assert_verify_fails(Guest *g, int want, const char *text)
{
    MigErr *err = NULL;
    assert_int_equal(mig_workload_verify(g->w, mig_machine_ram(g->dst), &err), want);
    assert_non_null(err);
    if (!strstr(err->msg, text))
        fail_msg("error '%s' does not mention '%s'", err->msg, text);
    mig_err_free(err);
}

static void test_workload_verify_finds_bad_pages(void **state)
{
    (void)state;
    Guest g;
    guest_start(&g, 11, 0);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.src), NULL), 0);
    /* an empty destination: every page is wrong */
    assert_verify_fails(&g, -EIO, "64 bad pages, first at block pc.ram page 0 (generation 0)");
    copy_ram(&g);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.dst), NULL), 0);

    /* one byte damaged in the middle of a page */
    page_of(g.dst, 17)[2049] ^= 0x10;
    assert_verify_fails(&g, -EIO, "1 bad pages, first at block pc.ram page 17");
    page_of(g.dst, 17)[2049] ^= 0x10;
    /* the last byte of the last page */
    page_of(g.dst, NPAGES - 1)[PAGE - 1] ^= 1;
    assert_verify_fails(&g, -EIO, "page 63");
    page_of(g.dst, NPAGES - 1)[PAGE - 1] ^= 1;
    /* another page's content (a record applied at the wrong offset); a
     * stale generation is the dirtier test's case */
    uint8_t *keep = malloc(PAGE);
    memcpy(keep, page_of(g.dst, 30), PAGE);
    memcpy(page_of(g.dst, 30), page_of(g.dst, 31), PAGE);
    assert_verify_fails(&g, -EIO, "1 bad pages, first at block pc.ram page 30");
    memcpy(page_of(g.dst, 30), keep, PAGE);
    free(keep);
    /* a page read back as zero */
    memset(page_of(g.dst, 5), 0, PAGE);
    assert_verify_fails(&g, -EIO, "page 5 (generation 0)");
    guest_free(&g);
}

static void test_workload_verify_checks_layout(void **state)
{
    (void)state;
    Guest g;
    guest_start(&g, 12, 0);
    MigRam *other = mig_ram_new();
    assert_int_equal(mig_ram_add_block(other, "pc.ram", (NPAGES - 1) * PAGE, NULL), 0);
    MigErr *err = NULL;
    assert_int_equal(mig_workload_verify(g.w, other, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "block pc.ram has 63 pages on the destination, 64"));
    mig_err_free(err);
    err = NULL;
    assert_int_equal(mig_ram_add_block(other, "extra", PAGE, NULL), 1);
    assert_int_equal(mig_workload_verify(g.w, other, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "2 blocks on the destination, 1 expected"));
    mig_err_free(err);
    mig_ram_free(other);
    guest_free(&g);
}

/* ---- the dirtier ---- */

static void test_workload_dirtier_rate_and_generations(void **state)
{
    (void)state;
    Guest g, h;
    guest_start(&g, 21, 1000);
    assert_true(mig_machine_running(g.src));
    copy_ram(&g); /* dst = src at time 0 */
    assert_int_equal(mig_sim_run_for(g.loop, 1000000000ull), 0);
    /* 1000 pages/s for one virtual second, in 10 ms ticks */
    assert_int_equal(mig_workload_writes(g.w), 1000);
    uint64_t bumped = 0, total = 0;
    for (uint64_t p = 0; p < NPAGES; p++) {
        uint32_t gen = mig_workload_generation(g.w, 0, p);
        bumped += gen > 0;
        total += gen;
    }
    assert_int_equal(total, 1000);
    assert_int_equal(bumped, NPAGES); /* 1000 writes over 64 pages touch them all */
    /* the source still matches its own generations; the copy made at time 0
     * is stale everywhere it was written */
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.src), NULL), 0);
    assert_verify_fails(&g, -EIO, "bad pages");

    /* the same seed writes the same pages in the same order */
    guest_start(&h, 21, 1000);
    assert_int_equal(mig_sim_run_for(h.loop, 1000000000ull), 0);
    for (uint64_t p = 0; p < NPAGES; p++)
        assert_int_equal(mig_workload_generation(h.w, 0, p), mig_workload_generation(g.w, 0, p));
    assert_memory_equal(page_of(h.src, 0), page_of(g.src, 0), NPAGES * PAGE);
    guest_free(&h);

    /* rate 0 stops it */
    mig_workload_set_rate(g.w, 0);
    assert_int_equal(mig_sim_run_for(g.loop, 1000000000ull), 0);
    assert_int_equal(mig_workload_writes(g.w), 1000);
    guest_free(&g);
}

/* ---- keyed pages (impl/ram/ram.h): checked by key, still strict ---- */

static MigRamBlock *dst_block(Guest *g)
{
    return mig_ram_block(mig_machine_ram(g->dst), 0);
}

/* The destination takes the source's keys (a perfect migration). */
static void copy_keys(Guest *g)
{
    MigRamBlock *s = mig_ram_block(mig_machine_ram(g->src), 0), *d = dst_block(g);
    for (uint64_t p = 0; p < NPAGES; p++) {
        uint64_t key = 0;
        assert_true(mig_ram_page_key(s, p, &key)); /* the guest wrote keys only */
        mig_ram_page_set_key(d, p, key);
    }
}

static void test_oracle_catches_bad_keyed_pages(void **state)
{
    (void)state;
    Guest g;
    guest_start_with(&g, 31, 0, MIG_WORKLOAD_FILL_RANDOM, true);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.src), NULL), 0);
    /* missing: a destination that never got the pages reads zero */
    assert_verify_fails(&g, -EIO, "64 bad pages, first at block pc.ram page 0 (generation 0)");
    copy_keys(&g);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.dst), NULL), 0);
    MigRamBlock *d = dst_block(&g);
    uint64_t key = 0;

    /* corrupted: one byte of a page that became bytes */
    mig_ram_page_host(d, 17)[2049] ^= 0x10;
    assert_verify_fails(&g, -EIO, "1 bad pages, first at block pc.ram page 17");
    mig_ram_page_host(d, 17)[2049] ^= 0x10;
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.dst), NULL), 0);

    /* missing: one page is the zero page */
    assert_true(mig_ram_page_key(d, 9, &key));
    mig_ram_page_set_key(d, 9, MIG_RAM_KEY_ZERO);
    assert_verify_fails(&g, -EIO, "1 bad pages, first at block pc.ram page 9 (generation 0)");
    mig_ram_page_set_key(d, 9, key);

    /* another page's key (a record applied at the wrong offset) */
    uint64_t other = 0;
    assert_true(mig_ram_page_key(d, 31, &other));
    assert_true(mig_ram_page_key(d, 30, &key));
    mig_ram_page_set_key(d, 30, other);
    assert_verify_fails(&g, -EIO, "1 bad pages, first at block pc.ram page 30");
    mig_ram_page_set_key(d, 30, key);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.dst), NULL), 0);

    /* stale: the guest writes on, the destination keeps what it had */
    mig_workload_set_rate(g.w, 1000);
    assert_int_equal(mig_sim_run_for(g.loop, 100000000ull), 0);
    assert_int_equal(mig_workload_writes(g.w), 100);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.src), NULL), 0);
    assert_verify_fails(&g, -EIO, "bad pages");
    copy_keys(&g);
    assert_int_equal(mig_workload_verify(g.w, mig_machine_ram(g.dst), NULL), 0);
    guest_free(&g);
}

/* ---- whole migrations: the same guest arrives, keys or bytes ---- */

static void migrate(Guest *g, bool attach)
{
    MigLinkParams lp = {.bandwidth = 256 * MIB, .latency_ns = 50000};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(g->loop, &lp, &a, &b), 0);
    g->link = mig_transport_mem_link(a);
    if (attach) {
        mig_transport_mem_set_ram(a, mig_machine_ram(g->src));
        mig_transport_mem_set_ram(b, mig_machine_ram(g->dst));
    }
    mig_sim_run_for(g->loop, 20 * 1000000ull);
    assert_int_equal(mig_machine_incoming_transport(g->dst, b, NULL), 0);
    assert_int_equal(mig_machine_migrate_transport(g->src, a, NULL), 0);
    assert_int_equal(sim_migration_wait(g->loop, g->src, g->dst, 600ull * 1000000000ull, NULL), 0);
    assert_int_equal(mig_migration_status(mig_machine_migration(g->src)), MIG_STATUS_COMPLETED);
    assert_int_equal(mig_migration_status(mig_machine_migration(g->dst)), MIG_STATUS_COMPLETED);
}

static void test_migration_keys_or_bytes_same_guest(void **state)
{
    (void)state;
    for (int fill = 0; fill < MIG_WORKLOAD_FILL__COUNT; fill++) {
        Guest k, y;
        char dk[65], dy[65], sk[65];
        guest_start_with(&k, 41, 2000, (MigWorkloadFill)fill, true);
        guest_start_with(&y, 41, 2000, (MigWorkloadFill)fill, true);
        migrate(&k, true);  /* keys cross the link */
        migrate(&y, false); /* bytes cross it */
        assert_int_equal(mig_workload_verify(k.w, mig_machine_ram(k.dst), NULL), 0);
        assert_int_equal(mig_workload_verify(y.w, mig_machine_ram(y.dst), NULL), 0);
        /* the same guest arrived both ways, and it is the source's */
        mig_machine_ram_digest(k.dst, dk);
        mig_machine_ram_digest(y.dst, dy);
        mig_machine_ram_digest(k.src, sk);
        assert_string_equal(dk, dy);
        assert_string_equal(dk, sk);
        /* and over the keyed link the destination's pages stayed keys (all
         * but the block's first PAGE record, which names the block and is
         * read through the stream's buffer) */
        MigRamBlock *d = dst_block(&k);
        uint64_t keyed = 0, key;
        for (uint64_t p = 0; p < NPAGES; p++)
            keyed += mig_ram_page_key(d, p, &key);
        assert_in_range(keyed, NPAGES - 1, NPAGES);
        assert_false(mig_ram_page_key(dst_block(&y), 0, &key));
        guest_free(&k);
        guest_free(&y);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload_page_bytes),
        cmocka_unit_test(test_workload_page_distinct),
        cmocka_unit_test(test_workload_verify_finds_bad_pages),
        cmocka_unit_test(test_workload_verify_checks_layout),
        cmocka_unit_test(test_workload_dirtier_rate_and_generations),
        cmocka_unit_test(test_oracle_catches_bad_keyed_pages),
        cmocka_unit_test(test_migration_keys_or_bytes_same_guest),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
