/*
 * spice-server.c - channels, clients and channel clients of one SPICE
 * server, and the hand-over from the link stage to a channel
 * (spice-server.h).
 *
 * Lifetimes: a SpiceChannelClient lives from its link to the on_closed of
 * its connection (or spice_server_free); a SpiceClient lives while it has a
 * channel client, and leaves the server's list when its main channel goes
 * (its other channels are closed then and follow from the loop).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-linker.h"
#include "spice-server.h"
#include "spice-ticket.h"

#define DEFAULT_ACK_WINDOW 20u
#define MIGRATE_DATA_TIMEOUT_NS 10000000000ull /* DISPLAY_CLIENT_MIGRATE_DATA_TIMEOUT */

/* A channel client's part in a seamless migration. */
typedef enum CcMig {
    CC_MIG_NONE,
    CC_MIG_SRC_FLUSH, /* source: MIGRATE with NEED_FLUSH sent, waiting for FLUSH_MARK */
    CC_MIG_SRC_DONE,  /* source: MIGRATE_DATA (or MIGRATE without data) sent: the client leaves */
    CC_MIG_DST_WAIT,  /* target: waiting for the client's MIGRATE_DATA */
} CcMig;

struct SpiceChannel {
    SpiceServer *server;
    uint8_t type, id;
    const SpiceChannelClass *cls;
    void *priv;
};

struct SpiceChannelClient {
    SpiceClient *client;
    SpiceChannel *channel;
    SpiceConn *conn;
    SpiceLinkMessInfo link;
    void *priv;
    CcMig mig;
    uint32_t mig_flags;      /* source: the flags of the MIGRATE sent */
    bool prepared;           /* target: migrate_prepare ran */
    uint8_t *pending_blob;   /* target: data that came while the machine was loading */
    size_t pending_len;
    MigLoopSource *mig_timer; /* target: the wait for the data */
};

/* A link of a migrating client, linked but not started (semi-seamless
 * target: held until the client's MSGC_MAIN_MIGRATE_END). */
typedef struct HeldLink {
    SpiceLinkResult res;
} HeldLink;

struct SpiceClient {
    SpiceServer *server;
    uint32_t session_id;
    bool listed; /* still in the server's client list (its main is alive) */
    bool migrating_in; /* main linked with the source's session id, not yet ended */
    bool seamless_in;  /* the target ACKed DO_SEAMLESS: channels wait for their data */
    SpiceChannelClient **ccs;
    size_t nccs;
    HeldLink **held;
    size_t nheld;
};

typedef struct PendingLink {
    SpiceServer *server;
    SpiceLinker *linker;
} PendingLink;

struct SpiceServer {
    MigLoop *loop;
    /* every client with a channel client left; `listed` ones have a live
     * main channel and are the server's sessions */
    SpiceServerConfig cfg;
    char who[48];
    char *password;
    uint64_t password_expires_ns; /* 0: never */
    const SpiceTicketKey *key;
    SpiceTicketKey *own_key; /* made here when the config gave none */
    SpiceChannel **channels;
    size_t nchannels;
    SpiceClient **clients;
    size_t nclients;
    PendingLink **pending;
    size_t npending;
    void (*pong_hook)(void *opaque, SpiceChannelClient *cc, uint32_t id);
    void *pong_opaque;
    bool loading; /* the machine is loading an incoming migration */
};

/* ------------------------------------------------------------------ lists */

#define LIST_PUSH(arr, n, item)                                          \
    do {                                                                 \
        (arr) = mig_realloc((arr), ((n) + 1) * sizeof(*(arr)));          \
        (arr)[(n)++] = (item);                                           \
    } while (0)

/* Remove by value, keeping the order (lists are walked in order: never
 * by address). */
static void list_remove(void **arr, size_t *n, void *item)
{
    for (size_t i = 0; i < *n; i++)
        if (arr[i] == item) {
            memmove(arr + i, arr + i + 1, (*n - i - 1) * sizeof(*arr));
            (*n)--;
            return;
        }
}

static SpiceChannel *find_channel(const SpiceServer *s, uint8_t type, uint8_t id)
{
    for (size_t i = 0; i < s->nchannels; i++)
        if (s->channels[i]->type == type && s->channels[i]->id == id)
            return s->channels[i];
    return NULL;
}

static SpiceClient *find_client(const SpiceServer *s, uint32_t session_id)
{
    for (size_t i = 0; i < s->nclients; i++)
        if (s->clients[i]->listed && s->clients[i]->session_id == session_id)
            return s->clients[i];
    return NULL;
}

/* ------------------------------------------------------------------ channel clients */

static void cc_free(SpiceChannelClient *cc)
{
    SpiceClient *c = cc->client;
    spice_server_emit(c->server, SPICE_SERVER_EV_DISCONNECTED, cc);
    if (cc->channel->cls->disconnect)
        cc->channel->cls->disconnect(cc);
    spice_conn_free(cc->conn);
    if (cc->mig_timer)
        mig_loop_remove(c->server->loop, cc->mig_timer);
    free(cc->pending_blob);
    list_remove((void **)c->ccs, &c->nccs, cc);
    free(cc);
    if (c->nccs == 0) {
        list_remove((void **)c->server->clients, &c->server->nclients, c);
        for (size_t i = 0; i < c->nheld; i++) {
            mig_transport_close(c->held[i]->res.t);
            free(c->held[i]);
        }
        free(c->held);
        free(c->ccs);
        free(c);
    }
}

static int seamless_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, MigErr **errp);

static int cc_on_message(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    SpiceChannelClient *cc = opaque;
    if (mi->id == SPICE_MSGC_MIGRATE_FLUSH_MARK || mi->id == SPICE_MSGC_MIGRATE_DATA || cc->mig != CC_MIG_NONE) {
        int r = seamless_message(cc, mi, body, errp);
        if (r <= 0)
            return r;
    }
    return cc->channel->cls->on_message(cc, mi, body, size, errp);
}

static void server_log(SpiceServer *s, const char *fmt, ...) MIG_PRINTF(2, 3);
static void server_log(SpiceServer *s, const char *fmt, ...)
{
    if (!s->cfg.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->cfg.log(s->cfg.event_opaque, line);
}

static void cc_on_closed(void *opaque, int err, const char *reason)
{
    SpiceChannelClient *cc = opaque;
    SpiceClient *c = cc->client;
    if (err)
        server_log(c->server, "session %u: channel %s:%u closed: %s", c->session_id,
                   spice_channel_type_name(cc->channel->type), cc->channel->id, reason);
    if (cc->channel->type == SPICE_CHANNEL_MAIN && c->listed) {
        /* the session ends: its other channels go too */
        c->listed = false;
        for (size_t i = 0; i < c->nccs; i++)
            if (c->ccs[i] != cc)
                spice_conn_close(c->ccs[i]->conn, 0, "the client's main channel closed");
    }
    cc_free(cc);
}

static void cc_on_drained(void *opaque)
{
    SpiceChannelClient *cc = opaque;
    if (cc->channel->cls->drained)
        cc->channel->cls->drained(cc);
}

static void cc_on_pong(void *opaque, uint32_t id)
{
    SpiceChannelClient *cc = opaque;
    SpiceServer *s = cc->client->server;
    if (s->pong_hook)
        s->pong_hook(s->pong_opaque, cc, id);
}

static const SpiceConnOps cc_ops = {.on_message = cc_on_message, .on_closed = cc_on_closed,
                                    .on_drained = cc_on_drained, .on_pong = cc_on_pong};

/* ------------------------------------------------------------------ linking */

/* Linked or held on this client. */
static bool client_has(const SpiceClient *c, uint8_t type, uint8_t id)
{
    if (spice_client_find(c, type, id))
        return true;
    for (size_t i = 0; i < c->nheld; i++)
        if (c->held[i]->res.mess.channel_type == type && c->held[i]->res.mess.channel_id == id)
            return true;
    return false;
}

static uint32_t link_check(void *opaque, const SpiceLinkMessInfo *m, SpiceCapSet *common, SpiceCapSet *channel,
                           char *why, size_t why_len)
{
    PendingLink *p = opaque;
    SpiceServer *s = p->server;
    spice_caps_set(common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION);
    spice_caps_set(common, SPICE_COMMON_CAP_AUTH_SPICE);
    spice_caps_set(common, SPICE_COMMON_CAP_MINI_HEADER);
    SpiceChannel *ch = find_channel(s, m->channel_type, m->channel_id);
    if (!ch) {
        snprintf(why, why_len, "channel %s:%u is not offered", spice_channel_type_name(m->channel_type),
                 m->channel_id);
        return SPICE_LINK_ERR_CHANNEL_NOT_AVAILABLE;
    }
    if (m->channel_type == SPICE_CHANNEL_MAIN && m->connection_id && s->cfg.no_semi_seamless) {
        snprintf(why, why_len, "main names session %u: this server takes no migrating client (it does not "
                 "offer SEMI_SEAMLESS)", m->connection_id);
        return SPICE_LINK_ERR_BAD_CONNECTION_ID;
    }
    if (m->channel_type != SPICE_CHANNEL_MAIN) {
        SpiceClient *c = find_client(s, m->connection_id);
        if (!c) {
            snprintf(why, why_len, "channel %s:%u names session %u, which does not exist",
                     spice_channel_type_name(m->channel_type), m->channel_id, m->connection_id);
            return SPICE_LINK_ERR_BAD_CONNECTION_ID;
        }
        if (client_has(c, m->channel_type, m->channel_id)) {
            snprintf(why, why_len, "session %u already has channel %s:%u", m->connection_id,
                     spice_channel_type_name(m->channel_type), m->channel_id);
            return SPICE_LINK_ERR_ERROR;
        }
    }
    if (ch->cls->caps)
        ch->cls->caps(ch, channel);
    return SPICE_LINK_ERR_OK;
}

static uint32_t new_session_id(SpiceServer *s)
{
    for (;;) {
        uint32_t id = (uint32_t)mig_loop_random(s->loop);
        if (id && !find_client(s, id))
            return id;
    }
}

static void start_cc(SpiceServer *s, SpiceClient *c, SpiceChannel *ch, SpiceLinkResult *res);
static void seamless_wait(SpiceChannelClient *cc);

static void link_done(void *opaque, SpiceLinkResult *res)
{
    PendingLink *p = opaque;
    SpiceServer *s = p->server;
    list_remove((void **)s->pending, &s->npending, p);
    spice_linker_free(p->linker);
    free(p);
    uint64_t now = mig_loop_now_ns(s->loop);
    if (res->err) {
        mig_trace_log(s->loop->trace, now, s->who, "link refused: %s", res->reason);
        server_log(s, "link refused: %s", res->reason);
        return;
    }
    const SpiceLinkMessInfo *m = &res->mess;
    SpiceChannel *ch = find_channel(s, m->channel_type, m->channel_id);
    SpiceClient *c = NULL;
    if (m->channel_type == SPICE_CHANNEL_MAIN) {
        c = mig_malloc0(sizeof(*c));
        c->server = s;
        c->session_id = m->connection_id ? m->connection_id : new_session_id(s);
        c->listed = true;
        LIST_PUSH(s->clients, s->nclients, c);
    } else {
        c = find_client(s, m->connection_id);
    }
    if (!ch || !c || (m->channel_type != SPICE_CHANNEL_MAIN && client_has(c, m->channel_type, m->channel_id))) {
        /* the session went away (or the channel got linked twice) while this link was in progress */
        mig_trace_log(s->loop->trace, now, s->who, "link of %s:%u dropped: session %u is gone",
                      spice_channel_type_name(m->channel_type), m->channel_id, m->connection_id);
        mig_transport_close(res->t);
        return;
    }
    if (m->channel_type == SPICE_CHANNEL_MAIN && m->connection_id) {
        c->migrating_in = true;
        mig_trace_log(s->loop->trace, now, s->who, "session %u arrives by migration", c->session_id);
    } else if (c->migrating_in) {
        HeldLink *h = mig_malloc0(sizeof(*h));
        h->res = *res;
        LIST_PUSH(c->held, c->nheld, h);
        mig_trace_log(s->loop->trace, now, s->who, "link of %s:%u held until the migration ends",
                      spice_channel_type_name(m->channel_type), m->channel_id);
        return;
    }
    start_cc(s, c, ch, res);
}

static void start_cc(SpiceServer *s, SpiceClient *c, SpiceChannel *ch, SpiceLinkResult *res)
{
    uint64_t now = mig_loop_now_ns(s->loop);
    SpiceChannelClient *cc = mig_malloc0(sizeof(*cc));
    cc->client = c;
    cc->channel = ch;
    cc->link = res->mess;
    LIST_PUSH(c->ccs, c->nccs, cc);
    char who[96];
    snprintf(who, sizeof(who), "%s.%s%u", s->who, ch->cls->name, ch->id);
    SpiceConnConfig cfg = {.is_server = true, .mini_header = res->mini_header, .channel_type = ch->type,
                           .channel_id = ch->id, .max_in = ch->cls->max_in, .who = who};
    cc->conn = spice_conn_new(s->loop, res->t, &cfg, &cc_ops, cc);
    mig_trace_log(s->loop->trace, now, s->who, "linked %s:%u for session %u (%s header)",
                  spice_channel_type_name(ch->type), ch->id, c->session_id, res->mini_header ? "mini" : "full");
    spice_server_emit(s, SPICE_SERVER_EV_CONNECTED, cc);
    MigErr *err = NULL;
    if (c->seamless_in) {
        spice_conn_adopt_serial(cc->conn);
        if (ch->cls->migrate_flags & SPICE_MIGRATE_NEED_DATA_TRANSFER) {
            seamless_wait(cc);
            return;
        }
    }
    if (ch->cls->connect && ch->cls->connect(cc, &err) < 0)
        spice_conn_close(cc->conn, err ? err->code : -EPROTO, "channel %s: start: %s", ch->cls->name,
                         err ? err->msg : "failed");
    else
        spice_server_emit(s, SPICE_SERVER_EV_INITIALIZED, cc);
    mig_err_free(err);
}

void spice_server_accept(SpiceServer *s, MigTransport *t)
{
    PendingLink *p = mig_malloc0(sizeof(*p));
    p->server = s;
    SpiceLinkServerConfig cfg = {.key = s->key, .ticketing = s->cfg.ticketing, .password = s->password,
                                 .password_expires_ns = s->password_expires_ns,
                                 .check = link_check};
    LIST_PUSH(s->pending, s->npending, p);
    p->linker = spice_link_accept(s->loop, t, &cfg, link_done, p);
}

/* ------------------------------------------------------------------ server */

SpiceServer *spice_server_new(MigLoop *loop, const SpiceServerConfig *cfg, MigErr **errp)
{
    SpiceServer *s = mig_malloc0(sizeof(*s));
    s->loop = loop;
    s->cfg = *cfg;
    snprintf(s->who, sizeof(s->who), "%s", cfg->who ? cfg->who : "spice");
    s->cfg.who = s->who;
    s->cfg.name = NULL;
    if (!s->cfg.ack_window)
        s->cfg.ack_window = DEFAULT_ACK_WINDOW;
    s->password = cfg->password ? mig_strdup(cfg->password) : NULL;
    s->cfg.password = NULL;
    if (cfg->name)
        s->cfg.name = mig_strdup(cfg->name);
    MigPrng kp;
    mig_prng_fork(&loop->prng, &kp);
    s->key = cfg->key ? cfg->key : (s->own_key = spice_ticket_key_new(&kp, errp));
    if (!s->key) {
        spice_server_free(s);
        return NULL;
    }
    return s;
}

void spice_server_free(SpiceServer *s)
{
    if (!s)
        return;
    while (s->npending) {
        PendingLink *p = s->pending[--s->npending];
        spice_linker_free(p->linker);
        free(p);
    }
    /* every channel client of every client, the main one last; the last
     * cc_free of a client frees it and takes it off the list */
    while (s->nclients) {
        SpiceClient *c = s->clients[s->nclients - 1];
        c->listed = false;
        for (size_t n = c->nccs; n > 0; n--) /* the last one frees c */
            cc_free(c->ccs[n - 1]);
    }
    for (size_t i = 0; i < s->nchannels; i++) {
        if (s->channels[i]->cls->channel_gone)
            s->channels[i]->cls->channel_gone(s->channels[i]);
        free(s->channels[i]);
    }
    free(s->channels);
    free(s->clients);
    free(s->pending);
    spice_ticket_key_free(s->own_key);
    free(s->password);
    free((char *)s->cfg.name);
    free(s);
}

SpiceChannel *spice_server_add_channel(SpiceServer *s, uint8_t type, uint8_t id, const SpiceChannelClass *cls,
                                       void *priv)
{
    SpiceChannel *ch = mig_malloc0(sizeof(*ch));
    ch->server = s;
    ch->type = type;
    ch->id = id;
    ch->cls = cls;
    ch->priv = priv;
    LIST_PUSH(s->channels, s->nchannels, ch);
    return ch;
}

void spice_server_set_password_expiry(SpiceServer *s, uint64_t at_ns)
{
    s->password_expires_ns = at_ns;
}

void spice_server_set_password(SpiceServer *s, const char *password)
{
    free(s->password);
    s->password = password ? mig_strdup(password) : NULL;
}

MigLoop *spice_server_loop(const SpiceServer *s) { return s->loop; }
const SpiceServerConfig *spice_server_config(const SpiceServer *s) { return &s->cfg; }
size_t spice_server_channel_count(const SpiceServer *s) { return s->nchannels; }
SpiceChannel *spice_server_channel_at(const SpiceServer *s, size_t i) { return i < s->nchannels ? s->channels[i] : NULL; }
size_t spice_server_client_count(const SpiceServer *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nclients; i++)
        n += s->clients[i]->listed;
    return n;
}

SpiceClient *spice_server_client_at(const SpiceServer *s, size_t i)
{
    for (size_t k = 0; k < s->nclients; k++)
        if (s->clients[k]->listed && i-- == 0)
            return s->clients[k];
    return NULL;
}
size_t spice_server_pending_links(const SpiceServer *s) { return s->npending; }

size_t spice_server_channel_clients(const SpiceServer *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nclients; i++)
        n += s->clients[i]->nccs;
    return n;
}

uint8_t spice_channel_type(const SpiceChannel *ch) { return ch->type; }
uint8_t spice_channel_id(const SpiceChannel *ch) { return ch->id; }
void *spice_channel_priv(const SpiceChannel *ch) { return ch->priv; }
void spice_channel_set_priv(SpiceChannel *ch, void *priv) { ch->priv = priv; }
SpiceServer *spice_channel_server(const SpiceChannel *ch) { return ch->server; }

uint32_t spice_client_session_id(const SpiceClient *c) { return c->session_id; }
bool spice_client_migrating_in(const SpiceClient *c) { return c->migrating_in; }

/* Start what was held, in link order; a channel that went away meanwhile is dropped. */
static void start_held(SpiceClient *c)
{
    HeldLink **held = c->held;
    size_t n = c->nheld;
    c->held = NULL;
    c->nheld = 0;
    for (size_t i = 0; i < n; i++) {
        SpiceChannel *ch = find_channel(c->server, held[i]->res.mess.channel_type, held[i]->res.mess.channel_id);
        if (ch && c->listed)
            start_cc(c->server, c, ch, &held[i]->res);
        else
            mig_transport_close(held[i]->res.t);
        free(held[i]);
    }
    free(held);
}

void spice_client_end_migration_in(SpiceClient *c)
{
    if (!c->migrating_in)
        return;
    c->migrating_in = false;
    start_held(c);
}

SpiceChannelClient *spice_client_find(const SpiceClient *c, uint8_t type, uint8_t id)
{
    for (size_t i = 0; i < c->nccs; i++)
        if (c->ccs[i]->channel->type == type && c->ccs[i]->channel->id == id)
            return c->ccs[i];
    return NULL;
}

void spice_server_set_pong_hook(SpiceServer *s, void (*hook)(void *opaque, SpiceChannelClient *cc, uint32_t id),
                                void *opaque)
{
    s->pong_hook = hook;
    s->pong_opaque = opaque;
}

void spice_server_emit(SpiceServer *s, SpiceServerEvent ev, SpiceChannelClient *cc)
{
    if (s->cfg.event)
        s->cfg.event(s->cfg.event_opaque, ev, cc);
}

MigTransport *spice_cc_transport(SpiceChannelClient *cc)
{
    return spice_conn_transport(cc->conn);
}

SpiceChannel *spice_cc_channel(const SpiceChannelClient *cc) { return cc->channel; }
SpiceClient *spice_cc_client(const SpiceChannelClient *cc) { return cc->client; }
SpiceConn *spice_cc_conn(const SpiceChannelClient *cc) { return cc->conn; }
void *spice_cc_priv(const SpiceChannelClient *cc) { return cc->priv; }
void spice_cc_set_priv(SpiceChannelClient *cc, void *priv) { cc->priv = priv; }
const SpiceLinkMessInfo *spice_cc_link(const SpiceChannelClient *cc) { return &cc->link; }

int spice_cc_send(SpiceChannelClient *cc, uint16_t type, const void *body)
{
    const SpiceMsgInfo *mi = spice_msg_find(cc->channel->type, false, type);
    if (!mi)
        return -EINVAL; /* a programming error: the registry lacks a message we send */
    MigErr *err = NULL;
    int r = spice_conn_send(cc->conn, type, mi->desc, body, &err);
    if (r < 0 && r != -EPIPE)
        mig_trace_log(cc->channel->server->loop->trace, mig_loop_now_ns(cc->channel->server->loop),
                      cc->channel->server->who, "send %s failed: %s", mi->name, err ? err->msg : "?");
    mig_err_free(err);
    return r;
}

void spice_cc_disconnect(SpiceChannelClient *cc, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    spice_conn_close(cc->conn, -EPROTO, "%s", why);
}

/* ------------------------------------------------------------------ seamless migration */

static uint64_t migrate_data_timeout(const SpiceServer *s)
{
    return s->cfg.migrate_data_timeout_ns ? s->cfg.migrate_data_timeout_ns : MIGRATE_DATA_TIMEOUT_NS;
}

static void seamless_fail(SpiceChannelClient *cc, MigErr *err, const char *what)
{
    spice_conn_close(cc->conn, err ? err->code : -EPROTO, "channel %s:%u: %s: %s",
                     spice_channel_type_name(cc->channel->type), cc->channel->id, what,
                     err ? err->msg : "failed");
    mig_err_free(err);
}

/* Source: the channel's migration data, its last message. */
static void send_migrate_data(SpiceChannelClient *cc)
{
    SpiceServer *s = cc->client->server;
    MigErr *err = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    int r = mig_fault_fire(MIG_FAULT_SPICE_SERVER_MIGRATE_DATA_SEND);
    if (r)
        mig_err_set(&err, r, "migration data cannot be built (fault)");
    else if (cc->channel->cls->migrate_save)
        r = cc->channel->cls->migrate_save(cc, &blob, &len, &err);
    if (r < 0) {
        seamless_fail(cc, err, "MIGRATE_DATA");
        return;
    }
    cc->mig = CC_MIG_SRC_DONE;
    mig_trace_log(s->loop->trace, mig_loop_now_ns(s->loop), s->who, "%s:%u: migration data, %zu bytes",
                  spice_channel_type_name(cc->channel->type), cc->channel->id, len);
    spice_conn_send_raw(cc->conn, SPICE_MSG_MIGRATE_DATA, blob, (uint32_t)len);
    free(blob);
}

void spice_client_seamless_out(SpiceClient *c)
{
    /* in link order, main first: each after what its channel has queued */
    for (size_t i = 0; i < c->nccs; i++) {
        SpiceChannelClient *cc = c->ccs[i];
        if (cc->mig != CC_MIG_NONE || !spice_conn_is_open(cc->conn))
            continue;
        uint32_t flags = cc->channel->cls->migrate_flags;
        SpiceMsgU32 m = {flags};
        if (spice_cc_send(cc, SPICE_MSG_MIGRATE, &m) < 0)
            continue;
        cc->mig_flags = flags;
        if (flags & SPICE_MIGRATE_NEED_FLUSH)
            cc->mig = CC_MIG_SRC_FLUSH;
        else if (flags & SPICE_MIGRATE_NEED_DATA_TRANSFER)
            send_migrate_data(cc);
        else
            cc->mig = CC_MIG_SRC_DONE;
    }
}

static void data_timeout(void *opaque)
{
    SpiceChannelClient *cc = opaque;
    cc->mig_timer = NULL;
    spice_conn_close(cc->conn, -ETIMEDOUT, "channel %s:%u: no migration data from the client within %llu ms",
                     spice_channel_type_name(cc->channel->type), cc->channel->id,
                     (unsigned long long)(migrate_data_timeout(cc->client->server) / 1000000u));
}

/* Target: take the client's data (the machine is loaded). */
static int load_data(SpiceChannelClient *cc, const uint8_t *blob, size_t len)
{
    SpiceServer *s = cc->client->server;
    MigErr *err = NULL;
    int r = mig_fault_fire(MIG_FAULT_SPICE_SERVER_MIGRATE_DATA_LOAD);
    if (r)
        mig_err_set(&err, r, "the migration data cannot be taken (fault)");
    else
        r = cc->channel->cls->migrate_load(cc, blob, len, &err);
    if (r < 0) {
        seamless_fail(cc, err, "MIGRATE_DATA refused");
        return r;
    }
    cc->mig = CC_MIG_NONE;
    if (cc->mig_timer) {
        mig_loop_remove(s->loop, cc->mig_timer);
        cc->mig_timer = NULL;
    }
    spice_conn_hold(cc->conn, false);
    mig_trace_log(s->loop->trace, mig_loop_now_ns(s->loop), s->who, "%s:%u: migration data taken (%zu bytes)",
                  spice_channel_type_name(cc->channel->type), cc->channel->id, len);
    spice_server_emit(s, SPICE_SERVER_EV_INITIALIZED, cc);
    return 0;
}

/* Target, the data came while the machine loads: the part the channel can
 * take before the machine's state, and what it answers goes out now. */
static void take_early(SpiceChannelClient *cc)
{
    SpiceServer *s = cc->client->server;
    MigErr *err = NULL;
    if (cc->channel->cls->migrate_early(cc, cc->pending_blob, cc->pending_len, &err) < 0) {
        seamless_fail(cc, err, "MIGRATE_DATA refused");
        return;
    }
    spice_conn_hold(cc->conn, false);
    mig_trace_log(s->loop->trace, mig_loop_now_ns(s->loop), s->who,
                  "%s:%u: migration data taken in part while the machine loads (%zu bytes)",
                  spice_channel_type_name(cc->channel->type), cc->channel->id, cc->pending_len);
}

/* Target, the machine is loaded: the channel client may queue (held) and
 * the wait for its data starts. */
static void seamless_ready(SpiceChannelClient *cc)
{
    SpiceServer *s = cc->client->server;
    if (!cc->prepared) {
        cc->prepared = true;
        if (cc->channel->cls->migrate_prepare)
            cc->channel->cls->migrate_prepare(cc);
    }
    if (cc->pending_blob) {
        uint8_t *b = cc->pending_blob;
        size_t n = cc->pending_len;
        cc->pending_blob = NULL;
        load_data(cc, b, n);
        free(b);
        return;
    }
    if (!cc->mig_timer)
        cc->mig_timer = mig_loop_timer_add(s->loop, mig_loop_now_ns(s->loop) + migrate_data_timeout(s), data_timeout, cc);
}

static void seamless_wait(SpiceChannelClient *cc)
{
    cc->mig = CC_MIG_DST_WAIT;
    /* main has queued its DST_SEAMLESS_ACK and sends nothing else before its data */
    if (cc->channel->type != SPICE_CHANNEL_MAIN)
        spice_conn_hold(cc->conn, true);
    if (!cc->client->server->loading)
        seamless_ready(cc);
}

/* Returns 1 when the class should see the message, 0 when handled, or a
 * negative errno with errp set. */
static int seamless_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    SpiceServer *s = cc->client->server;
    switch (cc->mig) {
    case CC_MIG_DST_WAIT: {
        if (mi->id != SPICE_MSGC_MIGRATE_DATA)
            return mig_err_set(errp, -EPROTO, "%s before the migration data (MIGRATE_DATA must come first)",
                               mi->name);
        SpiceMsgBytes *b = body;
        if (s->loading) {
            if (cc->pending_blob)
                return mig_err_set(errp, -EPROTO, "a second MIGRATE_DATA");
            cc->pending_blob = b->data.len ? mig_malloc0(b->data.len) : mig_malloc0(1);
            memcpy(cc->pending_blob, b->data.data, b->data.len);
            cc->pending_len = b->data.len;
            if (cc->channel->cls->migrate_early)
                take_early(cc);
            return 0;
        }
        load_data(cc, b->data.data, b->data.len);
        return 0;
    }
    case CC_MIG_SRC_FLUSH:
        if (mi->id == SPICE_MSGC_MIGRATE_FLUSH_MARK) {
            send_migrate_data(cc);
            return 0;
        }
        break;
    case CC_MIG_SRC_DONE:
        if (cc->mig_flags & SPICE_MIGRATE_NEED_FLUSH)
            return mig_err_set(errp, -EPROTO, "%s after the client's MIGRATE_FLUSH_MARK", mi->name);
        break;
    default:
        break;
    }
    if (mi->id == SPICE_MSGC_MIGRATE_FLUSH_MARK)
        return mig_err_set(errp, -EPROTO, "unexpected MIGRATE_FLUSH_MARK (no MIGRATE asked for a flush)");
    if (mi->id == SPICE_MSGC_MIGRATE_DATA)
        return mig_err_set(errp, -EPROTO, "unexpected MIGRATE_DATA (this channel waits for none)");
    return 1;
}

void spice_client_begin_seamless_in(SpiceClient *c)
{
    if (!c->migrating_in)
        return;
    c->migrating_in = false;
    c->seamless_in = true;
    SpiceChannelClient *main_cc = spice_client_find(c, SPICE_CHANNEL_MAIN, 0);
    if (main_cc)
        seamless_wait(main_cc);
    start_held(c);
}

bool spice_client_seamless_in(const SpiceClient *c)
{
    return c->seamless_in;
}

bool spice_cc_waiting_migrate_data(const SpiceChannelClient *cc)
{
    return cc->mig == CC_MIG_DST_WAIT;
}

void spice_server_set_loading(SpiceServer *s, bool loading)
{
    if (s->loading == loading)
        return;
    s->loading = loading;
    if (loading)
        return;
    /* in list order; a channel client may close inside (from the loop later) */
    for (size_t i = 0; i < s->nclients; i++) {
        SpiceClient *c = s->clients[i];
        for (size_t k = 0; k < c->nccs; k++)
            if (c->ccs[k]->mig == CC_MIG_DST_WAIT)
                seamless_ready(c->ccs[k]);
    }
}
