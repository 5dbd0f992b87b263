/*
 * fake-gpu.c - the fake GPU device (see fake-gpu.h).  Uses libc only: the
 * vendor sample plugins compile this file into their .so.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "devices/fake-gpu.h"

#define HDR_LEN 20u
#define REC_PAGE (1u + 4u + FAKE_GPU_PAGE)
#define REC_REGS (1u + 4u * FAKE_GPU_NREGS)
#define REC_END 9u
#define REC_MAX REC_PAGE
#define STAGE_MAX (64u << 10)
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

enum { TAG_PAGE = 1, TAG_REGS = 2, TAG_END = 3, TAG_PAD = 4 };
enum { P_HEADER, P_TAG, P_BODY, P_DONE };

struct MigcertDevice {
    bool v1;
    uint32_t features;
    uint32_t state; /* MIGCERT_STATE_* */
    uint64_t rng;
    size_t mem_size, npages;
    uint8_t *mem;
    /* Pages that may hold a non-zero byte (a clear bit: all zeros).  Every
     * write to mem sets its page's bit first, unless it writes zeros to a
     * page whose bit is clear; bits are never cleared.  So the save reads,
     * the digest hashes and the oracle compares only these pages' memory:
     * a large memory the guest barely touched is never faulted in. */
    uint64_t *nonzero_bm;
    uint32_t regs[FAKE_GPU_NREGS];
    /* saving session */
    bool saving;
    uint64_t *initial_bm, *dirty_bm;
    size_t initial_left, dirty_count, initial_cursor, dirty_cursor;
    bool header_sent, regs_sent, end_sent;
    uint8_t rec[REC_MAX];
    size_t rec_len, rec_pos;
    bool rec_initial; /* the record being handed out belongs to the snapshot */
    uint64_t csum;
    uint8_t *stage; /* v1 staged buffer */
    /* resuming session */
    int pstage;
    uint8_t ptag;
    uint8_t pbuf[REC_MAX];
    size_t pneed, phave;
    uint64_t pcsum;
    bool perr;
};

/* ---- helpers ---- */

static uint64_t next_rand(MigcertDevice *d)
{
    /* xorshift64*: the device's own generator, seeded from cfg->seed */
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return d->rng * 0x2545f4914f6cdd1dull;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }

/* FNV-1a-64, byte by byte in order (the END record's checksum on the
 * wire).  On a little-endian host eight bytes are loaded at once and taken
 * lowest first, which is the same bytes in the same order: the same
 * function, one load instead of eight (the device's save and load are
 * mostly this loop, and under valgrind each load is costly). */
static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ (w & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 8 & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 16 & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 24 & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 32 & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 40 & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 48 & 0xff)) * FNV_PRIME;
        h = (h ^ (w >> 56)) * FNV_PRIME;
    }
#endif
    for (; i < n; i++)
        h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static bool bm_test(const uint64_t *bm, size_t i) { return bm[i / 64] >> (i % 64) & 1; }
static void bm_set(uint64_t *bm, size_t i) { bm[i / 64] |= 1ull << (i % 64); }
static void bm_clear(uint64_t *bm, size_t i) { bm[i / 64] &= ~(1ull << (i % 64)); }

static bool running(uint32_t s)
{
    return s == MIGCERT_STATE_RUNNING || s == MIGCERT_STATE_RUNNING_P2P ||
           s == MIGCERT_STATE_PRE_COPY || s == MIGCERT_STATE_PRE_COPY_P2P;
}

static bool saving_state(uint32_t s)
{
    return s == MIGCERT_STATE_PRE_COPY || s == MIGCERT_STATE_PRE_COPY_P2P ||
           s == MIGCERT_STATE_STOP_COPY;
}

/* The device's own copy of the arc table (docs/protocol-vfio.md 4): what a
 * driver implements, independent of migcert's tables. */
static bool is_arc(uint32_t from, uint32_t to, uint32_t f)
{
    bool p2p = f & MIGCERT_FEATURE_P2P, pre = f & MIGCERT_FEATURE_PRE_COPY;
    enum { ST = MIGCERT_STATE_STOP, RU = MIGCERT_STATE_RUNNING, SC = MIGCERT_STATE_STOP_COPY,
           RS = MIGCERT_STATE_RESUMING, RP = MIGCERT_STATE_RUNNING_P2P,
           PC = MIGCERT_STATE_PRE_COPY, PP = MIGCERT_STATE_PRE_COPY_P2P };
#define A(a, b) (from == (a) && to == (b))
    if (A(ST, SC) || A(SC, ST) || A(ST, RS) || A(RS, ST))
        return true;
    if (!p2p && (A(RU, ST) || A(ST, RU)))
        return true;
    if (p2p && (A(RU, RP) || A(RP, RU) || A(RP, ST) || A(ST, RP)))
        return true;
    if (pre && (A(RU, PC) || A(PC, RU)))
        return true;
    if (pre && !p2p && A(PC, SC))
        return true;
    if (pre && p2p && (A(PC, PP) || A(PP, PC) || A(PP, RP) || A(RP, PP) || A(PP, SC)))
        return true;
#ifdef FAKE_GPU_BROKEN_STOPCOPY_TO_PRECOPY
    if (pre && A(SC, PC))
        return true;
#endif
#undef A
    return false;
}

/* ---- saving ---- */

static void session_close(MigcertDevice *d)
{
    free(d->initial_bm);
    free(d->dirty_bm);
    d->initial_bm = d->dirty_bm = NULL;
    d->saving = false;
    d->rec_len = d->rec_pos = 0;
}

static int session_open(MigcertDevice *d)
{
    size_t words = (d->npages + 63) / 64;
    session_close(d);
    d->initial_bm = calloc(words, 8);
    d->dirty_bm = calloc(words, 8);
    if (!d->initial_bm || !d->dirty_bm) {
        session_close(d);
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->npages; i++)
        bm_set(d->initial_bm, i);
    d->initial_left = d->npages;
    d->dirty_count = 0;
    d->initial_cursor = d->dirty_cursor = 0;
    d->header_sent = d->regs_sent = d->end_sent = false;
    d->csum = FNV_OFFSET;
    d->saving = true;
    return 0;
}

static void make_page_record(MigcertDevice *d, size_t page)
{
    d->rec[0] = TAG_PAGE;
    put_be32(d->rec + 1, (uint32_t)page);
    if (bm_test(d->nonzero_bm, page))
        memcpy(d->rec + 5, d->mem + page * FAKE_GPU_PAGE, FAKE_GPU_PAGE);
    else
        memset(d->rec + 5, 0, FAKE_GPU_PAGE);
    d->rec_len = REC_PAGE;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Fill d->rec with the next record; false when nothing is due now. */
static bool next_record(MigcertDevice *d)
{
    d->rec_pos = 0;
    d->rec_len = 0;
    d->rec_initial = false;
    if (!d->header_sent) {
        memcpy(d->rec, "FGPU", 4);
        put_be32(d->rec + 4, 1);
        put_be64(d->rec + 8, d->mem_size);
        put_be32(d->rec + 16, FAKE_GPU_PAGE);
        d->rec_len = HDR_LEN;
        d->header_sent = true;
        d->rec_initial = true;
    } else if (d->initial_left) {
        while (!bm_test(d->initial_bm, d->initial_cursor))
            d->initial_cursor++;
        bm_clear(d->initial_bm, d->initial_cursor);
        d->initial_left--;
        make_page_record(d, d->initial_cursor);
        d->rec_initial = true;
    } else if (d->dirty_count) {
        while (!bm_test(d->dirty_bm, d->dirty_cursor))
            d->dirty_cursor = (d->dirty_cursor + 1) % d->npages;
        bm_clear(d->dirty_bm, d->dirty_cursor);
        d->dirty_count--;
        make_page_record(d, d->dirty_cursor);
    } else if (d->state != MIGCERT_STATE_STOP_COPY) {
        return false;
    } else if (!d->regs_sent) {
        d->rec[0] = TAG_REGS;
        for (unsigned i = 0; i < FAKE_GPU_NREGS; i++)
            put_be32(d->rec + 1 + 4 * i, d->regs[i]);
        d->rec_len = REC_REGS;
        d->regs_sent = true;
    } else if (!d->end_sent) {
        d->rec[0] = TAG_END;
        d->csum = fnv(d->csum, d->rec, 1);
        put_be64(d->rec + 1, d->csum);
        d->rec_len = REC_END;
        d->end_sent = true;
        return true; /* the checksum does not cover itself */
    } else {
#ifdef FAKE_GPU_BROKEN_PENDING_NEVER_ZERO
        memset(d->rec, 0, FAKE_GPU_PAGE);
        d->rec[0] = TAG_PAD;
        d->rec_len = FAKE_GPU_PAGE;
        return true;
#endif
        return false;
    }
    d->csum = fnv(d->csum, d->rec, d->rec_len);
    return true;
}

static ssize_t gpu_read(MigcertDevice *d, void *buf, size_t len)
{
    if (!saving_state(d->state) || !d->saving)
        return -EINVAL;
    uint8_t *out = buf;
    size_t n = 0;
    while (n < len) {
        if (d->rec_pos == d->rec_len && !next_record(d))
            break;
        size_t k = d->rec_len - d->rec_pos;
        if (k > len - n) {
#ifdef FAKE_GPU_BROKEN_SHORT_READ
            /* claims the rest of the record although only len - n fit */
            memcpy(out + n, d->rec + d->rec_pos, len - n);
            d->rec_pos += len - n;
            return (ssize_t)(n + k);
#endif
            k = len - n;
        }
        memcpy(out + n, d->rec + d->rec_pos, k);
        d->rec_pos += k;
        n += k;
    }
    if (n == 0 && len > 0)
        return d->state == MIGCERT_STATE_STOP_COPY ? 0 : -ENOMSG;
    return (ssize_t)n;
}

static uint64_t pending_initial(MigcertDevice *d)
{
    uint64_t b = (uint64_t)d->initial_left * REC_PAGE + (d->header_sent ? 0 : HDR_LEN);
    if (d->rec_initial)
        b += d->rec_len - d->rec_pos;
    return b;
}

static uint64_t pending_dirty(MigcertDevice *d)
{
    uint64_t b = (uint64_t)d->dirty_count * REC_PAGE;
    if (!d->rec_initial)
        b += d->rec_len - d->rec_pos;
#ifdef FAKE_GPU_BROKEN_PENDING_NEVER_ZERO
    b += 1;
#endif
    return b;
}

static int gpu_precopy_info(MigcertDevice *d, uint64_t *initial, uint64_t *dirty)
{
    if (d->state != MIGCERT_STATE_PRE_COPY && d->state != MIGCERT_STATE_PRE_COPY_P2P)
        return -EINVAL;
    *initial = pending_initial(d);
    *dirty = pending_dirty(d);
    return 0;
}

static uint64_t stop_copy_tail(MigcertDevice *d)
{
    return (d->regs_sent ? 0 : REC_REGS) + (d->end_sent ? 0 : REC_END);
}

static int gpu_data_size(MigcertDevice *d, uint64_t *len)
{
    if (d->saving)
        *len = pending_initial(d) + pending_dirty(d) + stop_copy_tail(d);
    else
        *len = HDR_LEN + (uint64_t)d->npages * REC_PAGE + REC_REGS + REC_END;
    return 0;
}

/* ---- resuming ---- */

static void parser_reset(MigcertDevice *d)
{
    d->pstage = P_HEADER;
    d->pneed = HDR_LEN;
    d->phave = 0;
    d->pcsum = FNV_OFFSET;
    d->perr = false;
}

/* One complete unit in d->pbuf. */
static int parse_unit(MigcertDevice *d)
{
    switch (d->pstage) {
    case P_HEADER:
        if (memcmp(d->pbuf, "FGPU", 4) || get_be32(d->pbuf + 4) != 1 ||
            get_be64(d->pbuf + 8) != d->mem_size || get_be32(d->pbuf + 16) != FAKE_GPU_PAGE)
            return -EPROTO;
        d->pcsum = fnv(d->pcsum, d->pbuf, HDR_LEN);
        d->pstage = P_TAG;
        d->pneed = 1;
        return 0;
    case P_TAG:
        d->ptag = d->pbuf[0];
        d->pcsum = fnv(d->pcsum, d->pbuf, 1);
        d->pstage = P_BODY;
        if (d->ptag == TAG_PAGE)
            d->pneed = REC_PAGE - 1;
        else if (d->ptag == TAG_REGS)
            d->pneed = REC_REGS - 1;
        else if (d->ptag == TAG_END)
            d->pneed = REC_END - 1;
        else
            return -EPROTO;
        return 0;
    case P_BODY:
        if (d->ptag == TAG_PAGE) {
            uint32_t page = get_be32(d->pbuf);
            if (page >= d->npages)
                return -EPROTO;
            /* zeros onto a page that is all zeros change nothing */
            if (bm_test(d->nonzero_bm, page) || !all_zero(d->pbuf + 4, FAKE_GPU_PAGE)) {
                bm_set(d->nonzero_bm, page);
                memcpy(d->mem + (size_t)page * FAKE_GPU_PAGE, d->pbuf + 4, FAKE_GPU_PAGE);
            }
        } else if (d->ptag == TAG_REGS) {
            for (unsigned i = 0; i < FAKE_GPU_NREGS; i++)
                d->regs[i] = get_be32(d->pbuf + 4 * i);
        } else {
            if (get_be64(d->pbuf) != d->pcsum)
                return -EPROTO;
            d->pstage = P_DONE;
            return 0;
        }
        d->pcsum = fnv(d->pcsum, d->pbuf, d->pneed);
        d->pstage = P_TAG;
        d->pneed = 1;
        return 0;
    default:
        return -EPROTO; /* bytes after END */
    }
}

static int feed(MigcertDevice *d, const uint8_t *p, size_t len)
{
    if (d->perr)
        return -EPROTO;
    while (len) {
        if (d->pstage == P_DONE) {
            d->perr = true;
            return -EPROTO;
        }
        size_t k = d->pneed - d->phave;
        if (k > len)
            k = len;
        memcpy(d->pbuf + d->phave, p, k);
        d->phave += k;
        p += k;
        len -= k;
        if (d->phave == d->pneed) {
            d->phave = 0;
            if (parse_unit(d) < 0) {
                d->perr = true;
                return -EPROTO;
            }
        }
    }
    return 0;
}

static ssize_t gpu_write(MigcertDevice *d, const void *buf, size_t len)
{
    if (d->state != MIGCERT_STATE_RESUMING)
        return -EINVAL;
    int r = feed(d, buf, len);
    return r < 0 ? r : (ssize_t)len;
}

/* ---- state changes ---- */

static int enter(MigcertDevice *d, uint32_t to)
{
    uint32_t from = d->state;
    bool was_saving = saving_state(from), will_save = saving_state(to);
    if (from == MIGCERT_STATE_RESUMING && to != MIGCERT_STATE_RESUMING) {
        bool ok = d->pstage == P_DONE && !d->perr && d->phave == 0;
#ifdef FAKE_GPU_BROKEN_ACCEPTS_TRUNCATED
        ok = !d->perr;
#endif
        if (!ok)
            return -EPROTO; /* stays RESUMING; leaving needs a reset */
    }
    if (!was_saving && will_save) {
        int r = session_open(d);
        if (r < 0)
            return r;
    }
    if (was_saving && !will_save) {
#ifdef FAKE_GPU_BROKEN_ABORT_LOSES_DATA
        if (to == MIGCERT_STATE_RUNNING || to == MIGCERT_STATE_RUNNING_P2P)
            for (size_t i = 0; i < d->npages; i++)
                if (bm_test(d->dirty_bm, i))
                    memset(d->mem + i * FAKE_GPU_PAGE, 0, FAKE_GPU_PAGE);
#endif
        session_close(d);
    }
    if (to == MIGCERT_STATE_RESUMING)
        parser_reset(d);
    d->state = to;
    return 0;
}

static int gpu_set_state(MigcertDevice *d, uint32_t to)
{
    if (d->state == MIGCERT_STATE_ERROR || !is_arc(d->state, to, d->features))
        return -EINVAL;
    return enter(d, to);
}

static int gpu_reset(MigcertDevice *d)
{
#ifdef FAKE_GPU_BROKEN_RESET_KEEPS_ERROR
    if (d->state == MIGCERT_STATE_ERROR)
        return 0;
#endif
    session_close(d);
    parser_reset(d);
    d->state = MIGCERT_STATE_RUNNING;
    return 0;
}

static int gpu_force_error(MigcertDevice *d)
{
    session_close(d);
    d->state = MIGCERT_STATE_ERROR;
    return 0;
}

static uint32_t gpu_get_state(MigcertDevice *d) { return d->state; }

static int gpu_guest_run(MigcertDevice *d, uint32_t ops)
{
    if (!running(d->state))
        return -EBUSY;
    for (uint32_t i = 0; i < ops; i++) {
        uint64_t r = next_rand(d);
        size_t page = (size_t)(r % d->npages);
        size_t off = (size_t)((r >> 32) % (FAKE_GPU_PAGE / 64)) * 64;
        bm_set(d->nonzero_bm, page);
        for (unsigned w = 0; w < 64; w += 8) {
            uint64_t v = next_rand(d);
            memcpy(d->mem + page * FAKE_GPU_PAGE + off + w, &v, 8);
        }
        if (d->saving && !bm_test(d->initial_bm, page) && !bm_test(d->dirty_bm, page)) {
            bm_set(d->dirty_bm, page);
            d->dirty_count++;
        }
        if (i % 8 == 0)
            d->regs[r % FAKE_GPU_NREGS] += (uint32_t)(r >> 40) | 1;
    }
    return 0;
}

static int gpu_digest(MigcertDevice *d, uint64_t *out)
{
    uint64_t h = FNV_OFFSET;
    for (size_t page = 0; page < d->npages; page++) {
        /* a page whose bit is clear holds zeros: hashed without reading it */
        const uint8_t *m = bm_test(d->nonzero_bm, page) ? d->mem + page * FAKE_GPU_PAGE : NULL;
        for (size_t i = 0; i < FAKE_GPU_PAGE; i += 8) {
            uint64_t w = 0;
            if (m)
                memcpy(&w, m + i, 8);
            h = (h ^ w) * FNV_PRIME;
            h ^= h >> 29;
        }
    }
    for (unsigned i = 0; i < FAKE_GPU_NREGS; i++)
        h = (h ^ d->regs[i]) * FNV_PRIME;
    *out = h;
    return 0;
}

static MigcertDevice *create_common(const MigcertDeviceConfig *cfg, bool v1)
{
    if (!cfg || !(cfg->features & MIGCERT_FEATURE_STOP_COPY) ||
        (cfg->features & ~(uint32_t)(MIGCERT_FEATURE_STOP_COPY | MIGCERT_FEATURE_P2P |
                                     MIGCERT_FEATURE_PRE_COPY)) ||
        (v1 && (cfg->features & MIGCERT_FEATURE_P2P))) {
        errno = ENOTSUP;
        return NULL;
    }
    MigcertDevice *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->v1 = v1;
    d->features = v1 ? (MIGCERT_FEATURE_STOP_COPY | MIGCERT_FEATURE_PRE_COPY) : cfg->features;
    d->state = MIGCERT_STATE_RUNNING;
    uint64_t size = cfg->mem_size ? cfg->mem_size : FAKE_GPU_DEFAULT_MEM;
    d->npages = (size_t)((size + FAKE_GPU_PAGE - 1) / FAKE_GPU_PAGE);
    if (d->npages == 0)
        d->npages = 1;
    d->mem_size = d->npages * FAKE_GPU_PAGE;
    d->mem = calloc(d->npages, FAKE_GPU_PAGE);
    d->nonzero_bm = calloc((d->npages + 63) / 64, 8);
    if (!d->mem || !d->nonzero_bm) {
        free(d->mem);
        free(d->nonzero_bm);
        free(d);
        errno = ENOMEM;
        return NULL;
    }
    d->rng = cfg->seed * 0x9e3779b97f4a7c15ull + 0x5eed;
    if (!d->rng)
        d->rng = 1;
    for (unsigned i = 0; i < FAKE_GPU_NREGS; i++)
        d->regs[i] = (uint32_t)next_rand(d);
    parser_reset(d);
    return d;
}

static MigcertDevice *gpu_create(const MigcertDeviceConfig *cfg) { return create_common(cfg, false); }
static MigcertDevice *gpu_create_v1(const MigcertDeviceConfig *cfg) { return create_common(cfg, true); }

static void gpu_destroy(MigcertDevice *d)
{
    if (!d)
        return;
    session_close(d);
    free(d->stage);
    free(d->mem);
    free(d->nonzero_bm);
    free(d);
}

/* ---- v1 form ---- */

static const uint32_t v1_of_state[8] = {
    [MIGCERT_STATE_ERROR] = MIGCERT_V1_SAVING | MIGCERT_V1_RESUMING,
    [MIGCERT_STATE_STOP] = 0,
    [MIGCERT_STATE_RUNNING] = MIGCERT_V1_RUNNING,
    [MIGCERT_STATE_STOP_COPY] = MIGCERT_V1_SAVING,
    [MIGCERT_STATE_RESUMING] = MIGCERT_V1_RESUMING,
    [MIGCERT_STATE_RUNNING_P2P] = MIGCERT_V1_RUNNING,
    [MIGCERT_STATE_PRE_COPY] = MIGCERT_V1_SAVING | MIGCERT_V1_RUNNING,
    [MIGCERT_STATE_PRE_COPY_P2P] = MIGCERT_V1_SAVING | MIGCERT_V1_RUNNING,
};

static uint32_t gpu_v1_get_state(MigcertDevice *d) { return v1_of_state[d->state & 7]; }

static int gpu_v1_set_state(MigcertDevice *d, uint32_t bits)
{
    uint32_t to;
    switch (bits & 7u) {
    case MIGCERT_V1_RUNNING:
        to = MIGCERT_STATE_RUNNING;
        break;
    case MIGCERT_V1_SAVING | MIGCERT_V1_RUNNING:
        to = MIGCERT_STATE_PRE_COPY;
        break;
    case MIGCERT_V1_SAVING:
        to = MIGCERT_STATE_STOP_COPY;
        break;
    case 0:
        to = MIGCERT_STATE_STOP;
        break;
    case MIGCERT_V1_RESUMING:
        to = MIGCERT_STATE_RESUMING;
        break;
    default: /* 101b, 111b invalid; 110b (error) cannot be written */
        return -EINVAL;
    }
    if (d->state == MIGCERT_STATE_ERROR)
        return -EINVAL;
    if (to == d->state)
        return 0;
    /* v1 has no stop-and-copy -> pre-copy either */
    if (d->state == MIGCERT_STATE_STOP_COPY && to == MIGCERT_STATE_PRE_COPY)
        return -EINVAL;
    /* a resume starts from a stopped or running device, never mid-session */
    if (to == MIGCERT_STATE_RESUMING && saving_state(d->state))
        return -EINVAL;
    return enter(d, to);
}

static uint64_t gpu_v1_pending(MigcertDevice *d)
{
    if (!d->saving)
        return 0;
    uint64_t b = pending_initial(d) + pending_dirty(d);
    if (d->state == MIGCERT_STATE_STOP_COPY)
        b += stop_copy_tail(d);
    return b;
}

static ssize_t gpu_v1_stage(MigcertDevice *d, const void **data)
{
    if (!d->saving)
        return -EINVAL;
    if (!d->stage && !(d->stage = malloc(STAGE_MAX)))
        return -ENOMEM;
    ssize_t n = gpu_read(d, d->stage, STAGE_MAX);
    if (n == -ENOMSG)
        n = 0;
    *data = d->stage;
    return n;
}

static int gpu_v1_resume_chunk(MigcertDevice *d, const void *data, size_t size)
{
    if (d->state != MIGCERT_STATE_RESUMING)
        return -EINVAL;
    return feed(d, data, size);
}

/* ---- tables ---- */

/* The vmstate description both tables carry (a -dump-vmstate entry). */
#define GPU_VMSTATE_JSON                                                                  \
    "{\"Name\": \"fake-gpu\", \"version_id\": 1, \"minimum_version_id\": 1, "          \
    "\"Description\": {\"name\": \"fake-gpu\", \"version_id\": 1, "                     \
    "\"minimum_version_id\": 1, \"Fields\": ["                                           \
    "{\"field\": \"regs\", \"version_id\": 0, \"field_exists\": false, \"size\": 4}, " \
    "{\"field\": \"mem\", \"version_id\": 0, \"field_exists\": false, \"size\": 4096}" \
    "]}}"

static const MigcertDevicePlugin gpu_v2 = {
    .abi_version = MIGCERT_DEVICE_ABI_VERSION,
    .struct_size = sizeof(MigcertDevicePlugin),
    .name = "fake-gpu",
    .version = "1.0",
    .protocol = MIGCERT_PROTOCOL_V2,
    .features = MIGCERT_FEATURE_STOP_COPY | MIGCERT_FEATURE_P2P | MIGCERT_FEATURE_PRE_COPY,
    .vmstate_json = GPU_VMSTATE_JSON,
    .create = gpu_create,
    .destroy = gpu_destroy,
    .reset = gpu_reset,
    .get_state = gpu_get_state,
    .set_state = gpu_set_state,
    .read = gpu_read,
    .write = gpu_write,
    .precopy_info = gpu_precopy_info,
    .data_size = gpu_data_size,
    .guest_run = gpu_guest_run,
    .digest = gpu_digest,
    .force_error = gpu_force_error,
};

static const MigcertDevicePlugin gpu_v1 = {
    .abi_version = MIGCERT_DEVICE_ABI_VERSION,
    .struct_size = sizeof(MigcertDevicePlugin),
    .name = "fake-gpu-v1",
    .version = "1.0",
    .protocol = MIGCERT_PROTOCOL_V1,
    .features = MIGCERT_FEATURE_STOP_COPY | MIGCERT_FEATURE_PRE_COPY,
    .vmstate_json = GPU_VMSTATE_JSON,
    .create = gpu_create_v1,
    .destroy = gpu_destroy,
    .reset = gpu_reset,
    .get_state = gpu_v1_get_state,
    .v1_set_state = gpu_v1_set_state,
    .v1_pending_bytes = gpu_v1_pending,
    .v1_stage = gpu_v1_stage,
    .v1_resume_chunk = gpu_v1_resume_chunk,
    .guest_run = gpu_guest_run,
    .digest = gpu_digest,
    .force_error = gpu_force_error,
};

const MigcertDevicePlugin *fake_gpu_plugin(void) { return &gpu_v2; }
const MigcertDevicePlugin *fake_gpu_plugin_v1(void) { return &gpu_v1; }

const uint8_t *fake_gpu_memory(MigcertDevice *d, size_t *len)
{
    *len = d->mem_size;
    return d->mem;
}

const uint32_t *fake_gpu_regs(MigcertDevice *d) { return d->regs; }

const uint64_t *fake_gpu_nonzero_pages(MigcertDevice *d) { return d->nonzero_bm; }

void fake_gpu_poke(MigcertDevice *d, size_t off, uint8_t x)
{
    if (off >= d->mem_size)
        return;
    bm_set(d->nonzero_bm, off / FAKE_GPU_PAGE);
    d->mem[off] ^= x;
}
