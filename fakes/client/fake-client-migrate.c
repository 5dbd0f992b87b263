/*
 * fake-client-migrate.c - the fake client's side of SPICE migration
 * (docs/protocol-spice.md "Migration flows"), as spice-gtk does it:
 *   MIGRATE_BEGIN: link a copy of every open channel to the target, main
 *     first and the others once it linked (the target knows the session
 *     from main), with the session id as connection id; when every copy linked,
 *     MIGRATE_CONNECTED to the source, else CONNECT_ERROR (and the copies
 *     go).  The others are every channel of the session when main's copy
 *     linked, open or still linking to the source (spice-gtk copies every
 *     channel its session holds), counted as their copies start (spice-gtk
 *     counts the same way): a count taken at MIGRATE_BEGIN could be one
 *     short of the copies started, and the client never answered;
 *   MIGRATE_CANCEL: the copies go, the client stays;
 *   MIGRATE_END: the switch: main first (MSGC_MAIN_MIGRATE_END to the
 *     target), then every other channel moves to its copy (one whose link
 *     to the source never finished gives that link up); the display
 *     starts afresh (DISPLAY_INIT again, caches cleared), sound and port
 *     keep their sequence so that a loss or a repeat across the switch
 *     shows;
 *   SWITCH_HOST: every channel goes and the client links a new session on
 *     the target.
 * The switch runs from the loop, never inside the callback of the message
 * that asked for it (that message's connection is one of those it closes).
 * Seamless migration's handshake and switch: fake-client-seamless.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client-internal.h"

enum { ACT_NONE, ACT_SWITCH, ACT_SWITCH_HOST };

static FakeChannel *main_of(FakeClient *c)
{
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i]->type == SPICE_CHANNEL_MAIN)
            return c->chans[i];
    return NULL;
}

/* Drop every copy linked or linking to the target. */
static void drop_copies(FakeClient *c)
{
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        spice_linker_free(ch->mig_linker);
        ch->mig_linker = NULL;
        mig_transport_close(ch->mig_t);
        ch->mig_t = NULL;
        spice_conn_free(ch->mig_conn);
        ch->mig_conn = NULL;
    }
    c->mig_seamless = false;
    c->migrating = false;
    c->mig_connected = false;
    c->mig_wanted = c->mig_linked = 0;
}

static void answer(FakeClient *c, bool connected)
{
    FakeChannel *m = main_of(c);
    if (!connected) {
        c->migs.connect_errors++;
        drop_copies(c);
    }
    c->mig_connected = connected;
    if (m && m->conn)
        fake__chan_send(m, !connected ? SPICE_MSGC_MAIN_MIGRATE_CONNECT_ERROR
                           : c->mig_seamless ? SPICE_MSGC_MAIN_MIGRATE_CONNECTED_SEAMLESS
                                             : SPICE_MSGC_MAIN_MIGRATE_CONNECTED, NULL);
}

void fake__migrate_fail(FakeClient *c)
{
    if (c->migrating)
        answer(c, false);
}

static void link_other_copies(FakeClient *c);

static void copy_linked(void *opaque, SpiceLinkResult *res)
{
    FakeChannel *ch = opaque;
    FakeClient *c = ch->client;
    spice_linker_free(ch->mig_linker);
    ch->mig_linker = NULL;
    if (!c->migrating) {
        mig_transport_close(res->t);
        return;
    }
    if (res->err) {
        snprintf(c->last_error, sizeof(c->last_error), "migration: %s:%u to the target: %s",
                 spice_channel_type_name(ch->type), ch->id, res->reason);
        answer(c, false);
        return;
    }
    c->mig_linked++;
    if (ch->type == SPICE_CHANNEL_MAIN && fake__seamless_main_linked(ch, res))
        return; /* the others link after the target's answer to DO_SEAMLESS */
    ch->mig_t = res->t;
    ch->mig_mini = res->mini_header;
    if (ch->type == SPICE_CHANNEL_MAIN)
        fake__migrate_link_others(c);
    else if (c->mig_linked == c->mig_wanted)
        answer(c, true);
}

static void begin(FakeClient *c, const SpiceDstInfo *dst)
{
    if (c->migrating) {
        snprintf(c->last_error, sizeof(c->last_error), "migration: a second MIGRATE_BEGIN");
        return;
    }
    snprintf(c->mig_host, sizeof(c->mig_host), "%.*s", dst->host.len ? (int)dst->host.len - 1 : 0,
             dst->host.data ? (const char *)dst->host.data : "");
    c->mig_port = dst->port;
    c->migrating = true;
    c->mig_connected = false;
    c->mig_linked = 0;
    /* main first: the target learns the session from it; the others follow
     * once main linked (the target knows the session only then), counted
     * as they start */
    FakeChannel *m = main_of(c);
    c->mig_wanted = 1;
    if (!m || !(m->mig_linker = fake__link(c, m, c->mig_host, c->mig_port, c->session_id, copy_linked)))
        answer(c, false);
}

/* Main's copy linked (and, seamless, the target answered DO_SEAMLESS): a
 * copy of every other channel open now, then the answer once all linked. */
void fake__migrate_link_others(FakeClient *c)
{
    link_other_copies(c);
    if (c->migrating && !c->mig_connected && c->mig_linked == c->mig_wanted)
        answer(c, true); /* main was the only channel */
}

static void link_other_copies(FakeClient *c)
{
    FakeChannel *m = main_of(c);
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        if (ch == m || (!ch->conn && !ch->linker))
            continue; /* a channel still linking to the source gets its copy too */
        c->mig_wanted++;
        ch->mig_linker = fake__link(c, ch, c->mig_host, c->mig_port, c->session_id, copy_linked);
        if (!ch->mig_linker) {
            answer(c, false);
            return;
        }
    }
}

void fake__migrate_chan_gone(FakeChannel *ch)
{
    FakeClient *c = ch->client;
    if (!c->migrating || ch->type == SPICE_CHANNEL_MAIN || (!ch->mig_linker && !ch->mig_t))
        return;
    /* its copy, linking or linked, goes with it: the others may be all */
    c->mig_wanted--;
    if (ch->mig_t)
        c->mig_linked--;
    spice_linker_free(ch->mig_linker);
    ch->mig_linker = NULL;
    mig_transport_close(ch->mig_t);
    ch->mig_t = NULL;
    /* a client closing every channel (the user leaves) answers nothing */
    FakeChannel *m = main_of(c);
    if (!c->mig_connected && c->mig_linked == c->mig_wanted && m && m->conn && spice_conn_is_open(m->conn))
        answer(c, true);
}

static void send_migrate_end(void *opaque)
{
    FakeClient *c = opaque;
    c->mig_end_timer = NULL;
    FakeChannel *m = main_of(c);
    if (m && m->conn)
        fake__chan_send(m, SPICE_MSGC_MAIN_MIGRATE_END, NULL);
}

/* The switch of MIGRATE_END: every channel onto its copy. */
static void do_switch(FakeClient *c)
{
    FakeChannel *m = main_of(c);
    if (m && m->mig_conn && !m->mig_t) {
        /* after a NACK the main copy is already a connection: take it as is */
        spice_conn_free(m->conn);
        m->conn = m->mig_conn;
        m->mig_conn = NULL;
        spice_conn_set_ops(m->conn, fake__conn_ops(), m);
        fake__chan_send(m, SPICE_MSGC_MAIN_MIGRATE_END, NULL);
        m->mig_handed = true;
    }
    if (!c->migrating || c->mig_linked != c->mig_wanted || !m || (!m->mig_t && !m->mig_handed)) {
        snprintf(c->last_error, sizeof(c->last_error), "migration: MIGRATE_END before every channel linked to "
                 "the target (%zu of %zu)", c->mig_linked, c->mig_wanted);
        return;
    }
    snprintf(c->host, sizeof(c->host), "%s", c->mig_host);
    c->cfg.port = c->mig_port;
    /* main first, and MSGC_MAIN_MIGRATE_END before anything else on it */
    FakeChannel *order[64];
    size_t n = 0;
    order[n++] = m;
    for (size_t i = 0; i < c->nchans && n < MIG_ARRAY_SIZE(order); i++)
        if (c->chans[i] != m)
            order[n++] = c->chans[i];
    for (size_t i = 0; i < n; i++) {
        FakeChannel *ch = order[i];
        if (ch->mig_handed) {
            ch->mig_handed = false;
            continue;
        }
        spice_conn_free(ch->conn);
        ch->conn = NULL;
        spice_linker_free(ch->linker); /* still linking to the source: its copy is what counts */
        ch->linker = NULL;
        if (!ch->mig_t) {
            /* a channel that opened after MIGRATE_BEGIN has no copy: it goes */
            fake__chan_free(ch);
            continue;
        }
        MigTransport *t = ch->mig_t;
        ch->mig_t = NULL;
        if (ch->display)
            fake__display_free(ch); /* the target sends every surface again */
        fake__pixmap_cache_clear(c); /* and starts a new cache */
        if (ch->media) {
            ch->media->have_time = false; /* another server's clock */
            ch->media->recording = false;
            ch->media->inputs_on = false; /* until the target's INPUTS_INIT */
            if (ch->media->timer) {
                mig_loop_remove(c->loop, ch->media->timer);
                ch->media->timer = NULL;
            }
        }
        fake__chan_attach(ch, t, ch->mig_mini);
        if (ch == m && !c->cfg.migrate_end_delay_ns)
            fake__chan_send(ch, SPICE_MSGC_MAIN_MIGRATE_END, NULL);
        else if (ch == m && !c->mig_end_timer)
            c->mig_end_timer = mig_loop_timer_add(c->loop, mig_loop_now_ns(c->loop) + c->cfg.migrate_end_delay_ns,
                                                  send_migrate_end, c);
    }
    c->migrating = false;
    c->migs.semi_seamless++;
    c->gap_pending = c->draw_gap_pending = true; /* the gap ends at the target's first display message */
    c->display_swap_ns = mig_loop_now_ns(c->loop) - c->mig_end_ns;
}

static void do_switch_host(FakeClient *c)
{
    drop_copies(c);
    while (c->nchans)
        fake__chan_free(c->chans[c->nchans - 1]);
    fake__pixmap_cache_clear(c);
    snprintf(c->host, sizeof(c->host), "%s", c->mig_host);
    c->cfg.port = c->mig_port;
    c->session_id = 0;
    c->migs.switch_host++;
    fake__link_main(c);
}

static void action_cb(void *opaque)
{
    FakeClient *c = opaque;
    c->mig_defer = NULL;
    int act = c->mig_action;
    c->mig_action = ACT_NONE;
    if (act == ACT_SWITCH)
        do_switch(c);
    else if (act == ACT_SWITCH_HOST)
        do_switch_host(c);
}

static void later(FakeClient *c, int act)
{
    c->mig_action = act;
    if (!c->mig_defer)
        c->mig_defer = mig_loop_defer(c->loop, action_cb, c);
}

int fake__migrate_message(FakeChannel *main_ch, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    FakeClient *c = main_ch->client;
    switch (mi->id) {
    case SPICE_MSG_MAIN_MIGRATE_BEGIN:
        c->mig_seamless = false;
        begin(c, &((SpiceMsgMigrateBegin *)body)->dst);
        return 0;
    case SPICE_MSG_MAIN_MIGRATE_BEGIN_SEAMLESS: {
        SpiceMsgMigrateBeginSeamless *b = body;
        if (c->migrating) {
            snprintf(c->last_error, sizeof(c->last_error), "migration: a second MIGRATE_BEGIN");
            return 0;
        }
        /* without the SEAMLESS cap spice-gtk would not get here: follow as semi-seamless */
        c->mig_seamless = spice_caps_has(&c->cfg.main_caps, SPICE_MAIN_CAP_SEAMLESS_MIGRATE);
        c->mig_src_version = b->src_mig_version;
        begin(c, &b->dst);
        return 0;
    }
    case SPICE_MSG_MAIN_MIGRATE_CANCEL:
        drop_copies(c);
        c->migs.cancelled++;
        return 0;
    case SPICE_MSG_MAIN_MIGRATE_END:
        c->mig_end_ns = c->events[c->nevents - 1].t_ns; /* recorded as it arrived */
        later(c, ACT_SWITCH);
        return 0;
    case SPICE_MSG_MAIN_MIGRATE_SWITCH_HOST: {
        const SpiceDstInfo *dst = &((SpiceMsgMigrateBegin *)body)->dst;
        snprintf(c->mig_host, sizeof(c->mig_host), "%.*s", dst->host.len ? (int)dst->host.len - 1 : 0,
                 dst->host.data ? (const char *)dst->host.data : "");
        c->mig_port = dst->port;
        later(c, ACT_SWITCH_HOST);
        return 0;
    }
    default:
        return 0;
    }
}

const char *const fake_client_mig_step_names[FAKE_CLIENT_MIG__COUNT] = {"idle", "linking", "connected"};

FakeClientMigStep fake_client_mig_step(const FakeClient *c)
{
    if (!c->migrating)
        return FAKE_CLIENT_MIG_IDLE;
    return c->mig_connected ? FAKE_CLIENT_MIG_CONNECTED : FAKE_CLIENT_MIG_LINKING;
}

void fake__migrate_free(FakeClient *c)
{
    c->migrating = false; /* the channels go next: none of them answers the source */
    if (c->mig_defer)
        mig_loop_remove(c->loop, c->mig_defer);
    c->mig_defer = NULL;
    if (c->mig_end_timer)
        mig_loop_remove(c->loop, c->mig_end_timer);
    c->mig_end_timer = NULL;
}
