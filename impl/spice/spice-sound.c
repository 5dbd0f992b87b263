/*
 * spice-sound.c - playback and record channels (spice-sound.h).  Both keep
 * their channel clients in a list of their own (in link order) so that the
 * device's calls reach every client.
 */
#include <stdlib.h>
#include <string.h>

#include <spice/enums.h>
#include <spice/protocol.h>

#include "spice-sound.h"

typedef struct SoundCommon {
    SpiceServer *server;
    SpiceChannel *ch;
    uint32_t frequency;
    bool active;
    SpiceChannelClient **ccs;
    size_t nccs;
} SoundCommon;

struct SpicePlayback {
    SoundCommon c;
    uint32_t last_time;
};

struct SpiceRecord {
    SoundCommon c;
    SpiceRecordSink sink;
    void *opaque;
};

static void common_add_cc(SoundCommon *c, SpiceChannelClient *cc)
{
    c->ccs = mig_realloc(c->ccs, (c->nccs + 1) * sizeof(*c->ccs));
    c->ccs[c->nccs++] = cc;
}

static void common_disconnect(SpiceChannelClient *cc)
{
    SoundCommon *c = spice_channel_priv(spice_cc_channel(cc));
    if (!c)
        return;
    for (size_t i = 0; i < c->nccs; i++)
        if (c->ccs[i] == cc) {
            memmove(c->ccs + i, c->ccs + i + 1, (c->nccs - i - 1) * sizeof(*c->ccs));
            c->nccs--;
            return;
        }
}

static void common_channel_gone(SpiceChannel *ch)
{
    SoundCommon *c = spice_channel_priv(ch);
    if (c) {
        c->ch = NULL;
        c->nccs = 0;
    }
}

/* The device starts or stops: START (send_start) or `stop_msg` to every
 * linked client, once per change. */
static void common_set_active(SoundCommon *c, bool on, int (*send_start)(void *dev, SpiceChannelClient *cc),
                              void *dev, uint16_t stop_msg)
{
    if (c->active == on)
        return;
    c->active = on;
    for (size_t i = 0; i < c->nccs; i++) {
        if (on)
            send_start(dev, c->ccs[i]);
        else
            spice_cc_send(c->ccs[i], stop_msg, NULL);
    }
}

static void common_init(SoundCommon *c, SpiceServer *s, uint32_t frequency, uint8_t type,
                        const SpiceChannelClass *cls, void *dev)
{
    c->server = s;
    c->frequency = frequency;
    c->ch = spice_server_add_channel(s, type, 0, cls, dev);
}

static void common_free(SoundCommon *c, const char *what)
{
    if (c->ch)
        spice_channel_set_priv(c->ch, NULL);
    for (size_t i = 0; i < c->nccs; i++)
        spice_cc_disconnect(c->ccs[i], "the %s device went away", what);
    free(c->ccs);
}

/* Milliseconds of the loop clock; never backwards for one channel. */
static uint32_t mm_time(SpicePlayback *p)
{
    uint32_t t = (uint32_t)(mig_loop_now_ns(spice_server_loop(p->c.server)) / 1000000u);
    if (t < p->last_time)
        t = p->last_time;
    p->last_time = t;
    return t;
}

/* ------------------------------------------------------------------ playback */

static void playback_caps(SpiceChannel *ch, SpiceCapSet *caps)
{
    spice_caps_set(caps, SPICE_PLAYBACK_CAP_VOLUME);
}

static int send_playback_start(void *dev, SpiceChannelClient *cc)
{
    SpicePlayback *p = dev;
    SpiceMsgPlaybackStart st = {.channels = SPICE_SOUND_CHANNELS, .format = SPICE_AUDIO_FMT_S16,
                                .frequency = p->c.frequency, .time = mm_time(p)};
    return spice_cc_send(cc, SPICE_MSG_PLAYBACK_START, &st);
}

static int playback_connect(SpiceChannelClient *cc, MigErr **errp)
{
    SpicePlayback *p = spice_channel_priv(spice_cc_channel(cc));
    if (!p)
        return mig_err_set(errp, -ENODEV, "the playback device is gone");
    common_add_cc(&p->c, cc);
    SpiceMsgAudioMode mode = {.time = mm_time(p), .mode = SPICE_AUDIO_DATA_MODE_RAW};
    int r = spice_cc_send(cc, SPICE_MSG_PLAYBACK_MODE, &mode);
    if (r == 0 && p->c.active)
        r = send_playback_start(p, cc);
    return r < 0 ? mig_err_set(errp, r, "cannot queue the playback start") : 0;
}

static int refuse_all(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size, MigErr **errp)
{
    return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
}

static const SpiceChannelClass playback_class = {
    .name = "playback",
    .max_in = 1024,
    .caps = playback_caps,
    .connect = playback_connect,
    .on_message = refuse_all,
    .disconnect = common_disconnect,
    .channel_gone = common_channel_gone,
};

SpicePlayback *spice_playback_add(SpiceServer *s, uint32_t frequency)
{
    SpicePlayback *p = mig_malloc0(sizeof(*p));
    common_init(&p->c, s, frequency, SPICE_CHANNEL_PLAYBACK, &playback_class, p);
    return p;
}

void spice_playback_free(SpicePlayback *p)
{
    if (!p)
        return;
    common_free(&p->c, "playback");
    free(p);
}

void spice_playback_start(SpicePlayback *p)
{
    common_set_active(&p->c, true, send_playback_start, p, SPICE_MSG_PLAYBACK_STOP);
}

void spice_playback_stop(SpicePlayback *p)
{
    common_set_active(&p->c, false, send_playback_start, p, SPICE_MSG_PLAYBACK_STOP);
}

void spice_playback_put(SpicePlayback *p, const int16_t *frames, uint32_t nframes)
{
    if (!p->c.active)
        return;
    for (uint32_t at = 0; at < nframes; at += SPICE_SOUND_FRAMES_PER_DATA) {
        uint32_t n = MIG_MIN(nframes - at, SPICE_SOUND_FRAMES_PER_DATA);
        SpiceMsgAudioData d = {.time = mm_time(p),
                               .data = {.len = n * SPICE_SOUND_FRAME_BYTES,
                                        .data = (uint8_t *)(frames + (size_t)at * SPICE_SOUND_CHANNELS)}};
        for (size_t i = 0; i < p->c.nccs; i++)
            spice_cc_send(p->c.ccs[i], SPICE_MSG_PLAYBACK_DATA, &d);
    }
}

uint64_t spice_playback_backlog(const SpicePlayback *p)
{
    uint64_t most = 0;
    for (size_t i = 0; i < p->c.nccs; i++)
        most = MIG_MAX(most, spice_conn_backlog(spice_cc_conn(p->c.ccs[i])));
    return most;
}

/* ------------------------------------------------------------------ record */

static void record_caps(SpiceChannel *ch, SpiceCapSet *caps)
{
    spice_caps_set(caps, SPICE_RECORD_CAP_VOLUME);
}

static int send_record_start(void *dev, SpiceChannelClient *cc)
{
    SpiceRecord *r = dev;
    SpiceMsgRecordStart st = {.channels = SPICE_SOUND_CHANNELS, .format = SPICE_AUDIO_FMT_S16,
                              .frequency = r->c.frequency};
    return spice_cc_send(cc, SPICE_MSG_RECORD_START, &st);
}

static int record_connect(SpiceChannelClient *cc, MigErr **errp)
{
    SpiceRecord *r = spice_channel_priv(spice_cc_channel(cc));
    if (!r)
        return mig_err_set(errp, -ENODEV, "the record device is gone");
    common_add_cc(&r->c, cc);
    int e = r->c.active ? send_record_start(r, cc) : 0;
    return e < 0 ? mig_err_set(errp, e, "cannot queue RECORD_START") : 0;
}

static int record_on_message(SpiceChannelClient *cc, const SpiceMsgInfo *mi, void *body, uint32_t size,
                             MigErr **errp)
{
    SpiceRecord *r = spice_channel_priv(spice_cc_channel(cc));
    switch (mi->id) {
    case SPICE_MSGC_RECORD_MODE: {
        SpiceMsgAudioMode *m = body;
        if (m->mode != SPICE_AUDIO_DATA_MODE_RAW)
            return mig_err_set(errp, -EPROTO, "RECORD_MODE %u (only RAW, %u, is offered)", m->mode,
                               SPICE_AUDIO_DATA_MODE_RAW);
        return 0;
    }
    case SPICE_MSGC_RECORD_START_MARK:
        return 0;
    case SPICE_MSGC_RECORD_DATA: {
        SpiceMsgAudioData *d = body;
        /* data after the device stopped recording is dropped, as the protocol allows */
        if (r && r->c.active && r->sink)
            r->sink(r->opaque, d->data.data, d->data.len);
        return 0;
    }
    default:
        return mig_err_set(errp, -EPROTO, "unexpected %s", mi->name);
    }
}

static const SpiceChannelClass record_class = {
    .name = "record",
    .max_in = 64 * 1024,
    .caps = record_caps,
    .connect = record_connect,
    .on_message = record_on_message,
    .disconnect = common_disconnect,
    .channel_gone = common_channel_gone,
};

SpiceRecord *spice_record_add(SpiceServer *s, uint32_t frequency, SpiceRecordSink sink, void *opaque)
{
    SpiceRecord *r = mig_malloc0(sizeof(*r));
    r->sink = sink;
    r->opaque = opaque;
    common_init(&r->c, s, frequency, SPICE_CHANNEL_RECORD, &record_class, r);
    return r;
}

void spice_record_free(SpiceRecord *r)
{
    if (!r)
        return;
    common_free(&r->c, "record");
    free(r);
}

void spice_record_start(SpiceRecord *r)
{
    common_set_active(&r->c, true, send_record_start, r, SPICE_MSG_RECORD_STOP);
}

void spice_record_stop(SpiceRecord *r)
{
    common_set_active(&r->c, false, send_record_start, r, SPICE_MSG_RECORD_STOP);
}
