/*
 * workload.c - the deterministic guest (see workload.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "workload.h"

#define DEFAULT_TICK_NS 10000000ull /* 10 ms */

struct MigWorkload {
    MigMachine *m;
    MigLoop *loop;
    MigWorkloadOptions o;
    uint32_t **gen; /* per block, per page */
    size_t nblocks;
    uint64_t total_pages;
    MigLoopSource *timer;
    uint64_t last_tick_ns;
    uint64_t carry; /* fractional pages, in units of 1e-9 page */
    uint64_t writes;
};

int mig_workload_fill_parse(const char *name)
{
    if (strcmp(name, "zero") == 0)
        return MIG_WORKLOAD_FILL_ZERO;
    if (strcmp(name, "random") == 0)
        return MIG_WORKLOAD_FILL_RANDOM;
    return -1;
}

/* A page's key is a hash of seed, block, page and generation, in that
 * order: block_key is its part that every page of a block shares, taken
 * once per block by the loops over pages (fill, verify). */
static uint64_t block_key(uint64_t seed, uint32_t block)
{
    uint64_t k = mig_mix64(seed ^ 0x6a09e667f3bcc909ull);
    return mig_mix64(k ^ ((uint64_t)block * 0x9e3779b97f4a7c15ull));
}

static uint64_t page_key(uint64_t bkey, uint64_t page, uint32_t gen)
{
    uint64_t k = mig_mix64(bkey ^ (page * 0xbf58476d1ce4e5b9ull));
    k = mig_mix64(k ^ ((uint64_t)gen * 0x94d049bb133111ebull));
    return k != MIG_RAM_KEY_ZERO ? k : 1; /* key 0 is the zero page's */
}

/* A page at generation gen is zero (see workload.h), or else the keyed page
 * (impl/ram/ram.h) of its key: word i holds key + i * MIG_RAM_KEY_STEP, the
 * key (64 bits of hash of seed, block, page and generation) in every word,
 * so a stale page or another page's content differs in every word.  Cheap
 * on purpose: one add per word, vectorised. */

static bool page_is_zero(MigWorkloadFill fill, uint32_t gen, uint64_t key)
{
    /* Generation 0 of a zero-filled guest, and one write in 16, are zero
     * pages: zero-page detection runs mid-migration too. */
    return (gen == 0 && fill == MIG_WORKLOAD_FILL_ZERO) || (gen > 0 && (key & 15) == 0);
}

void mig_workload_page(uint64_t seed, MigWorkloadFill fill, uint32_t block, uint64_t page,
                       uint32_t gen, void *out)
{
    uint64_t key = page_key(block_key(seed, block), page, gen);
    if (page_is_zero(fill, gen, key))
        memset(out, 0, MIG_RAM_PAGE_SIZE);
    else
        mig_ram_key_page(key, out);
}

/* True when page p of b holds exactly mig_workload_page(...) for these
 * arguments: a keyed page by its key (which says all of its content), any
 * other in place (no page is generated). */
static bool page_matches(uint64_t bkey, MigWorkloadFill fill, const MigRamBlock *b, uint64_t page,
                         uint32_t gen)
{
    uint64_t key = page_key(bkey, page, gen), have;
    bool zero = page_is_zero(fill, gen, key);
    if (mig_ram_page_key(b, page, &have))
        return have == (zero ? MIG_RAM_KEY_ZERO : key);
    const uint8_t *host = b->host + page * MIG_RAM_PAGE_SIZE;
    return zero ? mig_ram_page_is_zero(host) : mig_ram_key_matches(key, host);
}

/* The guest writes generation gen of page p: with o.keyed only its key
 * (impl/ram/ram.h; MIG_RAM_KEY_ZERO for a zero page), else its bytes (a zero
 * page touches the memory only when it is not zero already). */
static void put_page(MigWorkload *w, uint64_t bkey, MigRamBlock *b, uint64_t p, uint32_t gen)
{
    uint64_t key = page_key(bkey, p, gen);
    uint8_t *host = b->host + p * MIG_RAM_PAGE_SIZE;
    bool zero = page_is_zero(w->o.fill, gen, key);
    if (w->o.keyed) {
        mig_ram_page_set_key(b, p, zero ? MIG_RAM_KEY_ZERO : key);
    } else if (zero) {
        if (!mig_ram_page_is_zero(host))
            memset(host, 0, MIG_RAM_PAGE_SIZE);
    } else {
        mig_ram_page_unkey(b, p);
        mig_ram_key_page(key, host);
    }
}

static void write_page(MigWorkload *w, uint32_t bi, uint64_t page)
{
    MigRamBlock *b = mig_ram_block(mig_machine_ram(w->m), bi);
    uint32_t g = ++w->gen[bi][page];
    put_page(w, block_key(w->o.seed, bi), b, page, g);
    mig_ram_set_dirty(b, page);
    w->writes++;
}

static void arm(MigWorkload *w);

static void tick(void *opaque)
{
    MigWorkload *w = opaque;
    w->timer = NULL;
    uint64_t now = mig_loop_now_ns(w->loop);
    uint64_t dt = now - w->last_tick_ns;
    w->last_tick_ns = now;
    /* pages = rate * dt / 1e9, the remainder carried to the next tick. */
    unsigned __int128 units = (unsigned __int128)w->o.dirty_rate * dt + w->carry;
    uint64_t pages = (uint64_t)(units / 1000000000u);
    w->carry = (uint64_t)(units % 1000000000u);
    MigRam *ram = mig_machine_ram(w->m);
    for (uint64_t i = 0; i < pages && w->total_pages; i++) {
        uint64_t p = mig_prng_below(&w->loop->prng, w->total_pages);
        uint32_t bi = 0;
        for (; bi < w->nblocks; bi++) {
            uint64_t np = mig_ram_block(ram, bi)->npages;
            if (p < np)
                break;
            p -= np;
        }
        write_page(w, bi, p);
    }
    arm(w);
}

static void arm(MigWorkload *w)
{
    if (w->timer || !w->o.dirty_rate || !mig_machine_running(w->m))
        return;
    w->timer = mig_loop_timer_add(w->loop, mig_loop_now_ns(w->loop) + w->o.tick_ns, tick, w);
}

static void run_changed(void *opaque, bool running)
{
    MigWorkload *w = opaque;
    if (running) {
        w->last_tick_ns = mig_loop_now_ns(w->loop);
        arm(w);
    } else {
        mig_loop_remove(w->loop, w->timer);
        w->timer = NULL;
    }
}

static const MigGuestOps guest_ops = {.run_changed = run_changed};

MigWorkload *mig_workload_new(MigMachine *m, const MigWorkloadOptions *o, MigErr **errp)
{
    if ((unsigned)o->fill >= MIG_WORKLOAD_FILL__COUNT) {
        mig_err_set(errp, -EINVAL, "workload: bad fill %d", (int)o->fill);
        return NULL;
    }
    MigWorkload *w = mig_malloc0(sizeof(*w));
    w->m = m;
    w->loop = mig_machine_loop(m);
    w->o = *o;
    if (!w->o.tick_ns)
        w->o.tick_ns = DEFAULT_TICK_NS;
    MigRam *ram = mig_machine_ram(m);
    w->nblocks = mig_ram_block_count(ram);
    w->gen = mig_malloc0((w->nblocks ? w->nblocks : 1) * sizeof(*w->gen));
    for (size_t bi = 0; bi < w->nblocks; bi++) {
        MigRamBlock *b = mig_ram_block(ram, bi);
        w->gen[bi] = mig_malloc0(b->npages * sizeof(uint32_t));
        w->total_pages += b->npages;
        /* Back the guest with transparent huge pages, as `migcert vm` and
         * QEMU do: filling 64 MiB then takes 32 page faults, not 16384.
         * Advice only: where THP is off the fill just costs more. */
        madvise(b->host, b->length, MADV_HUGEPAGE);
        if (o->fill == MIG_WORKLOAD_FILL_RANDOM || o->keyed) {
            uint64_t bkey = block_key(o->seed, (uint32_t)bi);
            for (uint64_t p = 0; p < b->npages; p++)
                put_page(w, bkey, b, p, 0);
        } else {
            memset(b->host, 0, b->length);
        }
    }
    w->last_tick_ns = mig_loop_now_ns(w->loop);
    mig_machine_set_guest(m, &guest_ops, w);
    arm(w);
    return w;
}

void mig_workload_free(MigWorkload *w)
{
    if (!w)
        return;
    mig_loop_remove(w->loop, w->timer);
    mig_machine_set_guest(w->m, NULL, NULL);
    for (size_t i = 0; i < w->nblocks; i++)
        free(w->gen[i]);
    free(w->gen);
    free(w);
}

void mig_workload_set_rate(MigWorkload *w, uint64_t pages_per_s)
{
    w->o.dirty_rate = pages_per_s;
    if (!pages_per_s) {
        mig_loop_remove(w->loop, w->timer);
        w->timer = NULL;
    } else {
        arm(w);
    }
}

uint64_t mig_workload_writes(const MigWorkload *w)
{
    return w->writes;
}

uint32_t mig_workload_generation(const MigWorkload *w, uint32_t block, uint64_t page)
{
    return block < w->nblocks ? w->gen[block][page] : 0;
}

int mig_workload_verify(const MigWorkload *w, MigRam *ram, MigErr **errp)
{
    if (mig_ram_block_count(ram) != w->nblocks)
        return mig_err_set(errp, -EINVAL, "memory: %zu blocks on the destination, %zu expected",
                           mig_ram_block_count(ram), w->nblocks);
    uint64_t bad = 0;
    char first[400] = "";
    for (size_t bi = 0; bi < w->nblocks; bi++) {
        MigRamBlock *b = mig_ram_block(ram, bi);
        const MigRamBlock *own = mig_ram_block(mig_machine_ram(w->m), bi);
        if (b->npages != own->npages)
            return mig_err_set(errp, -EINVAL,
                               "memory: block %s has %llu pages on the destination, %llu "
                               "expected", b->idstr, (unsigned long long)b->npages,
                               (unsigned long long)own->npages);
        uint64_t bkey = block_key(w->o.seed, (uint32_t)bi);
        for (uint64_t p = 0; p < b->npages; p++) {
            if (page_matches(bkey, w->o.fill, b, p, w->gen[bi][p]))
                continue;
            if (!bad++)
                snprintf(first, sizeof(first), "block %s page %llu (generation %u)", b->idstr,
                         (unsigned long long)p, w->gen[bi][p]);
        }
    }
    if (bad)
        return mig_err_set(errp, -EIO, "memory: %llu bad pages, first at %s",
                           (unsigned long long)bad, first);
    return 0;
}
