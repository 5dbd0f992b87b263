/*
 * spice-conn.c - framing, send queue, serials, ACK window and PING/PONG of
 * one SPICE connection (spice-conn.h).
 *
 * Input: bytes accumulate in `in` (grown up to one whole message), and every
 * complete message in it is handled before the next read, at most
 * MSGS_PER_WAKEUP per readiness callback so that one busy peer cannot starve
 * the others on the loop (the watch is level-triggered: the rest is taken at
 * the next turn).  Output: a FIFO of encoded messages (header + body) written
 * with writev; a short write keeps the offset into the head message.  The
 * queue is bounded (SPICE_CONN_MAX_BACKLOG): a peer that stops reading is
 * closed with a reason rather than holding the server's memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>

#include "../common/buf.h"
#include "spice-conn.h"
#include "spice-link.h"

#define MSGS_PER_WAKEUP 64
#define IOV_MAX_BATCH 64
#define IN_CHUNK 65536u

typedef struct OutMsg {
    uint8_t *buf;
    size_t len, off;
    bool admitted; /* passed the ACK window (server role) */
} OutMsg;

struct SpiceConn {
    MigLoop *loop;
    MigTransport *t;
    SpiceConnConfig cfg;
    char who[64];
    const SpiceConnOps *ops;
    void *opaque;

    bool open;
    uint32_t watching;
    MigLoopSource *closed_defer;
    bool paused;                 /* spice_conn_pause: hand nothing over */
    MigLoopSource *resume_defer; /* spice_conn_resume: what was held, from the loop */
    int close_err;
    char close_reason[256];

    /* input */
    uint8_t *in;
    size_t in_len, in_cap;
    uint64_t in_serial;

    /* output */
    OutMsg *out;
    size_t out_head, out_len, out_cap;
    uint64_t backlog;
    uint64_t out_serial;

    /* ACK window: server role enforces, client role acknowledges */
    uint32_t ack_window, ack_generation, peer_generation;
    uint32_t unacked;      /* server: messages started since the last ACK credit */
    uint32_t ack_countdown; /* client: messages until the next ACK */

    uint32_t ping_id;
    uint64_t last_rtt_ns;

    /* seamless migration */
    bool held;         /* queue, do not write (a target before the client's data) */
    bool adopt_serial; /* the next message's serial is the peer's continued count */
};

static void update_watch(SpiceConn *c);

static const char *msg_name(const SpiceConn *c, bool from_peer, uint16_t type)
{
    bool from_client = c->cfg.is_server ? from_peer : !from_peer;
    const SpiceMsgInfo *mi = spice_msg_find(c->cfg.channel_type, from_client, type);
    return mi ? mi->name : "?";
}

/* ------------------------------------------------------------------ close */

static void closed_cb(void *opaque)
{
    SpiceConn *c = opaque;
    c->closed_defer = NULL;
    if (c->ops->on_closed)
        c->ops->on_closed(c->opaque, c->close_err, c->close_reason);
}

static void close_v(SpiceConn *c, int err, const char *fmt, va_list ap)
{
    if (!c->open)
        return;
    c->open = false;
    c->close_err = err;
    vsnprintf(c->close_reason, sizeof(c->close_reason), fmt, ap);
    mig_trace_log(c->loop->trace, mig_loop_now_ns(c->loop), c->who, "closed: %s%s%s", c->close_reason,
                  err ? " " : "", err ? mig_errno_name(err) : "");
    if (c->t) {
        mig_transport_watch(c->t, 0, NULL, NULL);
        mig_transport_close(c->t);
        c->t = NULL;
    }
    c->watching = 0;
    c->closed_defer = mig_loop_defer(c->loop, closed_cb, c);
}

void spice_conn_close(SpiceConn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    close_v(c, err, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ output */

static int enqueue(SpiceConn *c, uint16_t type, const uint8_t *body, uint32_t len)
{
    if (!c->open)
        return -EPIPE;
    int fault = mig_fault_fire(MIG_FAULT_SPICE_CONN_SEND);
    if (fault) { /* as a broken socket: closed, nothing queued */
        spice_conn_close(c, fault, "send of %s failed (fault)", msg_name(c, false, type));
        return -EPIPE;
    }
    size_t hs = spice_header_size(c->cfg.mini_header);
    /* a peer that does not read (or ACK) must not pin unbounded memory; one
     * message into an empty queue always goes, whatever its size */
    if (c->out_len > c->out_head && c->backlog + hs + len > SPICE_CONN_MAX_BACKLOG) {
        spice_conn_close(c, -ENOBUFS,
                         "send queue over %u MiB unread by the peer (%u messages): dropped",
                         SPICE_CONN_MAX_BACKLOG >> 20, (unsigned)(c->out_len - c->out_head));
        return -EPIPE;
    }
    if (c->out_len == c->out_cap) {
        if (c->out_head > 0) {
            memmove(c->out, c->out + c->out_head, (c->out_len - c->out_head) * sizeof(*c->out));
            c->out_len -= c->out_head;
            c->out_head = 0;
        }
        MIG_GROW(c->out, c->out_cap, c->out_len + 1, 16);
    }
    uint8_t *buf = mig_realloc(NULL, hs + len);
    SpiceMsgHeader h = {.serial = ++c->out_serial, .type = type, .size = len};
    spice_header_put(c->cfg.mini_header, buf, &h);
    if (len)
        memcpy(buf + hs, body, len);
    c->out[c->out_len++] = (OutMsg){.buf = buf, .len = hs + len};
    c->backlog += hs + len;
    mig_trace_msg(c->loop->trace, mig_loop_now_ns(c->loop), c->who, "send", msg_name(c, false, type), h.serial,
                  len);
    update_watch(c);
    return 0;
}

int spice_conn_send_raw(SpiceConn *c, uint16_t type, const uint8_t *body, uint32_t len)
{
    return enqueue(c, type, body, len);
}

int spice_conn_send(SpiceConn *c, uint16_t type, const SpiceMDesc *d, const void *body, MigErr **errp)
{
    if (!c->open)
        return -EPIPE;
    uint8_t *b;
    size_t len;
    int r = spice_marshal_encode(d, body, &b, &len, errp);
    if (r < 0)
        return r;
    if (len > UINT32_MAX) {
        free(b);
        return mig_err_set(errp, -EINVAL, "%s: body of %zu bytes", d->name, len);
    }
    r = enqueue(c, type, b, (uint32_t)len);
    free(b);
    return r;
}

/* Server role: may the head message start now? */
static bool window_open(const SpiceConn *c)
{
    if (c->held)
        return false;
    return !c->cfg.is_server || !c->ack_window || c->unacked < 2 * c->ack_window;
}

static void flush_out(SpiceConn *c)
{
    while (c->open && c->out_head < c->out_len) {
        struct iovec iov[IOV_MAX_BATCH];
        int n = 0;
        for (size_t i = c->out_head; i < c->out_len && n < IOV_MAX_BATCH; i++) {
            OutMsg *m = &c->out[i];
            if (!m->admitted) {
                /* server role: a message is admitted by the ACK window once,
                 * when it is first offered to the transport */
                if (!window_open(c))
                    break;
                m->admitted = true;
                if (c->cfg.is_server && c->ack_window)
                    c->unacked++;
            }
            iov[n++] = (struct iovec){.iov_base = m->buf + m->off, .iov_len = m->len - m->off};
        }
        if (n == 0)
            break;
        ssize_t w = mig_transport_writev(c->t, iov, n);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            spice_conn_close(c, (int)w, "write failed");
            return;
        }
        size_t left = (size_t)w;
        for (size_t i = c->out_head; i < c->out_len && left; i++) {
            OutMsg *m = &c->out[i];
            size_t take = MIG_MIN(left, m->len - m->off);
            m->off += take;
            left -= take;
            c->backlog -= take;
        }
        while (c->out_head < c->out_len && c->out[c->out_head].off == c->out[c->out_head].len) {
            free(c->out[c->out_head].buf);
            c->out_head++;
        }
        if (c->out_head == c->out_len)
            c->out_head = c->out_len = 0;
    }
    if (c->open && c->out_len == 0 && c->ops->on_drained)
        c->ops->on_drained(c->opaque);
}

/* ------------------------------------------------------------------ input */

/* Base messages the connection answers itself.  Returns 1 when handled. */
static int handle_base(SpiceConn *c, const SpiceMsgInfo *mi, void *body)
{
    if (c->cfg.is_server) {
        switch (mi->id) {
        case SPICE_MSGC_ACK_SYNC:
            c->peer_generation = ((SpiceMsgU32 *)body)->v;
            return 1;
        case SPICE_MSGC_ACK:
            if (c->ack_window && c->peer_generation == c->ack_generation) {
                c->unacked = c->unacked > c->ack_window ? c->unacked - c->ack_window : 0;
                update_watch(c);
            }
            return 1;
        case SPICE_MSGC_PONG: {
            SpiceMsgPong *p = body;
            uint64_t now = mig_loop_now_ns(c->loop);
            if (p->timestamp <= now)
                c->last_rtt_ns = now - p->timestamp;
            if (c->ops->on_pong)
                c->ops->on_pong(c->opaque, p->id);
            return 1;
        }
        case SPICE_MSGC_DISCONNECTING:
            spice_conn_close(c, 0, "the client is disconnecting (reason %u)", ((SpiceMsgDisconnecting *)body)->reason);
            return 1;
        default:
            return 0;
        }
    }
    switch (mi->id) {
    case SPICE_MSG_SET_ACK: {
        SpiceMsgSetAck *a = body;
        SpiceMsgU32 sync = {a->generation};
        c->ack_window = a->window;
        c->ack_countdown = a->window;
        spice_conn_send(c, SPICE_MSGC_ACK_SYNC, spice_msg_find(0, true, SPICE_MSGC_ACK_SYNC)->desc, &sync, NULL);
        return 1;
    }
    case SPICE_MSG_PING: {
        SpiceMsgPing *p = body;
        SpiceMsgPong pong = {.id = p->id, .timestamp = p->timestamp};
        spice_conn_send(c, SPICE_MSGC_PONG, spice_msg_find(0, true, SPICE_MSGC_PONG)->desc, &pong, NULL);
        return 1;
    }
    default:
        return 0;
    }
}

/* Handle one complete message; false when the connection closed. */
static bool handle_message(SpiceConn *c, const SpiceMsgHeader *h, const uint8_t *body)
{
    if (c->adopt_serial) {
        /* seamless migration: the peer's serials go on from the other server */
        c->adopt_serial = false;
        if (!c->cfg.mini_header && h->serial)
            c->in_serial = h->serial - 1;
    }
    c->in_serial++;
    const char *ch = spice_channel_type_name(c->cfg.channel_type);
    if (!c->cfg.mini_header && h->serial != c->in_serial) {
        spice_conn_close(c, -EPROTO, "channel %s: message %u has serial %llu, expected %llu", ch, h->type,
                         (unsigned long long)h->serial, (unsigned long long)c->in_serial);
        return false;
    }
    const SpiceMsgInfo *mi = spice_msg_find(c->cfg.channel_type, c->cfg.is_server, h->type);
    if (!mi) {
        spice_conn_close(c, -EPROTO, "channel %s: unknown message %u (%u bytes)", ch, h->type, h->size);
        return false;
    }
    mig_trace_msg(c->loop->trace, mig_loop_now_ns(c->loop), c->who, "recv", mi->name, c->in_serial, h->size);
    /* client role: every message counts towards the next ACK */
    if (!c->cfg.is_server && c->ack_window && mi->id != SPICE_MSG_SET_ACK && --c->ack_countdown == 0) {
        c->ack_countdown = c->ack_window;
        spice_conn_send_raw(c, SPICE_MSGC_ACK, NULL, 0);
    }
    void *obj = mig_malloc0(mi->desc->size);
    MigErr *err = NULL;
    int r = spice_marshal_decode(mi->desc, body, h->size, obj, &err);
    if (r == 0 && !handle_base(c, mi, obj))
        r = c->ops->on_message(c->opaque, mi, obj, h->size, &err);
    spice_marshal_free(mi->desc, obj);
    free(obj);
    if (r < 0 && c->open)
        spice_conn_close(c, r, "channel %s: message %s: %s", ch, mi->name, err ? err->msg : "refused");
    mig_err_free(err);
    return c->open;
}

static void read_in(SpiceConn *c)
{
    size_t hs = spice_header_size(c->cfg.mini_header);
    int handled = 0;
    for (;;) {
        /* take every complete message in the buffer */
        size_t pos = 0, need = 0;
        while (c->open && !c->paused && handled < MSGS_PER_WAKEUP && c->in_len - pos >= hs) {
            SpiceMsgHeader h;
            MigErr *err = NULL;
            if (spice_header_parse(c->cfg.mini_header, c->in + pos, &h, &err) < 0) {
                spice_conn_close(c, -EPROTO, "channel %s: %s", spice_channel_type_name(c->cfg.channel_type),
                                 err->msg);
                mig_err_free(err);
                return;
            }
            if (h.size > c->cfg.max_in) {
                spice_conn_close(c, -EPROTO, "channel %s: message %u (%s) of %u bytes, more than the %u allowed",
                                 spice_channel_type_name(c->cfg.channel_type), h.type, msg_name(c, true, h.type),
                                 h.size, c->cfg.max_in);
                return;
            }
            if (c->in_len - pos - hs < h.size) {
                need = hs + h.size;
                break;
            }
            bool ok = handle_message(c, &h, c->in + pos + hs);
            pos += hs + h.size;
            handled++;
            if (!ok)
                return;
        }
        if (pos) {
            memmove(c->in, c->in + pos, c->in_len - pos);
            c->in_len -= pos;
        }
        if (!c->open || c->paused || handled >= MSGS_PER_WAKEUP)
            return;
        /* room for a whole message (max_in bounds it) or a chunk of them */
        size_t cap = MIG_MAX(need, (size_t)IN_CHUNK);
        if (cap > c->in_cap) {
            c->in = mig_realloc(c->in, cap);
            c->in_cap = cap;
        }
        int fault = mig_fault_fire(MIG_FAULT_SPICE_CONN_RECEIVE);
        if (fault) {
            spice_conn_close(c, fault, "read failed (fault)");
            return;
        }
        ssize_t r = mig_transport_read(c->t, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == -EAGAIN)
            return;
        if (r == 0) {
            spice_conn_close(c, c->in_len ? -EPROTO : 0, c->in_len ? "the peer closed in the middle of a message"
                                                                   : "the peer closed the connection");
            return;
        }
        if (r < 0) {
            spice_conn_close(c, (int)r, "read failed");
            return;
        }
        c->in_len += (size_t)r;
    }
}

static void io_cb(MigTransport *t, uint32_t events, void *opaque)
{
    SpiceConn *c = opaque;
    if (c->open && (events & (MIG_LOOP_IN | MIG_LOOP_HUP | MIG_LOOP_ERR)))
        read_in(c);
    if (c->open && (events & MIG_LOOP_OUT))
        flush_out(c);
    if (c->open)
        update_watch(c);
}

static void update_watch(SpiceConn *c)
{
    if (!c->open)
        return;
    uint32_t want = c->paused ? 0 : MIG_LOOP_IN;
    if (c->out_head < c->out_len && !c->held && (c->out[c->out_head].admitted || window_open(c)))
        want |= MIG_LOOP_OUT;
    if (want != c->watching) {
        c->watching = want;
        mig_transport_watch(c->t, want, io_cb, c);
    }
}

/* ------------------------------------------------------------------ life */

SpiceConn *spice_conn_new(MigLoop *loop, MigTransport *t, const SpiceConnConfig *cfg, const SpiceConnOps *ops,
                          void *opaque)
{
    SpiceConn *c = mig_malloc0(sizeof(*c));
    c->loop = loop;
    c->t = t;
    c->cfg = *cfg;
    snprintf(c->who, sizeof(c->who), "%s", cfg->who ? cfg->who : "spice");
    c->cfg.who = c->who;
    c->ops = ops;
    c->opaque = opaque;
    c->open = true;
    update_watch(c);
    return c;
}

void spice_conn_pause(SpiceConn *c)
{
    c->paused = true;
    if (c->resume_defer) {
        mig_loop_remove(c->loop, c->resume_defer);
        c->resume_defer = NULL;
    }
    update_watch(c);
}

static void resume_cb(void *opaque)
{
    SpiceConn *c = opaque;
    c->resume_defer = NULL;
    if (c->open && !c->paused)
        read_in(c);
    if (c->open)
        update_watch(c);
}

void spice_conn_resume(SpiceConn *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    if (c->open && !c->resume_defer)
        c->resume_defer = mig_loop_defer(c->loop, resume_cb, c);
}

bool spice_conn_paused(const SpiceConn *c)
{
    return c->paused;
}

void spice_conn_free(SpiceConn *c)
{
    if (!c)
        return;
    if (c->open) {
        c->open = false;
        mig_transport_watch(c->t, 0, NULL, NULL);
        mig_transport_close(c->t);
        c->t = NULL;
    }
    if (c->closed_defer)
        mig_loop_remove(c->loop, c->closed_defer);
    if (c->resume_defer)
        mig_loop_remove(c->loop, c->resume_defer);
    for (size_t i = c->out_head; i < c->out_len; i++)
        free(c->out[i].buf);
    free(c->out);
    free(c->in);
    free(c);
}

int spice_conn_set_ack(SpiceConn *c, uint32_t generation, uint32_t window)
{
    SpiceMsgSetAck a = {generation, window};
    int r = spice_conn_send(c, SPICE_MSG_SET_ACK, spice_msg_find(0, false, SPICE_MSG_SET_ACK)->desc, &a, NULL);
    if (r == 0) {
        c->ack_generation = generation;
        c->ack_window = window;
        c->unacked = 0;
    }
    return r;
}

int spice_conn_ping(SpiceConn *c, uint32_t pad)
{
    uint8_t *zeros = pad ? mig_malloc0(pad) : NULL;
    SpiceMsgPing p = {.id = ++c->ping_id, .timestamp = mig_loop_now_ns(c->loop), .data = {pad, zeros}};
    int r = spice_conn_send(c, SPICE_MSG_PING, spice_msg_find(0, false, SPICE_MSG_PING)->desc, &p, NULL);
    free(zeros);
    return r < 0 ? r : (int)(p.id & 0x7fffffff);
}

bool spice_conn_is_open(const SpiceConn *c)
{
    return c->open;
}

uint64_t spice_conn_backlog(const SpiceConn *c)
{
    return c->backlog;
}

uint32_t spice_conn_queued_messages(const SpiceConn *c)
{
    return (uint32_t)(c->out_len - c->out_head);
}

uint64_t spice_conn_last_sent_serial(const SpiceConn *c)
{
    return c->out_serial;
}

uint64_t spice_conn_last_received_serial(const SpiceConn *c)
{
    return c->in_serial;
}

void spice_conn_set_sent_serial(SpiceConn *c, uint64_t serial)
{
    c->out_serial = serial;
}

uint64_t spice_conn_last_rtt_ns(const SpiceConn *c)
{
    return c->last_rtt_ns;
}

MigTransport *spice_conn_transport(SpiceConn *c)
{
    return c->t;
}

/* ------------------------------------------------------------------ seamless migration */

void spice_conn_hold(SpiceConn *c, bool hold)
{
    c->held = hold;
    update_watch(c);
}

void spice_conn_renumber(SpiceConn *c, uint64_t serial)
{
    c->out_serial = serial;
    for (size_t i = c->out_head; i < c->out_len; i++) {
        OutMsg *m = &c->out[i];
        c->out_serial++;
        if (m->off == 0 && !c->cfg.mini_header) {
            SpiceMsgHeader h;
            if (spice_header_parse(false, m->buf, &h, NULL) == 0) {
                h.serial = c->out_serial;
                spice_header_put(false, m->buf, &h);
            }
        }
    }
}

void spice_conn_adopt_serial(SpiceConn *c)
{
    c->adopt_serial = true;
}

void spice_conn_resume_ack(SpiceConn *c, uint32_t generation, uint32_t window)
{
    c->ack_generation = c->peer_generation = generation;
    c->ack_window = window;
    c->unacked = 0;
    update_watch(c);
}

void spice_conn_inherit(SpiceConn *c, const SpiceConn *from)
{
    c->in_serial = from->in_serial; /* the target's display goes on from the source's serial */
    c->ack_window = from->ack_window;
    c->ack_generation = from->ack_generation;
    c->peer_generation = from->peer_generation;
    c->ack_countdown = from->ack_countdown;
    c->adopt_serial = true;
}

void spice_conn_set_ops(SpiceConn *c, const SpiceConnOps *ops, void *opaque)
{
    c->ops = ops;
    c->opaque = opaque;
}
