/*
 * ram-section.c - the "ram" savevm handler: pre-copy passes on the source,
 * restartable record loading on the destination (see ram.h).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/buf.h"
#include "ram-internal.h"
#include "stream/ram-format.h"

/* ------------------------------------------------------------- source */

/* RAM address of a block's first byte: where it starts in the
 * concatenation of the MEM_SIZE block list (QEMU's ram_addr_t). */
uint64_t mig__ram_block_base(const MigRam *r, size_t bi)
{
    uint64_t base = 0;
    for (size_t i = 0; i < bi; i++)
        base += r->blocks[i]->length;
    return base;
}

/* x-page-flip: an 8-byte HOOK record with the page's RAM address, then the
 * page through the stream's page channel (mig_ram_put_hook_page): where the
 * transport has one (the local transport's pipe) the stream itself carries
 * 8 bytes, while its pending bytes, the budget and the rate limit count the
 * page as in a plain stream.  Returns the bytes the record stands for. */
static size_t put_flipped(MigRam *r, MigStream *s, size_t bi, uint64_t page, const uint8_t *host)
{
    uint64_t addr = mig__ram_block_base(r, bi) + page * MIG_RAM_PAGE_SIZE;
    mig_ram_put_hook_page(s, addr, host);
    uint64_t own = mig_stream_has_page_channel(s) ? 8 : 8 + MIG_RAM_PAGE_SIZE;
    r->normal++;
    r->transferred += own;
    if (r->completing)
        r->downtime_bytes += own;
    else
        r->precopy_bytes += own;
    return 8 + MIG_RAM_PAGE_SIZE;
}

static size_t put_record(MigRam *r, MigStream *s, size_t bi, uint64_t page)
{
    if (mig_fault_fire_gated(mig_stream_fault_gate(s), MIG_FAULT_RAM_OMIT_PAGE))
        return 0; /* stream damage: the page is taken as sent, nothing is written */
    MigRamBlock *b = r->blocks[bi];
    const uint8_t *host = b->host + page * MIG_RAM_PAGE_SIZE;
    size_t n;
    /* A keyed page (ram.h) goes out by reference to its untouched memory
     * where the transport carries keys (it reads the key at write time, as
     * a socket would read the bytes); everything else needs its bytes. */
    uint64_t key;
    bool keyed = mig_ram_page_key(b, page, &key);
    if (keyed && (r->flip || !mig_stream_carries_keys(s))) {
        host = mig_ram_page_host(b, page);
        keyed = false;
    }
    bool zero = keyed ? key == MIG_RAM_KEY_ZERO : mig_ram_page_is_zero(host);
    if (!zero && r->flip)
        return put_flipped(r, s, bi, page, host);
    if (zero) {
        mig_ram_put_zero(s, &r->writer, b->idstr, page * MIG_RAM_PAGE_SIZE, 0);
        n = 9;
        r->duplicate++;
    } else {
        mig_ram_put_page(s, &r->writer, b->idstr, page * MIG_RAM_PAGE_SIZE, host);
        n = 8 + MIG_RAM_PAGE_SIZE;
        r->normal++;
    }
    if (r->last_sent != (int)bi)
        n += 1 + strlen(b->idstr);
    r->last_sent = (int)bi;
    r->transferred += n;
    if (r->completing)
        r->downtime_bytes += n;
    else
        r->precopy_bytes += n;
    return n;
}

#define RAM_PREFETCH 8 /* pages ahead of the one sent */

/* Send dirty pages from the pass position until `budget` bytes went out or
 * the pass reached the end of RAM.  Returns true at the end of the pass. */
static bool send_dirty(MigRam *r, MigStream *s, size_t budget)
{
    size_t sent = 0;
    while (r->cur_block < r->nblocks) {
        MigRamBlock *b = r->blocks[r->cur_block];
        size_t nw = b->bmap ? (size_t)((b->npages + 63) / 64) : 0; /* none: shared */
        size_t w = (size_t)(r->cur_page / 64);
        while (w < nw) {
            uint64_t bits = b->bmap[w] & (~(uint64_t)0 << (r->cur_page & 63));
            if (!bits) {
                w++;
                r->cur_page = (uint64_t)w * 64;
                continue;
            }
            unsigned bit = (unsigned)__builtin_ctzll(bits);
            uint64_t page = (uint64_t)w * 64 + bit;
            b->bmap[w] &= ~((uint64_t)1 << bit);
            r->bmap_dirty--;
            r->cur_page = page + 1;
            /* The zero check reads a page's first line: ask for the one
             * RAM_PREFETCH pages on now, so that its miss is over by then
             * (a pass walks pages in order; a guess that misses costs
             * nothing). */
            if (page + RAM_PREFETCH < b->npages)
                __builtin_prefetch(b->host + (page + RAM_PREFETCH) * MIG_RAM_PAGE_SIZE, 0, 0);
            sent += put_record(r, s, r->cur_block, page);
            if (sent >= budget)
                return false;
        }
        r->cur_block++;
        r->cur_page = 0;
    }
    r->cur_block = 0;
    r->cur_page = 0;
    return true;
}

static void sync_log(MigRam *r)
{
    uint64_t folded = 0;
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        size_t nw = (size_t)((b->npages + 63) / 64);
        if (r->share && b->fd >= 0)
            /* x-ram-share: the destination maps these pages, none is sent,
             * and neither the log nor a bitmap is touched: both are a bit
             * per page, so walking them would make the migration's time
             * grow with RAM (log_to_send leaves the log out). */
            continue;
        for (size_t w = 0; w < nw; w++) {
            uint64_t l = b->log[w];
            if (!l)
                continue;
            folded += (uint64_t)__builtin_popcountll(l);
            r->bmap_dirty += (uint64_t)__builtin_popcountll(l & ~b->bmap[w]);
            b->bmap[w] |= l;
            b->log[w] = 0;
        }
    }
    r->last_sync_dirtied = folded;
    r->dirty_sync_count++;
}

static int ram_save_setup(void *opaque, MigStream *s, MigErr **errp)
{
    MigRam *r = opaque;
    r->saving = true;
    r->completing = false;
    r->last_sent = -1;
    r->cur_block = 0;
    r->cur_page = 0;
    r->bmap_dirty = 0;
    r->dirty_sync_count = 0;
    r->transferred = r->duplicate = r->normal = 0;
    r->precopy_bytes = r->downtime_bytes = 0;
    r->share = (r->caps & MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE)) != 0;
    if (r->share && !mig_ram_all_shared(r))
        return mig_err_set(errp, -ENOTSUP,
                           "capability 'x-ram-share' needs every RAM block in shared memory "
                           "(migcert vm --mem-share)");
    /* Shared memory moves no page: nothing is left for page flipping. */
    r->flip = (r->caps & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)) != 0 && !r->share;
    /* The first sync: every page is dirty, and dirty logging starts now.
     * Shared memory has nothing to send: no bitmap (send_dirty skips the
     * block), and its log is left alone (sync_log skips it too). */
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        size_t nw = (size_t)((b->npages + 63) / 64);
        free(b->bmap);
        b->bmap = NULL;
        if (r->share)
            continue;
        b->bmap = mig_malloc0(nw * sizeof(uint64_t));
        memset(b->log, 0, nw * sizeof(uint64_t));
        memset(b->bmap, 0xff, nw * sizeof(uint64_t));
        if (b->npages % 64)
            b->bmap[nw - 1] = ((uint64_t)1 << (b->npages % 64)) - 1;
        r->bmap_dirty += b->npages;
    }
    r->dirty_sync_count = 1;

    size_t n = mig_ram_block_count(r);
    MigRamBlockInfo *list = mig_malloc0((n ? n : 1) * sizeof(*list));
    for (size_t i = 0; i < n; i++) {
        strcpy(list[i].name, r->blocks[i]->idstr);
        list[i].length = r->blocks[i]->length;
    }
    uint64_t before = mig_stream_offset(s);
    mig_ram_writer_init(&r->writer);
    mig_ram_put_mem_size(s, &r->writer, list, n,
                         (r->caps & MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED)) != 0);
    free(list);
    if (r->share) {
        /* One HOOK record per block, its RAM address, then its memfd. */
        for (size_t i = 0; i < r->nblocks; i++) {
            mig_ram_put_hook_addr(s, mig__ram_block_base(r, i));
            mig_stream_put_fd(s, r->blocks[i]->fd);
        }
    }
    if (r->flip) {
        /* The setup hook: a HOOK record, then the byte that opens the page
         * channel (the local transport's pipe rides on it), which the
         * destination's hook accepts. */
        mig_ram_put_hook(s);
        mig_stream_put_page_channel(s);
    }
    mig_ram_put_eos(s);
    r->transferred += mig_stream_offset(s) - before;
    return mig_stream_take_error(s, errp);
}

static void ram_save_sync(void *opaque)
{
    sync_log(opaque);
}

static void ram_save_pending(void *opaque, uint64_t *precopy, uint64_t *stopcopy)
{
    MigRam *r = opaque;
    *precopy = r->bmap_dirty * MIG_RAM_PAGE_SIZE;
    *stopcopy = 0;
}

static int ram_save_iterate(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    MigRam *r = opaque;
    MIG_FAULT_RETURN_ERR(MIG_FAULT_RAM_ITERATE, errp, "ram: pre-copy step failed (injected fault)");
    bool done = send_dirty(r, s, budget);
    mig_ram_put_eos(s);
    r->transferred += 8;
    int err = mig_stream_take_error(s, errp);
    return err < 0 ? err : done ? 1 : 0;
}

static int ram_save_complete(void *opaque, MigStream *s, size_t budget, MigErr **errp)
{
    MigRam *r = opaque;
    if (!r->completing) {
        /* The guest is stopped: the last sync catches every write. */
        r->completing = true;
        sync_log(r);
        r->cur_block = 0;
        r->cur_page = 0;
    }
    bool done = send_dirty(r, s, budget);
    if (done) {
        mig_ram_put_eos(s);
        r->transferred += 8;
        r->downtime_bytes += 8;
    }
    int err = mig_stream_take_error(s, errp);
    return err < 0 ? err : done ? 1 : 0;
}

static void ram_save_cleanup(void *opaque, MigOutcome outcome)
{
    MigRam *r = opaque;
    /* Saving only read guest memory: nothing to undo but the bitmaps.  The
     * dirty log keeps running (it is the guest's, not the migration's). */
    r->saving = false;
    r->completing = false;
    r->flip = false;
    r->share = false;
    r->bmap_dirty = 0;
    for (size_t i = 0; i < r->nblocks; i++) {
        free(r->blocks[i]->bmap);
        r->blocks[i]->bmap = NULL;
    }
}

/* ------------------------------------------------------------- destination */

static int ram_load_setup(void *opaque, MigErr **errp)
{
    MigRam *r = opaque;
    r->loading = true;
    r->transferred = r->duplicate = r->normal = 0;
    mig_ram_reader_free(&r->reader);
    mig_ram_reader_init(&r->reader);
    r->reader.ignore_shared = (r->caps & MIG_CAP_BIT(MIG_CAP_X_IGNORE_SHARED)) != 0;
    r->flip = (r->caps & MIG_CAP_BIT(MIG_CAP_X_PAGE_FLIP)) != 0;
    r->flip_ready = false;
    r->share = (r->caps & MIG_CAP_BIT(MIG_CAP_X_RAM_SHARE)) != 0;
    r->share_next = 0;
    r->direct_ok = false;
    r->direct_behind = false;
    r->direct_len = 0;
    r->direct_since = r->direct_period = 0;
    free(r->load_map);
    r->load_map = NULL;
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        free(b->recv);
        /* x-ram-share: no page comes (a page record is refused), and a bit
         * per page would make the load's cost grow with RAM */
        b->recv = r->share ? NULL : mig_malloc0(((b->npages + 63) / 64) * sizeof(uint64_t));
        b->nrecv = 0;
    }
    return 0;
}

/* Page `offset` (bytes) of block b arrived. */
static inline void mark_received(MigRamBlock *b, uint64_t offset)
{
    uint64_t page = offset / MIG_RAM_PAGE_SIZE, bit = 1ull << (page % 64);
    if (b->recv && !(b->recv[page / 64] & bit)) {
        b->recv[page / 64] |= bit;
        b->nrecv++;
    }
}

/* The end of the stream: every page of every block must have arrived at
 * least once (QEMU 7.2 would run the guest on whatever memory it had).
 * With x-ignore-shared the source leaves shared blocks out, and the
 * stream does not say which: nothing to check then.  With x-ram-share no
 * page travels: every block's fd came instead, and the shared memory takes
 * the place of our own (ram-share.c). */
static int ram_load_complete(void *opaque, MigErr **errp)
{
    MigRam *r = opaque;
    if (r->share)
        return mig__ram_share_adopt(r, errp);
    if (r->reader.ignore_shared)
        return 0;
    for (size_t i = 0; i < r->nblocks; i++) {
        const MigRamBlock *b = r->blocks[i];
        if (!b->recv || b->nrecv == b->npages)
            continue;
        uint64_t first = 0;
        while (first < b->npages && (b->recv[first / 64] & (1ull << (first % 64))))
            first++;
        return mig_err_set(errp, -EPROTO,
                           "RAM incomplete: ramblock \"%s\": %llu of its %llu pages never "
                           "arrived (the first at 0x%llx)",
                           b->idstr, (unsigned long long)(b->npages - b->nrecv),
                           (unsigned long long)b->npages,
                           (unsigned long long)(first * MIG_RAM_PAGE_SIZE));
    }
    return 0;
}

/* Map the block list of a MEM_SIZE record onto our blocks. */
static int accept_mem_size(MigRam *r, const MigRamRecord *rec, MigErr **errp)
{
    const MigRamReader *rd = &r->reader;
    int *map = mig_malloc0((rd->nblocks ? rd->nblocks : 1) * sizeof(int));
    for (size_t i = 0; i < rd->nblocks; i++) {
        const MigRamBlockInfo *bi = &rd->blocks[i];
        int idx = mig__ram_find_index(r, bi->name);
        if (idx < 0) {
            free(map);
            return mig_err_set(errp, -EINVAL,
                               "Unknown ramblock \"%s\", cannot accept migration (offset %llu)",
                               bi->name, (unsigned long long)rec->stream_offset);
        }
        if (r->blocks[idx]->length != bi->length) {
            free(map);
            return mig_err_set(errp, -EINVAL,
                               "ramblock \"%s\": length 0x%llx in the stream differs from the "
                               "local 0x%llx, and blocks are not resizable (offset %llu)",
                               bi->name, (unsigned long long)bi->length,
                               (unsigned long long)r->blocks[idx]->length,
                               (unsigned long long)rec->stream_offset);
        }
        map[i] = idx;
    }
    free(r->load_map);
    r->load_map = map;
    return 0;
}

/* The record that makes up nearly all of a pre-copy stream, PAGE|CONTINUE
 * inside the current block, loaded without the general decoder: one 8-byte
 * view, one 4096-byte view, one copy (a quarter of the decoder's
 * instructions per page).  Returns 1 when it loaded such a record, 0 when the
 * record is anything else or cannot be judged here (the stream is back at
 * the record's start: let mig_ram_get_record decide, with its checks and
 * messages), -EAGAIN when starved (rewound), or the stream's sticky error.
 * Accepts exactly what the decoder accepts for this record: a current block
 * (CONTINUE) mapped by MEM_SIZE, and an offset inside it. */
static int load_page_in_place(MigStream *s, MigRamBlock *b, uint64_t offset, uint64_t hdr,
                              MigErr **errp);

static int load_continue_page(MigRam *r, MigStream *s, MigErr **errp)
{
    const MigRamReader *rd = &r->reader;
    if (rd->cur < 0 || !r->load_map || r->share)
        return 0;
    const uint8_t *p = mig_stream_get_view(s, 8);
    if (!p) {
        if (mig_stream_starved(s)) {
            mig_stream_rewind(s);
            return -EAGAIN;
        }
        return mig_stream_take_error(s, errp);
    }
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    v = __builtin_bswap64(v);
    uint64_t offset = v & ~(uint64_t)MIG_RAM_FLAGS_MASK;
    if ((v & MIG_RAM_FLAGS_MASK) != (MIG_RAM_FLAG_PAGE | MIG_RAM_FLAG_CONTINUE) ||
        offset >= rd->blocks[rd->cur].length) {
        mig_stream_rewind(s);
        return 0;
    }
    MigRamBlock *b = r->blocks[r->load_map[rd->cur]];
    if (mig_stream_carries_keys(s) && !mig_stream_buffered(s) && mig_stream_can_read_direct(s)) {
        int ret = load_page_in_place(s, b, offset, v, errp);
        if (ret <= 0)
            return ret;
    } else {
        const uint8_t *page = mig_stream_get_view(s, MIG_RAM_PAGE_SIZE);
        if (!page) {
            if (mig_stream_starved(s)) {
                mig_stream_rewind(s);
                return -EAGAIN;
            }
            return mig_stream_take_error(s, errp);
        }
        mig_ram_page_unkey(b, offset / MIG_RAM_PAGE_SIZE);
        memcpy(b->host + offset, page, MIG_RAM_PAGE_SIZE);
    }
    mark_received(b, offset);
    r->normal++;
    r->transferred += 8 + MIG_RAM_PAGE_SIZE;
    r->direct_since++;
    r->direct_next = offset + MIG_RAM_PAGE_SIZE;
    r->direct_ok = true;
    return 1;
}

#define REC (8 + MIG_RAM_PAGE_SIZE) /* a PAGE record: header and data */
#define DIRECT_RUN 256              /* records one direct read may take (1 MiB) */
#define RAM_READ_AHEAD (16 * 1024)  /* what the stream buffer may take beyond a get */
/* What follows the last record of a source's step: the RAM section's EOS
 * (8), the section footer (1 + 4), the next step's PART header (1 + 4) and
 * that step's first record header (8).  A run that ends where the step
 * probably ends reads these into the stream buffer with its last page, so
 * the general decoder finds them there and the next run starts from a
 * buffered header: no read of its own and no page through the buffer. */
#define STEP_END_AHEAD (8 + 5 + 5 + 8)

/* Zero without a look: a fresh destination's private page this load has
 * not written (mig_ram_set_fresh). */
static bool still_fresh(const MigRam *r, const MigRamBlock *b, uint64_t p)
{
    return r->fresh && b->fd < 0 && b->recv && !(b->recv[p / 64] & (1ull << (p % 64)));
}

/* Is page `off` (bytes) of b free for a guess: not a key, and either not
 * received yet in this load or zero bytes?  A page this load has not
 * written yet holds nothing anyone keeps: a completed load writes every
 * page (the completeness rule, ram_load_complete) and a failed one zeroes
 * them all (ram_load_cleanup), so a wrong guess there needs no undo beyond
 * the zeroing load_direct_run does, and no page is read to learn it is
 * free (a zero check per page cost the destination a second pass over
 * guest RAM).  Without the completeness rule (x-ignore-shared) only zero
 * pages are free. */
static bool page_free(const MigRam *r, const MigRamBlock *b, uint64_t off)
{
    uint64_t key, pg = off / MIG_RAM_PAGE_SIZE;
    if (mig_ram_page_key(b, pg, &key))
        return false;
    if (still_fresh(r, b, pg) ||
        (!r->reader.ignore_shared && b->recv && !(b->recv[pg / 64] & (1ull << (pg % 64)))))
        return true;
    return mig_ram_page_is_zero(b->host + off);
}

/* Make page p of b zero, touching its memory only when needed: a key where
 * the stream carries keys (ram.h), nothing where it is still fresh, else
 * bytes unless they read zero.  Before the page is marked received. */
static void zero_page(MigRam *r, MigStream *s, MigRamBlock *b, uint64_t p)
{
    uint64_t key;
    if (mig_stream_carries_keys(s)) {
        mig_ram_page_set_key(b, p, MIG_RAM_KEY_ZERO);
        return;
    }
    if (still_fresh(r, b, p))
        return;
    uint8_t *host = b->host + p * MIG_RAM_PAGE_SIZE;
    if (mig_ram_page_key(b, p, &key) || !mig_ram_page_is_zero(host)) {
        mig_ram_page_unkey(b, p);
        memset(host, 0, MIG_RAM_PAGE_SIZE);
    }
}

/* The load over a stream that carries keys starts: every page of our
 * private memory is the zero page by key, which is what a destination holds
 * before its load (a machine waiting for its incoming migration never ran),
 * so no page is read to learn that it is zero.  Unobservable otherwise: a
 * completed load wrote every page (the completeness rule; not with
 * x-ignore-shared, which is left out), a failed one zeroes them all. */
static void key_zero_all(MigRam *r)
{
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        if (b->fd >= 0)
            continue;
        for (uint64_t p = 0; p < b->npages; p++)
            mig_ram_page_set_key(b, p, MIG_RAM_KEY_ZERO);
    }
}

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return __builtin_bswap64(v);
}

/* The byte `pos` of a direct run's layout (hdr[0], page 0, hdr[1], page 1,
 * ...): where it lives and how many bytes from there are contiguous. */
static uint8_t *run_byte(uint8_t (*hdr)[8], uint8_t *page0, size_t pos, size_t *room)
{
    size_t j = pos / REC, in = pos % REC;
    if (in < 8) {
        *room = 8 - in;
        return hdr[j] + in;
    }
    *room = REC - in;
    return page0 + j * MIG_RAM_PAGE_SIZE + (in - 8);
}

/* The page of a PAGE record whose header (be64 `hdr`) was just consumed,
 * read straight into place at `offset` of b, on a stream that carries keys
 * (it reads no further than asked, so nothing is buffered): the transport
 * gives a keyed page to b as its key.  1 when the page is in place; 0 when
 * only part of it came (header and part back in the stream, for the
 * general decoder); -EAGAIN (starved: rewind, nothing changed); or the
 * stream's error. */
static int load_page_in_place(MigStream *s, MigRamBlock *b, uint64_t offset, uint64_t hdr,
                              MigErr **errp)
{
    uint64_t pg = offset / MIG_RAM_PAGE_SIZE, old = 0;
    bool had = mig_ram_page_key(b, pg, &old);
    mig_ram_page_unkey(b, pg); /* bytes or a key come */
    struct iovec iov = {b->host + offset, MIG_RAM_PAGE_SIZE};
    /* the next record's header comes with it: one read per page */
    ssize_t n = mig_stream_readv_direct_ahead(s, &iov, 1, 8);
    if (n == MIG_RAM_PAGE_SIZE)
        return 1;
    if (n > 0) {
        /* The record is not whole yet: give it back, the page taken so far
         * too (never a key: keys come whole).  The page's old content is
         * gone, but this record overwrites it before the load completes. */
        uint8_t back[8 + MIG_RAM_PAGE_SIZE];
        uint64_t be = __builtin_bswap64(hdr);
        memcpy(back, &be, 8);
        memcpy(back + 8, b->host + offset, (size_t)n);
        mig_stream_unget(s, back, 8 + (size_t)n);
        return mig_stream_error(s) ? mig_stream_take_error(s, errp) : 0;
    }
    if (had)
        mig_ram_page_set_key(b, pg, old);
    if (n == -EAGAIN) {
        mig_stream_rewind(s);
        return -EAGAIN;
    }
    if (n == 0) {
        mig_stream_rewind(s); /* the general decoder reports the truncation */
        return 0;
    }
    return mig_stream_take_error(s, errp);
}

/* Pages read straight into guest RAM, without the stream buffer's copy.
 * The stream format puts an 8-byte header before every page, so where the
 * next pages go is known only after reading them; this reads a run of the
 * most likely records (PAGE|CONTINUE for the pages that follow the last
 * one, as a pre-copy pass sends them) with one readv: headers into hdr[],
 * data into the guest pages themselves.  Only guest pages that are zero
 * right now are read into this way, so a guess that was wrong (another
 * record came) is undone by zeroing them; the bytes of every record not
 * taken go back to the stream (mig_stream_unget) for the general decoder.
 * Starts when the stream buffer holds nothing or the start of one PAGE
 * record (its header whole).  Returns the records it loaded (0: nothing, the
 * stream as it was), -EAGAIN (starved: rewind), or the stream's error. */
static int load_direct_run(MigRam *r, MigStream *s, MigErr **errp)
{
    const MigRamReader *rd = &r->reader;
    /* (A stream that carries keys reads each page in place after its header
     * instead: load_continue_page.) */
    if (rd->cur < 0 || !r->load_map || r->share || !mig_stream_can_read_direct(s) ||
        mig_stream_carries_keys(s))
        return 0;
    /* a whole PAGE|CONTINUE header buffered starts a run whatever came
     * before it (a step's end); nothing buffered, only after pages */
    size_t b = mig_stream_buffered(s);
    if (b >= REC || (b > 0 && b < 8) || (!b && !r->direct_ok))
        return 0;
    MigRamBlock *blk = r->blocks[r->load_map[rd->cur]];
    uint64_t len = rd->blocks[rd->cur].length, off0 = r->direct_next;
    const uint64_t page_cont = MIG_RAM_FLAG_PAGE | MIG_RAM_FLAG_CONTINUE;
    if (b) {
        uint64_t v = be64_at(mig_stream_peek_buffered(s, 8));
        if ((v & MIG_RAM_FLAGS_MASK) != page_cont || (v & ~(uint64_t)MIG_RAM_FLAGS_MASK) >= len)
            return 0;
        off0 = v & ~(uint64_t)MIG_RAM_FLAGS_MASK;
    }
    uint8_t *page0 = blk->host + off0;
    uint8_t hdr[DIRECT_RUN][8];
    size_t k = 0;
    /* slot 0 with its header buffered is a record, not a guess */
    size_t want = MIG_MAX(r->direct_len, (size_t)2);
    /* Where the transport says what has arrived, read the records that are
     * whole: a read that ends inside a record gives the record back
     * (copied) and zeroes its page again, which would cost a page of
     * copying per read.  Behind the source (the last run got all it asked
     * for) there is no need to ask. */
    ssize_t ready = r->direct_behind ? -ENOTSUP : mig_stream_readable(s);
    bool exact = ready >= 0 && b + (size_t)ready >= REC;
    if (exact)
        want = MIG_MIN((b + (size_t)ready) / REC, (size_t)DIRECT_RUN);
    else if (r->direct_behind && r->direct_period > r->direct_since)
        want = MIG_MIN(MIG_MAX(want, r->direct_period - r->direct_since), (size_t)DIRECT_RUN);
    /* and no further than where the source's step probably ends, with
     * what follows that page read into the stream buffer (STEP_END_AHEAD);
     * at that page itself, no guess */
    bool step_end = false;
    if (r->direct_period >= r->direct_since && r->direct_period - r->direct_since <= want) {
        if (r->direct_period > r->direct_since) {
            want = r->direct_period - r->direct_since;
            exact = step_end = true;
        } else if (!b) {
            /* the step has probably ended: its EOS comes, not a page (a
             * guess would read a page's worth and give it back) */
            r->direct_ok = false;
            return 0;
        } /* else a page header where the step was to end: read on */
    }
    while (k < want && off0 + k * MIG_RAM_PAGE_SIZE < len &&
           ((k == 0 && b) || page_free(r, blk, off0 + k * MIG_RAM_PAGE_SIZE)))
        k++;
    if (k == 0 || (k == 1 && !b && !exact)) {
        r->direct_ok = false;
        return 0;
    }
    uint64_t pg0 = off0 / MIG_RAM_PAGE_SIZE;
    if (b) {
        const uint8_t *p = mig_stream_get_view(s, b); /* buffered: never starves */
        memcpy(hdr[0], p, 8);
        mig_ram_page_unkey(blk, off0 / MIG_RAM_PAGE_SIZE);
        memcpy(page0, p + 8, b - 8);
    }
    struct iovec iov[2 * DIRECT_RUN];
    int nv = 0;
    for (size_t pos = b; pos < k * REC;) {
        size_t room;
        iov[nv].iov_base = run_byte(hdr, page0, pos, &room);
        iov[nv++].iov_len = room;
        pos += room;
    }
    /* at the step's end, what follows it into the stream buffer */
    size_t ahead = step_end && k == want ? STEP_END_AHEAD : 0;
    ssize_t n = mig_stream_readv_direct_ahead(s, iov, nv, ahead);
    if (n < 0 && n != -EAGAIN)
        return mig_stream_take_error(s, errp);
    size_t total = b + (n > 0 ? (size_t)n : 0), a = 0;
    while (a < k && total >= (a + 1) * REC &&
           be64_at(hdr[a]) == ((off0 + a * MIG_RAM_PAGE_SIZE) | page_cont))
        a++;
    if (total > a * REC) {
        /* Give back what was not taken; undo the guesses it landed in. */
        size_t back = total - a * REC, w = 0;
        MIG_GROW(r->direct_back, r->direct_back_cap, back, REC);
        for (size_t pos = a * REC; pos < total;) {
            size_t room;
            const uint8_t *from = run_byte(hdr, page0, pos, &room);
            room = MIG_MIN(room, total - pos);
            memcpy(r->direct_back + w, from, room);
            w += room;
            pos += room;
        }
        for (size_t j = a; j < k && j * REC + 8 < total; j++)
            if (j > 0 || !b) /* a guess: bytes landed in this free page (no key) */
                memset(blk->host + (pg0 + j) * MIG_RAM_PAGE_SIZE, 0, MIG_RAM_PAGE_SIZE);
        mig_stream_unget(s, r->direct_back, back);
    }
    for (size_t j = 0; j < a; j++)
        mark_received(blk, off0 + j * MIG_RAM_PAGE_SIZE);
    r->normal += a;
    r->transferred += a * REC;
    r->direct_since += a;
    r->direct_next = off0 + a * MIG_RAM_PAGE_SIZE;
    /* The next run: twice as long after a full one (the sender keeps up),
     * or what this one got (zero checks are not spent on pages that come
     * later). */
    r->direct_len = total == k * REC ? MIG_MIN(2 * k, (size_t)DIRECT_RUN) : a + 1;
    r->direct_behind = total == k * REC;
    /* Go on guessing unless a whole header said otherwise (what is only
     * cut short is read on the next call). */
    r->direct_ok = a == k || total < a * REC + 8 ||
                   be64_at(hdr[a]) == ((off0 + a * MIG_RAM_PAGE_SIZE) | page_cont);
    if (mig_stream_error(s))
        return mig_stream_take_error(s, errp);
    if (n == -EAGAIN)
        return -EAGAIN; /* nothing taken: b < REC and nothing read */
    return (int)a;
}

/* Where the page at RAM address addr goes (page aligned, inside a block of
 * the block list), or NULL; *bp and *offp say which block and where in it. */
static uint8_t *flip_target(const MigRam *r, uint64_t addr, MigRamBlock **bp, uint64_t *offp)
{
    const MigRamReader *rd = &r->reader;
    if (addr % MIG_RAM_PAGE_SIZE)
        return NULL;
    uint64_t base = 0;
    for (size_t i = 0; i < rd->nblocks; i++) {
        if (addr < base + rd->blocks[i].length) {
            *bp = r->blocks[r->load_map[i]];
            *offp = addr - base;
            return (*bp)->host + *offp;
        }
        base += rd->blocks[i].length;
    }
    return NULL;
}

/* Pages read from the pipe with one call: a quarter of the 1 MiB pipe.  A
 * read frees its pages of the pipe and wakes the source, which refills them
 * while this side copies the next quarter; reading the whole pipe at once
 * made the two sides take turns (1 GiB, pinned, quiet: 186-234 ms with 256,
 * 107-125 ms with 64, 133-140 ms with 16).  When both sides share a CPU,
 * each read's wake-up would let the source preempt us: it runs SCHED_BATCH
 * (batch_begin in impl/transport/transport-local.c). */
#define FLIP_RUN 64

/* A page HOOK record was read and its page goes to `host`: take the page
 * HOOK records right behind it that the stream already holds (good ones
 * only: anything else is left to the general decoder), and read the whole
 * run from the page channel straight into guest RAM. */
static int load_flip_run(MigRam *r, MigStream *s, uint8_t *host, MigRamBlock *b,
                         uint64_t off, unsigned long long at, MigErr **errp)
{
    struct iovec iov[FLIP_RUN];
    MigRamBlock *blk[FLIP_RUN];
    uint64_t offs[FLIP_RUN];
    int n = 0;
    blk[n] = b;
    offs[n] = off;
    mig_ram_page_unkey(b, off / MIG_RAM_PAGE_SIZE);
    iov[n].iov_base = host;
    iov[n++].iov_len = MIG_RAM_PAGE_SIZE;
    while (n < FLIP_RUN) {
        const uint8_t *p = mig_stream_peek_buffered(s, 8);
        if (!p)
            break;
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        v = __builtin_bswap64(v);
        if ((v & MIG_RAM_FLAGS_MASK) != MIG_RAM_FLAG_HOOK)
            break;
        uint8_t *next = flip_target(r, v & ~(uint64_t)MIG_RAM_FLAGS_MASK, &blk[n], &offs[n]);
        if (!next)
            break;
        mig_stream_skip(s, 8);
        mig_ram_page_unkey(blk[n], offs[n] / MIG_RAM_PAGE_SIZE);
        iov[n].iov_base = next;
        iov[n++].iov_len = MIG_RAM_PAGE_SIZE;
    }
    int ret = mig_stream_get_pagev(s, iov, n, errp);
    if (ret < 0) {
        mig_err_prepend(errp, "a run of %d page HOOK records from offset %llu", n, at);
        return ret;
    }
    for (int i = 0; i < n; i++)
        mark_received(blk[i], offs[i]);
    r->normal += (uint64_t)n;
    r->transferred += 8 * (uint64_t)(n - 1);
    return 0;
}

/* The load hook of x-page-flip.  The first HOOK record is followed by the
 * byte that opens the stream's page channel; every later one holds the RAM
 * address of a page whose data the channel holds (or, on a stream without
 * one, that follows the record inline).  Without the capability there is
 * no hook, and a HOOK record fails the load as it does in QEMU 7.2.  Returns
 * 0, -EAGAIN (starved before the marker byte: rewind), or an error. */
static int load_hook(MigRam *r, MigStream *s, const MigRamRecord *rec, MigErr **errp)
{
    unsigned long long at = (unsigned long long)rec->stream_offset;
    if (!r->flip)
        return mig_err_set(errp, -EINVAL,
                           "RAM hook record (flag 0x80) at offset %llu but capability "
                           "'x-page-flip' is not enabled on this destination, so no load hook "
                           "is registered",
                           at);
    if (!r->flip_ready) {
        if (rec->offset != 0)
            return mig_err_set(errp, -EINVAL,
                               "page-flip: HOOK record for address 0x%llx at offset %llu before "
                               "the pipe was passed",
                               (unsigned long long)rec->offset, at);
        int ret = mig_stream_get_page_channel(s, errp);
        if (ret == -EAGAIN)
            return ret;
        if (ret < 0) {
            mig_err_prepend(errp, "setup HOOK record at offset %llu", at);
            return ret;
        }
        r->flip_ready = true;
        r->transferred += 1;
        return 0;
    }
    const MigRamReader *rd = &r->reader;
    if (!r->load_map)
        return mig_err_set(errp, -EINVAL, "page-flip: page HOOK record before the block list "
                                          "(offset %llu)",
                           at);
    if (mig_stream_has_page_channel(s)) {
        MigRamBlock *b;
        uint64_t off;
        uint8_t *host = flip_target(r, rec->offset, &b, &off);
        if (host)
            return load_flip_run(r, s, host, b, off, at, errp);
    }
    uint64_t base = 0;
    for (size_t i = 0; i < rd->nblocks; i++) {
        if (rec->offset < base + rd->blocks[i].length) {
            MigRamBlock *b = r->blocks[r->load_map[i]];
            mig_ram_page_unkey(b, (rec->offset - base) / MIG_RAM_PAGE_SIZE);
            int ret = mig_stream_get_page(s, b->host + (rec->offset - base), MIG_RAM_PAGE_SIZE,
                                          errp);
            if (ret == -EAGAIN)
                return ret;
            if (ret < 0) {
                mig_err_prepend(errp, "page HOOK record for ramblock \"%s\" offset 0x%llx at "
                                      "offset %llu",
                                b->idstr, (unsigned long long)(rec->offset - base), at);
                return ret;
            }
            mark_received(b, rec->offset - base);
            r->normal++;
            if (!mig_stream_has_page_channel(s))
                r->transferred += MIG_RAM_PAGE_SIZE;
            return 0;
        }
        base += rd->blocks[i].length;
    }
    return mig_err_set(errp, -EINVAL,
                       "page-flip: HOOK record for RAM address 0x%llx at offset %llu is past "
                       "the end of RAM (0x%llx bytes)",
                       (unsigned long long)rec->offset, at, (unsigned long long)base);
}

static int ram_load_state(void *opaque, MigStream *s, const MigSectionHeader *h, MigErr **errp)
{
    MigRam *r = opaque;
    if (h->version_id != MIG_RAM_SECTION_VERSION)
        return mig_err_set(errp, -EINVAL, "savevm: unsupported version %u for 'ram' v%u",
                           h->version_id, MIG_RAM_SECTION_VERSION);
    /* Page runs are read straight into guest RAM; what the stream buffer
     * takes beyond the next record (at each step's EOS and section header)
     * would be copied out of it page by page instead. */
    if (!r->share && mig_stream_can_read_direct(s) && !mig_stream_carries_keys(s))
        mig_stream_set_read_ahead(s, RAM_READ_AHEAD);
    for (;;) {
        mig_stream_mark(s);
        int direct = load_direct_run(r, s, errp);
        if (direct > 0)
            continue;
        if (direct == -EAGAIN) {
            mig_stream_rewind(s);
            return -EAGAIN;
        }
        if (direct < 0)
            return direct;
        int fast = load_continue_page(r, s, errp);
        if (fast == 1)
            continue;
        if (fast < 0)
            return fast;
        r->direct_ok = false;
        if (r->direct_since)
            r->direct_period = r->direct_since;
        r->direct_since = 0;
        uint64_t before = mig_stream_offset(s);
        MigRamRecord rec;
        int ret = mig_ram_get_record(s, &r->reader, &rec, errp);
        if (ret == -EAGAIN) {
            mig_stream_rewind(s);
            return -EAGAIN;
        }
        if (ret < 0)
            return ret;
        r->transferred += mig_stream_offset(s) - before;
        switch (rec.kind) {
        case MIG_RAM_FLAG_MEM_SIZE:
            ret = accept_mem_size(r, &rec, errp);
            if (ret < 0)
                return ret;
            if (mig_stream_carries_keys(s) && !r->share && !r->reader.ignore_shared)
                key_zero_all(r);
            break;
        case MIG_RAM_FLAG_PAGE:
        case MIG_RAM_FLAG_ZERO: {
            if (!r->load_map || rec.block < 0)
                return mig_err_set(errp, -EINVAL, "RAM page before the block list (offset %llu)",
                                   (unsigned long long)rec.stream_offset);
            if (r->share)
                return mig__ram_share_page_refused(r, &rec, errp);
            MigRamBlock *b = r->blocks[r->load_map[rec.block]];
            uint8_t *host = b->host + rec.offset;
            uint64_t pg = rec.offset / MIG_RAM_PAGE_SIZE;
            if (rec.kind == MIG_RAM_FLAG_ZERO && !rec.fill)
                zero_page(r, s, b, pg); /* before it counts as received */
            mark_received(b, rec.offset);
            if (rec.kind == MIG_RAM_FLAG_PAGE) {
                mig_ram_page_unkey(b, pg);
                memcpy(host, rec.data, MIG_RAM_PAGE_SIZE);
                r->normal++;
            } else if (!rec.fill) {
                r->duplicate++;
            } else {
                mig_ram_page_unkey(b, pg);
                memset(host, rec.fill, MIG_RAM_PAGE_SIZE);
                r->duplicate++;
            }
            break;
        }
        case MIG_RAM_FLAG_EOS:
            if (r->share && r->load_map && r->share_next < r->reader.nblocks)
                return mig__ram_share_missing(r, rec.stream_offset, errp);
            return 0;
        case MIG_RAM_FLAG_HOOK:
            if (r->share && r->share_next < r->reader.nblocks)
                ret = mig__ram_share_hook(r, s, &rec, errp);
            else
                ret = load_hook(r, s, &rec, errp);
            if (ret == -EAGAIN) {
                mig_stream_rewind(s);
                r->transferred -= 8; /* counted again when the record is re-read */
                return -EAGAIN;
            }
            if (ret < 0)
                return ret;
            break;
        default:
            return mig_err_set(errp, -EINVAL,
                               "Unknown combination of migration flags: 0x%x (offset %llu)",
                               rec.flags, (unsigned long long)rec.stream_offset);
        }
    }
}

static void ram_load_cleanup(void *opaque, MigOutcome outcome)
{
    MigRam *r = opaque;
    mig__ram_share_cleanup(r, outcome == MIG_OUTCOME_COMPLETED);
    r->loading = false;
    r->fresh = false; /* the machine may run from now on */
    r->flip = false;
    r->flip_ready = false;
    r->share = false;
    mig_ram_reader_free(&r->reader);
    mig_ram_reader_init(&r->reader);
    free(r->load_map);
    r->load_map = NULL;
    for (size_t i = 0; i < r->nblocks; i++) {
        free(r->blocks[i]->recv);
        r->blocks[i]->recv = NULL;
    }
    if (outcome == MIG_OUTCOME_COMPLETED)
        return;
    /* Keep nothing of what was loaded: anonymous memory reads as zero again. */
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        /* Shared memory keeps its content through MADV_DONTNEED: punch it. */
        if (b->fd >= 0 ? fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                                   (off_t)b->length) != 0
                       : madvise(b->host, b->length, MADV_DONTNEED) != 0)
            memset(b->host, 0, b->length);
        if (b->keyed) /* and no page keeps a key either */
            memset(b->keyed, 0, ((b->npages + 63) / 64) * sizeof(uint64_t));
    }
}

static const MigIterOps ram_ops = {
    .save_setup = ram_save_setup,
    .save_sync = ram_save_sync,
    .save_pending = ram_save_pending,
    .save_iterate = ram_save_iterate,
    .save_complete = ram_save_complete,
    .save_cleanup = ram_save_cleanup,
    .load_setup = ram_load_setup,
    .load_state = ram_load_state,
    .load_complete = ram_load_complete,
    .load_cleanup = ram_load_cleanup,
};

int mig_ram_register(MigRam *r, MigSavevm *sv, MigErr **errp)
{
    int id = mig_savevm_register_iterative(sv, "ram", 0, MIG_RAM_SECTION_VERSION, &ram_ops, r,
                                           errp);
    return id < 0 ? id : 0;
}
