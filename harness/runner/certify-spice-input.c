/*
 * certify-spice-input.c - the link-stage and hostile-input cases of
 * `migcert certify --spice` (certify-spice.h), all against the source:
 *
 *   link.channels              a client links main and every listed
 *                              channel, and gets a primary surface
 *   link.<error>               a link the server must refuse gets the link
 *                              error docs/protocol-spice.md section 2 names
 *                              (bad magic, major 3, a size below the link
 *                              message, a channel of no session, a channel
 *                              not offered, a wrong password)
 *   hostile.<input>            a message a client must not send: the server
 *                              disconnects that client (or, for an
 *                              unsolicited one, may ignore it), keeps its
 *                              other clients and stays up
 *   hostile.blob-<defect>      a migration blob with a bad magic or a newer
 *                              version after DO_SEAMLESS was ACKed: refused,
 *                              the process goes on
 *
 * spice-server 0.15.1 ends the whole QEMU process on an unsolicited
 * MIGRATE_FLUSH_MARK and on both blobs (docs/protocol-spice.md section 12,
 * trap 3): those cases fail under spice-no-abort.
 *
 * A server that serves one client at a time (spice-server's default) drops
 * the first client when a second links: then the "other clients" part is
 * the server serving a new client afterwards, and the note says so.
 *
 * The raw link cases write the link header themselves over a blocking
 * socket (poll bounded by --timeout); the others run on the loop.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "certify-spice.h"
#include "spice/spice-conn.h"
#include "spice/spice-linker.h"

/* A port channel's PORT_INIT (its first message) came, or the session ended. */
static bool port_named(void *opaque)
{
    FakeClient *fc = opaque;
    return !fake_client_has_channel(fc, SPICE_CHANNEL_PORT, 0) || fake_client_channels(fc) == 0 ||
           fake_client_count(fc, SPICE_CHANNEL_PORT, SPICE_MSG_PORT_INIT) > 0;
}

void cs_case_link_channels(CsRun *r, CertCtx *c, const CsCase *k)
{
    FakeClient *fc = cs_client_new(r, c, &r->src, NULL, "certify.client");
    if (fc && cs_client_settled(r, c, fc, k->rule)) {
        const SpiceSurface *s = fake_client_surface(fc, 0, 0);
        size_t o = (size_t)snprintf(c->res->note, sizeof(c->res->note), "%zu channels:",
                                    fake_client_linked_channels(fc));
        uint8_t t, id;
        for (size_t i = 0; fake_client_channel_ever(fc, i, &t, &id) && o < sizeof(c->res->note); i++)
            o += (size_t)snprintf(c->res->note + o, sizeof(c->res->note) - o, " %s:%u", spice_channel_type_name(t),
                                  id);
        if (o < sizeof(c->res->note))
            o += (size_t)snprintf(c->res->note + o, sizeof(c->res->note) - o, "; primary %ux%u", s->width,
                                  s->height);
        /* a port carrying another device's bytes is fine: only migcert's
         * own (fake-vmc) has a sequence to check */
        FakeClientMediaStats port;
        cs_wait(r, port_named, fc);
        fake_client_media_stats(fc, SPICE_CHANNEL_PORT, &port);
        if (port.name[0] && o < sizeof(c->res->note))
            snprintf(c->res->note + o, sizeof(c->res->note) - o, "; port %s (%s)", port.name,
                     port.foreign ? "not migcert's: its bytes are accepted as they come"
                                  : "migcert's: its bytes are checked in sequence");
    }
    cs_client_free(fc);
}

/* ---- raw link stage ---- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Read exactly n bytes within the hang guard; the count read. */
static size_t read_n(int fd, uint8_t *b, size_t n, uint64_t timeout_ns)
{
    size_t got = 0;
    int ms = (int)(timeout_ns / 1000000u);
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0)
            break;
        ssize_t k = recv(fd, b + got, n - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* Send a link header (magic, major, size) and `mess_len` bytes of a link
 * message for main, and read the error of the server's reply. */
static int raw_link(CsRun *r, uint32_t magic, uint32_t major, uint32_t size, size_t mess_len, uint32_t *link_err,
                    char *why, size_t len)
{
    MigErr *err = NULL;
    int fd = spice_dial(r->src.spice.host, r->src.spice.port, r->src.spice.is_unix, &err);
    if (fd < 0) {
        snprintf(why, len, "cannot connect to %s: %s", r->src.spice_arg, err ? err->msg : "failed");
        mig_err_free(err);
        return -ECONNREFUSED;
    }
    uint8_t b[16 + 22] = {0};
    put32(b, magic);
    put32(b + 4, major);
    put32(b + 8, SPICE_VERSION_MINOR);
    put32(b + 12, size);
    /* SpiceLinkMess: connection 0, main:0, one common cap word, no channel caps, caps at 18 */
    b[16 + 4] = SPICE_CHANNEL_MAIN;
    put32(b + 16 + 6, 1);
    put32(b + 16 + 14, 18);
    put32(b + 16 + 18, 1u << SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION | 1u << SPICE_COMMON_CAP_MINI_HEADER);
    size_t n = 16 + mess_len;
    int rc = send(fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -EPIPE;
    uint8_t h[16], reply[178];
    if (rc == 0 && read_n(fd, h, 16, r->timeout_ns) != 16) {
        snprintf(why, len, "the server closed the connection without a link reply");
        rc = -EPROTO;
    } else if (rc == 0 && (memcmp(h, "REDQ", 4) || get32(h + 12) < 4 || get32(h + 12) > sizeof(reply))) {
        snprintf(why, len, "the reply's header is not a link reply (magic %.4s, size %u)", (const char *)h,
                 get32(h + 12));
        rc = -EPROTO;
    } else if (rc == 0 && read_n(fd, reply, get32(h + 12), r->timeout_ns) != get32(h + 12)) {
        snprintf(why, len, "the link reply was cut short");
        rc = -EPROTO;
    } else if (rc == 0) {
        *link_err = get32(reply);
    } else {
        snprintf(why, len, "the server closed the connection before the link message was sent");
    }
    close(fd);
    return rc;
}

typedef struct Probe {
    CsRun *r;
    SpiceLinker *linker;
    SpiceConn *conn;
    bool done, closed;
    SpiceLinkResult res;
    char closed_why[256];
    bool acked, nacked; /* DO_SEAMLESS answered */
} Probe;

static int probe_message(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    Probe *p = opaque;
    p->acked |= mi->id == SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK;
    p->nacked |= mi->id == SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_NACK;
    return 0;
}

static void probe_closed(void *opaque, int err, const char *reason)
{
    Probe *p = opaque;
    p->closed = true;
    snprintf(p->closed_why, sizeof(p->closed_why), "%s", reason ? reason : "closed");
}

static const SpiceConnOps probe_ops = {.on_message = probe_message, .on_closed = probe_closed};

static void probe_linked(void *opaque, SpiceLinkResult *res)
{
    Probe *p = opaque;
    spice_linker_free(p->linker);
    p->linker = NULL;
    p->res = *res;
    p->done = true;
    if (res->err == 0) {
        SpiceConnConfig cfg = {.is_server = false, .mini_header = res->mini_header,
                               .channel_type = res->mess.channel_type, .channel_id = res->mess.channel_id,
                               .max_in = 64u << 20, .who = "certify.probe"};
        p->conn = spice_conn_new(p->r->loop, res->t, &cfg, &probe_ops, p);
        p->res.t = NULL;
    }
}

static bool probe_done(void *opaque)
{
    return ((Probe *)opaque)->done;
}

/* Link one channel (type, id) with connection id `conn_id` and the client
 * capabilities of spice-gtk, on the loop; 0 when linking ran to an end
 * (p->res says how), else -errno with `why`. */
static int probe_link(CsRun *r, Probe *p, CsSide *s, uint32_t conn_id, uint8_t type, uint8_t id, const char *password,
                      char *why, size_t len)
{
    memset(p, 0, sizeof(*p));
    p->r = r;
    MigErr *err = NULL;
    int fd = spice_dial(s->spice.host, s->spice.port, s->spice.is_unix, &err);
    if (fd < 0) {
        snprintf(why, len, "cannot connect to %s: %s", s->spice_arg, err ? err->msg : "failed");
        mig_err_free(err);
        return -ECONNREFUSED;
    }
    SpiceLinkClientConfig lc = {.mess = {.minor = SPICE_VERSION_MINOR, .connection_id = conn_id,
                                         .channel_type = type, .channel_id = id},
                                .password = password, .prng = &r->loop->prng};
    spice_caps_set(&lc.mess.common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION);
    spice_caps_set(&lc.mess.common, SPICE_COMMON_CAP_AUTH_SPICE);
    spice_caps_set(&lc.mess.common, SPICE_COMMON_CAP_MINI_HEADER);
    if (type == SPICE_CHANNEL_MAIN)
        for (unsigned cap = 0; cap < 4; cap++)
            spice_caps_set(&lc.mess.channel, cap);
    p->linker = spice_link_connect(r->loop, mig_transport_fd_new(r->loop, fd, s->spice.is_unix ? "unix" : "tcp"),
                                   &lc, probe_linked, p);
    if (!cs_wait(r, probe_done, p)) {
        snprintf(why, len, "the link did not end within the hang guard");
        return -ETIMEDOUT;
    }
    return 0;
}

static void probe_free(Probe *p)
{
    spice_linker_free(p->linker);
    p->linker = NULL;
    spice_conn_free(p->conn);
    p->conn = NULL;
}

void cs_case_link_error(CsRun *r, CertCtx *c, const CsCase *k)
{
    static const struct {
        uint32_t want;
        const char *what;
    } v[CS_LINK__COUNT] = {
        [CS_LINK_BAD_MAGIC] = {SPICE_LINK_ERR_INVALID_MAGIC, "a link header with the magic \"XXXX\""},
        [CS_LINK_VERSION] = {SPICE_LINK_ERR_VERSION_MISMATCH, "a link header with major version 3"},
        [CS_LINK_BAD_SIZE] = {SPICE_LINK_ERR_INVALID_DATA, "a link header whose size (8) is below a link message"},
        [CS_LINK_NO_SESSION] = {SPICE_LINK_ERR_BAD_CONNECTION_ID, "a display link with connection id 0 (no session)"},
        [CS_LINK_NO_CHANNEL] = {SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE, "a link to display channel 9 (not offered)"},
    };
    uint32_t got = 0;
    char why[320] = "";
    int rc = 0;
    FakeClient *fc = NULL;
    Probe p = {0};
    switch (k->arg) {
    case CS_LINK_BAD_MAGIC:
        rc = raw_link(r, 0x58585858u, SPICE_VERSION_MAJOR, 22, 22, &got, why, sizeof(why));
        break;
    case CS_LINK_VERSION:
        rc = raw_link(r, SPICE_MAGIC, 3, 22, 22, &got, why, sizeof(why));
        break;
    case CS_LINK_BAD_SIZE:
        rc = raw_link(r, SPICE_MAGIC, SPICE_VERSION_MAJOR, 8, 8, &got, why, sizeof(why));
        break;
    case CS_LINK_NO_SESSION:
    case CS_LINK_NO_CHANNEL: {
        uint32_t session = 0;
        if (k->arg == CS_LINK_NO_CHANNEL) {
            /* a live session, so that only the channel is wrong */
            fc = cs_client_new(r, c, &r->src, NULL, "certify.client");
            if (!fc || !cs_client_settled(r, c, fc, "spice-link"))
                goto out;
            session = fake_client_session_id(fc);
        }
        rc = probe_link(r, &p, &r->src, session, SPICE_CHANNEL_DISPLAY, k->arg == CS_LINK_NO_CHANNEL ? 9 : 0,
                        r->password, why, sizeof(why));
        if (rc == 0 && p.res.err == 0) {
            snprintf(why, sizeof(why), "the server accepted it");
            rc = -EPROTO;
        }
        got = p.res.link_err;
        break;
    }
    }
    if (rc < 0)
        certify_fail(c, k->rule, "%s: %s", v[k->arg].what, why);
    else if (got != v[k->arg].want)
        certify_fail(c, k->rule, "%s got link error %s (%u), not %s (%u)", v[k->arg].what, spice_link_err_name(got),
                     got, spice_link_err_name(v[k->arg].want), v[k->arg].want);
    else
        snprintf(c->res->note, sizeof(c->res->note), "%s", spice_link_err_name(got));
out:
    probe_free(&p);
    cs_client_free(fc);
}

void cs_case_wrong_password(CsRun *r, CertCtx *c, const CsCase *k)
{
    if (!r->password) {
        certify_skip(c, "no --password: the server is taken to run without a password (disable-ticketing)");
        return;
    }
    char wrong[80];
    snprintf(wrong, sizeof(wrong), "not-%.60s", r->password);
    wrong[60] = 0;
    Probe p;
    char why[320] = "";
    if (probe_link(r, &p, &r->src, 0, SPICE_CHANNEL_MAIN, 0, wrong, why, sizeof(why)) < 0)
        certify_fail(c, k->rule, "a main link with a wrong password: %s", why);
    else if (p.res.err == 0)
        certify_fail(c, k->rule, "a main link with a wrong password was accepted");
    else if (p.res.link_err != SPICE_LINK_ERR_PERMISSION_DENIED)
        certify_fail(c, k->rule, "a main link with a wrong password got %s (%u), not PERMISSION_DENIED (7)",
                     spice_link_err_name(p.res.link_err), p.res.link_err);
    else
        snprintf(c->res->note, sizeof(c->res->note), "PERMISSION_DENIED");
    probe_free(&p);
}

/* ---- hostile input ---- */

typedef struct Watch {
    CsRun *r;
    FakeClient *fc;
    size_t linked, lists;
} Watch;

static bool linked_pred(void *opaque)
{
    FakeClient *fc = opaque;
    return cs_links_done(fc) || cs_client_gone(fc);
}

/* The hostile client lost a channel, or answered the sentinel, or the
 * server died. */
static bool reacted(void *opaque)
{
    Watch *w = opaque;
    return fake_client_linked_channels(w->fc) < w->linked ||
           fake_client_count(w->fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST) > w->lists ||
           !cs_qmp_alive(w->r->src.qmp);
}

/* After the hostile input: the server still up and serving a new client;
 * false after failing the case. */
static bool server_survived(CsRun *r, CertCtx *c, const char *what)
{
    if (!cs_side_alive(r, &r->src)) {
        certify_fail(c, "spice-no-abort", "the server process ended after %s (its QMP connection closed)", what);
        return false;
    }
    FakeClient *fresh = cs_client_new(r, c, &r->src, NULL, "certify.after");
    bool ok = fresh && cs_wait(r, linked_pred, fresh) && cs_links_done(fresh) && !fake_client_last_error(fresh)[0];
    if (fresh && !ok)
        certify_fail(c, "spice-hostile-input", "after %s a new client cannot link: %s", what,
                     fake_client_last_error(fresh)[0] ? fake_client_last_error(fresh) : "no CHANNELS_LIST in time");
    cs_client_free(fresh);
    return ok;
}

void cs_case_hostile(CsRun *r, CertCtx *c, const CsCase *k)
{
    static const struct {
        uint16_t msg;
        uint32_t len;
        bool may_ignore; /* unsolicited: ignoring it is fine too */
        const char *what;
    } v[CS_HOSTILE__COUNT] = {
        [CS_HOSTILE_TRUNCATED] = {SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST, 1, false, "a MOUSE_MODE_REQUEST of 1 byte (2 due)"},
        [CS_HOSTILE_OVERSIZED] = {SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST, 1u << 20, false,
                                  "a MOUSE_MODE_REQUEST of 1 MiB (2 bytes due)"},
        [CS_HOSTILE_UNKNOWN] = {999, 4, false, "a message of unknown type 999"},
        [CS_HOSTILE_UNSOLICITED_CONNECTED] = {SPICE_MSGC_MAIN_MIGRATE_CONNECTED, 0, true,
                                              "MIGRATE_CONNECTED with no migration"},
        [CS_HOSTILE_UNSOLICITED_END] = {SPICE_MSGC_MAIN_MIGRATE_END, 0, true, "MIGRATE_END to a server it is not "
                                                                              "migrating to"},
        [CS_HOSTILE_FLUSH_MARK] = {SPICE_MSGC_MIGRATE_FLUSH_MARK, 0, true, "an unsolicited MIGRATE_FLUSH_MARK"},
    };
    char what[160];
    snprintf(what, sizeof(what), "%s on main", v[k->arg].what);
    FakeClient *by = cs_client_new(r, c, &r->src, NULL, "certify.bystander");
    FakeClient *fc = NULL;
    uint8_t *body = NULL;
    if (!by || !cs_wait(r, linked_pred, by) || !cs_links_done(by)) {
        certify_fail(c, "spice-link", "the bystander client did not link: %s", by ? fake_client_last_error(by) : "");
        goto out;
    }
    size_t by_linked = fake_client_linked_channels(by);
    fc = cs_client_new(r, c, &r->src, NULL, "certify.hostile");
    if (!fc || !cs_wait(r, linked_pred, fc) || !cs_links_done(fc)) {
        certify_fail(c, "spice-link", "the second client did not link: %s", fc ? fake_client_last_error(fc) : "");
        goto out;
    }
    bool single = fake_client_linked_channels(by) < by_linked;
    Watch w = {r, fc, fake_client_linked_channels(fc),
               fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST)};
    body = mig_malloc0(v[k->arg].len + 4);
    body[0] = SPICE_MOUSE_MODE_SERVER;
    fake_client_send_raw(fc, SPICE_CHANNEL_MAIN, 0, v[k->arg].msg, body, v[k->arg].len);
    /* a sentinel the server answers (CHANNELS_LIST) if it read past the input */
    fake_client_send_raw(fc, SPICE_CHANNEL_MAIN, 0, SPICE_MSGC_MAIN_ATTACH_CHANNELS, NULL, 0);
    cs_wait(r, reacted, &w);
    /* what the clients saw, before a new client (which a one-client server
     * lets in by dropping them) checks that the server still serves */
    bool dropped = fake_client_linked_channels(fc) < w.linked;
    bool answered = fake_client_count(fc, SPICE_CHANNEL_MAIN, SPICE_MSG_MAIN_CHANNELS_LIST) > w.lists;
    size_t by_now = fake_client_linked_channels(by);
    if (!server_survived(r, c, what))
        goto out;
    if (!dropped && !(answered && v[k->arg].may_ignore)) {
        certify_fail(c, "spice-hostile-input", "after %s the client is still linked%s", what,
                     answered ? " and served (the input was accepted)" : " (no reaction within the hang guard)");
        goto out;
    }
    if (!single && by_now < by_linked) {
        certify_fail(c, "spice-hostile-input", "%s from one client closed %zu of another client's %zu channels", what,
                     by_linked - by_now, by_linked);
        goto out;
    }
    snprintf(c->res->note, sizeof(c->res->note), "%s; %s", dropped ? "that client was disconnected" : "ignored",
             single ? "the server serves one client at a time: a new client linked afterwards"
                    : "the other client kept every channel");
out:
    free(body);
    cs_client_free(fc);
    cs_client_free(by);
}

static bool probe_answered(void *opaque)
{
    Probe *p = opaque;
    return p->closed || p->acked || p->nacked || !cs_qmp_alive(p->r->src.qmp);
}

static bool probe_gone(void *opaque)
{
    Probe *p = opaque;
    return p->closed || !cs_qmp_alive(p->r->src.qmp);
}

void cs_case_hostile_blob(CsRun *r, CertCtx *c, const CsCase *k)
{
    const char *what = k->arg == CS_BLOB_BAD_MAGIC ? "a main migration blob with the magic \"XXXX\""
                                                   : "a main migration blob of version 2 (the protocol's is 1)";
    Probe p;
    char why[320] = "";
    /* a migrating client's main link: connection id != 0 */
    if (probe_link(r, &p, &r->src, 0x5eed, SPICE_CHANNEL_MAIN, 0, r->password, why, sizeof(why)) < 0 || p.res.err) {
        certify_fail(c, "spice-link", "a main link with connection id 0x5eed: %s",
                     why[0] ? why : p.res.reason);
        goto out;
    }
    if (!spice_caps_has(&p.res.server_channel, SPICE_MAIN_CAP_SEAMLESS_MIGRATE)) {
        certify_skip(c, "the server's main link reply has no SEAMLESS_MIGRATE: it takes no migration blob");
        goto out;
    }
    uint8_t v[4];
    put32(v, 1);
    spice_conn_send_raw(p.conn, SPICE_MSGC_MAIN_MIGRATE_DST_DO_SEAMLESS, v, 4);
    cs_wait(r, probe_answered, &p);
    char seen[160];
    snprintf(seen, sizeof(seen), "DO_SEAMLESS got %s",
             p.acked ? "ACK" : p.nacked ? "NACK" : p.closed ? "a closed link" : "no answer");
    if (!p.closed) {
        uint8_t blob[8 + 57] = {0};
        put32(blob, k->arg == CS_BLOB_BAD_MAGIC ? 0x58585858u : 0x444D4E4Du /* "MNMD" */);
        put32(blob + 4, k->arg == CS_BLOB_BAD_MAGIC ? 1 : 2);
        put32(blob + 8, 1); /* the char device's version */
        spice_conn_send_raw(p.conn, SPICE_MSGC_MIGRATE_DATA, blob, sizeof(blob));
        cs_wait(r, probe_gone, &p);
        if (!p.closed && cs_qmp_alive(r->src.qmp)) {
            char w2[400];
            snprintf(w2, sizeof(w2), "%s after %s", what, seen);
            if (!server_survived(r, c, w2))
                goto out;
            certify_fail(c, "spice-blob-refused", "%s was accepted after %s: the link stayed open", what, seen);
            goto out;
        }
    }
    char w2[400];
    snprintf(w2, sizeof(w2), "%s after %s", what, seen);
    if (server_survived(r, c, w2))
        snprintf(c->res->note, sizeof(c->res->note), "%s; %s", seen, p.closed ? "the link was closed" : "");
out:
    probe_free(&p);
}
