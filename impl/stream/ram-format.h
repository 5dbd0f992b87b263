/*
 * ram-format.h - the wire format of RAM section payloads: record flags, the
 * record decoder and the record encoders (docs/protocol-qemu-stream.md
 * section 7).
 *
 * Owns: only the byte layout.  What to send (dirty tracking, zero-page
 * detection, passes) belongs to impl/ram; what a record means to a guest
 * belongs to its loader.  Called by: impl/ram (sender and loader), the stream
 * analyzer (impl/stream/analyze.c), tests.
 *
 * A record starts with be64 (offset_in_block | flags); the flags use the bits
 * below the 4 KiB target page.  Records that name a page (ZERO, PAGE, XBZRLE,
 * COMPRESS) carry the block's idstr as a counted string unless CONTINUE is
 * set, meaning "same block as the previous such record".  That "previous
 * block" lives across sections (START, PARTs, END), so one MigRamWriter and
 * one MigRamReader serve a whole migration.
 *
 * Invariants: the reader changes its state (current block, block table) only
 * when a whole record was read; a starved or failed call leaves it as it was,
 * so a non-blocking loader can rewind to its mark and call again.
 */
#ifndef MIGCERT_RAM_FORMAT_H
#define MIGCERT_RAM_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "stream.h"

/* Record flags: QEMU's RAM_SAVE_FLAG_*, never renumbered.  A new record kind
 * needs a new bit below MIG_RAM_TARGET_PAGE_SIZE and a capability that both
 * sides negotiated (a 7.2 loader refuses unknown combinations). */
#define MIG_RAM_FLAG_FULL 0x01u /* obsolete since 2009, never sent; refused */
#define MIG_RAM_FLAG_ZERO 0x02u
#define MIG_RAM_FLAG_MEM_SIZE 0x04u
#define MIG_RAM_FLAG_PAGE 0x08u
#define MIG_RAM_FLAG_EOS 0x10u
#define MIG_RAM_FLAG_CONTINUE 0x20u
#define MIG_RAM_FLAG_XBZRLE 0x40u
#define MIG_RAM_FLAG_HOOK 0x80u
#define MIG_RAM_FLAG_COMPRESS 0x100u
#define MIG_RAM_FLAG_MULTIFD_FLUSH 0x200u

/* x86 TARGET_PAGE_SIZE: the unit of page records and the flag mask. */
#define MIG_RAM_TARGET_PAGE_SIZE 4096u
#define MIG_RAM_FLAGS_MASK (MIG_RAM_TARGET_PAGE_SIZE - 1)
/* XBZRLE's encoding byte, and the largest COMPRESS payload QEMU accepts
 * (zlib compressBound(4096)). */
#define MIG_RAM_XBZRLE_ENCODING 0x01u
#define MIG_RAM_COMPRESS_MAX 4110u
/* Upper bound on blocks in one MEM_SIZE list (QEMU machines have < 100). */
#define MIG_RAM_MAX_BLOCKS 4096u

typedef struct MigRamBlockInfo {
    char name[256];
    uint64_t length;  /* used_length in bytes */
    uint64_t mr_addr; /* only with x-ignore-shared */
} MigRamBlockInfo;

typedef struct MigRamReader {
    /* Option, set before the MEM_SIZE record: x-ignore-shared is on, so each
     * block of the MEM_SIZE list carries a be64 mr_addr. */
    bool ignore_shared;
    /* Block table from the last MEM_SIZE record (empty before it). */
    MigRamBlockInfo *blocks;
    size_t nblocks;
    uint64_t total; /* MEM_SIZE total */
    long cur;       /* index of the current block, -1 = none yet */
} MigRamReader;

typedef struct MigRamRecord {
    uint64_t stream_offset; /* offset of the record's be64 */
    uint32_t flags;         /* as on the wire, CONTINUE included */
    uint32_t kind;          /* one MIG_RAM_FLAG_* (CONTINUE removed) */
    uint64_t offset;        /* page offset in the block; MEM_SIZE: total */
    long block;             /* index into reader->blocks, -1 when none */
    const char *block_name; /* reader->blocks[block].name or NULL */
    uint8_t fill;           /* ZERO */
    /* PAGE (4096 bytes), XBZRLE (the delta) and COMPRESS (zlib data): a
     * pointer into the stream's buffer, valid until the next get on it. */
    const uint8_t *data;
    size_t len;
} MigRamRecord;

void mig_ram_reader_init(MigRamReader *r);
void mig_ram_reader_free(MigRamReader *r);
/* Look a block up by idstr; -1 when absent. */
long mig_ram_reader_find(const MigRamReader *r, const char *name);

/* Read one record.  Returns 0 (rec filled), -EAGAIN when the stream is
 * starved (rewind to your mark and call again later), or a negative errno
 * with *errp set and the stream's sticky error set; messages name the
 * problem and the stream offset of the record:
 *   "CONTINUE with no previous block", "Unknown ramblock \"x\"",
 *   "Illegal RAM offset 0x...", "Unknown combination of migration flags: 0x...",
 *   "RAM block list ...", "XBZRLE ...", "Invalid compressed data length ...". */
int mig_ram_get_record(MigStream *s, MigRamReader *r, MigRamRecord *rec, MigErr **errp);

/* ---- encoders ---- */
typedef struct MigRamWriter {
    char last[256]; /* block of the previous page record; "" = none */
} MigRamWriter;

void mig_ram_writer_init(MigRamWriter *w);
/* MEM_SIZE record: total of the blocks' lengths, then each block (counted
 * idstr, be64 length, + be64 mr_addr when ignore_shared).  Resets w, so the
 * next page record names its block. */
void mig_ram_put_mem_size(MigStream *s, MigRamWriter *w, const MigRamBlockInfo *blocks,
                          size_t n, bool ignore_shared);
/* PAGE record: `page` (4096 bytes of guest RAM) is queued by reference
 * (mig_stream_put_guest_ref): it must stay mapped while the stream's
 * transport lives, and what the peer reads is what it holds when the
 * kernel copies it, up to the peer's read on a unix socket that splices. */
void mig_ram_put_page(MigStream *s, MigRamWriter *w, const char *block, uint64_t offset,
                      const void *page);
/* ZERO record with its fill byte (0 in practice). */
void mig_ram_put_zero(MigStream *s, MigRamWriter *w, const char *block, uint64_t offset,
                      uint8_t fill);
/* EOS: ends every RAM section payload. */
void mig_ram_put_eos(MigStream *s);
/* HOOK: the 8-byte record (no payload) that page flipping rides on; with
 * address 0 it is page flipping's setup hook, which the caller follows with
 * the stream's page channel marker (mig_stream_put_page_channel). */
void mig_ram_put_hook(MigStream *s);
/* x-ram-share's setup record for one block: HOOK with the block's RAM
 * address (its offset in the concatenation of the MEM_SIZE block list), which
 * the caller follows with the block's memfd (mig_stream_put_fd). */
void mig_ram_put_hook_addr(MigStream *s, uint64_t ram_addr);
/* Page flipping's page record: HOOK with the page's RAM address (its offset
 * in the concatenation of the MEM_SIZE block list, page aligned), then the
 * 4096 bytes of `page` by reference through the stream's page channel
 * (mig_stream_put_page_ref): out of band, ahead of the record, where the
 * transport offers a channel; inline after the record otherwise.  `page`
 * must stay unchanged until mig_stream_flush() returns 0. */
void mig_ram_put_hook_page(MigStream *s, uint64_t ram_addr, const void *page);

#endif
