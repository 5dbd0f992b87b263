/*
 * link.c - the in-memory duplex link of the simulator, a "mem" transport
 * (see the "links" part of sim.h for the behaviour seen by users and the
 * harness).
 *
 * Why here and not in impl/transport: the engine never names this backend;
 * it drives it through the MigTransportOps vtable like any other transport
 * (and learns that the peer can answer from MigTransport.duplex).  Only the
 * harness creates links and drives their faults (drop, partition, new
 * bandwidth), so the link and its controls are test machinery and stay out
 * of libmigcert.a.
 *
 * Model, per direction: a ring buffer holds every byte written and not yet
 * read by the peer (its size is the backpressure bound, counted in stream
 * bytes).  Bytes are copied
 * once into the ring by writev and once out by read, nothing else touches
 * them.  Keyed pages (impl/ram/ram.h) are the exception, on an end with
 * guest RAM attached (mig_transport_mem_set_ram): writev takes a piece of
 * the writer's RAM that is (part of) a keyed page as a reference, the page's
 * key read at that moment (what a socket would copy then), and leaves its
 * place in the ring unwritten; read generates those bytes from the key, and
 * a readv of a whole referenced page onto a page of the reader's RAM gives
 * that RAM the key instead of the bytes.  So a 64 MiB guest of keyed pages
 * crosses the link as a few MiB of headers and keys, while the stream, its
 * offsets, backpressure and faults see every byte as before.  Timing is bookkeeping beside the ring: each write is cut into
 * segments of at most SEG_CHUNK bytes; a segment leaves when the serialising
 * link has sent it (bandwidth, from the start of the current busy period, so
 * there is no rounding drift) and arrives `latency` later.  One loop timer per
 * direction, at the head segment's arrival, moves the "arrived" offset that
 * reads may consume.  While the link is busy, writes join the tail segment
 * until it is SEG_CHUNK long (delaying its first bytes by at most one chunk's
 * transmission time), which keeps the work per byte at zero and per write at
 * O(1); a write onto an idle link always starts its own segment.
 *
 * Readiness: level-triggered, delivered by one loop defer per end (`kick`)
 * that re-arms itself while the condition holds and the end is watched.
 *
 * Lifetime: the link is reference-counted: one reference per open end and
 * one per mig_transport_mem_link() caller.  Closing an end discards what was
 * in flight towards it and marks its outgoing direction at end-of-stream.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "ram/ram.h"
#include "sim/sim.h"

#define SEG_CHUNK ((uint64_t)256 << 10)
#define HUGE_ALIGN ((size_t)2 << 20)
#define NEVER UINT64_MAX

typedef struct MemSeg {
    uint64_t end;    /* direction offset one past the segment's last byte */
    uint64_t arrive; /* loop time it becomes readable (NEVER while partitioned) */
} MemSeg;

/* A run of direction bytes that are bytes [in, in+len) of the keyed page of
 * `key` (not in the ring). */
typedef struct MemRef {
    uint64_t at; /* direction offset of its first byte */
    uint64_t key;
    uint32_t len;
    uint32_t in;
} MemRef;

typedef struct MemDir {
    MigLink *link;
    int reader; /* side that reads this direction */
    uint8_t *buf;
    size_t cap;  /* the bound on bytes in flight (MigLinkParams.buffer) */
    size_t room; /* the size of buf: grows towards cap as the ring fills */
    void *map;   /* the mapping under buf when it is not from malloc */
    size_t map_len;
    bool small_pages; /* map without huge pages (a writer of keyed pages) */
    uint64_t wr, rd, arrived; /* offsets: written, read, arrived */
    uint64_t readable;        /* arrived, or the start of a reference it splits */
    uint64_t bwr, brd;        /* ring bytes (those not referenced) put and taken */
    uint64_t bat;             /* the ring byte at buf[0] (buf holds [brd, bwr) from there) */
    uint64_t limit;           /* drop at this offset (NEVER: no drop) */
    MemSeg *segs;             /* ring of segments not yet arrived */
    size_t seg_head, seg_len, seg_cap;
    uint64_t busy_start; /* start of the current transmission busy period */
    uint64_t busy_bytes; /* bytes sent in it so far */
    uint64_t tx_free;    /* when the link has sent everything queued */
    MemRef *refs; /* ring of references not yet read, in offset order */
    size_t ref_head, ref_len, ref_cap;
    MigLoopSource *timer;
    uint64_t timer_at;
    bool eof; /* the writer shut down: after its last byte, reads return 0 */
} MemDir;

typedef struct MemEnd {
    MigTransport base;
    MigLink *link;
    int side; /* writes go to dir[side], reads come from dir[!side] */
    uint32_t events;
    MigTransportCb cb;
    void *opaque;
    MigLoopSource *kick;
    int busy;
    bool dead;
    MigRam *ram; /* the guest RAM of the machine using this end, or NULL */
} MemEnd;

struct MigLink {
    MigLoop *loop;
    int refs;
    MigLinkParams p;
    bool broken;
    bool partitioned;
    MemDir dir[2];
    MemEnd *end[2]; /* NULL once closed */
};

static const MigTransportOps mem_ops;

static MemEnd *M(MigTransport *t)
{
    return (MemEnd *)t;
}

/* ---- the ring's memory ---- */

/* The ring's buffer starts at RING_FIRST bytes and doubles, up to `cap`,
 * only when the bytes held do not fit: a link whose reader keeps up (SPICE
 * channels, a control stream) never needs more than its first bytes, and as
 * ring_put starts again at buf[0] whenever the ring is empty, it touches the
 * same few pages over and over instead of faulting in (and having the
 * kernel zero) every page of a `cap`-sized mapping once per case.  This is
 * memory layout only: the flow-control bound stays `cap` (end_ready,
 * mem_writev), so what is written, when, and what is read are unchanged.
 * A buffer of 2 MiB and more is touched end to end by a migration that
 * fills it: on its own 2 MiB-aligned mapping with transparent huge pages
 * that costs a couple of page faults instead of one per 4 KiB (advice only:
 * where THP is off, it is an ordinary mapping).  Smaller ones come from
 * malloc. */
#define RING_FIRST ((size_t)64 << 10)

static void ring_release(uint8_t *buf, void *map, size_t map_len)
{
    if (map)
        munmap(map, map_len);
    else
        free(buf);
}

/* Room for `need` ring bytes: a buffer of at least that size (a power-of-two
 * multiple of RING_FIRST, at most cap) holding [brd, bwr) from its start. */
static int ring_reserve(MemDir *d, size_t need)
{
    if (need <= d->room && d->buf)
        return 0;
    if (need > d->cap)
        return -EINVAL; /* never: the ring holds stream bytes in flight, at most cap */
    size_t room = d->buf ? d->room : MIG_MIN(RING_FIRST, d->cap);
    while (room < need)
        room = MIG_MIN(2 * room, d->cap);
    uint8_t *buf;
    void *map = NULL;
    size_t map_len = 0;
    if (room < HUGE_ALIGN) {
        if (!(buf = malloc(room)))
            return -ENOMEM;
    } else {
        map_len = (room + HUGE_ALIGN + 4095) & ~(size_t)4095;
        map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED)
            return -ENOMEM;
        buf = (uint8_t *)(((uintptr_t)map + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
        madvise(buf, (room + 4095) & ~(size_t)4095,
                d->small_pages ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
    }
    if (d->buf) {
        /* the bytes held, in order, to the new buffer's start */
        size_t held = (size_t)(d->bwr - d->brd), at = (size_t)((d->brd - d->bat) % d->room);
        size_t first = MIG_MIN(held, d->room - at);
        memcpy(buf, d->buf + at, first);
        memcpy(buf + first, d->buf, held - first);
        ring_release(d->buf, d->map, d->map_len);
    }
    d->buf = buf;
    d->map = map;
    d->map_len = map_len;
    d->room = room;
    d->bat = d->brd;
    return 0;
}

static void ring_free(MemDir *d)
{
    ring_release(d->buf, d->map, d->map_len);
    d->buf = NULL;
    d->map = NULL;
}

/* ---- segments and timing ---- */

static MemSeg *seg_at(MemDir *d, size_t i)
{
    return &d->segs[(d->seg_head + i) & (d->seg_cap - 1)];
}

static uint64_t seg_start(MemDir *d, size_t i)
{
    return i == 0 ? d->arrived : seg_at(d, i - 1)->end;
}

/* A ring of `len` elements of `size` bytes (the first at *head) with room
 * for one more: the same ring, or, when full, one twice as large (`first`
 * elements to begin with, a power of two) holding them from index 0.  Its
 * capacity is a power of two, so an index wraps with a mask. */
static void *ring_room(void *ring, size_t size, size_t *head, size_t len, size_t *cap,
                       size_t first)
{
    if (len < *cap)
        return ring;
    size_t ncap = *cap ? 2 * *cap : first;
    uint8_t *n = mig_malloc0(ncap * size);
    for (size_t i = 0; i < len; i++)
        memcpy(n + i * size, (uint8_t *)ring + (*head + i) % *cap * size, size);
    free(ring);
    *cap = ncap;
    *head = 0;
    return n;
}

static void seg_push(MemDir *d, uint64_t end, uint64_t arrive)
{
    d->segs = ring_room(d->segs, sizeof(*d->segs), &d->seg_head, d->seg_len, &d->seg_cap, 16);
    *seg_at(d, d->seg_len++) = (MemSeg){.end = end, .arrive = arrive};
}

/* Account n more bytes sent from `now`; returns when the last one has left. */
static uint64_t transmit(MigLink *k, MemDir *d, uint64_t now, uint64_t n)
{
    if (now >= d->tx_free) {
        d->busy_start = now;
        d->busy_bytes = 0;
    }
    d->busy_bytes += n;
    if (k->p.bandwidth) {
        unsigned __int128 ns = (unsigned __int128)d->busy_bytes * 1000000000u;
        ns = (ns + k->p.bandwidth - 1) / k->p.bandwidth;
        d->tx_free = d->busy_start + (uint64_t)ns;
    } else {
        d->tx_free = MIG_MAX(d->busy_start, now);
    }
    return d->tx_free;
}

static void deliver(void *opaque);

static void dir_schedule(MemDir *d)
{
    MigLink *k = d->link;
    uint64_t want = d->seg_len && !k->partitioned ? d->segs[d->seg_head].arrive : NEVER;

    /* An early timer is harmless (it finds nothing and re-arms); only a late
     * one or one with nothing left to deliver goes. */
    if (d->timer && (want == NEVER || want < d->timer_at)) {
        mig_loop_remove(k->loop, d->timer);
        d->timer = NULL;
    }
    if (want != NEVER && !d->timer) {
        d->timer = mig_loop_timer_add(k->loop, want, deliver, d);
        d->timer_at = want;
    }
}

/* Queue n freshly written bytes (already in the ring, wr already moved). */
static void dir_enqueue(MigLink *k, MemDir *d, uint64_t n)
{
    uint64_t now = mig_loop_now_ns(k->loop);
    uint64_t off = d->wr - n;

    while (n) {
        uint64_t piece;
        MemSeg *tail = d->seg_len ? seg_at(d, d->seg_len - 1) : NULL;
        uint64_t tail_len = tail ? tail->end - seg_start(d, d->seg_len - 1) : SEG_CHUNK;
        /* Join the tail only when that delays nobody much: the link is still
         * busy sending it (streaming), or it arrives at the very time these
         * bytes would anyway (unlimited bandwidth). */
        bool join = tail_len < SEG_CHUNK &&
                    (k->partitioned || now < d->tx_free ||
                     (!k->p.bandwidth && tail->arrive == now + k->p.latency_ns));
        if (join) {
            piece = MIG_MIN(n, SEG_CHUNK - tail_len);
            tail->end += piece;
        } else {
            piece = MIG_MIN(n, SEG_CHUNK);
            seg_push(d, off + piece, NEVER);
            tail = seg_at(d, d->seg_len - 1);
        }
        if (!k->partitioned)
            tail->arrive = transmit(k, d, now, piece) + k->p.latency_ns;
        off += piece;
        n -= piece;
    }
    dir_schedule(d);
}

/* ---- bytes in and out: the ring and the references ---- */

static MemRef *ref_at(MemDir *d, size_t i)
{
    return &d->refs[(d->ref_head + i) & (d->ref_cap - 1)];
}

static void ref_push(MemDir *d, uint64_t key, size_t len, size_t in)
{
    /* The rest of the page the last reference took part of (a write cut
     * short by a full buffer, carried on), with the same key: one page. */
    MemRef *last = d->ref_len ? ref_at(d, d->ref_len - 1) : NULL;
    if (last && last->at + last->len == d->wr && last->key == key && last->in + last->len == in) {
        last->len += (uint32_t)len;
        return;
    }
    d->refs = ring_room(d->refs, sizeof(*d->refs), &d->ref_head, d->ref_len, &d->ref_cap, 64);
    *ref_at(d, d->ref_len++) = (MemRef){.at = d->wr, .key = key, .len = (uint32_t)len,
                                        .in = (uint32_t)in};
}

/* The ring holds the bytes that are not references, in stream order and
 * nothing else (bwr, brd), so a stream of keyed pages touches only as much
 * of it as its headers take. */
static int ring_put(MemDir *d, const uint8_t *src, size_t n)
{
    if (d->brd == d->bwr)
        d->bat = d->bwr; /* empty: start again at buf[0] */
    if (ring_reserve(d, (size_t)(d->bwr - d->brd) + n) < 0)
        return -ENOMEM;
    size_t at = (size_t)((d->bwr - d->bat) % d->room);
    d->bwr += n;
    size_t first = MIG_MIN(n, d->room - at);
    memcpy(d->buf + at, src, first);
    memcpy(d->buf, src + first, n - first);
    return 0;
}

static void ring_get(MemDir *d, uint8_t *dst, size_t n)
{
    size_t at = (size_t)((d->brd - d->bat) % d->room);
    d->brd += n;
    size_t first = MIG_MIN(n, d->room - at);
    memcpy(dst, d->buf + at, first);
    memcpy(dst + first, d->buf, n - first);
}

/* Append n bytes from src (writer end e): keyed pages of e's RAM by
 * reference, everything else into the ring.  Returns how many it took: all
 * n, or fewer when the ring could not grow (out of memory: a short write). */
static size_t dir_put(MemEnd *e, MemDir *d, const uint8_t *src, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t m = n - done, in;
        uint64_t page, key;
        MigRamBlock *b = e->ram ? mig_ram_find_host(e->ram, src, &page, &in) : NULL;
        if (b) {
            m = MIG_MIN(m, MIG_RAM_PAGE_SIZE - in);
            if (mig_ram_page_key(b, page, &key))
                ref_push(d, key, m, in);
            else if (ring_put(d, src, m) < 0)
                break;
        } else if (ring_put(d, src, m) < 0) {
            break;
        }
        d->wr += m;
        src += m;
        done += m;
    }
    return done;
}

/* Take n bytes for reader end e into dst: referenced bytes generated from
 * their key, or, for a whole page landing on a page of e's RAM, given to it
 * as the key; the rest from the ring. */
static void dir_get(MemEnd *e, MemDir *d, uint8_t *dst, size_t n)
{
    while (n) {
        MemRef *r = d->ref_len ? ref_at(d, 0) : NULL;
        size_t m;
        if (r && r->at <= d->rd) {
            size_t off = (size_t)(d->rd - r->at), in;
            uint64_t page;
            m = MIG_MIN(n, r->len - off);
            MigRamBlock *b = m == MIG_RAM_PAGE_SIZE && e->ram
                                 ? mig_ram_find_host(e->ram, dst, &page, &in)
                                 : NULL;
            if (b && in == 0)
                mig_ram_page_set_key(b, page, r->key);
            else
                mig_ram_key_bytes(r->key, r->in + off, m, dst);
            if (off + m == r->len) {
                d->ref_head = (d->ref_head + 1) & (d->ref_cap - 1);
                d->ref_len--;
            }
        } else {
            m = r ? (size_t)MIG_MIN((uint64_t)n, r->at - d->rd) : n;
            ring_get(d, dst, m);
        }
        d->rd += m;
        dst += m;
        n -= m;
    }
}

/* Forget every byte not yet read (drop, or the reader is gone). */
static void dir_discard(MemDir *d)
{
    d->ref_len = 0;
    d->ref_head = 0;
    d->brd = d->bwr;
    d->rd = d->arrived = d->readable = d->wr;
    d->seg_len = 0;
    d->seg_head = 0;
    dir_schedule(d);
}

/* Heal: transmission of what is queued restarts now. */
static void dir_retime(MigLink *k, MemDir *d)
{
    uint64_t now = mig_loop_now_ns(k->loop);

    d->tx_free = 0;
    for (size_t i = 0; i < d->seg_len; i++) {
        MemSeg *s = seg_at(d, i);
        s->arrive = transmit(k, d, now, s->end - seg_start(d, i)) + k->p.latency_ns;
    }
    dir_schedule(d);
}

/* ---- readiness ---- */

static uint32_t end_ready(MemEnd *e)
{
    MigLink *k = e->link;
    MemDir *in = &k->dir[!e->side], *out = &k->dir[e->side];
    uint32_t r = 0;

    if (in->readable > in->rd || (in->arrived == in->wr && (k->broken || in->eof)))
        r |= MIG_LOOP_IN;
    if (k->broken || !k->end[!e->side] || out->eof ||
        (out->wr - out->rd < out->cap && out->wr < out->limit))
        r |= MIG_LOOP_OUT;
    r &= e->events;
    /* Reported once the bytes that made it before the reset are consumed,
     * so a reader still waiting for them is not woken in a loop. */
    if (k->broken && e->events && in->rd == in->wr)
        r |= MIG_LOOP_ERR | MIG_LOOP_HUP;
    return r;
}

static void end_notify(void *opaque);

static void end_kick(MemEnd *e)
{
    if (!e || !e->cb || e->kick || e->dead)
        return;
    if (end_ready(e))
        e->kick = mig_loop_defer(e->link->loop, end_notify, e);
}

static void end_notify(void *opaque)
{
    MemEnd *e = opaque;
    uint32_t r;

    e->kick = NULL;
    r = end_ready(e);
    if (!r)
        return;
    e->busy++;
    e->cb(&e->base, r, e->opaque);
    e->busy--;
    if (e->dead) {
        if (!e->busy)
            free(e);
        return;
    }
    end_kick(e); /* level-triggered: again while still ready and watched */
}

/* What the reader may take: everything that arrived, except that a
 * reference whose bytes have only partly arrived is held back until all of
 * them did (they are in flight, so they will: a drop keeps what was
 * written before it, a partition heals, a reset discards them all), and so
 * is the last one while it holds part of a page whose rest the writer has
 * yet to write (a write cut short by a full buffer), as long as it still
 * can (not shut down, reset, or at its drop byte).  A referenced page then
 * reaches the reader whole, so it can arrive as a key. */
static void dir_set_readable(MemDir *d)
{
    MigLink *k = d->link;
    d->readable = d->arrived;
    size_t lo = 0, hi = d->ref_len; /* first reference that starts at or after arrived */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_at(d, mid)->at < d->arrived)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        const MemRef *r = ref_at(d, lo - 1);
        bool more = r->at + r->len == d->wr && r->in + r->len < MIG_RAM_PAGE_SIZE &&
                    !d->eof && !k->broken && d->wr < d->limit;
        if (r->at + r->len > d->arrived || more)
            d->readable = MIG_MAX(r->at, d->rd);
    }
}

static void deliver(void *opaque)
{
    MemDir *d = opaque;
    MigLink *k = d->link;
    uint64_t now = mig_loop_now_ns(k->loop);
    uint64_t before = d->arrived;

    d->timer = NULL;
    while (d->seg_len && d->segs[d->seg_head].arrive <= now) {
        d->arrived = d->segs[d->seg_head].end;
        d->seg_head = (d->seg_head + 1) & (d->seg_cap - 1);
        d->seg_len--;
    }
    dir_schedule(d);
    if (d->arrived != before) {
        dir_set_readable(d);
        end_kick(k->end[d->reader]);
    }
}

static void link_break(MigLink *k, bool discard)
{
    k->broken = true;
    dir_set_readable(&k->dir[0]);
    dir_set_readable(&k->dir[1]);
    if (discard) {
        dir_discard(&k->dir[0]);
        dir_discard(&k->dir[1]);
    }
    end_kick(k->end[0]);
    end_kick(k->end[1]);
}

/* ---- transport ops ---- */

static ssize_t mem_readv(MigTransport *t, const struct iovec *iov, int iovcnt);

static ssize_t mem_read(MigTransport *t, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    return mem_readv(t, &iov, 1);
}

/* What a read that moved nothing returns. */
static ssize_t mem_read_none(MigLink *k, MemDir *d)
{
    if (d->arrived < d->wr)
        return -EAGAIN; /* in flight */
    if (k->broken)
        return -ECONNRESET;
    if (d->eof)
        return 0;
    return -EAGAIN;
}

static ssize_t mem_writev(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    MemEnd *e = M(t);
    MigLink *k = e->link;
    MemDir *d = &k->dir[e->side];
    uint64_t total = 0, allow;

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_WRITE);
    if (k->broken)
        return -ECONNRESET;
    if (d->eof || !k->end[!e->side])
        return -EPIPE;
    /* The iovec's length only as far as the room: a writer may hand the
     * rest of a long iovec again and again while the buffer lets a little
     * through each time. */
    uint64_t room = MIG_MIN((uint64_t)d->cap - (d->wr - d->rd), d->limit - d->wr);
    for (int i = 0; i < iovcnt && (total < room || !total); i++)
        total += iov[i].iov_len;
    if (!total)
        return 0;
    allow = MIG_MIN(total, room);
    if (!allow)
        return -EAGAIN;

    uint64_t left = allow;
    for (int i = 0; i < iovcnt && left; i++) {
        size_t n = (size_t)MIG_MIN((uint64_t)iov[i].iov_len, left);
        size_t put = dir_put(e, d, iov[i].iov_base, n);
        left -= put;
        if (put < n)
            break;
    }
    allow -= left;
    if (!allow)
        return -ENOMEM;
    t->bytes_written += allow;
    dir_enqueue(k, d, allow);
    if (d->wr >= d->limit)
        link_break(k, false); /* drop at byte N: the N bytes still arrive */
    return (ssize_t)allow;
}

static ssize_t mem_readv(MigTransport *t, const struct iovec *iov, int iovcnt)
{
    MemEnd *e = M(t);
    MigLink *k = e->link;
    MemDir *d = &k->dir[!e->side];
    uint64_t total = 0;

    MIG_FAULT_RETURN_GATED(mig_transport_fault_gate(t), MIG_FAULT_TRANSPORT_READ);
    uint64_t ready = d->readable - d->rd;
    for (int i = 0; i < iovcnt && (total < ready || !total); i++) /* as in mem_writev */
        total += iov[i].iov_len;
    uint64_t n = MIG_MIN(total, ready);
    if (!n)
        return total ? mem_read_none(k, d) : 0;
    uint64_t left = n;
    for (int i = 0; i < iovcnt && left; i++) {
        size_t m = (size_t)MIG_MIN((uint64_t)iov[i].iov_len, left);
        dir_get(e, d, iov[i].iov_base, m);
        left -= m;
    }
    t->bytes_read += n;
    end_kick(k->end[!e->side]);
    return (ssize_t)n;
}

static ssize_t mem_write(MigTransport *t, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return mem_writev(t, &iov, 1);
}

static int mem_watch(MigTransport *t, uint32_t events, MigTransportCb cb, void *opaque)
{
    MemEnd *e = M(t);

    events &= MIG_LOOP_IN | MIG_LOOP_OUT;
    if (!events || !cb) {
        mig_loop_remove(t->loop, e->kick);
        e->kick = NULL;
        e->cb = NULL;
        e->events = 0;
        return 0;
    }
    e->events = events;
    e->cb = cb;
    e->opaque = opaque;
    end_kick(e);
    return 0;
}

static int mem_shutdown_write(MigTransport *t)
{
    MemEnd *e = M(t);
    MigLink *k = e->link;

    k->dir[e->side].eof = true;
    dir_set_readable(&k->dir[e->side]);
    end_kick(k->end[!e->side]);
    return 0;
}

static void link_free(MigLink *k)
{
    for (int i = 0; i < 2; i++) {
        mig_loop_remove(k->loop, k->dir[i].timer);
        ring_free(&k->dir[i]);
        free(k->dir[i].segs);
        free(k->dir[i].refs);
    }
    free(k);
}

void mig_link_unref(MigLink *k)
{
    if (k && --k->refs == 0)
        link_free(k);
}

static void mem_close(MigTransport *t)
{
    MemEnd *e = M(t);
    MigLink *k = e->link;
    MemEnd *peer = k->end[!e->side];

    mig_loop_remove(t->loop, e->kick);
    e->kick = NULL;
    e->cb = NULL;
    k->end[e->side] = NULL;
    dir_discard(&k->dir[!e->side]); /* nobody will read it */
    k->dir[e->side].eof = true;
    dir_set_readable(&k->dir[e->side]);
    if (!peer)
        dir_discard(&k->dir[e->side]);
    end_kick(peer);
    mig_link_unref(k);
    if (e->busy)
        e->dead = true;
    else
        free(e);
}

static uint64_t mem_queued(MigTransport *t)
{
    MemEnd *e = M(t);
    return mig_link_queued(e->link, e->side);
}

static const MigTransportOps mem_ops = {
    .kind = "mem",
    .read = mem_read,
    .readv = mem_readv,
    .write = mem_write,
    .writev = mem_writev,
    .send_fd = NULL,
    .recv_fd = NULL,
    .watch = mem_watch,
    .shutdown_write = mem_shutdown_write,
    .close = mem_close,
    .queued = mem_queued,
};

/* ---- constructor and harness controls ---- */

int mig_transport_mem_pair(MigLoop *loop, const MigLinkParams *p, MigTransport **a,
                           MigTransport **b)
{
    MigLink *k = mig_malloc0(sizeof(*k));

    k->loop = loop;
    if (p)
        k->p = *p;
    if (!k->p.buffer)
        k->p.buffer = MIG_LINK_DEFAULT_BUFFER;
    for (int i = 0; i < 2; i++) {
        MemDir *d = &k->dir[i];
        d->link = k;
        d->reader = !i;
        d->cap = k->p.buffer; /* the ring's buffer comes with its first bytes */
        d->limit = NEVER;
        MemEnd *e = mig_malloc0(sizeof(*e));
        e->base.ops = &mem_ops;
        e->base.loop = loop;
        e->link = k;
        e->side = i;
        e->base.duplex = true;
        k->end[i] = e;
    }
    k->refs = 2;
    *a = &k->end[0]->base;
    *b = &k->end[1]->base;
    return 0;
}

void mig_transport_mem_set_ram(MigTransport *end, MigRam *ram)
{
    if (!end || end->ops != &mem_ops)
        return;
    M(end)->ram = ram;
    end->keyed_ram = ram != NULL;
    /* What this end writes is mostly references now: its ring holds little
     * more than headers, so 4 KiB pages serve it better than huge ones. */
    MemDir *d = &M(end)->link->dir[M(end)->side];
    d->small_pages = ram != NULL;
    if (ram && d->map)
        madvise(d->buf, (d->room + 4095) & ~(size_t)4095, MADV_NOHUGEPAGE);
}

MigLink *mig_transport_mem_link(MigTransport *end)
{
    if (!end || end->ops != &mem_ops)
        return NULL;
    MigLink *k = M(end)->link;
    k->refs++;
    return k;
}

void mig_link_drop_at(MigLink *k, int dir, uint64_t byte)
{
    MemDir *d = &k->dir[dir ? 1 : 0];

    d->limit = byte;
    if (d->wr >= byte && !k->broken)
        link_break(k, false);
    end_kick(k->end[!d->reader]);
}

void mig_link_drop_now(MigLink *k)
{
    link_break(k, true);
}

void mig_link_partition(MigLink *k, bool partitioned)
{
    if (k->partitioned == partitioned)
        return;
    k->partitioned = partitioned;
    for (int i = 0; i < 2; i++) {
        if (partitioned)
            dir_schedule(&k->dir[i]); /* removes the delivery timer */
        else
            dir_retime(k, &k->dir[i]);
    }
}

void mig_link_set_params(MigLink *k, const MigLinkParams *p)
{
    /* The buffer size is fixed at creation: the ring holds live bytes. */
    k->p.bandwidth = p->bandwidth;
    k->p.latency_ns = p->latency_ns;
    for (int i = 0; i < 2; i++) {
        MemDir *d = &k->dir[i];
        /* A new busy period at the new rate, after what is already queued. */
        d->busy_start = d->tx_free;
        d->busy_bytes = 0;
    }
}

bool mig_link_is_broken(const MigLink *k)
{
    return k->broken;
}

uint64_t mig_link_bytes(const MigLink *k, int dir)
{
    return k->dir[dir ? 1 : 0].wr;
}

uint64_t mig_link_queued(const MigLink *k, int dir)
{
    const MemDir *d = &k->dir[dir ? 1 : 0];
    return d->wr - d->rd;
}
