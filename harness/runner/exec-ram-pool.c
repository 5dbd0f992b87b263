/*
 * exec-ram-pool.c - guest RAM mappings kept from one case to the next, so a
 * source machine's RAM does not cost the kernel a fresh zeroed page for
 * every page the workload is about to overwrite anyway.
 *
 * Owns: ExecRamPool (exec.h): a few page-aligned anonymous mappings, each
 * with its length, held between cases by whoever runs them (`migcert run`,
 * sim-bench); a case reaches it through RunCase.ram_pool (NULL: no pool).
 * Called by: exec-case.c (exec__ram_pool_take, before the workload fills
 * the source) and exec-side.c (exec__ram_pool_give, before a machine is
 * freed).
 *
 * Why this keeps a run deterministic: a pooled mapping goes only under a
 * source machine's private RAM blocks, and only just before
 * mig_workload_new writes every byte of every block (a random fill writes
 * every page, a zero fill memsets every block); nothing reads the RAM in
 * between, so the stale bytes of the case that used the mapping before are
 * never seen.  A destination always keeps the fresh, zeroed RAM the engine
 * mapped (a destination's RAM reads zero until it loads).  Shared-memory
 * blocks (a memfd behind them) are never pooled.
 *
 * Mechanics, no byte copied: give moves the block's pages to a new address
 * with mremap(MREMAP_DONTUNMAP), which leaves the block's own range mapped
 * and empty for the engine's munmap; take unmaps the fresh, untouched block
 * range and moves a pooled mapping onto its address (MREMAP_FIXED).  The
 * transparent-huge-page advice moves with the mapping.  Where the kernel
 * lacks MREMAP_DONTUNMAP (before 5.7) or a tool refuses it, give does
 * nothing and the case just costs what it did without a pool.
 *
 * Invariants: the pool's table is the caller's (no heap block allocated
 * during a case); the bytes it holds are counted (exec_ram_pool_held) and
 * the resource oracle takes them off, so a case still fails when it leaves
 * a mapping of its own behind.
 */
#include <string.h>
#include <sys/mman.h>

#include "exec-internal.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define HUGE_ALIGN ((uintptr_t)2 << 20)

uint64_t exec_ram_pool_held(const ExecRamPool *p)
{
    uint64_t n = 0;
    for (size_t i = 0; p && i < EXEC_RAM_POOL_SLOTS; i++)
        if (p->slot[i].host)
            n += p->slot[i].length;
    return n;
}

void exec_ram_pool_clear(ExecRamPool *p)
{
    for (size_t i = 0; p && i < EXEC_RAM_POOL_SLOTS; i++) {
        if (p->slot[i].host)
            munmap(p->slot[i].host, p->slot[i].length);
        p->slot[i].host = NULL;
        p->slot[i].length = 0;
    }
}

void exec__ram_pool_take(ExecRamPool *p, MigMachine *m)
{
    MigRam *ram = mig_machine_ram(m);
    for (size_t bi = 0; p && bi < mig_ram_block_count(ram); bi++) {
        MigRamBlock *b = mig_ram_block(ram, bi);
        if (b->fd >= 0 || b->share_map)
            continue;
        if ((uintptr_t)b->host % HUGE_ALIGN)
            continue;
        for (size_t i = 0; i < EXEC_RAM_POOL_SLOTS; i++) {
            if (!p->slot[i].host || p->slot[i].length != b->length)
                continue;
            /* the block's range is untouched: unmap it and move the pooled
             * pages onto the same address (the engine keeps its pointer) */
            if (munmap(b->host, b->length) != 0)
                break;
            void *q = mremap(p->slot[i].host, b->length, b->length,
                             MREMAP_MAYMOVE | MREMAP_FIXED, b->host);
            if (q == MAP_FAILED) {
                /* put a fresh mapping back where the block was */
                q = mmap(b->host, b->length, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
                if (q != MAP_FAILED)
                    madvise(b->host, b->length, MADV_HUGEPAGE);
                break; /* the pool entry stays; a bad one is freed with the pool */
            }
            p->slot[i].host = NULL;
            p->slot[i].length = 0;
            break;
        }
    }
}

/* The address of a free 2 MiB aligned range of len bytes (reserved, to be
 * unmapped and replaced), or NULL. */
static void *aligned_range(uint64_t len)
{
    uint8_t *m = mmap(NULL, len + HUGE_ALIGN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uint8_t *at = (uint8_t *)(((uintptr_t)m + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1));
    if (at > m)
        munmap(m, (size_t)(at - m));
    if (at + len < m + len + HUGE_ALIGN)
        munmap(at + len, (size_t)(m + len + HUGE_ALIGN - (at + len)));
    return at;
}

void exec__ram_pool_give(ExecRamPool *p, MigMachine *m)
{
    MigRam *ram = mig_machine_ram(m);
    for (size_t bi = 0; p && bi < mig_ram_block_count(ram); bi++) {
        MigRamBlock *b = mig_ram_block(ram, bi);
        if (b->fd >= 0 || b->share_map)
            continue;
        /* one mapping per length is all the next source takes: keep no
         * more (a run of 16, 32 and 64 MiB guests holds 112 MiB) */
        size_t i = 0, same = 0;
        for (size_t j = 0; j < EXEC_RAM_POOL_SLOTS; j++)
            same += p->slot[j].host && p->slot[j].length == b->length;
        while (i < EXEC_RAM_POOL_SLOTS && p->slot[i].host)
            i++;
        if (same)
            continue;
        if (i == EXEC_RAM_POOL_SLOTS)
            return;
        /* Huge pages move as whole page-table entries only between 2 MiB
         * aligned addresses; elsewhere the kernel splits them, and the next
         * fill would cost more than the pool saves. */
        if ((uintptr_t)b->host % HUGE_ALIGN || b->length % HUGE_ALIGN)
            continue;
        void *at = aligned_range(b->length);
        if (!at)
            return;
        /* freed first, so the move maps it afresh (and the byte count of
         * heap-count.h stays exact); nothing maps in between */
        munmap(at, b->length);
        void *q = mremap(b->host, b->length, b->length,
                         MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, at);
        if (q == MAP_FAILED)
            return;
        p->slot[i].host = q;
        p->slot[i].length = b->length;
    }
}
