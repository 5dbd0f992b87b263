/*
 * ram-internal.h - MigRam's fields, shared by ram.c (blocks) and
 * ram-section.c (the "ram" savevm handler).  Not for other modules.
 */
#ifndef MIGCERT_RAM_INTERNAL_H
#define MIGCERT_RAM_INTERNAL_H

#include "ram.h"
#include "stream/ram-format.h"

struct MigRam {
    MigRamBlock **blocks;
    size_t nblocks, blocks_cap;
    MigCapMask caps;

    /* source */
    bool saving;
    bool completing;          /* save_complete has done its final sync */
    int last_sent;            /* block of the previous record, -1 none (statistics) */
    MigRamWriter writer;      /* CONTINUE across sections */
    size_t cur_block;         /* pass position */
    uint64_t cur_page;
    uint64_t bmap_dirty;      /* bits set in every bmap */
    uint64_t dirty_sync_count;
    uint64_t last_sync_dirtied; /* log bits folded in by the last sync */

    /* source and destination counters */
    uint64_t transferred;
    uint64_t duplicate;
    uint64_t normal;
    uint64_t precopy_bytes;
    uint64_t downtime_bytes;

    /* destination */
    bool loading;
    MigRamReader reader; /* current block across sections, block table */
    int *load_map;       /* reader block index -> our block index */

    /* x-page-flip (docs/protocol-qemu-stream.md, page flipping): on from
     * the capability at save_setup / load_setup until cleanup. */
    bool flip;
    bool flip_ready; /* destination: the page channel was accepted */
};

int mig__ram_find_index(const MigRam *r, const char *idstr);

#endif
