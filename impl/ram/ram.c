/*
 * ram.c - guest RAM blocks, dirty log, pre-copy passes and the "ram" section
 * (see ram.h for the contract).
 *
 * Block memory comes from anonymous mmap: zero when created, and zeroed again
 * cheaply with MADV_DONTNEED when a destination discards what it loaded; or,
 * after mig_ram_share_memory, from a memfd mapped MAP_SHARED (x-ram-share).
 * The record layout itself (be64 offset|flags, CONTINUE, counted block id) is
 * impl/stream/ram-format.h's; this file decides what to send and when.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "ram.h"
#include "ram-internal.h"

/* ------------------------------------------------------------- blocks */

MigRam *mig_ram_new(void)
{
    MigRam *r = mig_malloc0(sizeof(*r));
    r->last_sent = -1;
    mig_ram_writer_init(&r->writer);
    mig_ram_reader_init(&r->reader);
    return r;
}

void mig_ram_set_fresh(MigRam *r, bool fresh)
{
    r->fresh = fresh;
}

static void block_free(MigRamBlock *b)
{
    if (!b)
        return;
    if (b->host)
        munmap(b->host, b->length);
    if (b->fd >= 0)
        close(b->fd);
    if (b->share_map)
        munmap(b->share_map, b->length);
    if (b->share_fd >= 0)
        close(b->share_fd);
    free(b->log);
    free(b->bmap);
    free(b->recv);
    free(b->keyed);
    free(b->keys);
    free(b);
}

void mig_ram_free(MigRam *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nblocks; i++)
        block_free(r->blocks[i]);
    free(r->blocks);
    mig_ram_reader_free(&r->reader);
    free(r->load_map);
    free(r->direct_back);
    free(r);
}

static size_t bitmap_words(uint64_t npages)
{
    return (size_t)((npages + 63) / 64);
}

int mig_ram_add_block(MigRam *r, const char *idstr, uint64_t length, MigErr **errp)
{
    if (r->saving || r->loading)
        return mig_err_set(errp, -EBUSY, "ram: cannot add block '%s' while migrating", idstr);
    if (!idstr || !idstr[0] || strlen(idstr) > 255)
        return mig_err_set(errp, -EINVAL, "ram: bad block name '%s'", idstr ? idstr : "");
    if (length == 0 || length % MIG_RAM_PAGE_SIZE)
        return mig_err_set(errp, -EINVAL,
                           "ram: block '%s' length 0x%llx is not a positive multiple of 4096",
                           idstr, (unsigned long long)length);
    if (mig_ram_find_block(r, idstr))
        return mig_err_set(errp, -EEXIST, "ram: block '%s' already exists", idstr);
    int fd = -1;
    void *host;
    if (r->share_new) {
        fd = memfd_create(idstr, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ftruncate(fd, (off_t)length) < 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return mig_err_set(errp, -e, "ram: cannot create %llu bytes of shared memory for "
                                         "block '%s': %s",
                               (unsigned long long)length, idstr, strerror(e));
        }
        host = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    } else {
        host = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (host == MAP_FAILED) {
        if (fd >= 0)
            close(fd);
        return mig_err_set(errp, -ENOMEM, "ram: cannot map %llu bytes for block '%s'",
                           (unsigned long long)length, idstr);
    }
    /* Guest RAM on transparent huge pages, as QEMU backs its RAM blocks: a
     * destination loading 64 MiB then takes 32 faults instead of 16384.
     * Advice only: a kernel without THP ignores it. */
    madvise(host, length, MADV_HUGEPAGE);
    MigRamBlock *b = mig_malloc0(sizeof(*b));
    strcpy(b->idstr, idstr);
    b->length = length;
    b->npages = length / MIG_RAM_PAGE_SIZE;
    b->host = host;
    b->fd = fd;
    b->share_fd = -1;
    b->log = mig_malloc0(bitmap_words(b->npages) * sizeof(uint64_t));
    MIG_GROW(r->blocks, r->blocks_cap, r->nblocks + 1, 4);
    r->blocks[r->nblocks] = b;
    return (int)r->nblocks++;
}

void mig_ram_share_memory(MigRam *r, bool on)
{
    r->share_new = on;
}

bool mig_ram_all_shared(const MigRam *r)
{
    for (size_t i = 0; i < r->nblocks; i++)
        if (r->blocks[i]->fd < 0)
            return false;
    return r->nblocks > 0;
}

size_t mig_ram_block_count(const MigRam *r)
{
    return r->nblocks;
}

MigRamBlock *mig_ram_block(MigRam *r, size_t i)
{
    return i < r->nblocks ? r->blocks[i] : NULL;
}

MigRamBlock *mig_ram_find_block(MigRam *r, const char *idstr)
{
    int i = mig__ram_find_index(r, idstr);
    return i < 0 ? NULL : r->blocks[i];
}

int mig__ram_find_index(const MigRam *r, const char *idstr)
{
    for (size_t i = 0; i < r->nblocks; i++)
        if (strcmp(r->blocks[i]->idstr, idstr) == 0)
            return (int)i;
    return -1;
}

uint64_t mig_ram_total(const MigRam *r)
{
    uint64_t t = 0;
    for (size_t i = 0; i < r->nblocks; i++)
        t += r->blocks[i]->length;
    return t;
}

static uint64_t popcount_words(const uint64_t *w, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (uint64_t)__builtin_popcountll(w[i]);
    return c;
}

uint64_t mig_ram_dirty_log_count(const MigRam *r)
{
    uint64_t c = 0;
    for (size_t i = 0; i < r->nblocks; i++)
        c += popcount_words(r->blocks[i]->log, bitmap_words(r->blocks[i]->npages));
    return c;
}

/* The dirty log pages a migration still has to send: none of a shared
 * block while x-ram-share is in force. */
static uint64_t log_to_send(const MigRam *r)
{
    uint64_t c = 0;
    for (size_t i = 0; i < r->nblocks; i++)
        if (!(r->share && r->blocks[i]->fd >= 0))
            c += popcount_words(r->blocks[i]->log, bitmap_words(r->blocks[i]->npages));
    return c;
}

bool mig_ram_page_is_zero(const void *page)
{
    /* Eight words per step; the OR chain lets the compiler vectorise and a
     * random page fails on its first block. */
    const uint64_t *w = page;
    for (size_t i = 0; i < MIG_RAM_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return false;
    }
    return true;
}

/* ------------------------------------------------------------- keyed pages */

#define KEY_WORDS (MIG_RAM_PAGE_SIZE / 8)

void mig_ram_key_page(uint64_t key, void *out)
{
    if (key == MIG_RAM_KEY_ZERO) {
        memset(out, 0, MIG_RAM_PAGE_SIZE);
        return;
    }
    /* Two words per 16-byte store (GCC/clang vector extension; memcpy for
     * any alignment of out): store-bound. */
    typedef uint64_t Pair __attribute__((vector_size(16)));
    Pair v = {key, key + MIG_RAM_KEY_STEP};
    const Pair inc = {2 * MIG_RAM_KEY_STEP, 2 * MIG_RAM_KEY_STEP};
    uint8_t *o = out;
    for (size_t i = 0; i < KEY_WORDS / 2; i++) {
        memcpy(o + 16 * i, &v, sizeof(v));
        v += inc;
    }
}

void mig_ram_key_bytes(uint64_t key, size_t from, size_t len, void *out)
{
    if (from == 0 && len == MIG_RAM_PAGE_SIZE) {
        mig_ram_key_page(key, out);
        return;
    }
    uint8_t page[MIG_RAM_PAGE_SIZE];
    mig_ram_key_page(key, page);
    memcpy(out, page + from, len);
}

bool mig_ram_key_matches(uint64_t key, const void *page)
{
    if (key == MIG_RAM_KEY_ZERO)
        return mig_ram_page_is_zero(page);
    const uint64_t *w = page;
    uint64_t diff = 0;
    for (size_t i = 0; i < KEY_WORDS; i++)
        diff |= w[i] ^ (key + i * MIG_RAM_KEY_STEP);
    return diff == 0;
}

void mig_ram_page_set_key(MigRamBlock *b, uint64_t p, uint64_t key)
{
    if (b->fd >= 0) {
        /* Shared memory: a peer may map it, so the bytes must be there. */
        mig_ram_key_page(key, b->host + p * MIG_RAM_PAGE_SIZE);
        return;
    }
    if (!b->keyed) {
        b->keyed = mig_malloc0(bitmap_words(b->npages) * sizeof(uint64_t));
        b->keys = mig_malloc0(b->npages * sizeof(uint64_t));
    }
    b->keyed[p >> 6] |= (uint64_t)1 << (p & 63);
    b->keys[p] = key;
}

void mig_ram_page_unkey(MigRamBlock *b, uint64_t p)
{
    if (b->keyed)
        b->keyed[p >> 6] &= ~((uint64_t)1 << (p & 63));
}

uint8_t *mig_ram_page_host(MigRamBlock *b, uint64_t p)
{
    uint8_t *host = b->host + p * MIG_RAM_PAGE_SIZE;
    uint64_t key;
    if (mig_ram_page_key(b, p, &key)) {
        mig_ram_key_page(key, host);
        mig_ram_page_unkey(b, p);
    }
    return host;
}

MigRamBlock *mig_ram_find_host(MigRam *r, const void *addr, uint64_t *page, size_t *in)
{
    uintptr_t a = (uintptr_t)addr;
    for (size_t i = 0; i < r->nblocks; i++) {
        MigRamBlock *b = r->blocks[i];
        uintptr_t h = (uintptr_t)b->host;
        if (a >= h && a - h < b->length) {
            *page = (a - h) / MIG_RAM_PAGE_SIZE;
            *in = (size_t)((a - h) % MIG_RAM_PAGE_SIZE);
            return b;
        }
    }
    return NULL;
}

void mig_ram_digest(const MigRam *r, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    uint8_t page[MIG_RAM_PAGE_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < r->nblocks; i++) {
        const MigRamBlock *b = r->blocks[i];
        if (!b->keyed) {
            EVP_DigestUpdate(ctx, b->host, b->length);
            continue;
        }
        for (uint64_t p = 0; p < b->npages; p++) {
            uint64_t key;
            const uint8_t *at = b->host + p * MIG_RAM_PAGE_SIZE;
            if (mig_ram_page_key(b, p, &key)) {
                mig_ram_key_page(key, page);
                at = page;
            }
            EVP_DigestUpdate(ctx, at, MIG_RAM_PAGE_SIZE);
        }
    }
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

void mig_ram_set_caps(MigRam *r, MigCapMask caps)
{
    r->caps = caps;
}

void mig_ram_info(const MigRam *r, MigRamInfo *out)
{
    memset(out, 0, sizeof(*out));
    out->transferred = r->transferred;
    out->remaining = r->saving ? mig_ram_remaining(r) : 0;
    out->total = mig_ram_total(r);
    out->duplicate = r->duplicate;
    out->normal = r->normal;
    out->normal_bytes = r->normal * MIG_RAM_PAGE_SIZE;
    out->dirty_sync_count = r->dirty_sync_count;
    out->page_size = MIG_RAM_PAGE_SIZE;
    out->precopy_bytes = r->precopy_bytes;
    out->downtime_bytes = r->downtime_bytes;
}

uint64_t mig_ram_sync_count(const MigRam *r)
{
    return r->dirty_sync_count;
}

uint64_t mig_ram_remaining(const MigRam *r)
{
    return (r->bmap_dirty + (r->saving ? log_to_send(r) : 0)) * MIG_RAM_PAGE_SIZE;
}

uint64_t mig_ram_last_sync_dirtied(const MigRam *r)
{
    return r->last_sync_dirtied;
}
