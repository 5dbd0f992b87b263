/*
 * test-ram.c - RAM blocks, dirty log, zero pages, the "ram" section bytes,
 * the restartable loader over every truncation, and pre-copy convergence on
 * the simulator's virtual clock.
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
#include "stream/ram-format.h"
#include "workload/workload.h"
#include "test-scale.h"

#define MIB ((uint64_t)1 << 20)

static const MigIterOps *ram_ops(MigSavevm *sv, void **opaque)
{
    const MigSaveEntry *e = mig_savevm_find(sv, "ram", 0);
    assert_non_null(e);
    assert_int_equal(e->version_id, 4);
    *opaque = e->opaque;
    return e->iter;
}

static void test_ram_blocks_and_dirty_log(void **state)
{
    (void)state;
    MigRam *r = mig_ram_new();
    MigErr *err = NULL;
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 64 * 4096, NULL), 0);
    assert_int_equal(mig_ram_add_block(r, "pc.bios", 4096 * 3, NULL), 1);
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 4096, &err), -EEXIST);
    mig_err_free(err);
    err = NULL;
    assert_int_equal(mig_ram_add_block(r, "odd", 1000, &err), -EINVAL);
    assert_non_null(strstr(err->msg, "odd"));
    mig_err_free(err);
    assert_true(mig_ram_total(r) == 67 * 4096);
    MigRamBlock *b = mig_ram_find_block(r, "pc.ram");
    assert_non_null(b);
    assert_int_equal(mig_ram_dirty_log_count(r), 0);
    mig_ram_set_dirty(b, 0);
    mig_ram_set_dirty(b, 63);
    mig_ram_set_dirty(b, 63);
    mig_ram_set_dirty(mig_ram_block(r, 1), 2);
    assert_int_equal(mig_ram_dirty_log_count(r), 3);
    mig_ram_free(r);
}

static void test_ram_zero_page_detection(void **state)
{
    (void)state;
    uint8_t *page = aligned_alloc(64, 4096);
    memset(page, 0, 4096);
    assert_true(mig_ram_page_is_zero(page));
    for (size_t at = 0; at < 4096; at += 511) {
        page[at] = 1;
        assert_false(mig_ram_page_is_zero(page));
        page[at] = 0;
    }
    page[4095] = 0x80;
    assert_false(mig_ram_page_is_zero(page));
    free(page);
}

/* START and the first PART of a 3-page machine: the exact bytes. */
static void test_ram_section_bytes(void **state)
{
    (void)state;
    MigRam *r = mig_ram_new();
    MigSavevm *sv = mig_savevm_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 3 * 4096, NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    MigRamBlock *b = mig_ram_block(r, 0);
    memset(b->host + 4096, 0xab, 4096); /* page 1 is data, pages 0 and 2 are zero */
    void *op;
    const MigIterOps *ops = ram_ops(sv, &op);
    MigStream *s = mig_stream_new_mem_writer();
    assert_int_equal(ops->save_setup(op, s, NULL), 0);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(s, &len);
    static const uint8_t start[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x04, /* 0x3000 total | MEM_SIZE */
        0x06, 'p',  'c',  '.',  'r',  'a',  'm',        /* block id */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, /* used_length */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, /* EOS */
    };
    assert_int_equal(len, sizeof(start));
    assert_memory_equal(d, start, sizeof(start));
    mig_stream_free(s);

    s = mig_stream_new_mem_writer();
    assert_int_equal(ops->save_iterate(op, s, 1 << 20, NULL), 1); /* pass done */
    d = mig_stream_mem_data(s, &len);
    uint8_t want[9 + 7 + 8 + 4096 + 9 + 8];
    uint8_t *w = want;
    static const uint8_t z0[] = {0, 0, 0, 0, 0, 0, 0x00, 0x02, /* offset 0 | ZERO */
                                 0x06, 'p', 'c', '.', 'r', 'a', 'm', 0x00 /* fill */};
    memcpy(w, z0, sizeof(z0));
    w += sizeof(z0);
    static const uint8_t p1[] = {0, 0, 0, 0, 0, 0, 0x10, 0x28}; /* 0x1000 | PAGE | CONTINUE */
    memcpy(w, p1, sizeof(p1));
    w += sizeof(p1);
    memset(w, 0xab, 4096);
    w += 4096;
    static const uint8_t z2[] = {0, 0, 0, 0, 0, 0, 0x20, 0x22, 0x00}; /* 0x2000 ZERO|CONTINUE */
    memcpy(w, z2, sizeof(z2));
    w += sizeof(z2);
    static const uint8_t eos[] = {0, 0, 0, 0, 0, 0, 0, 0x10};
    memcpy(w, eos, sizeof(eos));
    w += sizeof(eos);
    assert_int_equal(len, (size_t)(w - want));
    assert_memory_equal(d, want, len);
    mig_stream_free(s);

    /* Nothing dirty: the next pass sends only EOS; a write shows up after
     * the sync, and CONTINUE carries over from the previous section. */
    ops->save_sync(op);
    s = mig_stream_new_mem_writer();
    mig_ram_set_dirty(b, 1);
    assert_int_equal(ops->save_iterate(op, s, 1 << 20, NULL), 1);
    d = mig_stream_mem_data(s, &len);
    assert_int_equal(len, 8);
    mig_stream_free(s);
    ops->save_sync(op);
    uint64_t pre, stop;
    ops->save_pending(op, &pre, &stop);
    assert_true(pre == 4096 && stop == 0);
    s = mig_stream_new_mem_writer();
    assert_int_equal(ops->save_iterate(op, s, 1 << 20, NULL), 1);
    d = mig_stream_mem_data(s, &len);
    assert_int_equal(len, 8 + 4096 + 8);
    static const uint8_t p1c[] = {0, 0, 0, 0, 0, 0, 0x10, 0x28};
    assert_memory_equal(d, p1c, 8);
    mig_stream_free(s);
    MigRamInfo info;
    mig_ram_info(r, &info);
    assert_int_equal(info.normal, 2);
    assert_int_equal(info.duplicate, 2);
    assert_int_equal(info.dirty_sync_count, 3);
    ops->save_cleanup(op, MIG_OUTCOME_CANCELLED);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

/* A whole START + PART payload for `pages` pages of pattern data. */
static uint8_t *make_stream(size_t pages, size_t *len)
{
    MigRam *r = mig_ram_new();
    MigSavevm *sv = mig_savevm_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", pages * 4096, NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    MigRamBlock *b = mig_ram_block(r, 0);
    for (size_t p = 0; p < pages; p += 2)
        memset(b->host + p * 4096, (int)(p + 1), 4096);
    void *op;
    const MigIterOps *ops = ram_ops(sv, &op);
    MigStream *s = mig_stream_new_mem_writer();
    ops->save_setup(op, s, NULL);
    while (ops->save_iterate(op, s, 4096, NULL) == 0)
        ;
    const uint8_t *d = mig_stream_mem_data(s, len);
    uint8_t *copy = malloc(*len);
    memcpy(copy, d, *len);
    mig_stream_free(s);
    ops->save_cleanup(op, MIG_OUTCOME_COMPLETED);
    mig_savevm_free(sv);
    mig_ram_free(r);
    return copy;
}

/* Load every section payload in `buf` (each ends with EOS). */
static int load_all(MigRam *r, const MigIterOps *ops, void *op, const uint8_t *buf, size_t len,
                    MigErr **errp)
{
    MigStream *s = mig_stream_new_mem_reader(buf, len);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    int rc = 0;
    while (rc == 0 && !mig_stream_at_eof(s)) {
        rc = ops->load_state(op, s, &h, errp);
        h.type = MIG_SECTION_PART;
    }
    mig_stream_free(s);
    return rc;
}

static void test_ram_loader_every_truncation(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_stream(6, &len);
    MigRam *r = mig_ram_new();
    MigSavevm *sv = mig_savevm_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 6 * 4096, NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    void *op;
    const MigIterOps *ops = ram_ops(sv, &op);
    /* The whole stream loads and reproduces the pages. */
    assert_int_equal(ops->load_setup(op, NULL), 0);
    MigErr *err = NULL;
    int rc = load_all(r, ops, op, buf, len, &err);
    if (rc)
        fail_msg("%s", err->msg);
    MigRamBlock *b = mig_ram_block(r, 0);
    for (size_t p = 0; p < 6; p++)
        assert_int_equal(b->host[p * 4096 + 7], p % 2 ? 0 : (int)(p + 1));
    ops->load_cleanup(op, MIG_OUTCOME_COMPLETED);
    /* Every proper prefix fails with an error naming an offset, and a
     * failed load leaves nothing behind.  Under valgrind (test-scale.h) a
     * cut strictly inside a page payload is tried only after its first
     * three bytes, at its middle and before its last three: the loader
     * takes a payload in one piece, so a cut anywhere in there fails the
     * same way, and the ~12,000 of them (each followed by a check of all
     * six pages) were nearly all of valgrind's time in this test. */
    size_t payload[3];
    for (size_t p = 0; p < 3; p++) { /* pages 0, 2, 4: 4096 bytes of 1, 3, 5 */
        uint8_t want[4096];
        memset(want, (int)(2 * p + 1), sizeof(want));
        const uint8_t *at = memmem(buf, len, want, sizeof(want));
        assert_non_null(at);
        payload[p] = (size_t)(at - buf);
    }
    for (size_t cut = 0; cut < len; cut++) {
        bool inside = false;
        for (size_t p = 0; p < 3; p++)
            inside |= cut > payload[p] + 2 && cut < payload[p] + 4096 - 2 && cut != payload[p] + 2048;
        if (inside && test_scale_small())
            continue;
        assert_int_equal(ops->load_setup(op, NULL), 0);
        err = NULL;
        rc = load_all(r, ops, op, buf, cut, &err);
        static const uint8_t eos[8] = {0, 0, 0, 0, 0, 0, 0, 0x10};
        if (cut == 0 || (cut >= 8 && memcmp(buf + cut - 8, eos, 8) == 0)) {
            /* Nothing, or whole sections: a clean section boundary, which
             * the engine (not the RAM loader) rejects. */
            assert_int_equal(rc, 0);
        } else {
            assert_true(rc < 0);
            assert_non_null(err);
            assert_non_null(strstr(err->msg, "offset"));
        }
        mig_err_free(err);
        ops->load_cleanup(op, MIG_OUTCOME_FAILED);
        for (size_t p = 0; p < 6; p++)
            assert_true(mig_ram_page_is_zero(b->host + p * 4096));
    }
    /* A stream for a machine with a different block is refused by name. */
    MigRam *r2 = mig_ram_new();
    MigSavevm *sv2 = mig_savevm_new();
    assert_int_equal(mig_ram_add_block(r2, "other.ram", 6 * 4096, NULL), 0);
    assert_int_equal(mig_ram_register(r2, sv2, NULL), 0);
    void *op2;
    const MigIterOps *ops2 = ram_ops(sv2, &op2);
    ops2->load_setup(op2, NULL);
    err = NULL;
    assert_true(load_all(r2, ops2, op2, buf, len, &err) < 0);
    assert_non_null(strstr(err->msg, "Unknown ramblock \"pc.ram\""));
    mig_err_free(err);
    ops2->load_cleanup(op2, MIG_OUTCOME_FAILED);
    mig_savevm_free(sv2);
    mig_ram_free(r2);
    free(buf);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

/* A transport that hands out one byte per read and says "not yet" (-EAGAIN)
 * before every byte: the loader is starved at every position of the stream
 * and must restart each record from its mark. */
typedef struct Trickle {
    MigTransport base;
    const uint8_t *buf;
    size_t len, pos;
    bool ready;
    unsigned starved;
} Trickle;

static ssize_t trickle_read(MigTransport *t, void *b, size_t n)
{
    Trickle *k = (Trickle *)t;
    if (k->pos == k->len)
        return 0;
    if (!k->ready) {
        k->ready = true;
        k->starved++;
        return -EAGAIN;
    }
    k->ready = false;
    memcpy(b, k->buf + k->pos++, 1);
    return 1;
}

static ssize_t trickle_write(MigTransport *t, const void *b, size_t n)
{
    return -EBADF;
}

static ssize_t trickle_writev(MigTransport *t, const struct iovec *iov, int n)
{
    return -EBADF;
}

static void trickle_close(MigTransport *t)
{
}

static const MigTransportOps trickle_ops = {
    .kind = "trickle",
    .read = trickle_read,
    .write = trickle_write,
    .writev = trickle_writev,
    .close = trickle_close,
};

static void test_ram_loader_restarts_when_starved_anywhere(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = make_stream(6, &len);
    MigRam *r = mig_ram_new();
    MigSavevm *sv = mig_savevm_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 6 * 4096, NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    void *op;
    const MigIterOps *ops = ram_ops(sv, &op);
    Trickle k = {.base = {.ops = &trickle_ops}, .buf = buf, .len = len};
    MigStream *s = mig_stream_new_reader(&k.base);
    MigSectionHeader h = {.type = MIG_SECTION_START, .version_id = 4};
    /* The payloads it holds: one per EOS record. */
    size_t payloads = 0;
    static const uint8_t eos[8] = {0, 0, 0, 0, 0, 0, 0, 0x10};
    for (size_t i = 0; i + 8 <= len; i++)
        payloads += memcmp(buf + i, eos, 8) == 0;
    assert_int_equal(ops->load_setup(op, NULL), 0);
    size_t sections = 0;
    for (;;) {
        /* As the engine does: mark before looking, so that a starved look
         * rewinds to here and not into the section already loaded. */
        mig_stream_mark(s);
        if (mig_stream_at_eof(s))
            break;
        if (mig_stream_starved(s)) {
            mig_stream_rewind(s);
            continue;
        }
        MigErr *err = NULL;
        int rc = ops->load_state(op, s, &h, &err);
        if (rc == -EAGAIN)
            continue;
        if (rc)
            fail_msg("%s", err ? err->msg : "load failed");
        sections++;
        h.type = MIG_SECTION_PART;
    }
    /* One starvation per byte; every byte consumed exactly once. */
    assert_true(k.starved >= len);
    assert_int_equal(mig_stream_offset(s), len);
    assert_int_equal(sections, payloads);
    MigRamBlock *b = mig_ram_block(r, 0);
    for (size_t p = 0; p < 6; p++)
        for (size_t i = 0; i < 4096; i += 511)
            assert_int_equal(b->host[p * 4096 + i], p % 2 ? 0 : (int)(p + 1));
    MigRamInfo info;
    mig_ram_info(r, &info);
    assert_int_equal(info.normal, 3);
    assert_int_equal(info.duplicate, 3);
    assert_int_equal(info.transferred, len);
    ops->load_cleanup(op, MIG_OUTCOME_COMPLETED);
    mig_stream_free(s);
    free(buf);
    mig_savevm_free(sv);
    mig_ram_free(r);
}

/* Load a hand-made payload: MEM_SIZE for one "pc.ram" block of `pages`
 * pages, then PAGE records at the given offsets, CONTINUE after the first
 * when `named_first`, every one CONTINUE otherwise. */
static int load_pages_at(const uint64_t *offs, size_t n, bool named_first, MigErr **errp)
{
    static uint8_t page[4096];
    memset(page, 0x5a, sizeof(page));
    MigStream *w = mig_stream_new_mem_writer();
    MigRamWriter rw;
    MigRamBlockInfo bi = {.name = "pc.ram", .length = 4 * 4096};
    mig_ram_put_mem_size(w, &rw, &bi, 1, false);
    if (!named_first)
        strcpy(rw.last, "pc.ram");
    for (size_t i = 0; i < n; i++)
        mig_ram_put_page(w, &rw, "pc.ram", offs[i], page);
    mig_ram_put_eos(w);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(w, &len);
    MigRam *r = mig_ram_new();
    MigSavevm *sv = mig_savevm_new();
    assert_int_equal(mig_ram_add_block(r, "pc.ram", 4 * 4096, NULL), 0);
    assert_int_equal(mig_ram_register(r, sv, NULL), 0);
    void *op;
    const MigIterOps *ops = ram_ops(sv, &op);
    assert_int_equal(ops->load_setup(op, NULL), 0);
    int rc = load_all(r, ops, op, d, len, errp);
    if (rc == 0)
        assert_int_equal(mig_ram_block(r, 0)->host[offs[n - 1] + 9], 0x5a);
    ops->load_cleanup(op, rc ? MIG_OUTCOME_FAILED : MIG_OUTCOME_COMPLETED);
    mig_stream_free(w);
    mig_savevm_free(sv);
    mig_ram_free(r);
    return rc;
}

static void test_ram_loader_continue_page_errors(void **state)
{
    (void)state;
    MigErr *err = NULL;
    /* In range, the last page of the block: loads. */
    static const uint64_t good[] = {0, 3 * 4096};
    assert_int_equal(load_pages_at(good, 2, true, &err), 0);
    /* CONTINUE|PAGE one page past the block's end: refused by name, with
     * the record's stream offset: MEM_SIZE (8 + 7 + 8) + the first, named
     * record (8 + 7 + 4096). */
    static const uint64_t past[] = {0, 4 * 4096};
    assert_true(load_pages_at(past, 2, true, &err) < 0);
    assert_non_null(strstr(err->msg, "Illegal RAM offset 0x4000 in ramblock \"pc.ram\""));
    assert_non_null(strstr(err->msg, "at offset 4134"));
    mig_err_free(err);
    err = NULL;
    /* CONTINUE|PAGE before any record named a block. */
    static const uint64_t first[] = {0};
    assert_true(load_pages_at(first, 1, false, &err) < 0);
    assert_non_null(strstr(err->msg, "CONTINUE with no previous block at offset 23"));
    mig_err_free(err);
}

/* ---- convergence on the virtual clock ---- */

typedef struct Pair {
    MigLoop *loop;
    MigMachine *src, *dst;
    MigWorkload *w;
} Pair;

static void pair_start(Pair *p, uint64_t ram, uint64_t rate, uint64_t link_bw,
                       const MigParamsSet *ps)
{
    p->loop = mig_sim_loop_new(3);
    MigMachineOptions so = {.name = "src", .ram_size = ram};
    MigMachineOptions dopt = {.name = "dst", .ram_size = ram, .incoming = true};
    p->src = mig_machine_new(p->loop, &so, NULL);
    p->dst = mig_machine_new(p->loop, &dopt, NULL);
    MigWorkloadOptions wo = {.seed = 3, .fill = MIG_WORKLOAD_FILL_RANDOM, .dirty_rate = rate};
    p->w = mig_workload_new(p->src, &wo, NULL);
    assert_int_equal(mig_migration_set_params(mig_machine_migration(p->src), ps, NULL), 0);
    MigLinkParams lp = {.bandwidth = link_bw};
    MigTransport *a, *b;
    assert_int_equal(mig_transport_mem_pair(p->loop, &lp, &a, &b), 0);
    assert_int_equal(mig_machine_incoming_transport(p->dst, b, NULL), 0);
    assert_int_equal(mig_machine_migrate_transport(p->src, a, NULL), 0);
}

static void pair_free(Pair *p)
{
    mig_workload_free(p->w);
    mig_machine_free(p->src);
    mig_machine_free(p->dst);
    mig_loop_free(p->loop);
}

static void test_ram_idle_guest_one_pass(void **state)
{
    (void)state;
    Pair p;
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 0};
    pair_start(&p, 8 * MIB, 0, 100 * MIB, &ps);
    assert_int_equal(sim_migration_wait(p.loop, p.src, p.dst, 0, NULL), 0);
    MigInfo info;
    mig_machine_query_migrate(p.src, &info);
    assert_int_equal(info.status, MIG_STATUS_COMPLETED);
    assert_int_equal(info.passes, 1);
    /* setup sync + end of pass 1 + final sync */
    assert_int_equal(info.ram.dirty_sync_count, 3);
    assert_int_equal(info.ram.normal, 8 * MIB / 4096);
    assert_int_equal(info.ram.downtime_bytes, 8); /* just EOS */
    /* 8 MiB at 100 MiB/s of virtual time: about 80 ms, minus what is still
     * in the link's 4 MiB buffer when the source has written everything. */
    assert_in_range(info.total_time, 38, 100);
    assert_true(mig_workload_verify(p.w, mig_machine_ram(p.dst), NULL) == 0);
    pair_free(&p);
}

static void test_ram_max_bandwidth_throttles(void **state)
{
    (void)state;
    Pair p;
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 10 * MIB};
    pair_start(&p, 4 * MIB, 0, 1000 * MIB, &ps);
    assert_int_equal(sim_migration_wait(p.loop, p.src, p.dst, 0, NULL), 0);
    MigInfo info;
    mig_machine_query_migrate(p.src, &info);
    assert_int_equal(info.status, MIG_STATUS_COMPLETED);
    /* 4 MiB at 10 MiB/s: ~400 ms although the link does 1000 MiB/s. */
    assert_in_range(info.total_time, 350, 450);
    pair_free(&p);
}

static void test_ram_non_convergence_until_pass_bound(void **state)
{
    (void)state;
    Pair p;
    /* The guest dirties 80 MB/s over a 20 MB/s link: it never converges. */
    MigParamsSet ps = {.has_max_bandwidth = true, .p.max_bandwidth = 0};
    pair_start(&p, 32 * MIB, 20000, 20 * MIB, &ps);
    mig_sim_run_until_time(p.loop, 6ull * 1000000000ull);
    MigInfo info;
    mig_machine_query_migrate(p.src, &info);
    assert_int_equal(info.status, MIG_STATUS_ACTIVE);
    assert_true(info.passes >= 2);
    assert_true(info.has_expected_downtime && info.expected_downtime > 300);
    assert_true(info.ram.dirty_pages_rate > 5000);
    /* Bounding the passes makes it stop the guest and finish. */
    MigParamsSet bound = {.has_x_max_passes = true, .p.x_max_passes = info.passes + 1};
    assert_int_equal(mig_migration_set_params(mig_machine_migration(p.src), &bound, NULL), 0);
    assert_int_equal(sim_migration_wait(p.loop, p.src, p.dst, 0, NULL), 0);
    mig_machine_query_migrate(p.src, &info);
    assert_int_equal(info.status, MIG_STATUS_COMPLETED);
    assert_int_equal(info.passes, bound.p.x_max_passes);
    assert_true(info.downtime > 300); /* the price of forcing it */
    MigErr *err = NULL;
    if (mig_workload_verify(p.w, mig_machine_ram(p.dst), &err))
        fail_msg("%s", err->msg);
    pair_free(&p);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ram_blocks_and_dirty_log),
        cmocka_unit_test(test_ram_zero_page_detection),
        cmocka_unit_test(test_ram_section_bytes),
        cmocka_unit_test(test_ram_loader_every_truncation),
        cmocka_unit_test(test_ram_loader_restarts_when_starved_anywhere),
        cmocka_unit_test(test_ram_loader_continue_page_errors),
        cmocka_unit_test(test_ram_idle_guest_one_pass),
        cmocka_unit_test(test_ram_max_bandwidth_throttles),
        cmocka_unit_test(test_ram_non_convergence_until_pass_bound),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
