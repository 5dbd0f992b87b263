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
    bool fresh; /* mig_ram_set_fresh: private pages the load did not write read zero */
    MigRamReader reader; /* current block across sections, block table */
    int *load_map;       /* reader block index -> our block index */
    /* Direct reads of page runs (ram-section.c, load_direct_run): the
     * offset in the current block the next PAGE|CONTINUE record probably
     * has, whether to try, and the bytes a run gives back. */
    uint64_t direct_next;
    bool direct_ok;
    size_t direct_len; /* records the next run asks for */
    /* The last run got every byte it asked for: the destination is behind
     * its source, so the next one reads without asking the transport what
     * has arrived (FIONREAD, a syscall per run, would say "enough"). */
    bool direct_behind;
    /* PAGE|CONTINUE records loaded in a row since the last other record,
     * and that count when the last other record came: a source ends each
     * pre-copy step after about as many records (its budget), so a run
     * that would cross where the next step's EOS and section header
     * probably are stops there instead of reading them into guest pages
     * and giving a whole run back. */
    size_t direct_since, direct_period;
    uint8_t *direct_back;
    size_t direct_back_cap;

    /* x-page-flip (docs/protocol-qemu-stream.md, page flipping): on from
     * the capability at save_setup / load_setup until cleanup. */
    bool flip;
    bool flip_ready; /* destination: the page channel was accepted */

    /* x-ram-share: blocks added from now on are memfds; the capability is
     * in force (save_setup / load_setup until cleanup); destination: the
     * share records taken so far (index into the reader's block list). */
    bool share_new;
    bool share;
    size_t share_next;
    bool share_adopted; /* destination: load_complete put the shared memory in place */
};

int mig__ram_find_index(const MigRam *r, const char *idstr);
/* RAM address of our block bi's first byte (the MEM_SIZE concatenation). */
uint64_t mig__ram_block_base(const MigRam *r, size_t bi);

/* x-ram-share on the destination (ram-share.c).  share_hook: the HOOK record
 * of reader block r->share_next and its fd (0, -EAGAIN starved before the
 * fd's byte, or an error naming the block); page_refused: the error for a
 * PAGE/ZERO record; missing: the error for a payload that ended at `at`
 * before every fd came; adopt: load_complete (every fd came; our blocks now
 * the shared memory, at the same address, writable); cleanup: drop what a
 * failed load took (our own memory back in place) or keep the fds of a
 * completed one (the blocks are now shared memory). */
int mig__ram_share_hook(MigRam *r, MigStream *s, const MigRamRecord *rec, MigErr **errp);
int mig__ram_share_page_refused(MigRam *r, const MigRamRecord *rec, MigErr **errp);
int mig__ram_share_missing(MigRam *r, uint64_t at, MigErr **errp);
int mig__ram_share_adopt(MigRam *r, MigErr **errp);
void mig__ram_share_cleanup(MigRam *r, bool completed);

#endif
