/*
 * stream.c - MigStream: the buffered codec (see stream.h for the contract).
 *
 * Writer layout.  Puts append to a list of segments that mig_stream_flush()
 * hands to the transport's writev.  A segment is either a run of copied
 * bytes inside `wbuf` (kept as an offset, so wbuf may be reallocated) or a
 * caller's buffer queued by reference (put_buffer_ref).  Consecutive copies
 * extend the last segment, so a RAM record costs two iovecs: the 8-byte
 * header in wbuf and the page by reference.  The fast path of every put is a
 * bounds check and a store; `wfast` is true only while the last segment is a
 * copy segment and no error is set, so an error also turns puts off.
 * When a buffer is full a put first offers the queue to the transport (which
 * never blocks: -EAGAIN leaves it queued) and only then grows the buffer.
 *
 * Reader layout.  `rdata[rpos..rlen)` are bytes read but not consumed.  While
 * a mark is set, bytes from the mark on are kept so mig_stream_rewind() can
 * go back.  A get that finds too few bytes asks the transport for more;
 * -EAGAIN makes the stream "starved" (gets return zeros, nothing is consumed)
 * until the parser rewinds; the end of the transport inside a get is the
 * sticky error -EIO "truncated: stream ended at offset N".
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "stream.h"

#define WBUF_MIN (64 * 1024)
#define WSEG_MIN 1024
/* A reader's buffer starts at RBUF_START and doubles, up to RBUF_FULL,
 * each time a transport read fills all the room it was given (more was
 * waiting): a migration's reader reaches RBUF_FULL within a few reads,
 * while a short input (a handshake, a truncated file, a test's prefix)
 * costs a few KiB, not a quarter of a MiB. */
#define RBUF_START (4 * 1024)
#define RBUF_FULL (256 * 1024)
#define RGET_MAX ((size_t)1 << 30) /* one get (or a mark's span) on a transport */
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* The ref of a one-byte segment that is MIG_TRANSPORT_FD_MARKER carrying
 * the fd held in its `off` (mig_stream_put_fd): written with the
 * transport's send_fd, never inside a writev. */
static const uint8_t fd_marker = MIG_TRANSPORT_FD_MARKER;

typedef struct WSeg {
    const uint8_t *ref; /* NULL: bytes live in wbuf at `off`; &fd_marker: an fd */
    size_t off;
    size_t len;
    bool guest; /* ref is guest RAM (mig_stream_put_guest_ref) */
} WSeg;

struct MigStream {
    MigTransport *t; /* NULL for memory streams */
    bool writer;
    int err;
    char *errmsg;
    uint64_t offset;

    /* writer */
    bool wfast;
    uint8_t *wbuf;
    size_t wlen, wcap;
    WSeg *segs;
    size_t whead, nsegs, segcap;
    size_t wpending; /* bytes in segs[whead..nsegs) */

    /* reader */
    const uint8_t *rdata; /* == rbuf, or the caller's borrowed buffer */
    uint8_t *rbuf;
    size_t rpos, rlen, rcap;
    bool eof;     /* the transport said EOF (memory readers: always) */
    bool starved; /* a get found no data and the transport said -EAGAIN */
    size_t read_ahead; /* 0, or the most a get reads beyond what it needs */
    size_t rgrow;      /* the buffer a transport read may fill (0: RBUF_START) */
    bool marked;
    size_t mark_pos;
    uint64_t mark_offset;
};

/* ---------------------------------------------------------------- common */

static MigStream *stream_alloc(MigTransport *t, bool writer)
{
    MigStream *s = mig_malloc0(sizeof(*s));
    s->t = t;
    s->writer = writer;
    return s;
}

MigStream *mig_stream_new_writer(MigTransport *t)
{
    return stream_alloc(t, true);
}

MigStream *mig_stream_new_reader(MigTransport *t)
{
    return stream_alloc(t, false);
}

MigStream *mig_stream_new_mem_reader(const void *buf, size_t len)
{
    MigStream *s = stream_alloc(NULL, false);
    s->rbuf = mig_malloc0(len ? len : 1);
    if (len)
        memcpy(s->rbuf, buf, len);
    s->rdata = s->rbuf;
    s->rlen = s->rcap = len;
    s->eof = true;
    return s;
}

MigStream *mig_stream_new_mem_reader_borrow(const void *buf, size_t len)
{
    MigStream *s = stream_alloc(NULL, false);
    s->rdata = buf;
    s->rlen = len;
    s->eof = true;
    return s;
}

MigStream *mig_stream_new_mem_reader_borrow_at(const void *buf, size_t len, uint64_t offset)
{
    MigStream *s = mig_stream_new_mem_reader_borrow(buf, len);
    s->offset = offset;
    return s;
}

const char *mig_stream_escape(const void *in, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = in;
    size_t o = 0;
    if (outsz == 0)
        return out;
    for (size_t i = 0; i < len; i++) {
        char e[4];
        size_t n;
        if (p[i] == '\\') {
            e[0] = e[1] = '\\';
            n = 2;
        } else if (p[i] >= 0x20 && p[i] < 0x7f) {
            e[0] = (char)p[i];
            n = 1;
        } else {
            e[0] = '\\';
            e[1] = 'x';
            e[2] = hex[p[i] >> 4];
            e[3] = hex[p[i] & 15];
            n = 4;
        }
        if (o + n >= outsz)
            break;
        memcpy(out + o, e, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}

MigStream *mig_stream_new_mem_writer(void)
{
    return stream_alloc(NULL, true);
}

const uint8_t *mig_stream_mem_data(MigStream *s, size_t *len)
{
    /* A memory writer keeps every byte in one copy segment starting at 0. */
    *len = s->t ? 0 : s->wlen;
    return s->wbuf;
}

void mig_stream_free(MigStream *s)
{
    if (!s)
        return;
    free(s->errmsg);
    free(s->wbuf);
    free(s->segs);
    free(s->rbuf);
    free(s);
}

int mig_stream_error(const MigStream *s)
{
    return s->err;
}

const char *mig_stream_error_msg(const MigStream *s)
{
    return s->err ? s->errmsg : NULL;
}

void mig_stream_set_error(MigStream *s, int err, const char *fmt, ...)
{
    if (s->err || err >= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    s->err = err;
    s->errmsg = msg ? msg : mig_strdup("out of memory formatting a stream error");
    s->wfast = false;
}

int mig_stream_take_error(MigStream *s, MigErr **errp)
{
    if (!s->err)
        return 0;
    return mig_err_set(errp, s->err, "%s", s->errmsg);
}

int mig_stream_vfail(MigStream *s, MigErr **errp, int err, uint64_t at, const char *fmt, va_list ap)
{
    if (!s->err && err < 0) {
        char *m = mig_strdup_vprintf(fmt, ap);
        mig_stream_set_error(s, err, "%s at offset %llu", m, (unsigned long long)at);
        free(m);
    }
    return mig_stream_take_error(s, errp);
}

int mig_stream_fail(MigStream *s, MigErr **errp, int err, uint64_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = mig_stream_vfail(s, errp, err, at, fmt, ap);
    va_end(ap);
    return r;
}

int mig_stream_result(MigStream *s, MigErr **errp)
{
    if (s->err)
        return mig_stream_take_error(s, errp);
    return mig_stream_starved(s) ? -EAGAIN : 0;
}

uint64_t mig_stream_offset(const MigStream *s)
{
    return s->offset;
}

bool mig_stream_input_length(const MigStream *s, uint64_t *len)
{
    if (!s->eof)
        return false;
    *len = s->offset + (s->rlen - s->rpos);
    return true;
}

const MigFaultGate *mig_stream_fault_gate(const MigStream *s)
{
    return s->t ? mig_transport_fault_gate(s->t) : NULL;
}

/* ---------------------------------------------------------------- writer */

static int inject_flush(const MigStream *s)
{
    MIG_FAULT_RETURN_GATED(mig_stream_fault_gate(s), MIG_FAULT_STREAM_FLUSH);
    return 0;
}

/* Drop the segments already written and the wbuf bytes only they used, once
 * that is at least half of what is queued (keeps compaction amortised). */
static void wcompact(MigStream *s)
{
    if (s->whead == s->nsegs) {
        s->whead = s->nsegs = 0;
        s->wlen = 0;
        s->wpending = 0;
        s->wfast = false;
        return;
    }
    if (s->whead * 2 < s->nsegs)
        return;
    size_t lo = s->wlen;
    for (size_t i = s->whead; i < s->nsegs; i++)
        if (!s->segs[i].ref) {
            lo = s->segs[i].off;
            break;
        }
    memmove(s->segs, s->segs + s->whead, (s->nsegs - s->whead) * sizeof(WSeg));
    s->nsegs -= s->whead;
    s->whead = 0;
    if (lo > 0) {
        memmove(s->wbuf, s->wbuf + lo, s->wlen - lo);
        s->wlen -= lo;
        for (size_t i = 0; i < s->nsegs; i++)
            if (!s->segs[i].ref)
                s->segs[i].off -= lo;
    }
}

/* The marker byte of an fd segment, with its fd: 0, -EAGAIN, or the sticky
 * error. */
static int wpush_fd(MigStream *s, const WSeg *g)
{
    int r = mig_transport_send_fd(s->t, (int)g->off);
    if (r == -EAGAIN || r == -EINTR)
        return -EAGAIN;
    if (r < 0)
        mig_stream_set_error(s, r, "cannot pass fd %d at offset %llu: %s", (int)g->off,
                             (unsigned long long)(s->offset - s->wpending), mig_errno_name(r));
    return r;
}

/* Push queued segments until done or the transport pushes back. */
static int wpush(MigStream *s)
{
    if (s->err)
        return s->err;
    if (!s->t || s->whead == s->nsegs)
        return 0;
    int r = inject_flush(s);
    if (r < 0) {
        mig_stream_set_error(s, r, "stream flush failed at offset %llu: %s",
                             (unsigned long long)(s->offset - s->wpending), mig_errno_name(r));
        return r;
    }
    struct iovec iov[IOV_MAX];
    bool guest[IOV_MAX];
    while (s->whead < s->nsegs) {
        if (s->segs[s->whead].ref == &fd_marker) {
            r = wpush_fd(s, &s->segs[s->whead]);
            if (r == -EAGAIN) {
                wcompact(s);
                return r;
            }
            if (r < 0)
                return r;
            s->whead++;
            s->wpending--;
            continue;
        }
        int n = 0;
        bool any_guest = false;
        for (size_t i = s->whead; i < s->nsegs && n < IOV_MAX; i++, n++) {
            const WSeg *g = &s->segs[i];
            if (g->ref == &fd_marker)
                break;
            iov[n].iov_base = (void *)(g->ref ? g->ref : s->wbuf + g->off);
            iov[n].iov_len = g->len;
            guest[n] = g->guest;
            any_guest |= g->guest;
        }
        ssize_t w = any_guest && s->t->ops->writev_guest
                        ? s->t->ops->writev_guest(s->t, iov, guest, n)
                        : mig_transport_writev(s->t, iov, n);
        if (w == -EINTR)
            continue;
        if (w == -EAGAIN || w == 0) {
            wcompact(s);
            return -EAGAIN;
        }
        if (w < 0) {
            mig_stream_set_error(s, (int)w, "stream write failed at offset %llu: %s",
                                 (unsigned long long)(s->offset - s->wpending),
                                 mig_errno_name((int)w));
            return (int)w;
        }
        size_t done = (size_t)w;
        s->wpending -= MIG_MIN(done, s->wpending);
        while (done > 0 && s->whead < s->nsegs) {
            WSeg *g = &s->segs[s->whead];
            if (done >= g->len) {
                done -= g->len;
                s->whead++;
            } else {
                if (g->ref)
                    g->ref += done;
                else
                    g->off += done;
                g->len -= done;
                done = 0;
            }
        }
    }
    wcompact(s);
    return 0;
}

static bool wcheck(MigStream *s)
{
    if (s->err)
        return false;
    if (!s->writer) {
        mig_stream_set_error(s, -EINVAL, "put on a stream opened for reading");
        return false;
    }
    return true;
}

/* Room for one more segment: offer the queue to the transport, then grow. */
static bool wseg_room(MigStream *s)
{
    if (s->nsegs < s->segcap)
        return true;
    if (s->t) {
        int r = wpush(s);
        if (r < 0 && r != -EAGAIN)
            return false;
        if (s->nsegs < s->segcap)
            return true;
    }
    MIG_GROW(s->segs, s->segcap, s->nsegs + 1, WSEG_MIN);
    return true;
}

static uint8_t *wreserve_slow(MigStream *s, size_t n)
{
    if (!wcheck(s))
        return NULL;
    if (s->wlen + n > s->wcap) {
        if (s->t) {
            int r = wpush(s);
            if (r < 0 && r != -EAGAIN)
                return NULL;
        }
        MIG_GROW(s->wbuf, s->wcap, s->wlen + n, WBUF_MIN);
    }
    if (s->whead == s->nsegs || s->segs[s->nsegs - 1].ref) {
        if (!wseg_room(s))
            return NULL;
        s->segs[s->nsegs++] = (WSeg){NULL, s->wlen, 0};
    }
    uint8_t *p = s->wbuf + s->wlen;
    s->wlen += n;
    s->segs[s->nsegs - 1].len += n;
    s->wpending += n;
    s->offset += n;
    s->wfast = true;
    return p;
}

static inline uint8_t *wreserve(MigStream *s, size_t n)
{
    if (__builtin_expect(s->wfast && s->wlen + n <= s->wcap, 1)) {
        uint8_t *p = s->wbuf + s->wlen;
        s->wlen += n;
        s->segs[s->nsegs - 1].len += n;
        s->wpending += n;
        s->offset += n;
        return p;
    }
    return wreserve_slow(s, n);
}

void mig_stream_put_u8(MigStream *s, uint8_t v)
{
    uint8_t *p = wreserve(s, 1);
    if (p)
        p[0] = v;
}

void mig_stream_put_be16(MigStream *s, uint16_t v)
{
    uint8_t *p = wreserve(s, 2);
    if (p) {
        p[0] = (uint8_t)(v >> 8);
        p[1] = (uint8_t)v;
    }
}

void mig_stream_put_be32(MigStream *s, uint32_t v)
{
    uint8_t *p = wreserve(s, 4);
    if (p) {
        v = __builtin_bswap32(v);
        memcpy(p, &v, 4);
    }
}

void mig_stream_put_be64(MigStream *s, uint64_t v)
{
    uint8_t *p = wreserve(s, 8);
    if (p) {
        v = __builtin_bswap64(v);
        memcpy(p, &v, 8);
    }
}

void mig_stream_put_buffer(MigStream *s, const void *buf, size_t len)
{
    if (len == 0)
        return;
    uint8_t *p = wreserve(s, len);
    if (p)
        memcpy(p, buf, len);
}

static void put_ref(MigStream *s, const void *buf, size_t len, bool guest)
{
    /* Small buffers cost less copied than as an iovec of their own, and a
     * memory writer must own its bytes. */
    if (!s->t || len < 256) {
        mig_stream_put_buffer(s, buf, len);
        return;
    }
    if (!wcheck(s) || !wseg_room(s))
        return;
    s->segs[s->nsegs++] = (WSeg){buf, 0, len, guest};
    s->wpending += len;
    s->offset += len;
    s->wfast = false;
}

void mig_stream_put_buffer_ref(MigStream *s, const void *buf, size_t len)
{
    put_ref(s, buf, len, false);
}

void mig_stream_put_guest_ref(MigStream *s, const void *buf, size_t len)
{
    put_ref(s, buf, len, true);
}

void mig_stream_put_counted(MigStream *s, const char *str)
{
    size_t len = strlen(str);
    if (len > 255) {
        mig_stream_set_error(s, -EINVAL, "string '%.32s...' of %zu bytes is too long for a counted string",
                             str, len);
        return;
    }
    uint8_t *p = wreserve(s, 1 + len);
    if (p) {
        p[0] = (uint8_t)len;
        memcpy(p + 1, str, len);
    }
}

int mig_stream_flush(MigStream *s)
{
    int r = wpush(s);
    if (r < 0 || !s->t || !s->t->ops->flush)
        return r;
    /* the transport's own queue (a splice pipe) too */
    r = s->t->ops->flush(s->t);
    if (r < 0 && r != -EAGAIN)
        mig_stream_set_error(s, r, "stream write failed at offset %llu: %s",
                             (unsigned long long)s->offset, mig_errno_name(r));
    return r;
}

size_t mig_stream_pending(const MigStream *s)
{
    return s->t ? s->wpending : 0;
}

/* ---------------------------------------------------------------- reader */

static int inject_read(const MigStream *s)
{
    MIG_FAULT_RETURN_GATED(mig_stream_fault_gate(s), MIG_FAULT_STREAM_READ);
    return 0;
}

static ssize_t stream_read(MigStream *s, void *buf, size_t len)
{
    MIG_FAULT_RETURN_GATED(mig_stream_fault_gate(s), MIG_FAULT_STREAM_READ);
    return mig_transport_read(s->t, buf, len);
}

/* Make `need` bytes available at rpos.  Returns 0, -EAGAIN (now starved),
 * -ENODATA (the stream ends first; no error set) or the sticky error. */
static int rfill(MigStream *s, size_t need)
{
    if (s->err)
        return s->err;
    if (s->starved)
        return -EAGAIN;
    if (s->rlen - s->rpos >= need)
        return 0;
    if (s->writer) {
        mig_stream_set_error(s, -EINVAL, "get on a stream opened for writing");
        return s->err;
    }
    if (s->eof)
        return -ENODATA;
    if (need > RGET_MAX) {
        mig_stream_set_error(s, -EPROTO, "a single read of %zu bytes at offset %llu is too large",
                             need, (unsigned long long)s->offset);
        return s->err;
    }
    size_t keep = s->marked ? MIG_MIN(s->mark_pos, s->rpos) : s->rpos;
    if (keep > 0) {
        memmove(s->rbuf, s->rbuf + keep, s->rlen - keep);
        s->rlen -= keep;
        s->rpos -= keep;
        if (s->marked)
            s->mark_pos -= keep;
    }
    size_t grow = s->rgrow ? s->rgrow : RBUF_START;
    MIG_GROW(s->rbuf, s->rcap, MIG_MAX(s->rpos + need, grow), RBUF_START);
    s->rdata = s->rbuf;
    /* A transport that carries keyed pages (MigTransport.keyed_ram) is read
     * no further than the get needs: page bytes stay in it until the RAM
     * loader reads them into place, where they arrive as keys. */
    bool exact = s->t && s->t->keyed_ram;
    while (s->rlen - s->rpos < need) {
        size_t room = exact ? need - (s->rlen - s->rpos) : s->rcap - s->rlen;
        if (!exact && s->read_ahead)
            room = MIG_MIN(room, need - (s->rlen - s->rpos) + s->read_ahead);
        ssize_t r = stream_read(s, s->rbuf + s->rlen, room);
        if (r > 0) {
            s->rlen += (size_t)r;
            if ((size_t)r == room && grow < RBUF_FULL)
                s->rgrow = grow * 2;
            continue;
        }
        if (r == 0) {
            s->eof = true;
            return -ENODATA;
        }
        if (r == -EINTR)
            continue;
        if (r == -EAGAIN) {
            s->starved = true;
            return -EAGAIN;
        }
        mig_stream_set_error(s, (int)r, "stream read failed at offset %llu: %s",
                             (unsigned long long)(s->offset + (s->rlen - s->rpos)),
                             mig_errno_name((int)r));
        return (int)r;
    }
    return 0;
}

/* Returns a pointer to n consumed bytes, or NULL (error / starved). */
static const uint8_t *rtake_slow(MigStream *s, size_t n)
{
    int r = rfill(s, n);
    if (r == -ENODATA) {
        mig_stream_set_error(s, -EIO, "truncated: stream ended at offset %llu",
                             (unsigned long long)(s->offset + (s->rlen - s->rpos)));
        return NULL;
    }
    if (r < 0)
        return NULL;
    const uint8_t *p = s->rdata + s->rpos;
    s->rpos += n;
    s->offset += n;
    return p;
}

static inline const uint8_t *rtake(MigStream *s, size_t n)
{
    if (__builtin_expect(s->rlen - s->rpos >= n && !s->err && !s->starved, 1)) {
        const uint8_t *p = s->rdata + s->rpos;
        s->rpos += n;
        s->offset += n;
        return p;
    }
    return rtake_slow(s, n);
}

uint8_t mig_stream_get_u8(MigStream *s)
{
    const uint8_t *p = rtake(s, 1);
    return p ? p[0] : 0;
}

uint16_t mig_stream_get_be16(MigStream *s)
{
    const uint8_t *p = rtake(s, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t mig_stream_get_be32(MigStream *s)
{
    const uint8_t *p = rtake(s, 4);
    uint32_t v = 0;
    if (p) {
        memcpy(&v, p, 4);
        v = __builtin_bswap32(v);
    }
    return v;
}

uint64_t mig_stream_get_be64(MigStream *s)
{
    const uint8_t *p = rtake(s, 8);
    uint64_t v = 0;
    if (p) {
        memcpy(&v, p, 8);
        v = __builtin_bswap64(v);
    }
    return v;
}

void mig_stream_get_buffer(MigStream *s, void *buf, size_t len)
{
    if (len == 0)
        return;
    const uint8_t *p = rtake(s, len);
    if (p)
        memcpy(buf, p, len);
    else
        memset(buf, 0, len);
}

const void *mig_stream_get_view(MigStream *s, size_t len)
{
    static const uint8_t empty[1];
    if (len == 0)
        return s->err || s->starved ? NULL : empty;
    return rtake(s, len);
}

void mig_stream_skip(MigStream *s, uint64_t len)
{
    /* Transport readers skip in chunks of what arrived, so a damaged huge
     * length costs no huge buffer (a mark still keeps what was skipped). */
    while (len > 0 && !s->err && !s->starved) {
        size_t avail = s->rlen - s->rpos;
        size_t chunk;
        if (avail >= len || s->eof)
            chunk = len > SIZE_MAX ? SIZE_MAX : (size_t)len;
        else
            chunk = avail > 0 ? avail : (size_t)MIG_MIN(len, (uint64_t)RBUF_FULL);
        if (!rtake(s, chunk))
            return;
        len -= chunk;
    }
}

size_t mig_stream_get_counted(MigStream *s, char out[256])
{
    uint8_t len = mig_stream_get_u8(s);
    mig_stream_get_buffer(s, out, len);
    if (s->err || s->starved)
        len = 0;
    out[len] = '\0';
    return len;
}

int mig_stream_peek_u8(MigStream *s, size_t at)
{
    uint8_t b;
    return mig_stream_peek(s, &b, 1, at) == 1 ? b : -1;
}

size_t mig_stream_peek(MigStream *s, void *buf, size_t len, size_t at)
{
    if (s->err || s->starved || len == 0)
        return 0;
    int r = rfill(s, at + len);
    size_t avail = s->rlen - s->rpos;
    if (r < 0 && r != -ENODATA)
        return 0;
    if (avail <= at)
        return 0;
    size_t n = MIG_MIN(len, avail - at);
    memcpy(buf, s->rdata + s->rpos + at, n);
    return n;
}

bool mig_stream_at_eof(MigStream *s)
{
    if (s->err)
        return true;
    if (s->rlen > s->rpos || s->starved)
        return false;
    return rfill(s, 1) == -ENODATA;
}

void mig_stream_mark(MigStream *s)
{
    s->marked = true;
    s->mark_pos = s->rpos;
    s->mark_offset = s->offset;
}

void mig_stream_rewind(MigStream *s)
{
    if (s->marked) {
        s->rpos = s->mark_pos;
        s->offset = s->mark_offset;
    }
    s->starved = false;
}

bool mig_stream_starved(const MigStream *s)
{
    return s->starved;
}

/* ---------------------------------------------------------------- page channel */

void mig_stream_put_page_channel(MigStream *s)
{
    if (!wcheck(s))
        return;
    if (s->t && s->t->ops->page_channel_open) {
        int r = s->t->ops->page_channel_open(s->t, s->offset);
        if (r < 0) {
            mig_stream_set_error(s, r, "page-flip: the transport cannot open its page channel "
                                       "at offset %llu (%s)",
                                 (unsigned long long)s->offset, mig_errno_name(r));
            return;
        }
    }
    mig_stream_put_u8(s, MIG_TRANSPORT_FD_MARKER);
}

void mig_stream_put_page_ref(MigStream *s, const void *page, size_t len, uint64_t ahead_of)
{
    if (!wcheck(s))
        return;
    /* Told before the bytes are queued: a put may push the queue to the
     * transport, which must know by then which bytes are the page. */
    int r = 0;
    if (s->t && s->t->ops->page_put)
        r = s->t->ops->page_put(s->t, s->offset, page, len, ahead_of);
    uint64_t at = s->offset;
    mig_stream_put_buffer_ref(s, page, len);
    if (r < 0)
        mig_stream_set_error(s, r, "page-flip: the transport cannot queue the page at offset %llu "
                                   "(%s)",
                             (unsigned long long)at, mig_errno_name(r));
}

void mig_stream_put_fd(MigStream *s, int fd)
{
    if (!wcheck(s))
        return;
    if (!s->t || !s->t->ops->send_fd) {
        mig_stream_set_error(s, -ENOTSUP, "cannot pass fd %d at offset %llu: a '%s' stream "
                                          "cannot carry fds",
                             fd, (unsigned long long)s->offset,
                             s->t ? s->t->ops->kind : "memory");
        return;
    }
    if (fd < 0) {
        mig_stream_set_error(s, -EBADF, "cannot pass fd %d at offset %llu", fd,
                             (unsigned long long)s->offset);
        return;
    }
    if (!wseg_room(s))
        return;
    s->segs[s->nsegs++] = (WSeg){&fd_marker, (size_t)fd, 1};
    s->wpending += 1;
    s->offset += 1;
    s->wfast = false;
}

int mig_stream_get_fd(MigStream *s, MigErr **errp)
{
    uint64_t at = s->offset;
    uint8_t m = mig_stream_get_u8(s);
    if (s->starved)
        return -EAGAIN;
    int r = mig_stream_take_error(s, errp);
    if (r < 0)
        return r;
    if (m != MIG_TRANSPORT_FD_MARKER)
        return mig_err_set(errp, -EPROTO, "byte 0x%02x at offset %llu, expected the fd marker "
                                          "0x%02x",
                           m, (unsigned long long)at, MIG_TRANSPORT_FD_MARKER);
    int fd = s->t ? mig_transport_claim_fd(s->t, at) : -ENOTSUP;
    if (fd == -EEXIST)
        return mig_err_set(errp, -EEXIST, "more than one fd came with the marker byte at offset "
                                          "%llu",
                           (unsigned long long)at);
    if (fd < 0)
        return mig_err_set(errp, -EPROTO, "no fd came with the marker byte at offset %llu (%s)",
                           (unsigned long long)at, mig_errno_name(fd));
    return fd;
}

bool mig_stream_has_page_channel(const MigStream *s)
{
    if (!s->t)
        return false;
    return s->writer ? s->t->ops->page_put != NULL : s->t->ops->page_get != NULL;
}

int mig_stream_get_page_channel(MigStream *s, MigErr **errp)
{
    uint64_t at = s->offset;
    uint8_t m = mig_stream_get_u8(s);
    if (s->starved)
        return -EAGAIN;
    int r = mig_stream_take_error(s, errp);
    if (r < 0)
        return r;
    if (m != MIG_TRANSPORT_FD_MARKER)
        return mig_err_set(errp, -EINVAL,
                           "page-flip: byte 0x%02x at offset %llu, expected the page channel "
                           "marker 0x%02x",
                           m, (unsigned long long)at, MIG_TRANSPORT_FD_MARKER);
    if (s->t && s->t->ops->page_channel_accept)
        return s->t->ops->page_channel_accept(s->t, errp);
    return 0;
}

int mig_stream_get_page(MigStream *s, void *dst, size_t len, MigErr **errp)
{
    if (s->t && s->t->ops->page_get)
        return s->t->ops->page_get(s->t, dst, len, errp);
    /* Inline: a view first, so a starved read leaves dst as it was. */
    const void *p = mig_stream_get_view(s, len);
    if (!p)
        return s->starved ? -EAGAIN : mig_stream_take_error(s, errp);
    memcpy(dst, p, len);
    return 0;
}

int mig_stream_get_pagev(MigStream *s, const struct iovec *iov, int n, MigErr **errp)
{
    if (s->t && s->t->ops->page_getv)
        return s->t->ops->page_getv(s->t, iov, n, errp);
    for (int i = 0; i < n; i++) {
        int r = mig_stream_get_page(s, iov[i].iov_base, iov[i].iov_len, errp);
        if (r < 0)
            return r;
    }
    return 0;
}

const void *mig_stream_peek_buffered(const MigStream *s, size_t len)
{
    if (s->writer || s->err || s->starved || s->rlen - s->rpos < len)
        return NULL;
    return s->rdata + s->rpos;
}

size_t mig_stream_buffered(const MigStream *s)
{
    return s->writer ? 0 : s->rlen - s->rpos;
}

bool mig_stream_carries_keys(const MigStream *s)
{
    return s->t && s->t->keyed_ram;
}

void mig_stream_set_read_ahead(MigStream *s, size_t bytes)
{
    s->read_ahead = bytes;
}

ssize_t mig_stream_readable(const MigStream *s)
{
    return s->writer || !s->t ? -ENOTSUP : mig_transport_readable(s->t);
}

bool mig_stream_can_read_direct(const MigStream *s)
{
    return !s->writer && s->t && s->t->ops->readv && !s->err && !s->eof;
}

ssize_t mig_stream_readv_direct_ahead(MigStream *s, const struct iovec *iov, int n, size_t ahead)
{
    if (s->err)
        return s->err;
    if (s->starved)
        return -EAGAIN;
    if (!mig_stream_can_read_direct(s) || s->rlen != s->rpos) {
        mig_stream_set_error(s, -EINVAL, "internal: direct read at offset %llu with %zu bytes "
                                         "buffered",
                             (unsigned long long)s->offset, s->rlen - s->rpos);
        return s->err;
    }
    struct iovec v[IOV_MAX];
    size_t want = 0;
    if (n < 1 || n >= IOV_MAX) {
        mig_stream_set_error(s, -EINVAL, "internal: direct read of %d pieces", n);
        return s->err;
    }
    for (int i = 0; i < n; i++) {
        v[i] = iov[i];
        want += iov[i].iov_len;
    }
    if (ahead) {
        /* the bytes after iov's land in the buffer, read but not consumed */
        MIG_GROW(s->rbuf, s->rcap, s->rlen + ahead, RBUF_START);
        s->rdata = s->rbuf;
        v[n].iov_base = s->rbuf + s->rlen;
        v[n].iov_len = ahead;
    }
    ssize_t r;
    do {
        r = inject_read(s);
        if (r == 0)
            r = s->t->ops->readv(s->t, v, n + (ahead ? 1 : 0));
    } while (r == -EINTR);
    if (r > 0) {
        if ((size_t)r > want) {
            s->rlen += (size_t)r - want;
            r = (ssize_t)want;
        }
        s->offset += (uint64_t)r;
        return r;
    }
    if (r == 0) {
        s->eof = true;
        return 0;
    }
    if (r == -EAGAIN) {
        s->starved = true;
        return -EAGAIN;
    }
    mig_stream_set_error(s, (int)r, "stream read failed at offset %llu: %s",
                         (unsigned long long)s->offset, mig_errno_name((int)r));
    return r;
}

void mig_stream_unget(MigStream *s, const void *buf, size_t len)
{
    if (s->writer || len > s->offset) {
        mig_stream_set_error(s, -EINVAL, "internal: unget of %zu bytes at offset %llu", len,
                             (unsigned long long)s->offset);
        return;
    }
    if (s->rdata != s->rbuf) {
        mig_stream_set_error(s, -EINVAL, "internal: unget on a borrowed buffer");
        return;
    }
    /* before the bytes still buffered (a direct read's ahead part) */
    size_t have = s->rlen - s->rpos;
    MIG_GROW(s->rbuf, s->rcap, len + have, RBUF_START);
    s->rdata = s->rbuf;
    memmove(s->rbuf + len, s->rbuf + s->rpos, have);
    memcpy(s->rbuf, buf, len);
    s->rpos = 0;
    s->rlen = len + have;
    s->offset -= len;
    s->marked = true;
    s->mark_pos = 0;
    s->mark_offset = s->offset;
}
