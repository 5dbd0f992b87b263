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

/* What the device played for a client migrating in (semi-seamless target:
 * its playback link is held until its MIGRATE_END while the machine already
 * runs here), by session, oldest frame first; sent when that link starts. */
typedef struct Kept {
    uint32_t session_id;
    int16_t *pcm;
    uint32_t nframes, cap; /* stereo frames */
} Kept;

/* At most this many seconds are kept for one client: as long as the
 * source waits for a client to leave after MIGRATE_END (spice-main.c's
 * migrate timeout), so a client that follows within it loses nothing. */
#define KEEP_SECONDS 10u

struct SpicePlayback {
    SoundCommon c;
    uint32_t last_time;
    Kept *kept; /* in the order the sessions arrived */
    size_t nkept;
};

struct SpiceRecord {
    SoundCommon c;
    SpiceRecordSink sink;
    void *opaque;
    uint64_t dropped; /* frames that came after the device stopped recording */
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

/* DATA messages of at most SPICE_SOUND_FRAMES_PER_DATA frames to one client. */
static int send_frames(SpicePlayback *p, SpiceChannelClient *cc, const int16_t *frames, uint32_t nframes)
{
    for (uint32_t at = 0; at < nframes; at += SPICE_SOUND_FRAMES_PER_DATA) {
        uint32_t n = MIG_MIN(nframes - at, SPICE_SOUND_FRAMES_PER_DATA);
        SpiceMsgAudioData d = {.time = mm_time(p),
                               .data = {.len = n * SPICE_SOUND_FRAME_BYTES,
                                        .data = (uint8_t *)(frames + (size_t)at * SPICE_SOUND_CHANNELS)}};
        int r = spice_cc_send(cc, SPICE_MSG_PLAYBACK_DATA, &d);
        if (r < 0)
            return r;
    }
    return 0;
}

static void kept_drop(SpicePlayback *p, size_t i)
{
    free(p->kept[i].pcm);
    memmove(p->kept + i, p->kept + i + 1, (p->nkept - i - 1) * sizeof(*p->kept));
    p->nkept--;
}

static Kept *kept_find(SpicePlayback *p, uint32_t session_id)
{
    for (size_t i = 0; i < p->nkept; i++)
        if (p->kept[i].session_id == session_id)
            return &p->kept[i];
    return NULL;
}

static bool session_migrating_in(SpiceServer *s, uint32_t session_id)
{
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceClient *c = spice_server_client_at(s, i);
        if (spice_client_session_id(c) == session_id && spice_client_migrating_in(c))
            return true;
    }
    return false;
}

/* The device played `frames`: keep them for every client migrating in (in
 * the server's client order), the newest KEEP_SECONDS of them; what is kept
 * for a session that is no longer migrating in (it went away, or ended its
 * migration without a playback channel) goes. */
static void keep_for_migrating(SpicePlayback *p, const int16_t *frames, uint32_t nframes)
{
    SpiceServer *s = p->c.server;
    for (size_t i = p->nkept; i-- > 0;)
        if (!session_migrating_in(s, p->kept[i].session_id))
            kept_drop(p, i);
    uint32_t most = p->c.frequency * KEEP_SECONDS;
    for (size_t i = 0; i < spice_server_client_count(s); i++) {
        SpiceClient *c = spice_server_client_at(s, i);
        if (!spice_client_migrating_in(c))
            continue;
        Kept *k = kept_find(p, spice_client_session_id(c));
        if (!k) {
            p->kept = mig_realloc(p->kept, (p->nkept + 1) * sizeof(*p->kept));
            k = &p->kept[p->nkept++];
            *k = (Kept){.session_id = spice_client_session_id(c)};
        }
        uint32_t n = MIG_MIN(nframes, most);
        const int16_t *src = frames + (size_t)(nframes - n) * SPICE_SOUND_CHANNELS;
        if (k->nframes + n > most) { /* the oldest go: this client is later than the bound */
            uint32_t drop = k->nframes + n - most;
            memmove(k->pcm, k->pcm + (size_t)drop * SPICE_SOUND_CHANNELS,
                    (size_t)(k->nframes - drop) * SPICE_SOUND_FRAME_BYTES);
            k->nframes -= drop;
        }
        if (k->nframes + n > k->cap) {
            k->cap = MIG_MIN(most, MIG_MAX(k->cap * 2, k->nframes + n));
            k->pcm = mig_realloc(k->pcm, (size_t)k->cap * SPICE_SOUND_FRAME_BYTES);
        }
        memcpy(k->pcm + (size_t)k->nframes * SPICE_SOUND_CHANNELS, src, (size_t)n * SPICE_SOUND_FRAME_BYTES);
        k->nframes += n;
    }
}

static int playback_connect(SpiceChannelClient *cc, MigErr **errp)
{
    SpicePlayback *p = spice_channel_priv(spice_cc_channel(cc));
    if (!p)
        return mig_err_set(errp, -ENODEV, "the playback device is gone");
    common_add_cc(&p->c, cc);
    SpiceMsgAudioMode mode = {.time = mm_time(p), .mode = SPICE_AUDIO_DATA_MODE_RAW};
    int r = spice_cc_send(cc, SPICE_MSG_PLAYBACK_MODE, &mode);
    Kept *k = kept_find(p, spice_client_session_id(spice_cc_client(cc)));
    /* what was played for it while it migrated in, framed by START (and
     * STOP when the device stopped meanwhile) */
    if (r == 0 && (p->c.active || (k && k->nframes)))
        r = send_playback_start(p, cc);
    if (r == 0 && k)
        r = send_frames(p, cc, k->pcm, k->nframes);
    if (r == 0 && k && k->nframes && !p->c.active)
        r = spice_cc_send(cc, SPICE_MSG_PLAYBACK_STOP, NULL);
    if (k)
        kept_drop(p, (size_t)(k - p->kept));
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
    while (p->nkept)
        kept_drop(p, p->nkept - 1);
    free(p->kept);
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
    if (!p->c.active || !p->c.ch)
        return;
    keep_for_migrating(p, frames, nframes);
    for (size_t i = 0; i < p->c.nccs; i++)
        send_frames(p, p->c.ccs[i], frames, nframes);
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
        else if (r)
            r->dropped += d->data.len / 4;
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

uint64_t spice_record_dropped(const SpiceRecord *r)
{
    return r->dropped;
}

void spice_record_start(SpiceRecord *r)
{
    common_set_active(&r->c, true, send_record_start, r, SPICE_MSG_RECORD_STOP);
}

void spice_record_stop(SpiceRecord *r)
{
    common_set_active(&r->c, false, send_record_start, r, SPICE_MSG_RECORD_STOP);
}
