/*
 * fake-client-seamless.c - the fake client's side of seamless SPICE
 * migration (docs/protocol-spice.md 8.2), as spice-gtk does it:
 *   MIGRATE_BEGIN_SEAMLESS: the copies link as for semi-seamless, main
 *     first; when the target's main link offers SEAMLESS, DO_SEAMLESS with
 *     the source's version goes on that copy and the others link after the
 *     target's ACK (seamless) or NACK (semi-seamless goes on); then
 *     MIGRATE_CONNECTED_SEAMLESS (or CONNECTED after a NACK) to the source;
 *   MIGRATE {flags} on a channel: FLUSH_MARK when NEED_FLUSH (the channel
 *     sends nothing more to the source), then the next message must be
 *     MIGRATE_DATA; the channel swaps to its copy and sends the blob there
 *     before anything else (flags 0: it swaps at once).  The display keeps
 *     its surfaces and cache, sound and port their sequence, the ACK count
 *     goes on; the source's connections close once every channel swapped.
 * Scripted faults (FakeClientConfig): a delayed FLUSH_MARK, a blob made
 * short, given a bad magic, a newer or older version, or a surface id out
 * of range, on one channel type.
 * Called by: fake-client.c (main and base messages), fake-client-migrate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client-internal.h"
#include "spice/spice-migrate-data.h"

const char *const fake_client_blob_fault_names[FAKE_CLIENT_BLOB__COUNT] = {
    "none", "short", "bad-magic", "newer-version", "older-version", "bad-surface", "drop"};

/* ---- the handshake on the main copy ---- */

static int copy_message(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    FakeChannel *ch = opaque;
    FakeClient *c = ch->client;
    fake__record(c, ch, false, mi->id, mi->name);
    if (mi->id != SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK && mi->id != SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_NACK)
        return 0; /* nothing else is expected before the swap */
    if (!c->migrating || c->mig_answered)
        return mig_err_set(errp, -EPROTO, "%s without a DO_SEAMLESS", mi->name);
    c->mig_answered = true;
    c->mig_seamless = mi->id == SPICE_MSG_MAIN_MIGRATE_DST_SEAMLESS_ACK;
    fake__migrate_link_others(c);
    return 0;
}

static void copy_closed(void *opaque, int err, const char *reason)
{
    FakeChannel *ch = opaque;
    FakeClient *c = ch->client;
    /* the target went after the client answered: the source cancels */
    bool cancelled = c->migrating && c->mig_connected;
    if (!cancelled) /* `reason` is the conn's: copied before it is freed */
        snprintf(c->last_error, sizeof(c->last_error), "migration: main to the target: %s",
                 reason[0] ? reason : "closed");
    spice_conn_free(ch->mig_conn);
    ch->mig_conn = NULL;
    if (!cancelled)
        fake__migrate_fail(c);
}

static const SpiceConnOps copy_ops = {.on_message = copy_message, .on_closed = copy_closed};

bool fake__seamless_main_linked(FakeChannel *m, SpiceLinkResult *res)
{
    FakeClient *c = m->client;
    if (!c->mig_seamless || !spice_caps_has(&res->server_channel, SPICE_MAIN_CAP_SEAMLESS_MIGRATE)) {
        c->mig_seamless = false; /* a target without SEAMLESS: semi-seamless */
        return false;
    }
    char who[96];
    snprintf(who, sizeof(who), "%s.main0-target", c->who);
    SpiceConnConfig cfg = {.is_server = false, .mini_header = res->mini_header, .channel_type = SPICE_CHANNEL_MAIN,
                           .max_in = 64u << 20, .who = who};
    m->mig_conn = spice_conn_new(c->loop, res->t, &cfg, &copy_ops, m);
    m->mig_mini = res->mini_header;
    SpiceMsgU32 v = {c->mig_src_version};
    const SpiceMsgInfo *mi = spice_msg_find(SPICE_CHANNEL_MAIN, true, SPICE_MSGC_MAIN_MIGRATE_DST_DO_SEAMLESS);
    fake__record(c, m, true, mi->id, mi->name);
    spice_conn_send(m->mig_conn, mi->id, mi->desc, &v, NULL);
    c->mig_seamless = false; /* until the ACK */
    c->mig_answered = false;
    return true;
}

/* ---- the switch, channel by channel ---- */

static int ignore_message(void *opaque, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    return 0;
}

static void ignore_closed(void *opaque, int err, const char *reason)
{
}

/* A source connection whose channel swapped: kept until the last swap. */
static const SpiceConnOps old_ops = {.on_message = ignore_message, .on_closed = ignore_closed};

/* The blob as the scenario wants it spoiled. */
static uint8_t *spoil(FakeClient *c, const FakeChannel *ch, const uint8_t *blob, uint32_t len, uint32_t *out_len)
{
    uint8_t *b = mig_malloc0(len + 16);
    memcpy(b, blob, len);
    *out_len = len;
    if (c->cfg.blob_fault == FAKE_CLIENT_BLOB_NONE || ch->type != c->cfg.blob_channel || len < 8)
        return b;
    uint32_t v;
    switch (c->cfg.blob_fault) {
    case FAKE_CLIENT_BLOB_SHORT:
        *out_len = len > 12 ? 12 : len - 1;
        break;
    case FAKE_CLIENT_BLOB_BAD_MAGIC:
        b[0] ^= 0x20;
        break;
    case FAKE_CLIENT_BLOB_NEWER:
    case FAKE_CLIENT_BLOB_OLDER:
        memcpy(&v, b + 4, 4);
        v = c->cfg.blob_fault == FAKE_CLIENT_BLOB_NEWER ? v + 1 : v - 1;
        memcpy(b + 4, &v, 4);
        break;
    case FAKE_CLIENT_BLOB_BAD_SURFACE: {
        /* the display blob's first listed surface id: after the count its
         * pointer (the fixed part's last field) names */
        uint32_t at;
        memcpy(&at, b + 76, 4);
        if (ch->type == SPICE_CHANNEL_DISPLAY && len >= 80 && at >= 80 && at <= len - 8) {
            v = SPICE_MIG_MAX_SURFACES + 7;
            memcpy(b + at + 4, &v, 4);
        }
        break;
    }
    default:
        break;
    }
    return b;
}

static void swap_done(FakeClient *c)
{
    if (--c->seamless_left)
        return;
    /* every channel moved: the source's connections go */
    for (size_t i = 0; i < c->nchans; i++) {
        spice_conn_free(c->chans[i]->old_conn);
        c->chans[i]->old_conn = NULL;
    }
    snprintf(c->host, sizeof(c->host), "%s", c->mig_host);
    c->cfg.port = c->mig_port;
    c->migrating = false;
    c->migs.seamless++;
}

static void swap(FakeChannel *ch, const uint8_t *blob, uint32_t len, bool have_blob)
{
    FakeClient *c = ch->client;
    SpiceConn *old = ch->conn;
    ch->conn = NULL;
    if (ch->type == SPICE_CHANNEL_MAIN && ch->mig_conn) {
        ch->conn = ch->mig_conn;
        ch->mig_conn = NULL;
        spice_conn_set_ops(ch->conn, fake__conn_ops(), ch);
    } else if (ch->mig_t) {
        MigTransport *t = ch->mig_t;
        ch->mig_t = NULL;
        ch->conn = fake__chan_conn(ch, t, ch->mig_mini);
        spice_conn_inherit(ch->conn, old);
    }
    if (old) {
        spice_conn_set_ops(old, &old_ops, ch);
        ch->old_conn = old;
    }
    ch->mig_expect_data = false;
    ch->mig_flushed = false;
    if (!ch->conn) {
        snprintf(c->last_error, sizeof(c->last_error), "migration: %s:%u has no connection to the target",
                 spice_channel_type_name(ch->type), ch->id);
        swap_done(c);
        return;
    }
    if (ch->media) {
        ch->media->have_time = false; /* another server's clock */
        fake__media_resume(ch);
    }
    if (ch->display) {
        c->gap_pending = c->draw_gap_pending = true; /* the gap ends at the target's first display message */
        c->display_swap_ns = mig_loop_now_ns(c->loop) - c->mig_end_ns; /* its blob goes now */
    }
    if (have_blob && !(c->cfg.blob_fault == FAKE_CLIENT_BLOB_DROP && ch->type == c->cfg.blob_channel)) {
        uint32_t n;
        uint8_t *b = spoil(c, ch, blob, len, &n);
        const SpiceMsgInfo *mi = spice_msg_find(ch->type, true, SPICE_MSGC_MIGRATE_DATA);
        fake__record(c, ch, true, mi->id, mi->name);
        spice_conn_send_raw(ch->conn, SPICE_MSGC_MIGRATE_DATA, b, n);
        free(b);
    }
    swap_done(c);
}

static void send_flush(FakeChannel *ch)
{
    ch->mig_flushed = true;
    fake__chan_send(ch, SPICE_MSGC_MIGRATE_FLUSH_MARK, NULL);
}

static void flush_timer_cb(void *opaque)
{
    FakeChannel *ch = opaque;
    ch->mig_flush_timer = NULL;
    if (ch->conn)
        send_flush(ch);
}

static void swap_cb(void *opaque)
{
    FakeChannel *ch = opaque;
    ch->mig_swap_defer = NULL;
    uint8_t *blob = ch->mig_blob;
    uint32_t len = ch->mig_blob_len;
    bool have = ch->mig_have_blob;
    ch->mig_blob = NULL;
    swap(ch, blob, len, have);
    free(blob);
}

static void swap_later(FakeChannel *ch, const uint8_t *blob, uint32_t len, bool have_blob)
{
    free(ch->mig_blob);
    ch->mig_blob = have_blob ? mig_malloc0(len + 1) : NULL;
    if (have_blob)
        memcpy(ch->mig_blob, blob, len);
    ch->mig_blob_len = len;
    ch->mig_have_blob = have_blob;
    if (!ch->mig_swap_defer)
        ch->mig_swap_defer = mig_loop_defer(ch->client->loop, swap_cb, ch);
}

int fake__seamless_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    FakeClient *c = ch->client;
    if (mi->id == SPICE_MSG_MIGRATE) {
        uint32_t flags = ((SpiceMsgU32 *)body)->v;
        if (!c->migrating || !c->mig_seamless || !c->mig_connected)
            return mig_err_set(errp, -EPROTO, "MIGRATE (flags %u) without a seamless migration connected", flags);
        if (!c->seamless_left) {
            /* the first channel's MIGRATE starts the switch */
            c->mig_end_ns = c->events[c->nevents - 1].t_ns;
            for (size_t i = 0; i < c->nchans; i++)
                c->seamless_left += c->chans[i]->conn != NULL;
        }
        if (flags & SPICE_MIGRATE_NEED_FLUSH) {
            if (c->cfg.flush_mark_delay_ns)
                ch->mig_flush_timer = mig_loop_timer_add(c->loop, mig_loop_now_ns(c->loop) + c->cfg.flush_mark_delay_ns,
                                                         flush_timer_cb, ch);
            else
                send_flush(ch);
            ch->mig_flushed = true;
        }
        if (flags & SPICE_MIGRATE_NEED_DATA_TRANSFER)
            ch->mig_expect_data = true;
        else
            swap_later(ch, NULL, 0, false);
        return 1;
    }
    if (mi->id == SPICE_MSG_MIGRATE_DATA) {
        if (!ch->mig_expect_data)
            return mig_err_set(errp, -EPROTO, "MIGRATE_DATA without a MIGRATE that announced it");
        ch->mig_expect_data = false;
        SpiceMsgBytes *b = body;
        swap_later(ch, b->data.data, b->data.len, true);
        return 1;
    }
    if (ch->mig_expect_data)
        return mig_err_set(errp, -EPROTO, "%s where MIGRATE_DATA must come next", mi->name);
    return 0;
}

void fake__seamless_free(FakeChannel *ch)
{
    MigLoop *loop = ch->client->loop;
    if (ch->mig_flush_timer)
        mig_loop_remove(loop, ch->mig_flush_timer);
    if (ch->mig_swap_defer)
        mig_loop_remove(loop, ch->mig_swap_defer);
    ch->mig_flush_timer = ch->mig_swap_defer = NULL;
    free(ch->mig_blob);
    ch->mig_blob = NULL;
    spice_conn_free(ch->mig_conn);
    ch->mig_conn = NULL;
    spice_conn_free(ch->old_conn);
    ch->old_conn = NULL;
}
