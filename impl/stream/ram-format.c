/*
 * ram-format.c - RAM record decoder and encoders (see ram-format.h).
 */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "ram-format.h"

/* A block name from the wire, escaped for a message (one per statement). */
#define ESC(name) mig_stream_escape((name), strlen(name), esc, sizeof(esc))

void mig_ram_reader_init(MigRamReader *r)
{
    memset(r, 0, sizeof(*r));
    r->cur = -1;
}

void mig_ram_reader_free(MigRamReader *r)
{
    free(r->blocks);
    r->blocks = NULL;
    r->nblocks = 0;
    r->cur = -1;
}

static long find_in(const MigRamBlockInfo *b, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(b[i].name, name) == 0)
            return (long)i;
    return -1;
}

long mig_ram_reader_find(const MigRamReader *r, const char *name)
{
    return find_in(r->blocks, r->nblocks, name);
}

/* MEM_SIZE: blocks until their lengths add up to the announced total. */
static int get_mem_size(MigStream *s, MigRamReader *r, MigRamRecord *x, MigErr **errp)
{
    char esc[MIG_STREAM_ESCAPED_MAX];
    MigRamBlockInfo *tab = NULL;
    size_t n = 0, cap = 0;
    uint64_t sum = 0;
    int ret = 0;
    while (sum < x->offset) {
        uint64_t at = mig_stream_offset(s);
        if (n == MIG_RAM_MAX_BLOCKS) {
            ret = mig_stream_fail(s, errp, -EINVAL, at, "RAM block list has more than %u blocks",
                                  MIG_RAM_MAX_BLOCKS);
            goto out_free;
        }
        MIG_GROW(tab, cap, n + 1, 8);
        MigRamBlockInfo *b = &tab[n];
        memset(b, 0, sizeof(*b));
        mig_stream_get_counted(s, b->name);
        b->length = mig_stream_get_be64(s);
        if (r->ignore_shared)
            b->mr_addr = mig_stream_get_be64(s);
        if ((ret = mig_stream_result(s, errp)))
            goto out_free;
        if (find_in(tab, n, b->name) >= 0) {
            ret = mig_stream_fail(s, errp, -EINVAL, at,
                                  "RAM block list names ramblock \"%s\" twice", ESC(b->name));
            goto out_free;
        }
        if (b->length > x->offset - sum) {
            ret = mig_stream_fail(s, errp, -EINVAL, at,
                                  "RAM block list: ramblock \"%s\" of 0x%llx bytes goes past the "
                                  "announced total 0x%llx",
                                  ESC(b->name), (unsigned long long)b->length,
                                  (unsigned long long)x->offset);
            goto out_free;
        }
        sum += b->length;
        n++;
    }
    free(r->blocks);
    r->blocks = tab;
    r->nblocks = n;
    r->total = x->offset;
    r->cur = -1;
    return 0;

out_free:
    free(tab);
    return ret;
}

int mig_ram_get_record(MigStream *s, MigRamReader *r, MigRamRecord *rec, MigErr **errp)
{
    char esc[MIG_STREAM_ESCAPED_MAX];
    MigRamRecord x;
    memset(&x, 0, sizeof(x));
    x.block = -1;
    x.stream_offset = mig_stream_offset(s);
    uint64_t v = mig_stream_get_be64(s);
    int ret = mig_stream_result(s, errp);
    if (ret)
        return ret;
    x.flags = (uint32_t)(v & MIG_RAM_FLAGS_MASK);
    x.offset = v & ~(uint64_t)MIG_RAM_FLAGS_MASK;
    x.kind = x.flags & ~MIG_RAM_FLAG_CONTINUE;
    uint64_t at = x.stream_offset;

    switch (x.kind) {
    case MIG_RAM_FLAG_MEM_SIZE:
        if ((ret = get_mem_size(s, r, &x, errp)))
            return ret;
        break;
    case MIG_RAM_FLAG_EOS:
    case MIG_RAM_FLAG_MULTIFD_FLUSH:
    case MIG_RAM_FLAG_HOOK:
        break;
    case MIG_RAM_FLAG_ZERO:
    case MIG_RAM_FLAG_PAGE:
    case MIG_RAM_FLAG_XBZRLE:
    case MIG_RAM_FLAG_COMPRESS: {
        long idx;
        if (x.flags & MIG_RAM_FLAG_CONTINUE) {
            if (r->cur < 0)
                return mig_stream_fail(s, errp, -EINVAL, at, "CONTINUE with no previous block");
            idx = r->cur;
        } else {
            char name[256];
            mig_stream_get_counted(s, name);
            if ((ret = mig_stream_result(s, errp)))
                return ret;
            idx = mig_ram_reader_find(r, name);
            if (idx < 0)
                return mig_stream_fail(s, errp, -EINVAL, at,
                                       "Unknown ramblock \"%s\", cannot accept migration",
                                       ESC(name));
        }
        const MigRamBlockInfo *b = &r->blocks[idx];
        if (x.offset >= b->length)
            return mig_stream_fail(s, errp, -EINVAL, at,
                                   "Illegal RAM offset 0x%llx in ramblock \"%s\" of 0x%llx bytes",
                                   (unsigned long long)x.offset, ESC(b->name),
                                   (unsigned long long)b->length);
        x.block = idx;
        x.block_name = b->name;
        if (x.kind == MIG_RAM_FLAG_ZERO) {
            x.fill = mig_stream_get_u8(s);
        } else if (x.kind == MIG_RAM_FLAG_PAGE) {
            x.len = MIG_RAM_TARGET_PAGE_SIZE;
            x.data = mig_stream_get_view(s, x.len);
        } else if (x.kind == MIG_RAM_FLAG_XBZRLE) {
            uint8_t enc = mig_stream_get_u8(s);
            uint16_t len = mig_stream_get_be16(s);
            if ((ret = mig_stream_result(s, errp)))
                return ret;
            if (enc != MIG_RAM_XBZRLE_ENCODING)
                return mig_stream_fail(s, errp, -EINVAL, at,
                                       "Failed to load XBZRLE page - wrong compression 0x%x", enc);
            if (len > MIG_RAM_TARGET_PAGE_SIZE)
                return mig_stream_fail(s, errp, -EINVAL, at,
                                       "Failed to load XBZRLE page - len overflow %u", len);
            x.len = len;
            x.data = mig_stream_get_view(s, x.len);
        } else {
            uint32_t len = mig_stream_get_be32(s);
            if ((ret = mig_stream_result(s, errp)))
                return ret;
            if (len > MIG_RAM_COMPRESS_MAX)
                return mig_stream_fail(s, errp, -EINVAL, at, "Invalid compressed data length: %u",
                                       len);
            x.len = len;
            x.data = mig_stream_get_view(s, x.len);
        }
        if ((ret = mig_stream_result(s, errp)))
            return ret;
        r->cur = idx;
        break;
    }
    default:
        return mig_stream_fail(s, errp, -EINVAL, at, "Unknown combination of migration flags: 0x%x",
                               x.flags);
    }
    *rec = x;
    return 0;
}

/* ---------------------------------------------------------------- encoders */

void mig_ram_writer_init(MigRamWriter *w)
{
    w->last[0] = '\0';
}

void mig_ram_put_mem_size(MigStream *s, MigRamWriter *w, const MigRamBlockInfo *blocks,
                          size_t n, bool ignore_shared)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += blocks[i].length;
    if (total & MIG_RAM_FLAGS_MASK) {
        mig_stream_set_error(s, -EINVAL, "RAM total 0x%llx is not a multiple of the page size",
                             (unsigned long long)total);
        return;
    }
    mig_stream_put_be64(s, total | MIG_RAM_FLAG_MEM_SIZE);
    for (size_t i = 0; i < n; i++) {
        mig_stream_put_counted(s, blocks[i].name);
        mig_stream_put_be64(s, blocks[i].length);
        if (ignore_shared)
            mig_stream_put_be64(s, blocks[i].mr_addr);
    }
    mig_ram_writer_init(w);
}

/* The be64 and, unless CONTINUE applies, the block id. */
static bool put_page_head(MigStream *s, MigRamWriter *w, const char *block, uint64_t offset,
                          uint32_t flag)
{
    if (offset & MIG_RAM_FLAGS_MASK) {
        mig_stream_set_error(s, -EINVAL, "RAM record offset 0x%llx is not page aligned",
                             (unsigned long long)offset);
        return false;
    }
    if (w->last[0] && strcmp(w->last, block) == 0) {
        mig_stream_put_be64(s, offset | flag | MIG_RAM_FLAG_CONTINUE);
        return true;
    }
    size_t len = strlen(block);
    if (len == 0 || len >= sizeof(w->last)) {
        mig_stream_set_error(s, -EINVAL, "ramblock name of %zu bytes cannot be sent", len);
        return false;
    }
    mig_stream_put_be64(s, offset | flag);
    mig_stream_put_counted(s, block);
    memcpy(w->last, block, len + 1);
    return true;
}

void mig_ram_put_page(MigStream *s, MigRamWriter *w, const char *block, uint64_t offset,
                      const void *page)
{
    if (put_page_head(s, w, block, offset, MIG_RAM_FLAG_PAGE))
        mig_stream_put_guest_ref(s, page, MIG_RAM_TARGET_PAGE_SIZE);
}

void mig_ram_put_zero(MigStream *s, MigRamWriter *w, const char *block, uint64_t offset,
                      uint8_t fill)
{
    if (put_page_head(s, w, block, offset, MIG_RAM_FLAG_ZERO))
        mig_stream_put_u8(s, fill);
}

void mig_ram_put_eos(MigStream *s)
{
    mig_stream_put_be64(s, MIG_RAM_FLAG_EOS);
}

void mig_ram_put_hook(MigStream *s)
{
    mig_stream_put_be64(s, MIG_RAM_FLAG_HOOK);
}

void mig_ram_put_hook_addr(MigStream *s, uint64_t ram_addr)
{
    mig_stream_put_be64(s, ram_addr | MIG_RAM_FLAG_HOOK);
}

void mig_ram_put_hook_page(MigStream *s, uint64_t ram_addr, const void *page)
{
    uint64_t record = mig_stream_offset(s);
    mig_stream_put_be64(s, ram_addr | MIG_RAM_FLAG_HOOK);
    mig_stream_put_page_ref(s, page, MIG_RAM_TARGET_PAGE_SIZE, record);
}
