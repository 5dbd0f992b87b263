/*
 * ram-internal.h - MigRam's fields, shared by ram.c (blocks) and
 * ram-section.c (the "ram" savevm handler).  Not for other modules.
 */
#ifndef MIGCERT_RAM_INTERNAL_H
#define MIGCERT_RAM_INTERNAL_H

#include "ram.h"

struct MigRam {
    MigRamBlock **blocks;
    size_t nblocks;
    MigCapMask caps;

    /* source */
    bool saving;
    bool completing;          /* save_complete has done its final sync */
    int last_sent;            /* block of the previous record (CONTINUE), -1 none */
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
    bool load_sized; /* the MEM_SIZE record was accepted */
    int load_cur;    /* block of the previous record, -1 none */
};

int mig__ram_find_index(const MigRam *r, const char *idstr);
uint64_t mig__ram_last_sync_dirtied(const MigRam *r);

#endif
