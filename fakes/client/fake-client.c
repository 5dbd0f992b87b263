/*
 * fake-client.c - the scripted fake SPICE client (fake-client.h).
 *
 * Channel life: a FakeChannel links (SpiceLinker, client role), then runs a
 * SpiceConn in the client role, which answers SET_ACK, ACKs and PINGs by
 * itself; the per-channel code below reacts to what the server sends:
 *   main: MAIN_INIT → ATTACH_CHANNELS; CHANNELS_LIST → link every channel;
 *   display: after the link, DISPLAY_INIT with spice-gtk's cache sizes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client-internal.h"
#include "spice/spice-conn.h"
#include "spice/spice-linker.h"

void fake__record(FakeClient *c, const FakeChannel *ch, bool sent, uint16_t msg, const char *name)
{
    if (c->nevents == c->cap_events) {
        c->cap_events = c->cap_events ? 2 * c->cap_events : 64;
        c->events = mig_realloc(c->events, c->cap_events * sizeof(*c->events));
    }
    c->events[c->nevents++] = (FakeClientEvent){.t_ns = mig_loop_now_ns(c->loop), .channel_type = ch->type,
                                                .channel_id = ch->id, .sent = sent, .msg = msg, .name = name};
    if (c->cfg.on_event)
        c->cfg.on_event(c->cfg.event_opaque, &c->events[c->nevents - 1]);
}

void fake__chan_free(FakeChannel *ch)
{
    FakeClient *c = ch->client;
    fake__migrate_chan_gone(ch);
    fake__display_free(ch);
    fake__media_free(ch);
    fake__seamless_free(ch);
    spice_linker_free(ch->mig_linker);
    mig_transport_close(ch->mig_t);
    spice_linker_free(ch->linker);
    spice_conn_free(ch->conn);
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i] == ch) {
            memmove(c->chans + i, c->chans + i + 1, (c->nchans - i - 1) * sizeof(*c->chans));
            c->nchans--;
            break;
        }
    free(ch);
    fake__wait_check(c); /* a wait for a channel gone is over */
}

int fake__chan_send(FakeChannel *ch, uint16_t type, const void *body)
{
    const SpiceMsgInfo *mi = spice_msg_find(ch->type, true, type);
    if (!mi)
        return -EINVAL;
    fake__record(ch->client, ch, true, type, mi->name);
    return spice_conn_send(ch->conn, type, mi->desc, body, NULL);
}

static void link_channel(FakeClient *c, uint8_t type, uint8_t id);

static bool has_channel(const FakeClient *c, uint8_t type, uint8_t id)
{
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i]->type == type && c->chans[i]->id == id)
            return true;
    return false;
}

static int on_main(FakeChannel *ch, const SpiceMsgInfo *mi, void *body)
{
    FakeClient *c = ch->client;
    switch (mi->id) {
    case SPICE_MSG_MAIN_MIGRATE_BEGIN:
    case SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS:
    case SPICE_MSG_MAIN_MIGRATE_CANCEL:
    case SPICE_MSG_MAIN_MIGRATE_END:
    case SPICE_MSG_MAIN_MIGRATE_SWITCH_HOST:
        return fake__migrate_message(ch, mi, body, NULL);
    case SPICE_MSG_MAIN_INIT:
        c->session_id = ((SpiceMsgMainInit *)body)->session_id;
        c->mouse_mode = ((SpiceMsgMainInit *)body)->current_mouse_mode;
        return fake__chan_send(ch, SPICE_MSGC_MAIN_ATTACH_CHANNELS, NULL);
    case SPICE_MSG_MAIN_CHANNELS_LIST: {
        SpiceMsgChannelsList *l = body;
        const SpiceChannelRef *refs = l->channels.items;
        /* after a migration the list names channels the client has moved over */
        for (uint32_t i = 0; i < l->channels.n; i++)
            if (!has_channel(c, refs[i].type, refs[i].id))
                link_channel(c, refs[i].type, refs[i].id);
        return 0;
    }
    case SPICE_MSG_MAIN_MOUSE_MODE:
        c->mouse_mode = ((SpiceMsgMouseMode *)body)->current;
        return 0;
    default:
        return 0;
    }
}

static int on_message_in(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp);

static int on_message(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    FakeChannel *ch = opaque;
    FakeClient *c = ch->client;
    int r = on_message_in(ch, mi, body, errp);
    fake__wait_check(c); /* this channel's serial moved: a wait may be over */
    return r;
}

static int on_message_in(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    fake__record(ch->client, ch, false, mi->id, mi->name);
    if (mi->id == SPICE_MSG_MIGRATE || mi->id == SPICE_MSG_MIGRATE_DATA || ch->mig_expect_data) {
        int r = fake__seamless_message(ch, mi, body, errp);
        if (r != 0)
            return r < 0 ? r : 0;
    }
    if (mi->id == SPICE_MSG_WAIT_FOR_CHANNELS) {
        fake__wait_start(ch, body, false);
        return 0;
    }
    if (ch->type == SPICE_CHANNEL_MAIN)
        return on_main(ch, mi, body);
    if (ch->type == SPICE_CHANNEL_DISPLAY) {
        FakeClient *c = ch->client;
        if (c->gap_pending) { /* the first display message from the target after a switch */
            c->gap_pending = false;
            c->have_gap = true;
            c->switch_gap_ns = c->events[c->nevents - 1].t_ns - c->mig_end_ns;
            c->gap_msg = mi->name;
        }
        return fake__display_message(ch, mi, body, errp);
    }
    if (ch->media)
        return fake__media_message(ch, mi, body, errp);
    return 0;
}

static void on_closed(void *opaque, int err, const char *reason)
{
    FakeChannel *ch = opaque;
    FakeClient *c = ch->client;
    if (err)
        snprintf(c->last_error, sizeof(c->last_error), "%s:%u: %s", spice_channel_type_name(ch->type), ch->id,
                 reason);
    fake__chan_free(ch);
}

static const SpiceConnOps conn_ops = {.on_message = on_message, .on_closed = on_closed};

const SpiceConnOps *fake__conn_ops(void)
{
    return &conn_ops;
}

SpiceConn *fake__chan_conn(FakeChannel *ch, MigTransport *t, bool mini)
{
    FakeClient *c = ch->client;
    char who[96];
    snprintf(who, sizeof(who), "%s.%s%u", c->who, spice_channel_type_name(ch->type), ch->id);
    SpiceConnConfig cfg = {.is_server = false, .mini_header = mini, .channel_type = ch->type,
                           .channel_id = ch->id, .max_in = 64u << 20, .who = who};
    return spice_conn_new(c->loop, t, &cfg, &conn_ops, ch);
}

static void linked(void *opaque, SpiceLinkResult *res)
{
    FakeChannel *ch = opaque;
    FakeClient *c = ch->client;
    spice_linker_free(ch->linker);
    ch->linker = NULL;
    if (res->err) {
        snprintf(c->last_error, sizeof(c->last_error), "%s:%u: %s", spice_channel_type_name(ch->type), ch->id,
                 res->reason);
        fake__chan_free(ch);
        return;
    }
    fake__chan_attach(ch, res->t, res->mini_header);
}

void fake__chan_attach(FakeChannel *ch, MigTransport *t, bool mini)
{
    FakeClient *c = ch->client;
    bool known = false;
    for (size_t i = 0; i < c->never; i++)
        known |= c->ever[i][0] == ch->type && c->ever[i][1] == ch->id;
    if (!known && c->never < MIG_ARRAY_SIZE(c->ever)) {
        c->ever[c->never][0] = ch->type;
        c->ever[c->never][1] = ch->id;
        c->never++;
    }
    ch->conn = fake__chan_conn(ch, t, mini);
    ch->nwaits = 0; /* waits named the old connection's serials */
    ch->clear_after_wait = false;
    if (ch->type == SPICE_CHANNEL_DISPLAY)
        fake__display_start(ch);
    else if (!ch->media && (ch->type == SPICE_CHANNEL_PLAYBACK || ch->type == SPICE_CHANNEL_RECORD ||
                            ch->type == SPICE_CHANNEL_PORT || ch->type == SPICE_CHANNEL_INPUTS ||
                            ch->type == SPICE_CHANNEL_CURSOR))
        fake__media_start(ch);
}

SpiceLinker *fake__link(FakeClient *c, FakeChannel *ch, const char *host, uint16_t port, uint32_t connection_id,
                        SpiceLinkDone done)
{
    MigErr *err = NULL;
    MigTransport *t = c->cfg.connect(c->cfg.connect_opaque, host, port, &err);
    if (!t) {
        snprintf(c->last_error, sizeof(c->last_error), "%s:%u: connect to %s:%u: %s",
                 spice_channel_type_name(ch->type), ch->id, host, port, err ? err->msg : "failed");
        mig_err_free(err);
        return NULL;
    }
    SpiceLinkClientConfig lc = {.mess = {.connection_id = connection_id, .channel_type = ch->type,
                                         .channel_id = ch->id, .common = c->cfg.common},
                                .password = c->password, .prng = &c->loop->prng,
                                .tickets = &c->tickets};
    if (ch->type == SPICE_CHANNEL_MAIN)
        lc.mess.channel = c->cfg.main_caps;
    return spice_link_connect(c->loop, t, &lc, done, ch);
}

static void link_channel(FakeClient *c, uint8_t type, uint8_t id)
{
    FakeChannel *ch = mig_malloc0(sizeof(*ch));
    ch->client = c;
    ch->type = type;
    ch->id = id;
    ch->linker = fake__link(c, ch, c->host, c->cfg.port, type == SPICE_CHANNEL_MAIN ? 0 : c->session_id, linked);
    if (!ch->linker) {
        free(ch);
        return;
    }
    c->chans = mig_realloc(c->chans, (c->nchans + 1) * sizeof(*c->chans));
    c->chans[c->nchans++] = ch;
}

void fake__link_main(FakeClient *c)
{
    link_channel(c, SPICE_CHANNEL_MAIN, 0);
}

FakeClient *fake_client_new(MigLoop *loop, const FakeClientConfig *cfg)
{
    FakeClient *c = mig_malloc0(sizeof(*c));
    c->loop = loop;
    c->cfg = *cfg;
    snprintf(c->who, sizeof(c->who), "%s", cfg->who ? cfg->who : "client");
    snprintf(c->host, sizeof(c->host), "%s", cfg->host ? cfg->host : "");
    c->cfg.who = c->who;
    c->cfg.host = c->host;
    c->password = cfg->password ? mig_strdup(cfg->password) : NULL;
    c->cfg.password = NULL;
    if (c->cfg.common.n == 0) {
        spice_caps_set(&c->cfg.common, SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION);
        spice_caps_set(&c->cfg.common, SPICE_COMMON_CAP_AUTH_SASL);
        spice_caps_set(&c->cfg.common, SPICE_COMMON_CAP_MINI_HEADER);
    }
    if (c->cfg.main_caps.n == 0)
        for (unsigned cap = 0; cap < 4; cap++)
            spice_caps_set(&c->cfg.main_caps, cap);
    return c;
}

int fake_client_start(FakeClient *c, MigErr **errp)
{
    size_t before = c->nchans;
    link_channel(c, SPICE_CHANNEL_MAIN, 0);
    if (c->nchans == before)
        return mig_err_set(errp, -ECONNREFUSED, "%s", c->last_error);
    return 0;
}

void fake_client_free(FakeClient *c)
{
    if (!c)
        return;
    fake__migrate_free(c);
    while (c->nchans)
        fake__chan_free(c->chans[c->nchans - 1]);
    free(c->chans);
    fake__pixmap_cache_free(c);
    free(c->events);
    free(c->password);
    spice_ticket_pub_cache_clear(&c->tickets);
    free(c);
}

bool fake_client_channel_ever(const FakeClient *c, size_t i, uint8_t *type, uint8_t *id)
{
    if (i >= c->never)
        return false;
    *type = c->ever[i][0];
    *id = c->ever[i][1];
    return true;
}

void fake_client_migrations(const FakeClient *c, FakeClientMigrations *out)
{
    *out = c->migs;
}

void fake_client_switch_gaps(const FakeClient *c, FakeClientSwitchGaps *out)
{
    *out = (FakeClientSwitchGaps){.have_first = c->have_gap, .first_ns = c->switch_gap_ns,
                                  .first_msg = c->gap_msg, .have_draw = c->have_draw_gap, .draw_ns = c->draw_gap_ns,
                                  .swap_ns = c->display_swap_ns};
}

bool fake_client_switch_gap_ns(const FakeClient *c, uint64_t *gap_ns)
{
    if (c->have_gap)
        *gap_ns = c->switch_gap_ns;
    return c->have_gap;
}

void fake_client_draws(const FakeClient *c, FakeClientDraws *out)
{
    *out = c->draws;
}

const char *fake_client_server_host(const FakeClient *c)
{
    return c->host;
}

uint16_t fake_client_server_port(const FakeClient *c)
{
    return c->cfg.port;
}

uint32_t fake_client_session_id(const FakeClient *c)
{
    return c->session_id;
}

size_t fake_client_linked_channels(const FakeClient *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nchans; i++)
        n += c->chans[i]->conn != NULL;
    return n;
}

bool fake_client_has_channel(const FakeClient *c, uint8_t type, uint8_t id)
{
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i]->type == type && c->chans[i]->id == id && c->chans[i]->conn)
            return true;
    return false;
}

size_t fake_client_channels(const FakeClient *c)
{
    return c->nchans;
}

const char *fake_client_last_error(const FakeClient *c)
{
    return c->last_error;
}

const FakeClientEvent *fake_client_events(const FakeClient *c, size_t *n)
{
    *n = c->nevents;
    return c->events;
}

size_t fake_client_count(const FakeClient *c, uint8_t channel_type, uint16_t msg)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nevents; i++)
        n += !c->events[i].sent && c->events[i].channel_type == channel_type && c->events[i].msg == msg;
    return n;
}

int fake_client_send_raw(FakeClient *c, uint8_t type, uint8_t id, uint16_t msg, const uint8_t *body,
                         uint32_t len)
{
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        if (ch->type == type && ch->id == id && ch->conn) {
            const SpiceMsgInfo *mi = spice_msg_find(type, true, msg);
            fake__record(c, ch, true, msg, mi ? mi->name : "(raw)");
            return spice_conn_send_raw(ch->conn, msg, body, len);
        }
    }
    return -ENOENT;
}

void fake_client_disconnect(FakeClient *c)
{
    /* every channel, main last, as a user closing spice-gtk's window: the
     * client's own channels never see the server's close as an error */
    for (size_t i = c->nchans; i-- > 0;)
        if (c->chans[i]->type != SPICE_CHANNEL_MAIN && c->chans[i]->conn)
            spice_conn_close(c->chans[i]->conn, 0, "the client disconnects");
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i]->type == SPICE_CHANNEL_MAIN && c->chans[i]->conn)
            spice_conn_close(c->chans[i]->conn, 0, "the client disconnects");
}
