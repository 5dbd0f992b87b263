/*
 * fake-client-media.c - the fake client's playback, record and port
 * channels: what arrives is checked against the sequence conventions of the
 * fake devices (fakes/devices/fake-media.h), and the client's own record and
 * port streams are produced with the same conventions, on a loop timer.
 * A port is checked (and written to) only when its PORT_INIT names
 * migcert's device (FAKE_VMC_PORT_NAME): a vendor's port carries bytes of
 * its own, which are counted and accepted as they come.
 * Inputs and cursor live here too: with cfg.inputs the client sends the
 * input sequence of fake-media.h every 50 ms once INPUTS_INIT came, in
 * the server's mouse mode, holding the whole sequence while two bunches of
 * mouse events wait for their MOTION_ACK (so that nothing is merged or
 * reordered); the cursor channel keeps the cursor the server described.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "client/fake-client-internal.h"
#include "devices/fake-input.h"
#include "devices/fake-media.h"
#include "devices/fake-vmc.h"

#define SEND_PERIOD_NS 10000000ull /* 10 ms: 480 frames at 48 kHz */
#define INPUT_PERIOD_NS 50000000ull /* 50 ms: a fast typist */
#define MOTION_ACK_BUNCH 4u          /* SPICE_INPUT_MOTION_ACK_BUNCH */

static void media_tick(void *opaque);

static void arm(FakeChannel *ch)
{
    FakeMedia *m = ch->media;
    bool inputs = ch->type == SPICE_CHANNEL_INPUTS && m->inputs_on && ch->client->cfg.inputs;
    if (!m->timer && (m->recording || inputs || (ch->type == SPICE_CHANNEL_PORT && ch->client->cfg.vmc_bytes_per_tick)))
        m->timer = mig_loop_timer_add(ch->client->loop, mig_loop_now_ns(ch->client->loop) +
                                      (inputs ? INPUT_PERIOD_NS : SEND_PERIOD_NS), media_tick, ch);
}

/* One group of the input sequence: the mouse event in the server's mode,
 * then the key down and up. */
static void send_input_group(FakeChannel *ch)
{
    FakeClient *c = ch->client;
    uint64_t g = c->input_groups++;
    int32_t x, y;
    fake_media_input_xy(g, &x, &y);
    if (c->mouse_mode == SPICE_MOUSE_MODE_CLIENT) {
        SpiceMsgMousePosition p = {.x = (uint32_t)x, .y = (uint32_t)y};
        fake__chan_send(ch, SPICE_MSGC_INPUTS_MOUSE_POSITION, &p);
    } else {
        SpiceMsgMouseMotion mm = {.dx = x, .dy = y};
        fake__chan_send(ch, SPICE_MSGC_INPUTS_MOUSE_MOTION, &mm);
    }
    ch->media->unacked++;
    SpiceMsgU32 k = {fake_media_scancode(g)};
    fake__chan_send(ch, SPICE_MSGC_INPUTS_KEY_DOWN, &k);
    fake__chan_send(ch, SPICE_MSGC_INPUTS_KEY_UP, &k);
    ch->media->sent++;
}

static void media_tick(void *opaque)
{
    FakeChannel *ch = opaque;
    FakeMedia *m = ch->media;
    m->timer = NULL;
    if (!ch->conn || !spice_conn_is_open(ch->conn) || ch->mig_flushed)
        return; /* after a FLUSH_MARK nothing more goes to the source; the swap re-arms */
    if (ch->type == SPICE_CHANNEL_RECORD && m->recording) {
        int16_t pcm[FAKE_MEDIA_FRAMES_PER_TICK * 2];
        /* the client's capture goes on over sessions (a switch-host too) */
        for (uint32_t i = 0; i < FAKE_MEDIA_FRAMES_PER_TICK; i++, m->sent++)
            fake_media_frame(ch->client->record_frames++, &pcm[2 * i]);
        SpiceMsgAudioData d = {.time = (uint32_t)(mig_loop_now_ns(ch->client->loop) / 1000000u),
                               .data = {.len = sizeof(pcm), .data = (uint8_t *)pcm}};
        fake__chan_send(ch, SPICE_MSGC_RECORD_DATA, &d);
    } else if (ch->type == SPICE_CHANNEL_PORT && m->migcert_port && spice_conn_backlog(ch->conn) < 65536) {
        uint32_t n = ch->client->cfg.vmc_bytes_per_tick;
        uint8_t *b = malloc(n);
        fake_media_bytes(m->sent, b, n);
        m->sent += n;
        SpiceMsgBytes d = {.data = {.len = n, .data = b}};
        fake__chan_send(ch, SPICE_MSGC_SPICEVMC_DATA, &d);
        free(b);
    } else if (ch->type == SPICE_CHANNEL_INPUTS && m->unacked < 2 * MOTION_ACK_BUNCH) {
        send_input_group(ch);
    }
    arm(ch);
}

void fake__media_start(FakeChannel *ch)
{
    ch->media = mig_malloc0(sizeof(*ch->media));
    arm(ch);
}

void fake__media_resume(FakeChannel *ch)
{
    arm(ch);
}

void fake__media_free(FakeChannel *ch)
{
    if (!ch->media)
        return;
    if (ch->media->timer)
        mig_loop_remove(ch->client->loop, ch->media->timer);
    free(ch->media);
    ch->media = NULL;
}

/* Count what arrives against the sequence: a value below the expected one
 * is a duplicate, above it a gap (of that many). */
static void check_seq(FakeMedia *m, uint64_t got)
{
    if (m->received == 0 && m->next == 0)
        m->next = got; /* the first value seen: a client may join mid-stream */
    if (got < m->next)
        m->dups++;
    else if (got > m->next)
        m->gaps += got - m->next;
    m->next = got + 1;
    m->received++;
}

/* A Cursor (flags, then the header and shape unless NONE) into `cur`. */
static int cursor_shape(FakeClientCursor *cur, const char *msg, uint16_t flags, const SpiceMBytes *shape,
                        MigErr **errp)
{
    if (flags & SPICE_CURSOR_FLAGS_NONE) {
        cur->has_shape = false;
        cur->unique = 0, cur->width = cur->height = 0, cur->digest = 0;
        return 0;
    }
    SpiceCursorHeader h;
    MigErr *e = NULL;
    if (spice_marshal_decode(&spice_cursor_header_desc, shape->data, shape->len, &h, &e) < 0) {
        int r = mig_err_set(errp, -EPROTO, "%s: its cursor: %s", msg, e->msg);
        mig_err_free(e);
        return r;
    }
    if (h.type == SPICE_CURSOR_TYPE_ALPHA && !(flags & SPICE_CURSOR_FLAGS_FROM_CACHE) &&
        h.data.len != (uint32_t)h.width * h.height * 4) {
        int r = mig_err_set(errp, -EPROTO, "%s: an ALPHA cursor of %ux%u with %u bytes (%u expected)", msg, h.width,
                            h.height, h.data.len, (uint32_t)h.width * h.height * 4);
        spice_marshal_free(&spice_cursor_header_desc, &h);
        return r;
    }
    cur->has_shape = true;
    cur->unique = h.unique, cur->type = h.type, cur->width = h.width, cur->height = h.height;
    cur->hot_x = h.hot_x, cur->hot_y = h.hot_y;
    /* a shape from the cache (a real server's): its bytes are not here */
    cur->digest = flags & SPICE_CURSOR_FLAGS_FROM_CACHE ? 0 : fake_input_digest(h.data.data, h.data.len);
    spice_marshal_free(&spice_cursor_header_desc, &h);
    return 0;
}

static int cursor_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    FakeClientCursor *cur = &ch->media->cursor;
    switch (mi->id) {
    case SPICE_MSG_CURSOR_INIT: {
        SpiceMsgCursorInit *m = body;
        cur->have = true;
        cur->x = (int16_t)m->x, cur->y = (int16_t)m->y, cur->visible = m->visible;
        return cursor_shape(cur, mi->name, m->cursor_flags, &m->shape, errp);
    }
    case SPICE_MSG_CURSOR_SET: {
        SpiceMsgCursorSet *m = body;
        cur->have = true;
        cur->x = (int16_t)m->x, cur->y = (int16_t)m->y, cur->visible = m->visible;
        return cursor_shape(cur, mi->name, m->cursor_flags, &m->shape, errp);
    }
    case SPICE_MSG_CURSOR_MOVE: {
        SpiceMsgCursorMove *m = body;
        cur->x = (int16_t)m->x, cur->y = (int16_t)m->y;
        return 0;
    }
    case SPICE_MSG_CURSOR_HIDE:
        cur->visible = false;
        return 0;
    case SPICE_MSG_CURSOR_RESET:
        cur->visible = false;
        return cursor_shape(cur, mi->name, SPICE_CURSOR_FLAGS_NONE, NULL, errp);
    default:
        return 0;
    }
}

int fake__media_message(FakeChannel *ch, const SpiceMsgInfo *mi, void *body, MigErr **errp)
{
    FakeMedia *m = ch->media;
    switch (ch->type) {
    case SPICE_CHANNEL_PLAYBACK:
        if (mi->id == SPICE_MSG_PLAYBACK_DATA) {
            SpiceMsgAudioData *d = body;
            if (d->data.len % 4)
                return mig_err_set(errp, -EPROTO, "PLAYBACK_DATA of %u bytes, not whole stereo S16 frames",
                                   d->data.len);
            if (m->have_time && d->time < m->last_time)
                return mig_err_set(errp, -EPROTO, "PLAYBACK_DATA time %u goes back from %u", d->time, m->last_time);
            m->have_time = true;
            m->last_time = d->time;
            const uint8_t *pcm = d->data.data;
            for (size_t i = 0, n = d->data.len / 4; i < n; i++) {
                if (m->received || m->next) { /* frames in order need no bookkeeping each */
                    size_t k = fake_media_frames_in_order(pcm + 4 * i, n - i, m->next);
                    m->next += k;
                    m->received += k;
                    if ((i += k) == n)
                        break;
                }
                int16_t f[2];
                memcpy(f, pcm + 4 * i, sizeof(f));
                check_seq(m, fake_media_frame_seq(f));
            }
        } else if (mi->id == SPICE_MSG_PLAYBACK_START) {
            m->starts++;
        }
        return 0;
    case SPICE_CHANNEL_RECORD:
        if (mi->id == SPICE_MSG_RECORD_START) {
            SpiceMsgAudioMode mode = {.time = (uint32_t)(mig_loop_now_ns(ch->client->loop) / 1000000u),
                                      .mode = SPICE_AUDIO_DATA_MODE_RAW};
            fake__chan_send(ch, SPICE_MSGC_RECORD_MODE, &mode);
            SpiceMsgU32 mark = {mode.time};
            fake__chan_send(ch, SPICE_MSGC_RECORD_START_MARK, &mark);
            m->recording = true;
            m->starts++;
            arm(ch);
        } else if (mi->id == SPICE_MSG_RECORD_STOP) {
            m->recording = false;
        }
        return 0;
    case SPICE_CHANNEL_PORT:
        if (mi->id == SPICE_MSG_SPICEVMC_DATA && !m->migcert_port) {
            SpiceMsgBytes *d = body; /* not migcert's: no sequence to hold it to */
            m->received += d->data.len;
        } else if (mi->id == SPICE_MSG_SPICEVMC_DATA) {
            SpiceMsgBytes *d = body;
            /* a new session after switch-host joins the device's stream where it is */
            if (m->received == 0 && (ch->client->migs.switch_host || ch->client->cfg.join_streams) && d->data.len)
                m->next = d->data.data[0];
            /* bytes carry their index modulo FAKE_MEDIA_BYTE_PERIOD: a
             * byte out of place is a loss or a repeat */
            size_t k = fake_media_bytes_match(m->next, d->data.data, d->data.len);
            m->next += k;
            m->received += k;
            if (k < d->data.len) {
                m->gaps++;
                return mig_err_set(errp, -EPROTO, "port byte %llu is 0x%02x, expected 0x%02x",
                                   (unsigned long long)m->next, d->data.data[k], fake_media_byte(m->next));
            }
        } else if (mi->id == SPICE_MSG_PORT_INIT) {
            SpiceMsgPortInit *pi = body;
            size_t n = pi->name.len && !pi->name.data[pi->name.len - 1] ? pi->name.len - 1 : pi->name.len;
            snprintf(m->port_name, sizeof(m->port_name), "%.*s", (int)n, (const char *)pi->name.data);
            bool ours = n == strlen(FAKE_VMC_PORT_NAME) && !memcmp(pi->name.data, FAKE_VMC_PORT_NAME, n);
            if (ours != m->migcert_port && m->received) /* another device behind the port: a new stream */
                m->next = m->received = 0;
            m->migcert_port = ours;
            m->starts++;
            if (!ours) { /* open it, as spice-gtk's application would: a vendor's device may wait for that */
                SpiceMsgU8 ev = {SPICE_PORT_EVENT_OPENED};
                fake__chan_send(ch, SPICE_MSGC_PORT_EVENT, &ev);
            }
        }
        return 0;
    case SPICE_CHANNEL_INPUTS:
        if (mi->id == SPICE_MSG_INPUTS_INIT) {
            m->inputs_on = true;
            m->unacked = 0; /* a new channel client on the server */
            arm(ch);
        } else if (mi->id == SPICE_MSG_INPUTS_MOUSE_MOTION_ACK) {
            m->unacked = m->unacked > MOTION_ACK_BUNCH ? m->unacked - MOTION_ACK_BUNCH : 0;
        }
        return 0;
    case SPICE_CHANNEL_CURSOR:
        return cursor_message(ch, mi, body, errp);
    default:
        return 0;
    }
}

uint64_t fake_client_input_groups(const FakeClient *c)
{
    return c->input_groups;
}

void fake_client_stop_inputs(FakeClient *c)
{
    c->cfg.inputs = false;
    for (size_t i = 0; i < c->nchans; i++) {
        FakeChannel *ch = c->chans[i];
        if (ch->type == SPICE_CHANNEL_INPUTS && ch->media && ch->media->timer) {
            mig_loop_remove(c->loop, ch->media->timer);
            ch->media->timer = NULL;
        }
    }
}

void fake_client_cursor(const FakeClient *c, FakeClientCursor *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < c->nchans; i++)
        if (c->chans[i]->type == SPICE_CHANNEL_CURSOR && c->chans[i]->media)
            *out = c->chans[i]->media->cursor;
}

void fake_client_media_stats(const FakeClient *c, uint8_t channel_type, FakeClientMediaStats *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < c->nchans; i++) {
        const FakeChannel *ch = c->chans[i];
        if (ch->type == channel_type && ch->media) {
            out->received = ch->media->received;
            out->sent = ch->media->sent;
            out->gaps = ch->media->gaps;
            out->dups = ch->media->dups;
            out->starts = ch->media->starts;
            out->foreign = ch->type == SPICE_CHANNEL_PORT && !ch->media->migcert_port;
            snprintf(out->name, sizeof(out->name), "%s", ch->media->port_name);
            return;
        }
    }
}
