/*
 * ram.h - guest RAM: named blocks, the dirty log, pre-copy passes, zero pages,
 * and the "ram" savevm handler (QEMU's "ram" section, instance 0, version 4;
 * docs/protocol-qemu-stream.md, RAM records).
 *
 * Owns: MigRam, an ordered list of MigRamBlocks.  Each block has its host
 * memory (page aligned, zero when created), a dirty log the guest sets
 * (mig_ram_set_dirty) and, while migrating, a migration bitmap.
 * Called by: impl/machine (creates blocks, registers the handler),
 * fakes/workload (writes pages and sets dirty bits), impl/migration
 * (capabilities, statistics).  Layer: above savevm and stream, below
 * migration; it knows capabilities as bits (common/caps.h) and nothing of
 * the engine, which reads its statistics as a MigRamInfo defined here.
 *
 * Pre-copy: save_setup marks every page dirty in the migration bitmap and
 * writes MEM_SIZE + block list + EOS.  save_iterate walks the bitmap by block
 * then page offset (data order, not a scheduling choice), sending each dirty
 * page as ZERO (all-zero page) or PAGE (by reference: zero-copy), until a
 * byte budget; the pass ends at the last page.  save_sync folds the dirty log
 * into the bitmap (one "dirty sync").  save_complete sends what is left with
 * the guest stopped.  Every payload ends with EOS.  The current block (and
 * hence CONTINUE) carries over from one section to the next, as in QEMU.
 *
 * Destination: load_state parses records one at a time (restartable), reads
 * page data straight into guest memory, and on failure/cancel zeroes every
 * block (the destination keeps nothing it loaded).
 *
 * Invariants: no global state; page size is 4096 (x86 TARGET_PAGE_SIZE);
 * block lengths are multiples of it.
 */
#ifndef MIGCERT_RAM_H
#define MIGCERT_RAM_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/caps.h"
#include "../common/common.h"
#include "../savevm/savevm.h"

#define MIG_RAM_PAGE_SIZE 4096u
#define MIG_RAM_PAGE_SHIFT 12
#define MIG_RAM_SECTION_VERSION 4u

typedef struct MigRam MigRam;

typedef struct MigRamBlock {
    char idstr[256];
    uint64_t length; /* bytes */
    uint64_t npages;
    uint8_t *host; /* page aligned, `length` bytes */
    /* Shared memory (mig_ram_share_memory, x-ram-share): the memfd behind
     * host, mapped MAP_SHARED; -1 for private (anonymous) memory. */
    int fd;
    /* Destination of x-ram-share: the source's memfd and its read-only
     * mapping, held apart from host until the load completes (NULL, -1
     * otherwise). */
    uint8_t *share_map;
    int share_fd;
    /* Dirty log: one bit per page, set by the guest, cleared by a sync. */
    uint64_t *log;
    /* Migration bitmap: pages still to send in this pass. */
    uint64_t *bmap;
    /* Destination: pages that arrived (a page, zero or hook record), one
     * bit per page, from load_setup; a load completes only when every bit
     * is set (docs/protocol-qemu-stream.md, the completeness rule). */
    uint64_t *recv;
    uint64_t nrecv; /* bits set in recv */
    /* Keyed pages (below): one bit per page whose content is its key's
     * (the bytes at host are then meaningless), and the keys; NULL until
     * the first key is set. */
    uint64_t *keyed;
    uint64_t *keys;
} MigRamBlock;

MigRam *mig_ram_new(void);
void mig_ram_free(MigRam *r);

/* Blocks added from now on live in shared memory: a memfd each (named after
 * the block), mapped MAP_SHARED, which x-ram-share hands to a destination
 * on the same host instead of copying it (`migcert vm --mem-share`). */
void mig_ram_share_memory(MigRam *r, bool on);
/* Is every block shared memory (and there is at least one)? */
bool mig_ram_all_shared(const MigRam *r);

/* A destination that never ran (a machine waiting for its incoming
 * migration): every private page reads zero until a load writes it, so a
 * load learns that a page it has not written is zero without reading it
 * (reading untouched memory makes the kernel allocate and clear it, a huge
 * page at a time).  Cleared when a load ends, whatever its outcome (a
 * failed load zeroes its pages again, but the machine may run after it). */
void mig_ram_set_fresh(MigRam *r, bool fresh);

/* Add a block of `length` bytes (multiple of 4096, > 0); returns its index or
 * a negative errno (-EEXIST duplicate name, -EINVAL bad length or name,
 * -EBUSY while migrating, -ENOMEM). */
int mig_ram_add_block(MigRam *r, const char *idstr, uint64_t length, MigErr **errp);
size_t mig_ram_block_count(const MigRam *r);
MigRamBlock *mig_ram_block(MigRam *r, size_t i);
MigRamBlock *mig_ram_find_block(MigRam *r, const char *idstr);
/* Sum of block lengths (the MEM_SIZE value). */
uint64_t mig_ram_total(const MigRam *r);

/* The guest wrote page `page` of block b. */
static inline void mig_ram_set_dirty(MigRamBlock *b, uint64_t page)
{
    b->log[page >> 6] |= (uint64_t)1 << (page & 63);
}
/* Number of pages set in the dirty log (not yet synced). */
uint64_t mig_ram_dirty_log_count(const MigRam *r);

/* ---- keyed pages (the simulator; docs/determinism.md, section 7) ----
 * A keyed page's content is a pure function of a 64-bit key: key 0 is the
 * zero page; for any other key word i (native byte order) holds
 * key + i * MIG_RAM_KEY_STEP.  The step is odd, so no two words are equal
 * and such a page is never all-zero; the key sits in every word, so another
 * key's page differs in every word.
 * mig_ram_page_set_key writes such a page (the guest: fakes/workload); in
 * private memory it only records the key, and the page's bytes are made the
 * first time something asks for them (mig_ram_page_host), so RAM that no
 * one reads byte by byte is never touched.  A transport that carries keys
 * (MigTransport.keyed_ram: the simulator's link) sends a keyed page as its
 * key and gives it to the destination's RAM with mig_ram_page_set_key; every
 * other reader sees the bytes.  Invariant: whoever clears a page's key
 * writes all of its 4096 bytes. */
#define MIG_RAM_KEY_STEP 0x9e3779b97f4a7c15ull
#define MIG_RAM_KEY_ZERO 0 /* the key of the zero page */
/* The 4096 bytes of the keyed page of `key` into out (any alignment). */
void mig_ram_key_page(uint64_t key, void *out);
/* Bytes [from, from+len) of that page (from + len <= 4096). */
void mig_ram_key_bytes(uint64_t key, size_t from, size_t len, void *out);
/* Does `page` hold exactly the keyed page of `key`? (Compared in place.) */
bool mig_ram_key_matches(uint64_t key, const void *page);
/* The guest wrote the keyed page of `key` at page p of b (shared memory gets
 * the bytes at once: a peer maps it).  Does not set the dirty bit. */
void mig_ram_page_set_key(MigRamBlock *b, uint64_t p, uint64_t key);
/* Is page p of b keyed?  Its key into *key when it is. */
static inline bool mig_ram_page_key(const MigRamBlock *b, uint64_t p, uint64_t *key)
{
    if (!b->keyed || !(b->keyed[p >> 6] & ((uint64_t)1 << (p & 63))))
        return false;
    *key = b->keys[p];
    return true;
}
/* Page p's bytes in place (a keyed page is written out and forgets its key):
 * what any code that reads or writes guest memory byte by byte uses. */
uint8_t *mig_ram_page_host(MigRamBlock *b, uint64_t p);
/* The caller is about to write all 4096 bytes of page p: forget its key. */
void mig_ram_page_unkey(MigRamBlock *b, uint64_t p);
/* Which block and page does host address `addr` fall in (block order; NULL
 * when none)?  *page and *in (offset in the page) are set when found. */
MigRamBlock *mig_ram_find_host(MigRam *r, const void *addr, uint64_t *page, size_t *in);

/* All 4096 bytes zero?  A word scan that stops at the first non-zero word. */
bool mig_ram_page_is_zero(const void *page);

/* Hex SHA-256 over every block's memory in block order (x-query-ram-digest;
 * keyed pages count as their bytes). */
void mig_ram_digest(const MigRam *r, char out[65]);

/* Register the "ram" iterative handler (instance 0, version 4) in sv. */
int mig_ram_register(MigRam *r, MigSavevm *sv, MigErr **errp);
/* Capabilities that change the RAM format, set by the engine before
 * save_setup and before load_setup:
 *   x-ignore-shared adds mr_addr to the block list;
 *   x-page-flip (docs/protocol-qemu-stream.md, page flipping): source:
 *     save_setup writes a HOOK record (address 0) and opens the stream's
 *     page channel (mig_stream_put_page_channel: one marker byte, which the
 *     "local" transport makes carry its pipe), and every non-zero page
 *     becomes an 8-byte HOOK record holding its RAM address (the offset in
 *     the MEM_SIZE block list's concatenation) followed by the page put by
 *     reference (mig_stream_put_page_ref), which a transport with a page
 *     channel diverts out of band (budgets and rates still count it) and
 *     any other stream carries inline; zero pages stay ZERO records.
 *     query-migrate's ram "transferred" counts the stream's own bytes only
 *     (8 per page that went out of band).  Destination: the first HOOK
 *     accepts the page channel (mig_stream_get_page_channel), later ones
 *     read their page from it (mig_stream_get_page).  With the capability
 *     off a HOOK record fails the load, as in a QEMU 7.2 without a load
 *     hook.
 *   x-ram-share (docs/protocol-qemu-stream.md, shared memory): every block
 *     is shared memory.  Source: save_setup follows the block list with
 *     one HOOK record per block (its RAM address) and the block's memfd
 *     (mig_stream_put_fd), and no page of a shared block is ever sent
 *     (x-page-flip has nothing left to do and stays off).  Destination:
 *     right after the block list it expects those records, checks each fd
 *     (a memfd, of the block's size, not sealed against writing) and maps
 *     it read-only beside its own memory; load_complete fails when an fd
 *     never came and otherwise puts the shared memory in place of its own
 *     (same address, now writable); a failed or cancelled load drops the
 *     mapping, so the destination never writes a byte of the source's
 *     memory.  A PAGE or ZERO record fails the load. */
void mig_ram_set_caps(MigRam *r, MigCapMask caps);

/* Counters of the current or last migration: query-migrate's "ram" object.
 * The engine fills the time-based fields (mbps, rates). */
typedef struct MigRamInfo {
    uint64_t transferred;  /* bytes of RAM records sent/received */
    uint64_t remaining;    /* bytes of dirty pages still to send */
    uint64_t total;        /* bytes of guest RAM */
    uint64_t duplicate;    /* zero pages */
    uint64_t normal;       /* full pages */
    uint64_t normal_bytes; /* normal * page_size */
    uint64_t dirty_pages_rate;
    double mbps; /* megabits/s */
    uint64_t dirty_sync_count;
    uint64_t page_size;
    uint64_t pages_per_second;
    uint64_t precopy_bytes;
    uint64_t downtime_bytes;
} MigRamInfo;

void mig_ram_info(const MigRam *r, MigRamInfo *out);
/* Dirty syncs so far in the current/last migration (1 after setup). */
uint64_t mig_ram_sync_count(const MigRam *r);
/* Pages the guest dirtied that the last sync folded in (dirty-pages-rate). */
uint64_t mig_ram_last_sync_dirtied(const MigRam *r);
/* Bytes the source still has to send (dirty pages in bitmap + log, x4096). */
uint64_t mig_ram_remaining(const MigRam *r);

#endif
