/*
 * spice-linker.c - the link stage as a small state machine per connection
 * (spice-linker.h).  Each state waits for a known number of bytes (`want`),
 * then `step` decides what to write and what to wait for next.  Writes are
 * queued in `out` and flushed as the transport accepts them; a refusal sets
 * `fail_after_flush` so the peer reads its reply before the close.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-linker.h"

typedef enum LinkState {
    LS_HEADER,    /* both: 16-byte link header */
    LS_BODY,      /* both: SpiceLinkMess (server) / SpiceLinkReply (client) */
    LS_MECHANISM, /* server: u32 auth mechanism */
    LS_TICKET,    /* server: 128-byte ticket */
    LS_RESULT,    /* client: u32 link result */
    LS_FLUSH,     /* server: the result is going out */
    LS_DONE,
} LinkState;

struct SpiceLinker {
    MigLoop *loop;
    MigTransport *t;
    bool server;
    SpiceLinkServerConfig scfg;
    SpiceLinkClientConfig ccfg;
    SpiceLinkDone done;
    void *opaque;

    LinkState state;
    uint8_t *in;
    size_t in_len, want;
    uint8_t *out;
    size_t out_len, out_off;
    bool fail_after_flush;
    bool auth_selection;
    MigLoopSource *done_defer;
    SpiceLinkResult res;
    char *own_password;
};

static void io_cb(MigTransport *t, uint32_t events, void *opaque);

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void done_cb(void *opaque)
{
    SpiceLinker *l = opaque;
    l->done_defer = NULL;
    if (l->res.err && l->t) {
        mig_transport_watch(l->t, 0, NULL, NULL);
        mig_transport_close(l->t);
        l->t = NULL;
    }
    /* a copy: `done` may free the linker */
    SpiceLinkResult res = l->res;
    res.t = l->t;
    l->t = NULL;
    l->done(l->opaque, &res);
}

static void finish(SpiceLinker *l, int err, uint32_t link_err, const char *fmt, ...) MIG_PRINTF(4, 5);
static void finish(SpiceLinker *l, int err, uint32_t link_err, const char *fmt, ...)
{
    if (l->state == LS_DONE)
        return;
    l->state = LS_DONE;
    l->res.err = err;
    l->res.link_err = link_err;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->res.reason, sizeof(l->res.reason), fmt, ap);
        va_end(ap);
    }
    if (l->t)
        mig_transport_watch(l->t, 0, NULL, NULL);
    l->done_defer = mig_loop_defer(l->loop, done_cb, l);
}

static void queue_out(SpiceLinker *l, const uint8_t *b, size_t n)
{
    l->out = mig_realloc(l->out, l->out_len + n);
    memcpy(l->out + l->out_len, b, n);
    l->out_len += n;
}

static void queue_u32(SpiceLinker *l, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    queue_out(l, b, 4);
}

static void expect(SpiceLinker *l, LinkState s, size_t n)
{
    l->state = s;
    l->want = n;
    l->in_len = 0;
    l->in = mig_realloc(l->in, n ? n : 1);
}

/* Server: refuse with `link_err` (a reply or a result word goes out first). */
static void refuse(SpiceLinker *l, bool as_reply, uint32_t link_err, const char *why)
{
    if (as_reply) {
        uint8_t *b;
        size_t n = spice_link_reply_build(link_err, NULL, NULL, NULL, &b);
        queue_out(l, b, n);
        free(b);
    } else {
        queue_u32(l, link_err);
    }
    l->res.link_err = link_err;
    snprintf(l->res.reason, sizeof(l->res.reason), "%s", why);
    l->fail_after_flush = true;
    l->state = LS_FLUSH;
}

static void server_step(SpiceLinker *l)
{
    MigErr *err = NULL;
    uint32_t link_err = 0;
    switch (l->state) {
    case LS_HEADER: {
        uint32_t size;
        if (spice_link_header_parse(l->in, &size, &link_err, &err) < 0) {
            refuse(l, true, link_err, err->msg);
            break;
        }
        expect(l, LS_BODY, size);
        break;
    }
    case LS_BODY: {
        if (spice_link_mess_parse(l->in, l->in_len, &l->res.mess, &link_err, &err) < 0) {
            refuse(l, true, link_err, err->msg);
            break;
        }
        char why[200] = "";
        SpiceCapSet common = {0}, channel = {0};
        link_err = l->scfg.check(l->opaque, &l->res.mess, &common, &channel, why, sizeof(why));
        if (link_err != SPICE_LINK_ERR_OK) {
            char msg[256];
            snprintf(msg, sizeof(msg), "link: %s (%s)", why[0] ? why : "refused", spice_link_err_name(link_err));
            refuse(l, true, link_err, msg);
            break;
        }
        l->res.server_common = common;
        l->res.server_channel = channel;
        uint8_t *b;
        size_t n = spice_link_reply_build(SPICE_LINK_ERR_OK, spice_ticket_key_public(l->scfg.key), &common,
                                          &channel, &b);
        queue_out(l, b, n);
        free(b);
        l->res.mini_header = spice_caps_has(&common, SPICE_COMMON_CAP_MINI_HEADER) &&
                             spice_caps_has(&l->res.mess.common, SPICE_COMMON_CAP_MINI_HEADER);
        l->auth_selection = spice_caps_has(&common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION) &&
                            spice_caps_has(&l->res.mess.common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION);
        if (l->auth_selection)
            expect(l, LS_MECHANISM, 4);
        else
            expect(l, LS_TICKET, SPICE_TICKET_BYTES);
        break;
    }
    case LS_MECHANISM: {
        uint32_t mech = le32(l->in);
        if (mech != SPICE_COMMON_CAP_AUTH_SPICE) {
            char msg[128];
            snprintf(msg, sizeof(msg), "link: authentication mechanism %u (only SPICE, %u, is offered)", mech,
                     SPICE_COMMON_CAP_AUTH_SPICE);
            refuse(l, false, SPICE_LINK_ERR_PERMISSION_DENIED, msg);
            break;
        }
        expect(l, LS_TICKET, SPICE_TICKET_BYTES);
        break;
    }
    case LS_TICKET: {
        char pw[SPICE_PASSWORD_MAX + 1];
        if (spice_ticket_decrypt(l->scfg.key, l->in, pw, &err) < 0) {
            refuse(l, false, SPICE_LINK_ERR_PERMISSION_DENIED, err->msg);
            break;
        }
        if (l->scfg.ticketing && l->scfg.password && l->scfg.password_expires_ns &&
            mig_loop_now_ns(l->loop) >= l->scfg.password_expires_ns) {
            refuse(l, false, SPICE_LINK_ERR_PERMISSION_DENIED, "ticket: the password expired");
            break;
        }
        if (l->scfg.ticketing && (!l->scfg.password || strcmp(pw, l->scfg.password) != 0)) {
            refuse(l, false, SPICE_LINK_ERR_PERMISSION_DENIED,
                   l->scfg.password ? "ticket: wrong password" : "ticket: no password is set");
            break;
        }
        queue_u32(l, SPICE_LINK_ERR_OK);
        l->state = LS_FLUSH;
        break;
    }
    default:
        break;
    }
    mig_err_free(err);
}

static void client_step(SpiceLinker *l)
{
    MigErr *err = NULL;
    switch (l->state) {
    case LS_HEADER: {
        uint32_t size, lerr;
        if (spice_link_header_parse(l->in, &size, &lerr, &err) < 0)
            finish(l, -EPROTO, lerr, "server reply: %s", err->msg);
        else
            expect(l, LS_BODY, size);
        break;
    }
    case LS_BODY: {
        SpiceLinkReplyInfo r;
        if (spice_link_reply_parse(l->in, l->in_len, &r, &err) < 0) {
            finish(l, -EPROTO, SPICE_LINK_ERR_INVALID_DATA, "server reply: %s", err->msg);
            break;
        }
        if (r.error != SPICE_LINK_ERR_OK) {
            finish(l, -ECONNREFUSED, r.error, "the server refused the link: %s", spice_link_err_name(r.error));
            break;
        }
        l->res.server_common = r.common;
        l->res.server_channel = r.channel;
        const SpiceLinkMessInfo *m = &l->ccfg.mess;
        l->res.mess = *m;
        l->res.mini_header = spice_caps_has(&r.common, SPICE_COMMON_CAP_MINI_HEADER) &&
                             spice_caps_has(&m->common, SPICE_COMMON_CAP_MINI_HEADER);
        if (spice_caps_has(&r.common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION) &&
            spice_caps_has(&m->common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION))
            queue_u32(l, SPICE_COMMON_CAP_AUTH_SPICE);
        uint8_t ticket[SPICE_TICKET_BYTES];
        if (spice_ticket_encrypt_cached(l->ccfg.tickets, r.pub_key, l->ccfg.password ? l->ccfg.password : "",
                                        l->ccfg.prng, ticket, &err) < 0) {
            finish(l, err->code, SPICE_LINK_ERR_ERROR, "%s", err->msg);
            break;
        }
        queue_out(l, ticket, sizeof(ticket));
        expect(l, LS_RESULT, 4);
        break;
    }
    case LS_RESULT: {
        uint32_t res = le32(l->in);
        if (res != SPICE_LINK_ERR_OK)
            finish(l, -EACCES, res, "the server refused the ticket: %s", spice_link_err_name(res));
        else
            finish(l, 0, SPICE_LINK_ERR_OK, NULL);
        break;
    }
    default:
        break;
    }
    mig_err_free(err);
}

static void pump(SpiceLinker *l)
{
    while (l->state != LS_DONE) {
        /* write what is queued */
        while (l->out_off < l->out_len) {
            ssize_t w = mig_transport_write(l->t, l->out + l->out_off, l->out_len - l->out_off);
            if (w == -EAGAIN)
                break;
            if (w < 0) {
                finish(l, (int)w, SPICE_LINK_ERR_ERROR, "link: write failed: %s", mig_errno_name((int)w));
                return;
            }
            l->out_off += (size_t)w;
        }
        if (l->out_off == l->out_len)
            l->out_off = l->out_len = 0;
        if (l->state == LS_FLUSH) {
            if (l->out_len)
                break;
            if (l->fail_after_flush)
                finish(l, -EPROTO, l->res.link_err, NULL);
            else
                finish(l, 0, SPICE_LINK_ERR_OK, NULL);
            return;
        }
        /* read what the state waits for */
        if (l->in_len < l->want) {
            ssize_t r = mig_transport_read(l->t, l->in + l->in_len, l->want - l->in_len);
            if (r == -EAGAIN)
                break;
            if (r <= 0) {
                finish(l, r ? (int)r : -ECONNRESET, SPICE_LINK_ERR_ERROR,
                       "link: the peer %s during the link stage (%zu of %zu bytes of the %s)",
                       r ? "failed" : "closed", l->in_len, l->want,
                       l->state == LS_HEADER ? "link header" : l->state == LS_BODY ? "link message" : "auth");
                return;
            }
            l->in_len += (size_t)r;
            if (l->in_len < l->want)
                continue;
        }
        if (l->server)
            server_step(l);
        else
            client_step(l);
    }
    if (l->state != LS_DONE)
        mig_transport_watch(l->t, MIG_LOOP_IN | (l->out_len ? MIG_LOOP_OUT : 0), io_cb, l);
}

static void io_cb(MigTransport *t, uint32_t events, void *opaque)
{
    pump(opaque);
}

static void start_cb(void *opaque)
{
    SpiceLinker *l = opaque;
    l->done_defer = NULL;
    int fault = mig_fault_fire(MIG_FAULT_SPICE_LINKER_LINK);
    if (fault) {
        finish(l, fault, SPICE_LINK_ERR_ERROR, "link: the link stage failed (fault)");
        return;
    }
    pump(l);
}

static SpiceLinker *linker_new(MigLoop *loop, MigTransport *t, SpiceLinkDone done, void *opaque)
{
    SpiceLinker *l = mig_malloc0(sizeof(*l));
    l->loop = loop;
    l->t = t;
    l->done = done;
    l->opaque = opaque;
    expect(l, LS_HEADER, SPICE_LINK_HEADER_SIZE);
    /* start from the loop: `done` never runs inside the constructor */
    l->done_defer = mig_loop_defer(loop, start_cb, l);
    return l;
}

SpiceLinker *spice_link_accept(MigLoop *loop, MigTransport *t, const SpiceLinkServerConfig *cfg,
                               SpiceLinkDone done, void *opaque)
{
    SpiceLinker *l = linker_new(loop, t, done, opaque);
    l->server = true;
    l->scfg = *cfg;
    /* its own copy: the server's password may change while this link runs */
    l->scfg.password = l->own_password = cfg->password ? mig_strdup(cfg->password) : NULL;
    return l;
}

SpiceLinker *spice_link_connect(MigLoop *loop, MigTransport *t, const SpiceLinkClientConfig *cfg,
                                SpiceLinkDone done, void *opaque)
{
    SpiceLinker *l = linker_new(loop, t, done, opaque);
    l->ccfg = *cfg;
    uint8_t *b;
    size_t n = spice_link_mess_build(&cfg->mess, &b);
    queue_out(l, b, n);
    free(b);
    return l;
}

void spice_linker_free(SpiceLinker *l)
{
    if (!l)
        return;
    if (l->done_defer)
        mig_loop_remove(l->loop, l->done_defer);
    if (l->t) {
        mig_transport_watch(l->t, 0, NULL, NULL);
        mig_transport_close(l->t);
    }
    free(l->in);
    free(l->out);
    free(l->own_password);
    free(l);
}
